// The one table of how each op is quantized in QDQ form (like onnxruntime's QDQ op-quantizer registry):
// which inputs get a QuantizeLinear→DequantizeLinear pair, which input is an int8 weight and along
// which axis its channels run, where the int32 bias is, and what happens to the output.
import type { Node } from '../onnx/ir.js';

export interface QdqOpRule {
  /** Float activation inputs that get a Q→DQ pair (constant inputs are quantized offline instead). */
  inputs: (node: Node) => number[];
  /** Constant weight input quantized to int8 symmetric; `axis` = output-channel axis (null: per tensor only). */
  weight?: { slot: number; axis: (node: Node, rank: number) => number | null };
  /** int32 bias input, in the scale input0 × weight (onnxruntime folds it into the integer kernel). */
  bias?: number;
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
  Conv: { inputs: first, weight: { slot: 1, axis: () => 0 }, bias: 2, output: 'quantize', fusesActivation: true },
  // QLinearConvTranspose: weight [Cin, Cout/group, k…]; channels are along axis 1 when group = 1
  ConvTranspose: {
    inputs: first,
    weight: { slot: 1, axis: (n) => (n.getInt('group', 1) === 1 ? 1 : null) },
    bias: 2,
    output: 'quantize',
    fusesActivation: true,
  },
  // QGemm (com.microsoft)
  Gemm: {
    inputs: first,
    weight: { slot: 1, axis: (n) => (n.getInt('transB', 0) ? 0 : 1) },
    bias: 2,
    output: 'quantize',
    fusesActivation: true,
    unsupported: (n) =>
      n.getInt('transA', 0) !== 0 ? 'transA=1' : Number(n.getAttr('alpha', 1)) !== 1 || Number(n.getAttr('beta', 1)) !== 1 ? 'alpha/beta ≠ 1' : undefined,
  },
  // QLinearMatMul / MatMulIntegerToFloat; a constant 2-D B is a weight with channels along its columns
  MatMul: { inputs: all, weight: { slot: 1, axis: (_n, rank) => (rank === 2 ? 1 : null) }, output: 'quantize' },
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
