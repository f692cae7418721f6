/** zod at the HTTP edge: a failed parse becomes a 400 envelope naming the offending parameter. */
import { z } from "zod";
import { invalidRequest, notFound } from "../errors.js";

function parse<T extends z.ZodTypeAny>(schema: T, value: unknown): z.infer<T> {
  const result = schema.safeParse(value ?? {});
  if (result.success) return result.data as z.infer<T>;
  const issue = result.error.issues[0];
  const param = issue?.path.join(".") || null;
  throw invalidRequest(`Invalid ${param ?? "request"}: ${issue?.message ?? "invalid value"}`, param);
}

export const parseQuery = parse;
export const parseBody = parse;

const ID = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9_-]+$/);
const idParams = z.object({ id: ID });

/** An object id from the path; an id that cannot exist answers 404, like an unknown one. */
export function parseId(what: string, params: unknown): string {
  const result = idParams.safeParse(params);
  if (result.success) return result.data.id;
  const raw = (params as { id?: unknown } | null)?.id;
  throw notFound(what, typeof raw === "string" ? raw.slice(0, 128) : "");
}
