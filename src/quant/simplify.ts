// Exact graph simplifications before quantization, one table of rewrites. Exporters (Paddle2ONNX
// for PP-OCR) spell out what could be one op: learnable affine blocks (Conv → Mul(a) → Add(b)),
// hardswish as Add → Clip → Mul → Div. Quantized as they stand, every one of those ops gets its
// own Q/DQ pair (one more rounding each) and runs as a separate int8 kernel; folded, the affine
// disappears into the Conv weights and the activation is one HardSwish between two integer kernels.
import { DataType as DT } from '../onnx/dtypes.js';
import type { Model, Node, Value } from '../onnx/ir.js';
import { addConstant, getConstant, getFloatConstant } from '../onnx/constants.js';
import { makeTensor, readFloat32, tensorDims } from '../onnx/tensor-data.js';
import { weightLayerOf } from '../onnx/weight-layers.js';
import { upgradeOpset } from '../onnx/opset-upgrade.js';

export interface SimplifyRewrite {
  /** Short description for the report. */
  summary: string;
  /** Applies the rewrite at `node` if it matches; returns the nodes it changed (empty: no match). */
  apply(node: Node, model: Model): Node[];
}

/** The one table: rewrite name → rule, applied in this order until nothing changes. */
export const SIMPLIFY_REWRITES: Record<string, SimplifyRewrite> = {
  'conv-affine-out': { summary: 'per-channel Mul/Add after a Conv folded into its weights and bias', apply: foldAffineAfterConv },
  hardswish: { summary: 'Add(3) → Clip(0, 6) → Mul → Div(6) fused into one HardSwish', apply: fuseHardSwish },
  'affine-into-conv': { summary: 'per-channel Mul/Add before an unpadded Conv folded into its weights and bias', apply: foldAffineBeforeConv },
};

export interface SimplifyResult {
  /** rewrite name → nodes it changed (the Conv or the new HardSwish). */
  applied: Map<string, Node[]>;
}

export function simplifyForQuantization(model: Model, names: readonly string[] = Object.keys(SIMPLIFY_REWRITES)): SimplifyResult {
  const g = model.graph;
  const applied = new Map<string, Node[]>();
  // HardSwish is opset 14; upgrade only when the pattern is there (13 → 14 changes no semantics of the ops kept)
  if (names.includes('hardswish') && (model.opset('') ?? 0) === 13 && g.nodes.some((n) => matchHardSwish(n))) upgradeOpset(model, 14);
  let changed = true;
  while (changed) {
    changed = false;
    for (const name of names) {
      const rule = SIMPLIFY_REWRITES[name]!;
      for (const n of [...g.nodes]) {
        if (!g.nodes.includes(n)) continue;
        const hit = rule.apply(n, model);
        if (hit.length) {
          changed = true;
          applied.set(name, [...(applied.get(name) ?? []), ...hit]);
        }
      }
    }
  }
  g.toposort(false);
  g.cleanup(false);
  return { applied };
}

// ---- helpers

/** Per-channel vector of a constant that broadcasts along axis 1 of a rank-`rank` tensor with C channels, or undefined. */
function channelVector(v: Value | null | undefined, rank: number, channels: number): Float32Array | undefined {
  const t = getConstant(v);
  if (!t || t.dataType !== DT.FLOAT) return undefined;
  const dims = tensorDims(t);
  const data = readFloat32(t);
  if (data.length === 1) return new Float32Array(channels).fill(data[0]!);
  if (dims.length > rank || data.length !== channels || rank < 2) return undefined;
  // right-aligned broadcasting: the channel count must sit at axis 1 of the full rank, ones elsewhere
  const full = [...Array(rank - dims.length).fill(1), ...dims];
  if (full[1] !== channels || full.some((d, i) => i !== 1 && d !== 1)) return undefined;
  return data;
}

function onlyConsumer(v: Value | null | undefined): Node | undefined {
  if (!v || v.consumers.length !== 1 || v.graph.isOutput(v)) return undefined;
  return v.consumers[0];
}

