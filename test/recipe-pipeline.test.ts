import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRecipe } from '../src/pipeline/recipe.js';
import { runPipeline, type PipelineProgress } from '../src/pipeline/pipeline.js';
import { InvalidRecipeError, ModelpressError } from '../src/errors.js';
import { decodeModel } from '../src/onnx/model-io.js';
import { runOnce } from '../src/runtime/ort.js';
import { FMNIST, MODELS, feedsFor, readModel, syntheticOptionsFor } from './helpers.js';
import { batchesFromArrays, readArraysFile } from '../src/data/samples.js';

function problems(input: unknown): { path: string; message: string }[] {
  try {
    parseRecipe(input);
  } catch (err) {
    assert.ok(err instanceof InvalidRecipeError);
    assert.equal(err.code, 'invalid_recipe');
    return err.problems;
  }
  assert.fail('recipe was accepted');
}

describe('recipe validation', () => {
  it('fills defaults for a minimal recipe', () => {
    const r = parseRecipe('{"steps":[{"pass":"convert.fp16"}]}');
    assert.equal(r.steps[0]!.keepIoTypes, true);
    assert.ok(Array.isArray(r.steps[0]!.opBlockList));
    // timing settings stay unset, to be scaled to the budget from the model's run time
    assert.equal(r.benchmark.batchSizes, undefined);
    assert.equal(r.benchmark.warmup, undefined);
    assert.equal(r.benchmark.runs, undefined);
    assert.equal(r.benchmark.budgetSeconds, 60);
    assert.equal(r.evaluate.budgetSeconds, 30);
  });

  it('names the JSON path of every problem', () => {
    assert.deepEqual(problems('{"steps": ['), [{ path: '', message: problems('{"steps": [')[0]!.message }]);
    assert.match(problems('{"steps": [').at(0)!.message, /not valid JSON/);
    assert.ok(problems({ steps: [] }).some((p) => p.path === '/steps'));
    assert.ok(problems({ steps: [{ pass: 'convert.fp16' }], extra: 1 }).some((p) => p.path === '/extra'));
    const unknownKey = problems({ steps: [{ pass: 'convert.fp16' }, { pass: 'convert.fp16', keepIOTypes: true }] });
    assert.deepEqual(unknownKey.map((p) => p.path), ['/steps/1/keepIOTypes']);
    const badType = problems({ steps: [{ pass: 'convert.fp16', opBlockList: ['Conv', 3] }] });
    assert.deepEqual(badType.map((p) => p.path), ['/steps/0/opBlockList/1']);
    const unknownPass = problems({ steps: [{ pass: 'convert.fp8' }] });
    assert.equal(unknownPass[0]!.path, '/steps/0/pass');
    assert.match(unknownPass[0]!.message, /unknown pass 'convert\.fp8'.*convert\.fp16/);
    const nested = problems({ steps: [{ pass: 'prune.structured', ratio: 2, recovery: { leastSquares: true, lr: 1 } }] });
    assert.deepEqual(nested.map((p) => p.path).sort(), ['/steps/0/ratio', '/steps/0/recovery/lr']);
    const bench = problems({ steps: [{ pass: 'convert.fp16' }], benchmark: { batchSizes: [0] } });
    assert.equal(bench[0]!.path, '/benchmark/batchSizes/0');
    const range = problems({ steps: [{ pass: 'convert.fp16', maxAbsActivation: 70000 }] });
    assert.equal(range[0]!.path, '/steps/0/maxAbsActivation');
  });

  it('says what is allowed and suggests the nearest name', () => {
    const [option] = problems({ steps: [{ pass: 'convert.fp16', keepIOTypes: true }] });
    assert.match(option!.message, /unknown option "keepIOTypes"; did you mean "keepIoTypes"\?.*options: .*opBlockList/);
    const [choice] = problems({ steps: [{ pass: 'quantize.static', calibrationMethod: 'percentil' }] });
    assert.equal(choice!.path, '/steps/0/calibrationMethod');
    assert.match(choice!.message, /"percentil" is not allowed: expected one of "minmax", "percentile", "entropy", "mse"; did you mean "percentile"\?/);
    const [rank] = problems({ steps: [{ pass: 'factorize.tucker', rank: 'vbmff' }] });
    assert.match(rank!.message, /expected one of "vbmf", .*a number > 0 and < 1.*did you mean "vbmf"/);
    const [pass] = problems({ steps: [{ pass: 'quantize.statik' }] });
    assert.match(pass!.message, /unknown pass 'quantize\.statik' \(did you mean 'quantize\.static'\?\)/);
    // nothing near: no guess
    const [far] = problems({ steps: [{ pass: 'quantize.static', calibrationMethod: 'kl-divergence' }] });
    assert.doesNotMatch(far!.message, /did you mean/);
    assert.match(far!.message, /expected one of "minmax"/);
  });
});

