// Which constant weights the unstructured / N:M pruning passes touch: one rule table per op type, and
// the selection (op types, skip list, size floor, float32 only, one entry per shared weight).
import { gzipSync } from 'node:zlib';
import type { TensorProto } from 'onnx-buf';
import { DataType as DT } from '../onnx/dtypes.js';
import type { Model, Node, Value } from '../onnx/ir.js';
import { getConstant, setConstant } from '../onnx/constants.js';
import { encodeModel } from '../onnx/model-io.js';
import { elementCount, makeTensor, readFloat32, tensorDims } from '../onnx/tensor-data.js';
import type { ChangeLog } from '../pipeline/pass.js';

interface PrunableWeightRule {
  /** Input slot of the weight. */
  weightInput: number;
  /** The axis of the weight that runs along the op's input features/channels (N:M groups run along it). */
  inputAxis(node: Node, rank: number): number;
}

export const PRUNABLE_WEIGHT_RULES: Record<string, PrunableWeightRule> = {
  Conv: { weightInput: 1, inputAxis: () => 1 }, // [Cout, Cin/g, k…]
  ConvTranspose: { weightInput: 1, inputAxis: () => 0 }, // [Cin, Cout/g, k…]
  Gemm: { weightInput: 1, inputAxis: (node) => (node.getInt('transB', 0) ? 1 : 0) }, // B: [K, N] or [N, K]
  MatMul: { weightInput: 1, inputAxis: (_node, rank) => rank - 2 }, // [… K, N]
};

export const DEFAULT_PRUNE_OPS = Object.keys(PRUNABLE_WEIGHT_RULES);

export interface PrunableWeight {
  node: Node;
  value: Value;
  dims: number[];
  data: Float32Array;
  inputAxis: number;
  zerosBefore: number;
}

export interface SelectOptions {
  opTypes: string[];
  skip: string[];
  minElements: number;
}

/** The float32 constant weights of the selected ops; every other candidate is logged as skipped, with the reason. */
export function selectWeights(model: Model, opts: SelectOptions, log: ChangeLog): PrunableWeight[] {
  const ops = new Set(opts.opTypes);
  const skip = new Set(opts.skip);
  const seen = new Set<Value>();
  const out: PrunableWeight[] = [];
  const named = new Set<string>();
  for (const g of model.allGraphs()) {
    for (const node of g.nodes) {
      if (node.name) named.add(node.name);
      const rule = node.domain === '' && ops.has(node.opType) ? PRUNABLE_WEIGHT_RULES[node.opType] : undefined;
      if (!rule) continue;
      if (skip.has(node.name)) {
        log.skip(node, 'in the skip list');
        continue;
      }
      const value = node.inputs[rule.weightInput];
      const tensor: TensorProto | undefined = getConstant(value);
      if (!value || !tensor) {
        log.skip(node, 'weight is not a constant');
        continue;
      }
      if (tensor.dataType !== DT.FLOAT) {
        log.skip(node, 'weight is not float32');
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
      const data = Float32Array.from(readFloat32(tensor));
      let zerosBefore = 0;
      for (const x of data) if (x === 0) zerosBefore++;
      out.push({ node, value, dims, data, inputAxis: rule.inputAxis(node, dims.length), zerosBefore });
    }
  }
  for (const name of opts.skip) if (!named.has(name)) log.warn(`skip: no node named '${name}'`);
  return out;
}

/** Writes the pruned array back to wherever the weight lives (initializer or Constant node). */
export function writeWeight(w: PrunableWeight): void {
  setConstant(w.value, makeTensor(w.value.name, DT.FLOAT, w.dims, w.data));
}

export function gzipSize(model: Model): number {
  return gzipSync(encodeModel(model)).length;
}

export const DENSE_KERNEL_WARNING =
  'Zeroed weights are still stored and multiplied densely: onnxruntime CPU kernels do not skip zeros, so the model is ' +
  'neither smaller on disk nor faster. The real gain is compressibility (see gzipBytesBefore/After) or a sparse runtime; ' +
  'accuracy drops without fine-tuning, which this pass does not do.';

/** Records the before/after gzip sizes of the serialized model (the one size gain zeros give). */
export function logGzip(log: ChangeLog, before: number, model: Model): void {
  const after = gzipSize(model);
  log.stat('gzipBytesBefore', before);
  log.stat('gzipBytesAfter', after);
  log.stat('gzipRatio', Number((after / before).toFixed(4)));
}

export const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