/** The non-constant operand of a binary op with one constant operand, and that constant's slot. */
function splitConstOperand(n: Node): { x: Value; c: Value } | undefined {
  const [a, b] = n.inputs;
  if (!a || !b) return undefined;
  if (getConstant(b) && !getConstant(a)) return { x: a, c: b };
  if (getConstant(a) && !getConstant(b)) return { x: b, c: a };
  return undefined;
}

/** A Conv's float weight [Cout, Cin/group, k…] and bias (zeros when it has none). */
function convWeights(conv: Node): { w: Float32Array; dims: number[]; bias: Float32Array } | undefined {
  const layer = weightLayerOf(conv);
  const wt = getConstant(layer?.weight);
  if (!layer || !wt || wt.dataType !== DT.FLOAT || conv.domain !== '') return undefined;
  const dims = tensorDims(wt);
  const bt = getConstant(layer.bias);
  if (layer.bias && (!bt || bt.dataType !== DT.FLOAT)) return undefined;
  return { w: readFloat32(wt), dims, bias: bt ? readFloat32(bt) : new Float32Array(dims[layer.outAxis!]!) };
}

function setConvWeights(model: Model, conv: Node, dims: number[], w: Float32Array, bias: Float32Array): void {
  const layer = weightLayerOf(conv)!;
  const base = conv.name || conv.outputs[0]!.name;
  conv.setInput(layer.weightInput, addConstant(model.graph, `${base}_weight_folded`, makeTensor('', DT.FLOAT, dims, w)));
  conv.setInput(layer.biasInput!, addConstant(model.graph, `${base}_bias_folded`, makeTensor('', DT.FLOAT, [dims[layer.outAxis!]!], bias)));
}

// only float constants: an int64 `t + 3` of shape arithmetic is not the start of a hardswish
const isScalar = (v: Value | null | undefined, value: number) => {
  const t = getFloatConstant(v);
  if (!t) return false;
  const d = readFloat32(t);
  return d.length === 1 && Math.abs(d[0]! - value) <= 1e-6 * Math.max(1, Math.abs(value));
};

// ---- Conv → Mul(a) / Add(b): y = a·(W∗x + B) + b = (a·W)∗x + (a·B + b), per output channel

function foldAffineAfterConv(conv: Node, model: Model): Node[] {
  if (conv.opType !== 'Conv') return [];
  const op = onlyConsumer(conv.outputs[0]);
  if (!op || op.domain !== '' || (op.opType !== 'Mul' && op.opType !== 'Add')) return [];
  const split = splitConstOperand(op);
  const cw = convWeights(conv);
  if (!split || split.x !== conv.outputs[0] || !cw) return [];
  const rank = cw.dims.length;
  const cout = cw.dims[0]!;
  const vec = channelVector(split.c, rank, cout);
  if (!vec) return [];
  const w = Float32Array.from(cw.w);
  const bias = Float32Array.from(cw.bias);
  const per = w.length / cout;
  for (let c = 0; c < cout; c++) {
    if (op.opType === 'Mul') {
      for (let i = 0; i < per; i++) w[c * per + i]! *= vec[c]!;
      bias[c]! *= vec[c]!;
    } else bias[c]! += vec[c]!;
  }
  setConvWeights(model, conv, cw.dims, w, bias);
  const y = op.outputs[0]!;
  model.graph.removeNode(op);
  conv.setOutput(0, y);
  return [conv];
}

// ---- x·clip(x + 3, 0, 6)/6 → HardSwish(x)

