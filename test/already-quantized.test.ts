// Models that are already quantized, in each form modelpress or onnxruntime writes: inspect recognizes the
// form, and every quantization, pruning and factorization pass leaves the quantized layers alone, says why,
// and returns a model that runs in onnxruntime and matches its input.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Value as TBValue } from '@sinclair/typebox/value';
import type { Model } from '../src/onnx/ir.js';
import { summarizeModel, formatSummary } from '../src/onnx/inspect.js';
import { decodeModel, encodeModel } from '../src/onnx/model-io.js';
import { verifyModel } from '../src/onnx/verify.js';
import { fidelity } from '../src/metrics/fidelity.js';
import { PASSES } from '../src/passes/index.js';
import { fixedPassContext } from '../src/pipeline/pass.js';
import { ort, runOnce, syntheticInputs, tensorToFloat32, type Feeds } from '../src/runtime/ort.js';
import { MODELS, ROOT, readModel } from './helpers.js';

const VIT = join(ROOT, 'test/fixtures/fmnist-vit/fmnist-vit.onnx');

async function runPass(name: string, model: Model, samples: Feeds[], options: Record<string, unknown> = {}) {
  const def = PASSES[name]!;
  const config = TBValue.Default(def.schema, { pass: name, ...options }) as never;
  const ctx = fixedPassContext({ samples, synthetic: false, calibration: true });
  const out = await def.run(model, config, ctx);
  verifyModel(out);
  return { out, changes: ctx.changes };
}

/** Options that let each pass act on these small models. */
const PASS_OPTIONS: Record<string, Record<string, unknown>> = {
  'quantize.static': { biasCorrection: false, maxCalibrationBatches: 1 },
  'quantize.dynamic': { opTypes: ['MatMul', 'Gemm', 'Conv'] },
  'prune.structured': { measureRecovery: false, maxCalibrationBatches: 1 },
  'factorize.svd': { requireSpeedup: false },
  'factorize.tucker': { requireSpeedup: false },
  'factorize.cp': { requireSpeedup: false, include: 'block1/conv1' },
};

describe('already-quantized models', async () => {
  const cnn = decodeModel(readModel(MODELS.fmnist));
  const vit = decodeModel(readModel(VIT));
  const cnnFeeds = [syntheticInputs(cnn, { seed: 1, batch: 8 })];
  const vitFeeds = [syntheticInputs(vit, { seed: 1, batch: 8 })];
  const qdq = (await runPass('quantize.static', cnn, cnnFeeds, PASS_OPTIONS['quantize.static'])).out;
  // onnxruntime's own rewrite of the QDQ model, as it saves it: QLinearConv, QLinearAdd, QGemm
  const dir = mkdtempSync(join(tmpdir(), 'mp-qop-'));
  await ort.InferenceSession.create(encodeModel(qdq), { graphOptimizationLevel: 'all', optimizedModelFilePath: join(dir, 'qop.onnx') });
  const qop = decodeModel(readFileSync(join(dir, 'qop.onnx')));
  rmSync(dir, { recursive: true, force: true });
  const cases: [string, Model, Feeds[], string, RegExp][] = [
    ['static int8 (QDQ)', qdq, cnnFeeds, 'qdq', /already quantized \(QDQ/],
    ['static int8 saved by onnxruntime (QOperator)', qop, cnnFeeds, 'qoperator', /already quantized \(QOperator: QLinearConv\)/],
    ['dynamic int8 (ConvInteger)', (await runPass('quantize.dynamic', cnn, cnnFeeds, PASS_OPTIONS['quantize.dynamic'])).out, cnnFeeds, 'integer', /already quantized \(integer ops: ConvInteger\)/],
    ['int4 weights (MatMulNBits)', (await runPass('quantize.weights', vit, vitFeeds, { bits: 4 })).out, vitFeeds, 'nbits', /already quantized \(n-bit weights: MatMulNBits\)/],
  ];
  for (const [label, model, feeds, form, reason] of cases) {
    it(`${label}: inspect names the form`, () => {
      const s = summarizeModel(model, 0);
      assert.ok(s.quantization, 'recognized as quantized');
      assert.ok((s.quantization!.layers as Record<string, number>)[form]! >= 5, JSON.stringify(s.quantization));
      assert.match(formatSummary(s), /already quantized: /);
    });
    for (const name of Object.keys(PASSES).filter((p) => p !== 'convert.fp16')) {
      it(`${label}: ${name} skips the quantized layers and still matches its input`, async () => {
        const { out, changes } = await runPass(name, model, feeds, PASS_OPTIONS[name]);
        assert.ok(changes.skipped.some((s) => reason.test(s.reason)), JSON.stringify(changes.skipped.slice(0, 3)));
        const ref = await runOnce(encodeModel(model), feeds[0]!);
        const got = await runOnce(encodeModel(out), feeds[0]!);
        for (const k of Object.keys(ref)) {
          const f = fidelity(tensorToFloat32(ref[k]!), tensorToFloat32(got[k]!));
          assert.ok(f.sqnrDb > 20, `${k}: SQNR ${f.sqnrDb.toFixed(1)} dB`);
        }
      });
    }
  }
});
