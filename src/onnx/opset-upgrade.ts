// Default-domain opset upgrade for old models (PP-OCR exports are opset 9/11), for the ops such
// models use. One table: for each op, the versions where its signature changed and how to rewrite
// a node across that change; ops listed as unchanged keep their semantics up to opset 14 (14 only
// widened types and added attributes whose defaults keep the old meaning). A model
// with any other op is not upgraded (the reason says which op), never guessed.
import { create } from '@bufbuild/protobuf';
import { OperatorSetIdProtoSchema } from 'onnx-buf';
import { DataType as DT } from './dtypes.js';
import type { Model, Node } from './ir.js';
import { addConstant } from './constants.js';
import { makeTensor } from './tensor-data.js';

interface UpgradeStep {
  /** The opset where the op's signature changed. */
  at: number;
  /** Rewrites the node to the new signature; returns a reason when it can't. */
  apply(node: Node): string | undefined;
}

const i64 = (n: Node, base: string, values: number[]) =>
  addConstant(n.graph, `${n.name || n.outputs[0]?.name || n.opType}_${base}`, makeTensor('', DT.INT64, [values.length], BigInt64Array.from(values.map(BigInt))));
const f32Scalar = (n: Node, base: string, value: number) =>
  addConstant(n.graph, `${n.name || n.outputs[0]?.name || n.opType}_${base}`, makeTensor('', DT.FLOAT, [], Float32Array.of(value)));

/** attribute → input, for the ops that moved a list attribute into an int64 input. */
const intsAttrToInput = (attr: string, slot: number): UpgradeStep['apply'] => (n) => {
  const v = n.getAttr(attr);
  if (v === undefined) return undefined;
  while (n.inputs.length < slot) n.setInput(n.inputs.length, null);
  n.setInput(slot, i64(n, attr, v as number[]));
  n.removeAttr(attr);
  return undefined;
};

/**
 * Before 13 Softmax-like ops coerced the input to 2-D at `axis` and normalised each row; from 13 they
 * normalise along one axis. On the last axis both agree; otherwise the old meaning is spelled out:
 * Flatten(axis) → op(axis=-1) → Reshape back to the input's shape.
 */
const coercedTo2d: UpgradeStep['apply'] = (n) => {
  const x = n.inputs[0]!;
  const y = n.outputs[0]!;
  const rank = x.shape?.length;
  const axis = n.getInt('axis', 1);
  if (axis === -1 || (rank !== undefined && axis === rank - 1)) return undefined;
  const g = n.graph;
  const at = g.nodes.indexOf(n);
  const base = n.name || y.name;
  const shape = g.addNode('Shape', [x], 1, { name: `${base}_shape`, at });
  const flat = g.addNode('Flatten', [x], 1, { name: `${base}_flatten`, at: at + 1 });
  flat.setAttr('axis', axis, 'int');
  const rows = g.createValue(`${y.name}_2d`);
  n.setInput(0, flat.outputs[0]!);
  n.setOutput(0, rows);
  n.setAttr('axis', -1, 'int');
  g.addNode('Reshape', [rows, shape.outputs[0]!], [y], { name: `${base}_reshape` });
  return undefined;
};

export const OPSET_UPGRADE_RULES: Record<string, UpgradeStep[]> = {
  // Clip-11: min/max attributes became optional inputs
  Clip: [
    {
      at: 11,
      apply: (n) => {
        const min = n.getAttr('min');
        const max = n.getAttr('max');
        n.setInput(1, min === undefined ? null : f32Scalar(n, 'min', min as number));
        n.setInput(2, max === undefined ? null : f32Scalar(n, 'max', max as number));
        n.removeAttr('min');
        n.removeAttr('max');
        return undefined;
      },
    },
  ],
  // Slice-10: starts/ends/axes attributes became inputs
  Slice: [
    {
      at: 10,
      apply: (n) => {
        const starts = n.getAttr('starts');
        const ends = n.getAttr('ends');
        if (starts === undefined) return undefined; // already inputs
        const axes = n.getAttr('axes');
        n.setInput(1, i64(n, 'starts', starts as number[]));
        n.setInput(2, i64(n, 'ends', ends as number[]));
        if (axes !== undefined) n.setInput(3, i64(n, 'axes', axes as number[]));
        for (const a of ['starts', 'ends', 'axes']) n.removeAttr(a);
        return undefined;
      },
    },
  ],
  Squeeze: [{ at: 13, apply: intsAttrToInput('axes', 1) }],
  Unsqueeze: [{ at: 13, apply: intsAttrToInput('axes', 1) }],
  ReduceSum: [{ at: 13, apply: intsAttrToInput('axes', 1) }],
  Split: [{ at: 13, apply: intsAttrToInput('split', 1) }],
  Softmax: [{ at: 13, apply: coercedTo2d }],
  LogSoftmax: [{ at: 13, apply: coercedTo2d }],
  Hardmax: [{ at: 13, apply: coercedTo2d }],
  // Pad-11: pads and value attributes became inputs
  Pad: [
    {
      at: 11,
      apply: (n) => {
        const pads = n.getAttr('pads');
        if (pads === undefined) return undefined;
        n.setInput(1, i64(n, 'pads', pads as number[]));
        const value = n.getAttr('value');
        if (value !== undefined) n.setInput(2, f32Scalar(n, 'value', value as number));
        n.removeAttr('pads');
        n.removeAttr('value');
        return undefined;
      },
    },
  ],
  // Upsample (deprecated at 10) → Resize-11 with the same (asymmetric) coordinate mapping
  Upsample: [
    {
      at: 10,
      apply: (n) => {
        const mode = n.getString('mode', 'nearest');
        if (!n.inputs[1]) return 'Upsample-7 (scales attribute) not supported';
        n.opType = 'Resize';
        const scales = n.inputs[1];
        n.setInputs([n.inputs[0]!, addConstant(n.graph, `${n.name || 'resize'}_roi`, makeTensor('', DT.FLOAT, [0], new Float32Array(0))), scales]);
        n.setAttr('mode', mode === 'bilinear' ? 'linear' : mode);
        n.setAttr('coordinate_transformation_mode', 'asymmetric');
        if (mode === 'nearest') n.setAttr('nearest_mode', 'floor');
        return undefined;
      },
    },
  ],
  // inference-mode Dropout is the identity (ratio moved to an input at 12; is_test removed at 7)
  Dropout: [
    {
      at: 12,
      apply: (n) => {
        if (n.outputs[1]?.consumers.length) return 'Dropout mask output is used';
        n.opType = 'Identity';
        n.setInputs([n.inputs[0]!]);
        n.setOutputs([n.outputs[0]!]);
        n.attributes.length = 0;
        return undefined;
      },
    },
  ],
  BatchNormalization: [
    {
      at: 9,
      apply: (n) => {
        if (n.getInt('spatial', 1) !== 1) return 'non-spatial BatchNormalization';
        n.removeAttr('spatial');
        n.removeAttr('is_test');
        n.removeAttr('consumed_inputs');
        return undefined;
      },
    },
  ],
};

