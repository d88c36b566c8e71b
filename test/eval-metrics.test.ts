import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { encodeNpy } from '../src/data/npy.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toBinary } from '@bufbuild/protobuf';
import { TensorProtoSchema } from 'onnx-buf';
import { fidelity } from '../src/metrics/fidelity.js';
import { AgreementAccumulator, TaskAccumulator, ctcGreedyDecode, topKHits } from '../src/metrics/task.js';
import { evaluateModels } from '../src/eval/evaluate.js';
import { batchesFromArrays, openDataset, readArraysFile, readLabelsFile } from '../src/data/samples.js';
import { decodeModel } from '../src/onnx/model-io.js';
import { makeTensor } from '../src/onnx/tensor-data.js';
import { DataType as DT } from '../src/onnx/dtypes.js';
import { ModelpressError } from '../src/errors.js';
import { FMNIST, MODELS, ROOT, readModel } from './helpers.js';

describe('metrics by hand', () => {
  it('SQNR, errors and cosine of a known perturbation', () => {
    // ref [1,2,3,4]: signal power 1+4+9+16 = 30; noise [0.1,0,-0.1,0]: power 0.02 → 10·log10(1500) = 31.7609 dB
    const f = fidelity([1, 2, 3, 4], [1.1, 2, 2.9, 4]);
    assert.ok(Math.abs(f.sqnrDb - 10 * Math.log10(1500)) < 1e-6);
    assert.ok(Math.abs(f.sqnrDb - 31.7609) < 1e-4);
    assert.ok(Math.abs(f.maxAbsError - 0.1) < 1e-9);
    assert.ok(Math.abs(f.meanAbsError - 0.05) < 1e-9);
    assert.equal(fidelity([1, 2], [1, 2]).sqnrDb, Infinity);
  });

  it('top-1 / top-5 accuracy on a 6-sample set', () => {
    // 6 samples × 6 classes; label rank (0 = top): 0, 0, 1, 4, 5, 0 → top1 3/6, top5 5/6
    const rows = [
      [9, 1, 2, 3, 4, 5],
      [0, 9, 1, 2, 3, 4],
      [5, 9, 1, 2, 3, 4], // label 0 is second
      [1, 2, 3, 4, 5, 6], // label 1 is fifth
      [1, 2, 3, 4, 5, 6], // label 0 is sixth
      [0, 0, 0, 0, 0, 9],
    ];
    const labels = [0, 1, 0, 1, 0, 5];
    const scores = rows.flat();
    assert.equal(topKHits(scores, 6, labels, 1), 3);
    assert.equal(topKHits(scores, 6, labels, 5), 5);
    const acc = new TaskAccumulator(['top1', 'top5']);
    acc.add(scores.slice(0, 18), [3, 6], labels.slice(0, 3));
    acc.add(scores.slice(18), [3, 6], labels.slice(3));
    assert.deepEqual(acc.result(), { top1: 0.5, top5: 5 / 6 });
  });

  it('MAE, RMSE, OBO and normalised MAE for counts', () => {
    // preds 3, 5.4, 10, 0.2 vs labels 3, 4, 7, 1: |err| 0, 1.4, 3, 0.8 → MAE 1.3, RMSE √(11.6/4);
    // rounded misses 0, 1, 3, 1 → OBO (miss > 1) = 1/4; NMAE = (0/3 + 1.4/4 + 3/7 + 0.8/1) / 4
    const acc = new TaskAccumulator(['mae', 'rmse', 'obo', 'nmae']);
    acc.add([3, 5.4, 10, 0.2], [4, 1], [3, 4, 7, 1]);
    const r = acc.result();
    assert.ok(Math.abs(r.mae! - 1.3) < 1e-9);
    assert.ok(Math.abs(r.rmse! - Math.sqrt(11.6 / 4)) < 1e-9);
    assert.equal(r.obo, 0.25);
    assert.ok(Math.abs(r.nmae! - (0 + 1.4 / 4 + 3 / 7 + 0.8) / 4) < 1e-9);
  });

  it('greedy CTC decoding collapses repeats and drops blanks', () => {
    // argmax per step: 1 1 0 1 2 2 0 → [1, 1, 2]
    const seq = [1, 1, 0, 1, 2, 2, 0];
    const logits = seq.flatMap((c) => [0, 0, 0].map((_, j) => (j === c ? 1 : 0)));
    assert.deepEqual(ctcGreedyDecode(logits, 0, 7, 3), [1, 1, 2]);
    const agree = new AgreementAccumulator();
    const other = [...logits];
    other[5 * 3 + 2] = 0;
    other[5 * 3 + 1] = 1; // step 5 → 1: decodes to [1,1,2,1]
    agree.addSequences([...logits, ...logits], [...logits, ...other], [2, 7, 3]);
    assert.equal(agree.result(), 0.5);
  });
});

