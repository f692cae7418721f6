/** Opens the store a command's --data/--store flags point at, for commands that need no server. */
import { mkdir } from "node:fs/promises";
import { type CommonFlags, type CommonOptions, resolveCommon } from "../config.js";
import { encryptionAtRest } from "../crypto/row-cipher.js";
import { openStore, type Store } from "../store/store.js";

export async function withStore<T>(
  flags: CommonFlags,
  fn: (store: Store, common: CommonOptions) => Promise<T>,
): Promise<T> {
  const common = resolveCommon(flags);
  if (common.store.kind === "sqlite") await mkdir(common.dataDir, { recursive: true });
  const store = await openStore(common.store, { encryption: encryptionAtRest(common.masterKeys) });
  try {
    return await fn(store, common);
  } finally {
    await store.close();
  }
}
