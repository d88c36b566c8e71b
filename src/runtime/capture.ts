// Intermediate values of a model as onnxruntime computes them: the analysis half of every
// data-driven pass (calibration ranges, per-layer SQNR, activation importance, least-squares
// recovery). The requested values are exposed as extra graph outputs, so onnxruntime holds all of
// one run's at once (and hands over a copy): every activation of ResNet-50 at batch 8 is 0.8 GB,
// which peaked at 3.7 GB. So the values are split into groups whose bytes per batch stay under a
// budget, and each group is one session that computes only what its values need, released before
// the next.
import { InvalidInputError } from '../errors.js';
import { tensorBytes } from '../onnx/budget.js';
import type { Model, Node, Value } from '../onnx/ir.js';
import { dtypeFromOrtType, type DataType as DT } from '../onnx/dtypes.js';
import { createSessionForValues, runTensorOutputs, type Feeds, type SessionOptions, type ort } from './ort.js';

/** Overrides CAPTURE_BYTES: decimal megabytes, like MODELPRESS_MAX_TENSOR_MB. */
export const CAPTURE_BYTES_ENV = 'MODELPRESS_CAPTURE_MB';

/**
 * Bytes of captured values one run may return. ResNet-50 static int8 at batch 8 (bench/scale.md's
 * resnet50-int8-static) peaked at 3.70 GB with its 0.8 GB of activations per batch in one group,
 * and at 1.43 GB at 256 MB, for 17% more CPU time (each group's session recomputes its prefix).
 */
export const CAPTURE_BYTES = 256e6;

export function captureBytes(): number {
  const raw = process.env[CAPTURE_BYTES_ENV];
  if (raw === undefined || raw.trim() === '') return CAPTURE_BYTES;
  const mb = Number(raw);
  if (!Number.isFinite(mb) || mb <= 0) throw new InvalidInputError(`${CAPTURE_BYTES_ENV} must be a positive number of megabytes, got '${raw}'`);
  return Math.floor(mb * 1e6);
}

/** What to capture: values, and sets of values that must arrive in the same callback. */
export type CaptureRequest = readonly (Value | readonly Value[])[];

export interface CaptureOptions {
  /** Graph optimizations off by default so that no requested value is fused away. */
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  signal?: AbortSignal;
  /** Times every group runs over all batches (calibration: min/max, then histograms within them). Default 1. */
  sweeps?: number;
  /** Bytes of captured values per batch and group; default captureBytes(). */
  budgetBytes?: number;
}

/** One session computing just `values`; graph inputs among them come from the feeds. */
export class CaptureSession {
  private constructor(
    readonly values: readonly Value[],
    private readonly session: ort.InferenceSession | undefined,
  ) {}

  static async open(model: Model, values: readonly Value[], opts: SessionOptions = {}): Promise<CaptureSession> {
    const inputs = new Set(model.graph.inputs);
    const computed = values.filter((v) => !inputs.has(v));
    return new CaptureSession(values, computed.length > 0 ? await createSessionForValues(model, computed, opts) : undefined);
  }

  /** What onnxruntime's shape inference knows of each computed value (names, types, shapes with symbolic dims). */
  get metadata(): readonly ort.InferenceSession.ValueMetadata[] {
    return this.session?.outputMetadata ?? [];
  }

  async run(feeds: Feeds): Promise<Map<Value, ort.Tensor>> {
    const results = this.session ? await runTensorOutputs(this.session, feeds) : {};
    const out = new Map<Value, ort.Tensor>();
    for (const v of this.values) {
      const t = results[v.name] ?? feeds[v.name];
      if (t) out.set(v, t);
    }
    return out;
  }

  /** Only `values` (tensors among this session's values): the others are not handed back. */
  async runFor(feeds: Feeds, values: readonly Value[]): Promise<Map<Value, ort.Tensor>> {
    const tensors = new Set(this.metadata.filter((m) => m.isTensor).map((m) => m.name));
    const names = values.filter((v) => tensors.has(v.name)).map((v) => v.name);
    const results = this.session && names.length > 0 ? await this.session.run(feeds, names) : {};
    const out = new Map<Value, ort.Tensor>();
    for (const v of values) {
      const t = results[v.name] ?? feeds[v.name];
      if (t) out.set(v, t);
    }
    return out;
  }

