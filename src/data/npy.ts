// numpy .npy and .npz (zip of .npy, stored or deflated) reading and writing.
import { constants as bufferConstants } from 'node:buffer';
import { inflateRawSync } from 'node:zlib';
import { InvalidInputError, MemoryLimitError } from '../errors.js';
import { HINTS, MAX_TENSOR_ENV, assertTensorFits, formatSize, maxTensorBytes } from '../onnx/budget.js';
import type { TypedArray } from '../onnx/dtypes.js';

export type NpyDtype = 'float32' | 'float64' | 'float16' | 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'int64' | 'uint64' | 'bool';

export interface NpyArray {
  dtype: NpyDtype;
  shape: number[];
  /** float16 as uint16 bits, bool as uint8. */
  data: TypedArray;
}

const DESCR: Record<string, { dtype: NpyDtype; ctor: { new (b: ArrayBuffer, o: number, n: number): TypedArray; BYTES_PER_ELEMENT: number } }> = {
  f4: { dtype: 'float32', ctor: Float32Array },
  f8: { dtype: 'float64', ctor: Float64Array },
  f2: { dtype: 'float16', ctor: Uint16Array },
  i1: { dtype: 'int8', ctor: Int8Array },
  u1: { dtype: 'uint8', ctor: Uint8Array },
  i2: { dtype: 'int16', ctor: Int16Array },
  u2: { dtype: 'uint16', ctor: Uint16Array },
  i4: { dtype: 'int32', ctor: Int32Array },
  u4: { dtype: 'uint32', ctor: Uint32Array },
  i8: { dtype: 'int64', ctor: BigInt64Array },
  u8: { dtype: 'uint64', ctor: BigUint64Array },
  b1: { dtype: 'bool', ctor: Uint8Array },
};

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

export function isNpy(buf: Uint8Array): boolean {
  return MAGIC.every((b, i) => buf[i] === b);
}

export interface NpyHeader {
  dtype: NpyDtype;
  shape: number[];
  /** Byte offset of the data after the header. */
  dataOffset: number;
  ctor: (typeof DESCR)[string]['ctor'];
}

/** Parses the header at the start of `buf` (the first few KiB of a file are enough). */
export function parseNpyHeader(buf: Uint8Array, label = 'npy'): NpyHeader {
  if (!isNpy(buf)) throw new InvalidInputError(`${label}: not a .npy file (bad magic)`);
  const major = buf[6]!;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const headerStart = major === 1 ? 10 : 12;
  const header = new TextDecoder('latin1').decode(buf.subarray(headerStart, headerStart + headerLen));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || !fortran || shapeText === undefined) throw new InvalidInputError(`${label}: unreadable .npy header: ${header.trim()}`);
  if (fortran === 'True') throw new InvalidInputError(`${label}: Fortran-ordered arrays are not supported; save with np.ascontiguousarray`);
  if (descr[0] === '>') throw new InvalidInputError(`${label}: big-endian arrays are not supported`);
  const info = DESCR[descr.slice(1)];
  if (!info) throw new InvalidInputError(`${label}: unsupported dtype '${descr}'`);
  const shape = shapeText
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x.length > 0)
    .map(Number);
  return { dtype: info.dtype, shape, dataOffset: headerStart + headerLen, ctor: info.ctor };
}

export function parseNpy(buf: Uint8Array, label = 'npy'): NpyArray {
  const h = parseNpyHeader(buf, label);
  assertTensorFits(`array '${label}'`, h.dtype, h.shape, undefined, HINTS.data);
  const count = h.shape.reduce((a, b) => a * b, 1);
  const bytes = count * h.ctor.BYTES_PER_ELEMENT;
  if (buf.length - h.dataOffset < bytes) {
    throw new InvalidInputError(`${label}: truncated: ${buf.length - h.dataOffset} data bytes for ${h.dtype}[${h.shape.join(',')}] (${bytes} needed)`);
  }
  const copy = new ArrayBuffer(bytes);
  new Uint8Array(copy).set(buf.subarray(h.dataOffset, h.dataOffset + bytes));
  return { dtype: h.dtype, shape: h.shape, data: new h.ctor(copy, 0, count) };
}

