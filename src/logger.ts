/**
 * The operational log, on pino: one JSON object per line (`level`, `time`, `pid`, `hostname`,
 * the fields, `msg`) when stderr is not a terminal, a short human line when it is. Everything
 * that looks like a secret is redacted before it is written: fields whose name says key, secret,
 * token, password or authorization, and the patterns below anywhere in the line (messages, error
 * stacks and causes included).
 */
import { pino } from "pino";

export interface Logger {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  debug(msg: string, fields?: Record<string, unknown>): void;
}

const SECRET_PATTERNS = [
  /sk-[A-Za-z0-9_-]{8,}/g,
  /Bearer\s+[A-Za-z0-9._~+/=-]+/gi,
  /whsec_[A-Za-z0-9+/=_-]{8,}/g,
  // Credentials embedded in URLs (postgres://user:password@host, https://user:token@host).
  /(?<=:\/\/[^\s:/@]+:)[^\s@/]+(?=@)/g,
];
const SECRET_KEYS = /key|secret|token|authorization|password/i;

export function redact(text: string): string {
  let out = text;
  for (const p of SECRET_PATTERNS) out = out.replace(p, "[redacted]");
  return out;
}

/** How many causes deep an error is rendered (a cycle or a long chain stops here). */
const MAX_CAUSE_DEPTH = 5;

/**
 * An error as a JSON object: name, code (SluiceError and Node's errors), message, stack, and its
 * cause chain; without the stack and cause a logged 500 cannot be debugged.
 */
export function errorFields(err: Error, depth = 0): Record<string, unknown> {
  const code = (err as { code?: unknown }).code;
  const out: Record<string, unknown> = {
    name: err.name,
    ...(typeof code === "string" || typeof code === "number" ? { code } : {}),
    message: err.message,
    ...(err.stack === undefined ? {} : { stack: err.stack }),
  };
  if (err.cause !== undefined) {
    out.cause =
      depth + 1 >= MAX_CAUSE_DEPTH
        ? "[cause chain truncated]"
        : err.cause instanceof Error
          ? errorFields(err.cause, depth + 1)
          : jsonSafe(err.cause);
  }
  return out;
}

/** A non-Error cause as itself when JSON can write it, else as text (cycles, BigInt). */
function jsonSafe(value: unknown): unknown {
  try {
    JSON.stringify(value);
    return value;
  } catch {
    return String(value);
  }
}

/** Secret-named fields blanked (token counts kept), errors as objects: JSON keeps a stack on one line. */
function safeFields(fields: Record<string, unknown>): Record<string, unknown> {
  const safe: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    safe[k] = SECRET_KEYS.test(k) && !/tokens$/.test(k) ? "[redacted]" : v instanceof Error ? errorFields(v) : v;
  }
  return safe;
}

export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";

/** `json`: one object per line, for collectors; `pretty`: a short line for a person at a terminal. */
export type LogFormat = "json" | "pretty";

/** pino's own keys, left out of a pretty line's fields. */
const PINO_KEYS = new Set(["level", "time", "pid", "hostname", "msg"]);

/** A pino JSON line as `HH:MM:SS.mmm level msg {fields}` (errors' stacks on the lines below). */
export function prettyLine(json: string): string {
  const entry = JSON.parse(json) as Record<string, unknown>;
  const fields: Record<string, unknown> = {};
  const stacks: string[] = [];
  for (const [k, v] of Object.entries(entry)) {
    if (PINO_KEYS.has(k)) continue;
    const stack = (v as { stack?: unknown } | null)?.stack;
    if (typeof stack === "string") {
      stacks.push(stack.replace(/^/gm, "    "));
      const { stack: _, ...rest } = v as Record<string, unknown>;
      fields[k] = rest;
    } else fields[k] = v;
  }
  const time = typeof entry.time === "string" ? entry.time.slice(11, 23) : "";
  const level = String(entry.level ?? "").padEnd(5);
  const rest = Object.keys(fields).length === 0 ? "" : ` ${JSON.stringify(fields)}`;
  return `${time} ${level} ${String(entry.msg ?? "")}${rest}\n${stacks.map((s) => `${s}\n`).join("")}`;
}

/**
 * A logger at `level` writing to `write` (default: stderr). `format` defaults to `pretty` when
 * writing to a terminal, else `json`.
 */
export function createLogger(
  level: LogLevel = "info",
  write?: (line: string) => void,
  format: LogFormat = write === undefined && process.stderr.isTTY ? "pretty" : "json",
): Logger {
  const out = write ?? ((l: string) => process.stderr.write(l));
  const destination = { write: (line: string) => out(redact(format === "pretty" ? prettyLine(line) : line)) };
  const log = pino(
    {
      level,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }), log: safeFields },
      // Errors are rendered by safeFields whatever their field's name.
      serializers: {},
    },
    destination,
  );
  return {
    debug: (msg, fields) => log.debug(fields ?? {}, msg),
    info: (msg, fields) => log.info(fields ?? {}, msg),
    warn: (msg, fields) => log.warn(fields ?? {}, msg),
    error: (msg, fields) => log.error(fields ?? {}, msg),
  };
}

export const silentLogger: Logger = createLogger("silent");
