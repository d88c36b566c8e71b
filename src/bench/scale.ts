// `npm run bench:scale`: the issue's scale targets on large random-initialized standard architectures
// (ResNet-50, BERT-base, a ≥350M decoder with external data), generated at bench time by the committed
// scripts in scripts/fixtures/large/ into .cache/fixtures/ (never committed, never downloaded).
// Each case is one CLI run under /usr/bin/time -v: wall time and peak RSS of the whole process.
// `--small` (or SCALE_SMALL=1) uses the CI sizes of the same architectures and writes out/scale-small.md.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { formatSeconds, formatTiming } from '../format.js';

/** The issue states its limits in GB (10^9 bytes). */
const fmtGB = (bytes: number) => (bytes < 0.1 * GB ? `${(bytes / 1e6).toFixed(1)} MB` : `${(bytes / GB).toFixed(2)} GB`);
import { environment } from '../report/environment.js';
import type { CompressionReport } from '../report/schema.js';
import { REPO_ROOT } from './repo-root.js';

const ROOT = REPO_ROOT;
const CLI = join(ROOT, 'dist/src/cli/main.js');
const PYTHON = '/usr/bin/python3';
const GB = 1e9;

type FixtureId = 'resnet50' | 'bert' | 'decoder' | 'over2gb';

/** The model files each generator script writes, by size. */
const FIXTURES: Record<FixtureId, { script: string; name: (small: boolean) => string }> = {
  resnet50: { script: 'resnet50.py', name: (s) => (s ? 'resnet50-small' : 'resnet50') },
  bert: { script: 'bert.py', name: (s) => (s ? 'bert-small' : 'bert-base') },
  decoder: { script: 'decoder.py', name: (s) => (s ? 'decoder-small' : 'decoder-406m') },
  over2gb: { script: 'over2gb.py', name: (s) => (s ? 'over2gb-small' : 'over2gb') },
};

interface ScaleCase {
  id: string;
  target: string;
  fixture: FixtureId;
  /** CLI arguments after the model path; `{dir}` and `{name}` are filled in. */
  args: string[];
  /** Inline recipe written next to the fixtures, if the case needs one that recipes/ lacks. */
  recipe?: object;
  maxSeconds: number;
  /** Peak RSS limit in bytes, or as a multiple of the model's size on disk. */
  maxRss?: { bytes: number } | { timesModel: number };
}

const compress = (recipe: string, data: 'calib+eval' | 'eval') => [
  'compress',
  '--recipe',
  recipe,
  '--out',
  '{dir}/out/{case}.onnx',
  '--report',
  '{dir}/out/{case}.report.json',
  '--data',
  '{dir}/{name}-eval-64.npz',
  ...(data === 'calib+eval' ? ['--calibration', '{dir}/{name}-calib-64.npz'] : []),
  '--quiet',
];

export const SCALE_CASES: ScaleCase[] = [
  { id: 'decoder-inspect', target: 'inspect the ≥1.4 GB external-data decoder', fixture: 'decoder', args: ['inspect'], maxSeconds: 10, maxRss: { bytes: 1 * GB } },
  {
    id: 'bert-int8-dynamic',
    target: 'BERT-base dynamic int8',
    fixture: 'bert',
    args: compress('recipes/int8-dynamic.json', 'eval'),
    maxSeconds: 120,
    maxRss: { bytes: 2.5 * GB },
  },
  {
    id: 'resnet50-int8-static',
    target: 'ResNet-50 static int8, 64 calibration images, with the benchmark',
    fixture: 'resnet50',
    args: compress('recipes/int8-static.json', 'calib+eval'),
    maxSeconds: 300,
    maxRss: { bytes: 3 * GB },
  },
  {
    id: 'resnet50-tucker-0.5',
    target: 'ResNet-50 Tucker rank 0.5',
    fixture: 'resnet50',
    args: compress('{dir}/recipes/tucker-0.5.json', 'calib+eval'),
    recipe: { name: 'tucker-0.5', steps: [{ pass: 'factorize.tucker', rank: 0.5 }] },
    maxSeconds: 300,
  },
  {
    id: 'resnet50-prune-30',
    target: 'ResNet-50 structured pruning 30% with recovery',
    fixture: 'resnet50',
    args: compress('recipes/prune-structured-30.json', 'calib+eval'),
    maxSeconds: 600,
  },
  {
    id: 'decoder-int4',
    target: '≥350M decoder int4 weights (MatMulNBits)',
    fixture: 'decoder',
    args: compress('recipes/int4-weights.json', 'eval'),
    maxSeconds: 600,
    maxRss: { timesModel: 2.5 },
  },
  // Past 2 GB (9 MatMuls, 2.2 GB, only as .onnx + .onnx.data): inspect checks the data file but
  // reads none of it, so it must stay as small as for the decoder.
  { id: 'over2gb-inspect', target: 'inspect the 2.2 GB model past the protobuf limit', fixture: 'over2gb', args: ['inspect'], maxSeconds: 10, maxRss: { bytes: 1 * GB } },
  // Whatever onnxruntime runs, past 2 GB: decode from external data, sessions on the original (range
  // check, baseline, fidelity, benchmark) and the result, and the result written back as external data
  // without being asked. convert.fp16 with every op blocked rewrites nothing, so the output stays
  // past 2 GB. RSS: the weights once in JS, once in onnxruntime, plus room for its working copy.
  {
    id: 'over2gb-roundtrip',
    target: 'compress the 2.2 GB model to a result past 2 GB (external data written automatically)',
    fixture: 'over2gb',
    args: compress('{dir}/recipes/over2gb-roundtrip.json', 'eval'),
    recipe: { name: 'over2gb-roundtrip', steps: [{ pass: 'convert.fp16', extraBlockedOps: ['MatMul', 'Relu'] }] },
    maxSeconds: 600,
    maxRss: { timesModel: 2.5 },
  },
];

