/**
 * One setting, read and validated: a zod schema over the raw text, and the words for what it
 * accepts. A bad value becomes a ConfigError whose message is the one line `sluice` prints before
 * exiting 2, naming the setting, the value (never a secret's) and what is accepted.
 */
import { z } from "zod";
import { SluiceError } from "../errors.js";

export type Env = Readonly<Record<string, string | undefined>>;

export class ConfigError extends SluiceError {
  readonly setting: string;

  constructor(setting: string, detail: string, accepted: string | undefined) {
    super(
      "invalid_setting",
      `invalid setting ${setting}: ${detail}${accepted === undefined ? "" : ` (accepted: ${accepted})`}`,
      {
        status: 400,
        type: "invalid_request_error",
        param: setting,
      },
    );
    this.name = "ConfigError";
    this.setting = setting;
  }
}

export interface Setting<T> {
  schema: z.ZodType<T, z.ZodTypeDef, string>;
  accepted: string;
  /** `always`: never echo the value (keys, tokens); `url`: echo it unless it holds credentials. */
  secret?: "always" | "url";
}

const MAX_SHOWN = 40;

/** The value as the error line shows it: quoted, escaped onto one line, truncated. */
export function showValue(raw: string, secret: Setting<unknown>["secret"]): string | undefined {
  if (secret === "always") return undefined;
  if (secret === "url" && /^[^/]*\/\/[^/]*@/.test(raw)) return undefined;
  const oneLine = JSON.stringify(raw).slice(1, -1);
  return `'${oneLine.length > MAX_SHOWN ? `${oneLine.slice(0, MAX_SHOWN)}…` : oneLine}'`;
}

/** Validates `raw` (undefined = not given); the error names `name`. */
export function parseSetting<T>(name: string, raw: string, setting: Setting<T>): T {
  const result = setting.schema.safeParse(raw);
  if (result.success) return result.data;
  const problem = result.error.issues[0]?.message ?? "is invalid";
  const shown = showValue(raw, setting.secret);
  throw new ConfigError(name, shown === undefined ? "the value is invalid" : `${shown} ${problem}`, setting.accepted);
}

/** A flag if given, else an environment variable if set and non-empty, else undefined. */
export function pick(
  flag: { name: string; value: string | undefined } | undefined,
  env: Env,
  envName: string | undefined,
): { name: string; raw: string } | undefined {
  if (flag?.value !== undefined) return { name: flag.name, raw: flag.value };
  if (envName === undefined) return undefined;
  const raw = env[envName];
  return raw === undefined || raw === "" ? undefined : { name: envName, raw };
}

export function read<T>(source: { name: string; raw: string } | undefined, setting: Setting<T>): T | undefined {
  return source === undefined ? undefined : parseSetting(source.name, source.raw, setting);
}

export const fromEnv = <T>(env: Env, name: string, setting: Setting<T>): T | undefined =>
  read(pick(undefined, env, name), setting);

export const fromFlag = <T>(name: string, value: string | undefined, setting: Setting<T>): T | undefined =>
  read(pick({ name, value }, {}, undefined), setting);

// Round powers of ten read better as 1e9; anything else in plain digits.
const fmt = (n: number) => (n >= 1e6 && /^10*$/.test(String(n)) ? `1e${String(n).length - 1}` : String(n));

export function integer(min: number, max: number, note = ""): Setting<number> {
  return {
    accepted: `${max === Number.MAX_SAFE_INTEGER ? `an integer ≥ ${min}` : `${fmt(min)}–${fmt(max)}`}${note}`,
    schema: z
      .string()
      .trim()
      .regex(/^[+-]?\d+$/, "is not an integer")
      .transform(Number)
      .pipe(z.number().min(min, "is out of range").max(max, "is out of range")),
  };
}

export function decimal(min: number, max: number, note = ""): Setting<number> {
  return {
    accepted: `a number ${fmt(min)}–${fmt(max)}${note}`,
    schema: z
      .string()
      .trim()
      .regex(/^[+-]?(\d+\.?\d*|\.\d+)$/, "is not a number")
      .transform(Number)
      .pipe(z.number().min(min, "is out of range").max(max, "is out of range")),
  };
}

export function oneOf<const T extends readonly [string, ...string[]]>(values: T): Setting<T[number]> {
  return {
    accepted: values.join(" | "),
    schema: z.string().pipe(z.enum(values, { errorMap: () => ({ message: "is not an accepted value" }) })),
  };
}

export const HTTP_URL_ACCEPTED = "an http:// or https:// URL with a host and an optional port 1–65535";

/**
 * What is wrong with an http(s) URL, or undefined: the scheme (`localhost:8000`, `htp://…`), the
 * port (`:99999`, `:0`), a host. Shared by `--backend` and the routing file's `url:` entries.
 */
export function httpUrlProblem(value: string): string | undefined {
  const v = value.trim();
  if (!/^https?:\/\//i.test(v)) return "is not an http(s) URL";
  const authority = /^https?:\/\/([^/?#]*)/i.exec(v)?.[1] ?? "";
  const port = /^(?:\[[^\]]*\]|[^:]*)(?::(.*))?$/.exec(authority.slice(authority.lastIndexOf("@") + 1))?.[1];
  if (port !== undefined && port !== "" && !(/^\d{1,5}$/.test(port) && Number(port) >= 1 && Number(port) <= 65535)) {
    return `has port ${JSON.stringify(port).slice(1, -1)}, which is not a port number`;
  }
  if (!URL.canParse(v)) return "is not a valid URL";
  if (new URL(v).hostname === "") return "has no host";
  return undefined;
}

export function httpUrl(secret?: "always" | "url"): Setting<string> {
  return {
    accepted: HTTP_URL_ACCEPTED,
    ...(secret === undefined ? {} : { secret }),
    schema: z
      .string()
      .trim()
      .superRefine((v, ctx) => {
        const problem = httpUrlProblem(v);
        if (problem !== undefined) ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem });
      }),
  };
}

export function text(accepted: string, secret?: "always"): Setting<string> {
  return {
    accepted,
    ...(secret === undefined ? {} : { secret }),
    schema: z.string().refine((v) => v.trim() !== "" && !/[\0\n\r]/.test(v), "is empty or holds control characters"),
  };
}

export const boolean: Setting<boolean> = {
  accepted: "true | false",
  schema: z
    .string()
    .pipe(z.enum(["true", "false"], { errorMap: () => ({ message: "is not a boolean" }) }))
    .transform((v) => v === "true"),
};
