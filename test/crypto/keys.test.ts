/** Master keys (parsing, rotation), data keys on every store, and the row cipher. */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createDataKeys, rewrapDataKeys } from "../../src/crypto/data-keys.js";
import { MasterKeyring, masterKeysFromEnv, parseMasterKeys } from "../../src/crypto/master-keys.js";
import { createRowCodec } from "../../src/crypto/row-cipher.js";
import { leaseFence } from "../../src/store/claims/claim-source.js";
import { claimRequests } from "../../src/store/claims/leased-claim.js";
import { dataKeyRows } from "../../src/store/data-keys.js";
import { checkpoint } from "../../src/store/requests/checkpoint.js";
import { insertRequestChunk } from "../../src/store/requests/insert.js";
import { readFinishedPage } from "../../src/store/requests/read.js";
import { rowCipher } from "../../src/store/row-codec.js";
import { STORES, useFreshStore } from "../helpers/stores.js";

const b64 = () => randomBytes(32).toString("base64");

describe("master keys", () => {
  it("parses bare and named keys; the last one is current", () => {
    const ring = parseMasterKeys(`# old\nk1:${b64()}\n${b64()}, k3:${b64()}\n`, "test");
    expect(ring.ids).toHaveLength(3);
    expect(ring.ids[0]).toBe("k1");
    expect(ring.ids[1]).toMatch(/^mk_[0-9a-f]{12}$/);
    expect(ring.current.id).toBe("k3");
  });

  it("rejects bad entries without echoing the secret", () => {
    const secret = randomBytes(16).toString("base64");
    expect(() => parseMasterKeys(secret, "SLUICE_MASTER_KEY")).toThrow(
      /entry 1 is not the base64 encoding of 32 bytes/,
    );
    try {
      parseMasterKeys(`a:${secret}`, "X");
    } catch (err) {
      expect((err as Error).message).not.toContain(secret);
    }
    expect(() => parseMasterKeys(`a:${b64()},a:${b64()}`, "X")).toThrow(/twice/);
    expect(() => masterKeysFromEnv({ SLUICE_MASTER_KEY: b64(), SLUICE_MASTER_KEY_FILE: "/x" })).toThrow(/not both/);
    expect(masterKeysFromEnv({})).toBeUndefined();
  });

  it("unwraps keys wrapped before a rotation, and binds a wrapping to its owner", () => {
    const k1 = { id: "k1", key: randomBytes(32) };
    const k2 = { id: "k2", key: randomBytes(32) };
    const dek = randomBytes(32);
    const old = new MasterKeyring([k1]).wrap("file-a", dek);
    const rotated = new MasterKeyring([k1, k2]);
    expect(rotated.unwrap("file-a", old.masterKeyId, old.wrapped).equals(dek)).toBe(true);
    expect(rotated.wrap("file-b", dek).masterKeyId).toBe("k2");
    expect(() => rotated.unwrap("file-b", old.masterKeyId, old.wrapped)).toThrow(/failed to unwrap/);
    expect(() => new MasterKeyring([k2]).unwrap("file-a", "k1", old.wrapped)).toThrow(/not configured/);
  });
});