  async release(): Promise<void> {
    await this.session?.release();
  }
}

/** The requested values as disjoint sets (sets sharing a value are merged), each value checked. */
function valueSets(model: Model, request: CaptureRequest): Value[][] {
  const g = model.graph;
  const inputs = new Set(g.inputs);
  const initializers = new Set(g.initializers);
  const setOf = new Map<Value, Set<Value>>();
  for (const item of request) {
    const merged = new Set<Value>();
    for (const v of Array.isArray(item) ? (item as readonly Value[]) : [item as Value]) {
      if (!inputs.has(v) && !initializers.has(v) && v.producer?.graph !== g) {
        throw new InvalidInputError(`cannot capture '${v.name}': it is not computed in the main graph`);
      }
      for (const w of setOf.get(v) ?? [v]) merged.add(w);
    }
    for (const v of merged) setOf.set(v, merged);
  }
  return [...new Set(setOf.values())].map((s) => [...s]);
}

type Metadata = readonly ort.InferenceSession.ValueMetadata[];

/**
 * Dtype and dims of the values onnxruntime's shape inference fully knows, by name: symbolic dims
 * take the largest size the feeds give them. An empty shape is a scalar or a value of unknown rank
 * (onnxruntime reports both so): taken as a scalar with `emptyIsScalar` (sizing, where an unknown
 * rank is rare and a scalar common), otherwise left out.
 */
function inferredShapes(model: Model, feedList: readonly Feeds[], metadata: Metadata, emptyIsScalar: boolean): Map<string, { type: ort.Tensor.Type; dims: number[] }> {
  const symbols = new Map<string, number>();
  for (const feeds of feedList) {
    for (const v of model.graph.inputs) {
      feeds[v.name]?.dims.forEach((d, axis) => {
        const name = v.shape?.[axis];
        if (typeof name === 'string' && name) symbols.set(name, Math.max(symbols.get(name) ?? 0, d));
      });
    }
  }
  const known = new Map<string, { type: ort.Tensor.Type; dims: number[] }>();
  for (const m of metadata) {
    if (!m.isTensor || (m.shape.length === 0 && !emptyIsScalar)) continue;
    const dims = m.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : typeof d === 'string' ? symbols.get(d) : undefined));
    if (dims.every((d) => d !== undefined)) known.set(m.name, { type: m.type, dims: dims as number[] });
  }
  return known;
}

/** Per-batch bytes of the values whose shapes inference fully knows, by name. */
function knownBytes(model: Model, feedList: readonly Feeds[], metadata: Metadata): Map<string, number> {
  return new Map([...inferredShapes(model, feedList, metadata, true)].map(([name, s]) => [name, tensorBytes(s.type, s.dims)]));
}

/**
 * Per-batch bytes of every value: known ones from `known`; one with dims inference left open (a
 * Reshape to a computed shape, as in exported transformers) as large as the largest input of the
 * node computing it, itself known or estimated so, graph inputs as their largest feed.
 */
function estimatedBytes(model: Model, feedList: readonly Feeds[], known: ReadonlyMap<string, number>): (v: Value) => number {
  const g = model.graph;
  const bytes = new Map<Value, number>();
  for (const v of g.inputs) bytes.set(v, Math.max(0, ...feedList.map((f) => (f[v.name] ? tensorBytes(f[v.name]!.type, f[v.name]!.dims) : 0))));
  const inits = new Set(g.initializers);
  const largestInput = Math.max(0, ...bytes.values());
  for (const n of g.nodes) {
    const from = n.inputs.filter((v): v is Value => !!v && !inits.has(v) && bytes.has(v)).map((v) => bytes.get(v)!);
    const estimate = from.length > 0 ? Math.max(...from) : largestInput;
    for (const v of n.outputs) if (v) bytes.set(v, known.get(v.name) ?? estimate);
  }
  return (v) => known.get(v.name) ?? bytes.get(v) ?? largestInput;
}

