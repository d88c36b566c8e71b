// Latency of a model in onnxruntime-node over a sweep of batch sizes, and side-by-side comparison
// of two models. On a 2-core machine two live sessions steal CPU from each other (spinning intra-op
// threads), so a comparison keeps one session alive at a time and alternates rounds A/B; the ratio
// is the median of per-round ratios, which cancels slow drifts of the machine.
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { InvalidInputError, throwIfAborted } from '../errors.js';
import { countParameters } from '../onnx/constants.js';
import { HINTS, assertTensorFits } from '../onnx/budget.js';
import { DataType as DT, dtypeFromOrtType, dtypeName } from '../onnx/dtypes.js';
import type { Model } from '../onnx/ir.js';
import {
  assertInputsFit,
  createSession,
  modelOf,
  pinForSessions,
  sizeOf,
  type PinnedSource,
  type ModelSource,
  ort,
  syntheticInputSpecs,
  syntheticInputs,
  type Feeds,
  type InputSpec,
  type SyntheticInputOptions,
} from '../runtime/ort.js';
import type { BenchmarkResult, Comparison, LatencyRatio, LatencyStats } from '../report/schema.js';
import { estimateMacs } from './macs.js';
import { DEFAULT_TIMING, planTiming, type TimingPlan } from './timing-plan.js';

export interface BenchmarkOptions {
  batchSizes?: number[];
  warmup?: number;
  runs?: number;
  /** 0 = onnxruntime's default (one thread per physical core). */
  intraOpThreads?: number;
  /** Shapes and values for synthetic inputs; `B` in a shape marks the batch dim. */
  inputs?: SyntheticInputOptions;
  /** User data: one batch of real inputs, resliced/tiled to each batch size. */
  data?: Feeds;
  /** Timing per step when warmup/runs/rounds are not given (default 60 s): they scale with the model's run time. */
  budgetSeconds?: number;
  /** Settings decided before (the pipeline plans once and times every step with the same plan). */
  plan?: TimingPlan;
  signal?: AbortSignal;
  onProgress?: (message: string) => void;
}

export interface CompareOptions extends BenchmarkOptions {
  /** Rounds per batch size; each round loads one model, warms it up, times it, releases it. */
  rounds?: number;
}

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const idx = (sorted.length - 1) * p;
  const lo = Math.floor(idx);
  const hi = Math.ceil(idx);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (idx - lo);
}

export function latencyStats(batch: number, warmup: number, times: readonly number[]): LatencyStats {
  const sorted = [...times].sort((a, b) => a - b);
  const mean = times.reduce((s, t) => s + t, 0) / times.length;
  const variance = times.reduce((s, t) => s + (t - mean) ** 2, 0) / Math.max(1, times.length - 1);
  const p50 = percentile(sorted, 0.5);
  return {
    batch,
    warmup,
    runs: times.length,
    meanMs: mean,
    p50Ms: p50,
    p90Ms: percentile(sorted, 0.9),
    p99Ms: percentile(sorted, 0.99),
    minMs: sorted[0]!,
    maxMs: sorted[sorted.length - 1]!,
    stdMs: Math.sqrt(variance),
    throughput: p50 > 0 ? (batch * 1000) / p50 : 0,
  };
}

/** The batch dimension: the first input's dim 0 (and every input dim sharing its symbolic name). */
export function batchInfo(model: Model): { dynamic: boolean; fixed: number | null; dimName: string | null } {
  const inits = new Set(model.graph.initializers);
  const first = model.graph.inputs.find((v) => !inits.has(v));
  const d0 = first?.shape?.[0];
  if (typeof d0 === 'number' && d0 > 0) return { dynamic: false, fixed: d0, dimName: null };
  return { dynamic: true, fixed: null, dimName: typeof d0 === 'string' && d0 ? d0 : null };
}

/** Inputs for one batch size: user data tiled/sliced along axis 0, or synthetic data. */
export function inputsForBatch(model: Model, batch: number, opts: BenchmarkOptions): Feeds {
  if (opts.data) return resizeBatch(opts.data, batch);
  return syntheticInputs(model, batchInputOptions(model, batch, opts));
}

/** Dtypes and shapes inputsForBatch would allocate, without allocating them. */
export function inputSpecsForBatch(model: Model, batch: number, opts: BenchmarkOptions): InputSpec[] {
  if (opts.data) {
    return Object.entries(opts.data).map(([name, t]) => ({ name, dtype: (dtypeFromOrtType(t.type) ?? DT.UNDEFINED) as DT, dims: [batch, ...t.dims.slice(1)] }));
  }
  return syntheticInputSpecs(model, batchInputOptions(model, batch, opts));
}

