// quantize.dynamic and quantize.weights (int8, int4) through the CLI, each on two real models: the
// shipped recipe (latency timing switched off to keep the test fast) → the written model runs in
// onnxruntime-node, holds the expected node types, and stays close to the original on real inputs.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FMNIST, MODELS, ROOT } from './helpers.js';
import { decodeModel } from '../src/onnx/model-io.js';
import { batchesFromArrays, readArraysFile } from '../src/data/samples.js';
import { FidelityAccumulator } from '../src/metrics/fidelity.js';
import { createSession, type Feeds } from '../src/runtime/ort.js';

const CLI = join(ROOT, 'dist/src/cli/main.js');
const VIT = join(ROOT, 'test/fixtures/fmnist-vit/fmnist-vit.onnx');
const REC_DATA = join(ROOT, 'test/fixtures/ppocr-rec/test-200.npz');
const dir = mkdtempSync(join(tmpdir(), 'modelpress-cli-quant-'));

/** The shipped recipe (or extra steps) with latency timing off, written next to the outputs. */
function recipe(name: string, stepOverrides: Record<string, unknown> = {}): string {
  const r = JSON.parse(readFileSync(join(ROOT, 'recipes', `${name}.json`), 'utf8'));
  r.steps = r.steps.map((s: object) => ({ ...s, ...stepOverrides }));
  r.benchmark = { enabled: false };
  r.evaluate = { maxSamples: 16, batchSize: 8 };
  const path = join(dir, `${name}-${Object.keys(stepOverrides).join('-') || 'plain'}.json`);
  writeFileSync(path, JSON.stringify(r));
  return path;
}

function compress(model: string, recipePath: string, out: string, ...extra: string[]) {
  const r = spawnSync(process.execPath, [CLI, 'compress', model, '--recipe', recipePath, '--out', out, '--quiet', ...extra], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, r.stderr);
  return r;
}

function opCounts(path: string): Record<string, number> {
  const m = decodeModel(readFileSync(path), { allowUnknownDomains: true });
  const counts: Record<string, number> = {};
  for (const n of m.graph.nodes) counts[n.opType] = (counts[n.opType] ?? 0) + 1;
  return counts;
}

/** Output SQNR (dB) and top-1 agreement of `candidate` against `reference` on `batches`. */
async function compare(reference: string, candidate: string, batches: Feeds[]): Promise<{ sqnrDb: number; agreement: number; meanShift: number }> {
  const [a, b] = [await createSession(readFileSync(reference)), await createSession(readFileSync(candidate))];
  const acc = new FidelityAccumulator();
  let same = 0;
  let rows = 0;
  let shift: Float64Array | null = null;
  try {
    for (const f of batches) {
      const ya = Object.values(await a.run(f))[0]!;
      const yb = Object.values(await b.run(f))[0]!;
      assert.deepEqual(yb.dims, ya.dims);
      const da = ya.data as Float32Array;
      const db = yb.data as Float32Array;
      acc.add(da, db);
      const C = ya.dims[ya.dims.length - 1]!;
      shift ??= new Float64Array(C);
      for (let i = 0; i < da.length; i++) shift[i % C]! += db[i]! - da[i]!;
      for (let r = 0; r < da.length / C; r++) {
        let ia = 0;
        let ib = 0;
        for (let c = 1; c < C; c++) {
          if (da[r * C + c]! > da[r * C + ia]!) ia = c;
          if (db[r * C + c]! > db[r * C + ib]!) ib = c;
        }
        same += ia === ib ? 1 : 0;
        rows++;
      }
    }
  } finally {
    await a.release();
    await b.release();
  }
  // systematic error: RMS over output channels of the mean (over all rows) of candidate − reference
  const meanShift = Math.sqrt(shift!.reduce((t, x) => t + (x / rows) ** 2, 0) / shift!.length);
  return { sqnrDb: acc.result().sqnrDb, agreement: same / rows, meanShift };
}

const data = (model: string, file: string, n: number, batchSize: number) => {
  const m = decodeModel(readFileSync(model));
  return [...batchesFromArrays(m, readArraysFile(file, m), { batchSize, maxSamples: n })];
};

