// Bias correction removes a layer's own mean output shift: the ViT's patch embedding (its input is the
// image itself, so float and quantized models see the same input) with int4 weights, corrected on the
// same images the shift is measured on.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { join } from 'node:path';
import { Value as TBValue } from '@sinclair/typebox/value';
import { decodeModel } from '../src/onnx/model-io.js';
import type { Model } from '../src/onnx/ir.js';
import { quantizeWeightsPass } from '../src/passes/quantize-weights.js';
import type { StatsOf } from '../src/pipeline/pass.js';
import { batchesFromArrays, readArraysFile } from '../src/data/samples.js';
import { forEachCapture } from '../src/runtime/capture.js';
import { accumulateChannelSums } from '../src/quant/bias-correction.js';
import { FMNIST, ROOT, passContext, readModel } from './helpers.js';

const VIT = join(ROOT, 'test/fixtures/fmnist-vit/fmnist-vit.onnx');
const EMBED_OUT = '/embed/Add_output_0';

async function channelMeans(model: Model, feeds: import('../src/runtime/ort.js').Feeds[]): Promise<Float64Array> {
  const v = model.graph.definedValues().find((x) => x.name === EMBED_OUT)!;
  const sum = new Float64Array(64);
  let n = 0;
  await forEachCapture(model, feeds, [v], (c) => {
    const t = c.get(v)!;
    n += accumulateChannelSums(t.data as Float32Array, t.dims, t.dims.length - 1, sum);
  });
  return sum.map((s) => s / n);
}

describe('bias correction', () => {
  it('removes the mean shift int4 weights cause at the ViT patch embedding', async () => {
    const bytes = readModel(VIT);
    const base = decodeModel(bytes);
    const feeds = [...batchesFromArrays(base, readArraysFile(FMNIST.inputs, base), { batchSize: 100, maxSamples: 300 })];
    const others = base.graph.nodes.filter((n) => n.opType === 'MatMul' && n.name !== '/embed/MatMul').map((n) => n.name);
    const ref = await channelMeans(base, feeds);
    const rmsShift = async (biasCorrection: boolean) => {
      const ctx = passContext<StatsOf<typeof quantizeWeightsPass>>(feeds, { synthetic: false });
      const cfg = { pass: 'quantize.weights', bits: 4, blockSize: 32, minElements: 0, excludeNodes: others, biasCorrection };
      const q = await quantizeWeightsPass.run(decodeModel(bytes), TBValue.Default(quantizeWeightsPass.schema, cfg) as never, ctx);
      assert.equal(q.graph.nodes.filter((n) => n.opType === 'MatMulNBits').length, 1);
      if (biasCorrection) assert.equal(ctx.changes.stats.biasCorrected, 1);
      const m = await channelMeans(q, feeds);
      return Math.sqrt(m.reduce((a, x, i) => a + (x - ref[i]!) ** 2, 0) / m.length);
    };
    const before = await rmsShift(false);
    const after = await rmsShift(true);
    assert.ok(before > 1e-3, `int4 shifts the embedding output (rms ${before})`);
    assert.ok(after < before / 100, `rms channel-mean shift ${before.toExponential(2)} → ${after.toExponential(2)}`);
  });
});
