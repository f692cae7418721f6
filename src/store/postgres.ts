/** PostgreSQL adapter: placeholder until the scale-out work lands (issue: PostgreSQL store). */
import type { Kysely } from "kysely";
import { SluiceError } from "../errors.js";
import type { DialectCapabilities } from "./dialect.js";
import type { Database } from "./schema.js";

export async function openPostgres(_options: { url: string }): Promise<{
  db: Kysely<Database>;
  caps: DialectCapabilities;
}> {
  throw new SluiceError("not_implemented", "The PostgreSQL store is not available in this build.");
}
