// Channel dependency graph over an ONNX graph: which channels of which tensors must be removed
// together. Every prunable producer (Conv, ConvTranspose, Gemm, MatMul with a constant weight)
// opens a channel group; the per-op rules in channel-rules.ts propagate each tensor's channel
// layout forward and couple groups (residual Add/Mul/Sub) or record the weight slices a removal
// implies. Anything the rules cannot prove safe marks the groups it touches unprunable, with why.
import type { Model, Node, Value } from '../onnx/ir.js';
import { getConstant } from '../onnx/constants.js';
import { tensorDims } from '../onnx/tensor-data.js';
import { CHANNEL_RULES } from './channel-rules.js';
import { discoverValues, syntheticInputs, type Feeds } from '../runtime/ort.js';

/** A channel group (union-find node; use `find()` to get the representative). */
export class ChannelGroup {
  parent: ChannelGroup = this;
  readonly id: number;
  channels: number;
  /** Producers whose output channels open or join this group (the group's "layers"). */
  producers: Node[] = [];
  blocked: string[] = [];
  constructor(id: number, channels: number, producer?: Node) {
    this.id = id;
    this.channels = channels;
    if (producer) this.producers.push(producer);
  }
  find(): ChannelGroup {
    let g: ChannelGroup = this;
    while (g.parent !== g) {
      g.parent = g.parent.parent;
      g = g.parent;
    }
    return g;
  }
}

/** A run of `length` channels of one group inside a tensor's channel axis; each channel spans `block` consecutive features (Flatten of C×H×W). */
export interface Segment {
  group: ChannelGroup;
  length: number;
  block: number;
}

/** Channel structure of one tensor: its channel axis (1) is the concatenation of segments. `rank` is the tensor rank. */
export interface Layout {
  segments: Segment[];
  rank: number;
}

/** A slice a channel removal implies: axis `axis` of the constant at `node.inputs[input]` follows `layout`. */
export interface SliceEdit {
  node: Node;
  input: number;
  axis: number;
  layout: Layout;
  /** 'out': the node produces these channels; 'in': it consumes them (a next layer); 'param': per-channel parameter. */
  role: 'out' | 'in' | 'param';
}

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

export function layoutWidth(l: Layout): number {
  return l.segments.reduce((s, x) => s + x.length * x.block, 0);
}

/** What a rule sees: layouts of inputs, and the operations that build the dependency graph. */
export class RuleContext {
  private nextId = 0;
  readonly all: ChannelGroup[] = [];
  readonly layouts = new Map<Value, Layout>();
  readonly edits: SliceEdit[] = [];
  readonly depthwise: Node[] = [];
  readonly splits: { node: Node; layouts: Layout[] }[] = [];
  constructor(
    readonly model: Model,
    private readonly shapes?: Map<Value, number[]>,
  ) {}

  /** A value's shape: declared when fully static, else as onnxruntime reported it (if discovered). */
  shapeOf(v: Value | null | undefined): number[] | undefined {
    if (!v) return undefined;
    const declared = v.shape;
    if (declared && declared.every((d) => typeof d === 'number')) return declared as number[];
    return this.shapes?.get(v);
  }

  layoutOf(v: Value | null | undefined): Layout | undefined {
    return v ? this.layouts.get(v) : undefined;
  }
  setLayout(v: Value | null | undefined, l: Layout | undefined): void {
    if (v && l) this.layouts.set(v, l);
  }
  newGroup(channels: number, producer: Node): ChannelGroup {
    const g = new ChannelGroup(this.nextId++, channels, producer);
    this.all.push(g);
    return g;
  }
  /** Marks every group of the layout unprunable. */
  block(l: Layout | undefined, reason: string): void {
    if (!l) return;
    for (const s of l.segments) {
      const g = s.group.find();
      if (!g.blocked.includes(reason)) g.blocked.push(reason);
    }
  }
  blockAllInputs(node: Node, reason: string): void {
    for (const v of node.inputs) this.block(this.layoutOf(v), reason);
    for (const v of node.implicitInputs()) this.block(this.layoutOf(v), reason);
  }
  /** Couples two layouts channel by channel (residual Add…); false (and both blocked) if their structure differs. */
  unify(a: Layout, b: Layout, reason: string): boolean {
    const ok = a.segments.length === b.segments.length && a.segments.every((s, i) => s.length === b.segments[i]!.length && s.block === b.segments[i]!.block);
    if (!ok) {
      this.block(a, reason);
      this.block(b, reason);
      return false;
    }
    a.segments.forEach((s, i) => {
      const ga = s.group.find();
      const gb = b.segments[i]!.group.find();
      if (ga === gb) return;
      gb.parent = ga;
      ga.producers.push(...gb.producers);
      ga.blocked.push(...gb.blocked.filter((r) => !ga.blocked.includes(r)));
    });
    return true;
  }
  edit(node: Node, input: number, axis: number, layout: Layout, role: SliceEdit['role']): void {
    this.edits.push({ node, input, axis, layout, role });
  }
  /** The constant weight at an input, or undefined; blocks `layout` when the constant is shared with other nodes. */
  constantInput(node: Node, input: number): { dims: number[]; value: Value } | undefined {
    const v = node.inputs[input];
    const t = getConstant(v);
    if (!v || !t) return undefined;
    return { dims: tensorDims(t), value: v };
  }
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
    const found = await discoverValues(model, feeds ?? syntheticInputs(model));
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