describe('quantization through the CLI', () => {
  it('int8-dynamic recipe: ViT MatMuls and PP-OCRv4 rec MatMuls → DynamicQuantizeMatMul', async () => {
    const vitOut = join(dir, 'vit.dyn.onnx');
    compress(VIT, recipe('int8-dynamic'), vitOut, '--data', FMNIST.inputs);
    const ops = opCounts(vitOut);
    assert.equal(ops.DynamicQuantizeMatMul, 9, 'embed + 2 × (qkv, proj, fc1, fc2); the 10×64 head is below minElements');
    assert.equal(ops.MatMul, 4, 'attention MatMuls (both operands computed) stay float');
    const vit = await compare(VIT, vitOut, data(VIT, FMNIST.inputs, 200, 100));
    assert.ok(vit.sqnrDb > 33, `ViT SQNR ${vit.sqnrDb}`);
    assert.ok(vit.agreement >= 0.98, `ViT top-1 agreement ${vit.agreement}`);

    const recOut = join(dir, 'rec.dyn.onnx');
    compress(MODELS.ppocrRec, recipe('int8-dynamic'), recOut, '--data', REC_DATA, '--max-samples', '2', '--batch', '2');
    const recOps = opCounts(recOut);
    assert.ok(recOps.DynamicQuantizeMatMul! >= 8, `rec: ${JSON.stringify(recOps)}`);
    const rec = await compare(MODELS.ppocrRec, recOut, data(MODELS.ppocrRec, REC_DATA, 4, 4));
    assert.ok(rec.sqnrDb > 20, `rec SQNR ${rec.sqnrDb}`);
    assert.ok(rec.agreement > 0.95, `rec per-timestep argmax agreement ${rec.agreement}`);
    assert.ok(readFileSync(recOut).length < 0.75 * readFileSync(MODELS.ppocrRec).length);
  });

  it('quantize.weights int8: ViT MatMuls behind DequantizeLinear', async () => {
    const vitOut = join(dir, 'vit.w8.onnx');
    compress(VIT, recipe('int4-weights', { bits: 8 }), vitOut, '--data', FMNIST.inputs);
    const ops = opCounts(vitOut);
    assert.equal(ops.DequantizeLinear, 9);
    assert.equal(ops.MatMulNBits, undefined);
    const vit = await compare(VIT, vitOut, data(VIT, FMNIST.inputs, 200, 100));
    assert.ok(vit.sqnrDb > 38, `ViT SQNR ${vit.sqnrDb}`);
    assert.ok(readFileSync(vitOut).length < 0.4 * readFileSync(VIT).length);
  });

  it('quantize.weights int8: fmnist CNN behind DequantizeLinear, and bias correction from --calibration lowers the output error', async () => {
    const plain = join(dir, 'cnn.w8.onnx');
    const corrected = join(dir, 'cnn.w8bc.onnx');
    compress(MODELS.fmnist, recipe('int4-weights', { bits: 8 }), plain, '--data', FMNIST.inputs);
    compress(MODELS.fmnist, recipe('int4-weights', { bits: 8, biasCorrection: true }), corrected, '--data', FMNIST.inputs, '--calibration', FMNIST.calibration, '--max-samples', '64', '--batch', '64');
    const cops = opCounts(corrected);
    assert.ok(cops.DequantizeLinear! >= 12, JSON.stringify(cops));
    const test = data(MODELS.fmnist, FMNIST.inputs, 300, 100);
    const a = await compare(MODELS.fmnist, plain, test);
    const b = await compare(MODELS.fmnist, corrected, test);
    assert.ok(a.sqnrDb > 40 && b.sqnrDb > 40, `${a.sqnrDb} ${b.sqnrDb}`);
    assert.ok(b.meanShift < 0.5 * a.meanShift, `bias correction: mean output shift ${a.meanShift.toFixed(4)} → ${b.meanShift.toFixed(4)}`);
    assert.ok(b.sqnrDb > a.sqnrDb + 4, `bias correction: SQNR ${a.sqnrDb.toFixed(2)} → ${b.sqnrDb.toFixed(2)} dB on test images it was not calibrated on`);
  });

  it('int4-weights recipe: ViT and PP-OCRv4 rec MatMuls → MatMulNBits', async () => {
    const vitOut = join(dir, 'vit.w4.onnx');
    compress(VIT, recipe('int4-weights'), vitOut, '--data', FMNIST.inputs);
    assert.equal(opCounts(vitOut).MatMulNBits, 9);
    const vit = await compare(VIT, vitOut, data(VIT, FMNIST.inputs, 200, 100));
    assert.ok(vit.sqnrDb > 20, `ViT SQNR ${vit.sqnrDb}`);
    assert.ok(vit.agreement >= 0.95, `ViT top-1 agreement ${vit.agreement}`);

    const recOut = join(dir, 'rec.w4.onnx');
    compress(MODELS.ppocrRec, recipe('int4-weights'), recOut, '--data', REC_DATA, '--max-samples', '2', '--batch', '2');
    const recOps = opCounts(recOut);
    assert.ok(recOps.MatMulNBits! >= 8, JSON.stringify(recOps));
    const rec = await compare(MODELS.ppocrRec, recOut, data(MODELS.ppocrRec, REC_DATA, 4, 4));
    assert.ok(rec.sqnrDb > 12, `rec SQNR ${rec.sqnrDb}`);
    assert.ok(rec.agreement > 0.93, `rec per-timestep argmax agreement ${rec.agreement}`);
  });
});
