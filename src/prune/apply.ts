// Applies a plan: slices every constant a removed channel touches (producer filters, BN and other
// per-channel parameters, next layers' input channels), fixes depthwise group counts and the
// declared shapes of the tensors whose channels changed.
import type { Value } from '../onnx/ir.js';
import { addConstant, getConstant, setConstant } from '../onnx/constants.js';
import { DataType as DT } from '../onnx/dtypes.js';
import { makeTensor, readTensor } from '../onnx/tensor-data.js';
import { weightLayerOf } from '../onnx/weight-layers.js';
import type { DependencyGraph } from './dependency-graph.js';
import { layoutWidth, type ChannelGroup, type Layout } from './layout.js';
import { sliceAxis } from './tensor-ops.js';

/** Indices kept along an axis that follows `layout`, or null when nothing is removed there. */
export function keptIndices(layout: Layout, kept: Map<ChannelGroup, number[]>): number[] | null {
  const out: number[] = [];
  let offset = 0;
  let changed = false;
  for (const s of layout.segments) {
    const keep = kept.get(s.group.find());
    if (keep && keep.length < s.length) changed = true;
    for (const c of keep ?? Array.from({ length: s.length }, (_, i) => i)) for (let b = 0; b < s.block; b++) out.push(offset + c * s.block + b);
    offset += s.length * s.block;
  }
  return changed ? out : null;
}

export function applyPlan(dg: DependencyGraph, kept: Map<ChannelGroup, number[]>): void {
  const byValue = new Map<Value, { axis: number; keep: number[] }[]>();
  for (const e of dg.edits) {
    const keep = keptIndices(e.layout, kept);
    if (!keep) continue;
    const v = e.node.inputs[e.input]!;
    const list = byValue.get(v) ?? [];
    if (!list.some((x) => x.axis === e.axis)) list.push({ axis: e.axis, keep });
    byValue.set(v, list);
  }
  for (const [v, slices] of byValue) {
    const t = getConstant(v)!;
    let { data, dims } = readTensor(t);
    for (const s of slices) ({ data, dims } = sliceAxis(data, dims, s.axis, s.keep));
    setConstant(v, makeTensor(t.name, t.dataType, dims, data));
  }
  for (const node of dg.depthwise) {
    const layer = weightLayerOf(node)!;
    const w = getConstant(layer.weight);
    // depthwise: one group per output channel
    if (w) node.setAttr('group', Number(w.dims[layer.outAxis!]), 'int');
  }
  // channel Splits: explicit sizes that follow the pruned outputs (uneven after pruning, so always explicit)
  for (const { node, layouts } of dg.splits) {
    const keeps = layouts.map((l) => keptIndices(l, kept));
    if (keeps.every((k) => !k)) continue;
    const sizes = layouts.map((l, i) => keeps[i]?.length ?? layoutWidth(l));
    if ((dg.model.opset() ?? 13) >= 13) {
      node.removeAttr('num_outputs');
      const old = node.inputs[1] ? getConstant(node.inputs[1]) : undefined;
      const t = makeTensor(old?.name ?? '', DT.INT64, [sizes.length], BigInt64Array.from(sizes.map(BigInt)));
      if (old) setConstant(node.inputs[1]!, t);
      else node.setInput(1, addConstant(node.graph, `${node.name || 'split'}_sizes`, t));
    } else {
      node.setAttr('split', sizes, 'ints');
    }
  }
  for (const [v, layout] of dg.layouts) {
    const shape = v.shape;
    const keep = keptIndices(layout, kept);
    if (!shape || !keep || shape.length < 2 || v.elemType === undefined) continue;
    const next = shape.slice();
    next[1] = keep.length;
    v.setTensorType(v.elemType, next);
  }
}

/**
 * The plan's effect without changing any shape: zeroes, in every layer that reads a removed
 * channel, the weights that read it. A model pruned by `applyPlan` must compute exactly what the
 * masked model computes (the check that the dependency graph found every consumer).
 */
export function maskPlan(dg: DependencyGraph, kept: Map<ChannelGroup, number[]>): void {
  for (const e of dg.edits) {
    if (e.role !== 'in') continue;
    const keep = keptIndices(e.layout, kept);
    if (!keep) continue;
    const v = e.node.inputs[e.input]!;
    const t = getConstant(v)!;
    const { dims, data: original } = readTensor(t);
    const data = original.slice();
    const keepSet = new Set(keep);
    const outer = dims.slice(0, e.axis).reduce((a, b) => a * b, 1);
    const inner = dims.slice(e.axis + 1).reduce((a, b) => a * b, 1);
    const n = dims[e.axis]!;
    for (let o = 0; o < outer; o++) for (let k = 0; k < n; k++) if (!keepSet.has(k)) data.fill(0 as never, (o * n + k) * inner, (o * n + k + 1) * inner);
    setConstant(v, makeTensor(t.name, t.dataType, dims, data));
  }
}
