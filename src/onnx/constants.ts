// Constant weights live either in graph initializers or in Constant nodes (PP-OCR, Silero v5 keep
// every weight in Constant nodes). Passes go through these helpers and never care which.
import { create } from '@bufbuild/protobuf';
import { TensorProtoSchema, type TensorProto } from 'onnx-buf';
import { UnsupportedModelError } from '../errors.js';
import { DataType as DT, dtypeName, isFloatType } from './dtypes.js';
import type { Graph, Model, Node, Value } from './ir.js';
import { elementCount, makeTensor, readFloat32, tensorByteSize, tensorDims } from './tensor-data.js';

/** The tensor behind a constant value, or undefined if the value is computed at run time. */
export function getConstant(v: Value | null | undefined): TensorProto | undefined {
  if (!v) return undefined;
  if (v.initializer) return v.initializer;
  const p = v.producer;
  if (p && p.opType === 'Constant' && p.domain === '') return constantNodeTensor(p);
  return undefined;
}

/** The constant's tensor when it holds floats (float32/16, bfloat16, double); integer constants (shapes, indices) are not. */
export function getFloatConstant(v: Value | null | undefined): TensorProto | undefined {
  const t = getConstant(v);
  return t && isFloatType(t.dataType) ? t : undefined;
}

/**
 * The float values of constant `v` as `node` reads them. Only float tensors are weights or
 * activations; an integer constant here (shape arithmetic) is refused with the node named.
 */
export function readFloatConstant(v: Value, node: Node): Float32Array {
  const t = getConstant(v);
  if (!t) throw new UnsupportedModelError(`${node.opType} node '${node.name || node.outputs[0]?.name || ''}': input '${v.name}' is not a constant`);
  if (!isFloatType(t.dataType)) {
    throw new UnsupportedModelError(`${node.opType} node '${node.name || node.outputs[0]?.name || ''}': constant input '${v.name}' is ${dtypeName(t.dataType)}, not a float tensor`);
  }
  return readFloat32(t);
}

/** A Constant node's value as a tensor (value_float/value_ints… are converted on the fly). */
export function constantNodeTensor(node: Node): TensorProto | undefined {
  const a = node.attributes[0];
  if (!a) return undefined;
  const name = a.proto.name;
  if (name === 'value') return a.proto.t;
  if (name === 'value_float') return makeTensor('', DT.FLOAT, [], Float32Array.of(a.proto.f));
  if (name === 'value_floats') return makeTensor('', DT.FLOAT, [a.proto.floats.length], Float32Array.from(a.proto.floats));
  if (name === 'value_int') return makeTensor('', DT.INT64, [], BigInt64Array.of(a.proto.i));
  if (name === 'value_ints') return makeTensor('', DT.INT64, [a.proto.ints.length], BigInt64Array.from(a.proto.ints));
  return undefined; // sparse_value, strings: not numeric weights
}

/** True when the Constant node holds its tensor in the `value` attribute (so it can be replaced in place). */
function holdsTensorAttr(node: Node): boolean {
  return node.attributes.length === 1 && node.attributes[0]!.proto.name === 'value';
}

/**
 * Replaces a constant's tensor, wherever it lives. A value shared by several consumers is changed
 * for all of them: callers that want a private copy use `addConstant` instead.
 */
export function setConstant(v: Value, tensor: TensorProto): void {
  if (v.initializer) {
    tensor.name = v.name;
    v.initializer = tensor;
    return;
  }
  const p = v.producer;
  if (!p || p.opType !== 'Constant') throw new Error(`value '${v.name}' is not a constant`);
  if (!holdsTensorAttr(p)) {
    p.attributes.length = 0;
  }
  tensor.name = '';
  p.setAttr('value', tensor);
}

/** Adds a new constant in the same storage style the graph already uses (Constant nodes or initializers). */
export function addConstant(graph: Graph, base: string, tensor: TensorProto, style: 'initializer' | 'constant-node' = graphStyle(graph)): Value {
  if (style === 'initializer' && graph.parent === null) return graph.addInitializer(base, tensor);
  // Subgraphs may have initializers too, but Constant nodes keep the graph's scoping simple.
  const out = graph.createValue(base);
  const node = graph.addNode('Constant', [], [out], { at: 0 });
  tensor.name = '';
  node.setAttr('value', tensor);
  return out;
}

