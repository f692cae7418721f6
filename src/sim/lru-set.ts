/**
 * A fixed-capacity LRU set of numeric keys: a Map from key to slot plus an intrusive doubly linked
 * list over typed arrays. Touching a resident key only relinks it (no Map churn), which matters
 * because every prompt block of every request is touched.
 */
const NIL = -1;

export class LruSet {
  readonly #capacity: number;
  readonly #slotOf = new Map<number, number>();
  readonly #keys: Float64Array;
  readonly #prev: Int32Array;
  readonly #next: Int32Array;
  #head = NIL; // most recently used
  #tail = NIL; // least recently used

  constructor(capacity: number) {
    this.#capacity = capacity;
    this.#keys = new Float64Array(capacity);
    this.#prev = new Int32Array(capacity).fill(NIL);
    this.#next = new Int32Array(capacity).fill(NIL);
  }

  get size(): number {
    return this.#slotOf.size;
  }

  has(key: number): boolean {
    return this.#slotOf.has(key);
  }

  /** Marks `key` most recently used, inserting it (and evicting the LRU key) if absent. */
  touch(key: number): void {
    if (this.#capacity === 0) return;
    let slot = this.#slotOf.get(key);
    if (slot !== undefined) {
      if (slot === this.#head) return;
      this.#unlink(slot);
    } else if (this.#slotOf.size < this.#capacity) {
      slot = this.#slotOf.size;
    } else {
      slot = this.#tail;
      this.#unlink(slot);
      this.#slotOf.delete(this.#keys[slot] as number);
    }
    this.#keys[slot] = key;
    this.#slotOf.set(key, slot);
    this.#pushFront(slot);
  }

  clear(): void {
    this.#slotOf.clear();
    this.#head = NIL;
    this.#tail = NIL;
  }

  #unlink(slot: number): void {
    const p = this.#prev[slot] as number;
    const n = this.#next[slot] as number;
    if (p === NIL) this.#head = n;
    else this.#next[p] = n;
    if (n === NIL) this.#tail = p;
    else this.#prev[n] = p;
  }

  #pushFront(slot: number): void {
    this.#prev[slot] = NIL;
    this.#next[slot] = this.#head;
    if (this.#head !== NIL) this.#prev[this.#head] = slot;
    this.#head = slot;
    if (this.#tail === NIL) this.#tail = slot;
  }
}
