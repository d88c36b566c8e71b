// Models that are already quantized, in the four forms onnxruntime runs: QDQ (float ops between
// DequantizeLinear/QuantizeLinear), QOperator (QLinearConv, QLinearMatMul, QGemm, …), integer ops
// (ConvInteger, MatMulInteger and onnxruntime's dynamic-quantization ops) and MatMulNBits. `inspect` names
// the form and counts the layers; every pass skips such layers with the reason from here.
import type { Model, Node } from './ir.js';
import { WEIGHT_LAYERS, weightLayerOf } from './weight-layers.js';

export type QuantizedForm = 'qdq' | 'qoperator' | 'integer' | 'nbits';

export const QUANTIZED_FORM_NAMES: Record<QuantizedForm, string> = {
  qdq: 'QDQ (QuantizeLinear/DequantizeLinear around float ops)',
  qoperator: 'QOperator (QLinear* ops)',
  integer: 'integer ops (ConvInteger/MatMulInteger, dynamic quantization)',
  nbits: 'MatMulNBits (block-wise 2-8 bit weights)',
};

/** Ops that are quantized by what they are, with their domain. */
// onnxruntime's saved optimized models hold its NHWC QLinearConv in com.microsoft
const QUANTIZED_OPS: Record<string, { domain: '' | 'com.microsoft' | 'both'; form: QuantizedForm }> = {
  QLinearConv: { domain: 'both', form: 'qoperator' },
  QLinearMatMul: { domain: 'both', form: 'qoperator' },
  QGemm: { domain: 'com.microsoft', form: 'qoperator' },
  QLinearAdd: { domain: 'com.microsoft', form: 'qoperator' },
  QLinearMul: { domain: 'com.microsoft', form: 'qoperator' },
  QLinearConcat: { domain: 'com.microsoft', form: 'qoperator' },
  QLinearAveragePool: { domain: 'com.microsoft', form: 'qoperator' },
  QLinearGlobalAveragePool: { domain: 'com.microsoft', form: 'qoperator' },
  QLinearLeakyRelu: { domain: 'com.microsoft', form: 'qoperator' },
  QLinearSigmoid: { domain: 'com.microsoft', form: 'qoperator' },
  QLinearSoftmax: { domain: 'com.microsoft', form: 'qoperator' },
  QLinearReduceMean: { domain: 'com.microsoft', form: 'qoperator' },
  QLinearWhere: { domain: 'com.microsoft', form: 'qoperator' },
  QAttention: { domain: 'com.microsoft', form: 'qoperator' },
  ConvInteger: { domain: '', form: 'integer' },
  MatMulInteger: { domain: '', form: 'integer' },
  DynamicQuantizeMatMul: { domain: 'com.microsoft', form: 'integer' },
  MatMulIntegerToFloat: { domain: 'com.microsoft', form: 'integer' },
  MatMulNBits: { domain: 'com.microsoft', form: 'nbits' },
};

const domainOf = (n: Node) => (n.domain === 'ai.onnx' ? '' : n.domain);

/** The quantized form a node belongs to as a layer, or null: a quantized op, or a float weight layer fed by a DequantizeLinear. */
export function quantizedFormOf(node: Node): QuantizedForm | null {
  const op = QUANTIZED_OPS[node.opType];
  if (op) return op.domain === domainOf(node) || (op.domain === 'both' && ['', 'com.microsoft'].includes(domainOf(node))) ? op.form : null;
  const layer = WEIGHT_LAYERS[node.opType] ? weightLayerOf(node) : null;
  const p = layer?.weight?.producer;
  return p && p.opType === 'DequantizeLinear' && domainOf(p) === '' ? 'qdq' : null;
}

/** Why a pass leaves this node alone, or null when it is not already quantized. */
export function alreadyQuantizedReason(node: Node): string | null {
  const form = quantizedFormOf(node);
  if (form === null) {
    // a float op between DequantizeLinear and QuantizeLinear: its QDQ is already there
    const reads = node.opType !== 'QuantizeLinear' && node.opType !== 'DequantizeLinear' && node.inputs.some((v) => v?.producer?.opType === 'DequantizeLinear' && domainOf(v.producer) === '');
    return reads ? 'already quantized (QDQ: reads a DequantizeLinear output)' : null;
  }
  if (form === 'qdq') return 'already quantized (QDQ: its weight comes from a DequantizeLinear)';
  return `already quantized (${form === 'qoperator' ? 'QOperator' : form === 'nbits' ? 'n-bit weights' : 'integer ops'}: ${node.opType})`;
}

export interface QuantizationSummary {
  /** Quantized layers of each form present (absent: none). */
  layers: Partial<Record<QuantizedForm, number>>;
  /** QuantizeLinear / DequantizeLinear nodes, in every graph. */
  quantizeLinear: number;
  dequantizeLinear: number;
}

/** What is quantized in the model, and in which form; null when nothing is. */
export function summarizeQuantization(model: Model): QuantizationSummary | null {
  const layers: Partial<Record<QuantizedForm, number>> = {};
  let q = 0;
  let dq = 0;
  for (const g of model.allGraphs()) {
    for (const n of g.nodes) {
      if (domainOf(n) === '' && n.opType === 'QuantizeLinear') q++;
      if (domainOf(n) === '' && n.opType === 'DequantizeLinear') dq++;
      const form = quantizedFormOf(n);
      if (form) layers[form] = (layers[form] ?? 0) + 1;
    }
  }
  if (Object.keys(layers).length === 0 && q === 0 && dq === 0) return null;
  return { layers, quantizeLinear: q, dequantizeLinear: dq };
}
