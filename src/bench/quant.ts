// Quantization targets (issue 5), measured: `node dist/src/bench/quant.js` writes bench/quant.md.
// Latency ratios come from compareModels (side by side, median of per-round ratios).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Value as TBValue } from '@sinclair/typebox/value';
import { decodeModel, encodeModel } from '../onnx/model-io.js';
import { verifyModel } from '../onnx/verify.js';
import { quantizeStaticPass } from '../passes/quantize-static.js';
import { ChangeLog, type PassContext } from '../pipeline/pass.js';
import { batchesFromArrays, readArraysFile, readLabelsFile } from '../data/samples.js';
import { evaluateModels } from '../eval/evaluate.js';
import { compareModels } from '../measure/benchmark.js';
import { profileModel } from '../measure/profile.js';
import { environment } from '../report/environment.js';
import type { Feeds } from '../runtime/ort.js';

const ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!dir.endsWith('dist') && dir !== '/') dir = dirname(dir);
  return dirname(dir);
})();

interface Row {
  target: string;
  measured: string;
  pass: boolean | null;
}

async function fmnistStatic(overrides: Record<string, unknown>, label: string, rows: Row[], notes: string[]): Promise<void> {
  const path = join(ROOT, 'test/fixtures/fmnist/fmnist-cnn.onnx');
  const bytes = readFileSync(path);
  const model = decodeModel(bytes);
  const batches = [...batchesFromArrays(model, readArraysFile(join(ROOT, 'test/fixtures/fmnist/test-2000.npz'), model), { batchSize: 50 })];
  const labels = readLabelsFile(join(ROOT, 'test/fixtures/fmnist/test-2000-labels.npy'));
  const ctx: PassContext = {
    changes: new ChangeLog(),
    progress: () => {},
    sampleInputs: async () => batches.slice(0, 8), // 400 calibration images (also part of the 2000 evaluated)
    evaluationInputs: async () => batches,
    samplesAreSynthetic: false,
    samplesAreCalibration: true,
    labels,
  };
  const q = await quantizeStaticPass.run(model, TBValue.Default(quantizeStaticPass.schema, { pass: 'quantize.static', ...overrides }) as never, ctx);
  verifyModel(q);
  const out = encodeModel(q);
  const ev = await evaluateModels(bytes, out, batches, { labels, metrics: ['top1'] });
  const drop = 100 * (ev.task!.reference.top1! - ev.task!.candidate.top1!);
  const cmp = await compareModels(bytes, out, { batchSizes: [1, 8], rounds: 8, warmup: 10, runs: 32 });
  const b8 = cmp.ratios.find((r) => r.batch === 8)!;
  const b1 = cmp.ratios.find((r) => r.batch === 1)!;
  const size = out.length / bytes.length;
  rows.push({ target: `fmnist CNN ${label}: size ≤ 0.3×`, measured: `${size.toFixed(3)}×`, pass: size <= 0.3 });
  rows.push({ target: `fmnist CNN ${label}: batch-8 latency ≤ 0.6×`, measured: `${b8.ratio.toFixed(3)}× (spread ${b8.low.toFixed(2)}–${b8.high.toFixed(2)}; b1 ${b1.ratio.toFixed(2)}×)`, pass: b8.ratio <= 0.6 });
  rows.push({
    target: `fmnist CNN ${label}: accuracy drop ≤ 0.5 pt (2000 images)`,
    measured: `${drop.toFixed(2)} pt (${(100 * ev.task!.reference.top1!).toFixed(2)}% → ${(100 * ev.task!.candidate.top1!).toFixed(2)}%)`,
    pass: drop <= 0.5,
  });
  const prof = await profileModel(q, { input: batches[0]!.input! } as Feeds, { runs: 4, warmup: 2 });
  notes.push(`fmnist ${label}: kernels onnxruntime ran: ${prof.byOpType.map((e) => `${e.opType ?? e.name}×${e.count ?? '?'}`).join(', ')}; worst layers: ${ctx.changes.stats.sqnrWorstFirst}`);
  if (ctx.changes.stats.sensitivityResult) {
    notes.push(`fmnist ${label}: sensitivity start: ${ctx.changes.stats.sensitivityStart}; result: ${ctx.changes.stats.sensitivityResult}; kept float: ${ctx.changes.stats.excludedBySensitivity}`);
  }
}

export async function quantBench(): Promise<string> {
  const rows: Row[] = [];
  const notes: string[] = [];
  await fmnistStatic({}, 'static int8 (percentile 99.99, per-channel, reduce-range)', rows, notes);
  await fmnistStatic({ reduceRange: false }, 'static int8 without reduce-range', rows, notes);
  await fmnistStatic({ calibrationMethod: 'entropy' }, 'static int8, entropy calibration', rows, notes);
  await fmnistStatic({ calibrationMethod: 'entropy', sensitivity: { maxAccuracyDrop: 0.5 } }, 'static int8, entropy + sensitivity(maxAccuracyDrop 0.5)', rows, notes);
  rows.push({ target: 'PP-OCRv4 rec static int8: size ≤ 0.3×, b8 ≤ 0.7×, sequences identical ≥ 98%', measured: 'not measured: no rendered text-line fixture yet', pass: null });
  rows.push({ target: 'transformer dynamic int8 / int4 weights', measured: 'not measured: quantize.dynamic and quantize.weights not implemented yet', pass: null });
  const env = environment();
  return [
    '## Quantization (issue 5)',
    '',
    `Measured by \`node dist/src/bench/quant.js\` on ${env.cpuModel} (${env.cores} cores), onnxruntime-node ${env.onnxruntime}.`,
    '',
    '| target | measured | result |',
    '|---|---|---|',
    ...rows.map((r) => `| ${r.target} | ${r.measured} | ${r.pass === null ? '—' : r.pass ? 'pass' : 'MISS'} |`),
    '',
    ...notes.map((n) => `- ${n}`),
    '',
  ].join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const md = await quantBench();
  mkdirSync(join(ROOT, 'bench'), { recursive: true });
  writeFileSync(join(ROOT, 'bench/quant.md'), md);
  process.stdout.write(md);
}
