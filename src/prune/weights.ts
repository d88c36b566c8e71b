// Which constant weights the unstructured / N:M pruning passes touch: the op types, and the selection
// (excluded nodes, size floor, float32 only, one entry per shared weight). Where each op keeps its
// weight and along which axis its input channels run is src/onnx/weight-layers.ts.
import { gzipSync } from 'node:zlib';
import { Type, type Static } from '@sinclair/typebox';
import type { TensorProto } from 'onnx-buf';
import type { Model, Node, Value } from '../onnx/ir.js';
import { getConstant, setConstant } from '../onnx/constants.js';
import { encodeModel } from '../onnx/model-io.js';
import { elementCount, tensorDims } from '../onnx/tensor-data.js';
import { floatWeightProblem, makeFloatTensor, readFloatWeight, type WeightFloatType } from '../onnx/float-weights.js';
import { weightLayerOf } from '../onnx/weight-layers.js';
import { skipAlreadyQuantized, statFamily, statsSchema, type ChangeLog } from '../pipeline/pass.js';
import { formatPercent } from '../format.js';

/** The weight layers the unstructured and N:M passes prune. */
export const DEFAULT_PRUNE_OPS = ['Conv', 'ConvTranspose', 'Gemm', 'MatMul'];

export interface PrunableWeight {
  node: Node;
  value: Value;
  dims: number[];
  data: Float32Array;
  /** The type the weight is stored in: pruned in float32, written back in it. */
  dtype: WeightFloatType;
  /** The weight's input-channel axis (N:M groups run along it); null when it has none. */
  inputAxis: number | null;
  zerosBefore: number;
}

export interface SelectOptions {
  opTypes: string[];
  excludeNodes: string[];
  minElements: number;
}

/** The float constant weights (float32, float16, bfloat16) of the selected ops; every other candidate is logged as skipped, with the reason. */
export function selectWeights(model: Model, opts: SelectOptions, log: ChangeLog): PrunableWeight[] {
  const ops = new Set(opts.opTypes.filter((op) => DEFAULT_PRUNE_OPS.includes(op)));
  const exclude = new Set(opts.excludeNodes);
  const seen = new Set<Value>();
  const out: PrunableWeight[] = [];
  const named = new Set<string>();
  const quantized = skipAlreadyQuantized(model, log);
  for (const g of model.allGraphs()) {
    for (const node of g.nodes) {
      if (node.name) named.add(node.name);
      if (quantized.has(node)) continue;
      const layer = node.domain === '' && ops.has(node.opType) ? weightLayerOf(node) : null;
      if (!layer) continue;
      if (exclude.has(node.name)) {
        log.skip(node, 'in excludeNodes');
        continue;
      }
      const value = layer.weight;
      const tensor: TensorProto | undefined = getConstant(value);
      if (!value || !tensor) {
        log.skip(node, 'weight is not a constant');
        continue;
      }
      const problem = floatWeightProblem(tensor);
      if (problem) {
        log.skip(node, problem);
        continue;
      }
      const dims = tensorDims(tensor);
      if (elementCount(dims) < opts.minElements) {
        log.skip(node, `weight has ${elementCount(dims)} elements < minElements ${opts.minElements}`);
        continue;
      }
      if (seen.has(value)) {
        log.skip(node, 'weight shared with a node already selected (pruned once)');
        continue;
      }
      seen.add(value);
      const { data, dtype } = readFloatWeight(tensor);
      let zerosBefore = 0;
      for (const x of data) if (x === 0) zerosBefore++;
      out.push({ node, value, dims, data, dtype, inputAxis: layer.inAxis, zerosBefore });
    }
  }
  for (const name of opts.excludeNodes) if (!named.has(name)) log.warn(`excludeNodes: no node named '${name}'`);
  return out;
}

/** Writes the pruned array to `target`, the weight's value in the pass's copy, wherever it lives (initializer or Constant node). */
export function writeWeight(w: PrunableWeight, target: Value): void {
  setConstant(target, makeFloatTensor(target.name, w.dtype, w.dims, w.data));
}

export function gzipSize(model: Model): number {
  return gzipSync(encodeModel(model)).length;
}

export const DENSE_KERNEL_WARNING =
  'Zeroed weights are still stored and multiplied densely: onnxruntime CPU kernels do not skip zeros, so the model is ' +
  'neither smaller on disk nor faster. The real gain is compressibility (see gzipBytesBefore/After) or a sparse runtime; ' +
  'accuracy drops without fine-tuning, which this pass does not do.';

/** The statistics prune.magnitude and prune.nm report. */
export const unstructuredPruneStats = statsSchema(
  {
    prunedLayers: Type.Integer({ description: 'Layers whose weights were pruned (count).' }),
    prunedWeights: Type.Integer({ description: 'Weights of those layers (count of elements).' }),
    zeroWeights: Type.Integer({ description: 'Of them, zeros after pruning, those that were zero before included (count of elements).' }),
    sparsity: Type.Number({ description: 'zeroWeights / prunedWeights, 0..1 (6 decimals).' }),
    gzipBytesBefore: Type.Integer({ description: 'The serialized model gzipped, before (bytes).' }),
    gzipBytesAfter: Type.Integer({ description: 'The serialized model gzipped, after (bytes).' }),
    gzipRatio: Type.Number({ description: 'gzipBytesAfter / gzipBytesBefore, 4 decimals.' }),
  },
  statFamily('sparsity:', Type.Number({ description: 'Zeros / weights of this layer after pruning, 0..1 (6 decimals).' })),
);
export type UnstructuredPruneStats = Static<typeof unstructuredPruneStats>;

/** Records the before/after gzip sizes of the serialized model (the one size gain zeros give). */
export function logGzip(log: ChangeLog<UnstructuredPruneStats>, before: number, model: Model): void {
  const after = gzipSize(model);
  log.stat('gzipBytesBefore', before);
  log.stat('gzipBytesAfter', after);
  log.stat('gzipRatio', Number((after / before).toFixed(4)));
}

/** Sparsity and shares in the change log: two decimals. */
export const pct = (x: number) => formatPercent(x, 2);
