// A goal job inside the job process: the search, reporting to the worker as it goes — progress,
// every finished trial, each new best so far (written as a file the worker stores at once, so the
// best is downloadable at every moment) and, at the end, the frontier models.
import { join } from 'node:path';
import type { Recipe } from '../../pipeline/recipe.js';
import { runtimeSource, type Feeds, type ModelSource } from '../../runtime/ort.js';
import { runSearch } from '../../search/engine.js';
import type { SearchResult } from '../../search/finalize.js';
import type { SearchProgress } from '../../search/state.js';
import type { PipelineProgress } from '../../pipeline/pipeline.js';
import { writeJobModel } from './job-files.js';
import type { ChildMessage, RunMessage } from './protocol.js';

export interface GoalJobOptions {
  msg: RunMessage;
  recipe: Recipe;
  samples?: Feeds[];
  calibration?: Feeds[];
  labels?: ArrayLike<number | bigint>;
  signal: AbortSignal;
  /** Throttled: only the latest update is sure to reach the worker. */
  progress: (p: PipelineProgress, search: SearchProgress) => void;
  /** Sent in order, never dropped. */
  send: (m: ChildMessage) => Promise<void>;
}

/** Plain JSON as IPC carries it (Infinity → null), so what the worker stores is what was sent. */
const plain = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;

export function runGoalJob(source: ModelSource, o: GoalJobOptions): Promise<SearchResult> {
  const { msg, recipe } = o;
  const externalData = recipe.output?.externalData === true;
  return runSearch(source, {
    recipe,
    samples: o.samples ?? [],
    ...(o.labels ? { labels: o.labels } : {}),
    ...(o.calibration ? { calibration: o.calibration } : {}),
    signal: o.signal,
    ...(msg.inputName ? { inputName: msg.inputName } : {}),
    // the step cache spills to the attempt's own folder (removed with it)
    cacheDir: join(msg.workDir, 'search-cache'),
    onProgress: (p) =>
      o.progress({ step: p.trial, steps: p.maxTrials, stepName: `search: ${p.phase}`, fraction: 0, percent: p.percent, ...(p.message ? { message: p.message } : {}) }, p),
    onTrial: (trial) => o.send({ type: 'trial', trial: plain(trial) }),
    onBest: async ({ model, trial, search }) => {
      const written = await writeJobModel(model, runtimeSource(model), join(msg.modelsDir, `best-${trial.n}`), msg, externalData);
      await o.send({ type: 'best', trial: trial.n, model: written, report: plain({ kind: 'search-in-progress', search }) });
    },
    onFrontierModel: async (trial, model) => {
      const written = await writeJobModel(model, runtimeSource(model), join(msg.modelsDir, `frontier-${trial.n}`), msg, externalData);
      await o.send({ type: 'frontier', trial: trial.n, model: written });
    },
  });
}