/**
 * Refuses a batch sweep whose largest inputs would be over the per-tensor budget, before the first
 * batch is timed (so a sweep does not run for minutes and then fail, or grow until killed).
 */
export function assertBatchesFit(model: Model, opts: BenchmarkOptions, sizes: readonly number[] = batchSizesFor(model, opts).sizes): void {
  for (const b of sizes) assertInputsFit(inputSpecsForBatch(model, b, opts), HINTS.batches, ` at batch ${b}`);
}

function batchInputOptions(model: Model, batch: number, opts: BenchmarkOptions): SyntheticInputOptions {
  const info = batchInfo(model);
  const base = opts.inputs ?? {};
  const inits = new Set(model.graph.initializers);
  const first = model.graph.inputs.find((v) => !inits.has(v));
  const shapes: Record<string, number[]> = {};
  for (const [name, given] of Object.entries(base.shapes ?? {})) {
    // NaN stands for a `B` in a user shape: the batch dim. Without one, a dynamic dim 0 of the
    // first input is the batch.
    const marked = given.some(Number.isNaN);
    shapes[name] = given.map((d, i) => (Number.isNaN(d) || (!marked && i === 0 && name === first?.name && info.dynamic) ? batch : d));
  }
  const dims = { ...(base.dims ?? {}), ...(info.dimName ? { [info.dimName]: batch } : {}) };
  return { ...base, shapes, dims, batch };
}

type NumericArray = Exclude<ort.Tensor['data'], string[]>;

/** Tiles (or cuts) user data along axis 0 to the requested batch size. */
function resizeBatch(feeds: Feeds, batch: number): Feeds {
  const out: Feeds = {};
  for (const [name, t] of Object.entries(feeds)) {
    if (Array.isArray(t.data)) throw new InvalidInputError(`input '${name}': string tensors cannot be benchmarked`);
    if (t.dims.length === 0 || t.dims[0] === 0) {
      out[name] = t; // a scalar or an empty tensor has no batch axis to resize
      continue;
    }
    const src = t.data as NumericArray;
    const n = Math.max(1, t.dims[0] ?? 1);
    const row = src.length / n;
    assertTensorFits(`input '${name}' at batch ${batch}`, t.type, [batch, ...t.dims.slice(1)], undefined, HINTS.batches);
    const data = new (src.constructor as new (len: number) => NumericArray)(row * batch);
    for (let i = 0; i < batch; i++) {
      const k = i % n;
      (data as Float32Array).set((src as Float32Array).subarray(k * row, (k + 1) * row), i * row);
    }
    out[name] = new ort.Tensor(t.type as 'float32', data as Float32Array, [batch, ...t.dims.slice(1)]);
  }
  return out;
}

/** A session of `source` and how long onnxruntime took to create it. */
async function openSession(source: ModelSource, threads: number): Promise<{ session: ort.InferenceSession; loadMs: number }> {
  const t0 = performance.now();
  const session = await createSession(source, { intraOpNumThreads: threads });
  return { session, loadMs: performance.now() - t0 };
}

/** Warms the session up on `feeds`, then times `runs` runs. */
async function timeRuns(session: ort.InferenceSession, feeds: Feeds, warmup: number, runs: number, signal?: AbortSignal): Promise<number[]> {
  try {
    for (let i = 0; i < warmup; i++) await session.run(feeds);
    const times: number[] = [];
    for (let i = 0; i < runs; i++) {
      throwIfAborted(signal);
      const t0 = performance.now();
      await session.run(feeds);
      times.push(performance.now() - t0);
    }
    return times;
  } catch (err) {
    if (err instanceof Error && /Got invalid dimensions|input|shape/i.test(err.message) && !(err instanceof InvalidInputError)) {
      throw new InvalidInputError(`the model does not run on the benchmark inputs (${err.message.split('\n')[0]}); fix input shapes with --shape name=B,3,224,224`, { cause: err });
    }
    throw err;
  }
}

/** Loads the model, times it on each of `feeds` in turn (warmup + runs each), releases it. */
async function timeSession(source: ModelSource, feeds: readonly Feeds[], warmup: number, runs: number, threads: number, signal?: AbortSignal): Promise<{ times: number[][]; loadMs: number }> {
  const { session, loadMs } = await openSession(source, threads);
  try {
    // largest inputs first: the arena grown for them serves the smaller ones, where growing it
    // smallest-first can keep blocks of every size
    const order = feeds.map((_, i) => i).sort((i, j) => feedBytes(feeds[j]!) - feedBytes(feeds[i]!));
    const times: number[][] = new Array(feeds.length);
    for (const i of order) times[i] = await timeRuns(session, feeds[i]!, warmup, runs, signal);
    return { times, loadMs };
  } finally {
    await session.release();
  }
}

