import { describe, expect, it } from "vitest";
import { seededRandom } from "../../src/sim/hash.js";
import { startSimulator } from "../../src/sim/index.js";
import { LruSet } from "../../src/sim/lru-set.js";
import { PrefixCache } from "../../src/sim/prefix-cache.js";
import { prefixBlockKeys } from "../../src/sim/tokenizer.js";
import { chatBody, postJson, type Usage } from "./helpers.js";

describe("LruSet", () => {
  it("behaves like a reference LRU under random operations", () => {
    for (const capacity of [1, 2, 7]) {
      const lru = new LruSet(capacity);
      const ref = new Map<number, true>();
      const rand = seededRandom(capacity);
      for (let i = 0; i < 600; i++) {
        const key = Math.floor(rand() * 12);
        ref.delete(key);
        ref.set(key, true);
        if (ref.size > capacity) ref.delete(ref.keys().next().value as number);
        lru.touch(key);
        expect(lru.size).toBe(ref.size);
        for (let k = 0; k < 12; k++) expect(lru.has(k)).toBe(ref.has(k));
      }
    }
  });
});

describe("PrefixCache", () => {
  it("serves the longest resident prefix of the hash chain", () => {
    const cache = new PrefixCache(100);
    const a = prefixBlockKeys(Buffer.from("x".repeat(640)), 16); // 160 tokens → 9 cacheable blocks
    const b = prefixBlockKeys(Buffer.from(`${"x".repeat(320)}${"y".repeat(320)}`), 16);
    expect(a).toHaveLength(9);
    cache.commitAt(0, a, 0, () => true);
    expect(cache.lookup(a, 1).hitBlocks).toBe(9);
    expect(cache.lookup(b, 1).hitBlocks).toBe(5);
    // Same block content at a different position is a different key: only prefixes hit.
    expect(cache.lookup(prefixBlockKeys(Buffer.from(`y${"x".repeat(639)}`), 16), 1).hitBlocks).toBe(0);
  });

  it("keeps the last prompt token uncached: a prompt of exactly k blocks has k-1 cacheable", () => {
    expect(prefixBlockKeys(Buffer.alloc(64 * 3), 16)).toHaveLength(2);
    expect(prefixBlockKeys(Buffer.alloc(64 * 3 + 1), 16)).toHaveLength(3);
    expect(prefixBlockKeys(Buffer.alloc(10), 16)).toHaveLength(0);
  });

  it("makes blocks usable only once the prefill that computes them has finished", () => {
    const cache = new PrefixCache(100);
    const keys = prefixBlockKeys(Buffer.alloc(1000, 1), 16);
    cache.commitAt(50, keys, 0, () => true);
    expect(cache.lookup(keys, 49).hitBlocks).toBe(0);
    expect(cache.lookup(keys, 50).hitBlocks).toBe(keys.length);
    const cancelled = prefixBlockKeys(Buffer.alloc(1000, 2), 16);
    cache.commitAt(80, cancelled, 60, () => false);
    expect(cache.lookup(cancelled, 90).hitBlocks).toBe(0);
  });

  it("evicts least recently used blocks, tails before shared roots", () => {
    const cache = new PrefixCache(10);
    const a = prefixBlockKeys(Buffer.alloc(64 * 9, 1), 16); // 8 blocks
    const b = prefixBlockKeys(Buffer.alloc(64 * 5, 2), 16); // 4 blocks
    cache.commitAt(0, a, 0, () => true);
    cache.commitAt(0, b, 0, () => true);
    // 12 blocks into 10: a's last two blocks went first, its root survives.
    expect(cache.lookup(a, 0).hitBlocks).toBe(6);
    expect(cache.lookup(b, 0).hitBlocks).toBe(4);
    expect(cache.residentBlocks).toBe(10);
  });
});

describe("prefix caching over HTTP", () => {
  it("makes prefix-sorted order cheaper than shuffled order", async () => {
    // 4 system prompts of ~62 blocks each, a cache of 100 blocks: only sorted order keeps hitting.
    const prompts = Array.from({ length: 4 }, (_, k) => `${k}`.repeat(4000));
    const requests = prompts.flatMap((p, k) => Array.from({ length: 10 }, (_, i) => chatBody(p, `q${k}-${i}`, 2)));
    const shuffled = [...requests];
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = (i * 7919 + 13) % (i + 1);
      [shuffled[i], shuffled[j]] = [shuffled[j] as (typeof shuffled)[number], shuffled[i] as (typeof shuffled)[number]];
    }
    const sim = await startSimulator({ slots: 1, stepMs: 0, prefillMsPerToken: 0, cacheBlocks: 100 });
    try {
      const run = async (order: Record<string, unknown>[]) => {
        sim.reset();
        let cached = 0;
        for (const body of order) {
          const r = await postJson(sim.url, "/v1/chat/completions", body);
          cached += (r.body["usage"] as Usage).prompt_tokens_details.cached_tokens;
        }
        const stats = sim.stats();
        expect(stats.cachedTokens).toBe(cached);
        expect(stats.cachedTokens).toBe(stats.cacheHits * 16);
        return stats;
      };
      const sorted = await run(requests);
      const mixed = await run(shuffled);
      expect(sorted.promptTokens).toBe(mixed.promptTokens);
      expect(sorted.lowerBound.distinctBlocks).toBe(mixed.lowerBound.distinctBlocks);
      expect(sorted.cachedTokens).toBeGreaterThan(4 * 9 * 60 * 16);
      expect(sorted.cachedTokens).toBeGreaterThan(2 * mixed.cachedTokens);
      expect(sorted.cacheMisses).toBeLessThan(mixed.cacheMisses);
    } finally {
      await sim.close();
    }
  });
});
