/** Secrets never reach the log: keys, bearer tokens, webhook secrets, passwords in URLs, secret fields. */
import { describe, expect, it } from "vitest";
import { createLogger } from "../../src/logger.js";
import { generateKey } from "../../src/store/tenants.js";

describe("log redaction", () => {
  it("redacts secrets in messages and fields", () => {
    const lines: string[] = [];
    const log = createLogger("debug", (l) => lines.push(l));
    const key = generateKey();
    log.info(`request with Authorization: Bearer ${key}`);
    log.warn("store unreachable", { url: "postgres://sluice:hunter2-pass@db:5432/sluice" });
    log.error("webhook failed", { detail: "secret whsec_abcdefghijklmnop", masterKey: "AAAA", apiKey: key });
    log.debug("usage", { input_tokens: 12 });
    const out = lines.join("");
    for (const secret of [key, "hunter2-pass", "whsec_abcdefghijklmnop", "AAAA"]) expect(out).not.toContain(secret);
    expect(out).toContain("postgres://sluice:[redacted]@db:5432/sluice");
    expect(out).toContain('"input_tokens":12');
  });
});
