// The one table of weight layers (src/onnx/weight-layers.ts): every op a pass treats as a weight
// layer has an entry, and the entries agree with real nodes run in onnxruntime.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Value } from '../src/onnx/ir.js';
import { encodeModel } from '../src/onnx/model-io.js';
import { outputChannelAxis, perOutputChannelAxis, WEIGHT_LAYERS, weightLayerOf } from '../src/onnx/weight-layers.js';
import { LAYER_RULES } from '../src/factorize/layers.js';
import { MAC_RULES } from '../src/measure/macs.js';
import { DYNAMIC_OP_RULES } from '../src/passes/quantize-dynamic.js';
import { WEIGHT_ONLY_OPS } from '../src/passes/quantize-weights.js';
import { CHANNEL_RULES } from '../src/prune/channel-rules.js';
import { analyzeChannels } from '../src/prune/dependency-graph.js';
import { DEFAULT_PRUNE_OPS } from '../src/prune/weights.js';
import { QDQ_OP_RULES, weightScaleAxis } from '../src/quant/qdq-rules.js';
import { ort, runOnce } from '../src/runtime/ort.js';
import { testGraph } from './helpers.js';

/**
 * Whether the channel rule of `op` makes a node produce channels by slicing a weight of its own
 * (a weight layer), probed behind a Conv (4-D) and behind a Gemm (2-D) with a constant second input.
 */
function producesChannels(op: string): boolean {
  const probes: [number[], number[], string][] = [
    [[1, 8, 6, 6], [8, 8, 1, 1], 'Conv'],
    [[2, 8], [8, 8], 'Gemm'],
  ];
  for (const [xDims, wDims, before] of probes) {
    const { model, weight, x, node } = testGraph('probe', 1, { name: 'x', dims: xDims });
    const [y] = node(before, [x, weight('w0', wDims)]);
    const probe = node(op, [y!, weight('w1', wDims)])[0]!.producer!;
    try {
      if (analyzeChannels(model).edits.some((e) => e.node === probe && e.role === 'out')) return true;
    } catch {
      // these inputs do not fit the op: not a weight layer of this shape
    }
  }
  return false;
}

describe('every weight layer a pass handles is in WEIGHT_LAYERS', () => {
  const inTable = (family: string, ops: readonly string[]) => {
    const missing = ops.filter((op) => WEIGHT_LAYERS[op]?.domain !== '');
    assert.deepEqual(missing, [], `${family} handles weight layers the table does not describe: add them to src/onnx/weight-layers.ts`);
  };

  it('quantize.static (QDQ_OP_RULES with a quantized weight)', () => {
    inTable('QDQ_OP_RULES', Object.keys(QDQ_OP_RULES).filter((op) => QDQ_OP_RULES[op]!.weight));
  });
  it('quantize.dynamic and quantize.weights', () => {
    inTable('DYNAMIC_OP_RULES', Object.keys(DYNAMIC_OP_RULES));
    inTable('WEIGHT_ONLY_OPS', WEIGHT_ONLY_OPS);
  });
  it('factorize.* (LAYER_RULES) and prune.magnitude / prune.nm', () => {
    inTable('LAYER_RULES', Object.keys(LAYER_RULES));
    inTable('DEFAULT_PRUNE_OPS', DEFAULT_PRUNE_OPS);
  });
  it('prune.structured (CHANNEL_RULES that open a channel group from their weight)', () => {
    const producers = Object.keys(CHANNEL_RULES).filter(producesChannels);
    for (const op of ['Conv', 'ConvTranspose', 'Gemm', 'MatMul']) assert.ok(producers.includes(op), `the probe finds ${op}`);
    inTable('CHANNEL_RULES', producers);
  });
  it('MAC counting (MAC_RULES)', () => {
    inTable('MAC_RULES', Object.keys(MAC_RULES));
  });
});

/**
 * One weight layer alone in a model, run in onnxruntime on ones: the table's axes must name the
 * channels the output and the input really have.
 */
async function checkAgainstRuntime(op: string, xDims: number[], wDims: number[], attrs: Record<string, number> = {}, biasDims?: number[]) {
  const { model, g, weight, x, node } = testGraph(op, 2, { name: 'x', dims: xDims });
  const inputs: Value[] = [x, weight('w', wDims)];
  if (biasDims) inputs.push(weight('b', biasDims));
  const [y] = node(op, inputs, attrs);
  g.outputs = [y!];
  const layer = weightLayerOf(y!.producer!)!;
  assert.ok(layer, `${op} is a weight layer`);
  const out = await runOnce(encodeModel(model), { x: new ort.Tensor('float32', new Float32Array(xDims.reduce((a, b) => a * b, 1)).fill(1), xDims) });
  const yDims = out[y!.name]!.dims.map(Number);
  const convolution = layer.layout === 'conv' || layer.layout === 'convTranspose';
  // a grouped ConvTranspose holds M/group outputs on its output axis, a grouped Conv C/group inputs on its input axis
  const outputs = wDims[layer.outAxis!]! * (layer.layout === 'convTranspose' ? layer.groups : 1);
  const inputsPerLayer = wDims[layer.inAxis!]! * (layer.layout === 'conv' ? layer.groups : 1);
  assert.equal(yDims[outputChannelAxis(op, yDims.length)], outputs, `${op}: output channels along the weight's axis ${layer.outAxis}`);
  const xFeatureAxis = convolution ? 1 : layer.inputTransposed ? 0 : xDims.length - 1;
  assert.equal(xDims[xFeatureAxis], inputsPerLayer, `${op}: input channels along the weight's axis ${layer.inAxis}`);
  return layer;
}

