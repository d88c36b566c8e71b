// Importance of every channel of every group: weight magnitude, BatchNorm scale, or the
// activation-based score mean|x_c|·‖W_next[:, c]‖ (how much channel c feeds the next layers on
// calibration data). Each member's contribution is normalized by its mean so that layers of
// different scale weigh alike, which also makes scores comparable across groups (global scope).
import type { Value } from '../onnx/ir.js';
import { getConstant } from '../onnx/constants.js';
import { readFloat32, tensorDims } from '../onnx/tensor-data.js';
import { forEachCapture } from '../runtime/capture.js';
import { tensorToFloat32, type Feeds } from '../runtime/ort.js';
import type { ChannelGroup, DependencyGraph, Layout, SliceEdit } from './dependency-graph.js';
import { accumulateChannelAbs, sliceNorms } from './tensor-ops.js';

export type ImportanceCriterion = 'l1' | 'l2' | 'bn' | 'activation';

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

export async function computeImportance(
  dg: DependencyGraph,
  groups: ChannelGroup[],
  criterion: ImportanceCriterion,
  samples: () => Promise<Feeds[]>,
): Promise<Map<ChannelGroup, Float64Array>> {
  const scores = new Map<ChannelGroup, Float64Array>();
  for (const g of groups) scores.set(g, new Float64Array(g.channels));
  if (criterion === 'activation') {
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
  }
  for (const g of groups) {
    const sc = scores.get(g)!;
    if (criterion === 'activation' && sc.some((x) => x > 0)) continue;
    let used = false;
    if (criterion === 'bn') {
      for (const e of dg.editsOf(g)) {
        if (e.node.opType !== 'BatchNormalization' || e.input !== 1) continue;
        const v = editNorms(e, g, 1);
        if (v) (addNormalized(sc, v), (used = true));
      }
    }
    if (!used) {
      // magnitude: the producers' output filters (fallback for bn / activation when they don't apply)
      for (const e of dg.editsOf(g)) {
        if (e.role !== 'out') continue;
        const v = editNorms(e, g, criterion === 'l1' ? 1 : 2);
        if (v) addNormalized(sc, v);
      }
    }
  }
  return scores;
}
