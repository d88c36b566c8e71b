// Read and write the numbers inside a TensorProto, whichever field holds them.
import { create } from '@bufbuild/protobuf';
import { TensorProtoSchema, TensorProto_DataLocation, type TensorProto } from 'onnx-buf';
import { UnsupportedModelError, InvalidModelError } from '../errors.js';
import { DataType as DT, DTYPES, dtypeName, type TypedArray } from './dtypes.js';
import { bfloat16ArrayToFloat32, float16ArrayToFloat32 } from './float16.js';

export interface TensorData {
  dtype: DT;
  dims: number[];
  /** float16/bfloat16 as uint16 bits, bool as uint8, 4-bit types packed two per byte. */
  data: TypedArray;
}

export function tensorDims(t: TensorProto): number[] {
  return t.dims.map((d) => Number(d));
}

export function elementCount(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}

export function isExternal(t: TensorProto): boolean {
  // Anything but DEFAULT counts: a data_location value we do not know could mean a file to a runtime.
  return t.dataLocation !== TensorProto_DataLocation.DEFAULT || t.externalData.length > 0;
}

/** Throws a clear error for tensors whose bytes live outside the model (we never read paths from a model). */
export function assertEmbedded(t: TensorProto): void {
  if (isExternal(t)) {
    throw new UnsupportedModelError(
      `tensor '${t.name}' stores its data in an external file that was not loaded; load the model with its data files (external data) or re-save it with all tensors embedded`,
    );
  }
}

function packedLength(dt: DT, count: number): number {
  const info = DTYPES[dt];
  if (!info) return 0;
  return info.bytes === 0.5 ? Math.ceil(count / 2) : count;
}

/** The tensor's values as a freshly allocated typed array (never a view into the model buffer). */
export function readTensor(t: TensorProto): TensorData {
  assertEmbedded(t);
  const dtype = t.dataType as DT;
  const info = DTYPES[dtype];
  const dims = tensorDims(t);
  const count = elementCount(dims);
  if (!info || !info.array) {
    throw new UnsupportedModelError(`tensor '${t.name}': element type ${dtypeName(dtype)} has no numeric view`);
  }
  const n = packedLength(dtype, count);
  const Ctor = info.array;
  if (t.rawData.length > 0 || count === 0) {
    const expected = n * Ctor.BYTES_PER_ELEMENT;
    if (t.rawData.length !== expected) {
      throw new InvalidModelError(
        `tensor '${t.name}': raw_data has ${t.rawData.length} bytes, expected ${expected} for ${dtypeName(dtype)}[${dims.join(',')}]`,
      );
    }
    // Copy: raw_data may be an unaligned view into the decoded model.
    const buf = new ArrayBuffer(expected);
    new Uint8Array(buf).set(t.rawData);
    return { dtype, dims, data: new Ctor(buf, 0, n) };
  }
  const out = new Ctor(n);
  const field = info.field!;
  const src = t[field] as ArrayLike<number | bigint>;
  if (src.length === 0) {
    // what a SequenceProto or OptionalProto read as a TensorProto looks like: its name bytes become dims
    throw new InvalidModelError(`tensor '${t.name}' declares ${n} ${dtypeName(dtype)} values [${dims.join(',')}] but holds no data: it is not a tensor (a sequence or an optional?) or it is truncated`);
  }
  if (src.length !== n) {
    throw new InvalidModelError(`tensor '${t.name}': ${field} has ${src.length} values, expected ${n}`);
  }
  if (out instanceof BigInt64Array || out instanceof BigUint64Array) {
    for (let i = 0; i < n; i++) out[i] = BigInt(src[i]!);
  } else {
    for (let i = 0; i < n; i++) (out as Float32Array)[i] = Number(src[i]!);
  }
  return { dtype, dims, data: out };
}

/** Float view of a float tensor (float32/float64/float16/bfloat16) as Float32Array. */
export function readFloat32(t: TensorProto): Float32Array {
  const { dtype, data } = readTensor(t);
  switch (dtype) {
    case DT.FLOAT:
      return data as Float32Array;
    case DT.DOUBLE:
      return Float32Array.from(data as Float64Array);
    case DT.FLOAT16:
      return float16ArrayToFloat32(data as Uint16Array);
    case DT.BFLOAT16:
      return bfloat16ArrayToFloat32(data as Uint16Array);
    default:
      throw new UnsupportedModelError(`tensor '${t.name}' is ${dtypeName(dtype)}, not a float tensor`);
  }
}

/** Number view for integer tensors (int64 converted with Number(); fine for shapes and indices). */
export function readNumbers(t: TensorProto): number[] {
  const { data } = readTensor(t);
  return Array.from(data as ArrayLike<number | bigint>, (v) => Number(v));
}

/** Replaces the tensor's values in place: data goes to raw_data, typed fields are cleared. */
export function writeTensor(t: TensorProto, dtype: DT, dims: readonly number[], data: TypedArray): void {
  const info = DTYPES[dtype];
  if (!info?.array) throw new UnsupportedModelError(`cannot write ${dtypeName(dtype)} tensors`);
  const n = packedLength(dtype, elementCount(dims));
  if (data.length !== n) throw new InvalidModelError(`tensor '${t.name}': ${data.length} values given for shape [${dims.join(',')}]`);
  if (!(data instanceof info.array)) throw new InvalidModelError(`tensor '${t.name}': wrong array type for ${dtypeName(dtype)}`);
  t.dataType = dtype;
  t.dims = dims.map((d) => BigInt(d));
  t.rawData = new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)) as Uint8Array<ArrayBuffer>;
  t.floatData = [];
  t.int32Data = [];
  t.int64Data = [];
  t.doubleData = [];
  t.uint64Data = [];
  t.stringData = [];
}

export function makeTensor(name: string, dtype: DT, dims: readonly number[], data: TypedArray): TensorProto {
  const t = create(TensorProtoSchema, { name });
  writeTensor(t, dtype, dims, data);
  return t;
}

/** Bytes the tensor's values occupy (what a size report counts). */
export function tensorByteSize(t: TensorProto): number {
  const info = DTYPES[t.dataType as DT];
  const count = elementCount(tensorDims(t));
  if (!info) return t.rawData.length;
  if (t.dataType === DT.STRING) return t.stringData.reduce((s, b) => s + b.length, 0);
  return Math.ceil(count * info.bytes);
}