export function encodeNpy(arr: NpyArray): Uint8Array {
  const code = Object.entries(DESCR).find(([, v]) => v.dtype === arr.dtype)![0];
  const descr = `${code.endsWith('1') ? '|' : '<'}${code}`;
  const shape = arr.shape.length === 1 ? `(${arr.shape[0]},)` : `(${arr.shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const head = new Uint8Array(10 + header.length);
  head.set(MAGIC);
  head[6] = 1;
  head[7] = 0;
  new DataView(head.buffer).setUint16(8, header.length, true);
  head.set(new TextEncoder().encode(header), 10);
  const body = new Uint8Array(arr.data.buffer, arr.data.byteOffset, arr.data.byteLength);
  const out = new Uint8Array(head.length + body.length);
  out.set(head);
  out.set(body, head.length);
  return out;
}

/** Reads every array of an .npz archive: a map from array name (without `.npy`) to array. */
export function parseNpz(buf: Uint8Array, label = 'npz'): Map<string, NpyArray> {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  // End of central directory: scan back from the end (comment ≤ 64 KiB).
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 65535); i--) {
    if (view.getUint32(i, true) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new InvalidInputError(`${label}: not an .npz (zip) file`);
  let entries = view.getUint16(eocd + 10, true);
  let cdOffset = view.getUint32(eocd + 16, true);
  // zip64 (numpy writes it for large archives)
  if (cdOffset === 0xffffffff || entries === 0xffff) {
    const loc = eocd - 20;
    if (loc >= 0 && view.getUint32(loc, true) === 0x07064b50) {
      const z64 = Number(view.getBigUint64(loc + 8, true));
      entries = Number(view.getBigUint64(z64 + 32, true));
      cdOffset = Number(view.getBigUint64(z64 + 48, true));
    }
  }
  const out = new Map<string, NpyArray>();
  let p = cdOffset;
  for (let e = 0; e < entries; e++) {
    if (view.getUint32(p, true) !== 0x02014b50) throw new InvalidInputError(`${label}: corrupt zip central directory`);
    const method = view.getUint16(p + 10, true);
    let compSize = view.getUint32(p + 20, true);
    const nameLen = view.getUint16(p + 28, true);
    const extraLen = view.getUint16(p + 30, true);
    const commentLen = view.getUint16(p + 32, true);
    let localOff = view.getUint32(p + 42, true);
    const name = new TextDecoder().decode(buf.subarray(p + 46, p + 46 + nameLen));
    // zip64 extra field for sizes/offset
    let x = p + 46 + nameLen;
    const xEnd = x + extraLen;
    while (x + 4 <= xEnd) {
      const id = view.getUint16(x, true);
      const size = view.getUint16(x + 2, true);
      if (id === 0x0001) {
        let q = x + 4;
        if (view.getUint32(p + 24, true) === 0xffffffff) q += 8; // uncompressed size
        if (compSize === 0xffffffff) {
          compSize = Number(view.getBigUint64(q, true));
          q += 8;
        }
        if (localOff === 0xffffffff) localOff = Number(view.getBigUint64(q, true));
      }
      x += 4 + size;
    }
    p = xEnd + commentLen;
    const lNameLen = view.getUint16(localOff + 26, true);
    const lExtraLen = view.getUint16(localOff + 28, true);
    const dataStart = localOff + 30 + lNameLen + lExtraLen;
    const raw = buf.subarray(dataStart, dataStart + compSize);
    if (raw.length < compSize) throw new InvalidInputError(`${label}: truncated entry '${name}'`);
    let content: Uint8Array;
    if (method === 0) content = raw;
    else if (method === 8) content = inflateLimited(raw, `${label}:${name}`);
    else throw new InvalidInputError(`${label}: entry '${name}' uses unsupported zip compression method ${method}`);
    out.set(name.replace(/\.npy$/, ''), parseNpy(content, `${label}:${name}`));
  }
  return out;
}

/**
 * Inflates one zip entry, stopping at the per-tensor budget: a few KiB of deflate can expand to
 * gigabytes, and the sizes in the zip headers are the file's word, not a fact.
 */
function inflateLimited(raw: Uint8Array, label: string): Uint8Array {
  const limit = maxTensorBytes();
  // room for the .npy header on top of the array itself
  const maxOutputLength = Math.min(limit + 65536, bufferConstants.MAX_LENGTH);
  try {
    return inflateRawSync(raw, { maxOutputLength });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new MemoryLimitError(
        `array '${label}' inflates to more than ${formatSize(maxOutputLength)} — over the per-tensor limit of ${formatSize(limit)} (${MAX_TENSOR_ENV}); ${HINTS.data}`,
        { cause: err },
      );
    }
    throw new InvalidInputError(`${label}: cannot inflate the zip entry: ${(err as Error).message}`, { cause: err });
  }
}
