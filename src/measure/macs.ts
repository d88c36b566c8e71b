// Multiply-accumulate counts of the compute-heavy ops, from the shapes onnxruntime reports for one
// run. FLOPs ≈ 2 × MACs. Nodes inside subgraphs are not counted (their shapes cannot be exposed).
import type { Model, Node, Value } from '../onnx/ir.js';
import { discoverShapes, type DiscoveredValue } from '../runtime/capture.js';
import type { Feeds } from '../runtime/ort.js';
import { getConstant } from '../onnx/constants.js';
import { tensorDims } from '../onnx/tensor-data.js';
import { weightLayerOf } from '../onnx/weight-layers.js';

type ShapeOf = (v: Value | null | undefined) => number[] | undefined;

const prod = (xs: readonly number[]) => xs.reduce((a, b) => a * b, 1);

/** Per-op MAC rules: one table. */
export const MAC_RULES: Record<string, (n: Node, shape: ShapeOf) => number | undefined> = {
  Conv: (n, shape) => {
    const y = shape(n.outputs[0]);
    const w = shape(weightLayerOf(n)!.weight);
    if (!y || !w) return undefined;
    // y: [N, Cout, *spatial]; w: [Cout, Cin/group, *kernel]
    return prod(y) * prod(w.slice(1));
  },
  ConvTranspose: (n, shape) => {
    const x = shape(n.inputs[0]);
    const w = shape(weightLayerOf(n)!.weight);
    if (!x || !w) return undefined;
    // every input element scatters into Cout/group × kernel outputs; w: [Cin, Cout/group, *kernel]
    return prod(x) * prod(w.slice(1));
  },
  Gemm: (n, shape) => {
    const a = shape(n.inputs[0]);
    const y = shape(n.outputs[0]);
    if (!a || !y || a.length !== 2) return undefined;
    const k = weightLayerOf(n)!.inputTransposed ? a[0]! : a[1]!;
    return prod(y) * k;
  },
  MatMul: (n, shape) => {
    const a = shape(n.inputs[0]);
    const y = shape(n.outputs[0]);
    if (!a || !y) return undefined;
    return prod(y) * a[a.length - 1]!;
  },
};

export function countMacs(model: Model, shapes: Map<Value, DiscoveredValue>): { total: number; byNode: Map<Node, number> } {
  const shape: ShapeOf = (v) => {
    if (!v) return undefined;
    const found = shapes.get(v)?.dims;
    if (found) return found;
    const c = getConstant(v);
    if (c) return tensorDims(c);
    return undefined;
  };
  const byNode = new Map<Node, number>();
  let total = 0;
  for (const n of model.graph.nodes) {
    const rule = n.domain === '' ? MAC_RULES[n.opType] : undefined;
    const macs = rule?.(n, shape);
    if (macs !== undefined) {
      byNode.set(n, macs);
      total += macs;
    }
  }
  return { total, byNode };
}

/** Counts MACs for these inputs, with the shapes onnxruntime infers for them (discoverShapes). */
export async function estimateMacs(model: Model, feeds: Feeds): Promise<number> {
  return countMacs(model, await discoverShapes(model, feeds)).total;
}
