// Where does the time go? Per-kernel latency from onnxruntime's profiler, mapped back to graph nodes
// and aggregated per node, per op type and per block, next to each block's share of parameters.
//
// How ORT names kernels (1.30, CPU EP), which the mapping below undoes:
//   - unoptimized: `<node name>_kernel_time`
//   - fusions keep a node's name plus a suffix: `<node>/LayerNormFusion/`, `<node>/MatmulTransposeFusion/`
//   - NCHWc convs are named after an *output value*: `<value>_nchwc` (for Conv+BN+Relu the Relu's output)
//   - inserted nodes get fresh names: `ReorderInput_token_11`, `ReorderOutput`
//   - inlined subgraph nodes may carry an `…__Inline_N__` prefix (spox writes such names into
//     models; kernels are tried with and without it)
//   - control-flow kernels (If/Loop/Scan) enclose their subgraph's kernels in time
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { InvalidInputError, ModelpressError } from '../errors.js';
import { getConstant, isParameterType, allConstants } from '../onnx/constants.js';
import type { Model, Node, Value } from '../onnx/ir.js';
import { elementCount, tensorDims } from '../onnx/tensor-data.js';
import { WEIGHT_LAYERS } from '../onnx/weight-layers.js';
import type { ProfileEntry, ProfileReport } from '../report/schema.js';
import { createSession, type Feeds } from '../runtime/ort.js';
import { formatMs, formatPercent } from '../format.js';

export interface ProfileOptions {
  /** Timed runs (default 32). */
  runs?: number;
  /** Untimed runs first, dropped from the trace (default 10). */
  warmup?: number;
  /** Module depth of a block for hierarchical node names (default 2). */
  depth?: number;
  /** 0 / undefined = onnxruntime's default. */
  intraOpThreads?: number;
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
}

/** One kernel execution of a timed run; `us` is self time (nested subgraph kernels subtracted). */
export interface Kernel {
  /** ORT's node name (without `_kernel_time`). */
  name: string;
  /** ORT's op_name: the kernel that actually ran (FusedConv, QuickGelu, ReorderInput…). */
  opType: string;
  us: number;
  run: number;
}