describe('weightLayerOf on real nodes', () => {
  it('Conv with group 2: weight [M, C/group, k…], bias input 2, output channel axis 0 even when grouped', async () => {
    const l = await checkAgainstRuntime('Conv', [1, 8, 6, 6], [6, 4, 3, 3], { group: 2 }, [6]);
    assert.equal(l.weightInput, 1);
    assert.equal(l.weight?.name, 'w');
    assert.equal(l.biasInput, 2);
    assert.equal(l.bias?.name, 'b');
    assert.deepEqual([l.outAxis, l.inAxis, l.groups, l.rank], [0, 1, 2, 4]);
    assert.equal(perOutputChannelAxis(l), 0);
    assert.equal(weightScaleAxis(l), 0);
  });

  it('ConvTranspose: weight [C, M/group, k…]; grouped, no axis holds every output channel', async () => {
    const l = await checkAgainstRuntime('ConvTranspose', [1, 8, 6, 6], [8, 3, 3, 3], {}, [3]);
    assert.deepEqual([l.outAxis, l.inAxis, l.groups, l.biasInput], [1, 0, 1, 2]);
    assert.equal(perOutputChannelAxis(l), 1);
    const grouped = await checkAgainstRuntime('ConvTranspose', [1, 8, 6, 6], [8, 3, 3, 3], { group: 2 });
    assert.deepEqual([grouped.outAxis, grouped.groups, grouped.bias], [1, 2, null]);
    assert.equal(perOutputChannelAxis(grouped), null);
    assert.equal(weightScaleAxis(grouped), null);
  });

  it('Gemm: transB = 0 stores B [K, N], transB = 1 [N, K]; transA = 1 takes the input as [K, rows]', async () => {
    const plain = await checkAgainstRuntime('Gemm', [2, 8], [8, 5], {}, [5]);
    assert.deepEqual([plain.outAxis, plain.inAxis, plain.biasInput, plain.inputTransposed], [1, 0, 2, false]);
    const transB = await checkAgainstRuntime('Gemm', [2, 8], [5, 8], { transB: 1 }, [5]);
    assert.deepEqual([transB.outAxis, transB.inAxis], [0, 1]);
    assert.equal(weightScaleAxis(transB), 0);
    const transA = await checkAgainstRuntime('Gemm', [8, 2], [8, 5], { transA: 1 });
    assert.equal(transA.inputTransposed, true);
  });

  it('MatMul: B [… K, N], no bias input; a batched B gets one weight scale, a 1-D B has no output axis', async () => {
    const l = await checkAgainstRuntime('MatMul', [2, 8], [8, 5]);
    assert.deepEqual([l.outAxis, l.inAxis, l.biasInput, l.bias, l.groups], [1, 0, null, null, 1]);
    assert.equal(weightScaleAxis(l), 1);
    const batched = await checkAgainstRuntime('MatMul', [3, 2, 8], [3, 8, 5]);
    assert.deepEqual([batched.outAxis, batched.inAxis], [2, 1]);
    assert.equal(weightScaleAxis(batched), null);
    const { weight, x, node } = testGraph('vector', 3, { name: 'x', dims: [2, 8] });
    const vector = weightLayerOf(node('MatMul', [x, weight('v', [8])])[0]!.producer!)!;
    assert.deepEqual([vector.outAxis, vector.inAxis], [null, 0]);
  });

  it('other ops, and weight-layer op types in a foreign domain, are not weight layers', () => {
    const { g, weight, x, node } = testGraph('others', 4, { name: 'x', dims: [2, 8] });
    const relu = node('Relu', [x])[0]!.producer!;
    assert.equal(weightLayerOf(relu), null);
    const foreign = g.addNode('Conv', [x, weight('w', [4, 8, 1, 1])], 1, { domain: 'com.example' });
    assert.equal(weightLayerOf(foreign), null);
    const contrib = g.addNode('MatMulNBits', [x, weight('q', [4, 1, 4])], 1, { domain: 'com.microsoft' });
    assert.deepEqual([weightLayerOf(contrib)?.outAxis, weightLayerOf(contrib)?.biasInput], [0, 5]);
  });
});
