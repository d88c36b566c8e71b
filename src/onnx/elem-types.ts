// Element-type inference: which dtype does each value carry? Declared types win; otherwise one
// table of per-op rules (most ops pass their first input's type through).
import { DataType as DT } from './dtypes.js';
import type { Graph, Model, Node, Value } from './ir.js';
import { constantNodeTensor } from './constants.js';

type TypeOf = (v: Value | null | undefined) => number | undefined;
/** Output element types of a node, given a lookup for its inputs. `undefined` = unknown. */
type OutputTypeRule = (node: Node, typeOf: TypeOf) => (number | undefined)[];

const all = (t: number | undefined) => (node: Node) => node.outputs.map(() => t);
const sameAsInput = (i: number) => (node: Node, typeOf: TypeOf) => node.outputs.map(() => typeOf(node.inputs[i]));
const attrOr = (attr: string, fallback: (node: Node, typeOf: TypeOf) => number | undefined) => (node: Node, typeOf: TypeOf) => {
  const a = node.getAttr(attr);
  const t = typeof a === 'number' ? a : fallback(node, typeOf);
  return node.outputs.map(() => t);
};

const subgraphOutputs = (attr: string, skip: number) => (node: Node, typeOf: TypeOf) => {
  const g = node.attr(attr)?.graph;
  if (!g) return node.outputs.map(() => undefined);
  const body = g.outputs.slice(skip).map((v) => typeOf(v));
  return node.outputs.map((_, i) => body[i]);
};

export const OUTPUT_TYPE_RULES: Record<string, OutputTypeRule> = {
  Shape: all(DT.INT64),
  Size: all(DT.INT64),
  NonZero: all(DT.INT64),
  ArgMax: all(DT.INT64),
  ArgMin: all(DT.INT64),
  NonMaxSuppression: all(DT.INT64),
  Equal: all(DT.BOOL),
  Less: all(DT.BOOL),
  Greater: all(DT.BOOL),
  LessOrEqual: all(DT.BOOL),
  GreaterOrEqual: all(DT.BOOL),
  And: all(DT.BOOL),
  Or: all(DT.BOOL),
  Xor: all(DT.BOOL),
  Not: all(DT.BOOL),
  IsNaN: all(DT.BOOL),
  IsInf: all(DT.BOOL),
  MatMulInteger: all(DT.INT32),
  ConvInteger: all(DT.INT32),
  DynamicQuantizeLinear: () => [DT.UINT8, DT.FLOAT, DT.UINT8],
  Cast: attrOr('to', () => undefined),
  CastLike: (node, typeOf) => [typeOf(node.inputs[1])],
  Constant: (node) => [constantNodeTensor(node)?.dataType],
  ConstantOfShape: (node) => {
    const t = node.getAttr('value');
    return [t && typeof t === 'object' && 'dataType' in t ? t.dataType : DT.FLOAT];
  },
  EyeLike: attrOr('dtype', (node, typeOf) => typeOf(node.inputs[0])),
  RandomNormal: attrOr('dtype', () => DT.FLOAT),
  RandomUniform: attrOr('dtype', () => DT.FLOAT),
  RandomNormalLike: attrOr('dtype', (node, typeOf) => typeOf(node.inputs[0])),
  RandomUniformLike: attrOr('dtype', (node, typeOf) => typeOf(node.inputs[0])),
  Bernoulli: attrOr('dtype', (node, typeOf) => typeOf(node.inputs[0])),
  Multinomial: attrOr('dtype', () => DT.INT32),
  TopK: (node, typeOf) => [typeOf(node.inputs[0]), DT.INT64],
  MaxPool: (node, typeOf) => [typeOf(node.inputs[0]), DT.INT64],
  Unique: (node, typeOf) => [typeOf(node.inputs[0]), DT.INT64, DT.INT64, DT.INT64],
  QuantizeLinear: (node, typeOf) => [typeOf(node.inputs[2]) ?? (node.getAttr('output_dtype') as number | undefined) ?? DT.UINT8],
  DequantizeLinear: (node, typeOf) => [typeOf(node.inputs[1])],
  QLinearConv: (node, typeOf) => [typeOf(node.inputs[7])],
  QLinearMatMul: (node, typeOf) => [typeOf(node.inputs[7])],
  Where: sameAsInput(1),
  OneHot: sameAsInput(2),
  If: subgraphOutputs('then_branch', 0),
  Loop: subgraphOutputs('body', 1),
  Scan: subgraphOutputs('body', 0),
};

/** onnxruntime's own ops (com.microsoft) whose output type is known; the others stay unknown. */
const MS_OUTPUT_TYPE_RULES: Record<string, OutputTypeRule> = {
  MatMulNBits: sameAsInput(0),
  DynamicQuantizeMatMul: sameAsInput(0),
  MatMulIntegerToFloat: sameAsInput(2),
  FusedConv: sameAsInput(0),
  FusedGemm: sameAsInput(0),
  FusedMatMul: sameAsInput(0),
};

/** Default: every output has the type of the first input with a known type. */
function passThrough(node: Node, typeOf: TypeOf): (number | undefined)[] {
  let t: number | undefined;
  for (const v of node.inputs) {
    t = typeOf(v);
    if (t !== undefined) break;
  }
  return node.outputs.map(() => t);
}

/** Element type of every value in every graph of the model (values with unknown type are absent). */
export function inferElemTypes(model: Model): Map<Value, number> {
  const types = new Map<Value, number>();
  const typeOf: TypeOf = (v) => (v ? types.get(v) : undefined);
  const visit = (g: Graph): void => {
    for (const v of [...g.inputs, ...g.initializers]) {
      const t = v.elemType ?? v.initializer?.dataType;
      if (t) types.set(v, t);
    }
    for (const n of g.nodes) {
      for (const s of n.subgraphs()) visit(s);
      const declared = n.outputs.map((v) => v?.elemType);
      const rule = n.domain === '' || n.domain === 'ai.onnx' ? (OUTPUT_TYPE_RULES[n.opType] ?? passThrough) : n.domain === 'com.microsoft' ? MS_OUTPUT_TYPE_RULES[n.opType] : undefined;
      const inferred = rule ? rule(n, typeOf) : [];
      n.outputs.forEach((v, i) => {
        const t = declared[i] ?? inferred[i];
        if (v && t) types.set(v, t);
      });
    }
  };
  visit(model.graph);
  return types;
}
