#!/usr/bin/env node
// modelpress CLI: the whole pipeline in one process, no services.
// Exit codes: 0 ok, 2 bad usage or bad input, 1 internal error.
import { mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { basename, dirname, resolve } from 'node:path';
import { renderReportHtml } from '../report/html.js';
import { InvalidInputError, toModelpressError } from '../errors.js';
import { formatSummary, summarizeModel } from '../onnx/inspect.js';
import { formatBytes, formatCount } from '../format.js';
import { assertModelFitsBudget } from '../onnx/budget.js';
import { parseRecipe } from '../pipeline/recipe.js';
import { runPipeline, type PipelineReport } from '../pipeline/pipeline.js';
import { openDataset, readLabelsFile } from '../data/samples.js';
import { evaluateModels } from '../eval/evaluate.js';
import type { MetricName } from '../metrics/task.js';
import { environment, toJson } from '../report/environment.js';
import { benchmarkModel, compareModels, inputsForBatch, resolveTimingPlan } from '../measure/benchmark.js';
import { formatProfile, profileModel } from '../measure/profile.js';
import { formatBenchmark, formatComparison } from '../measure/format.js';
import type { SyntheticInputOptions } from '../runtime/ort.js';
import { probeInputShapes } from '../runtime/input-shapes.js';
import { PASSES } from '../passes/index.js';
import { formatPassHelp } from '../passes/describe.js';
import { nearestName } from '../pipeline/schema-errors.js';
import { loadModelFile, loadModelFileMetadata, readBytes, writeModelOutput } from './model-files.js';
import { runGoal } from './search.js';
import { UsageError, nonNegativeInt, parse, parseBatchList, parseKeyList, positiveInt } from './args.js';
import { COMMAND_USAGE, USAGE, asksForHelp, commandUsage } from './usage.js';

function writeFile(path: string, data: Uint8Array | string): void {
  mkdirSync(dirname(resolve(path)), { recursive: true });
  writeFileSync(path, data);
}




function syntheticOptions(values: Record<string, unknown>): SyntheticInputOptions {
  const shapes = parseKeyList(values.shape as string[] | undefined, '--shape', true);
  for (const [k, dims] of Object.entries(shapes)) {
    if (dims.some((d) => !Number.isNaN(d) && (!Number.isInteger(d) || d < 1))) throw new UsageError(`--shape ${k}: dims must be positive integers or B`);
  }
  const dims = Object.fromEntries(Object.entries(parseKeyList(values.dim as string[] | undefined, '--dim')).map(([k, v]) => [k, v[0]!]));
  const fixed = Object.fromEntries(Object.entries(parseKeyList(values.value as string[] | undefined, '--value')).map(([k, v]) => [k, v[0]!]));
  return { shapes, dims, values: fixed };
}


async function cmdInspect(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, { json: { type: 'boolean' } });
  if (positionals.length !== 1) throw new UsageError('inspect takes exactly one model path');
  const file = await loadModelFileMetadata(positionals[0]!);
  const summary = summarizeModel(file.model, file.sizeBytes);
  process.stdout.write(values.json ? `${toJson(summary)}\n` : `${formatSummary(summary)}\n`);
}

