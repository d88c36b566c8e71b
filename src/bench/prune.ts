// Unstructured and 2:4 pruning on the fmnist CNN: accuracy on the 2000 labelled images (no fine-tuning),
// exact sparsity, file and gzip size ratios, batch-8 latency ratio side by side.
// Runnable alone: `node dist/src/bench/prune.js` writes bench/prune.md.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { Value as TBValue } from '@sinclair/typebox/value';
import { decodeModel, encodeModel } from '../onnx/model-io.js';
import { verifyModel } from '../onnx/verify.js';
import { ChangeLog, type PassContext, type PassDefinition } from '../pipeline/pass.js';
import { PASSES } from '../passes/index.js';
import { evaluateModels } from '../eval/evaluate.js';
import { compareModels } from '../measure/benchmark.js';
import { batchesFromArrays, readArraysFile, readLabelsFile } from '../data/samples.js';
import { environment } from '../report/environment.js';

const ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
})();

const FMNIST = {
  model: 'test/fixtures/fmnist/fmnist-cnn.onnx',
  inputs: 'test/fixtures/fmnist/test-2000.npz',
  labels: 'test/fixtures/fmnist/test-2000-labels.npy',
};

const CASES: { label: string; step: Record<string, unknown> }[] = [
  { label: 'unstructured 50% global', step: { pass: 'prune.magnitude', sparsity: 0.5, scope: 'global' } },
  { label: 'unstructured 50% local', step: { pass: 'prune.magnitude', sparsity: 0.5, scope: 'local' } },
  { label: '2:4 (N:M)', step: { pass: 'prune.nm', n: 2, m: 4 } },
];

const pct = (x: number) => `${(x * 100).toFixed(2)}%`;

export async function pruneBench(): Promise<string> {
  const bytes = readFileSync(join(ROOT, FMNIST.model));
  const model0 = decodeModel(bytes);
  const arrays = readArraysFile(join(ROOT, FMNIST.inputs), model0);
  const batches = [...batchesFromArrays(model0, arrays, { batchSize: 100, maxSamples: 2000 })];
  const labels = readLabelsFile(join(ROOT, FMNIST.labels));
  const gzipOriginal = gzipSync(bytes).length;
  const rows: string[] = [];
  let baseTop1: number | undefined;
  for (const c of CASES) {
    process.stderr.write(`prune bench: ${c.label}\n`);
    const pass = PASSES[c.step.pass as string] as PassDefinition;
    const model = decodeModel(bytes);
    const changes = new ChangeLog();
    const ctx: PassContext = {
      changes,
      progress: () => {},
      sampleInputs: async () => batches,
      evaluationInputs: async () => batches,
      samplesAreSynthetic: false,
      samplesAreCalibration: false,
    };
    await pass.run(model, TBValue.Default(pass.schema, structuredClone(c.step)) as never, ctx);
    verifyModel(model);
    const out = encodeModel(model);
    const ev = await evaluateModels(bytes, out, batches, { labels, source: 'data' });
    const top1 = ev.task!.candidate.top1!;
    baseTop1 = ev.task!.reference.top1!;
    const cmp = await compareModels(bytes, out, { batchSizes: [8], warmup: 10, runs: 32, rounds: 8 });
    const lat = cmp.ratios[0]!;
    const gz = gzipSync(out).length;
    rows.push(
      `| ${c.label} | ${pct(Number(changes.stats.sparsity))} (${changes.stats.zeroWeights}/${changes.stats.prunedWeights} in ${changes.stats.prunedLayers} layers) | ${pct(baseTop1)} → ${pct(top1)} | ${(out.length / bytes.length).toFixed(3)}× | ${(gz / gzipOriginal).toFixed(3)}× (${gzipOriginal} → ${gz} B) | ${lat.ratio.toFixed(2)}× (${lat.low.toFixed(2)}–${lat.high.toFixed(2)}) ${lat.verdict} |`,
    );
  }
  const env = environment();
  return [
    '## Pruning: unstructured magnitude and 2:4 (fmnist CNN)',
    '',
    `Measured ${new Date().toISOString().slice(0, 16)}Z by \`node dist/src/bench/prune.js\` on ${env.cpuModel} (${env.cores} cores), onnxruntime-node ${env.onnxruntime}.`,
    'Accuracy: top-1 on the 2000 labelled test images, **without any fine-tuning or recovery** (pruning only).',
    'Sparsity: exact zeros / weights of the pruned Conv/Gemm weights (12 of 14 layers: weights ≥ 1024 elements; the 288-element stem conv and the 880-element Gemm head are untouched by the default minElements).',
    'Latency ×: pruned / original at batch 8, compareModels side by side (8 A/B rounds, median of per-round ratios, 10th–90th pct).',
    '',
    '| pruning | sparsity (exact) | top-1 original → pruned | file size × | gzip size × | latency × b8 |',
    '|---|---|---|---|---|---|',
    ...rows,
    '',
    'Notes: zeros are stored densely, so the .onnx file is the same size (1.00×) and onnxruntime CPU kernels multiply the zeros',
    'as before: no latency gain is expected, and a ratio near 1.00 is the honest result. The only size gain is compressibility',
    '(gzip column). 2:4 only pays off on hardware/runtimes with sparse kernels (e.g. sparse tensor cores), not here.',
    '',
  ].join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  pruneBench()
    .then((md) => {
      mkdirSync(join(ROOT, 'bench'), { recursive: true });
      writeFileSync(join(ROOT, 'bench', 'prune.md'), md);
      process.stdout.write(md);
    })
    .catch((err: unknown) => {
      process.stderr.write(`prune bench failed: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 1;
    });
}
