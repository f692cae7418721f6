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

function render(fields: Record<string, unknown> | undefined): string {
  if (fields === undefined) return "";
  const safe: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(fields)) {
    safe[k] = SECRET_KEYS.test(k) && !/tokens$/.test(k) ? "[redacted]" : v instanceof Error ? v.message : v;
  }
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
