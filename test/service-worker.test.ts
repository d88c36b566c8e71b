// Workers as real processes against real Postgres, Redis and onnxruntime: end to end, progress,
// garbage models, cancel while running, time limit, and a worker SIGKILLed mid-job.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/service/app.js';
import { createSession, syntheticInputs } from '../src/runtime/ort.js';
import { decodeModel } from '../src/onnx/model-io.js';
import { FMNIST, MODELS } from './helpers.js';
import { client, FAST_RECIPE, finished, jobApi, jobForm, type JobBody, runnerPids, SLOW_RECIPE, startWorkerProcess, testService, waitFor, type TestService, type WorkerProcess } from './service-helpers.js';

let svc: TestService;
let app: FastifyInstance;
let worker: WorkerProcess;
let api: ReturnType<typeof client>;
const model = readFileSync(MODELS.fmnist);

before(async () => {
  svc = await testService();
  app = await buildApp({ config: svc.config, forceCloseConnections: true });
  await app.listen({ port: 0, host: '127.0.0.1' });
  api = client(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, await svc.newKey('worker-tests'));
  ({ create, job, until } = jobApi(api));
  worker = await startWorkerProcess(svc.env);
});

after(async () => {
  await worker?.stop();
  await app.queue.obliterate({ force: true }).catch(() => {});
  await app.close();
  await svc.close();
});

let create: ReturnType<typeof jobApi>['create'];
let job: ReturnType<typeof jobApi>['job'];
let until: ReturnType<typeof jobApi>['until'];

/** A job form for the fmnist model with its calibration, evaluation and label files. */
function withFmnistData(recipe: object): FormData {
  return jobForm(model, recipe, {
    calibration: { bytes: readFileSync(FMNIST.calibration), name: 'calib-512.npz' },
    evaluation: { bytes: readFileSync(FMNIST.inputs), name: 'test-2000.npz' },
    labels: { bytes: readFileSync(FMNIST.labels), name: 'labels.npy' },
  });
}

test('end to end: model + fp16 recipe + data → succeeded; the artifact runs in onnxruntime and matches its ETag', async () => {
  const id = await create(
    jobForm(model, FAST_RECIPE, {
      evaluation: { bytes: readFileSync(FMNIST.inputs), name: 'test-2000.npz' },
      labels: { bytes: readFileSync(FMNIST.labels), name: 'labels.npy' },
    }),
  );
  const done = await until(id, finished, 'the job to finish');
  assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
  assert.equal(done.progress.percent, 100);
  assert.equal(done.progress.steps, 1);
  assert.ok(done.metrics && (done.metrics.sizeRatio as number) < 0.6, JSON.stringify(done.metrics));

  const res = await api.get(`/v1/jobs/${id}/artifact`);
  assert.equal(res.status, 200);
  const bytes = new Uint8Array(await res.arrayBuffer());
  const sha = createHash('sha256').update(bytes).digest('hex');
  assert.equal(res.headers.get('etag'), `"${sha}"`);
  assert.equal(Number(res.headers.get('content-length')), bytes.length);
  assert.match(res.headers.get('content-disposition') ?? '', /attachment; filename=".*\.onnx"/);
  const session = await createSession(bytes);
  const out = await session.run(syntheticInputs(decodeModel(bytes), { seed: 1 }));
  const first = Object.values(out)[0]!;
  assert.ok((first.data as Float32Array).every(Number.isFinite));

  const part = await api.get(`/v1/jobs/${id}/artifact`, { range: 'bytes=10-109' });
  assert.equal(part.status, 206);
  assert.equal(part.headers.get('content-range'), `bytes 10-109/${bytes.length}`);
  assert.deepEqual(new Uint8Array(await part.arrayBuffer()), bytes.slice(10, 110));
  assert.equal((await api.get(`/v1/jobs/${id}/artifact`, { range: `bytes=${bytes.length + 5}-` })).status, 416);

  const report = (await (await api.get(`/v1/jobs/${id}/report`)).json()) as { final: { sha256: string }; samples: { source: string; labels: boolean } };
  assert.equal(report.final.sha256, sha);
  assert.deepEqual([report.samples.source, report.samples.labels], ['data', true]);
  const html = await api.get(`/v1/jobs/${id}/report.html`);
  assert.match(html.headers.get('content-type') ?? '', /text\/html/);
  assert.match(await html.text(), /<html/i);
});

