import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { TensorProtoSchema } from 'onnx-buf';
import { DataType as DT } from '../src/onnx/dtypes.js';
import { makeTensor, readFloat32, readTensor, writeTensor } from '../src/onnx/tensor-data.js';
import {
  bfloat16BitsToFloat32,
  float16BitsToFloat32,
  float32ToBfloat16Bits,
  float32ToFloat16Bits,
} from '../src/onnx/float16.js';
import { encodeNpy, parseNpy, parseNpz } from '../src/data/npy.js';
import { FMNIST } from './helpers.js';
import { readFileSync } from 'node:fs';
import { deflateRawSync } from 'node:zlib';

describe('float16 and bfloat16', () => {
  it('converts known bit patterns exactly', () => {
    const cases: [number, number][] = [
      [0, 0x0000],
      [-0, 0x8000],
      [1, 0x3c00],
      [-2, 0xc000],
      [65504, 0x7bff],
      [0.333251953125, 0x3555],
      [2 ** -24, 0x0001], // smallest subnormal
      [2 ** -14, 0x0400], // smallest normal
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
      [1e6, 0x7c00], // overflow
    ];
    for (const [f, h] of cases) {
      assert.equal(float32ToFloat16Bits(f), h, `f32 ${f}`);
      assert.equal(float16BitsToFloat32(h), f === 1e6 ? Infinity : f, `f16 ${h.toString(16)}`);
    }
    assert.ok(Number.isNaN(float16BitsToFloat32(float32ToFloat16Bits(NaN))));
  });

  it('rounds to nearest, ties to even', () => {
    // 1 + 2^-11 lies exactly between 1 and 1+2^-10: ties to even → 1
    assert.equal(float32ToFloat16Bits(1 + 2 ** -11), 0x3c00);
    // 1 + 3·2^-11 lies between 1+2^-10 (odd) and 1+2^-9 (even) → rounds up
    assert.equal(float32ToFloat16Bits(1 + 3 * 2 ** -11), 0x3c02);
    assert.equal(float32ToFloat16Bits(1 + 2 ** -11 + 2 ** -20), 0x3c01);
    // half of the smallest subnormal → 0 (tie to even), a bit more → smallest subnormal
    assert.equal(float32ToFloat16Bits(2 ** -25), 0);
    assert.equal(float32ToFloat16Bits(2 ** -25 * 1.5), 1);
  });

  it('is exact for every float16 value (all 65536 bit patterns round-trip)', () => {
    for (let h = 0; h < 0x10000; h++) {
      const f = float16BitsToFloat32(h);
      if (Number.isNaN(f)) continue;
      assert.equal(float32ToFloat16Bits(f), h);
    }
  });

  it('bfloat16 keeps the float32 exponent and rounds the mantissa', () => {
    assert.equal(float32ToBfloat16Bits(1), 0x3f80);
    assert.equal(bfloat16BitsToFloat32(0x3f80), 1);
    assert.equal(float32ToBfloat16Bits(3.140625), 0x4049);
    assert.equal(bfloat16BitsToFloat32(float32ToBfloat16Bits(1e30)) / 1e30 - 1 < 0.01, true);
  });
});

describe('tensor data access', () => {
  it('reads every supported dtype from raw_data and writes it back', () => {
    const cases: [DT, ArrayLike<number | bigint>, new (n: number) => ArrayLike<number | bigint>][] = [
      [DT.FLOAT, [1.5, -2, 3], Float32Array],
      [DT.DOUBLE, [1.5, -2, 1e300], Float64Array],
      [DT.INT8, [-128, 0, 127], Int8Array],
      [DT.UINT8, [0, 200, 255], Uint8Array],
      [DT.INT32, [-5, 0, 2 ** 31 - 1], Int32Array],
      [DT.INT64, [-5n, 0n, 2n ** 62n], BigInt64Array],
      [DT.BOOL, [1, 0, 1], Uint8Array],
      [DT.FLOAT16, [0x3c00, 0xc000, 0x7bff], Uint16Array],
      [DT.BFLOAT16, [0x3f80, 0x4049, 0], Uint16Array],
    ];
    for (const [dtype, values, Ctor] of cases) {
      const arr = new Ctor(3) as unknown as { [i: number]: number | bigint };
      Array.from(values).forEach((v, i) => (arr[i] = v));
      const t = makeTensor('t', dtype, [3], arr as never);
      assert.equal(t.rawData.length > 0, true);
      const back = readTensor(t);
      assert.deepEqual(Array.from(back.data as ArrayLike<number>), Array.from(values as ArrayLike<number>), `dtype ${dtype}`);
      assert.deepEqual(back.dims, [3]);
    }
  });

  it('reads the typed fields (float_data, int32_data, int64_data, double_data, uint64_data)', () => {
    const f = create(TensorProtoSchema, { dataType: DT.FLOAT, dims: [2n], floatData: [0.5, -1] });
    assert.deepEqual(Array.from(readTensor(f).data as Float32Array), [0.5, -1]);
    const h = create(TensorProtoSchema, { dataType: DT.FLOAT16, dims: [2n], int32Data: [0x3c00, 0x4000] });
    assert.deepEqual(Array.from(readFloat32(h)), [1, 2]);
    const bf = create(TensorProtoSchema, { dataType: DT.BFLOAT16, dims: [1n], int32Data: [0x3f80] });
    assert.deepEqual(Array.from(readFloat32(bf)), [1]);
    const i8 = create(TensorProtoSchema, { dataType: DT.INT8, dims: [2n], int32Data: [-3, 7] });
    assert.deepEqual(Array.from(readTensor(i8).data as Int8Array), [-3, 7]);
    const b = create(TensorProtoSchema, { dataType: DT.BOOL, dims: [2n], int32Data: [1, 0] });
    assert.deepEqual(Array.from(readTensor(b).data as Uint8Array), [1, 0]);
    const i64 = create(TensorProtoSchema, { dataType: DT.INT64, dims: [2n], int64Data: [-1n, 9n] });
    assert.deepEqual(Array.from(readTensor(i64).data as BigInt64Array), [-1n, 9n]);
    const d = create(TensorProtoSchema, { dataType: DT.DOUBLE, dims: [1n], doubleData: [0.25] });
    assert.deepEqual(Array.from(readTensor(d).data as Float64Array), [0.25]);
    const u32 = create(TensorProtoSchema, { dataType: DT.UINT32, dims: [1n], uint64Data: [4000000000n] });
    assert.deepEqual(Array.from(readTensor(u32).data as Uint32Array), [4000000000]);
    const i32 = create(TensorProtoSchema, { dataType: DT.INT32, dims: [2, 2].map(BigInt), int32Data: [1, 2, 3, 4] });
    assert.deepEqual(readTensor(i32).dims, [2, 2]);
    // writing replaces the typed field with raw_data
    writeTensor(f, DT.FLOAT, [2], Float32Array.of(3, 4));
    assert.equal(f.floatData.length, 0);
    assert.deepEqual(Array.from(readFloat32(f)), [3, 4]);
  });

  it('rejects raw_data of the wrong size with a clear error', () => {
    const t = create(TensorProtoSchema, { name: 'w', dataType: DT.FLOAT, dims: [4n], rawData: new Uint8Array(12) as Uint8Array<ArrayBuffer> });
    assert.throws(() => readTensor(t), /raw_data has 12 bytes, expected 16/);
  });
});

