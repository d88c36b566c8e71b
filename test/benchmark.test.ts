import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { batchInfo, benchmarkModel, compareModels, inputsForBatch, latencyStats, percentile, summarizeRoundRatios } from '../src/measure/benchmark.js';
import { estimateMacs } from '../src/measure/macs.js';
import { decodeModel, encodeModel } from '../src/onnx/model-io.js';
import { addConstant } from '../src/onnx/constants.js';
import { makeTensor } from '../src/onnx/tensor-data.js';
import { DataType as DT } from '../src/onnx/dtypes.js';
import { planTiming } from '../src/measure/timing-plan.js';
import { sessionRoutes } from '../src/runtime/ort.js';
import { MODELS, ROOT, readModel } from './helpers.js';

/** fmnist with a chain of extra 3×3 convs on the stem output: same interface, far more work. */
function slowerFmnist(extraConvs: number): Uint8Array {
  const model = decodeModel(readModel(MODELS.fmnist));
  const g = model.graph;
  const stem = g.nodes.find((n) => n.name === '/stem/conv/Conv')!;
  const out = stem.outputs[0]!;
  let cur = out;
  const w = new Float32Array(32 * 32 * 9); // zero weights: the result is unchanged, the time is not
  for (let i = 0; i < extraConvs; i++) {
    const wv = addConstant(g, `slow_w${i}`, makeTensor('', DT.FLOAT, [32, 32, 3, 3], w));
    const conv = g.addNode('Conv', [cur, wv], 1, { name: `slow_conv${i}` });
    conv.setAttr('pads', [1, 1, 1, 1]);
    conv.setAttr('kernel_shape', [3, 3]);
    cur = conv.outputs[0]!;
  }
  const add = g.addNode('Add', [out, cur], 1, { name: 'slow_add' });
  for (const c of [...out.consumers]) {
    if (c === add || c.name.startsWith('slow_conv0')) continue;
    c.inputs.forEach((v, i) => v === out && c.setInput(i, add.outputs[0]!));
  }
  g.toposort();
  return encodeModel(model);
}

describe('latency statistics', () => {
  it('computes percentiles and stats by hand-checkable numbers', () => {
    assert.equal(percentile([1, 2, 3, 4], 0.5), 2.5);
    assert.equal(percentile([10], 0.9), 10);
    assert.ok(Math.abs(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9) - 9.1) < 1e-12);
    const s = latencyStats(8, 10, [4, 2, 8, 6]);
    assert.equal(s.meanMs, 5);
    assert.equal(s.p50Ms, 5);
    assert.equal(s.minMs, 2);
    assert.equal(s.maxMs, 8);
    assert.ok(Math.abs(s.stdMs - Math.sqrt(20 / 3)) < 1e-12); // sample std of 4,2,8,6
    assert.equal(s.throughput, 8 * 1000 / 5);
    assert.equal(s.runs, 4);
  });
});

