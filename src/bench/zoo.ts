// `npm run zoo`: every real model reachable through npm devDependencies and every ONNX backend test model
// (Debian's libonnx-testdata) through inspect, round trip, the original in onnxruntime on its own
// reference inputs, fp16 and one quantization; the table goes to bench/zoo.md.
// Models run in child processes, a batch each, so an onnxruntime abort or a hang costs one model
// (the one it happened on is recorded as internal), not the run.
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { environment } from '../report/environment.js';
import { BACKEND_TEST_ROOT, NPM_MODELS, backendModels, everyKth, type ZooModel } from './zoo-models.js';
import { STEPS, runZooModel, type Outcome, type StepName, type StepResult } from './zoo-steps.js';
import { REPO_ROOT } from './repo-root.js';

export interface ZooRow {
  model: string;
  results: StepResult[];
}

export interface ZooOptions {
  steps: readonly StepName[];
  /** Child processes running at once. */
  jobs?: number;
  /** Models per child process. */
  batch?: number;
  /** Per-model limit; a model over it is killed and recorded as internal (a hang). */
  timeoutMs?: number;
  onRow?: (row: ZooRow, done: number, total: number) => void;
}

type FromChild = { type: 'step'; model: string; step: StepName } | { type: 'row'; row: ZooRow };
type ToChild = { models: ZooModel[]; steps: readonly StepName[] };

const WORKER = fileURLToPath(import.meta.url);

/** Runs the models through the steps, `jobs` child processes at a time; rows come back in input order. */
export async function runZoo(models: readonly ZooModel[], opts: ZooOptions): Promise<ZooRow[]> {
  const batch = opts.batch ?? 40;
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const rows = new Map<string, ZooRow>();
  const queue: ZooModel[][] = [];
  for (let i = 0; i < models.length; i += batch) queue.push(models.slice(i, i + batch));
  const runBatch = (list: ZooModel[]): Promise<void> =>
    new Promise((resolve) => {
      let pending = [...list];
      let current: { model: string; step: StepName } | undefined;
      let timer: NodeJS.Timeout | undefined;
      let child: ChildProcess;
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      };
      const record = (row: ZooRow) => {
        rows.set(row.model, row);
        pending = pending.filter((m) => m.id !== row.model);
        opts.onRow?.(row, rows.size, models.length);
      };
      const start = () => {
        child = fork(WORKER, ['--worker'], { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], execArgv: [] });
        child.stderr!.resume(); // onnxruntime's own logging
        child.on('message', (msg: FromChild) => {
          if (msg.type === 'step') {
            if (current?.model !== msg.model) arm();
            current = { model: msg.model, step: msg.step };
          } else {
            current = undefined;
            record(msg.row);
          }
        });
        child.on('exit', (code, signal) => {
          clearTimeout(timer);
          if (current) {
            // the model this child was on crashed or hung: record it, go on with the rest in a new child
            const how = signal === 'SIGKILL' ? `no result within ${timeoutMs / 1000} s (killed)` : `the process died (${signal ?? `exit ${code}`})`;
            record({ model: current.model, results: [{ step: current.step, outcome: 'internal', code: 'crash', reason: how, ms: 0 }] });
            current = undefined;
          } else if (pending.length > 0 && code !== 0) {
            for (const m of pending) record({ model: m.id, results: [{ step: 'inspect', outcome: 'internal', code: 'crash', reason: `worker exit ${signal ?? code}`, ms: 0 }] });
          }
          if (pending.length > 0) start();
          else resolve();
        });
        arm();
        child.send({ models: pending, steps: opts.steps } satisfies ToChild);
      };
      start();
    });
  const workers = Array.from({ length: Math.max(1, opts.jobs ?? 1) }, async () => {
    for (let next = queue.shift(); next; next = queue.shift()) await runBatch(next);
  });
  await Promise.all(workers);
  return models.map((m) => rows.get(m.id)!);
}

async function workerMain(): Promise<void> {
  const msg = await new Promise<ToChild>((resolve) => process.once('message', resolve as (m: unknown) => void));
  for (const m of msg.models) {
    const results = await runZooModel(m, msg.steps, (step) => process.send!({ type: 'step', model: m.id, step } satisfies FromChild));
    await new Promise<void>((resolve) => process.send!({ type: 'row', row: { model: m.id, results } } satisfies FromChild, () => resolve()));
  }
  process.disconnect();
}

// ---------------------------------------------------------------- report

/** Outcomes that make the zoo (and its test) fail. */
export const FAILING: readonly Outcome[] = ['internal', 'wrong-refusal'];

export function countOutcomes(rows: readonly ZooRow[]): Record<StepName, Partial<Record<Outcome, number>>> {
  const counts = Object.fromEntries(STEPS.map((s) => [s, {}])) as Record<StepName, Partial<Record<Outcome, number>>>;
  for (const r of rows) for (const s of r.results) counts[s.step][s.outcome] = (counts[s.step][s.outcome] ?? 0) + 1;
  return counts;
}

const OUTCOME_ORDER: Outcome[] = ['ok', 'mismatch', 'refused', 'ort-failed', 'wrong-refusal', 'internal'];
const cell = (s: string) => s.replace(/\|/g, '\\|');