describe('npy / npz', () => {
  it('reads the committed Fashion-MNIST subset (compressed npz) and labels (npy)', () => {
    const arrays = parseNpz(readFileSync(FMNIST.inputs));
    const input = arrays.get('input')!;
    assert.equal(input.dtype, 'float32');
    assert.deepEqual(input.shape, [2000, 1, 28, 28]);
    const px = input.data as Float32Array;
    let max = 0;
    for (const x of px) max = Math.max(max, x);
    assert.ok(max <= 1 && max > 0.9, 'pixels scaled to [0, 1]');
    // every value is k/255
    for (let i = 0; i < 5000; i++) assert.ok(Math.abs(px[i]! * 255 - Math.round(px[i]! * 255)) < 1e-4);
    const labels = parseNpy(readFileSync(FMNIST.labels));
    assert.equal(labels.dtype, 'int64');
    assert.deepEqual(labels.shape, [2000]);
    const counts = new Array(10).fill(0);
    for (const l of labels.data as BigInt64Array) counts[Number(l)]++;
    assert.ok(counts.every((c) => c > 150), 'all ten classes present');
  });

  it('writes .npy that reads back identically, and reads stored and deflated npz entries', () => {
    const arr = { dtype: 'float32' as const, shape: [2, 3], data: Float32Array.of(1, 2, 3, 4, 5, 6) };
    const npy = encodeNpy(arr);
    assert.equal((npy.indexOf(0x0a) + 1) % 64, 0, 'header padded to 64 bytes');
    const back = parseNpy(npy);
    assert.deepEqual(back.shape, [2, 3]);
    assert.deepEqual(Array.from(back.data as Float32Array), [1, 2, 3, 4, 5, 6]);
    for (const method of [0, 8]) {
      const zip = makeZip('a.npy', npy, method);
      const got = parseNpz(zip).get('a')!;
      assert.deepEqual(Array.from(got.data as Float32Array), [1, 2, 3, 4, 5, 6]);
    }
    assert.throws(() => parseNpy(npy.subarray(0, npy.length - 4)), /truncated/);
    assert.throws(() => parseNpz(new Uint8Array(100)), /not an \.npz/);
  });
});

/** A one-entry zip written by hand (so the reader is tested against the format, not itself). */
function makeZip(name: string, content: Uint8Array, method: 0 | 8 | number): Uint8Array {
  const data = method === 8 ? deflateRawSync(content) : content;
  const nameBytes = new TextEncoder().encode(name);
  const local = new Uint8Array(30 + nameBytes.length);
  const lv = new DataView(local.buffer);
  lv.setUint32(0, 0x04034b50, true);
  lv.setUint16(8, method, true);
  lv.setUint32(18, data.length, true);
  lv.setUint32(22, content.length, true);
  lv.setUint16(26, nameBytes.length, true);
  local.set(nameBytes, 30);
  const central = new Uint8Array(46 + nameBytes.length);
  const cv = new DataView(central.buffer);
  cv.setUint32(0, 0x02014b50, true);
  cv.setUint16(10, method, true);
  cv.setUint32(20, data.length, true);
  cv.setUint32(24, content.length, true);
  cv.setUint16(28, nameBytes.length, true);
  cv.setUint32(42, 0, true);
  central.set(nameBytes, 46);
  const end = new Uint8Array(22);
  const ev = new DataView(end.buffer);
  ev.setUint32(0, 0x06054b50, true);
  ev.setUint16(8, 1, true);
  ev.setUint16(10, 1, true);
  ev.setUint32(12, central.length, true);
  ev.setUint32(16, local.length + data.length, true);
  const out = new Uint8Array(local.length + data.length + central.length + end.length);
  out.set(local);
  out.set(data, local.length);
  out.set(central, local.length + data.length);
  out.set(end, local.length + data.length + central.length);
  return out;
}
