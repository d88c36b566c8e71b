// The child process that runs one job's pipeline (or, for a goal, its search: search-run.ts). A
// crash or OOM here takes down this process only; the worker sees the exit and decides. Exits as soon as its worker goes away, even while
// its main thread is busy in synchronous code (a watchdog thread checks the parent).
import { Worker } from 'node:worker_threads';
import { openDataset, readLabelsFile } from '../../data/samples.js';
import { MemoryLimitError, toModelpressError, type ModelpressError } from '../../errors.js';
import { runPipeline, type PipelineProgress } from '../../pipeline/pipeline.js';
import { parseRecipe } from '../../pipeline/recipe.js';
import type { SearchProgress } from '../../search/state.js';
import { openJobModel, writeJobModel } from './job-files.js';
import { runGoalJob } from './search-run.js';
import type { ChildMessage, RunMessage } from './protocol.js';

const controller = new AbortController();

function send(msg: ChildMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send || !process.connected) return resolve();
    process.send(msg, undefined, {}, () => resolve());
  });
}

async function run(msg: RunMessage): Promise<void> {
  const recipe = parseRecipe(msg.recipe); // a cheap guard: a stored recipe is normalized already, so this changes nothing
  const { model, source } = await openJobModel(msg);
  const feedsOf = (path: string) => {
    return [...openDataset(path, model).batches({ batchSize: recipe.evaluate.batchSize, maxSamples: recipe.evaluate.maxSamples })];
  };
  const samples = msg.evaluationPath ? feedsOf(msg.evaluationPath) : undefined;
  const calibration = msg.calibrationPath ? feedsOf(msg.calibrationPath) : undefined;
  const labels = msg.labelsPath ? readLabelsFile(msg.labelsPath) : undefined;
  let last = 0;
  let latest: ChildMessage | null = null;
  let trailing: NodeJS.Timeout | null = null;
  const flush = () => {
    if (trailing) clearTimeout(trailing);
    trailing = null;
    last = Date.now();
    if (latest) void send(latest);
    latest = null;
  };
  const onProgress = (progress: PipelineProgress, search?: SearchProgress) => {
    // the worker throttles database writes; this only avoids flooding the IPC channel, and
    // never drops the latest update (it may be the last one for a long while)
    latest = { type: 'progress', progress, ...(search ? { search } : {}) };
    const now = Date.now();
    if (now - last >= 200) flush();
    else trailing ??= setTimeout(flush, 200 - (now - last));
  };
  const data = { ...(samples ? { samples } : {}), ...(calibration ? { calibration } : {}), ...(labels ? { labels } : {}) };
  const result = recipe.goal
    ? await runGoalJob(source, { msg, recipe, ...data, signal: controller.signal, progress: onProgress, send })
    : await runPipeline(source, {
        recipe,
        signal: controller.signal,
        ...(msg.inputName ? { inputName: msg.inputName } : {}),
        ...data,
        onProgress,
        onPassDone: (pass, durationMs) => void send({ type: 'pass', pass, durationMs }),
      });
  flush();
  const written = await writeJobModel(result.model, result.output, msg.outPath, msg, recipe.output?.externalData === true);
  await send({
    type: 'done',
    sha256: written.sha256,
    sizeBytes: written.sizeBytes,
    format: written.format,
    report: JSON.parse(JSON.stringify(result.report)),
  });
}

// The 'disconnect' event needs a free event loop; a pass in a long synchronous loop would outlive a
// SIGKILLed worker. This thread has its own loop: when the parent changes (we were re-parented to
// init or a subreaper), it kills the whole process.
const watchdog = new Worker(
  `const { workerData } = require('node:worker_threads');
   setInterval(() => { if (process.ppid !== workerData.ppid) process.kill(workerData.pid, 'SIGKILL'); }, 250);`,
  { eval: true, workerData: { ppid: process.ppid, pid: process.pid } },
);
watchdog.unref();

/** An allocation failure names the job's memory limit, the setting an operator would change. */
function jobError(err: unknown, memoryLimitMb: number): ModelpressError {
  const e = toModelpressError(err);
  if (e.code !== 'memory_limit' || !e.message.startsWith('ran out of memory')) return e; // the tensor budget's own message says what to change
  const limit = memoryLimitMb > 0 ? `its memory limit of ${memoryLimitMb} MB (JOB_MEMORY_MB)` : 'the memory available';
  return new MemoryLimitError(`the job needs more memory than ${limit}: ${e.message}`, { cause: err });
}

process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => {
  controller.abort();
  setTimeout(() => process.exit(143), 1000).unref();
});
process.once('message', (msg: RunMessage) => {
  run(msg)
    .catch(async (err) => {
      const e = jobError(err, msg.memoryLimitMb);
      await send({ type: 'error', code: e.code, message: e.message });
    })
    .finally(() => process.exit(0));
});
