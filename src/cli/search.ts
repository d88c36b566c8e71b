// `compress` with a goal: the search, its progress on stderr, the best so far kept at --out (and
// --report) from the first moment, and with --frontier every frontier model beside its recipe.
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { formatSeconds } from '../format.js';
import type { Recipe } from '../pipeline/recipe.js';
import { renderReportHtml } from '../report/html.js';
import { toJson } from '../report/environment.js';
import type { SearchReport } from '../report/search.js';
import { runtimeSource, type Feeds, type ModelSource } from '../runtime/ort.js';
import { runSearch } from '../search/engine.js';
import type { SearchProgress } from '../search/state.js';
import { writeModelOutput } from './model-files.js';

export interface GoalRunOptions {
  recipe: Recipe;
  modelPath: string;
  samples?: Feeds[];
  calibration?: Feeds[];
  labels?: ArrayLike<number | bigint>;
  labelOutput?: string;
  out: string;
  report?: string;
  reportHtml?: string;
  frontierDir?: string;
  externalData: boolean;
  quiet: boolean;
  signal: AbortSignal;
}

/** Writes a file whole or not at all: a reader never sees half a best-so-far model. */
function writeAtomically(path: string, data: Uint8Array | string): void {
  mkdirSync(dirname(resolve(path)), { recursive: true });
  writeFileSync(`${path}.partial`, data);
  renameSync(`${path}.partial`, path);
}

export function formatSearchProgress(p: SearchProgress): string {
  const best = p.best
    ? `; best so far: trial ${p.best.trial}${p.best.value !== undefined ? `, metric ${p.best.value.toFixed(4)}` : ''}${p.best.latencyRatio !== undefined ? `, latency ${p.best.latencyRatio.toFixed(2)}×` : ''}${p.best.sizeRatio !== undefined ? `, size ${p.best.sizeRatio.toFixed(3)}×` : ''}`
    : '';
  const trial = p.phase === 'searching' ? `trial ${p.trial} of at most ${p.maxTrials}` : p.phase;
  return `[search] ${trial}, ${formatSeconds(p.elapsedMs)} elapsed, ${formatSeconds(p.remainingMs)} left${best}${p.message ? ` — ${p.message}` : ''}`;
}

export function formatSearchResult(s: SearchReport): string {
  const t = s.trials.find((x) => x.n === s.best.trial);
  const lines = [
    `search: ${s.trials.length - 1} trials (${s.trials.filter((x) => x.status === 'stopped-early').length} stopped early on the probe), stopped by ${s.stoppedBy} after ${formatSeconds(s.elapsedMs)}; cache ${s.cache.hits} hits, ${s.cache.misses} builds`,
    `goal ${s.best.goalMet ? 'MET' : 'NOT MET'} on ${s.data.heldOutSamples} held-out samples${s.best.reason ? ` (${s.best.reason})` : ''}`,
    `best: trial ${s.best.trial}${t?.latency ? `, latency ${t.latency.ratio.toFixed(2)}×` : ''}${t?.sizeRatio !== undefined ? `, size ${t.sizeRatio.toFixed(3)}×` : ''}` +
      `${s.best.searchLoss !== undefined ? `, loss ${s.best.searchLoss.toFixed(4)} on the search part` : ''}${s.best.heldOutLoss !== undefined ? `, ${s.best.heldOutLoss.toFixed(4)} held out` : ''}`,
    `its recipe (re-run it without search with --recipe):`,
    JSON.stringify({ steps: s.best.steps }),
  ];
  if (s.overheadNote) lines.push(`note: ${s.overheadNote}`);
  if (s.data.calibration.flagged) lines.push(`warning: ${s.data.calibration.flagged}`);
  return lines.join('\n');
}

export async function runGoal(source: ModelSource, opts: GoalRunOptions): Promise<{ report: unknown; summary: string }> {
  let lastLine = '';
  const result = await runSearch(source, {
    recipe: opts.recipe,
    samples: opts.samples ?? [],
    ...(opts.labels ? { labels: opts.labels } : {}),
    ...(opts.labelOutput ? { labelOutput: opts.labelOutput } : {}),
    ...(opts.calibration ? { calibration: opts.calibration } : {}),
    signal: opts.signal,
    inputName: basename(opts.modelPath),
    onProgress: (p) => {
      if (opts.quiet) return;
      const line = formatSearchProgress(p);
      if (line !== lastLine) process.stderr.write(`${line}\n`);
      lastLine = line;
    },
    ...(opts.frontierDir
      ? {
          onFrontierModel: (trial, model) => {
            const name = `trial-${trial.n}`;
            const path = join(opts.frontierDir!, `${name}.onnx`);
            mkdirSync(opts.frontierDir!, { recursive: true });
            writeModelOutput(model, runtimeSource(model), path, opts.externalData);
            writeFileSync(join(opts.frontierDir!, `${name}.recipe.json`), `${JSON.stringify({ name: `frontier trial ${trial.n}`, steps: trial.steps }, null, 2)}\n`);
            if (!opts.quiet) process.stderr.write(`frontier: ${path} (loss ${trial.loss?.toFixed(4)}, latency ${trial.latency ? `${trial.latency.ratio.toFixed(2)}×` : '1×'}, size ${trial.sizeRatio?.toFixed(3)}×)\n`);
          },
        }
      : {}),
    onBest: ({ model, search }) => {
      // the best so far is at --out from the first moment; the final result replaces it
      const out = runtimeSource(model);
      if (out instanceof Uint8Array && !opts.externalData) writeAtomically(opts.out, out);
      else writeModelOutput(model, out, opts.out, opts.externalData);
      if (opts.report) writeAtomically(opts.report, `${toJson({ kind: 'search-in-progress', search })}\n`);
    },
  });
  mkdirSync(dirname(resolve(opts.out)), { recursive: true });
  const note = writeModelOutput(result.model, result.output, opts.out, opts.externalData);
  if (note && !opts.quiet) process.stderr.write(`${note}\n`);
  if (opts.report) writeAtomically(opts.report, `${toJson(result.report)}\n`);
  if (opts.reportHtml) writeAtomically(opts.reportHtml, renderReportHtml(result.report, { title: `modelpress: ${basename(opts.modelPath)}` }));
  return { report: result.report, summary: formatSearchResult(result.report.search) };
}
