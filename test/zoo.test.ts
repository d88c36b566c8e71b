// The zoo at CI size: every ONNX backend test model (libonnx-testdata) through inspect and round trip,
// a fixed sample of them (every 12th, plus the cases issue 17 named) through the original's run on its
// own test inputs, modelpress's reading of those inputs, fp16 and one quantization in onnxruntime, and
// the real npm models through inspect, round trip and fp16. Any internal error, crash, hang or refusal
// of a model that onnxruntime runs fails the test. `npm run zoo` runs everything (bench/zoo.md).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BACKEND_TEST_ROOT, NPM_MODELS, backendModels, everyKth, type ZooModel } from '../src/bench/zoo-models.js';
import { runZooModel, type StepName } from '../src/bench/zoo-steps.js';
import { FAILING, countOutcomes, runZoo, type ZooRow } from '../src/bench/zoo.js';
import { openDataset } from '../src/data/samples.js';
import { decodeModel } from '../src/onnx/model-io.js';

const MISSING = `${BACKEND_TEST_ROOT} is missing: run scripts/setup.sh (it installs Debian's libonnx-testdata, the ONNX backend test models)`;

/** What issue 17 found wrong, each kept in the sample whatever the stride. */
const NAMED_CASES = [
  'node/test_gemm_beta', // inputs with different leading dims: one set, not a batch
  'node/test_clip_inbounds',
  'node/test_isinf', // no float16 kernel / type
  'node/test_mvn',
  'node/test_globalmaxpool', // opset 1: no Cast kernel before opset 6
  'node/test_eyelike_populate_off_main_diagonal',
  'node/test_scatternd_add', // float16 kernel refuses a reduction at run time
  'simple/test_sequence_model1', // SequenceEmpty's element type
  'simple/test_sequence_model8', // sequence values inside; an empty input
  'node/test_if_seq', // a sequence output: refused, onnxruntime-node cannot return it
  'node/test_optional_get_element', // an optional input
  'node/test_cast_STRING_to_FLOAT', // string inputs
  'node/test_constant', // no inputs at all
];

function failures(rows: readonly ZooRow[]): string[] {
  return rows.flatMap((r) => r.results.filter((s) => FAILING.includes(s.outcome)).map((s) => `${r.model} × ${s.step}: ${s.outcome} ${s.code ?? ''} ${s.reason ?? ''}`));
}

describe('the model zoo (CI size)', () => {
  const all = backendModels();

  it('has the ONNX backend test models', () => {
    assert.ok(existsSync(BACKEND_TEST_ROOT), MISSING);
    assert.ok(all.length > 1000, `${all.length} backend models under ${BACKEND_TEST_ROOT}; expected the 1,072 of libonnx-testdata`);
  });

  it('inspects and round-trips every backend test model byte for byte', { skip: !existsSync(BACKEND_TEST_ROOT) && MISSING }, async () => {
    const rows: ZooRow[] = [];
    for (const m of all) rows.push({ model: m.id, results: await runZooModel(m, ['inspect', 'roundtrip']) });
    assert.deepEqual(failures(rows), []);
    const counts = countOutcomes(rows);
    assert.equal(counts.roundtrip.ok, all.length, `round trips that changed bytes: ${rows.flatMap((r) => r.results.filter((s) => s.outcome === 'mismatch').map((s) => `${r.model}: ${s.reason}`)).slice(0, 5).join('; ')}`);
  });

  it('reads a test_data_set as one feed, whatever its inputs\' leading dims', { skip: !existsSync(BACKEND_TEST_ROOT) && MISSING }, () => {
    const dir = join(BACKEND_TEST_ROOT, 'node/test_gemm_beta');
    const model = decodeModel(readFileSync(join(dir, 'model.onnx')));
    const feeds = [...openDataset(join(dir, 'test_data_set_0'), model).batches({ batchSize: 1 })];
    assert.equal(feeds.length, 1);
    assert.deepEqual(Object.fromEntries(Object.entries(feeds[0]!).map(([k, t]) => [k, t.dims])), { a: [2, 7], b: [7, 4], c: [1, 4] });
  });

  it('runs a fixed sample through the original, its data, fp16 and a quantization with no internal error or wrong refusal', { skip: !existsSync(BACKEND_TEST_ROOT) && MISSING }, async () => {
    const sample: ZooModel[] = [...everyKth(all, 12)];
    for (const id of NAMED_CASES) if (!sample.some((m) => m.id === id)) sample.push(all.find((m) => m.id === id)!);
    assert.ok(sample.every(Boolean), 'a named case is missing from the test data');
    const steps: StepName[] = ['reference', 'data', 'fp16', 'quant'];
    const rows = await runZoo(sample, { steps, jobs: 2, batch: 25 });
    assert.deepEqual(failures(rows), []);
    const counts = countOutcomes(rows);
    // the sample really exercised the passes: most models converted and quantized, and ran
    assert.ok((counts.fp16.ok ?? 0) > sample.length * 0.8, JSON.stringify(counts));
    assert.ok((counts.quant.ok ?? 0) > sample.length * 0.8, JSON.stringify(counts));
    // the refusals that remain are the models onnxruntime-node cannot run (sequence inputs, opset-6 kernels)
    for (const r of rows) {
      const reference = r.results.find((s) => s.step === 'reference')!;
      for (const s of r.results.filter((x) => x.outcome === 'refused')) assert.equal(reference.outcome, 'ort-failed', `${r.model} × ${s.step}`);
    }
  });

  it('runs the npm models (PP-OCRv4, Silero VAD, BlazeFace) through inspect, round trip and fp16', async () => {
    const present = NPM_MODELS.filter((m) => existsSync(m.path));
    assert.equal(present.length, NPM_MODELS.length, `missing: ${NPM_MODELS.filter((m) => !existsSync(m.path)).map((m) => m.path).join(', ')} — run npm install`);
    const rows = await runZoo(present, { steps: ['inspect', 'roundtrip', 'reference', 'fp16'], jobs: 2, batch: 1 });
    assert.deepEqual(failures(rows), []);
    for (const r of rows) assert.deepEqual(r.results.map((s) => `${s.step} ${s.outcome}`), ['inspect ok', 'roundtrip ok', 'reference ok', 'fp16 ok'], r.model);
  });
});
