/** zod at the edges (HTTP bodies, backend request bodies): a failed parse is a 400 naming the parameter. */
import type { z } from "zod";
import { invalidRequest } from "./errors.js";

function parse<T extends z.ZodTypeAny>(schema: T, value: unknown): z.infer<T> {
  const result = schema.safeParse(value ?? {});
  if (result.success) return result.data as z.infer<T>;
  const issue = result.error.issues[0];
  const param = issue?.path.join(".") || null;
  throw invalidRequest(`Invalid ${param ?? "request"}: ${issue?.message ?? "invalid value"}`, param);
}

export const parseQuery = parse;
export const parseBody = parse;
