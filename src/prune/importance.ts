// Importance of every channel of every group, one criterion per entry of IMPORTANCES: weight
// magnitude, BatchNorm scale, or the activation-based score mean|x_c|·‖W_next[:, c]‖ (how much
// channel c feeds the next layers on calibration data). Each member's contribution is normalized by
// its mean so that layers of different scale weigh alike, which also makes scores comparable across
// groups (global scope).
import type { Value } from '../onnx/ir.js';
import { getConstant } from '../onnx/constants.js';
import { readFloat32, tensorDims } from '../onnx/tensor-data.js';
import { forEachCapture } from '../runtime/capture.js';
import { tensorToFloat32, type Feeds } from '../runtime/ort.js';
import type { Strategy } from '../pipeline/pass.js';
import type { DependencyGraph } from './dependency-graph.js';
import type { ChannelGroup, Layout, SliceEdit } from './layout.js';
import { accumulateChannelAbs, sliceNorms } from './tensor-ops.js';

/** One criterion for how much each channel matters. */
export interface Importance extends Strategy {
  /** Whether it reads calibration data (`samples`). */
  readonly needsData: boolean;
  /** A score per channel of each group (higher: keep). */
  score(dg: DependencyGraph, groups: ChannelGroup[], samples: () => Promise<Feeds[]>): Promise<Map<ChannelGroup, Float64Array>>;
}

/** Where the group's channels sit along a layout's axis: one entry per segment of that group. */
export function groupSpans(layout: Layout, group: ChannelGroup): { offset: number; block: number }[] {
  const spans: { offset: number; block: number }[] = [];
  let offset = 0;
  for (const s of layout.segments) {
    if (s.group.find() === group) spans.push({ offset, block: s.block });
    offset += s.length * s.block;
  }
  return spans;
}

/** Per-channel values of a per-index vector over the group's spans (summed over block and spans). */
function gather(perIndex: Float64Array, layout: Layout, group: ChannelGroup): Float64Array {
  const out = new Float64Array(group.channels);
  for (const { offset, block } of groupSpans(layout, group)) {
    for (let c = 0; c < group.channels; c++) for (let b = 0; b < block; b++) out[c]! += perIndex[offset + c * block + b]!;
  }
  return out;
}

function addNormalized(into: Float64Array, v: Float64Array): void {
  let mean = 0;
  for (const x of v) mean += x;
  mean /= v.length || 1;
  if (!(mean > 0)) return;
  for (let i = 0; i < v.length; i++) into[i]! += v[i]! / mean;
}

function editNorms(e: SliceEdit, group: ChannelGroup, p: 1 | 2): Float64Array | undefined {
  const t = getConstant(e.node.inputs[e.input]);
  if (!t) return undefined;
  return gather(sliceNorms(readFloat32(t), tensorDims(t), e.axis, p), e.layout, group);
}

/** Norms of the producers' output filters, added into the group's scores: the magnitude criterion and the fallback of the others. */
function addFilterNorms(dg: DependencyGraph, g: ChannelGroup, p: 1 | 2, into: Float64Array): void {
  for (const e of dg.editsOf(g)) {
    if (e.role !== 'out') continue;
    const v = editNorms(e, g, p);
    if (v) addNormalized(into, v);
  }
}

const zeroScores = (groups: ChannelGroup[]) => new Map(groups.map((g) => [g, new Float64Array(g.channels)]));

const magnitude = (p: 1 | 2, description: string): Importance => ({
  name: `l${p}`,
  description,
  needsData: false,
  async score(dg, groups) {
    const scores = zeroScores(groups);
    for (const g of groups) addFilterNorms(dg, g, p, scores.get(g)!);
    return scores;
  },
});

const bn: Importance = {
  name: 'bn',
  description: '|BatchNorm scale| of the channel (l2 where no BatchNorm follows).',
  needsData: false,
  async score(dg, groups) {
    const scores = zeroScores(groups);
    for (const g of groups) {
      const sc = scores.get(g)!;
      let used = false;
      for (const e of dg.editsOf(g)) {
        if (e.node.opType !== 'BatchNormalization' || e.input !== 1) continue;
        const v = editNorms(e, g, 1);
        if (v) (addNormalized(sc, v), (used = true));
      }
      if (!used) addFilterNorms(dg, g, 2, sc);
    }
    return scores;
  },
};

const activation: Importance = {
  name: 'activation',
  description: "mean |x| of the channel on calibration data × the next layers' weight norm for it (l2 where no layer reads it).",
  needsData: true,
  async score(dg, groups, samples) {
    const scores = zeroScores(groups);
    // mean |x| of every consumer's input, weighted by the consumer's weight norm for that channel
    const consumerEdits = dg.edits.filter((e) => e.role === 'in' && e.layout.segments.some((s) => groups.includes(s.group.find())));
    const inputs = [...new Set(consumerEdits.map((e) => e.node.inputs[0]!))];
    const sums = new Map<Value, Float64Array>();
    const counts = new Map<Value, number>();
    await forEachCapture(dg.model, await samples(), inputs, (captured) => {
      for (const v of inputs) {
        const t = captured.get(v);
        if (!t) continue;
        const dims = t.dims.map(Number);
        let s = sums.get(v);
        if (!s) sums.set(v, (s = new Float64Array(dims[1]!)));
        counts.set(v, (counts.get(v) ?? 0) + accumulateChannelAbs(tensorToFloat32(t), dims, s));
      }
    });
    for (const e of consumerEdits) {
      const v = e.node.inputs[0]!;
      const s = sums.get(v);
      if (!s) continue;
      const n = counts.get(v)!;
      const w = getConstant(e.node.inputs[e.input])!;
      const wn = sliceNorms(readFloat32(w), tensorDims(w), e.axis, 2);
      const perIndex = new Float64Array(wn.length);
      for (let i = 0; i < wn.length; i++) perIndex[i] = wn[i]! * (s[i]! / n);
      for (const g of groups) if (groupSpans(e.layout, g).length) addNormalized(scores.get(g)!, gather(perIndex, e.layout, g));
    }
    for (const g of groups) {
      const sc = scores.get(g)!;
      if (!sc.some((x) => x > 0)) addFilterNorms(dg, g, 2, sc);
    }
    return scores;
  },
};

/** Every importance criterion, by the name recipes use (`importance`). */
export const IMPORTANCES = {
  l1: magnitude(1, 'L1 norm of the producing filters.'),
  l2: magnitude(2, 'L2 norm of the producing filters.'),
  bn,
  activation,
} satisfies Record<string, Importance>;