/**
 * Packs the sets, in graph order, into groups of at most `budget` bytes per batch (a set larger
 * than the budget is a group of its own). Graph order keeps each group's session a short prefix
 * of the model where it can.
 */
function packGroups(model: Model, sets: Value[][], bytes: (v: Value) => number, budget: number): Value[][] {
  const position = new Map<Node, number>(model.graph.nodes.map((n, i) => [n, i]));
  const last = (set: Value[]) => Math.max(-1, ...set.map((v) => (v.producer ? (position.get(v.producer) ?? -1) : -1)));
  const inputs = new Set(model.graph.inputs); // they come from the feeds
  const cost = (set: Value[]) => set.reduce((s, v) => s + (inputs.has(v) ? 0 : bytes(v)), 0);
  const ordered = sets.map((set) => ({ set, at: last(set), bytes: cost(set) })).sort((a, b) => a.at - b.at);
  const groups: Value[][] = [];
  let current: Value[] = [];
  let used = 0;
  for (const { set, bytes: b } of ordered) {
    if (current.length > 0 && used + b > budget) {
      groups.push(current);
      current = [];
      used = 0;
    }
    current.push(...set);
    used += b;
  }
  if (current.length > 0) groups.push(current);
  return groups;
}

export interface CapturePlan {
  groups: Value[][];
  /** The session of the only group, already open (undefined when there are several): the caller releases it. */
  session: CaptureSession | undefined;
}

/**
 * Splits a capture into groups under the budget. Sizes come from onnxruntime's shape inference on
 * a session for all the values (loading it allocates no activations), which is kept when
 * everything fits in one group; only when it leaves dims open is a second session, exposing every
 * value of the model, loaded to estimate them from their inputs. A single set needs no plan.
 */
export async function planCapture(model: Model, feedList: readonly Feeds[], request: CaptureRequest, opts: CaptureOptions = {}): Promise<CapturePlan> {
  const sets = valueSets(model, request);
  const sessionOpts = { graphOptimizationLevel: opts.graphOptimizationLevel ?? 'disabled' } as const;
  const whole = await CaptureSession.open(model, sets.flat(), sessionOpts);
  if (sets.length <= 1) return { groups: sets, session: whole };
  let groups: Value[][];
  try {
    const inputs = new Set(model.graph.inputs);
    let known = knownBytes(model, feedList, whole.metadata);
    if (sets.some((set) => set.some((v) => !inputs.has(v) && !known.has(v.name)))) {
      const every = await CaptureSession.open(model, computedValues(model), sessionOpts);
      try {
        known = knownBytes(model, feedList, every.metadata);
      } finally {
        await every.release();
      }
    }
    groups = packGroups(model, sets, estimatedBytes(model, feedList, known), opts.budgetBytes ?? captureBytes());
  } catch (err) {
    await whole.release();
    throw err;
  }
  if (groups.length <= 1) return { groups, session: whole };
  await whole.release();
  return { groups, session: undefined };
}

/**
 * Runs the model on every batch of `feedList` and hands the requested values to `onBatch`, one
 * group and one batch at a time, so memory stays bounded by the budget: accumulate statistics in
 * the callback rather than keeping tensors. A batch index comes once per group (and sweep), with
 * that group's values only; each value sees batches 0, 1, … in order, every batch of a sweep
 * before the next sweep; the values of one set in `request` always arrive together.
 */
export async function forEachCapture(
  model: Model,
  feedList: Feeds[],
  request: CaptureRequest,
  onBatch: (captured: Map<Value, ort.Tensor>, batchIndex: number, feeds: Feeds, sweep: number) => void | Promise<void>,
  opts: CaptureOptions = {},
): Promise<void> {
  if (feedList.length === 0 || request.length === 0) return;
  const plan = await planCapture(model, feedList, request, opts);
  const sessionOpts = { graphOptimizationLevel: opts.graphOptimizationLevel ?? 'disabled' };
  for (const group of plan.groups) {
    const session = plan.session ?? (await CaptureSession.open(model, group, sessionOpts));
    try {
      for (let sweep = 0; sweep < (opts.sweeps ?? 1); sweep++) {
        for (let b = 0; b < feedList.length; b++) {
          if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('aborted');
          const feeds = feedList[b]!;
          await onBatch(await session.run(feeds), b, feeds, sweep);
        }
      }
    } finally {
      await session.release();
    }
  }
}

