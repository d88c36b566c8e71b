// Time budgets: the benchmark's settings as a pure function of the single-run time, and the report
// stating what the benchmark, the fidelity measurement and the calibration used.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_TIMING, MIN_TIMING, planTiming } from '../src/measure/timing-plan.js';
import { formatTiming } from '../src/format.js';
import { parseRecipe } from '../src/pipeline/recipe.js';
import { cutToBudget, runPipeline } from '../src/pipeline/pipeline.js';
import { batchesFromArrays, readArraysFile } from '../src/data/samples.js';
import { decodeModel } from '../src/onnx/model-io.js';
import { parseTimeV } from '../src/bench/scale.js';
import { ort } from '../src/runtime/ort.js';
import { FMNIST, MODELS, readModel } from './helpers.js';

describe('timing plan (single-run time → settings)', () => {
  it('keeps the defaults for a fast model', () => {
    const p = planTiming(0.5);
    assert.equal(p.scaled, false);
    assert.deepEqual([p.warmup, p.runs, p.rounds], [DEFAULT_TIMING.warmup, DEFAULT_TIMING.runs, DEFAULT_TIMING.rounds]);
    assert.deepEqual(p.batchSizes, [1, 8, 16]);
    assert.ok(p.estimatedSeconds! <= p.budgetSeconds);
  });

  it('cuts runs, then rounds, then the largest batch sizes as the model gets slower, within the budget', () => {
    let previousCost = Infinity;
    for (const ms of [40, 100, 200, 800, 4000]) {
      const p = planTiming(ms);
      assert.equal(p.scaled, true, `${ms} ms`);
      assert.equal(p.singleRunMs, ms);
      assert.ok(p.estimatedSeconds! <= 60, `${ms} ms per run: ${p.estimatedSeconds} s`);
      const cost = p.rounds * (p.warmupPerRound + p.runsPerRound) * p.batchSizes.reduce((s, b) => s + b, 0);
      assert.ok(cost <= previousCost, 'a slower model never gets more runs');
      previousCost = cost;
      assert.match(p.note, /budget/);
    }
    assert.deepEqual(planTiming(800).batchSizes, [1, 8]);
    assert.deepEqual(planTiming(4000).batchSizes, [1], 'the 88 MB model of issue 17 (4 s per run): batch 1 only');
  });

  it('never goes below the stated minimum, and says so when even that is over budget', () => {
    const p = planTiming(10_000);
    assert.deepEqual(p.batchSizes, [1]);
    assert.deepEqual([p.rounds, p.warmupPerRound, p.runsPerRound], [MIN_TIMING.rounds, MIN_TIMING.warmupPerRound, MIN_TIMING.runsPerRound]);
    assert.ok(p.warmup >= MIN_TIMING.warmup && p.runs >= MIN_TIMING.runs);
    assert.ok(p.estimatedSeconds! > 60);
    assert.match(p.note, /batch sizes 8, 16 dropped; even the least settings/);
    assert.ok(planTiming(10_000, { budgetSeconds: 600 }).rounds > MIN_TIMING.rounds, 'a larger budget buys more rounds');
  });

  it('lets explicit settings win: given counts are not scaled, given batch sizes not dropped', () => {
    const p = planTiming(4000, { runs: 7 });
    assert.equal(p.scaled, false);
    assert.deepEqual([p.runs, p.warmup, p.rounds], [7, DEFAULT_TIMING.warmup, DEFAULT_TIMING.rounds]);
    assert.equal(p.note, 'settings as given');
    const sizes = planTiming(4000, { batchSizes: [1, 4, 32] });
    assert.deepEqual(sizes.batchSizes, [1, 4, 32]);
    assert.deepEqual([sizes.rounds, sizes.runsPerRound], [MIN_TIMING.rounds, MIN_TIMING.runsPerRound]);
  });

  it('a model slower to load than the runs a session serves: one session per round for every batch size, and the loads count in the budget', () => {
    const cheap = planTiming(40, {}, 30);
    assert.equal(cheap.sessionPerRound, false, 'a load cheaper than its runs: a session per round and batch size, as before');
    assert.equal(cheap.loadMs, 30);
    // the 2.2 GB model of issue 17: a few hundred ms per run, seconds per load
    const slow = planTiming(150, {}, 5000);
    assert.equal(slow.sessionPerRound, true);
    const sum = slow.batchSizes.reduce((s, b) => s + b, 0);
    const runsSeconds = (2 * slow.rounds * (slow.warmupPerRound + slow.runsPerRound) * sum * 150) / 1000;
    assert.ok(Math.abs(slow.estimatedSeconds! - (runsSeconds + 2 * slow.rounds * 5)) < 1e-9, 'each model loaded once per round');
    assert.ok(slow.estimatedSeconds! <= slow.budgetSeconds);
    assert.match(slow.note, /one run at batch 1 takes 150 ms, a session loads in 5\.0 s/);
    assert.match(formatTiming(slow), /one session per model and round times every batch size; scaled to/);
    assert.match(formatTiming({ ...slow, note: 'default settings' }), /one session per model and round times every batch size \(a load takes 5\.00 s\); default settings/);
    const blind = planTiming(150);
    assert.equal(blind.sessionPerRound, false);
    assert.deepEqual([slow.batchSizes, blind.batchSizes], [[1, 8, 16], [1, 8, 16]]);
    assert.ok(slow.rounds < blind.rounds, `the loads cost rounds: ${slow.rounds} against ${blind.rounds}`);
    // loads that alone take longer than the budget: the least settings, but no batch size dropped for them
    const slower = planTiming(150, {}, 30_000);
    assert.deepEqual([slower.rounds, slower.batchSizes, slower.sessionPerRound], [MIN_TIMING.rounds, [1, 8, 16], true]);
    assert.match(slower.note, /even the least settings take longer than the budget/);
    assert.equal(planTiming(null, { rounds: 4 }).sessionPerRound, false, 'explicit settings measure nothing: sessions as before');
  });

  it('cuts calibration batches to the budget at the measured rate, keeping at least one', () => {
    const batch = (n: number) => ({ x: new ort.Tensor('float32', new Float32Array(n), [n]) });
    const batches = [batch(8), batch(8), batch(8), batch(4)];
    assert.equal(cutToBudget(batches, 1000, 10).length, 4);
    assert.equal(cutToBudget(batches, 170, 10).length, 2);
    assert.equal(cutToBudget(batches, 1, 10).length, 1);
  });

  it('reads /usr/bin/time -v', () => {
    const text = '\tElapsed (wall clock) time (h:mm:ss or m:ss): 1:02:03.5\n\tMaximum resident set size (kbytes): 2048\n';
    assert.deepEqual(parseTimeV(text), { wallSeconds: 3723.5, peakRssBytes: 2048 * 1024 });
  });
});