interface Measured {
  case: ScaleCase;
  exitCode: number;
  wallSeconds: number;
  peakRssBytes: number;
  modelBytes: number;
  report?: CompressionReport;
  error?: string;
}

/** Model file plus its external data file, if any. */
function modelSize(path: string): number {
  return statSync(path).size + (existsSync(`${path}.data`) ? statSync(`${path}.data`).size : 0);
}

function generate(fixture: FixtureId, small: boolean, dir: string): void {
  const model = join(dir, `${FIXTURES[fixture].name(small)}.onnx`);
  if (existsSync(model) && existsSync(join(dir, `${FIXTURES[fixture].name(small)}-eval-64.npz`))) return;
  process.stderr.write(`generating ${model}\n`);
  const script = join(ROOT, 'scripts/fixtures/large', FIXTURES[fixture].script);
  const r = spawnSync(PYTHON, [script, '--size', small ? 'small' : 'full', '--out', dir, '--samples', '64'], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`${script} failed (exit ${r.status}); it needs ${PYTHON} with python3-torch and python3-onnx`);
}

/** `/usr/bin/time -v` output: elapsed wall clock and maximum resident set size. */
export function parseTimeV(text: string): { wallSeconds: number; peakRssBytes: number } {
  const wall = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): ([\d:.]+)/.exec(text)?.[1];
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(text)?.[1];
  if (!wall || !rss) throw new Error('no /usr/bin/time -v statistics in the output');
  const wallSeconds = wall.split(':').reduce((s, part) => s * 60 + Number(part), 0);
  return { wallSeconds, peakRssBytes: Number(rss) * 1024 };
}