describe('pipeline', () => {
  it('a step that calibrates on the evaluation data is reported as such; with calibration data it is not', async () => {
    const bytes = readModel(MODELS.fmnist);
    const recipe = parseRecipe({ steps: [{ pass: 'convert.fp16' }, { pass: 'quantize.dynamic' }, { pass: 'factorize.svd', rank: 0.5 }], benchmark: { enabled: false }, evaluate: { maxSamples: 16 } });
    const model = decodeModel(bytes);
    const batches = (file: string) => [...batchesFromArrays(model, readArraysFile(file, model), { batchSize: 8, maxSamples: 16 })];
    const samples = batches(FMNIST.inputs);
    const alone = await runPipeline(bytes, { recipe, samples });
    const warning = alone.report.warnings.find((w) => /calibrated on the evaluation data/.test(w));
    // convert.fp16 (its range check) and factorize.svd (its refit) read the inputs; quantize.dynamic does not
    assert.match(warning ?? '', /^step 1 \(convert\.fp16\), step 3 \(factorize\.svd\) calibrated on the evaluation data/);
    const separate = await runPipeline(bytes, { recipe, samples, calibration: batches(FMNIST.calibration) });
    assert.ok(!separate.report.warnings.some((w) => /calibrated on the evaluation data/.test(w)));
  });

  it('runs steps in order, reports progress and per-step metrics', async () => {
    const bytes = readModel(MODELS.ppocrCls);
    const events: PipelineProgress[] = [];
    const recipe = parseRecipe({
      steps: [{ pass: 'convert.fp16' }, { pass: 'convert.fp16', rangeCheck: false }],
      benchmark: { batchSizes: [1, 2], warmup: 1, runs: 4, rounds: 2 },
    });
    const result = await runPipeline(bytes, { recipe, synthetic: syntheticOptionsFor('ppocrCls'), onProgress: (p) => events.push(p) });
    const r = result.report;
    assert.equal(r.steps.length, 2);
    assert.equal(r.baseline.sizeBytes, bytes.length);
    assert.equal(r.baseline.params, r.final.params, 'fp16 keeps the parameter count');
    assert.ok(r.steps[0]!.sizeBytes < bytes.length * 0.6);
    assert.ok(r.steps[0]!.durationMs >= 0);
    // latency of every step against the original, side by side, at each batch size
    assert.deepEqual(r.baseline.latencyAbsolute!.map((l) => l.batch), [1, 2]);
    for (const s of r.steps) {
      assert.deepEqual(s.latency!.map((l) => l.batch), [1, 2]);
      for (const l of s.latency!) assert.ok(l.ratio > 0 && l.low <= l.ratio && l.ratio <= l.high && ['faster', 'slower', 'no gain'].includes(l.verdict));
    }
    assert.ok(r.baseline.macs! > 1e6 && r.steps[0]!.macs === r.baseline.macs, 'fp16 keeps the MAC count');
    assert.ok(Object.values(r.steps[0]!.fidelity)[0]!.sqnrDb > 30);
    // the second conversion finds nothing left in float32
    const second = r.steps[1]!.changes as { stats: Record<string, number> };
    assert.equal(second.stats.convertedTensors, 0);
    assert.equal(r.samples.source, 'synthetic');
    assert.ok(r.warnings.some((w) => /synthetic/.test(w)));
    // progress: monotone, both steps named, ends at 100
    assert.ok(events.length >= 4);
    for (let i = 1; i < events.length; i++) assert.ok(events[i]!.percent >= events[i - 1]!.percent, 'progress never goes back');
    assert.deepEqual([...new Set(events.filter((e) => e.step > 0).map((e) => e.step))], [1, 2]);
    assert.equal(events.at(-1)!.percent, 100);
    assert.equal(r.final.sha256.length, 64);
    const model = decodeModel(result.bytes);
    await runOnce(result.bytes, feedsFor('ppocrCls', model));
  });

  it('stops with code canceled when aborted mid-run', async () => {
    const controller = new AbortController();
    const recipe = parseRecipe({ steps: [{ pass: 'convert.fp16' }, { pass: 'convert.fp16' }], benchmark: { enabled: false } });
    const run = runPipeline(readModel(MODELS.ppocrCls), {
      recipe,
      signal: controller.signal,
      synthetic: syntheticOptionsFor('ppocrCls'),
      onProgress: (p) => {
        if (p.step === 1 && p.fraction > 0) controller.abort();
      },
    });
    await assert.rejects(run, (err: unknown) => err instanceof ModelpressError && err.code === 'canceled');
  });

  it('refuses an invalid model before running any step', async () => {
    const recipe = parseRecipe({ steps: [{ pass: 'convert.fp16' }] });
    await assert.rejects(runPipeline(new TextEncoder().encode('not a model'), { recipe }), (err: unknown) => err instanceof ModelpressError && err.code === 'invalid_model');
  });
});