describe('evaluation on real data', () => {
  it('reproduces the fmnist accuracy recorded at training time, the same in any batch size', async () => {
    const bytes = readModel(MODELS.fmnist);
    const model = decodeModel(bytes);
    const arrays = readArraysFile(FMNIST.inputs, model);
    const labels = readLabelsFile(FMNIST.labels);
    const meta = JSON.parse(readFileSync(FMNIST.meta, 'utf8')) as { subsetCorrect2000: number };
    const big = await evaluateModels(bytes, bytes, [...batchesFromArrays(model, arrays, { batchSize: 2000 })], { labels });
    const small = await evaluateModels(bytes, bytes, [...batchesFromArrays(model, arrays, { batchSize: 100 })], { labels });
    assert.equal(big.samples, 2000);
    assert.equal(big.task!.reference.top1, meta.subsetCorrect2000 / 2000);
    assert.deepEqual(small.task, big.task);
    assert.equal(big.fidelity.logits!.sqnrDb, Infinity);
    assert.equal(big.fidelity.logits!.top1Agreement, 1);
  });

  it('sequence agreement for CTC outputs (PP-OCRv4 rec) is 1 for the same model', async () => {
    const bytes = readModel(MODELS.ppocrRec);
    const model = decodeModel(bytes);
    const { syntheticInputs } = await import('../src/runtime/ort.js');
    const r = await evaluateModels(bytes, bytes, [syntheticInputs(model, { shapes: { x: [2, 3, 48, 160] } })]);
    const f = Object.values(r.fidelity)[0]!;
    assert.equal(f.sequenceAgreement, 1);
  });

  it('reads ONNX .pb test-data directories and JSON, and rejects data that does not fit', () => {
    const dir = mkdtempSync(join(tmpdir(), 'modelpress-data-'));
    const model = decodeModel(readModel(MODELS.fmnist));
    for (const k of [0, 1]) {
      mkdirSync(join(dir, `test_data_set_${k}`));
      const t = makeTensor('input', DT.FLOAT, [2, 1, 28, 28], new Float32Array(2 * 784).fill(k));
      writeFileSync(join(dir, `test_data_set_${k}`, 'input_0.pb'), toBinary(TensorProtoSchema, t));
    }
    const arrays = readArraysFile(dir, model);
    assert.deepEqual(arrays.get('input')!.shape, [4, 1, 28, 28]);
    assert.equal((arrays.get('input')!.data as Float32Array)[3 * 784], 1);
    // as data to run, each test_data_set is one feed, as it is
    const sets = [...openDataset(dir, model).batches({ batchSize: 8 })];
    assert.deepEqual(sets.map((f) => [f.input!.dims, (f.input!.data as Float32Array)[0]]), [[[2, 1, 28, 28], 0], [[2, 1, 28, 28], 1]]);
    const json = join(dir, 'small.json');
    writeFileSync(json, JSON.stringify({ input: { dtype: 'float32', shape: [1, 1, 28, 28], data: new Array(784).fill(0.5) } }));
    assert.equal([...batchesFromArrays(model, readArraysFile(json, model), { batchSize: 8 })].length, 1);
    const labelsJson = join(dir, 'labels.json');
    writeFileSync(labelsJson, '[3, 1, 4]');
    assert.deepEqual(Array.from(readLabelsFile(labelsJson) as Float32Array), [3, 1, 4]);
    const wrongType = join(dir, 'int.json');
    writeFileSync(wrongType, JSON.stringify({ input: { dtype: 'int64', shape: [1, 1, 28, 28], data: new Array(784).fill(0) } }));
    assert.throws(() => [...batchesFromArrays(model, readArraysFile(wrongType, model), { batchSize: 8 }, 'int.json')], (e: unknown) => e instanceof ModelpressError && /int64 in the data but float32/.test(e.message));
    const wrongShape = join(dir, 'shape.json');
    writeFileSync(wrongShape, JSON.stringify({ input: { dtype: 'float32', shape: [1, 28, 28], data: new Array(784).fill(0) } }));
    assert.throws(() => [...batchesFromArrays(model, readArraysFile(wrongShape, model), { batchSize: 8 }, 'shape.json')], /expects rank 4/);
  });

  it('modelpress eval on the fmnist fixture prints the recorded accuracy', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'dist/src/cli/main.js'), 'eval', MODELS.fmnist, MODELS.fmnist, '--data', FMNIST.inputs, '--labels', FMNIST.labels, '--json', '-q'], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.task.candidate.top1, 0.927);
    assert.equal(out.fidelity.logits.sqnrDb, 'Infinity');
  });

  it('streams a large .npy with memory bounded by the batch, not the file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'modelpress-big-'));
    const path = join(dir, 'big.npy');
    const n = 40_000; // 40k × 784 float32 = 125 MB
    const header = encodeNpy({ dtype: 'float32', shape: [n, 1, 28, 28], data: new Float32Array(0) });
    const fd = openSync(path, 'w');
    writeSync(fd, header);
    const chunk = new Float32Array(1000 * 784).fill(0.25);
    for (let i = 0; i < n / 1000; i++) writeSync(fd, new Uint8Array(chunk.buffer));
    closeSync(fd);
    try {
      const model = decodeModel(readModel(MODELS.fmnist));
      global.gc?.();
      const before = process.memoryUsage().rss;
      const ds = openDataset(path, model);
      assert.equal(ds.samples, n);
      let seen = 0;
      let peak = before;
      for (const feeds of ds.batches({ batchSize: 64 })) {
        seen += feeds.input!.dims[0]!;
        if (seen % 6400 === 0) peak = Math.max(peak, process.memoryUsage().rss);
      }
      assert.equal(seen, n);
      const growth = peak - before;
      assert.ok(growth < 60 * 1024 * 1024, `rss grew ${(growth / 2 ** 20).toFixed(0)} MiB for a 125 MB file`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
