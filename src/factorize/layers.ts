// Which layers can be factorized, and what a factorized layer is: the ONE table of per-op rules for
// the family (Conv, MatMul, Gemm), and the chain of smaller nodes that replaces a layer. Where each
// op keeps its weight and bias is src/onnx/weight-layers.ts.
import { getConstant } from '../onnx/constants.js';
import type { Node, Value } from '../onnx/ir.js';
import { floatWeightProblem, readFloatWeight, type WeightFloatType } from '../onnx/float-weights.js';
import { weightLayerOf, type WeightLayer } from '../onnx/weight-layers.js';

export type FactorMethod = 'svd' | 'tucker' | 'cp';

export interface Layer {
  node: Node;
  op: 'Conv' | 'MatMul' | 'Gemm';
  input: Value;
  output: Value;
  /** The weight as the op stores it (its axes: `weightLayer`). */
  weightDims: number[];
  weight: Float32Array;
  /** The element type the weights are stored in (read as float32, written back in it). */
  dtype: WeightFloatType;
  /** Conv bias [Cout] or Gemm C (any broadcastable shape). */
  bias: { dims: number[]; data: Float32Array } | null;
  /** Conv: number of spatial axes. */
  spatial: number;
  /** Where the node keeps its weight and bias, and the weight's axes. */
  weightLayer: WeightLayer;
}

export type AttrSpec = [name: string, value: number | number[] | string, kind?: 'int' | 'float' | 'ints' | 'floats'];

/** One node of a factorized chain. The chain's first node reads the layer input, its last writes the layer output. */
export interface ChainStep {
  op: 'Conv' | 'MatMul' | 'Gemm';
  role: string;
  weightDims: number[];
  weight: Float32Array;
  bias?: { dims: number[]; data: Float32Array };
  attrs: AttrSpec[];
  /** Axis of the step's input that holds the features a least-squares refit works on (undefined: no refit). */
  refitAxis?: number;
  /** A spatial core refit together with the chain's last step (Tucker with an output projection). */
  refitWithLast?: boolean;
}

interface LayerRule {
  /** Methods that apply to this op. */
  methods: FactorMethod[];
  /** The layer, or why it cannot be factorized by `method`. */
  match(node: Node, method: FactorMethod): Layer | string;
}

/** A float constant read as float32 (float16/bfloat16 too: the chain is written back in the layer's type). */
function floatConstant(v: Value | null | undefined): { dims: number[]; data: Float32Array; dtype: WeightFloatType } | string {
  const t = getConstant(v);
  return floatWeightProblem(t) ?? readFloatWeight(t!);
}

function ioOf(node: Node): { input: Value; output: Value; weightLayer: WeightLayer } | string {
  const input = node.inputs[0];
  const output = node.outputs[0];
  const weightLayer = weightLayerOf(node);
  if (!weightLayer) return `${node.opType} in domain '${node.domain}' is not a weight layer`;
  if (!input || !output) return 'missing input or output';
  if (getConstant(input)) return 'the data input is a constant';
  return { input, output, weightLayer };
}

export const LAYER_RULES: Record<string, LayerRule> = {
  Conv: {
    methods: ['svd', 'tucker', 'cp'],
    match(node, method) {
      const io = ioOf(node);
      if (typeof io === 'string') return io;
      const w = floatConstant(io.weightLayer.weight);
      if (typeof w === 'string') return w;
      if (io.weightLayer.groups !== 1) return `grouped convolution (group ${io.weightLayer.groups})`;
      const spatial = w.dims.length - 2;
      if (spatial < 1 || spatial > 3) return `${spatial}-D convolution`;
      const kernel = w.dims.slice(2);
      const pointwise = kernel.every((k) => k === 1);
      if (method === 'svd' && !pointwise) return 'kernel is not 1×1 (use factorize.tucker or factorize.cp)';
      if (method !== 'svd' && pointwise) return '1×1 kernel (use factorize.svd)';
      const autoPad = node.getString('auto_pad', 'NOTSET');
      if (method === 'cp' && autoPad !== 'NOTSET' && autoPad !== 'VALID') return `auto_pad ${autoPad} cannot be split per axis`;
      let bias: Layer['bias'] = null;
      if (io.weightLayer.bias) {
        const b = floatConstant(io.weightLayer.bias);
        if (typeof b === 'string') return `bias: ${b}`;
        bias = b;
      }
      return { node, op: 'Conv', ...io, weightDims: w.dims, weight: w.data, dtype: w.dtype, bias, spatial };
    },
  },
  MatMul: {
    methods: ['svd'],
    match(node) {
      const io = ioOf(node);
      if (typeof io === 'string') return io;
      const w = floatConstant(io.weightLayer.weight);
      if (typeof w === 'string') return w;
      if (w.dims.length !== 2) return `weight has rank ${w.dims.length} (2-D weights only)`;
      return { node, op: 'MatMul', ...io, weightDims: w.dims, weight: w.data, dtype: w.dtype, bias: null, spatial: 0 };
    },
  },
  Gemm: {
    methods: ['svd'],
    match(node) {
      const io = ioOf(node);
      if (typeof io === 'string') return io;
      const w = floatConstant(io.weightLayer.weight);
      if (typeof w === 'string') return w;
      let bias: Layer['bias'] = null;
      if (io.weightLayer.bias) {
        const c = floatConstant(io.weightLayer.bias);
        if (typeof c === 'string') return `C: ${c}`;
        bias = c;
      }
      return { node, op: 'Gemm', ...io, weightDims: w.dims, weight: w.data, dtype: w.dtype, bias, spatial: 0 };
    },
  },
};

/** Conv attributes that keep their meaning on the chain's spatial step. */
export function convGeometry(node: Node, spatial: number): { strides: number[]; pads: number[]; dilations: number[]; autoPad: string } {
  return {
    strides: node.getInts('strides', new Array(spatial).fill(1)),
    pads: node.getInts('pads', new Array(2 * spatial).fill(0)),
    dilations: node.getInts('dilations', new Array(spatial).fill(1)),
    autoPad: node.getString('auto_pad', 'NOTSET'),
  };
}

export function countWeights(steps: readonly ChainStep[]): number {
  return steps.reduce((s, st) => s + st.weight.length, 0);
}

/** A 1×1(×1) convolution step. */
export function pointwiseStep(role: string, cout: number, cin: number, spatial: number, weight: Float32Array, bias?: ChainStep['bias']): ChainStep {
  const ones = new Array(spatial).fill(1);
  return {
    op: 'Conv',
    role,
    weightDims: [cout, cin, ...ones],
    weight,
    ...(bias ? { bias } : {}),
    attrs: [['kernel_shape', ones, 'ints']],
    refitAxis: 1,
  };
}
