// The one table of weight layers: for every op that multiplies its input by a weight tensor, which
// input holds the weight and which the bias, and along which axes of the weight (as stored) its
// output and input channels run, with Conv's `group` and Gemm's transA/transB. Passes ask
// weightLayerOf(node) instead of knowing any of this themselves.
import { getConstant } from './constants.js';
import type { Node, Value } from './ir.js';
import { tensorDims } from './tensor-data.js';

/**
 * How a weight is stored (M output channels, C input channels):
 * - conv: [M, C/group, k…];
 * - convTranspose: [C, M/group, k…];
 * - matmul: B [… K, N], or [… N, K] with transB; the data input is [… rows, K], or [K, rows] with transA;
 * - nbits: MatMulNBits' packed B [N, K/block, block bytes] (K runs over the last two axes).
 */
export type WeightLayout = 'conv' | 'convTranspose' | 'matmul' | 'nbits';

export interface WeightLayerRule {
  domain: '' | 'com.microsoft';
  layout: WeightLayout;
  /** Input index of the weight. */
  weight: number;
  /** Input index of the bias (Gemm: C, which broadcasts to the output); null when the op has none. */
  bias: number | null;
}

export const WEIGHT_LAYERS: Record<string, WeightLayerRule> = {
  Conv: { domain: '', layout: 'conv', weight: 1, bias: 2 },
  ConvTranspose: { domain: '', layout: 'convTranspose', weight: 1, bias: 2 },
  Gemm: { domain: '', layout: 'matmul', weight: 1, bias: 2 },
  MatMul: { domain: '', layout: 'matmul', weight: 1, bias: null },
  // x, w, x_zero_point, w_zero_point
  ConvInteger: { domain: '', layout: 'conv', weight: 1, bias: null },
  MatMulInteger: { domain: '', layout: 'matmul', weight: 1, bias: null },
  // x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, B
  QLinearConv: { domain: '', layout: 'conv', weight: 3, bias: 8 },
  QLinearMatMul: { domain: '', layout: 'matmul', weight: 3, bias: null },
  // onnxruntime's own ops: the quantize passes write the last three; the fused ones are in models
  // onnxruntime optimized and saved
  FusedConv: { domain: 'com.microsoft', layout: 'conv', weight: 1, bias: 2 },
  FusedGemm: { domain: 'com.microsoft', layout: 'matmul', weight: 1, bias: 2 },
  FusedMatMul: { domain: 'com.microsoft', layout: 'matmul', weight: 1, bias: null },
  // A, B, b_scale, b_zero_point, bias
  DynamicQuantizeMatMul: { domain: 'com.microsoft', layout: 'matmul', weight: 1, bias: 4 },
  // A, B, a_scale, b_scale, a_zero_point, b_zero_point, bias
  MatMulIntegerToFloat: { domain: 'com.microsoft', layout: 'matmul', weight: 1, bias: 6 },
  // A, B, scales, zero_points, g_idx, bias
  MatMulNBits: { domain: 'com.microsoft', layout: 'nbits', weight: 1, bias: 5 },
};

/** A node of WEIGHT_LAYERS, with its weight and bias inputs and the axes of its weight. */
export interface WeightLayer {
  node: Node;
  layout: WeightLayout;
  weightInput: number;
  /** The value at the weight input (null: not connected). */
  weight: Value | null;
  /** Null when the op has no bias input. */
  biasInput: number | null;
  /** The value at the bias input (null: none connected). */
  bias: Value | null;
  /** Rank of the weight: its constant's, else its declared shape's; null when unknown. */
  rank: number | null;
  /** Axis of the weight along the output channels (a grouped ConvTranspose: the M/group of each group); null when none or the rank is unknown. */
  outAxis: number | null;
  /** Axis of the weight along the input channels (a grouped Conv: the C/group of each group); null when none or the rank is unknown. */
  inAxis: number | null;
  /** Conv/ConvTranspose `group`: group g owns output channels [g·M/groups, …) and input channels [g·C/groups, …). 1 otherwise. */
  groups: number;
  /** Gemm/FusedMatMul transA = 1: the data input is [K, rows], its features along axis 0. */
  inputTransposed: boolean;
}

function axes(node: Node, layout: WeightLayout, rank: number): { out: number | null; in: number | null } {
  if (layout === 'conv') return { out: 0, in: 1 };
  if (layout === 'convTranspose') return { out: 1, in: 0 };
  if (layout === 'nbits') return { out: 0, in: null };
  // FusedMatMul's transBatchB moves the batch axes of B around K and N
  if (node.getInt('transBatchB', 0) !== 0) return { out: null, in: null };
  if (rank === 0) return { out: null, in: null };
  if (rank === 1) return { out: null, in: 0 }; // B [K]: one output, no channel axis
  const transB = node.getInt('transB', 0) !== 0;
  return transB ? { out: rank - 2, in: rank - 1 } : { out: rank - 1, in: rank - 2 };
}

/** The node as a weight layer, or null when its op is not in WEIGHT_LAYERS (in its domain). */
export function weightLayerOf(node: Node): WeightLayer | null {
  const rule = WEIGHT_LAYERS[node.opType];
  if (!rule || rule.domain !== (node.domain === 'ai.onnx' ? '' : node.domain)) return null;
  const weight = node.inputs[rule.weight] ?? null;
  const constant = getConstant(weight);
  const rank = constant ? tensorDims(constant).length : (weight?.shape?.length ?? null);
  const { out, in: inAxis } = rank === null ? { out: null, in: null } : axes(node, rule.layout, rank);
  const grouped = rule.layout === 'conv' || rule.layout === 'convTranspose';
  return {
    node,
    layout: rule.layout,
    weightInput: rule.weight,
    weight,
    biasInput: rule.bias,
    bias: rule.bias === null ? null : (node.inputs[rule.bias] ?? null),
    rank,
    outAxis: out,
    inAxis,
    groups: grouped ? node.getInt('group', 1) : 1,
    inputTransposed: rule.layout === 'matmul' && node.getInt('transA', 0) !== 0,
  };
}

/**
 * The weight axis that indexes every output channel of the layer once (per-channel scales and
 * factors go along it), or null: a grouped ConvTranspose holds only M/group channels on its output axis.
 */
export function perOutputChannelAxis(layer: WeightLayer): number | null {
  return layer.layout === 'convTranspose' && layer.groups !== 1 ? null : layer.outAxis;
}

/** Axis of a layer's output tensor (rank `rank`) that holds its channels: 1 for convolutions, else the last. */
export function outputChannelAxis(opType: string, rank: number): number {
  const layout = WEIGHT_LAYERS[opType]?.layout;
  return layout === 'conv' || layout === 'convTranspose' ? 1 : rank - 1;
}
