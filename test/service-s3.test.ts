// The service with S3 storage (s3rver, a real S3-protocol server on a free port): the API in process over
// real Postgres and Redis, and a worker process whose data directory is empty and whose only link to the
// API's files is the bucket. Uploads, a job end to end, downloads (ETag = sha256, Range, If-None-Match,
// and a 302 to a presigned URL with MODELPRESS_PRESIGN=1), readiness, and the store going down.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/service/app.js';
import type { Infra } from '../src/service/plugins/infra.js';
import { createSession, syntheticInputs } from '../src/runtime/ort.js';
import { decodeModel } from '../src/onnx/model-io.js';
import { FMNIST, MODELS } from './helpers.js';
import { startS3, type TestS3 } from './s3-helpers.js';
import { BUSY_RECIPE, expectProblem, FAST_RECIPE, finished, injectClient, jobApi, jobForm, startWorkerProcess, testInfra, testService, waitFor, type TestService, type WorkerProcess } from './service-helpers.js';

const PREFIX = 'svc/run1';
let s3: TestS3;
let svc: TestService;
let infra: Infra;
let closeInfra: () => Promise<void>;
let app: FastifyInstance;
let key: string;
const model = readFileSync(MODELS.fmnist);
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const api = () => injectClient(app, key);

before(async () => {
  s3 = await startS3();
  // the config names the bucket (as a deployment's env would); the API's store is the same bucket
  svc = await testService({ ...s3.env(PREFIX), MAX_UPLOAD_BYTES: String(4 * 1024 * 1024) });
  const base = await testInfra(svc);
  infra = { ...base.infra, storage: s3.store(PREFIX) };
  closeInfra = base.close;
  app = await buildApp({ config: svc.config, infra });
  await app.ready();
  key = await svc.newKey('s3');
});

after(async () => {
  await app?.close();
  await closeInfra?.();
  await svc?.close();
  await s3?.close();
});

const keysUnder = async (prefix: string) => (await infra.storage.list(prefix)).map((o) => o.key).sort();

function modelForm(bytes: Uint8Array = model): FormData {
  const f = new FormData();
  f.append('model', new Blob([bytes]), 'fmnist.onnx');
  return f;
}

test('readiness checks the bucket and names the store; the config selected S3 from MODELPRESS_STORAGE_URL', async () => {
  assert.equal(svc.config.storage.kind, 's3');
  const res = await injectClient(app).get('/readyz');
  assert.equal(res.status, 200);
  const body = (await res.json()) as { checks: Record<string, string>; store: string };
  assert.deepEqual(body.checks, { postgres: 'ok', redis: 'ok', storage: 'ok' });
  assert.equal(body.store, `s3://${s3.bucket}/${PREFIX} @ ${s3.endpoint}`);
  assert.doesNotMatch(JSON.stringify(body), /S3RVER/, 'no credentials');
});

test('an upload streams into the bucket: stored once by content under the prefix, no temporary object left; the summary reads it back', async () => {
  const r1 = await api().post('/v1/models', modelForm());
  assert.equal(r1.status, 201, await r1.clone().text());
  const m = (await r1.json()) as { id: string; sha256: string; sizeBytes: number };
  assert.equal(m.sha256, sha256(model));
  const r2 = await api().post('/v1/models', modelForm());
  assert.equal(((await r2.json()) as { id: string }).id, m.id);
  assert.deepEqual(await keysUnder('models'), [`models/${m.sha256}.onnx`]);
  assert.deepEqual(await keysUnder('tmp'), []);
  // the bucket itself: everything sits under the prefix
  const whole = s3.store();
  assert.deepEqual((await whole.list('svc')).map((o) => o.key), [`${PREFIX}/models/${m.sha256}.onnx`]);
  const summary = await api().get(`/v1/models/${m.id}/summary`);
  assert.equal(summary.status, 200, await summary.clone().text());
  const facts = (await summary.json()) as { sizeBytes: number; nodes: number; inputs: { name: string }[] };
  assert.equal(facts.sizeBytes, model.length);
  assert.ok(facts.nodes > 0);
  assert.deepEqual(facts.inputs.map((i) => i.name), decodeModel(model).graph.inputs.map((v) => v.name));
});