/** Ops whose inputs, attributes and semantics (as these models use them) are the same from opset 9 to 13. */
export const OPSET_STABLE_OPS = new Set([
  'Conv', 'ConvTranspose', 'Relu', 'LeakyRelu', 'PRelu', 'Elu', 'Sigmoid', 'HardSigmoid', 'Tanh', 'Softplus', 'Erf',
  'Add', 'Sub', 'Mul', 'Div', 'Pow', 'Sqrt', 'Reciprocal', 'Exp', 'Log', 'Neg', 'Abs', 'Floor', 'Ceil', 'Min', 'Max', 'Sum', 'Mean',
  'MatMul', 'Gemm', 'GlobalAveragePool', 'GlobalMaxPool', 'AveragePool', 'MaxPool', 'Concat', 'Reshape', 'Transpose', 'Flatten',
  'Cast', 'Shape', 'Gather', 'Identity', 'Constant', 'ConstantOfShape', 'ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd',
  'Equal', 'Less', 'Greater', 'Not', 'And', 'Or', 'Where', 'Expand', 'Tile', 'InstanceNormalization', 'LRN', 'Resize',
]);

export interface UpgradeResult {
  upgraded: boolean;
  reason?: string;
  rewritten: number;
}

/** Upgrades the default-domain opset to `target` in place, or leaves the model untouched with the reason. */
export function upgradeOpset(model: Model, target = 13): UpgradeResult {
  const from = model.opset('') ?? 0;
  if (from >= target) return { upgraded: false, reason: `already opset ${from}`, rewritten: 0 };
  if (from < 9) return { upgraded: false, reason: `opset ${from} < 9 not supported`, rewritten: 0 };
  // analyse first: every node must be upgradable before anything changes
  const nodes = [...model.allGraphs()].flatMap((g) => g.nodes).filter((n) => n.domain === '' || n.domain === 'ai.onnx');
  for (const n of nodes) {
    if (n.subgraphs().length > 0) return { upgraded: false, reason: `${n.opType} with subgraphs not supported`, rewritten: 0 };
    if (!OPSET_STABLE_OPS.has(n.opType) && !OPSET_UPGRADE_RULES[n.opType]) return { upgraded: false, reason: `no upgrade rule for ${n.opType}`, rewritten: 0 };
    if (n.opType === 'Dropout' && n.outputs[1]?.consumers.length) return { upgraded: false, reason: 'Dropout mask output is used', rewritten: 0 };
    if (n.opType === 'BatchNormalization' && n.getInt('spatial', 1) !== 1) return { upgraded: false, reason: 'non-spatial BatchNormalization', rewritten: 0 };
    if (n.opType === 'Upsample' && !n.inputs[1]) return { upgraded: false, reason: 'Upsample-7 (scales attribute) not supported', rewritten: 0 };
    if (n.opType === 'Slice' && n.getAttr('starts') !== undefined && [...n.inputs].length > 1) return { upgraded: false, reason: 'Slice with both attributes and inputs', rewritten: 0 };
  }
  let rewritten = 0;
  for (const n of nodes) {
    for (const s of OPSET_UPGRADE_RULES[n.opType] ?? []) {
      if (s.at <= from || s.at > target) continue;
      const why = s.apply(n);
      if (why) throw new Error(`opset upgrade of ${n}: ${why}`);
      rewritten++;
    }
  }
  for (const g of model.allGraphs()) g.toposort(false);
  const entry = model.proto.opsetImport.find((o) => o.domain === '' || o.domain === 'ai.onnx')!;
  entry.version = BigInt(target);
  if (model.proto.irVersion < 7n) model.proto.irVersion = 7n;
  return { upgraded: true, rewritten };
}


/**
 * Makes the model import `domain` (one whose ops a pass adds, e.g. com.microsoft) at `version` or
 * newer. The default domain is upgraded with upgradeOpset instead: its nodes change with it.
 */
export function requireOpsetImport(model: Model, domain: string, version: number): void {
  if (domain === '' || domain === 'ai.onnx') throw new Error('requireOpsetImport: use upgradeOpset for the default domain');
  const entry = model.proto.opsetImport.find((o) => o.domain === domain);
  if (!entry) model.proto.opsetImport.push(create(OperatorSetIdProtoSchema, { domain, version: BigInt(version) }));
  else if (entry.version < BigInt(version)) entry.version = BigInt(version);
}
