/**
 * Master keys: the keys that wrap (encrypt) every data key. Configured once at the edge from
 * SLUICE_MASTER_KEY or SLUICE_MASTER_KEY_FILE as a list of `[id:]base64-of-32-bytes` entries
 * (commas or newlines; `#` starts a comment line). The LAST entry is the current key: new data
 * keys are wrapped with it; the others only unwrap data keys wrapped before a rotation. Without
 * an explicit id, a key's id is a fingerprint (a truncated SHA-256 of the key; reveals nothing).
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { SluiceError } from "../errors.js";

export interface MasterKey {
  readonly id: string;
  readonly key: Buffer;
}

const NONCE = 12;
const TAG = 16;
const ID = /^[A-Za-z0-9_.-]{1,64}$/;
const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/;

const invalid = (message: string) => new SluiceError("invalid_master_key", message);

export class MasterKeyring {
  readonly #keys = new Map<string, MasterKey>();
  readonly current: MasterKey;

  constructor(keys: readonly MasterKey[]) {
    const last = keys[keys.length - 1];
    if (last === undefined) throw invalid("No master key given.");
    for (const k of keys) {
      if (k.key.length !== 32) throw invalid(`Master key '${k.id}' must be 32 bytes.`);
      if (this.#keys.has(k.id)) throw invalid(`Master key id '${k.id}' appears twice.`);
      this.#keys.set(k.id, k);
    }
    this.current = last;
  }

  get ids(): string[] {
    return [...this.#keys.keys()];
  }

  /** Wraps a data key with the current master key, bound to the object it belongs to. */
  wrap(ownerId: string, dataKey: Buffer): { masterKeyId: string; wrapped: string } {
    const { id, key } = this.current;
    const nonce = randomBytes(NONCE);
    const cipher = createCipheriv("aes-256-gcm", key, nonce);
    cipher.setAAD(aad(ownerId, id));
    const body = Buffer.concat([cipher.update(dataKey), cipher.final()]);
    return { masterKeyId: id, wrapped: Buffer.concat([nonce, body, cipher.getAuthTag()]).toString("base64") };
  }

  unwrap(ownerId: string, masterKeyId: string, wrapped: string): Buffer {
    const master = this.#keys.get(masterKeyId);
    if (master === undefined) {
      throw new SluiceError(
        "master_key_missing",
        `The data key of '${ownerId}' is wrapped by master key '${masterKeyId}', which is not configured.`,
      );
    }
    const raw = Buffer.from(wrapped, "base64");
    try {
      const decipher = createDecipheriv("aes-256-gcm", master.key, raw.subarray(0, NONCE));
      decipher.setAAD(aad(ownerId, masterKeyId));
      decipher.setAuthTag(raw.subarray(raw.length - TAG));
      return Buffer.concat([decipher.update(raw.subarray(NONCE, raw.length - TAG)), decipher.final()]);
    } catch (err) {
      throw new SluiceError("data_key_corrupt", `The data key of '${ownerId}' failed to unwrap.`, { cause: err });
    }
  }
}

const aad = (ownerId: string, masterKeyId: string) => Buffer.from(`sluice/data-key/v1\0${ownerId}\0${masterKeyId}`);

export const masterKeyFingerprint = (key: Buffer) =>
  `mk_${createHash("sha256").update(key).digest("hex").slice(0, 12)}`;

/** Parses a key list; error messages name the entry's position, never its value. */
export function parseMasterKeys(text: string, source: string): MasterKeyring {
  const entries = text
    .split(/[\n,]/)
    .map((e) => e.trim())
    .filter((e) => e !== "" && !e.startsWith("#"));
  const keys = entries.map((entry, i): MasterKey => {
    const colon = entry.indexOf(":");
    const id = colon === -1 ? undefined : entry.slice(0, colon).trim();
    const b64 = (colon === -1 ? entry : entry.slice(colon + 1)).trim();
    if (id !== undefined && !ID.test(id)) throw invalid(`${source}: entry ${i + 1} has an invalid id.`);
    const key = BASE64.test(b64)
      ? Buffer.from(b64, b64.includes("-") || b64.includes("_") ? "base64url" : "base64")
      : null;
    if (key === null || key.length !== 32) {
      throw invalid(`${source}: entry ${i + 1} is not the base64 encoding of 32 bytes (try: openssl rand -base64 32).`);
    }
    return { id: id ?? masterKeyFingerprint(key), key };
  });
  if (keys.length === 0) throw invalid(`${source} is set but holds no key.`);
  return new MasterKeyring(keys);
}

/** SLUICE_MASTER_KEY or SLUICE_MASTER_KEY_FILE (not both); undefined when neither is set. */
export function masterKeysFromEnv(env: NodeJS.ProcessEnv): MasterKeyring | undefined {
  const inline = env.SLUICE_MASTER_KEY || undefined;
  const file = env.SLUICE_MASTER_KEY_FILE || undefined;
  if (inline !== undefined && file !== undefined) {
    throw invalid("Set SLUICE_MASTER_KEY or SLUICE_MASTER_KEY_FILE, not both.");
  }
  if (inline !== undefined) return parseMasterKeys(inline, "SLUICE_MASTER_KEY");
  if (file === undefined) return undefined;
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw invalid(`Cannot read SLUICE_MASTER_KEY_FILE (${(err as NodeJS.ErrnoException).code ?? "error"}).`);
  }
  return parseMasterKeys(text, "SLUICE_MASTER_KEY_FILE");
}
