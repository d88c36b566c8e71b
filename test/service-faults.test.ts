// The service broken on purpose, with real Postgres, Redis, onnxruntime and worker processes:
// duplicate deliveries, a worker killed while its child is in synchronous code, cancel with no live
// worker, memory bombs under a real memory limit, models that point at host files, and an API
// stopped in the middle of an upload.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/service/app.js';
import { encodeModel } from '../src/onnx/model-io.js';
import { MODELS, testGraph } from './helpers.js';
import { bigInputModel, computedShapeBomb, makeCanary, sparseConstantModel } from './crafted-models.js';
import { CLI, client, FAST_RECIPE, finished, jobApi, jobForm, runnerPids, startWorkerProcess, testService, waitFor, type TestService, type WorkerProcess } from './service-helpers.js';

const JOB_MEMORY_MB = 512;
let svc: TestService;
let app: FastifyInstance;
let worker: WorkerProcess;
let api: ReturnType<typeof client>;
const model = readFileSync(MODELS.fmnist);

before(async () => {
  svc = await testService({ WORKER_CONCURRENCY: '2', JOB_MEMORY_MB: String(JOB_MEMORY_MB), MAX_ACTIVE_JOBS_PER_OWNER: '100', RATE_LIMIT_JOBS_PER_MINUTE: '1000' });
  app = await buildApp({ config: svc.config, forceCloseConnections: true });
  await app.listen({ port: 0, host: '127.0.0.1' });
  api = client(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, await svc.newKey('faults'));
  ({ create, job, until } = jobApi(api));
  worker = await startWorkerProcess(svc.env);
});

after(async () => {
  await worker?.stop('SIGKILL');
  await app.queue.obliterate({ force: true }).catch(() => {});
  await app.close();
  await svc.close();
});

let create: ReturnType<typeof jobApi>['create'];
let job: ReturnType<typeof jobApi>['job'];
let until: ReturnType<typeof jobApi>['until'];
/** The worker's per-attempt temp folders (the job process's directory and its result) of these jobs. */
const attemptDirs = (...ids: string[]) => readdirSync(tmpdir()).filter((n) => ids.some((id) => n.startsWith(`modelpress-attempt-${id}-`)));

/** Downloads the artifact and checks it is whole: its ETag is the sha256 of the bytes served. */
async function artifactSha(id: string): Promise<string> {
  const res = await api.get(`/v1/jobs/${id}/artifact`);
  assert.equal(res.status, 200, await res.clone().text());
  const sha = createHash('sha256').update(new Uint8Array(await res.arrayBuffer())).digest('hex');
  assert.equal(res.headers.get('etag'), `"${sha}"`);
  return sha;
}

test('duplicate deliveries never start a second run nor touch a finished artifact (WORKER_CONCURRENCY=2)', async () => {
  // after the job finished
  const id = await create(jobForm(model, FAST_RECIPE));
  assert.equal((await until(id, finished, 'the job to finish')).status, 'succeeded');
  const sha = await artifactSha(id);
  for (const dup of [`${id}-dup1`, `${id}-dup2`]) await app.queue.add('compress', { jobId: id }, { jobId: dup });
  await waitFor('the duplicates to be processed', async () => {
    const states = await Promise.all([`${id}-dup1`, `${id}-dup2`].map(async (d) => (await app.queue.getJob(d))?.getState()));
    return states.every((s) => s === 'completed');
  });
  assert.equal(await artifactSha(id), sha, 'the artifact is still there, whole');
  assert.equal((await job(id)).attempt, 1);

  // while the job runs: two deliveries reach the two slots of one worker at once
  const busy = { ...FAST_RECIPE, benchmark: { enabled: true, batchSizes: [16], warmup: 0, runs: 200, rounds: 2 } };
  const id2 = await create(jobForm(model, busy));
  await app.queue.add('compress', { jobId: id2 }, { jobId: `${id2}-dup` });
  const done = await until(id2, finished, 'the busy job to finish', 120_000);
  assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
  assert.equal(done.attempt, 1, 'one run only');
  await artifactSha(id2);
  assert.equal(await svc.dbh.db.artifact.count({ where: { jobId: { in: [id, id2] } } }), 2);
  await waitFor('no attempt folder left behind', async () => attemptDirs(id, id2).length === 0, 5000);
});

test('a worker SIGKILLed while its child is in synchronous code leaves no orphan; a cancel sent while no worker lives completes when one returns', async () => {
  // a 2048×2048 SVD keeps the child's event loop blocked for about a minute
  const { model: big, g, weight, x, node } = testGraph('bigmm', 1, { name: 'x', dims: [1, 2048] });
  g.outputs = [node('MatMul', [x, weight('w', [2048, 2048])])[0]!];
  const recipe = { steps: [{ pass: 'factorize.svd', rank: 0.5 }], benchmark: { enabled: false }, evaluate: { maxSamples: 4 } };
  const id = await create(jobForm(encodeModel(big), recipe));
  const [pid] = await waitFor('the runner', async () => (runnerPids(id).length === 1 ? runnerPids(id) : null), 30_000);
  await until(id, (j) => j.status === 'running', 'the job to run');
  await new Promise((r) => setTimeout(r, 5000)); // past the baseline: inside the SVD
  worker.child.kill('SIGKILL');
  await new Promise((r) => worker.child.once('exit', r));
  const t0 = Date.now();
  await waitFor('the orphaned runner to exit', async () => !runnerPids(id).includes(pid!), 5000, 100);
  assert.ok(Date.now() - t0 < 5000);

  const res = await api.post(`/v1/jobs/${id}/cancel`);
  assert.equal(res.status, 202, 'accepted: the job is still marked running');
  assert.equal((await job(id)).cancelRequested, true);
  worker = await startWorkerProcess(svc.env);
  const j = await until(id, finished, 'the cancel to complete once a worker is back', 30_000);
  assert.equal(j.status, 'canceled');
  assert.equal(runnerPids(id).length, 0, 'the job was not run again');
});

