// Splitting evaluation data by sample: a search ranks candidates on one part and judges the goal on
// the other, which nothing it does ever reads (labels follow their samples).
import { createHash } from 'node:crypto';
import { InvalidInputError } from '../errors.js';
import { ort, rowsOf, seededRandom, type Feeds } from '../runtime/ort.js';

export interface ItemSplit {
  /** Sample indices (into the batches' concatenation) of each part, in ascending order. */
  search: number[];
  heldOut: number[];
}

/** A fixed-seed shuffle of 0..n−1 cut at round(n·heldOutFraction); both parts keep at least one sample. */
export function splitIndices(n: number, heldOutFraction: number, seed: number): ItemSplit {
  if (n < 2) throw new InvalidInputError(`a goal needs at least 2 evaluation samples (one to search on, one to judge on); got ${n}`);
  const order = Array.from({ length: n }, (_, i) => i);
  const rand = seededRandom(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const held = Math.min(n - 1, Math.max(1, Math.round(n * heldOutFraction)));
  const asc = (a: number, b: number) => a - b;
  return { heldOut: order.slice(0, held).sort(asc), search: order.slice(held).sort(asc) };
}

/** The rows `indices` of the batches' concatenation, re-batched `batchSize` at a time. */
export function gatherRows(batches: readonly Feeds[], indices: readonly number[], batchSize: number): Feeds[] {
  // where each sample lives: batch and row
  const where: [number, number][] = [];
  batches.forEach((f, b) => {
    for (let r = 0; r < rowsOf(f); r++) where.push([b, r]);
  });
  const out: Feeds[] = [];
  for (let start = 0; start < indices.length; start += batchSize) {
    const chunk = indices.slice(start, start + batchSize).map((i) => {
      const w = where[i];
      if (!w) throw new RangeError(`sample ${i} is past the ${where.length} samples given`);
      return w;
    });
    const feeds: Feeds = {};
    for (const name of Object.keys(batches[0] ?? {})) {
      const first = batches[chunk[0]![0]]![name]!;
      const rowLen = first.dims.slice(1).reduce((a, d) => a * d, 1);
      const data = first.data as unknown as ArrayLike<unknown> & { constructor: new (n: number) => { set(a: ArrayLike<unknown>, o: number): void } };
      if (typeof (first.data as { subarray?: unknown }).subarray !== 'function') throw new InvalidInputError(`input '${name}' is not a numeric tensor: it cannot be split by sample`);
      const dst = new data.constructor(chunk.length * rowLen);
      chunk.forEach(([b, r], k) => {
        const src = batches[b]![name]!.data as unknown as { subarray(s: number, e: number): ArrayLike<unknown> };
        dst.set(src.subarray(r * rowLen, (r + 1) * rowLen), k * rowLen);
      });
      feeds[name] = new ort.Tensor(first.type as never, dst as never, [chunk.length, ...first.dims.slice(1)]);
    }
    out.push(feeds);
  }
  return out;
}

/** Labels of the samples `indices`, in that order. */
export function gatherLabels(labels: ArrayLike<number | bigint>, indices: readonly number[]): ArrayLike<number | bigint> {
  if (labels instanceof BigInt64Array) return BigInt64Array.from(indices, (i) => labels[i]!);
  return Float64Array.from(indices, (i) => Number(labels[i]!));
}

/** A content hash of data batches: the step cache keys and the calibration-vs-evaluation check use it. */
export function hashFeeds(batches: readonly Feeds[]): string {
  const h = createHash('sha256');
  for (const f of batches) {
    for (const [name, t] of Object.entries(f).sort(([a], [b]) => a.localeCompare(b))) {
      h.update(`${name}:${t.type}:${t.dims.join(',')};`);
      const d = t.data as unknown;
      if (ArrayBuffer.isView(d)) h.update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
      else h.update(JSON.stringify(d));
    }
  }
  return h.digest('hex');
}

/** Each item of `a` that also appears in `b`, by content: calibrating on judged samples is caught even in another file. */
export function sharedItems(a: readonly Feeds[], b: readonly Feeds[]): number {
  const keys = (batches: readonly Feeds[]) => {
    const out: string[] = [];
    for (const f of batches) {
      const n = rowsOf(f);
      for (let r = 0; r < n; r++) {
        const h = createHash('sha1');
        for (const [name, t] of Object.entries(f).sort(([x], [y]) => x.localeCompare(y))) {
          const d = t.data as unknown;
          if (!ArrayBuffer.isView(d)) continue;
          const bytesPerRow = d.byteLength / n;
          h.update(name).update(new Uint8Array(d.buffer, d.byteOffset + r * bytesPerRow, bytesPerRow));
        }
        out.push(h.digest('hex'));
      }
    }
    return out;
  };
  const inB = new Set(keys(b));
  return keys(a).filter((k) => inB.has(k)).length;
}