describe('the report states the settings it used', () => {
  const bytes = readModel(MODELS.fmnist);
  const model = decodeModel(bytes);
  const samples = [...batchesFromArrays(model, readArraysFile(FMNIST.inputs, model), { batchSize: 50, maxSamples: 200 })];

  it('default timing: the measured single run, the settings, and whether they were scaled', async () => {
    // a budget far below one run's time forces the least settings whatever the machine
    const recipe = parseRecipe({ steps: [{ pass: 'prune.magnitude', sparsity: 0.3 }], benchmark: { budgetSeconds: 1e-6 } });
    const { report } = await runPipeline(bytes, { recipe, samples });
    const t = report.timing!;
    assert.equal(t.scaled, true);
    assert.ok(t.singleRunMs! > 0);
    assert.ok(t.loadMs! > 0, 'the load of that run\'s session is measured too');
    assert.ok(t.loadAverage! >= 0);
    assert.match(formatTiming(t), /; load average \d+\.\d when measured$/, 'the machine load is stated with the numbers it affects');
    assert.deepEqual(t.batchSizes, [1]);
    assert.deepEqual([t.rounds, t.warmupPerRound, t.runsPerRound], [2, 1, 1]);
    assert.match(t.note, /scaled to a 0.000001 s budget per step: one run at batch 1 takes/);
    const lat = report.steps[0]!.latency!;
    assert.deepEqual(lat.map((r) => [r.batch, r.rounds, r.a.runs, r.b.runs]), [[1, 2, 2, 2]], 'the runs match the stated settings');
    assert.deepEqual(report.baseline.latencyAbsolute, [lat[0]!.a], 'the original timed once, side by side');
  });

  it('explicit timing is used as given; fidelity and calibration say what a budget cut', async () => {
    const recipe = parseRecipe({
      steps: [{ pass: 'prune.magnitude', sparsity: 0.3 }],
      benchmark: { batchSizes: [1, 2], warmup: 1, runs: 4, rounds: 2 },
      evaluate: { budgetSeconds: 1e-6, calibrationBudgetSeconds: 1e-6 },
    });
    const { report } = await runPipeline(bytes, { recipe, samples, calibration: samples });
    assert.equal(report.timing!.scaled, false);
    assert.deepEqual([report.timing!.rounds, report.timing!.runsPerRound, report.timing!.batchSizes], [2, 2, [1, 2]]);
    assert.deepEqual([report.samples.batches, report.samples.items, report.samples.given], [1, 50, { batches: 4, items: 200 }]);
    assert.deepEqual(report.samples.calibration, { batches: 1, items: 50, given: { batches: 4, items: 200 }, budgetSeconds: 1e-6 });
    assert.ok(report.warnings.some((w) => /fidelity was measured on 50 of 200 samples/.test(w)));
    assert.ok(report.warnings.some((w) => /calibration used 50 of 200 samples/.test(w)));
  });
});
