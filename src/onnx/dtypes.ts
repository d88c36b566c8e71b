// ONNX element types: one table of what each is called, how wide it is, and how we hold it in JS.
import { TensorProto_DataType as DT } from 'onnx-buf';

export { DT as DataType };

export type TypedArray =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array;

type TypedArrayCtor = { new (n: number): TypedArray; new (buf: ArrayBuffer, off?: number, len?: number): TypedArray; BYTES_PER_ELEMENT: number };

interface DTypeInfo {
  name: string;
  /** Bytes per element; 0.5 for 4-bit types, 0 for strings. */
  bytes: number;
  /** How elements are held in JS (float16/bfloat16 as raw uint16 bits, bool as uint8). */
  array?: TypedArrayCtor;
  /** Which TensorProto repeated field holds the values when raw_data is not used. */
  field?: 'floatData' | 'int32Data' | 'int64Data' | 'doubleData' | 'uint64Data' | 'stringData';
  isFloat?: boolean;
}

export const DTYPES: Partial<Record<DT, DTypeInfo>> = {
  [DT.FLOAT]: { name: 'float32', bytes: 4, array: Float32Array, field: 'floatData', isFloat: true },
  [DT.DOUBLE]: { name: 'float64', bytes: 8, array: Float64Array, field: 'doubleData', isFloat: true },
  [DT.FLOAT16]: { name: 'float16', bytes: 2, array: Uint16Array, field: 'int32Data', isFloat: true },
  [DT.BFLOAT16]: { name: 'bfloat16', bytes: 2, array: Uint16Array, field: 'int32Data', isFloat: true },
  [DT.INT8]: { name: 'int8', bytes: 1, array: Int8Array, field: 'int32Data' },
  [DT.UINT8]: { name: 'uint8', bytes: 1, array: Uint8Array, field: 'int32Data' },
  [DT.INT16]: { name: 'int16', bytes: 2, array: Int16Array, field: 'int32Data' },
  [DT.UINT16]: { name: 'uint16', bytes: 2, array: Uint16Array, field: 'int32Data' },
  [DT.INT32]: { name: 'int32', bytes: 4, array: Int32Array, field: 'int32Data' },
  [DT.UINT32]: { name: 'uint32', bytes: 4, array: Uint32Array, field: 'uint64Data' },
  [DT.INT64]: { name: 'int64', bytes: 8, array: BigInt64Array, field: 'int64Data' },
  [DT.UINT64]: { name: 'uint64', bytes: 8, array: BigUint64Array, field: 'uint64Data' },
  [DT.BOOL]: { name: 'bool', bytes: 1, array: Uint8Array, field: 'int32Data' },
  [DT.STRING]: { name: 'string', bytes: 0, field: 'stringData' },
  [DT.COMPLEX64]: { name: 'complex64', bytes: 8, field: 'floatData' },
  [DT.COMPLEX128]: { name: 'complex128', bytes: 16, field: 'doubleData' },
  [DT.FLOAT8E4M3FN]: { name: 'float8e4m3fn', bytes: 1, array: Uint8Array, field: 'int32Data', isFloat: true },
  [DT.FLOAT8E4M3FNUZ]: { name: 'float8e4m3fnuz', bytes: 1, array: Uint8Array, field: 'int32Data', isFloat: true },
  [DT.FLOAT8E5M2]: { name: 'float8e5m2', bytes: 1, array: Uint8Array, field: 'int32Data', isFloat: true },
  [DT.FLOAT8E5M2FNUZ]: { name: 'float8e5m2fnuz', bytes: 1, array: Uint8Array, field: 'int32Data', isFloat: true },
  [DT.UINT4]: { name: 'uint4', bytes: 0.5, array: Uint8Array, field: 'int32Data' },
  [DT.INT4]: { name: 'int4', bytes: 0.5, array: Uint8Array, field: 'int32Data' },
};

export function dtypeName(dt: number): string {
  return DTYPES[dt as DT]?.name ?? `dtype(${dt})`;
}

export function dtypeBytes(dt: number): number {
  return DTYPES[dt as DT]?.bytes ?? 0;
}

export function isFloatType(dt: number): boolean {
  return DTYPES[dt as DT]?.isFloat === true;
}

/** onnxruntime-common's tensor type names, where one exists. */
export const ORT_TYPE_OF: Partial<Record<DT, string>> = {
  [DT.FLOAT]: 'float32',
  [DT.DOUBLE]: 'float64',
  [DT.FLOAT16]: 'float16',
  [DT.INT8]: 'int8',
  [DT.UINT8]: 'uint8',
  [DT.INT16]: 'int16',
  [DT.UINT16]: 'uint16',
  [DT.INT32]: 'int32',
  [DT.UINT32]: 'uint32',
  [DT.INT64]: 'int64',
  [DT.UINT64]: 'uint64',
  [DT.BOOL]: 'bool',
  [DT.STRING]: 'string',
};

export function dtypeFromOrtType(t: string): DT | undefined {
  for (const [k, v] of Object.entries(ORT_TYPE_OF)) if (v === t) return Number(k) as DT;
  return undefined;
}
