/**
 * Maps a request's JSON Schema onto the subset node-llama-cpp can compile to a grammar. Its
 * compiler silently widens what it does not understand to "any JSON", so an unenforceable keyword
 * (pattern, minimum, allOf, ...) would quietly break the schema's promise; it is a 400 here instead.
 * Rewrites: anyOf → oneOf, definitions → $defs, mixed type lists → oneOf, items[] → prefixItems.
 */
import { invalidRequest } from "../../errors.js";

type Json = Record<string, unknown>;

/** Keywords that only describe; dropped. */
const ANNOTATIONS = new Set([
  "title",
  "description",
  "default",
  "examples",
  "$schema",
  "$id",
  "$comment",
  "deprecated",
  "readOnly",
  "writeOnly",
  "strict",
]);
const PRIMITIVES = new Set(["string", "number", "integer", "boolean", "null"]);
const FORMATS = new Set(["date-time", "date", "time"]);

const unsupported = (path: string, what: string) =>
  invalidRequest(
    `Unsupported JSON schema at ${path}: ${what}. The embedded engine enforces type, properties, required, ` +
      "additionalProperties, min/maxProperties, items, prefixItems, min/maxItems, enum, const, oneOf/anyOf, " +
      "$defs/$ref, min/maxLength and format (date, time, date-time).",
    "response_format",
    "unsupported_json_schema",
  );

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

function refTarget(ref: unknown, path: string): string {
  if (typeof ref === "string") {
    const m = /^#\/(?:\$defs|definitions)\/([^/]+)$/.exec(ref);
    if (m?.[1] !== undefined) return `#/$defs/${m[1]}`;
  }
  throw unsupported(path, `$ref '${String(ref)}' (only '#/$defs/<name>' references)`);
}

function normalizeMap(value: unknown, path: string): Json {
  if (!isObject(value)) throw unsupported(path, "expected an object of schemas");
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalize(v, `${path}.${k}`)]));
}

function normalizeList(value: unknown, path: string): unknown[] {
  if (!Array.isArray(value)) throw unsupported(path, "expected an array of schemas");
  return value.map((v, i) => normalize(v, `${path}[${i}]`));
}

/** Returns the grammar-ready schema, or throws a 400 naming the first unsupported construct. */
export function normalize(schema: unknown, path = "schema"): Json {
  if (schema === true) return {};
  if (!isObject(schema)) throw unsupported(path, "a schema must be an object");
  const out: Json = {};
  const types = schema.type === undefined ? [] : Array.isArray(schema.type) ? schema.type : [schema.type];
  if (types.length > 1 && !types.every((t) => PRIMITIVES.has(String(t)))) {
    const { type: _type, ...rest } = schema;
    const branch = (t: unknown): Json => {
      if (t === "object" || t === "array") return { ...rest, type: t };
      if (t !== "string") return { type: t };
      const { minLength, maxLength, format } = rest;
      return Object.fromEntries(
        Object.entries({ type: t, minLength, maxLength, format }).filter(([, v]) => v !== undefined),
      );
    };
    return { oneOf: types.map((t, i) => normalize(branch(t), `${path}.type[${i}]`)) };
  }
  for (const [key, value] of Object.entries(schema)) {
    const at = `${path}.${key}`;
    if (ANNOTATIONS.has(key)) continue;
    switch (key) {
      case "type":
        for (const t of types) {
          if (!PRIMITIVES.has(String(t)) && t !== "object" && t !== "array")
            throw unsupported(at, `type '${String(t)}'`);
        }
        out.type = value;
        break;
      case "properties":
      case "$defs":
      case "definitions":
        out[key === "definitions" ? "$defs" : key] = normalizeMap(value, at);
        break;
      case "additionalProperties":
        out.additionalProperties = typeof value === "boolean" ? value : normalize(value, at);
        break;
      case "items":
        if (Array.isArray(value)) out.prefixItems = normalizeList(value, at);
        else out.items = normalize(value, at);
        break;
      case "prefixItems":
        out.prefixItems = normalizeList(value, at);
        break;
      case "oneOf":
      case "anyOf":
        out.oneOf = normalizeList(value, at);
        break;
      case "$ref":
        out.$ref = refTarget(value, at);
        break;
      case "format":
        if (!FORMATS.has(String(value))) throw unsupported(at, `format '${String(value)}'`);
        out.format = value;
        break;
      case "enum":
      case "const": {
        const values = key === "enum" ? value : [value];
        if (!Array.isArray(values) || values.some((v) => isObject(v) || Array.isArray(v))) {
          throw unsupported(at, `${key} with non-primitive values`);
        }
        out[key] = value;
        break;
      }
      case "required":
      case "minProperties":
      case "maxProperties":
      case "minItems":
      case "maxItems":
      case "minLength":
      case "maxLength":
        // node-llama-cpp always emits every listed property, which satisfies any `required`.
        if (key !== "required") out[key] = value;
        break;
      case "uniqueItems":
        if (value !== false) throw unsupported(at, "uniqueItems");
        break;
      default:
        throw unsupported(at, `keyword '${key}'`);
    }
  }
  // An implied container type, as in {properties: {...}} without "type": "object".
  if (out.type === undefined && out.oneOf === undefined && out.$ref === undefined) {
    if (out.properties !== undefined || out.additionalProperties !== undefined) out.type = "object";
    else if (out.items !== undefined || out.prefixItems !== undefined) out.type = "array";
  }
  return out;
}
