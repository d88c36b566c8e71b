// Pure numerics over typed arrays for the pruning family.
import type { TypedArray } from '../onnx/dtypes.js';

/** Keeps the given indices (ascending) along `axis` of a row-major tensor. */
export function sliceAxis<T extends TypedArray>(data: T, dims: readonly number[], axis: number, keep: readonly number[]): { data: T; dims: number[] } {
  const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const n = dims[axis]!;
  const Ctor = data.constructor as new (len: number) => T;
  const out = new Ctor(outer * keep.length * inner);
  let p = 0;
  for (let o = 0; o < outer; o++) {
    for (const k of keep) {
      const src = (o * n + k) * inner;
      (out as unknown as { set(a: ArrayLike<number | bigint>, o: number): void }).set(data.subarray(src, src + inner) as unknown as ArrayLike<number>, p);
      p += inner;
    }
  }
  const outDims = dims.slice();
  outDims[axis] = keep.length;
  return { data: out, dims: outDims };
}

/** Per-index norm of every slice along `axis` (p = 1: sum |x|, p = 2: sqrt of sum x²). */
export function sliceNorms(data: Float32Array, dims: readonly number[], axis: number, p: 1 | 2): Float64Array {
  const outer = dims.slice(0, axis).reduce((a, b) => a * b, 1);
  const inner = dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const n = dims[axis]!;
  const acc = new Float64Array(n);
  for (let o = 0; o < outer; o++) {
    for (let k = 0; k < n; k++) {
      const base = (o * n + k) * inner;
      let s = 0;
      for (let i = 0; i < inner; i++) {
        const x = data[base + i]!;
        s += p === 1 ? Math.abs(x) : x * x;
      }
      acc[k]! += s;
    }
  }
  if (p === 2) for (let k = 0; k < n; k++) acc[k] = Math.sqrt(acc[k]!);
  return acc;
}

/** Mean |x| per channel (axis 1) of an [N, C, …] activation, accumulated into `sum` (and the count per channel returned). */
export function accumulateChannelAbs(x: Float32Array, dims: readonly number[], sum: Float64Array): number {
  const n = dims[0]!;
  const c = dims[1]!;
  const inner = dims.slice(2).reduce((a, b) => a * b, 1);
  for (let b = 0; b < n; b++) {
    for (let ch = 0; ch < c; ch++) {
      const base = (b * c + ch) * inner;
      let s = 0;
      for (let i = 0; i < inner; i++) s += Math.abs(x[base + i]!);
      sum[ch]! += s;
    }
  }
  return n * inner;
}
