/**
 * A minimal GGUF v3 encoder: header, typed key/value metadata, tensor infos and aligned tensor
 * data, all little-endian. It covers the value and tensor types the demo model needs, nothing more
 * (spec: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md).
 */

const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** GGUF metadata value type ids. */
const ValueType = { u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9 } as const;

/** ggml tensor type ids for the element types we write. */
const TensorType = { f32: 0, f16: 1 } as const;
export type TensorElementType = keyof typeof TensorType;

export type GgufValue =
  | { type: "u32" | "i32" | "f32"; value: number }
  | { type: "bool"; value: boolean }
  | { type: "string"; value: string }
  | { type: "array"; itemType: "u32" | "i32" | "f32"; values: readonly number[] }
  | { type: "array"; itemType: "string"; values: readonly string[] };

export interface GgufTensor {
  name: string;
  /** ggml order: dims[0] is the fastest-varying (row length). */
  dims: readonly number[];
  type: TensorElementType;
  /** Row-major values, dims[0] fastest; length must equal the product of dims. */
  data: Float32Array;
}

export interface GgufFile {
  metadata: ReadonlyArray<readonly [string, GgufValue]>;
  tensors: readonly GgufTensor[];
  alignment?: number;
}

/** Appends little-endian primitives to a growing list of chunks. */
class ByteSink {
  readonly chunks: Buffer[] = [];
  length = 0;

  push(buf: Buffer): void {
    this.chunks.push(buf);
    this.length += buf.length;
  }
  u32(n: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n);
    this.push(b);
  }
  i32(n: number): void {
    const b = Buffer.alloc(4);
    b.writeInt32LE(n);
    this.push(b);
  }
  u64(n: number): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(n));
    this.push(b);
  }
  f32(n: number): void {
    const b = Buffer.alloc(4);
    b.writeFloatLE(n);
    this.push(b);
  }
  string(s: string): void {
    const bytes = Buffer.from(s, "utf8");
    this.u64(bytes.length);
    this.push(bytes);
  }
  padTo(alignment: number): void {
    const rem = this.length % alignment;
    if (rem !== 0) this.push(Buffer.alloc(alignment - rem));
  }
}

function writeScalar(sink: ByteSink, type: "u32" | "i32" | "f32", n: number): void {
  if (type === "u32") sink.u32(n);
  else if (type === "i32") sink.i32(n);
  else sink.f32(n);
}

function writeValue(sink: ByteSink, value: GgufValue): void {
  sink.u32(ValueType[value.type]);
  switch (value.type) {
    case "u32":
    case "i32":
    case "f32":
      writeScalar(sink, value.type, value.value);
      return;
    case "bool":
      sink.push(Buffer.from([value.value ? 1 : 0]));
      return;
    case "string":
      sink.string(value.value);
      return;
    case "array":
      sink.u32(ValueType[value.itemType]);
      sink.u64(value.values.length);
      if (value.itemType === "string") for (const s of value.values) sink.string(s);
      else for (const n of value.values) writeScalar(sink, value.itemType, n);
  }
}

/** IEEE 754 binary16 bits of a float (round to nearest even), for f16 tensors. */
export function toFloat16Bits(value: number): number {
  const f32 = new Float32Array([value]);
  const bits = new Uint32Array(f32.buffer)[0] ?? 0;
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rounded = (mant + half - 1 + ((mant >>> shift) & 1)) >>> shift;
    return sign | rounded;
  }
  const rounded = mant + 0xfff + ((mant >>> 13) & 1);
  if (rounded & 0x800000) return e + 1 >= 0x1f ? sign | 0x7c00 : sign | ((e + 1) << 10);
  return sign | (e << 10) | (rounded >>> 13);
}

function tensorBytes(tensor: GgufTensor): Buffer {
  const expected = tensor.dims.reduce((a, b) => a * b, 1);
  if (tensor.data.length !== expected) {
    throw new Error(`tensor ${tensor.name}: ${tensor.data.length} values for dims [${tensor.dims.join(", ")}]`);
  }
  if (tensor.type === "f32") {
    return Buffer.from(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength);
  }
  const out = Buffer.alloc(tensor.data.length * 2);
  for (let i = 0; i < tensor.data.length; i++) out.writeUInt16LE(toFloat16Bits(tensor.data[i] ?? 0), i * 2);
  return out;
}

/** Encodes a complete GGUF v3 file as a list of buffers (write them in order). */
export function encodeGguf(file: GgufFile): Buffer[] {
  const alignment = file.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  const sink = new ByteSink();
  sink.u32(GGUF_MAGIC);
  sink.u32(GGUF_VERSION);
  sink.u64(file.tensors.length);
  sink.u64(file.metadata.length);
  for (const [key, value] of file.metadata) {
    sink.string(key);
    writeValue(sink, value);
  }

  const payloads = file.tensors.map(tensorBytes);
  let offset = 0;
  file.tensors.forEach((tensor, i) => {
    sink.string(tensor.name);
    sink.u32(tensor.dims.length);
    for (const d of tensor.dims) sink.u64(d);
    sink.u32(TensorType[tensor.type]);
    sink.u64(offset);
    offset += payloads[i]?.length ?? 0;
    offset += (alignment - (offset % alignment)) % alignment;
  });

  // Offsets above are relative to the data section, which itself starts aligned.
  sink.padTo(alignment);
  for (const payload of payloads) {
    sink.push(payload);
    sink.padTo(alignment);
  }
  return sink.chunks;
}
