// The one table of how each op is quantized in QDQ form (like onnxruntime's QDQ op-quantizer registry):
// which inputs get a QuantizeLinear→DequantizeLinear pair, whether the op's weight (and bias) are
// stored int8 (int32), and what happens to the output. Which input is the weight and along which
// axis its channels run is src/onnx/weight-layers.ts.
import type { Node } from '../onnx/ir.js';
import { perOutputChannelAxis, type WeightLayer } from '../onnx/weight-layers.js';

export interface QdqOpRule {
  /** Float activation inputs that get a Q→DQ pair (constant inputs are quantized offline instead). */
  inputs: (node: Node) => number[];
  /**
   * A weight layer whose constant weight is quantized to int8 symmetric (scales along `weightScaleAxis`)
   * and its bias to int32 in the scale input0 × weight (onnxruntime folds it into the integer kernel).
   */
  weight?: boolean;
  /**
   * The weight's and bias's DequantizeLinear carry no zero-point input (it is 0): onnxruntime still fuses
   * them into the integer kernel (checked for QLinearConv; QGemm is not formed without one). Per-channel
   * zero points were 5% of a small int8 CNN's file.
   */
  omitWeightZeroPoint?: boolean;
  /**
   * 'quantize': the output gets its own calibrated Q→DQ pair;
   * 'shareInput': the output reuses input 0's scale (data movement ops: onnxruntime drops the pair and
   * runs the op on int8 directly, which needs equal scales).
   */
  output: 'quantize' | 'shareInput';
  /** Inputs and output share one scale (Concat: no rescaling of its inputs). */
  sharedScale?: boolean;
  /** A following Relu/Clip is absorbed: no Q/DQ between the op and the activation (fused kernel). */
  fusesActivation?: boolean;
  /** Reason this node can't be quantized, if any. */
  unsupported?: (node: Node) => string | undefined;
}

const first = () => [0];
const all = (n: Node) => n.inputs.map((_, i) => i).filter((i) => n.inputs[i]);

export const QDQ_OP_RULES: Record<string, QdqOpRule> = {
  // QLinearConv
  Conv: { inputs: first, weight: true, omitWeightZeroPoint: true, output: 'quantize', fusesActivation: true },
  // QLinearConvTranspose
  ConvTranspose: { inputs: first, weight: true, output: 'quantize', fusesActivation: true },
  // QGemm (com.microsoft)
  Gemm: {
    inputs: first,
    weight: true,
    output: 'quantize',
    fusesActivation: true,
    unsupported: (n) =>
      n.getInt('transA', 0) !== 0 ? 'transA=1' : Number(n.getAttr('alpha', 1)) !== 1 || Number(n.getAttr('beta', 1)) !== 1 ? 'alpha/beta ≠ 1' : undefined,
  },
  // QLinearMatMul / MatMulIntegerToFloat; a constant B is a weight
  MatMul: { inputs: all, weight: true, output: 'quantize' },
  // QLinearAdd / QLinearMul (com.microsoft): keeps residual additions in int8
  Add: { inputs: all, output: 'quantize', fusesActivation: true },
  Mul: { inputs: all, output: 'quantize' },
  // QLinearAveragePool / QLinearGlobalAveragePool (com.microsoft)
  AveragePool: { inputs: first, output: 'quantize' },
  GlobalAveragePool: { inputs: first, output: 'quantize' },
  // QLinearSigmoid / QLinearLeakyRelu (com.microsoft)
  Sigmoid: { inputs: first, output: 'quantize' },
  LeakyRelu: { inputs: first, output: 'quantize' },
  // QLinearConcat (com.microsoft); one scale for all inputs and the output means no requantization
  Concat: { inputs: all, output: 'quantize', sharedScale: true },
  // data movement: int8 in, int8 out, same scale
  MaxPool: { inputs: first, output: 'shareInput', unsupported: (n) => (n.outputs[1]?.consumers.length ? 'Indices output used' : undefined) },
  Resize: { inputs: first, output: 'shareInput' },
  Reshape: { inputs: first, output: 'shareInput' },
  Flatten: { inputs: first, output: 'shareInput' },
  Transpose: { inputs: first, output: 'shareInput' },
  Squeeze: { inputs: first, output: 'shareInput' },
  Unsqueeze: { inputs: first, output: 'shareInput' },
};

/**
 * Axis of an int8 weight's per-channel scales; null: one scale for the tensor. A batched MatMul B
 * ([b, K, N]: b weight matrices) and a grouped ConvTranspose get one scale.
 */
export function weightScaleAxis(layer: WeightLayer): number | null {
  if (layer.layout === 'matmul' && layer.rank !== 2) return null;
  return perOutputChannelAxis(layer);
}

/** Activations absorbed into the op before them when it `fusesActivation` (Q after the activation). */
export const FUSABLE_ACTIVATIONS = new Set(['Relu', 'Clip']);

/** Ops left float on purpose, with the reason the report shows. */
export const QDQ_KEEP_FLOAT: Record<string, string> = {
  Softmax: 'precision-sensitive (normalisation over a wide dynamic range)',
  LayerNormalization: 'precision-sensitive (normalisation)',
  ReduceMean: 'precision-sensitive (normalisation statistics)',
  Div: 'no int8 kernel in onnxruntime',
  HardSigmoid: 'no int8 kernel in onnxruntime',
  HardSwish: 'no int8 kernel in onnxruntime (runs float between the integer kernels around it)',
  BatchNormalization: 'not after a Conv (could not be folded)',
};