test('S3 down: uploads get a 503 problem+json (no stack), readiness names the store and why; once it is back, nothing half-written', async () => {
  const models = await svc.dbh.db.storedModel.count();
  const before = { models: await keysUnder('models'), uploads: await keysUnder('uploads') };
  const other = new Uint8Array(model);
  other[other.length - 1] ^= 1; // other content: a new object would be written
  await s3.stop();
  try {
    const up = await expectProblem(await api().post('/v1/models', modelForm(other)), 503, 'unavailable');
    assert.match(up.detail, /object store/);
    assert.doesNotMatch(up.detail, /127\.0\.0\.1|S3RVER/);
    await expectProblem(await api().post('/v1/jobs', jobForm(other, FAST_RECIPE, { evaluation: { bytes: readFileSync(FMNIST.inputs), name: 'test-2000.npz' } })), 503, 'unavailable');
    const ready = await expectProblem(await injectClient(app).get('/readyz'), 503, 'unavailable');
    assert.match(ready.detail, new RegExp(`storage \\(s3://${s3.bucket}/${PREFIX} @ ${s3.endpoint.replace(/\./g, '\\.')}\\) bucket '${s3.bucket}'`));
    assert.deepEqual(Object.keys(ready.errors as object).sort(), ['postgres', 'redis', 'storage']);
  } finally {
    await s3.start();
  }
  assert.equal((await injectClient(app).get('/readyz')).status, 200);
  assert.equal(await svc.dbh.db.storedModel.count(), models, 'no model recorded');
  assert.equal(await svc.dbh.db.job.count({ where: { status: 'queued' } }), 0, 'no job recorded');
  assert.deepEqual(await keysUnder('tmp'), []);
  assert.deepEqual({ models: await keysUnder('models'), uploads: await keysUnder('uploads') }, before);
});

test('a worker with an empty data directory runs a job from the bucket; the artifact downloads with ETag = sha256, Range and If-None-Match, or as a 302 to a presigned URL; the worker keeps no file', async () => {
  const workerData = mkdtempSync(join(tmpdir(), 'mp-worker-data-'));
  const workerTmp = mkdtempSync(join(tmpdir(), 'mp-worker-tmp-'));
  let worker: WorkerProcess | null = null;
  try {
    worker = await startWorkerProcess({ ...svc.env, MODELPRESS_DATA_DIR: workerData, TMPDIR: workerTmp });
    assert.match(worker.output(), new RegExp(`store s3://${s3.bucket}/${PREFIX} @ ${s3.endpoint.replace(/\./g, '\\.')}`), 'the worker logs its store');
    const { create, until } = jobApi(api());
    const id = await create(
      jobForm(model, FAST_RECIPE, {
        evaluation: { bytes: readFileSync(FMNIST.inputs), name: 'test-2000.npz' },
        labels: { bytes: readFileSync(FMNIST.labels), name: 'labels.npy' },
      }),
    );
    const done = await until(id, finished, 'the job to finish', 120_000);
    assert.equal(done.status, 'succeeded', `${JSON.stringify(done.error)}\n${worker.output()}`);

    const res = await api().get(`/v1/jobs/${id}/artifact`);
    assert.equal(res.status, 200);
    const bytes = new Uint8Array(await res.arrayBuffer());
    const etag = `"${sha256(bytes)}"`;
    assert.equal(res.headers.get('etag'), etag);
    assert.equal(Number(res.headers.get('content-length')), bytes.length);
    const session = await createSession(bytes);
    const out = await session.run(syntheticInputs(decodeModel(bytes), { seed: 1 }));
    assert.ok((Object.values(out)[0]!.data as Float32Array).every(Number.isFinite));
    assert.deepEqual(await keysUnder('artifacts'), [`artifacts/${sha256(bytes)}.onnx`], 'the artifact is in the bucket, by content');

    const part = await api().get(`/v1/jobs/${id}/artifact`, { range: 'bytes=10-109' });
    assert.equal(part.status, 206);
    assert.equal(part.headers.get('content-range'), `bytes 10-109/${bytes.length}`);
    assert.deepEqual(new Uint8Array(await part.arrayBuffer()), bytes.slice(10, 110));
    const tail = await api().get(`/v1/jobs/${id}/artifact`, { range: 'bytes=-16' });
    assert.deepEqual(new Uint8Array(await tail.arrayBuffer()), bytes.slice(bytes.length - 16));
    assert.equal((await api().get(`/v1/jobs/${id}/artifact`, { 'if-none-match': etag })).status, 304);

    // MODELPRESS_PRESIGN=1: the same route answers with a redirect the bucket serves itself
    const presigning = await buildApp({ config: { ...svc.config, presignDownloads: true }, infra });
    try {
      const c = injectClient(presigning, key);
      const redirect = await c.get(`/v1/jobs/${id}/artifact`);
      assert.equal(redirect.status, 302);
      assert.equal(redirect.headers.get('etag'), etag);
      assert.match(redirect.headers.get('cache-control') ?? '', /no-store/);
      const location = new URL(redirect.headers.get('location')!);
      assert.equal(location.origin, s3.endpoint);
      assert.equal(location.pathname, `/${s3.bucket}/${PREFIX}/artifacts/${sha256(bytes)}.onnx`);
      assert.equal(location.searchParams.get('X-Amz-Expires'), '300');
      const direct = await fetch(location);
      assert.equal(direct.status, 200);
      assert.match(direct.headers.get('content-disposition') ?? '', /attachment; filename="fmnist-cnn\.compressed\.onnx"|attachment; filename=".*\.compressed\.onnx"/);
      assert.deepEqual(new Uint8Array(await direct.arrayBuffer()), bytes);
      const ranged = await fetch(location, { headers: { range: 'bytes=10-109' } });
      assert.equal(ranged.status, 206);
      assert.deepEqual(new Uint8Array(await ranged.arrayBuffer()), bytes.slice(10, 110));
      assert.equal((await c.get(`/v1/jobs/${id}/artifact`, { 'if-none-match': etag })).status, 304, 'a cached copy needs no redirect');
    } finally {
      await presigning.close();
    }

    assert.deepEqual(readdirSync(workerData), [], "nothing in the worker's data directory");
    // onnxruntime's own telemetry files (`.ses`, `mat-debug-<pid>.log`) aside, nothing is left in TMPDIR
    const left = readdirSync(workerTmp).filter((n) => n !== '.ses' && !/^mat-debug-\d+\.log$/.test(n));
    assert.deepEqual(left, [], "no local copy, attempt folder or artifact left in the worker's temp directory");
  } finally {
    await worker?.stop();
    rmSync(workerData, { recursive: true, force: true });
    rmSync(workerTmp, { recursive: true, force: true });
  }
});