export async function profileModel(model: Model, feeds: Feeds, opts: ProfileOptions = {}): Promise<ProfileReport> {
  const runs = opts.runs ?? 32;
  const warmup = opts.warmup ?? 10;
  const depth = opts.depth ?? 2;
  if (!Number.isInteger(runs) || runs < 1) throw new InvalidInputError(`profile: runs must be an integer ≥ 1, got ${runs}`);
  if (!Number.isInteger(warmup) || warmup < 0) throw new InvalidInputError(`profile: warmup must be an integer ≥ 0, got ${warmup}`);
  if (!Number.isInteger(depth) || depth < 1) throw new InvalidInputError(`profile: depth must be an integer ≥ 1, got ${depth}`);

  // A private copy: naming nodes must not touch the caller's model.
  const { model: copy } = model.clone();
  nameUnnamedNodes(copy);

  const dir = mkdtempSync(join(os.tmpdir(), 'modelpress-profile-'));
  try {
    const session = await createSession(copy, {
      intraOpNumThreads: opts.intraOpThreads ?? 0,
      graphOptimizationLevel: opts.graphOptimizationLevel ?? 'all',
      enableProfiling: true,
      profileFilePrefix: join(dir, 'ort'),
    });
    try {
      for (let i = 0; i < warmup + runs; i++) await session.run(feeds);
      session.endProfiling();
    } finally {
      await session.release();
    }
    const file = readdirSync(dir).find((f) => f.endsWith('.json'));
    if (!file) throw new ModelpressError('internal', 'onnxruntime wrote no profile trace');
    const trace: unknown = JSON.parse(readFileSync(join(dir, file), 'utf8'));
    const parsed = kernelsFromTrace(trace, warmup);
    return summarizeProfile(copy, parsed.kernels, parsed.runs, { depth, batch: batchOf(copy, feeds) });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function batchOf(model: Model, feeds: Feeds): number {
  const first = model.graph.inputs.find((v) => feeds[v.name]) ?? null;
  const t = first ? feeds[first.name] : Object.values(feeds)[0];
  return t && t.dims.length > 0 ? Number(t.dims[0]) : 1;
}

/**
 * Gives every unnamed node (all graphs) a unique name from its first output value, so kernels map
 * back to nodes and hierarchical value names (`/enc/conv/Conv_output_0`) still say where it lives.
 */
export function nameUnnamedNodes(model: Model): number {
  let named = 0;
  for (const n of model.graph.walkNodes()) {
    if (n.name) continue;
    n.name = model.uniqueNodeName(n.outputs.find((v) => v)?.name ?? n.opType);
    named++;
  }
  return named;
}

// ------------------------------------------------------------------ trace

interface TraceEvent {
  cat?: string;
  name?: string;
  ph?: string;
  ts?: number;
  dur?: number;
  tid?: number;
  args?: { op_name?: string };
}

/**
 * Kernel events of the timed runs. Runs are the `model_run` session events (one per
 * session.run, in order); the first `warmup` of them and every kernel inside them are dropped.
 */
export function kernelsFromTrace(trace: unknown, warmup: number): { kernels: Kernel[]; runs: number } {
  if (!Array.isArray(trace)) throw new ModelpressError('internal', 'onnxruntime profile trace is not a JSON array');
  const events = trace as TraceEvent[];
  let marks = events.filter((e) => e.cat === 'Session' && e.name === 'model_run');
  if (marks.length === 0) marks = events.filter((e) => e.cat === 'Session' && e.name === 'SequentialExecutor::Execute');
  marks.sort((a, b) => a.ts! - b.ts!);
  const timed = marks.slice(warmup);
  if (timed.length === 0) throw new ModelpressError('internal', `onnxruntime profile trace has ${marks.length} runs, none after ${warmup} warmup runs`);

  type Ev = { name: string; opType: string; ts: number; dur: number; self: number; tid: number; run: number };
  const evs: Ev[] = [];
  for (const e of events) {
    if (e.cat !== 'Node' || typeof e.name !== 'string' || !e.name.endsWith('_kernel_time')) continue;
    const ts = e.ts ?? 0;
    const run = timed.findIndex((m) => ts >= m.ts! && ts <= m.ts! + (m.dur ?? 0));
    if (run < 0) continue; // warmup (or outside any run)
    const name = e.name.slice(0, -'_kernel_time'.length);
    const dur = e.dur ?? 0;
    evs.push({ name, opType: e.args?.op_name ?? 'unknown', ts, dur, self: dur, tid: e.tid ?? 0, run });
  }
  // Self time: a control-flow kernel's interval contains its subgraph's kernels (same thread).
  // Subtracting direct children keeps every microsecond counted exactly once.
  evs.sort((a, b) => a.tid - b.tid || a.ts - b.ts || b.dur - a.dur);
  const stack: Ev[] = [];
  for (const e of evs) {
    while (stack.length > 0) {
      const top = stack[stack.length - 1]!;
      if (top.tid === e.tid && e.ts >= top.ts && e.ts < top.ts + top.dur) break;
      stack.pop();
    }
    const parent = stack[stack.length - 1];
    if (parent) parent.self -= e.dur;
    stack.push(e);
  }
  const kernels = evs.map((e) => ({ name: e.name, opType: e.opType, us: Math.max(0, e.self), run: e.run }));
  return { kernels, runs: timed.length };
}

// ------------------------------------------------------------------ mapping kernels to nodes

const isCompute = (n: Node): boolean => !(n.opType === 'Constant' && n.domain === '');

/** Suffixes ORT appends to a node (or value) name when it rewrites the node. */
const SUFFIXES = [/\/[A-Za-z0-9]*Fusion\/?$/, /_nchwc$/, /_token_\d+$/, /\/$/];
const BOUNDARY = /[/_.:-]/;

class NodeResolver {
  private byName = new Map<string, Node>();
  private producerOf = new Map<string, Node>();
  private opTypes = new Set<string>();
  private names: string[];
  private cache = new Map<string, Node | null>();

  constructor(nodes: Node[]) {
    for (const n of nodes) {
      if (n.name && !this.byName.has(n.name)) this.byName.set(n.name, n);
      for (const v of n.outputs) if (v && !this.producerOf.has(v.name)) this.producerOf.set(v.name, n);
      this.opTypes.add(n.opType);
    }
    // longest first, so prefix matching prefers the most specific name
    this.names = [...new Set([...this.byName.keys(), ...this.producerOf.keys()])].sort((a, b) => b.length - a.length);
  }

  resolve(ortName: string, opType: string): Node | null {
    const key = `${ortName}\u0000${opType}`;
    if (!this.cache.has(key)) this.cache.set(key, this.correctOp(this.find(ortName), opType));
    return this.cache.get(key)!;
  }

  private lookup(name: string, valueFirst = false): Node | undefined {
    return valueFirst ? (this.producerOf.get(name) ?? this.byName.get(name)) : (this.byName.get(name) ?? this.producerOf.get(name));
  }

  private find(ortName: string): Node | null {
    // exact, then known suffixes stripped one at a time, then the longest name that is a prefix;
    // each also without an `…__Inline_N__` prefix
    const inlined = ortName.replace(/^.*__Inline_\d+__/, '');
    const bases = inlined === ortName ? [ortName] : [ortName, inlined];
    for (const base of bases) {
      for (let name = base, valueFirst = false; ; ) {
        const hit = this.lookup(name, valueFirst);
        if (hit) return hit;
        const next = SUFFIXES.reduce((s, re) => (s === name ? s.replace(re, '') : s), name);
        if (next === name || next === '') break;
        valueFirst = name.endsWith('_nchwc'); // NCHWc kernels are named after an output value
        name = next;
      }
    }
    for (const base of bases) {
      for (const cand of this.names) {
        if (cand.length >= 2 && base.length > cand.length && base.startsWith(cand) && BOUNDARY.test(base[cand.length]!)) return this.lookup(cand)!;
      }
    }
    return null;
  }

  /**
   * A fused kernel named after the last node of its chain (NCHWc Conv+BN+Relu is named after the
   * Relu's output): charge it to the nearest upstream node of the kernel's own op type.
   */
  private correctOp(node: Node | null, opType: string): Node | null {
    if (!node) return null;
    const base = opType.replace(/^Fused/, '');
    if (node.opType === base || !this.opTypes.has(base)) return node;
    let frontier: Node[] = [node];
    const seen = new Set<Node>(frontier);
    for (let step = 0; step < 4 && frontier.length > 0; step++) {
      const next: Node[] = [];
      for (const n of frontier) {
        for (const v of n.inputs) {
          const p = v?.producer;
          if (!p || !isCompute(p) || seen.has(p)) continue;
          if (p.opType === base) return p;
          seen.add(p);
          next.push(p);
        }
      }
      frontier = next;
    }
    return node;
  }
}

// ------------------------------------------------------------------ blocks

/** Ops that make a layer: they carry the weights a flat-named model is built around (the weight layers, recurrent cells, attention). */
const LAYER_OPS = new Set([...Object.keys(WEIGHT_LAYERS), 'LSTM', 'GRU', 'RNN', 'DynamicQuantizeLSTM', 'Attention', 'MultiHeadAttention']);

/** Module path of a hierarchical name (`/enc/l1/conv/Conv` → `/enc/l1` at depth 2); null for flat names. */
export function hierarchicalBlock(name: string, depth: number): string | null {
  if (!name.includes('/')) return null;
  const segs = name.split('/').filter((s) => s.length > 0);
  const path = segs.slice(0, -1).slice(0, depth);
  if (path.length === 0) return '/'; // ops of the top-level module
  return (name.startsWith('/') ? '/' : '') + path.join('/');
}

/**
 * Block of every compute node.
 *
 * Hierarchical names (most nodes' names contain '/', as the PyTorch exporter writes them): the
 * module path cut at `depth`; a flat-named node goes to the root '/'.
 *
 * Flat names (PP-OCR's `p2o.Conv.0`, tf2onnx's `conv2d_3`): names carry no structure, so blocks
 * come from the graph itself. In graph (topological) order, each layer — a Conv/MatMul/Gemm/RNN
 * node fed by a weight — opens a block named after that node, and the nodes that follow (its
 * BatchNorm, activation, residual Add, attention glue…) join it until the next layer. This is
 * what one would compress (the layer) plus the work it drags along, it is stable for a given file,
 * and the block name is a real node name. `depth` does not apply here.
 *
 * In both cases weight-only nodes (DequantizeLinear/Cast/Transpose of constants) join the block of
 * their first consumer, and subgraph nodes without a block of their own join their If/Loop's block.
 */
export function assignBlocks(model: Model, depth: number): { blockOf: Map<Node, string>; hierarchical: boolean } {
  const all = [...model.graph.walkNodes()].filter(isCompute);
  const hierarchical = all.length > 0 && all.filter((n) => n.name.includes('/')).length * 2 >= all.length;

  const constDerived = new Set<Node>();
  const isConstLike = (v: Value | null): boolean => !v || !!getConstant(v) || (!!v.producer && constDerived.has(v.producer));
  for (const n of all) if (n.inputs.some((v) => v) && n.inputs.every(isConstLike) && n.subgraphs().length === 0) constDerived.add(n);

  const own = new Map<Node, string>();
  if (hierarchical) {
    for (const n of all) {
      const b = hierarchicalBlock(n.name, depth);
      if (b !== null) own.set(n, b);
    }
  } else {
    let current: string | null = null;
    for (const n of model.graph.nodes) {
      if (!isCompute(n) || constDerived.has(n)) continue;
      const isLayer = LAYER_OPS.has(n.opType) && n.inputs.some((v) => v && isConstLike(v));
      if (isLayer || current === null) current = n.name;
      own.set(n, current);
    }
  }

  const blockOf = new Map<Node, string>();
  const visiting = new Set<Node>();
  const blockFor = (n: Node): string => {
    const known = blockOf.get(n) ?? own.get(n);
    if (known !== undefined) return known;
    if (visiting.has(n)) return hierarchical ? '/' : n.name;
    visiting.add(n);
    let b: string | undefined;
    if (constDerived.has(n)) {
      const consumer = n.outputs.flatMap((v) => v?.consumers ?? []).find(isCompute);
      if (consumer) b = blockFor(consumer);
    }
    if (b === undefined && n.graph.ownerNode) b = blockFor(n.graph.ownerNode);
    b ??= hierarchical && n.graph.ownerNode === null ? '/' : n.name;
    visiting.delete(n);
    blockOf.set(n, b);
    return b;
  };
  for (const n of all) blockOf.set(n, blockFor(n));
  return { blockOf, hierarchical };
}

// ------------------------------------------------------------------ aggregation

interface Acc {
  us: number;
  calls: number;
  opUs: Map<string, number>;
}

function add(map: Map<string, Acc>, key: string, us: number, opType: string): void {
  let a = map.get(key);
  if (!a) map.set(key, (a = { us: 0, calls: 0, opUs: new Map() }));
  a.us += us;
  a.calls++;
  a.opUs.set(opType, (a.opUs.get(opType) ?? 0) + us);
}

function mainOp(a: Acc): string {
  let best = '';
  let bestUs = -1;
  for (const [op, us] of a.opUs) if (us > bestUs) [best, bestUs] = [op, us];
  return best;
}

const UNCONSUMED = '(unconsumed constants)';

/**
 * Aggregates kernels of `runs` timed runs. `model` must be the model that was profiled (nodes
 * already named). Kernels that map to no node stay under their ORT name in byNode; in byBlock
 * they go under that name minus `_token_N` (so all `ReorderInput_token_*` form one block).
 */
export function summarizeProfile(model: Model, kernels: readonly Kernel[], runs: number, opts: { depth: number; batch: number }): ProfileReport {
  const nodes = [...model.graph.walkNodes()].filter(isCompute);
  const resolver = new NodeResolver(nodes);
  const { blockOf, hierarchical } = assignBlocks(model, opts.depth);

  const byNode = new Map<string, Acc>();
  const byOp = new Map<string, Acc>();
  const byBlock = new Map<string, Acc>();
  let totalUs = 0;
  for (const k of kernels) {
    totalUs += k.us;
    const node = resolver.resolve(k.name, k.opType);
    const block = node
      ? blockOf.get(node)!
      : ((hierarchical ? hierarchicalBlock(k.name, opts.depth) : null) ?? k.name.replace(/_token_\d+$/, ''));
    add(byNode, node ? node.name : k.name, k.us, k.opType);
    add(byOp, k.opType, k.us, k.opType);
    add(byBlock, block, k.us, k.opType);
  }

  // Parameters: each constant counts once, for the first compute node (graph order) reading it.
  const nodeParams = new Map<string, number>();
  const blockParams = new Map<string, number>();
  const blockNodes = new Map<string, number>();
  const counted = new Set<Value>();
  let totalParams = 0;
  for (const n of nodes) {
    const b = blockOf.get(n)!;
    blockNodes.set(b, (blockNodes.get(b) ?? 0) + 1);
    for (const v of n.inputs) {
      const t = getConstant(v);
      if (!v || !t || counted.has(v) || !isParameterType(t.dataType)) continue;
      counted.add(v);
      const p = elementCount(tensorDims(t));
      nodeParams.set(n.name, (nodeParams.get(n.name) ?? 0) + p);
      blockParams.set(b, (blockParams.get(b) ?? 0) + p);
      totalParams += p;
    }
  }
  // Dead or output-only constants still count in the model's parameter total.
  for (const c of allConstants(model)) {
    if (counted.has(c.value) || !isParameterType(c.tensor.dataType)) continue;
    counted.add(c.value);
    const p = elementCount(tensorDims(c.tensor));
    blockParams.set(UNCONSUMED, (blockParams.get(UNCONSUMED) ?? 0) + p);
    totalParams += p;
  }

  const perRun = (us: number): number => us / runs / 1000;
  const share = (us: number): number => (totalUs > 0 ? us / totalUs : 0);
  const order = (a: ProfileEntry, b: ProfileEntry): number =>
    b.ms - a.ms || (b.params ?? 0) - (a.params ?? 0) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

  const nodeEntries: ProfileEntry[] = [...byNode].map(([name, a]) => {
    const e: ProfileEntry = { name, ms: perRun(a.us), share: share(a.us), count: a.calls / runs, opType: mainOp(a) };
    const p = nodeParams.get(name);
    if (p) e.params = p;
    return e;
  });
  const opEntries: ProfileEntry[] = [...byOp].map(([name, a]) => ({ name, ms: perRun(a.us), share: share(a.us), count: a.calls / runs }));
  const blockNames = new Set([...byBlock.keys(), ...[...blockParams].filter(([, p]) => p > 0).map(([b]) => b)]);
  const blockEntries: ProfileEntry[] = [...blockNames].map((name) => {
    const a = byBlock.get(name);
    const params = blockParams.get(name) ?? 0;
    return {
      name,
      ms: a ? perRun(a.us) : 0,
      share: a ? share(a.us) : 0,
      // graph nodes in the block; for ORT-only blocks, the kernels per run
      count: blockNodes.get(name) ?? (a ? a.calls / runs : 0),
      params,
      paramShare: totalParams > 0 ? params / totalParams : 0,
    };
  });

  return {
    runs,
    batch: opts.batch,
    totalMs: perRun(totalUs),
    depth: opts.depth,
    byNode: nodeEntries.sort(order),
    byOpType: opEntries.sort(order),
    byBlock: blockEntries.sort(order),
  };
}

// ------------------------------------------------------------------ text


/** Terminal table: blocks by latency, with their parameter share; then the top op types. */
export function formatProfile(report: ProfileReport, top = 20): string {
  const rows = report.byBlock.slice(0, top);
  const width = Math.min(56, Math.max(5, ...rows.map((r) => r.name.length)));
  const totalParams = report.byBlock.reduce((s, b) => s + (b.params ?? 0), 0);
  const cut = (s: string): string => (s.length > width ? `…${s.slice(s.length - width + 1)}` : s);
  const lines = [
    `profile: ${formatMs(report.totalMs)} ms kernel time per run (batch ${report.batch}, ${report.runs} timed runs), ` +
      `${report.byBlock.length} blocks (depth ${report.depth}), ${totalParams.toLocaleString('en-US')} params`,
    `  ${'block'.padEnd(width)}  latency %    ms/run  params %       params`,
  ];
  for (const r of rows) {
    lines.push(
      `  ${cut(r.name).padEnd(width)}  ${formatPercent(r.share).padStart(9)} ${formatMs(r.ms).padStart(9)}  ${formatPercent(r.paramShare ?? 0).padStart(8)} ${(r.params ?? 0).toLocaleString('en-US').padStart(12)}`,
    );
  }
  const rest = report.byBlock.slice(top);
  if (rest.length > 0) {
    const s = rest.reduce((a, r) => a + r.share, 0);
    const p = rest.reduce((a, r) => a + (r.paramShare ?? 0), 0);
    const ms = rest.reduce((a, r) => a + r.ms, 0);
    const params = rest.reduce((a, r) => a + (r.params ?? 0), 0);
    lines.push(
      `  ${`(${rest.length} more)`.padEnd(width)}  ${formatPercent(s).padStart(9)} ${formatMs(ms).padStart(9)}  ${formatPercent(p).padStart(8)} ${params.toLocaleString('en-US').padStart(12)}`,
    );
  }
  lines.push(`  op types: ${report.byOpType.slice(0, 8).map((o) => `${o.name} ${formatPercent(o.share)}`).join(', ')}`);
  return lines.join('\n');
}