test('the case-study chain through the service: Tucker (VBMF + refit) then static int8, calibrated on an uploaded calibration file', async () => {
  const recipe = {
    steps: [
      { pass: 'factorize.tucker', rank: 'vbmf', requireSpeedup: false, refine: true, refineSamples: 128 },
      { pass: 'quantize.static' },
    ],
    benchmark: { enabled: false },
    evaluate: { maxSamples: 256, batchSize: 64 },
  };
  const id = await create(withFmnistData(recipe));
  const done = await until(id, finished, 'the two-step job to finish', 120_000);
  assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
  assert.equal(done.progress.steps, 2);
  const report = (await (await api.get(`/v1/jobs/${id}/report`)).json()) as {
    steps: { pass: string; changes: { rewritten: number } }[];
    samples: { calibration?: { items: number } };
    baseline: { task?: { top1?: number } };
    final: { task?: { top1?: number }; sizeRatio: number };
  };
  assert.deepEqual(report.steps.map((s) => s.pass), ['factorize.tucker', 'quantize.static']);
  assert.ok(report.steps.every((s) => s.changes.rewritten > 0), JSON.stringify(report.steps.map((s) => s.changes)));
  assert.equal(report.samples.calibration?.items, 256, 'the uploaded calibration file (evaluate.maxSamples caps it) is what the passes calibrated on');
  assert.ok(report.final.sizeRatio < 0.15, `size ratio ${report.final.sizeRatio}`);
  const drop = report.baseline.task!.top1! - report.final.task!.top1!;
  assert.ok(drop < 0.05, `top-1 ${report.baseline.task!.top1} → ${report.final.task!.top1}`);
  const bytes = new Uint8Array(await (await api.get(`/v1/jobs/${id}/artifact`)).arrayBuffer());
  const ops = new Set(decodeModel(bytes).graph.nodes.map((n) => n.opType));
  assert.ok(ops.has('QuantizeLinear') && ops.has('DequantizeLinear'), [...ops].join(','));
  const session = await createSession(bytes);
  const out = await session.run(syntheticInputs(decodeModel(bytes), { seed: 2 }));
  assert.ok((Object.values(out)[0]!.data as Float32Array).every(Number.isFinite));
  await session.release();
});

test('the pruning family through the service: structured (with recovery on the uploaded calibration file), magnitude, then 2:4', async () => {
  const recipe = {
    steps: [
      { pass: 'prune.structured', ratio: 0.3, maxCalibrationBatches: 4, recovery: { maxRows: 1024 } },
      { pass: 'prune.magnitude', sparsity: 0.3, scope: 'global' },
      { pass: 'prune.nm', n: 2, m: 4 },
    ],
    benchmark: { enabled: false },
    evaluate: { maxSamples: 256, batchSize: 64 },
  };
  const id = await create(withFmnistData(recipe));
  const done = await until(id, finished, 'the pruning job to finish', 120_000);
  assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
  const report = (await (await api.get(`/v1/jobs/${id}/report`)).json()) as {
    steps: { pass: string; params: number; changes: { stats: Record<string, string | number>; rewritten: number } }[];
    baseline: { params: number };
  };
  assert.deepEqual(report.steps.map((s) => s.pass), ['prune.structured', 'prune.magnitude', 'prune.nm']);
  const structured = report.steps[0]!;
  assert.ok(structured.params / report.baseline.params <= 0.55, `params ${structured.params} / ${report.baseline.params}`);
  assert.match(String(structured.changes.stats.beforeRecovery), /top-1/);
  assert.match(String(structured.changes.stats.afterRecovery), /top-1/);
  assert.ok(Math.abs(Number(report.steps[1]!.changes.stats.sparsity) - 0.3) < 0.01, String(report.steps[1]!.changes.stats.sparsity));
  assert.ok(report.steps[2]!.changes.rewritten > 5);
  const bytes = new Uint8Array(await (await api.get(`/v1/jobs/${id}/artifact`)).arrayBuffer());
  const session = await createSession(bytes);
  const out = await session.run(syntheticInputs(decodeModel(bytes), { seed: 2 }));
  assert.ok((Object.values(out)[0]!.data as Float32Array).every(Number.isFinite));
  await session.release();
});