function matchHardSwish(add: Node): { x: Value; nodes: Node[]; y: Value } | undefined {
  if (add.opType !== 'Add' || add.domain !== '') return undefined;
  const s = splitConstOperand(add);
  if (!s || !isScalar(s.c, 3)) return undefined;
  const clip = onlyConsumer(add.outputs[0]);
  if (!clip || clip.opType !== 'Clip' || !isScalar(clip.inputs[1], 0) || !isScalar(clip.inputs[2], 6)) return undefined;
  const mul = onlyConsumer(clip.outputs[0]);
  if (!mul || mul.opType !== 'Mul') return undefined;
  const [a, b] = mul.inputs;
  if (!((a === s.x && b === clip.outputs[0]) || (b === s.x && a === clip.outputs[0]))) return undefined;
  const last = onlyConsumer(mul.outputs[0]);
  if (!last) return undefined;
  const lastSplit = splitConstOperand(last);
  if (!lastSplit || lastSplit.x !== mul.outputs[0]) return undefined;
  const ok = (last.opType === 'Div' && last.inputs[1] === lastSplit.c && isScalar(lastSplit.c, 6)) || (last.opType === 'Mul' && isScalar(lastSplit.c, 1 / 6));
  if (!ok) return undefined;
  return { x: s.x, nodes: [add, clip, mul, last], y: last.outputs[0]! };
}

function fuseHardSwish(add: Node, model: Model): Node[] {
  if ((model.opset('') ?? 0) < 14) return [];
  const m = matchHardSwish(add);
  if (!m) return [];
  const g = model.graph;
  const at = g.nodes.indexOf(m.nodes[m.nodes.length - 1]!);
  const name = m.nodes[m.nodes.length - 1]!.name || m.y.name;
  for (const n of m.nodes) g.removeNode(n);
  const hs = g.addNode('HardSwish', [m.x], [m.y], { name: `${name}_hardswish`, at: Math.min(at, g.nodes.length) });
  return [hs];
}

// ---- Mul(a) / Add(b) → Conv without padding: W∗(a·x + b) = (W·a)∗x + (B + Σ W·b), per input channel.
// Zero padding would see b as 0 at the borders, so padded Convs are left alone.

function foldAffineBeforeConv(op: Node, model: Model): Node[] {
  if (op.domain !== '' || (op.opType !== 'Mul' && op.opType !== 'Add')) return [];
  const s = splitConstOperand(op);
  const y = op.outputs[0];
  if (!s || !y || y.consumers.length === 0 || model.graph.isOutput(y)) return [];
  const convs = [...y.consumers];
  const weights = convs.map((c) => (c.opType === 'Conv' && c.inputs[0] === y && weightLayerOf(c)?.weight !== y && unpadded(c) ? convWeights(c) : undefined));
  if (weights.some((w) => !w)) return [];
  const cin = weights[0]!.dims[1]! * convs[0]!.getInt('group', 1);
  if (convs.some((c, i) => weights[i]!.dims[1]! * c.getInt('group', 1) !== cin)) return [];
  const vec = channelVector(s.c, weights[0]!.dims.length, cin);
  if (!vec) return [];
  for (let k = 0; k < convs.length; k++) {
    const conv = convs[k]!;
    const { w: w0, dims, bias: b0 } = weights[k]!;
    const w = Float32Array.from(w0);
    const bias = Float64Array.from(b0);
    const cout = dims[0]!;
    const icg = dims[1]!;
    const spatial = w.length / (cout * icg);
    const outPerGroup = cout / conv.getInt('group', 1);
    for (let oc = 0; oc < cout; oc++) {
      const gBase = Math.floor(oc / outPerGroup) * icg;
      for (let i = 0; i < icg; i++) {
        const a = vec[gBase + i]!;
        for (let p = 0; p < spatial; p++) {
          const idx = (oc * icg + i) * spatial + p;
          if (op.opType === 'Mul') w[idx]! *= a;
          else bias[oc]! += w0[idx]! * a;
        }
      }
    }
    setConvWeights(model, conv, dims, w, Float32Array.from(bias));
    conv.setInput(0, s.x);
  }
  model.graph.removeNode(op);
  return convs;
}

function unpadded(conv: Node): boolean {
  const auto = conv.getString('auto_pad', 'NOTSET');
  if (auto !== 'NOTSET' && auto !== 'VALID') return false;
  return conv.getInts('pads', []).every((p) => p === 0);
}