function feedBytes(feeds: Feeds): number {
  return Object.values(feeds).reduce((sum, t) => sum + (t.data as ArrayBufferView).byteLength, 0);
}

function batchSizesFor(model: Model, opts: BenchmarkOptions): { sizes: number[]; fixed: number | null } {
  const info = batchInfo(model);
  if (!info.dynamic) return { sizes: [info.fixed!], fixed: info.fixed };
  return { sizes: opts.plan?.batchSizes ?? opts.batchSizes ?? [...DEFAULT_TIMING.batchSizes], fixed: null };
}

/** One run of the model at its smallest batch, timed after a first (allocating) run. */
export async function measureSingleRun(bytes: ModelSource, feeds: Feeds, threads = 0, signal?: AbortSignal): Promise<number> {
  return (await measureLoadAndRun(bytes, feeds, threads, signal)).runMs;
}

/** The time to create a session of the model, and of one run at its smallest batch after a first (allocating) one. */
export async function measureLoadAndRun(bytes: ModelSource, feeds: Feeds, threads = 0, signal?: AbortSignal): Promise<{ loadMs: number; runMs: number }> {
  const { times, loadMs } = await timeSession(bytes, [feeds], 1, 1, threads, signal);
  return { loadMs, runMs: times[0]![0]! };
}

/**
 * The settings to time `model` with: explicit ones as given; otherwise the defaults, scaled to the
 * budget from one measured run (see planTiming).
 */
export async function resolveTimingPlan(model: Model, bytes: ModelSource, opts: BenchmarkOptions & { rounds?: number }): Promise<TimingPlan> {
  if (opts.plan) return opts.plan;
  const { sizes, fixed } = batchSizesFor(model, opts);
  const request = {
    warmup: opts.warmup,
    runs: opts.runs,
    rounds: opts.rounds,
    batchSizes: fixed !== null ? sizes : opts.batchSizes,
    budgetSeconds: opts.budgetSeconds,
  };
  const explicit = opts.warmup !== undefined || opts.runs !== undefined || opts.rounds !== undefined;
  if (explicit) return planTiming(null, request);
  throwIfAborted(opts.signal);
  opts.onProgress?.('measuring one run to size the benchmark');
  const single = await measureLoadAndRun(bytes, inputsForBatch(model, sizes[0]!, opts), opts.intraOpThreads ?? 0, opts.signal);
  return { ...planTiming(single.runMs / sizes[0]!, request, single.loadMs), loadAverage: os.loadavg()[0]! };
}

export function describeInputs(feeds: Feeds): BenchmarkResult['inputs'] {
  return Object.entries(feeds).map(([name, t]) => ({ name, dtype: t.type, shape: [...t.dims] }));
}

export async function benchmarkModel(bytes: ModelSource, opts: BenchmarkOptions = {}): Promise<BenchmarkResult> {
  const model = modelOf(bytes);
  assertBatchesFit(model, opts);
  const threads = opts.intraOpThreads ?? 0;
  const latency: LatencyStats[] = [];
  const pinned = pinForSessions(bytes);
  let timing: TimingPlan;
  let sizes: number[];
  let fixed: number | null;
  let inputs: BenchmarkResult['inputs'];
  try {
    timing = await resolveTimingPlan(model, pinned.source, opts);
    const { warmup, runs } = timing;
    ({ sizes, fixed } = batchSizesFor(model, { ...opts, plan: timing }));
    const feeds = sizes.map((b) => inputsForBatch(model, b, opts));
    inputs = describeInputs(feeds[0]!);
    if (timing.sessionPerRound) {
      // a slow load (see sessionPerRound): one session times every batch size
      opts.onProgress?.(`batch sizes ${sizes.join(', ')}: ${warmup} warmup + ${runs} runs each, one session`);
      const { times } = await timeSession(pinned.source, feeds, warmup, runs, threads, opts.signal);
      sizes.forEach((b, i) => latency.push(latencyStats(b, warmup, times[i]!)));
    } else {
      for (const [i, b] of sizes.entries()) {
        throwIfAborted(opts.signal);
        opts.onProgress?.(`batch ${b}: ${warmup} warmup + ${runs} runs`);
        latency.push(latencyStats(b, warmup, (await timeSession(pinned.source, [feeds[i]!], warmup, runs, threads, opts.signal)).times[0]!));
      }
    }
  } finally {
    pinned.dispose();
  }
  return {
    sizeBytes: sizeOf(bytes),
    params: countParameters(model),
    macs: await estimateMacs(model, inputsForBatch(model, 1, opts)).catch(() => null),
    intraOpThreads: threads,
    batchSizes: sizes,
    fixedBatch: fixed,
    inputs,
    latency,
    timing,
  };
}

