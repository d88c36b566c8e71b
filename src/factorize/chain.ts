// Chains into graphs: rewriting a layer in the model, and one-layer models for the speed check.
import { create } from '@bufbuild/protobuf';
import { GraphProtoSchema, ModelProtoSchema, OperatorSetIdProtoSchema } from 'onnx-buf';
import { addConstant } from '../onnx/constants.js';
import { DataType as DT } from '../onnx/dtypes.js';
import type { Graph, Model, Node, Value } from '../onnx/ir.js';
import { importModel } from '../onnx/model-io.js';
import { makeTensor } from '../onnx/tensor-data.js';
import { makeFloatTensor } from '../onnx/float-weights.js';
import type { ChainStep, Layer } from './layers.js';

/**
 * Replaces the layer's node with the chain: the first step reads the layer's input, the last one
 * writes the layer's output value (same object, so consumers and captures keep finding it).
 */
export function emitChain(graph: Graph, layer: Pick<Layer, 'node' | 'input' | 'output' | 'dtype'>, steps: readonly ChainStep[]): Node[] {
  const base = layer.node.name || layer.output.name;
  const at = graph.nodes.indexOf(layer.node);
  graph.removeNode(layer.node);
  const nodes: Node[] = [];
  let current: Value = layer.input;
  steps.forEach((step, i) => {
    const last = i === steps.length - 1;
    const out = last ? layer.output : graph.createValue(`${base}_f${i}`);
    if (!last && layer.output.elemType !== undefined) out.setTensorType(layer.dtype);
    const w = addConstant(graph, `${base}_f${i}_w`, makeFloatTensor('', layer.dtype, step.weightDims, step.weight));
    const inputs: Value[] = [current, w];
    if (step.bias) inputs.push(addConstant(graph, `${base}_f${i}_b`, makeFloatTensor('', layer.dtype, step.bias.dims, step.bias.data)));
    const node = graph.addNode(step.op, inputs, [out], { name: `${base}_f${i}`, at: at + i });
    for (const [name, value, kind] of step.attrs) node.setAttr(name, value, kind);
    nodes.push(node);
    current = out;
  });
  graph.toposort(false);
  return nodes;
}

/** A model with one float input of fixed shape running `build` (a chain or the original node). */
function oneLayerModel(opset: number, inputDims: number[], build: (g: Graph, x: Value, y: Value) => void): Model {
  const proto = create(ModelProtoSchema, {
    irVersion: 8n,
    producerName: 'modelpress-speed-check',
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: BigInt(opset) })],
    graph: create(GraphProtoSchema, { name: 'layer' }),
  });
  const model = importModel(proto);
  const g = model.graph;
  const x = g.createValue('x');
  x.setTensorType(DT.FLOAT, inputDims);
  const y = g.createValue('y');
  y.setTensorType(DT.FLOAT);
  g.inputs = [x];
  g.outputs = [y];
  build(g, x, y);
  return model;
}

export function chainModel(opset: number, inputDims: number[], layer: Layer, steps: readonly ChainStep[]): Model {
  return oneLayerModel(opset, inputDims, (g, x, y) => {
    const original = g.addNode(layer.op, [x], [y]); // placeholder replaced by the chain
    emitChain(g, { node: original, input: x, output: y, dtype: DT.FLOAT }, steps); // timed in float32 whatever the layer's type
  });
}

/** The layer as it is, alone: its node's attributes and weights copied. */
export function originalLayerModel(opset: number, inputDims: number[], layer: Layer): Model {
  return oneLayerModel(opset, inputDims, (g, x, y) => {
    const inputs: Value[] = [x, g.addInitializer('w', makeTensor('', DT.FLOAT, layer.weightDims, layer.weight))];
    if (layer.bias) inputs.push(g.addInitializer('b', makeTensor('', DT.FLOAT, layer.bias.dims, layer.bias.data)));
    const node = g.addNode(layer.op, inputs, [y]);
    for (const a of layer.node.attributes) node.attributes.push({ proto: a.proto });
  });
}