describe('benchmark', () => {
  it('sweeps batch sizes on a dynamic-batch model and counts MACs exactly (fmnist)', async () => {
    const r = await benchmarkModel(readModel(MODELS.fmnist), { batchSizes: [1, 4], warmup: 2, runs: 5 });
    assert.deepEqual(r.batchSizes, [1, 4]);
    assert.equal(r.fixedBatch, null);
    assert.deepEqual(r.latency.map((l) => l.batch), [1, 4]);
    for (const l of r.latency) {
      assert.equal(l.runs, 5);
      assert.ok(l.minMs > 0 && l.minMs <= l.p50Ms && l.p50Ms <= l.p90Ms && l.p90Ms <= l.p99Ms && l.p99Ms <= l.maxMs);
    }
    // by hand from the architecture (28×28 → 14×14 → 7×7): stem 225,792; block1 14,450,688; down2
    // 3,612,672 + 7,225,344 + 401,408; block2 14,450,688; down3 2,483,712 + 3,415,104 + 275,968;
    // block3 6,830,208; fc 880
    assert.equal(r.macs, 53_372_464);
    assert.deepEqual(r.inputs[0], { name: 'input', dtype: 'float32', shape: [1, 1, 28, 28] });
  });

  it('MACs scale with the batch and cover MatMul (PP-OCRv4 rec)', async () => {
    const model = decodeModel(readModel(MODELS.ppocrRec));
    const shapes = { shapes: { x: [1, 3, 48, 320] } };
    const m1 = await estimateMacs(model, inputsForBatch(model, 1, { inputs: shapes }));
    const m2 = await estimateMacs(model, inputsForBatch(model, 2, { inputs: shapes }));
    assert.ok(m1 > 1e8, `rec at 48×320 is hundreds of M MACs (${m1})`);
    assert.equal(m2, 2 * m1);
  });

  it('fixes the batch where the model does, and fills scalar sample rates (Silero)', async () => {
    const sileroIfless = decodeModel(readModel(MODELS.sileroIfless));
    assert.deepEqual(batchInfo(sileroIfless), { dynamic: true, fixed: null, dimName: 'batch' });
    const feeds = inputsForBatch(sileroIfless, 4, { inputs: { shapes: { input: [NaN, 512] } } });
    assert.deepEqual(feeds.input!.dims, [4, 512]);
    assert.deepEqual(feeds.state!.dims, [2, 4, 128], 'the symbolic batch dim follows everywhere');
    assert.equal(Number((feeds.sr!.data as BigInt64Array)[0]), 16000);
    const r = await benchmarkModel(readModel(MODELS.sileroIfless), { batchSizes: [1, 2], warmup: 1, runs: 3, inputs: { shapes: { input: [NaN, 512] } } });
    assert.deepEqual(r.latency.map((l) => l.batch), [1, 2]);
  });

  it('side by side: rounds alternate the two models, and the summary holds together (no timing asserted)', async () => {
    const c = await compareModels(readModel(MODELS.fmnist), slowerFmnist(12), { batchSizes: [8], warmup: 3, runs: 12, rounds: 4 });
    const r = c.ratios[0]!;
    assert.equal(r.rounds, 4);
    assert.ok(r.low <= r.ratio && r.ratio <= r.high);
    assert.equal(r.a.runs, 12);
    assert.equal(r.b.runs, 12);
    assert.deepEqual(summarizeRoundRatios([r.ratio]).ratio, r.ratio);
  });

  it('side by side with a slow-loading plan: each model loaded once per round for every batch size, still alternating', async () => {
    // a load far slower than a run: the least settings, one session per model and round
    const plan = planTiming(1, { batchSizes: [1, 2, 4] }, 1e6);
    assert.equal(plan.sessionPerRound, true);
    const sessions = async (p: typeof plan) => {
      const before = sessionRoutes.bytes;
      const c = await compareModels(readModel(MODELS.fmnist), slowerFmnist(2), { plan: p });
      assert.deepEqual(c.ratios.map((r) => [r.batch, r.rounds, r.a.runs, r.b.runs]), [1, 2, 4].map((b) => [b, p.rounds, p.rounds * p.runsPerRound, p.rounds * p.runsPerRound]));
      for (const r of c.ratios) assert.ok(r.low <= r.ratio && r.ratio <= r.high && r.ratio > 0);
      return sessionRoutes.bytes - before;
    };
    assert.equal(await sessions(plan), 2 * plan.rounds, 'one load per model and round');
    assert.equal(await sessions({ ...plan, sessionPerRound: false }), 2 * plan.rounds * 3, 'otherwise one per model, round and batch size');
    const before = sessionRoutes.bytes;
    const alone = await benchmarkModel(readModel(MODELS.fmnist), { plan });
    assert.equal(sessionRoutes.bytes - before, 2, 'one model alone: one session for every batch size (and one that counts MACs)');
    assert.deepEqual(alone.latency.map((l) => [l.batch, l.runs]), [1, 2, 4].map((b) => [b, plan.runs]));
  });

  it('the verdict: faster or slower only when the whole 10–90% spread of per-round ratios is on one side of 1', () => {
    const s = summarizeRoundRatios([2.1, 1.9, 2.0, 2.2, 1.8]);
    assert.equal(s.verdict, 'slower');
    assert.equal(s.ratio, 2.0);
    assert.ok(Math.abs(s.low - 1.84) < 1e-9 && Math.abs(s.high - 2.16) < 1e-9, `${s.low} ${s.high}`);
    assert.equal(summarizeRoundRatios([0.5, 0.6, 0.55, 0.52]).verdict, 'faster');
    // p10 0.825, p90 1.15 (interpolated): the spread crosses 1
    assert.equal(summarizeRoundRatios([0.8, 0.9, 1.1, 1.2, 0.85, 0.9]).verdict, 'no gain', 'a spread across 1 is no verdict');
    assert.equal(summarizeRoundRatios([1.0, 1.0]).verdict, 'no gain');
  });

  it('modelpress bench prints both models and the side-by-side verdict', () => {
    const r = spawnSync(process.execPath, [join(ROOT, 'dist/src/cli/main.js'), 'bench', MODELS.fmnist, MODELS.fmnist, '--batch', '1,2', '--warmup', '1', '--runs', '4', '--rounds', '2', '--json', '-q'], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.a.latency.length, 2);
    assert.equal(out.comparison.ratios.length, 2);
    assert.ok(['faster', 'slower', 'no gain'].includes(out.comparison.ratios[0].verdict));
    assert.ok(out.environment.cores >= 1);
    const bad = spawnSync(process.execPath, [join(ROOT, 'dist/src/cli/main.js'), 'bench', MODELS.fmnist, '--batch', '0'], { encoding: 'utf8' });
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /--batch/);
  });

  it('modelpress bench --profile on PP-OCRv4 rec: per-block latency and parameter shares each sum to 100%', () => {
    const r = spawnSync(
      process.execPath,
      [join(ROOT, 'dist/src/cli/main.js'), 'bench', MODELS.ppocrRec, '--shape', 'x=B,3,48,320', '--batch', '1', '--warmup', '2', '--runs', '4', '--profile', '--json', '-q'],
      { encoding: 'utf8', timeout: 120_000 },
    );
    assert.equal(r.status, 0, r.stderr);
    const p = JSON.parse(r.stdout).profile.a as { byBlock: { share: number; paramShare: number }[]; totalMs: number };
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    assert.ok(p.totalMs > 0);
    assert.ok(Math.abs(sum(p.byBlock.map((b) => b.share)) - 1) < 1e-6);
    assert.ok(Math.abs(sum(p.byBlock.map((b) => b.paramShare ?? 0)) - 1) < 1e-6);
    assert.ok(p.byBlock.length > 10);
  });
});