function runCase(c: ScaleCase, small: boolean, dir: string): Measured {
  const name = FIXTURES[c.fixture].name(small);
  const modelPath = join(dir, `${name}.onnx`);
  const fill = (a: string) => a.replaceAll('{dir}', dir).replaceAll('{name}', name).replaceAll('{case}', c.id);
  if (c.recipe) {
    mkdirSync(join(dir, 'recipes'), { recursive: true });
    writeFileSync(join(dir, 'recipes', `${(c.recipe as { name: string }).name}.json`), JSON.stringify(c.recipe));
  }
  const [command, ...rest] = c.args.map(fill);
  const argv = [CLI, command!, modelPath, ...rest];
  process.stderr.write(`${c.id}: node ${argv.map((a) => a.replace(`${ROOT}/`, '')).join(' ')}\n`);
  const r = spawnSync('/usr/bin/time', ['-v', process.execPath, ...argv], { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  const { wallSeconds, peakRssBytes } = parseTimeV(r.stderr);
  const measured: Measured = { case: c, exitCode: r.status ?? -1, wallSeconds, peakRssBytes, modelBytes: modelSize(modelPath) };
  if (measured.exitCode !== 0) {
    measured.error = (r.stderr.split('\n').find((l) => /^(error|modelpress)/i.test(l.trim())) ?? r.stderr.split('\n')[0] ?? '').trim();
  }
  const reportPath = join(dir, 'out', `${c.id}.report.json`);
  if (measured.exitCode === 0 && existsSync(reportPath)) measured.report = JSON.parse(readFileSync(reportPath, 'utf8')) as CompressionReport;
  return measured;
}

function rssLimit(m: Measured): number | null {
  const l = m.case.maxRss;
  if (!l) return null;
  return 'bytes' in l ? l.bytes : l.timesModel * m.modelBytes;
}

function verdict(m: Measured): string {
  if (m.exitCode !== 0) return `**failed** (exit ${m.exitCode})`;
  const limit = rssLimit(m);
  const misses = [
    ...(m.wallSeconds > m.case.maxSeconds ? ['time'] : []),
    ...(limit !== null && m.peakRssBytes > limit ? ['memory'] : []),
  ];
  return misses.length ? `**missed** (${misses.join(', ')})` : 'met';
}

/** Where a compress run spent its time, from its report. */
function breakdown(r: CompressionReport): string {
  const steps = r.steps.map((s) => `${s.pass} ${formatSeconds(s.durationMs)}`).join(', ');
  const timing = r.timing ? `; benchmark: ${formatTiming(r.timing)}` : '';
  const cut = r.samples.given ? `; fidelity on ${r.samples.items} of ${r.samples.given.items} samples (budget)` : `; fidelity on ${r.samples.items} samples`;
  return `total ${formatSeconds(r.durationMs)}; passes: ${steps}${cut}${timing}`;
}

export function renderScale(results: Measured[], small: boolean, load: { before: number[]; after: number[] }): string {
  const env = environment();
  const fmtLoad = (l: number[]) => l.map((x) => x.toFixed(2)).join(', ');
  const lines = [
    `# Scale targets${small ? ' (CI sizes: the same architectures, a few MB)' : ''}`,
    '',
    `Measured ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC by \`npm run bench:scale${small ? ' -- --small' : ''}\` on ${env.cpuModel} (${env.cores} cores, ${fmtGB(os.totalmem())} RAM), onnxruntime-node ${env.onnxruntime}, Node ${env.node}.`,
    `Load average (1, 5, 15 min) before: ${fmtLoad(load.before)}; after: ${fmtLoad(load.after)}.`,
    'Wall time and peak RSS of the whole CLI process from `/usr/bin/time -v`. Models are random-initialized (scripts/fixtures/large/), default recipe settings unless the case names a number.',
    '',
    '| case | target | model size | wall time | peak RSS | verdict |',
    '|---|---|---|---|---|---|',
  ];
  for (const m of results) {
    const limit = rssLimit(m);
    const target = `≤ ${formatSeconds(m.case.maxSeconds * 1000)}${limit !== null ? `, RSS ≤ ${fmtGB(limit)}` : ''}`;
    lines.push(`| ${m.case.id} | ${m.case.target}: ${target} | ${fmtGB(m.modelBytes)} | ${formatSeconds(m.wallSeconds * 1000)} | ${fmtGB(m.peakRssBytes)} | ${verdict(m)} |`);
  }
  lines.push('', '## Where the time went', '');
  for (const m of results) {
    lines.push(`- **${m.case.id}**: ${m.report ? breakdown(m.report) : m.error ? `\`${m.error}\`` : `exit ${m.exitCode}`}`);
  }
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { small: { type: 'boolean' }, cases: { type: 'string' }, out: { type: 'string' } } });
  const small = values.small === true || process.env.SCALE_SMALL === '1';
  const dir = join(ROOT, '.cache/fixtures');
  mkdirSync(join(dir, 'out'), { recursive: true });
  const chosen = values.cases ? SCALE_CASES.filter((c) => values.cases!.split(',').includes(c.id)) : SCALE_CASES;
  for (const f of new Set(chosen.map((c) => c.fixture))) generate(f, small, dir);
  const before = os.loadavg();
  const out = values.out ?? join(ROOT, small ? 'out/scale-small.md' : 'bench/scale.md');
  mkdirSync(dirname(out), { recursive: true });
  const results: Measured[] = [];
  let text = '';
  for (const c of chosen) {
    results.push(runCase(c, small, dir));
    // rewritten after every case: a long run that is stopped still leaves what it measured
    text = renderScale(results, small, { before, after: os.loadavg() });
    writeFileSync(out, text);
  }
  process.stdout.write(text);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().catch((err: unknown) => {
    process.stderr.write(`scale bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  });
}