async function cmdCompress(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, {
    recipe: { type: 'string' },
    out: { type: 'string', short: 'o' },
    report: { type: 'string' },
    'report-html': { type: 'string' },
    data: { type: 'string' },
    calibration: { type: 'string' },
    labels: { type: 'string' },
    'label-output': { type: 'string' },
    'max-samples': { type: 'string' },
    batch: { type: 'string' },
    shape: { type: 'string', multiple: true },
    dim: { type: 'string', multiple: true },
    value: { type: 'string', multiple: true },
    quiet: { type: 'boolean', short: 'q' },
    'external-data': { type: 'boolean' },
    frontier: { type: 'string' },
  });
  if (positionals.length !== 1) throw new UsageError('compress takes exactly one model path');
  if (values.labels && !values.data) throw new UsageError('--labels needs --data');
  if (!values.recipe) throw new UsageError('compress needs --recipe <recipe.json>');
  if (!values.out) throw new UsageError('compress needs --out <out.onnx>');
  // Everything is validated before any work starts.
  const recipe = parseRecipe(new TextDecoder().decode(readBytes(values.recipe as string, 'recipe')));
  if (values.frontier && !recipe.goal) throw new UsageError('--frontier needs a recipe with a goal');
  if (recipe.goal && !values.data) throw new UsageError('a goal is judged on data: give --data (and --labels for a task metric), split into a search part and a held-out part');
  const modelPath = positionals[0]!;
  const { model, source } = await loadModelFile(modelPath);
  const synthetic = syntheticOptions(values);
  assertModelFitsBudget(model);
  const batchesOf = (path: string) => {
    const batchSize = positiveInt(values.batch, '--batch', recipe.evaluate.batchSize);
    const maxSamples = positiveInt(values['max-samples'], '--max-samples', recipe.evaluate.maxSamples);
    return [...openDataset(path, model).batches({ batchSize, maxSamples })];
  };
  const samples = values.data ? batchesOf(values.data as string) : undefined;
  const calibration = values.calibration ? batchesOf(values.calibration as string) : undefined;
  const labels = values.labels ? readLabelsFile(values.labels as string) : undefined;
  const controller = new AbortController();
  const onSignal = () => controller.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const quiet = values.quiet === true;
  let lastLine = '';
  try {
    if (recipe.goal) {
      const { summary } = await runGoal(source, {
        recipe,
        modelPath,
        ...(samples ? { samples } : {}),
        ...(calibration ? { calibration } : {}),
        ...(labels ? { labels } : {}),
        ...(values['label-output'] ? { labelOutput: values['label-output'] as string } : {}),
        out: values.out as string,
        ...(values.report ? { report: values.report as string } : {}),
        ...(values['report-html'] ? { reportHtml: values['report-html'] as string } : {}),
        ...(values.frontier ? { frontierDir: values.frontier as string } : {}),
        externalData: values['external-data'] === true || recipe.output?.externalData === true,
        quiet,
        signal: controller.signal,
      });
      process.stdout.write(`${summary}\n`);
      return;
    }
    const result = await runPipeline(source, {
      recipe,
      inputName: basename(modelPath),
      signal: controller.signal,
      ...(samples ? { samples } : {}),
      ...(calibration ? { calibration } : {}),
      ...(labels ? { labels } : {}),
      ...(values['label-output'] ? { labelOutput: values['label-output'] as string } : {}),
      synthetic,
      onProgress: (p) => {
        if (quiet) return;
        const line = `[${p.step}/${p.steps}] ${p.stepName} ${p.percent.toFixed(0)}%${p.message ? ` — ${p.message}` : ''}`;
        if (line !== lastLine) process.stderr.write(`${line}\n`);
        lastLine = line;
      },
    });
    mkdirSync(dirname(resolve(values.out as string)), { recursive: true });
    const note = writeModelOutput(result.model, result.output, values.out as string, values['external-data'] === true || recipe.output?.externalData === true);
    if (note && !quiet) process.stderr.write(`${note}\n`);
    if (values.report) writeFile(values.report as string, `${toJson(result.report)}\n`);
    if (values['report-html']) writeFile(values['report-html'] as string, renderReportHtml(result.report, { title: `modelpress: ${basename(modelPath)}` }));
    process.stdout.write(`${formatResult(result.report, values.out as string)}\n`);
    process.stdout.write(nextSteps(values.out as string, values.report as string | undefined, values['report-html'] as string | undefined, modelPath, result.model.graph.inputs.filter((v) => !result.model.graph.initializers.includes(v)).map((v) => v.name)));
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function formatResult(r: PipelineReport, out: string): string {
  const lines = [
    ...(r.importNotes ?? []).map((n) => `note (${n.kind}): ${n.message}`),
    `wrote ${out}: ${formatBytes(r.baseline.sizeBytes)} → ${formatBytes(r.final.sizeBytes)} (${r.final.sizeRatio.toFixed(3)}×), ` +
      `${formatCount(r.baseline.params)} → ${formatCount(r.final.params)} parameters`,
  ];
  for (const s of r.steps) {
    const fid = Object.entries(s.fidelity)
      .map(([k, f]) => `${k}: SQNR ${Number.isFinite(f.sqnrDb) ? f.sqnrDb.toFixed(1) : String(f.sqnrDb)} dB, max |err| ${f.maxAbsError.toExponential(2)}`)
      .join('; ');
    lines.push(`  step ${s.index} ${s.pass}: ${formatBytes(s.sizeBytes)}, ${s.durationMs} ms; ${fid}`);
    for (const l of s.latency ?? []) {
      lines.push(`    batch ${l.batch}: latency ${l.ratio.toFixed(3)}× the original (spread ${l.low.toFixed(3)}–${l.high.toFixed(3)}) → ${l.verdict}`);
    }
  }
  const task = r.final.task;
  if (task && r.baseline.task) {
    lines.push(`  task: ${Object.keys(task).map((k) => `${k} ${fmtMetric(r.baseline.task![k]!)} → ${fmtMetric(task[k]!)}`).join(', ')}`);
  }
  lines.push(`  fidelity measured on ${r.samples.items} ${r.samples.source} input(s)`);
  for (const w of r.warnings) lines.push(`  warning: ${w}`);
  return lines.join('\n');
}

/** Where the reports are, and how to run the result: what a user does next. */
function nextSteps(out: string, report: string | undefined, reportHtml: string | undefined, original: string, names: string[]): string {
  const lines = [''];
  if (reportHtml) lines.push(`report: ${resolve(reportHtml)} (open it in a browser)`);
  if (report) lines.push(`report (JSON): ${resolve(report)}`);
  if (!report && !reportHtml) lines.push('no report written: add --report-html report.html (and/or --report report.json) to keep the measurements');
  lines.push(
    'next: run it in onnxruntime as you ran the original, e.g. in Node:',
    `  const ort = require('onnxruntime-node'); const s = await ort.InferenceSession.create('${resolve(out)}'); const outputs = await s.run({ ${names.length ? names.map((n) => `${JSON.stringify(n)}: tensor`).join(', ') : '…'} });`,
    `  or in Python: onnxruntime.InferenceSession('${resolve(out)}').run(None, {…}); compare speed side by side: modelpress bench ${original} ${out}`,
  );
  return `${lines.join('\n')}\n`;
}



async function cmdBench(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, {
    batch: { type: 'string' },
    warmup: { type: 'string' },
    runs: { type: 'string' },
    threads: { type: 'string' },
    rounds: { type: 'string' },
    budget: { type: 'string' },
    data: { type: 'string' },
    shape: { type: 'string', multiple: true },
    dim: { type: 'string', multiple: true },
    value: { type: 'string', multiple: true },
    json: { type: 'boolean' },
    out: { type: 'string' },
    quiet: { type: 'boolean', short: 'q' },
    profile: { type: 'boolean' },
    depth: { type: 'string' },
    'profile-batch': { type: 'string' },
  });
  if (positionals.length < 1 || positionals.length > 2) throw new UsageError('bench takes one model, or two to compare side by side');
  const paths = positionals as string[];
  const files: Awaited<ReturnType<typeof loadModelFile>>[] = [];
  for (const p of paths) files.push(await loadModelFile(p)); // one at a time: a bundle's temp dir is gone before the next
  const models = files.map((f) => f.source);
  const reference = files[0]!.model;
  assertModelFitsBudget(reference);
  if (files[1]) assertModelFitsBudget(files[1].model);
  let data;
  if (values.data) {
    data = openDataset(values.data as string, reference).batches({ batchSize: 16, maxSamples: 16 }).next().value;
  }
  const opts = {
    ...(parseBatchList(values.batch) ? { batchSizes: parseBatchList(values.batch)! } : {}),
    // unset timing flags are scaled to the budget from the model's measured run time
    ...(values.warmup !== undefined ? { warmup: nonNegativeInt(values.warmup, '--warmup', 0) } : {}),
    ...(values.runs !== undefined ? { runs: positiveInt(values.runs, '--runs', 1) } : {}),
    ...(values.rounds !== undefined ? { rounds: positiveInt(values.rounds, '--rounds', 2) } : {}),
    ...(values.budget !== undefined ? { budgetSeconds: positiveInt(values.budget, '--budget', 60) } : {}),
    intraOpThreads: nonNegativeInt(values.threads, '--threads', 0),
    // open dims: the shapes the reference runs on, probed once, for both models and every batch size
    inputs: data ? syntheticOptions(values) : (await probeInputShapes(reference, models[0]!, syntheticOptions(values))).synthetic,
    ...(data ? { data } : {}),
    onProgress: (m: string) => {
      if (!values.quiet) process.stderr.write(`${m}\n`);
    },
  };
  const results: Record<string, unknown> = { environment: environment() };
  const lines: string[] = [];
  // one plan, from the first model's run time, for every measurement of this command
  const plan = await resolveTimingPlan(reference, models[0]!, opts);
  for (const [i, bytes] of models.entries()) {
    const r = await benchmarkModel(bytes, { ...opts, plan });
    results[i === 0 ? 'a' : 'b'] = { path: paths[i], ...r };
    lines.push(formatBenchmark(paths[i]!, r));
  }
  if (models.length === 2) {
    const c = await compareModels(models[0]!, models[1]!, { ...opts, plan });
    results.comparison = c;
    lines.push(formatComparison(paths[0]!, paths[1]!, c));
  }
  if (values.profile) {
    const depth = positiveInt(values.depth, '--depth', 2);
    const batch = positiveInt(values['profile-batch'], '--profile-batch', 1);
    const profiles: Record<string, unknown> = {};
    for (const [i, { model }] of files.entries()) {
      const report = await profileModel(model, inputsForBatch(model, batch, opts), {
        depth,
        warmup: plan.warmup,
        runs: plan.runs,
        intraOpThreads: opts.intraOpThreads,
      });
      profiles[i === 0 ? 'a' : 'b'] = report;
      lines.push(`${paths[i]} — ${formatProfile(report)}`);
    }
    results.profile = profiles;
  }
  if (values.out) writeFile(values.out as string, `${toJson(results)}\n`);
  process.stdout.write(values.json ? `${toJson(results)}\n` : `${lines.join('\n\n')}\n`);
}

