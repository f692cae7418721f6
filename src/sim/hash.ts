/**
 * Fast, deterministic, non-cryptographic hashing for the simulator: prompt block keys, request
 * keys for deterministic outputs and faults, and a seeded PRNG. 53-bit results fit a JS number
 * exactly, so keys can live in a Map without boxing into strings.
 */

/**
 * A cyrb53-style running hash. `snapshot()` finalizes a copy of the state, so the snapshot taken
 * after block k identifies the whole prefix up to k: that is what makes block keys a hash chain.
 */
export class RunningHash {
  #h1: number;
  #h2: number;

  constructor(seed = 0) {
    this.#h1 = 0xdeadbeef ^ seed;
    this.#h2 = 0x41c6ce57 ^ seed;
  }

  updateBytes(bytes: Uint8Array, start = 0, end = bytes.length): this {
    let h1 = this.#h1;
    let h2 = this.#h2;
    for (let i = start; i < end; i++) {
      const b = bytes[i] as number;
      h1 = Math.imul(h1 ^ b, 2654435761);
      h2 = Math.imul(h2 ^ b, 1597334677);
    }
    this.#h1 = h1;
    this.#h2 = h2;
    return this;
  }

  updateString(text: string): this {
    let h1 = this.#h1;
    let h2 = this.#h2;
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      h1 = Math.imul(h1 ^ c, 2654435761);
      h2 = Math.imul(h2 ^ c, 1597334677);
    }
    this.#h1 = h1;
    this.#h2 = h2;
    return this;
  }

  snapshot(): number {
    let h1 = Math.imul(this.#h1 ^ (this.#h1 >>> 16), 2246822507);
    h1 ^= Math.imul(this.#h2 ^ (this.#h2 >>> 13), 3266489909);
    let h2 = Math.imul(this.#h2 ^ (this.#h2 >>> 16), 2246822507);
    h2 ^= Math.imul(h1 ^ (h1 >>> 13), 3266489909);
    return 4294967296 * (2097151 & h2) + (h1 >>> 0);
  }
}

/** Combines 53-bit keys and small integers into one new 53-bit key. */
export function mixKeys(...parts: number[]): number {
  const h = new RunningHash(0x5eed);
  for (const p of parts) h.updateString(String(p)).updateString("|");
  return h.snapshot();
}

/** A uniform float in [0, 1) derived from a key. */
export function unitFloat(key: number): number {
  return key / 2 ** 53;
}

/** mulberry32: a small seeded PRNG returning floats in [0, 1). */
export function seededRandom(key: number): () => number {
  let state = (key % 4294967296) >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Hashes a JSON value with object keys taken in sorted order, so two clients serializing the same
 * request with different key order or whitespace get the same deterministic response. Walks the
 * value directly instead of building a canonical string: this runs on every request.
 */
export function hashJson(value: unknown, seed = 0): number {
  const h = new RunningHash(seed);
  feedJson(h, value);
  return h.snapshot();
}

function feedJson(h: RunningHash, value: unknown): void {
  if (typeof value === "string") {
    // Length-prefixed, so ["ab","c"] and ["a","bc"] differ.
    h.updateString(`s${value.length}:`).updateString(value);
  } else if (Array.isArray(value)) {
    h.updateString(`[${value.length}`);
    for (const v of value) feedJson(h, v);
  } else if (value !== null && typeof value === "object") {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj).sort();
    h.updateString("{");
    for (const k of keys) {
      if (obj[k] === undefined) continue;
      feedJson(h, k);
      feedJson(h, obj[k]);
    }
    h.updateString("}");
  } else {
    h.updateString(`${String(value)};`);
  }
}