/** Convenience for small captures: every batch's tensors of the requested values, in batch order. */
export async function captureValues(model: Model, feedList: Feeds[], values: Value[], opts: CaptureOptions = {}): Promise<Map<Value, ort.Tensor[]>> {
  const out = new Map<Value, ort.Tensor[]>(values.map((v) => [v, []]));
  await forEachCapture(model, feedList, values, (captured) => {
    for (const [v, t] of captured) out.get(v)?.push(t);
  }, opts);
  return out;
}

export interface DiscoveredValue {
  dtype: DT | undefined;
  dims: number[];
  /** Largest |x| over all runs (float values only; Infinity if any run overflowed, NaN kept out). */
  maxAbs?: number;
}

/**
 * What onnxruntime tells about every intermediate value of the main graph (and the outputs): the
 * model is run with all of them captured, group by group (graph optimizations off so nothing is
 * fused away).
 */
export async function discoverValues(model: Model, feedList: Feeds | Feeds[], values: readonly Value[] = computedValues(model)): Promise<Map<Value, DiscoveredValue>> {
  const runs = Array.isArray(feedList) ? feedList : [feedList];
  const out = new Map<Value, DiscoveredValue>();
  const note = (v: Value, t: ort.Tensor) => {
    const seen = out.get(v) ?? { dtype: dtypeFromOrtType(t.type), dims: [...t.dims] };
    if (t.type === 'float32' || t.type === 'float64') seen.maxAbs = Math.max(seen.maxAbs ?? 0, maxAbsOf(t.data as Float32Array));
    out.set(v, seen);
  };
  await forEachCapture(model, runs, values, (captured) => {
    for (const [v, t] of captured) note(v, t);
  });
  // the graph inputs as the feeds give them (a stem layer reads one: the Tucker speed check needs its shape)
  for (const feeds of runs) for (const v of model.graph.inputs) if (feeds[v.name]) note(v, feeds[v.name]!);
  return out;
}

function maxAbsOf(data: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < data.length; i++) {
    const a = Math.abs(data[i]!);
    if (a > m) m = a;
  }
  return m;
}

/** The outputs and every value a node of the main graph computes. */
function computedValues(model: Model): Value[] {
  return [...new Set([...model.graph.outputs, ...model.graph.nodes.flatMap((n) => n.outputs.filter((v): v is Value => !!v))])];
}

/**
 * Dtype and dims of every computed value on these feeds, for analyses that need shapes only
 * (channel rules, MACs): from onnxruntime's shape inference, without running the model; only
 * the values it leaves open are captured (discoverValues).
 */
export async function discoverShapes(model: Model, feeds: Feeds): Promise<Map<Value, DiscoveredValue>> {
  const values = computedValues(model);
  // one session exposing every value: its metadata sizes most of them, and it runs for the rest
  // (in groups under the capture budget), so the model is loaded once
  const session = await CaptureSession.open(model, values, { graphOptimizationLevel: 'disabled' });
  const out = new Map<Value, DiscoveredValue>();
  try {
    const inferred = inferredShapes(model, [feeds], session.metadata, false);
    const open: Value[] = [];
    for (const v of values) {
      const s = inferred.get(v.name);
      if (s) out.set(v, { dtype: dtypeFromOrtType(s.type), dims: s.dims });
      else open.push(v);
    }
    if (open.length > 0) {
      const bytes = estimatedBytes(model, [feeds], knownBytes(model, [feeds], session.metadata));
      for (const group of packGroups(model, open.map((v) => [v]), bytes, captureBytes())) {
        for (const [v, t] of await session.runFor(feeds, group)) out.set(v, { dtype: dtypeFromOrtType(t.type), dims: [...t.dims] });
      }
    }
  } finally {
    await session.release();
  }
  for (const v of model.graph.inputs) {
    const t = feeds[v.name];
    if (t) out.set(v, { dtype: dtypeFromOrtType(t.type), dims: [...t.dims] });
  }
  return out;
}