describe.each(STORES)("data keys on $name", (kind) => {
  const t = useFreshStore(kind);

  it("creates one key per owner, stores it only wrapped, and shreds it on destroy", async () => {
    const ring = parseMasterKeys(`first:${b64()}`, "test");
    const keys = createDataKeys(dataKeyRows(t.store), ring);
    const [a, a2] = await Promise.all([keys.get("batch_a"), keys.get("batch_a")]);
    expect(a?.equals(a2 as Buffer)).toBe(true);
    // Another process (no cache) sees the same key.
    const again = await createDataKeys(dataKeyRows(t.store), ring).get("batch_a");
    expect(again?.equals(a as Buffer)).toBe(true);
    const row = await t.store.db
      .selectFrom("data_keys")
      .selectAll()
      .where("id", "=", "batch_a")
      .executeTakeFirstOrThrow();
    expect(row.master_key_id).toBe("first");
    expect(Buffer.from(row.wrapped, "base64").includes(a as Buffer)).toBe(false);

    await keys.destroy("batch_a");
    const fresh = await createDataKeys(dataKeyRows(t.store), ring).get("batch_a");
    expect(fresh?.equals(a as Buffer)).toBe(false);
    await keys.destroy("batch_a");
  });

  it("re-wraps every data key with the newest master key", async () => {
    const k1 = `k1:${b64()}`;
    const old = createDataKeys(dataKeyRows(t.store), parseMasterKeys(k1, "t"));
    const d1 = await old.get("file-r1");
    const d2 = await old.get("file-r2");
    const ring = parseMasterKeys(`${k1}\nk2:${b64()}`, "t");
    expect(await rewrapDataKeys(dataKeyRows(t.store), ring)).toBeGreaterThanOrEqual(2);
    const onlyNew = createDataKeys(
      dataKeyRows(t.store),
      parseMasterKeys(`k2:${ring.current.key.toString("base64")}`, "t"),
    );
    expect((await onlyNew.get("file-r1"))?.equals(d1 as Buffer)).toBe(true);
    expect((await onlyNew.get("file-r2"))?.equals(d2 as Buffer)).toBe(true);
  });

  it("row cipher: seals, opens, passes plaintext through, and rejects moved values", async () => {
    const dataKeys = createDataKeys(dataKeyRows(t.store), parseMasterKeys(b64(), "t"));
    const store = { dataKeys, rowCodec: createRowCodec(dataKeys) };
    const c = await rowCipher(store, "batch_rows");
    const sealed = c.seal("body", 1, '{"secret":"marker"}');
    expect(sealed).toMatch(/^enc1:/);
    expect(sealed).not.toContain("marker");
    expect(c.open("body", 1, sealed)).toBe('{"secret":"marker"}');
    expect(c.seal("result", 1, null)).toBeNull();
    expect(c.open("error", 2, '{"code":"batch_cancelled"}')).toBe('{"code":"batch_cancelled"}');
    expect(() => c.open("body", 2, sealed)).toThrow(/cannot be decrypted/);
    expect(() => c.open("result", 1, sealed)).toThrow(/cannot be decrypted/);
    const other = await rowCipher(store, "batch_other");
    expect(() => other.open("body", 1, sealed)).toThrow(/cannot be decrypted/);
    const plain = await rowCipher(
      { rowCodec: createRowCodec(createDataKeys(dataKeyRows(t.store), undefined)) },
      "batch_rows",
    );
    expect(plain.seal("body", 1, "x")).toBe("x");
    expect(() => plain.open("body", 1, sealed)).toThrow(/no master key/);
  });

  it("stores prompts and results sealed through insert, claim, checkpoint and read", async () => {
    const dataKeys = createDataKeys(dataKeyRows(t.store), parseMasterKeys(b64(), "t"));
    const store = { ...t.store, dataKeys, rowCodec: createRowCodec(dataKeys) };
    const batchId = "batch_sealed_rows";
    const c = await rowCipher(store, batchId);
    const rows = [1, 2, 3].map((line) => ({
      tenant_id: "t1",
      batch_id: batchId,
      line,
      custom_id: `c${line}`,
      model: "m",
      body: c.seal("body", line, `{"prompt":"PROMPT-${line}"}`),
      status: "pending" as const,
      prefix_key: null,
    }));
    await insertRequestChunk(store, rows);
    const claimed = await claimRequests(store, { batchId, owner: "w1", leaseMs: 60_000, limit: 10 });
    expect(claimed.map((r) => r.body)).toEqual([1, 2, 3].map((l) => `{"prompt":"PROMPT-${l}"}`));
    await checkpoint(
      store,
      leaseFence("w1"),
      claimed.map((r) => ({
        kind: "succeeded" as const,
        batchId,
        line: r.line,
        responseStatus: 200,
        requestId: null,
        result: `{"answer":"RESULT-${r.line}"}`,
        error: null,
        usage: null,
      })),
    );
    const stored = await t.store.db
      .selectFrom("requests")
      .select(["body", "result"])
      .where("batch_id", "=", batchId)
      .execute();
    for (const r of stored) {
      expect(r.body).toMatch(/^enc1:/);
      expect(r.result).toMatch(/^enc1:/);
      expect(`${r.body}${r.result}`).not.toMatch(/PROMPT|RESULT/);
    }
    const page = await readFinishedPage(store, batchId, 0, 10);
    expect(page.map((r) => r.result)).toEqual([1, 2, 3].map((l) => `{"answer":"RESULT-${l}"}`));
  });
});