const fmtMetric = (x: number) => (Number.isFinite(x) ? x.toFixed(4) : String(x));

async function cmdEval(argv: string[]): Promise<void> {
  const { values, positionals } = parse(argv, {
    data: { type: 'string' },
    labels: { type: 'string' },
    batch: { type: 'string' },
    'max-samples': { type: 'string' },
    metrics: { type: 'string' },
    'label-output': { type: 'string' },
    'ctc-blank': { type: 'string' },
    json: { type: 'boolean' },
    quiet: { type: 'boolean', short: 'q' },
  });
  if (positionals.length !== 2) throw new UsageError('eval takes a reference and a candidate model');
  if (!values.data) throw new UsageError('eval needs --data <inputs>');
  const ref = await loadModelFile(positionals[0]!);
  const cand = await loadModelFile(positionals[1]!);
  const reference = ref.model;
  assertModelFitsBudget(reference);
  assertModelFitsBudget(cand.model);
  const dataset = openDataset(values.data as string, reference);
  const batchSize = positiveInt(values.batch, '--batch', 64);
  const maxSamples = values['max-samples'] === undefined ? undefined : positiveInt(values['max-samples'], '--max-samples', 1);
  const batches = dataset.batches({ batchSize, ...(maxSamples ? { maxSamples } : {}) });
  const labels = values.labels ? readLabelsFile(values.labels as string) : undefined;
  const metrics = values.metrics ? (String(values.metrics).split(',').map((m) => m.trim()) as MetricName[]) : undefined;
  const result = await evaluateModels(ref.source, cand.source, batches, {
    total: Math.min(dataset.samples, maxSamples ?? Infinity),
    ...(labels ? { labels } : {}),
    ...(metrics ? { metrics } : {}),
    ...(values['label-output'] ? { labelOutput: values['label-output'] as string } : {}),
    ctcBlank: nonNegativeInt(values['ctc-blank'], '--ctc-blank', 0),
    onProgress: (done, total) => {
      if (!values.quiet) process.stderr.write(`evaluated ${done}/${total}\n`);
    },
  });
  if (values.json) {
    process.stdout.write(`${toJson(result)}\n`);
    return;
  }
  const lines = [`${result.samples} samples`];
  for (const [name, f] of Object.entries(result.fidelity)) {
    lines.push(
      `  ${name}: SQNR ${fmtMetric(f.sqnrDb)} dB, cosine ${f.cosine.toFixed(6)}, max |err| ${f.maxAbsError.toExponential(2)}, mean |err| ${f.meanAbsError.toExponential(2)}` +
        (f.top1Agreement !== undefined ? `, top-1 agreement ${(f.top1Agreement * 100).toFixed(2)}%` : '') +
        (f.sequenceAgreement !== undefined ? `, sequence agreement ${(f.sequenceAgreement * 100).toFixed(2)}%` : ''),
    );
  }
  if (result.task) {
    lines.push(`  task (${result.task.output}): ${Object.keys(result.task.candidate).map((k) => `${k} ${fmtMetric(result.task!.reference[k]!)} → ${fmtMetric(result.task!.candidate[k]!)}`).join(', ')}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

async function cmdSubmit(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {
    recipe: { type: 'string' },
    server: { type: 'string' },
    key: { type: 'string' },
    calibration: { type: 'string' },
    data: { type: 'string' },
    labels: { type: 'string' },
    'timeout-ms': { type: 'string' },
    job: { type: 'string' },
    wait: { type: 'boolean' },
    out: { type: 'string' },
    report: { type: 'string' },
    'report-html': { type: 'string' },
    poll: { type: 'string' },
    delete: { type: 'boolean' },
    quiet: { type: 'boolean', short: 'q' },
  });
  const server = (values.server as string | undefined) ?? process.env.MODELPRESS_SERVER;
  const key = (values.key as string | undefined) ?? process.env.MODELPRESS_API_KEY;
  if (!server) throw new UsageError('submit needs --server URL (or MODELPRESS_SERVER), e.g. --server http://localhost:8080');
  if (!key) throw new UsageError('submit needs an API key: --key K or MODELPRESS_API_KEY (create one with `modelpress keys create <name>` on the server)');
  if (!/^https?:\/\//.test(server)) throw new UsageError(`--server must be an http(s) URL, got '${server}'`);
  const job = values.job as string | undefined;
  if (job ? positionals.length > 0 : positionals.length !== 1) throw new UsageError(job ? '--job follows an existing job: give no model' : 'submit takes one model (or --job <id>)');
  if (!job && !values.recipe) throw new UsageError('submit needs --recipe <recipe.json>');
  if (values.delete && !job) throw new UsageError('--delete needs --job <id>: the job to delete');
  if (values.delete && (values.wait || values.out || values.report || values['report-html'])) throw new UsageError('--delete deletes the job: it cannot also wait for it or download from it');
  const wait = values.wait === true || values.out !== undefined || values.report !== undefined || values['report-html'] !== undefined;
  return (await import('./submit.js')).submit({
    ...(job ? { job } : { model: positionals[0]!, recipe: Buffer.from(readBytes(values.recipe as string, 'recipe')).toString('utf8') }),
    server,
    key,
    ...(values.calibration ? { calibration: values.calibration as string } : {}),
    ...(values.data ? { data: values.data as string } : {}),
    ...(values.labels ? { labels: values.labels as string } : {}),
    ...(values['timeout-ms'] ? { timeoutMs: positiveInt(values['timeout-ms'], '--timeout-ms', 1) } : {}),
    wait,
    ...(values.out ? { out: values.out as string } : {}),
    ...(values.report ? { report: values.report as string } : {}),
    ...(values['report-html'] ? { reportHtml: values['report-html'] as string } : {}),
    quiet: values.quiet === true,
    pollSeconds: values.poll === undefined ? 1 : Math.max(0.05, Number(values.poll)),
    ...(values.delete ? { delete: true } : {}),
  });
}

function cmdPasses(argv: string[]): void {
  if (argv.length > 1) throw new UsageError('passes takes at most one pass name');
  if (argv.length === 1) {
    const def = PASSES[argv[0]!];
    if (!def) {
      const near = nearestName(argv[0]!, Object.keys(PASSES));
      throw new InvalidInputError(`unknown pass '${argv[0]}'${near ? ` (did you mean '${near}'?)` : ''}; available: ${Object.keys(PASSES).join(', ')}`);
    }
    process.stdout.write(formatPassHelp(def));
    return;
  }
  for (const def of Object.values(PASSES)) process.stdout.write(`${def.name.padEnd(20)} ${def.summary}\n`);
  process.stdout.write('\nmodelpress passes <name> prints a pass\'s options, their defaults and allowed values\n');
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command !== undefined && COMMAND_USAGE[command] && asksForHelp(rest)) {
    process.stdout.write(commandUsage(command));
    return 0;
  }
  try {
    switch (command) {
      case 'inspect':
        await cmdInspect(rest);
        return 0;
      case 'compress':
        await cmdCompress(rest);
        return 0;
      case 'bench':
        await cmdBench(rest);
        return 0;
      case 'eval':
        await cmdEval(rest);
        return 0;
      case 'submit':
        return await cmdSubmit(rest);
      case 'passes':
        cmdPasses(rest);
        return 0;
      case 'serve':
        await (await import('../service/commands.js')).cmdServe();
        return 0;
      case 'worker':
        await (await import('../service/commands.js')).cmdWorker();
        return 0;
      case 'migrate':
        await (await import('../service/commands.js')).cmdMigrate();
        return 0;
      case 'keys':
        await (await import('../service/commands.js')).cmdKeys(rest);
        return 0;
      case undefined:
      case '-h':
      case '--help':
      case 'help':
        process.stdout.write(USAGE);
        return command === undefined ? 2 : 0;
      default:
        throw new UsageError(`unknown command '${command}'`);
    }
  } catch (err) {
    const e = toModelpressError(err);
    process.stderr.write(`modelpress: error [${e.code}]: ${e.message}\n`);
    if (err instanceof UsageError) process.stderr.write(`\n${command !== undefined && COMMAND_USAGE[command] ? commandUsage(command) : USAGE}`);
    if (e.code === 'internal' && process.env.MODELPRESS_DEBUG) process.stderr.write(`${(err as Error).stack}\n`);
    return e.exitCode;
  }
}

function isEntryPoint(): boolean {
  try {
    return !!process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
  } catch {
    return false;
  }
}

if (isEntryPoint()) {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`modelpress: internal error: ${String(err)}\n`);
      process.exitCode = 1;
    },
  );
}