test('a model framed like ONNX but with a garbage graph → failed invalid_model, and the worker keeps serving', async () => {
  // garbage and truncated files are refused at the door (service-api.test.ts); this one gets past it
  const graph = randomBytes(4096);
  const framed = Buffer.concat([Buffer.from([0x08, 0x08, 0x3a, (graph.length & 0x7f) | 0x80, graph.length >> 7]), graph]);
  const id = await create(jobForm(framed, FAST_RECIPE));
  const j = await until(id, finished, 'the bad job to fail');
  assert.equal(j.status, 'failed');
  assert.equal(j.error?.code, 'invalid_model', JSON.stringify(j.error));
  const ok = await until(await create(jobForm(model, FAST_RECIPE)), finished, 'a good job after the bad one');
  assert.equal(ok.status, 'succeeded');
  assert.equal(worker.child.exitCode, null, 'the worker is still running');
});

test('cancel a running job: it stops within seconds, its process is gone, and cancel is idempotent', async () => {
  const id = await create(jobForm(model, SLOW_RECIPE));
  const running = await until(id, (j) => j.status === 'running' && j.progress.percent > 0, 'progress from the running job', 30_000);
  // SLOW_RECIPE's long part is the step's benchmark; the job may still be in the baseline
  assert.ok(['baseline', 'convert.fp16'].includes(running.progress.stepName ?? ''), `step ${running.progress.stepName}`);
  assert.ok(runnerPids(id).length === 1, 'one runner process');
  const t0 = Date.now();
  const res = await api.post(`/v1/jobs/${id}/cancel`);
  assert.ok(res.status === 202 || res.status === 200);
  const j = await until(id, finished, 'the cancel to land', 15_000);
  assert.equal(j.status, 'canceled');
  assert.ok(Date.now() - t0 < 10_000, `cancel took ${Date.now() - t0} ms`);
  await waitFor('the runner process to exit', async () => runnerPids(id).length === 0, 10_000);
  assert.equal(((await (await api.post(`/v1/jobs/${id}/cancel`)).json()) as JobBody).status, 'canceled');
  assert.equal((await api.get(`/v1/jobs/${id}/artifact`)).status, 409);
});

test('a job process SIGKILLed from outside (as the OOM killer does) is retried; killed on every start → failed memory_limit naming the limit', async () => {
  const id = await create(jobForm(model, SLOW_RECIPE));
  const max = svc.config.maxJobStarts;
  for (let attempt = 1; attempt <= max; attempt++) {
    // each start runs in a fresh process: wait for this attempt's runner and kill it
    const [pid] = await waitFor(`attempt ${attempt}'s runner`, async () => {
      const j = await job(id);
      const pids = runnerPids(id);
      return j.status === 'running' && j.attempt === attempt && pids.length === 1 ? pids : null;
    }, 30_000);
    process.kill(pid!, 'SIGKILL');
  }
  const j = await until(id, finished, 'the last crash to be recorded', 15_000);
  assert.equal(j.status, 'failed');
  assert.equal(j.attempt, max);
  assert.equal(j.error?.code, 'memory_limit');
  assert.match(j.error?.message ?? '', /out of memory/);
  assert.match(j.error?.message ?? '', new RegExp(`${svc.config.jobMemoryMb} MB \\(JOB_MEMORY_MB\\)`));
  assert.match(j.error?.message ?? '', new RegExp(`on ${max} starts`));
  assert.equal(worker.child.exitCode, null);
  assert.equal((await until(await create(jobForm(model, FAST_RECIPE)), finished, 'the next job')).status, 'succeeded');
});

