/**
 * A minimal ONNX writer: a protobuf encoder for the handful of message types a feed-forward model needs
 * (ModelProto, GraphProto, NodeProto, TensorProto, ValueInfoProto, AttributeProto), so a model trained in plain
 * TypeScript can be saved without Python. Field numbers are those of onnx/onnx.proto (IR version 8, opset 13).
 *
 * The output is a pure function of the input: no timestamps, no host data, fields in field-number order, so the
 * same weights always give the same bytes (scripts/train-mnist.ts relies on that).
 */

/** Protobuf wire types used here. */
const VARINT = 0;
const FIXED64 = 1;
const LEN = 2;
const FIXED32 = 5;

/** Builds one protobuf message; nested messages are written by passing another ProtoWriter. */
export class ProtoWriter {
  readonly #chunks: Uint8Array[] = [];
  #length = 0;

  get length(): number {
    return this.#length;
  }

  #push(bytes: Uint8Array): void {
    this.#chunks.push(bytes);
    this.#length += bytes.byteLength;
  }

  #tag(field: number, wireType: number): void {
    this.#varint(BigInt(field) << 3n | BigInt(wireType));
  }

  /** Unsigned LEB128 of the value's 64-bit two's complement (so a negative int64 takes 10 bytes, as protobuf says). */
  #varint(value: bigint): void {
    let v = BigInt.asUintN(64, value);
    const out: number[] = [];
    do {
      const low = Number(v & 0x7fn);
      v >>= 7n;
      out.push(v === 0n ? low : low | 0x80);
    } while (v !== 0n);
    this.#push(Uint8Array.from(out));
  }

  /** int32 / int64 / enum / bool field. */
  int(field: number, value: number | bigint): this {
    if (typeof value === 'number' && !Number.isSafeInteger(value)) throw new RangeError(`field ${field}: ${value} is not a safe integer`);
    this.#tag(field, VARINT);
    this.#varint(BigInt(value));
    return this;
  }

  /** float field (fixed32, little-endian). */
  float(field: number, value: number): this {
    this.#tag(field, FIXED32);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    this.#push(b);
    return this;
  }

  /** double field (fixed64, little-endian). */
  double(field: number, value: number): this {
    this.#tag(field, FIXED64);
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, value, true);
    this.#push(b);
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.#tag(field, LEN);
    this.#varint(BigInt(value.byteLength));
    this.#push(value);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  message(field: number, value: ProtoWriter): this {
    return this.bytes(field, value.finish());
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.#length);
    let offset = 0;
    for (const c of this.#chunks) {
      out.set(c, offset);
      offset += c.byteLength;
    }
    return out;
  }
}

/** TensorProto.DataType values used here. */
export const DataType = { FLOAT: 1, INT64: 7 } as const;
export type DataTypeCode = (typeof DataType)[keyof typeof DataType];

/** AttributeProto.AttributeType values used here. */
const AttributeType = { FLOAT: 1, INT: 2, STRING: 3, INTS: 7 } as const;

export interface Initializer {
  name: string;
  /** Shape; [] for a scalar. */
  dims: number[];
  data: Float32Array;
}

/** One dimension: a fixed size, or a symbolic name such as "N" for the batch dimension. */
export type Dim = number | string;

export interface ValueInfo {
  name: string;
  elemType: DataTypeCode;
  shape: Dim[];
}

export type AttributeValue = number | string | number[] | { float: number };

export interface Node {
  opType: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  /** Integers are INT attributes, `{ float }` a FLOAT, a string a STRING, an array of integers INTS. */
  attributes?: Record<string, AttributeValue>;
}

export interface Graph {
  name: string;
  nodes: Node[];
  initializers: Initializer[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  docString?: string;
}

export interface Model {
  graph: Graph;
  /** ONNX IR version. @defaultValue 8 */
  irVersion?: number;
  /** Version of the default ("ai.onnx") operator set. @defaultValue 13 */
  opset?: number;
  producerName: string;
  producerVersion: string;
  modelVersion?: number;
  docString?: string;
  /** Free-form key/value pairs (ModelProto.metadata_props), written in the given order. */
  metadata?: Array<[string, string]>;
}

function tensorProto(t: Initializer): ProtoWriter {
  const expected = t.dims.reduce((a, b) => a * b, 1);
  if (t.data.length !== expected) throw new RangeError(`initializer ${t.name}: ${t.data.length} values for dims [${t.dims.join(', ')}]`);
  const w = new ProtoWriter();
  for (const d of t.dims) w.int(1, d); // dims
  w.int(2, DataType.FLOAT); // data_type
  w.string(8, t.name); // name
  const raw = new Uint8Array(t.data.length * 4);
  const view = new DataView(raw.buffer);
  t.data.forEach((v, i) => view.setFloat32(i * 4, v, true)); // raw_data is always little-endian
  w.bytes(9, raw); // raw_data
  return w;
}

function valueInfoProto(v: ValueInfo): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of v.shape) {
    const dim = new ProtoWriter();
    if (typeof d === 'number') dim.int(1, d); // dim_value
    else dim.string(2, d); // dim_param
    shape.message(1, dim); // TensorShapeProto.dim
  }
  const tensorType = new ProtoWriter().int(1, v.elemType).message(2, shape); // elem_type, shape
  const type = new ProtoWriter().message(1, tensorType); // TypeProto.tensor_type
  return new ProtoWriter().string(1, v.name).message(2, type);
}

function attributeProto(name: string, value: AttributeValue): ProtoWriter {
  const w = new ProtoWriter().string(1, name);
  if (typeof value === 'number') {
    w.int(3, value).int(20, AttributeType.INT); // i, type
  } else if (typeof value === 'string') {
    w.string(4, value).int(20, AttributeType.STRING); // s, type
  } else if (Array.isArray(value)) {
    for (const v of value) w.int(8, v); // ints
    w.int(20, AttributeType.INTS);
  } else {
    w.float(2, value.float).int(20, AttributeType.FLOAT); // f, type
  }
  return w;
}

function nodeProto(n: Node): ProtoWriter {
  const w = new ProtoWriter();
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  if (n.name !== undefined) w.string(3, n.name);
  w.string(4, n.opType);
  for (const [k, v] of Object.entries(n.attributes ?? {})) w.message(5, attributeProto(k, v));
  return w;
}

function graphProto(g: Graph): ProtoWriter {
  const w = new ProtoWriter();
  for (const n of g.nodes) w.message(1, nodeProto(n));
  w.string(2, g.name);
  for (const t of g.initializers) w.message(5, tensorProto(t));
  if (g.docString !== undefined) w.string(10, g.docString);
  for (const v of g.inputs) w.message(11, valueInfoProto(v));
  for (const v of g.outputs) w.message(12, valueInfoProto(v));
  return w;
}

/** Serializes a model to the bytes of an .onnx file. */
export function encodeModel(m: Model): Uint8Array {
  const w = new ProtoWriter();
  w.int(1, m.irVersion ?? 8); // ir_version
  w.string(2, m.producerName);
  w.string(3, m.producerVersion);
  if (m.modelVersion !== undefined) w.int(5, m.modelVersion);
  if (m.docString !== undefined) w.string(6, m.docString);
  w.message(7, graphProto(m.graph));
  w.message(8, new ProtoWriter().string(1, '').int(2, m.opset ?? 13)); // opset_import { domain, version }
  for (const [key, value] of m.metadata ?? []) w.message(14, new ProtoWriter().string(1, key).string(2, value));
  return w.finish();
}