test('S3 down while a job runs: the finished result waits for the store (retried), then is stored whole; a job whose inputs cannot be fetched goes back to the queue and runs once the store is back', async () => {
  const workerData = mkdtempSync(join(tmpdir(), 'mp-worker-data-'));
  let worker: WorkerProcess | null = null;
  try {
    worker = await startWorkerProcess({ ...svc.env, MODELPRESS_DATA_DIR: workerData });
    const { create, until } = jobApi(api());
    const other = new Uint8Array(model);
    other[other.length - 1] ^= 2; // bytes of its own: a new artifact, not one stored by an earlier test
    // (1) the store goes down while the job computes: its result cannot be stored until the store is back
    const id = await create(jobForm(other, { ...BUSY_RECIPE, name: 's3-outage' }));
    await until(id, (j) => j.status === 'running' && j.progress.percent > 0, 'the job to run', 60_000);
    await s3.stop();
    let outage = true;
    try {
      await waitFor('the worker to retry recording the result', async () => new RegExp(`job ${id}: recording failed.*retrying`).test(worker!.output()), 120_000).catch((err: Error) => {
        throw new Error(`${err.message}\n${worker!.output()}`);
      });
      assert.equal((await svc.dbh.db.job.findUniqueOrThrow({ where: { id } })).status, 'running', 'not failed, not succeeded without its file');
      await s3.start();
      outage = false;
    } finally {
      if (outage) await s3.start();
    }
    const done = await until(id, finished, 'the job to finish', 120_000);
    assert.equal(done.status, 'succeeded', `${JSON.stringify(done.error)}\n${worker.output()}`);
    const res = await api().get(`/v1/jobs/${id}/artifact`);
    const bytes = new Uint8Array(await res.arrayBuffer());
    assert.equal(res.headers.get('etag'), `"${sha256(bytes)}"`, 'stored whole: the bytes are those the key names');
    assert.ok((await keysUnder('artifacts')).includes(`artifacts/${sha256(bytes)}.onnx`));
    assert.deepEqual(await keysUnder('tmp'), [], 'no temporary object left');

    // (2) the store is down when a worker takes the job: the inputs cannot be fetched, so the job is handed back and retried
    await worker.stop();
    worker = null;
    const queued = await create(jobForm(other, { ...FAST_RECIPE, name: 's3-outage-2' }));
    await s3.stop();
    try {
      worker = await startWorkerProcess({ ...svc.env, MODELPRESS_DATA_DIR: workerData });
      await waitFor('the worker to fail fetching the inputs', async () => new RegExp(`job ${queued}: attempt 1 could not fetch its inputs`).test(worker!.output()), 60_000);
    } finally {
      await s3.start();
    }
    const second = await until(queued, finished, 'the retried job to finish', 120_000);
    assert.equal(second.status, 'succeeded', `${JSON.stringify(second.error)}\n${worker?.output()}`);
    assert.deepEqual(readdirSync(workerData), [], "nothing in the worker's data directory");
  } finally {
    await worker?.stop();
    rmSync(workerData, { recursive: true, force: true });
  }
});
