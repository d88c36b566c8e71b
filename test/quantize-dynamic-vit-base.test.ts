// The bigger ViT fixture (test/fixtures/fmnist-vit-base, d 256, 4 layers): real onnxruntime, no mocks.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Value as TBValue } from '@sinclair/typebox/value';
import { batchesFromArrays, readArraysFile, readLabelsFile } from '../src/data/samples.js';
import { evaluateModels } from '../src/eval/evaluate.js';
import { decodeModel, encodeModel } from '../src/onnx/model-io.js';
import { verifyModel } from '../src/onnx/verify.js';
import { quantizeDynamicPass } from '../src/passes/quantize-dynamic.js';
import { createSession } from '../src/runtime/ort.js';
import { FMNIST, ROOT, passContext, readModel } from './helpers.js';

const DIR = join(ROOT, 'test/fixtures/fmnist-vit-base');
const SUBSET = 500;

describe('ViT-base fixture', () => {
  const bytes = readModel(join(DIR, 'fmnist-vit-base.onnx'));
  const meta = JSON.parse(readFileSync(join(DIR, 'meta.json'), 'utf8')) as { torchTop1Subset2000: number[]; subsetAccuracy2000: number };
  const m = decodeModel(bytes);
  const batches = [...batchesFromArrays(m, readArraysFile(FMNIST.inputs, m), { batchSize: 100, maxSamples: SUBSET })];
  const labels = Array.from(readLabelsFile(FMNIST.labels)).slice(0, SUBSET);

  it('onnxruntime decides like torch did at export (top-1 on the first 500 test images)', async () => {
    const s = await createSession(bytes);
    try {
      const ours: number[] = [];
      for (const f of batches) {
        const y = Object.values(await s.run(f))[0]!;
        const d = y.data as Float32Array;
        for (let i = 0; i < d.length / 10; i++) {
          const row = d.subarray(i * 10, i * 10 + 10);
          ours.push(row.indexOf(Math.max(...row)));
        }
      }
      assert.deepEqual(ours, meta.torchTop1Subset2000.slice(0, SUBSET));
    } finally {
      await s.release();
    }
  });

  it('quantize.dynamic (defaults): every MatMul with a weight → DynamicQuantizeMatMul, ≤ 0.3× size, top-1 drop ≤ 1 pt', async () => {
    const ctx = passContext([batches[0]!]);
    const model = await quantizeDynamicPass.run(decodeModel(bytes), TBValue.Default(quantizeDynamicPass.schema, { pass: 'quantize.dynamic' }) as never, ctx);
    verifyModel(model);
    const out = encodeModel(model);
    // patch embedding + 4 × (qkv, proj, fc1, fc2) + head; the attention MatMuls (both operands dynamic) stay float
    assert.equal(model.graph.nodes.filter((n) => n.opType === 'DynamicQuantizeMatMul' && n.domain === 'com.microsoft').length, 18);
    assert.equal(model.graph.nodes.filter((n) => n.opType === 'MatMul').length, 8);
    assert.ok(out.length / bytes.length <= 0.3, `size ${(out.length / bytes.length).toFixed(3)}`);
    const ev = await evaluateModels(bytes, out, batches, { labels, metrics: ['top1'] });
    const drop = 100 * (ev.task!.reference.top1! - ev.task!.candidate.top1!);
    assert.ok(drop <= 1, `top-1 ${ev.task!.reference.top1} → ${ev.task!.candidate.top1}`);
    assert.ok(ev.fidelity.logits!.top1Agreement! >= 0.97, `agreement ${ev.fidelity.logits!.top1Agreement}`);
  });
});
