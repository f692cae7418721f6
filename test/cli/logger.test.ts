/** The logger writes pino's JSON lines (a short line on a terminal), keeps an error's name, stack and cause chain, redacted, on one line. */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { SluiceError } from "../../src/errors.js";
import { createLogger } from "../../src/logger.js";
import { ROOT } from "../helpers/cli.js";

interface ErrorJson {
  name: string;
  code?: string;
  message: string;
  stack: string;
  cause: ErrorJson;
}

function capture() {
  const lines: string[] = [];
  const logger = createLogger("debug", (l) => lines.push(l));
  const fields = () => JSON.parse(lines[0] ?? "{}") as { [field: string]: ErrorJson };
  return { logger, lines, fields };
}

describe("logger: errors", () => {
  it("renders name, code, message, stack and the cause chain on one line", () => {
    const { logger, lines, fields } = capture();
    const root = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
    const mid = new TypeError("fetch failed", { cause: root });
    const top = new SluiceError("backend_error", "request failed", { cause: mid });
    logger.error("request failed", { error: top });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^\{.*"msg":"request failed"\}\n$/);
    expect(lines[0]?.split("\n")).toHaveLength(2); // the stack's newlines stay escaped
    const e = fields().error as ErrorJson;
    expect(e).toMatchObject({ name: "SluiceError", code: "backend_error", message: "request failed" });
    expect(e.stack).toMatch(/SluiceError: request failed\n\s+at /);
    expect(e.stack).toContain("logger.test.ts");
    expect(e.cause).toMatchObject({ name: "TypeError", message: "fetch failed" });
    expect(e.cause.cause).toMatchObject({ name: "Error", code: "ECONNREFUSED", message: root.message });
    expect(e.cause.cause.stack).toContain("logger.test.ts");
  });

  it("bounds the cause chain, survives cycles and keeps non-Error causes", () => {
    const { logger, fields } = capture();
    const a = new Error("a");
    const b = new Error("b", { cause: a });
    a.cause = b; // a cycle
    const odd: Record<string, unknown> = { n: 1 };
    odd.self = odd;
    logger.warn("x", {
      error: a,
      other: new Error("plain cause", { cause: { status: 503 } }),
      odd: new Error("o", { cause: odd }),
    });
    const f = fields() as Record<"error" | "other" | "odd", ErrorJson>;
    let depth = 0;
    for (let e: unknown = f.error; typeof e === "object"; e = (e as ErrorJson).cause) depth++;
    expect(depth).toBe(5);
    expect(JSON.stringify(f.error)).toContain("[cause chain truncated]");
    expect(f.other.cause).toEqual({ status: 503 });
    expect(f.odd.cause).toBe("[object Object]");
  });

  it("redacts secrets in messages, stacks and causes", () => {
    const { logger, lines } = capture();
    const inner = new Error("login to postgres://sluice:hunter2pass@db:5432/x failed");
    const err = new Error("upstream said Bearer abcdefghijklmnop for sk-live0123456789abcdef", { cause: inner });
    logger.error("failed", { error: err, apiKey: "sk-zzzzzzzzzzzzzzzz" });
    expect(lines[0]).not.toMatch(/hunter2pass|abcdefghijklmnop|sk-live0123456789abcdef|sk-zzzz/);
    expect(lines[0]).toContain("[redacted]");
    expect(lines[0]).toContain("postgres://sluice:[redacted]@db");
  });
});

describe("logger: format", () => {
  it("writes one pino JSON object per line: level label, ISO time, pid, fields, msg", () => {
    const lines: string[] = [];
    const logger = createLogger("info", (l) => lines.push(l));
    logger.debug("below the level");
    logger.info("batch created", { batchId: "batch_1", total: 3 });
    logger.warn("50% done: %s stays as written");
    expect(lines).toHaveLength(2);
    const [first, second] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(first).toMatchObject({
      level: "info",
      pid: process.pid,
      batchId: "batch_1",
      total: 3,
      msg: "batch created",
    });
    expect(new Date(String(first?.time)).toISOString()).toBe(first?.time);
    expect(second).toMatchObject({ level: "warn", msg: "50% done: %s stays as written" });
  });

  it("writes JSON to stderr when stderr is not a terminal", () => {
    const script = `import { createLogger } from "./src/logger.ts"; createLogger("info").info("hello", { n: 1, password: "pw-123" });`;
    const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: ROOT,
      encoding: "utf8",
    });
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stderr)).toMatchObject({ level: "info", msg: "hello", n: 1, password: "[redacted]" });
  });

  it("writes a short line for a terminal, the stack below it, redacted", () => {
    const lines: string[] = [];
    const logger = createLogger("debug", (l) => lines.push(l), "pretty");
    logger.info("batch created", { batchId: "batch_1", apiKey: "sk-abcdefghijklmnop" });
    logger.error("request failed", { error: new Error("upstream said Bearer abcdefghijklmnop") });
    expect(lines[0]).toMatch(
      /^\d\d:\d\d:\d\d\.\d{3} info {2}batch created \{"batchId":"batch_1","apiKey":"\[redacted\]"\}\n$/,
    );
    expect(lines[1]).toMatch(
      /^\S+ error request failed \{"error":\{"name":"Error","message":"upstream said \[redacted\]"\}\}\n {4}Error: /,
    );
    expect(lines[1]).toContain("logger.test.ts");
    expect(lines.join("")).not.toContain("abcdefghijklmnop");
  });
});