/**
 * b/a latency per batch size, measured side by side in rounds (A then B, then B then A, …), one live
 * session at a time. Each round loads a model once per batch size, or — when the plan says a load
 * costs more than the runs it serves (sessionPerRound in timing-plan.ts) — once for all of them.
 */
export async function compareModels(aSource: ModelSource, bSource: ModelSource, opts: CompareOptions = {}): Promise<Comparison> {
  const a = modelOf(aSource);
  const b = modelOf(bSource);
  assertBatchesFit(a, opts);
  // a model past 2 GB held in memory is written to disk once for all the sessions below, not once each
  const pinned: PinnedSource[] = [];
  try {
    const pinA = pinForSessions(aSource);
    pinned.push(pinA);
    const pinB = pinForSessions(bSource);
    pinned.push(pinB);
    const timing = await resolveTimingPlan(a, pinA.source, opts);
    // a fresh session pays its first-run costs again: each round warms its session up
    const { rounds, warmupPerRound: warmPerRound, runsPerRound: perRound } = timing;
    const threads = opts.intraOpThreads ?? 0;
    const { sizes } = batchSizesFor(a, { ...opts, plan: timing });
    const same = sameInterface(a, b);
    if (!same) assertBatchesFit(b, opts, sizes);
    const feeds = sizes.map((batch) => {
      const fa = inputsForBatch(a, batch, opts);
      return { a: fa, b: same ? fa : inputsForBatch(b, batch, opts) };
    });
    const measured = sizes.map(() => ({ a: [] as number[], b: [] as number[], ratios: [] as number[] }));
    // round r over the batch sizes at `at`: each model loaded once, A first in even rounds
    const round = async (r: number, at: readonly number[]) => {
      throwIfAborted(opts.signal);
      // alternate who goes first so neither model always gets the warmer machine
      const order = r % 2 === 0 ? (['a', 'b'] as const) : (['b', 'a'] as const);
      const got: Record<'a' | 'b', number[][]> = { a: [], b: [] };
      for (const who of order) {
        const source = who === 'a' ? pinA.source : pinB.source;
        got[who] = (await timeSession(source, at.map((i) => feeds[i]![who]), warmPerRound, perRound, threads, opts.signal)).times;
      }
      at.forEach((i, k) => {
        measured[i]!.a.push(...got.a[k]!);
        measured[i]!.b.push(...got.b[k]!);
        measured[i]!.ratios.push(median(got.b[k]!) / median(got.a[k]!));
      });
    };
    if (timing.sessionPerRound) {
      const all = sizes.map((_, i) => i);
      for (let r = 0; r < rounds; r++) {
        opts.onProgress?.(`round ${r + 1}/${rounds}: batch sizes ${sizes.join(', ')}`);
        await round(r, all);
      }
    } else {
      for (const [i, batch] of sizes.entries()) {
        for (let r = 0; r < rounds; r++) {
          opts.onProgress?.(`batch ${batch}: round ${r + 1}/${rounds}`);
          await round(r, [i]);
        }
      }
    }
    const ratios: LatencyRatio[] = sizes.map((batch, i) => ({
      batch,
      ...summarizeRoundRatios(measured[i]!.ratios),
      rounds,
      a: latencyStats(batch, warmPerRound * rounds, measured[i]!.a),
      b: latencyStats(batch, warmPerRound * rounds, measured[i]!.b),
    }));
    return { intraOpThreads: threads, ratios, timing };
  } finally {
    for (const p of pinned) p.dispose();
  }
}

/**
 * b/a from per-round ratios: the median, its 10th–90th percentile spread, and a verdict that is
 * `faster`/`slower` only when the whole spread is on one side of 1.
 */
export function summarizeRoundRatios(roundRatios: readonly number[]): Pick<LatencyRatio, 'ratio' | 'low' | 'high' | 'verdict'> {
  const sorted = [...roundRatios].sort((x, y) => x - y);
  const low = percentile(sorted, 0.1);
  const high = percentile(sorted, 0.9);
  return { ratio: percentile(sorted, 0.5), low, high, verdict: high < 1 ? 'faster' : low > 1 ? 'slower' : 'no gain' };
}

function median(xs: readonly number[]): number {
  return percentile([...xs].sort((x, y) => x - y), 0.5);
}

/** Same input names, dtypes and declared shapes: the same feeds fit both models. */
function sameInterface(a: Model, b: Model): boolean {
  const sig = (m: Model) => JSON.stringify(m.graph.inputs.filter((v) => !v.initializer).map((v) => [v.name, dtypeName(v.elemType ?? 0), v.shape]));
  return sig(a) === sig(b);
}

export function defaultThreads(): number {
  return os.cpus().length;
}
