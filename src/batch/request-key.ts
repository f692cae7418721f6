/**
 * What determines a request's answer, as a key: the endpoint, the model, what serves the model
 * (the route's identity: a changed model behind a name must not serve old answers) and the
 * canonical JSON of the body (object keys sorted, no whitespace: key order and spacing do not
 * matter; numbers and strings as JSON writes them). Keys are keyed hashes under the tenant's own
 * reuse key (FieldCipher.digest; plain SHA-256 without a master key), so they match only within
 * one tenant and the index holds no plaintext.
 *
 * - `reuseKey`: the body alone — identical requests (dedup within a batch, `reuse: "body"`).
 * - `resubmitKey`: the custom_id with the body — a resubmission (`reuse: "custom_id+body"`).
 */

/** JSON with object keys sorted at every level. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value) ?? "null";
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(",")}}`;
}

export interface RequestKeys {
  reuseKey: string;
  resubmitKey: string;
}

/** The owner of a tenant's reuse key (a data key like a batch's, wrapped by the master key). */
export const reuseKeyOwner = (tenantId: string) => `tenant:${tenantId}:reuse`;

export function requestKeys(
  digest: (text: string) => string,
  r: { endpoint: string; model: string; routeIdentity: string; body: Record<string, unknown>; customId: string },
): RequestKeys {
  const reuseKey = digest(`sluice/reuse/v1\0${r.endpoint}\0${r.model}\0${r.routeIdentity}\0${canonicalJson(r.body)}`);
  return { reuseKey, resubmitKey: digest(`sluice/resubmit/v1\0${r.customId}\0${reuseKey}`) };
}

/**
 * Whether a request's answer is meant to be the same every time: embeddings, and generations at
 * temperature 0 or with a fixed seed. A body without `temperature` samples (the default is 1).
 * Even these are not bit-exact under batching on real engines: merging them is a documented
 * trade-off, on by default, off with `dedup: "off"`.
 */
export function isDeterministic(endpoint: string, body: Record<string, unknown>): boolean {
  if (endpoint === "/v1/embeddings") return true;
  return body.temperature === 0 || (typeof body.seed === "number" && Number.isInteger(body.seed));
}
