// The channel structure the pruning rules build: groups of channels removed together, how they lie
// along each tensor's channel axis, and the weight slices a removal implies. RuleContext is what
// every per-op rule (channel-rules.ts) reads and extends; dependency-graph.ts runs the rules.
import type { Model, Node, Value } from '../onnx/ir.js';
import { getConstant } from '../onnx/constants.js';
import { tensorDims } from '../onnx/tensor-data.js';

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