test(`memory bombs fail with memory_limit and the worker lives on (JOB_MEMORY_MB=${JOB_MEMORY_MB})`, async () => {
  // declared: refused before anything is allocated
  const declared = await until(await create(jobForm(bigInputModel([1, 1, 60000, 60000]), FAST_RECIPE)), finished, 'the declared bomb to fail');
  assert.equal(declared.status, 'failed');
  assert.equal(declared.error?.code, 'memory_limit', JSON.stringify(declared.error));
  assert.match(declared.error!.message, /14\.4 GB/);
  // computed at run time: only the process's memory limit (RLIMIT_AS) stops onnxruntime
  const computed = await until(await create(jobForm(computedShapeBomb(), FAST_RECIPE)), finished, 'the computed bomb to fail', 60_000);
  assert.equal(computed.status, 'failed');
  assert.equal(computed.error?.code, 'memory_limit', JSON.stringify(computed.error));
  assert.match(computed.error!.message, new RegExp(`memory limit of ${JOB_MEMORY_MB} MB \\(JOB_MEMORY_MB\\)`));
  assert.equal(computed.attempt, 1, 'a deterministic allocation failure is not retried');
  assert.equal(worker.child.exitCode, null);
  assert.equal((await until(await create(jobForm(model, FAST_RECIPE)), finished, 'a good job after the bombs')).status, 'succeeded');
});

test('a model whose tensor points at a host file is refused and the file is never opened', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mp-canary-'));
  try {
    const canary = makeCanary(dir);
    const before = canary.atime();
    for (const location of [canary.path, '../../../../../../' + canary.path.slice(1), 'canary.bin']) {
      const j = await until(await create(jobForm(sparseConstantModel(location), FAST_RECIPE)), finished, `the job with location ${location} to fail`);
      assert.equal(j.status, 'failed');
      assert.equal(j.error?.code, 'unsupported_model', JSON.stringify(j.error));
      assert.match(j.error!.message, /external/);
    }
    assert.equal(canary.atime(), before, 'nobody read the canary');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('uploads: a stalled one is cut after IDLE_TIMEOUT_MS, SIGTERM mid-upload leaves no temp file, and a restart sweeps stale ones', async () => {
  const port = await new Promise<number>((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const p = (srv.address() as AddressInfo).port;
      srv.close(() => resolve(p));
    });
  });
  const env = { ...process.env, ...svc.env, PORT: String(port), SHUTDOWN_TIMEOUT_MS: '1500', IDLE_TIMEOUT_MS: '1500', REQUEST_TIMEOUT_MS: '60000', LOG_LEVEL: 'warn' };
  const startApi = async (): Promise<ChildProcess> => {
    const proc = spawn(process.execPath, [CLI, 'serve'], { env, stdio: 'ignore' });
    await waitFor('the API to be ready', async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200, 20_000);
    return proc;
  };
  const tmpDir = join(svc.dataDir, 'tmp');
  const tmpFiles = () => (existsSync(tmpDir) ? readdirSync(tmpDir) : []);
  const key = await svc.newKey('upload');
  /** A multipart upload that sends its first megabyte, then stalls; resolves when the server closes it. */
  const stalledUpload = () => {
    const boundary = 'mpboundary';
    const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/models', headers: { authorization: `Bearer ${key}`, 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(64 * 1024 * 1024) } });
    const closed = new Promise<void>((r) => req.once('close', () => r()));
    req.on('error', () => {});
    req.write(`--${boundary}\r\ncontent-disposition: form-data; name="model"; filename="m.onnx"\r\ncontent-type: application/octet-stream\r\n\r\n`);
    req.write(Buffer.alloc(1024 * 1024, 7));
    return { req, closed };
  };

  // a temp file from an API that died mid-upload long ago (older than REQUEST_TIMEOUT_MS + 1 min)
  mkdirSync(tmpDir, { recursive: true });
  const stale = join(tmpDir, 'left-by-a-dead-api');
  writeFileSync(stale, 'partial');
  utimesSync(stale, new Date(Date.now() - 3600_000), new Date(Date.now() - 3600_000));
  const before = tmpFiles().filter((f) => f !== 'left-by-a-dead-api');
  let proc = await startApi();
  assert.ok(!existsSync(stale), 'swept at start');

  const idle = stalledUpload();
  await waitFor('the upload to reach a temp file', async () => tmpFiles().length > before.length, 10_000);
  const t0 = Date.now();
  await idle.closed;
  assert.ok(Date.now() - t0 < 10_000, 'cut after about IDLE_TIMEOUT_MS, not held for minutes');
  await waitFor('the partial file of the cut upload to go', async () => tmpFiles().length === before.length, 5000);

  const cut = stalledUpload();
  await waitFor('the second upload to reach a temp file', async () => tmpFiles().length > before.length, 10_000);
  const exited = new Promise((r) => proc.once('exit', r));
  proc.kill('SIGTERM');
  await exited;
  cut.req.destroy();
  assert.deepEqual(tmpFiles(), before, 'the partial upload was deleted on shutdown');
  proc = await startApi();
  assert.deepEqual(tmpFiles(), before);
  proc.kill('SIGTERM');
  await new Promise((r) => proc.once('exit', r));
});
