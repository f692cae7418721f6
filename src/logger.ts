/** A minimal leveled logger that redacts anything looking like a secret before it is written. */
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

function render(fields: Record<string, unknown> | undefined): string {
  if (fields === undefined) return "";
  const safe: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    safe[k] = SECRET_KEYS.test(k) && !/tokens$/.test(k) ? "[redacted]" : v instanceof Error ? errorFields(v) : v;
  }
  // JSON keeps the stack's newlines escaped: one log entry stays one line. Redaction runs on the
  // whole line, stack and causes included.
  return ` ${JSON.stringify(safe)}`;
}

export type LogLevel = "debug" | "info" | "warn" | "error" | "silent";
const ORDER: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3, silent: 4 };

export function createLogger(
  level: LogLevel = "info",
  write: (line: string) => void = (l) => process.stderr.write(l),
): Logger {
  const at = (lvl: Exclude<LogLevel, "silent">) => (msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[lvl] < ORDER[level]) return;
    write(redact(`${new Date().toISOString()} ${lvl} ${msg}${render(fields)}\n`));
  };
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

export const silentLogger: Logger = createLogger("silent");
