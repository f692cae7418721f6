/** zod at the HTTP edge: a failed parse becomes a 400 envelope naming the offending parameter. */
import { z } from "zod";
import { notFound } from "../errors.js";

export { parseBody, parseQuery } from "../validation.js";

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
