// The child process that runs one job's pipeline. A crash or OOM here takes down this process
// only; the worker sees the exit and fails the job. Exits as soon as its worker goes away.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { batchesFromArrays, readArraysFile, readLabelsFile } from '../../data/samples.js';
import { toModelpressError } from '../../errors.js';
import { decodeModel } from '../../onnx/model-io.js';
import { runPipeline, type PipelineProgress } from '../../pipeline/pipeline.js';
import { parseRecipe } from '../../pipeline/recipe.js';
import type { ChildMessage, RunMessage } from './protocol.js';

const controller = new AbortController();

function send(msg: ChildMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send || !process.connected) return resolve();
    process.send(msg, undefined, {}, () => resolve());
  });
}

async function run(msg: RunMessage): Promise<void> {
  const recipe = parseRecipe(msg.recipe);
  const bytes = readFileSync(msg.modelPath);
  const feedsOf = (path: string) => {
    const model = decodeModel(bytes);
    const arrays = readArraysFile(path, model);
    return [...batchesFromArrays(model, arrays, { batchSize: recipe.evaluate.batchSize, maxSamples: recipe.evaluate.maxSamples }, path)];
  };
  const samples = msg.evaluationPath ? feedsOf(msg.evaluationPath) : undefined;
  const calibration = msg.calibrationPath ? feedsOf(msg.calibrationPath) : undefined;
  const labels = msg.labelsPath ? readLabelsFile(msg.labelsPath) : undefined;
  let last = 0;
  let latest: PipelineProgress | null = null;
  let trailing: NodeJS.Timeout | null = null;
  const flush = () => {
    if (trailing) clearTimeout(trailing);
    trailing = null;
    last = Date.now();
    if (latest) void send({ type: 'progress', progress: latest });
    latest = null;
  };
  const result = await runPipeline(bytes, {
    recipe,
    signal: controller.signal,
    ...(msg.inputName ? { inputName: msg.inputName } : {}),
    ...(samples ? { samples } : {}),
    ...(calibration ? { calibration } : {}),
    ...(labels ? { labels } : {}),
    onProgress: (progress) => {
      // the worker throttles database writes; this only avoids flooding the IPC channel, and
      // never drops the latest update (it may be the last one for a long while)
      latest = progress;
      const now = Date.now();
      if (now - last >= 200) flush();
      else trailing ??= setTimeout(flush, 200 - (now - last));
    },
  });
  flush();
  writeFileSync(msg.outPath, result.bytes);
  await send({
    type: 'done',
    sha256: createHash('sha256').update(result.bytes).digest('hex'),
    sizeBytes: result.bytes.length,
    report: JSON.parse(JSON.stringify(result.report)),
  });
}

process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => {
  controller.abort();
  setTimeout(() => process.exit(143), 1000).unref();
});
process.once('message', (msg: RunMessage) => {
  run(msg)
    .catch(async (err) => {
      const e = toModelpressError(err);
      await send({ type: 'error', code: e.code, message: e.message });
    })
    .finally(() => process.exit(0));
});
