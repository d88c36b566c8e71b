// Channel dependency graph over an ONNX graph: which channels of which tensors must be removed
// together. Every prunable producer (Conv, ConvTranspose, Gemm, MatMul with a constant weight)
// opens a channel group; the per-op rules in channel-rules.ts propagate each tensor's channel
// layout forward and couple groups (residual Add/Mul/Sub) or record the weight slices a removal
// implies. Anything the rules cannot prove safe marks the groups it touches unprunable, with why.
import type { Model, Node, Value } from '../onnx/ir.js';
import { CHANNEL_RULES } from './channel-rules.js';
import { RuleContext, type ChannelGroup, type Layout, type SliceEdit } from './layout.js';
import { discoverShapes } from '../runtime/capture.js';
import { syntheticInputs, type Feeds } from '../runtime/ort.js';

export interface DependencyGraph {
  model: Model;
  layouts: Map<Value, Layout>;
  edits: SliceEdit[];
  /** Depthwise convs whose `group` attribute follows their channel count. */
  depthwise: Node[];
  /** Channel Splits: their sizes follow the output layouts. */
  splits: { node: Node; layouts: Layout[] }[];
  /** Representative groups, in creation order. */
  groups(): ChannelGroup[];
  /** Edits touching a representative group. */
  editsOf(group: ChannelGroup): SliceEdit[];
  /** Values whose layout holds the group. */
  valuesOf(group: ChannelGroup): Value[];
}

/** Ops whose channel rule needs the input's spatial size. */
const SHAPE_HUNGRY = new Set(['Flatten', 'Reshape']);

/**
 * Shapes the rules need but the model does not declare (exported models often carry no value_info):
 * one onnxruntime run on `feeds` (or synthetic inputs). Undefined when nothing is missing or the run fails.
 */
export async function discoverChannelShapes(model: Model, feeds?: Feeds): Promise<Map<Value, number[]> | undefined> {
  const missing = model.graph.nodes.some((n) => {
    const shape = n.inputs[0]?.shape;
    return SHAPE_HUNGRY.has(n.opType) && (!shape || !shape.every((d) => typeof d === 'number'));
  });
  if (!missing) return undefined;
  try {
    const found = await discoverShapes(model, feeds ?? syntheticInputs(model));
    return new Map([...found].map(([v, d]) => [v, d.dims]));
  } catch {
    return undefined; // the rules then block what they cannot prove, with the reason
  }
}

export function analyzeChannels(model: Model, shapes?: Map<Value, number[]>): DependencyGraph {
  const ctx = new RuleContext(model, shapes);
  const g = model.graph;
  g.toposort(false);
  for (const node of g.nodes) {
    if (node.opType === 'Constant') continue;
    const hasLayoutInput = node.inputs.some((v) => ctx.layoutOf(v)) || node.implicitInputs().some((v) => ctx.layoutOf(v));
    const rule = node.domain === '' || node.domain === 'ai.onnx' ? CHANNEL_RULES[node.opType] : undefined;
    if (node.subgraphs().length > 0) {
      ctx.blockAllInputs(node, `used inside the subgraph of ${node.opType} '${node.name}'`);
      continue;
    }
    if (!rule) {
      if (hasLayoutInput) ctx.blockAllInputs(node, `consumed by ${node.opType} '${node.name}' (no channel rule for this op)`);
      continue;
    }
    rule(node, ctx);
  }
  for (const v of g.outputs) ctx.block(ctx.layoutOf(v), `reaches graph output '${v.name}'`);
  // Constants holding weights that several nodes share cannot be sliced for one of them.
  for (const e of ctx.edits) {
    const v = e.node.inputs[e.input]!;
    if (v.consumers.length > 1) ctx.block(e.layout, `weight '${v.name}' is shared by ${v.consumers.length} nodes`);
  }
  const reps = () => ctx.all.filter((x) => x.find() === x);
  return {
    model,
    layouts: ctx.layouts,
    edits: ctx.edits,
    depthwise: ctx.depthwise,
    splits: ctx.splits,
    groups: reps,
    editsOf: (grp) => ctx.edits.filter((e) => e.layout.segments.some((s) => s.group.find() === grp)),
    valuesOf: (grp) => [...ctx.layouts].filter(([, l]) => l.segments.some((s) => s.group.find() === grp)).map(([v]) => v),
  };
}

/** A readable name for a group: its producers. */
export function describeGroup(group: ChannelGroup): string {
  return group.producers.map((n) => n.name || `${n.opType}→${n.outputs[0]?.name}`).join(' + ');
}