function graphStyle(graph: Graph): 'initializer' | 'constant-node' {
  if (graph.initializers.length > 0) return 'initializer';
  return graph.nodes.some((n) => n.opType === 'Constant') ? 'constant-node' : 'initializer';
}

export interface ConstantRef {
  value: Value;
  tensor: TensorProto;
  graph: Graph;
  storage: 'initializer' | 'constant-node';
}

/** Every constant tensor of the model: initializers and Constant nodes, subgraphs included. */
export function allConstants(model: Model): ConstantRef[] {
  const out: ConstantRef[] = [];
  for (const g of model.allGraphs()) {
    for (const v of g.initializers) out.push({ value: v, tensor: v.initializer!, graph: g, storage: 'initializer' });
    for (const n of g.nodes) {
      if (n.opType !== 'Constant' || n.domain !== '') continue;
      const t = constantNodeTensor(n);
      const v = n.outputs[0];
      if (t && v) out.push({ value: v, tensor: t, graph: g, storage: 'constant-node' });
    }
  }
  return out;
}

/**
 * Parameter rule: elements of constant tensors of floating types and of the 8/4-bit integer types
 * quantized weights use. int32/int64/bool constants are shapes, axes and indices, not parameters.
 */
export function isParameterType(dt: number): boolean {
  return isFloatType(dt) || dt === DT.INT8 || dt === DT.UINT8 || dt === DT.INT4 || dt === DT.UINT4;
}

export function countParameters(model: Model): number {
  let n = 0;
  for (const c of allConstants(model)) if (isParameterType(c.tensor.dataType)) n += elementCount(tensorDims(c.tensor));
  return n;
}

export function weightBytesByDtype(model: Model): Map<number, number> {
  const out = new Map<number, number>();
  for (const c of allConstants(model)) {
    out.set(c.tensor.dataType, (out.get(c.tensor.dataType) ?? 0) + tensorByteSize(c.tensor));
  }
  return out;
}

export function emptyTensor(): TensorProto {
  return create(TensorProtoSchema);
}

/** Suffixes, after a base name, of what `addDequantizedConstant` adds; zeroPoint null: no zero-point input. */
export interface DequantizedNames {
  levels: string;
  scale: string;
  zeroPoint: string | null;
  output: string;
  node: string;
}

export const DEQUANTIZED_NAMES: DequantizedNames = { levels: '_quantized', scale: '_scale', zeroPoint: '_zero_point', output: '_dequantized', node: '_DequantizeLinear' };
/** The same without the zero-point input (an omitted one means 0): smaller files where no kernel fusion needs it. */
export const DEQUANTIZED_NAMES_NO_ZERO_POINT: DequantizedNames = { ...DEQUANTIZED_NAMES, zeroPoint: null };

/**
 * A quantized constant behind a DequantizeLinear with zero point 0: int8 weights or int32 biases
 * `levels` of shape `dims`, one scale per index along `axis` or one for the tensor (axis null).
 * Returns the DequantizeLinear's float output.
 */
export function addDequantizedConstant(
  graph: Graph,
  base: string,
  levels: Int8Array | Int32Array,
  dims: readonly number[],
  scales: Float32Array,
  axis: number | null,
  names: DequantizedNames = DEQUANTIZED_NAMES,
): Value {
  const dtype = levels instanceof Int8Array ? DT.INT8 : DT.INT32;
  const shape = axis === null ? [] : [scales.length];
  const inputs = [
    addConstant(graph, `${base}${names.levels}`, makeTensor('', dtype, dims, levels)),
    addConstant(graph, `${base}${names.scale}`, makeTensor('', DT.FLOAT, shape, scales)),
  ];
  if (names.zeroPoint !== null) {
    const zeros = dtype === DT.INT8 ? new Int8Array(scales.length) : new Int32Array(scales.length);
    inputs.push(addConstant(graph, `${base}${names.zeroPoint}`, makeTensor('', dtype, shape, zeros)));
  }
  const out = graph.createValue(`${base}${names.output}`);
  const node = graph.addNode('DequantizeLinear', inputs, [out], { name: `${base}${names.node}` });
  if (axis !== null) node.setAttr('axis', axis, 'int');
  return out;
}