export function renderZoo(rows: readonly ZooRow[], settings: string, elapsedMs: number): string {
  const env = environment();
  const counts = countOutcomes(rows);
  const steps = STEPS.filter((s) => Object.keys(counts[s]).length > 0);
  const lines = [
    '# The model zoo',
    '',
    `Measured ${new Date().toISOString().slice(0, 10)} by \`npm run zoo\` on ${env.cpuModel} (${env.cores} cores), onnxruntime-node ${env.onnxruntime}, Node ${env.node}: ${rows.length} models in ${(elapsedMs / 60000).toFixed(1)} min (${settings}).`,
    '',
    'Steps: **inspect** (decode, verify, summarize), **roundtrip** (decode → encode gives the same bytes), **reference** (the original in onnxruntime on',
    'its own test_data_set_0 inputs, compared with output_N.pb at rtol 1e-3; synthetic inputs for the npm models), **data** (modelpress reads',
    'test_data_set_0 as one sample set, values identical), **fp16** (recipes/fp16.json) and **quant** (static int8, minmax, calibrated on the test',
    'inputs for backend models; dynamic int8 for the npm models), each through the pipeline users run, the result run in onnxruntime and compared',
    'with the original (fp16: max error ≤ 2% of the largest |value|; quant: ≤ 25%; integer and bool outputs exactly).',
    '',
    'Outcomes: **ok**; **mismatch** (outputs beyond that tolerance: listed, not a failure of the run); **refused** (a clear error with a',
    'stable code, acceptable because onnxruntime cannot run the original on those inputs either); **ort-failed** (the reference step:',
    'onnxruntime-node cannot run the original); **wrong-refusal** (a refusal of a model onnxruntime runs) and **internal** (an `internal`',
    'error, a crash or a hang) are failures.',
    '',
    'Notes:',
    '- The quantization is static int8 where QuantizeLinear exists (opset ≥ 10) and dynamic int8 below: `quantize.static` upgrades',
    '  opset 9 models but refuses older ones (`pass_failed`, "needs opset ≥ 10 … could not be upgraded").',
    '- onnxruntime-node feeds and returns tensors only: models with sequence or optional inputs or outputs run in onnxruntime',
    '  (Python, C++) but not here, so modelpress refuses to compress them (`unsupported_model`, naming the value); inspect and',
    '  round trip work. Sequences between the nodes of a graph pass through fp16 and quantization; fp16 does not retype the',
    '  float sequences an If, Loop or SequenceMap body carries (every such test model has sequence inputs).',
    '- The StringNormalizer models need the en_US.UTF-8 locale, which this machine lacks (onnxruntime refuses to load them).',
    '',
    `| step | ${OUTCOME_ORDER.join(' | ')} |`,
    `|---|${OUTCOME_ORDER.map(() => '---:').join('|')}|`,
    ...steps.map((s) => `| ${s} | ${OUTCOME_ORDER.map((o) => counts[s][o] ?? 0).join(' | ')} |`),
    '',
  ];
  const notOk = rows.flatMap((r) => r.results.filter((s) => s.outcome !== 'ok').map((s) => ({ model: r.model, ...s })));
  const sections: [string, Outcome[]][] = [
    ['Failures (internal errors, wrong refusals)', ['internal', 'wrong-refusal']],
    ['Output mismatches', ['mismatch']],
    ['Acceptable refusals and models onnxruntime-node cannot run', ['ort-failed', 'refused']],
  ];
  for (const [title, outcomes] of sections) {
    const list = notOk.filter((s) => outcomes.includes(s.outcome));
    lines.push(`## ${title}: ${list.length}`, '');
    if (list.length === 0) continue;
    lines.push('| model | step | outcome | code | reason |', '|---|---|---|---|---|');
    for (const s of list) lines.push(`| ${s.model} | ${s.step} | ${s.outcome} | ${s.code ?? ''} | ${cell(s.reason ?? '')} |`);
    lines.push('');
  }
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      every: { type: 'string', default: '1' }, // every k-th backend model
      steps: { type: 'string', default: STEPS.join(',') },
      jobs: { type: 'string', default: '2' },
      out: { type: 'string' },
      only: { type: 'string' }, // a substring of the model ids to run
    },
  });
  if (!existsSync(BACKEND_TEST_ROOT)) throw new Error(`${BACKEND_TEST_ROOT} is missing: run scripts/setup.sh (it installs Debian's libonnx-testdata)`);
  let models = [...NPM_MODELS, ...everyKth(backendModels(), Number(values.every))];
  if (values.only) models = models.filter((m) => m.id.includes(values.only!));
  const steps = values.steps!.split(',') as StepName[];
  const t0 = Date.now();
  const rows = await runZoo(models, {
    steps,
    jobs: Number(values.jobs),
    onRow: (row, done, total) => {
      const bad = row.results.filter((r) => r.outcome !== 'ok');
      process.stderr.write(`[${done}/${total}] ${row.model}${bad.length ? `: ${bad.map((r) => `${r.step} ${r.outcome}${r.reason ? ` (${r.reason.slice(0, 120)})` : ''}`).join('; ')}` : ''}\n`);
    },
  });
  const md = renderZoo(rows, `every ${values.every === '1' ? '' : `${values.every}th `}backend model, steps ${steps.join(', ')}, ${values.jobs} processes`, Date.now() - t0);
  writeFileSync(values.out ?? join(REPO_ROOT, 'bench/zoo.md'), md);
  process.stdout.write(md.split('\n## ')[0]!);
  if (rows.some((r) => r.results.some((s) => FAILING.includes(s.outcome)))) process.exitCode = 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const run = process.argv.includes('--worker') ? workerMain : main;
  run().catch((err: unknown) => {
    process.stderr.write(`zoo failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  });
}