test('a job over its time limit is killed and failed with code timeout', async () => {
  const form = jobForm(model, SLOW_RECIPE, { timeoutMs: '2500' });
  const id = await create(form);
  const j = await until(id, finished, 'the timeout', 30_000);
  assert.equal(j.status, 'failed');
  assert.equal(j.error?.code, 'timeout');
  await waitFor('the runner process to exit', async () => runnerPids(id).length === 0, 10_000);
});

test('a worker SIGKILLed mid-job: the job is recovered by another worker, never stuck; no orphan process', async () => {
  const id = await create(jobForm(model, SLOW_RECIPE));
  // the shared worker takes it; kill exactly that worker
  await until(id, (j) => j.status === 'running', 'the job to start', 30_000);
  const orphans = await waitFor('the runner process', async () => (runnerPids(id).length === 1 ? runnerPids(id) : null), 10_000);
  worker.child.kill('SIGKILL');
  await new Promise((r) => worker.child.once('exit', r));
  await waitFor('the killed worker\'s runner to exit with it', async () => orphans.every((p) => !runnerPids(id).includes(p)), 10_000);
  worker = await startWorkerProcess(svc.env);
  const again = await until(id, (j) => j.status === 'running' && j.attempt === 2, 'the job to be re-run (attempt 2)', 40_000);
  assert.equal(again.status, 'running');
  assert.equal((await api.post(`/v1/jobs/${id}/cancel`)).ok, true);
  assert.equal((await until(id, finished, 'cancel')).status, 'canceled');
});

test('a job whose every run dies is failed after MAX_JOB_STARTS starts', async () => {
  // a job that crashed its workers MAX_JOB_STARTS times already (what the SIGKILL test does once)
  const m = await svc.dbh.db.job.findFirstOrThrow({});
  const exhausted = await svc.dbh.db.job.create({ data: { ownerId: m.ownerId, modelId: m.modelId, recipe: FAST_RECIPE, attempt: svc.config.maxJobStarts } });
  await app.queue.add('compress', { jobId: exhausted.id }, { jobId: exhausted.id });
  const j = await until(exhausted.id, finished, 'the exhausted job to be failed');
  assert.equal(j.status, 'failed');
  assert.match(j.error?.message ?? '', /started \d+ times/);
});

test('SIGTERM drains a worker with a bounded wait: the running job goes back to the queue and another worker runs it', async () => {
  const id = await create(jobForm(model, SLOW_RECIPE));
  await until(id, (j) => j.status === 'running', 'the job to start', 30_000);
  const t0 = Date.now();
  const exit = new Promise<number | null>((r) => worker.child.once('exit', (code) => r(code)));
  worker.child.kill('SIGTERM');
  const code = await exit;
  const tookMs = Date.now() - t0;
  assert.equal(code, 0, worker.output());
  assert.ok(tookMs < Number(svc.env.SHUTDOWN_TIMEOUT_MS) + 8000, `shutdown took ${tookMs} ms`);
  assert.equal((await job(id)).status, 'queued', 'handed back, not stuck in running');
  await waitFor('no runner process left', async () => runnerPids(id).length === 0, 5000);
  worker = await startWorkerProcess(svc.env);
  await until(id, (j) => j.status === 'running' && j.attempt === 2, 'the next worker to take it', 30_000);
  await api.post(`/v1/jobs/${id}/cancel`);
  assert.equal((await until(id, finished, 'cancel')).status, 'canceled');
});
