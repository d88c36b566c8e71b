// Retention and deletion over real Postgres, Redis, a local store and a worker process: the sweeper
// (called with an injected `now`, as a worker calls it) deletes what expired, marks the rows, and keeps
// bytes another live row shares; DELETE /v1/jobs/{id} and DELETE /v1/models/{id} remove rows and the
// bytes only they named; a blob being released waits for a writer holding its key's lock.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/service/app.js';
import { loadConfig } from '../src/service/config.js';
import { lockBlobs, recordOrphans, releaseBlobs } from '../src/service/db/blobs.js';
import type { Infra } from '../src/service/plugins/infra.js';
import { RetentionService } from '../src/service/retention/service.js';
import { FMNIST, MODELS } from './helpers.js';
import { startS3 } from './s3-helpers.js';
import { expectProblem, FAST_RECIPE, finished, injectClient, jobApi, jobForm, runnerPids, SLOW_RECIPE, startWorkerProcess, testInfra, testService, waitFor, type Api, type TestService, type WorkerProcess } from './service-helpers.js';

let svc: TestService;
let infra: Infra;
let closeInfra: () => Promise<void>;
let app: FastifyInstance;
let a: Api;
let b: Api;
let retention: RetentionService;
let worker: WorkerProcess | null = null;
const model = readFileSync(MODELS.fmnist);
const DAY = 24 * 3600_000;
const later = (days: number) => new Date(Date.now() + days * DAY);

interface ModelBody { id: string; sha256: string; expiredAt: string | null; expiresAt: string | null; lastUsedAt: string }
interface Retention { artifactExpiresAt: string | null; artifactExpiredAt: string | null; dataExpiredAt: string | null }

before(async () => {
  svc = await testService({ RATE_LIMIT_UPLOADS_PER_MINUTE: '1000', RATE_LIMIT_JOBS_PER_MINUTE: '1000', ARTIFACT_TTL_DAYS: '7', UPLOAD_TTL_DAYS: '30' });
  ({ infra, close: closeInfra } = await testInfra(svc));
  app = await buildApp({ config: svc.config, infra });
  await app.ready();
  a = injectClient(app, await svc.newKey('a'));
  b = injectClient(app, await svc.newKey('b'));
  retention = new RetentionService({ db: svc.dbh.db, storage: infra.storage, jobs: app.jobs, config: svc.config, log: () => {} });
});

after(async () => {
  await worker?.stop();
  await app.close();
  await closeInfra();
  await svc.close();
});

/** The worker runs with no TTLs (its own sweeps with the real clock must not race the test's `now`). */
async function startWorker(): Promise<void> {
  worker ??= await startWorkerProcess({ ...svc.env, ARTIFACT_TTL_DAYS: '0', UPLOAD_TTL_DAYS: '0', RETENTION_INTERVAL_MS: '2000' });
}

async function uploadModel(api: Api, bytes: Uint8Array, status = 201): Promise<ModelBody> {
  const form = new FormData();
  form.append('model', new Blob([bytes]), 'm.onnx');
  const res = await api.post('/v1/models', form);
  assert.equal(res.status, status, await res.clone().text());
  return (await res.json()) as ModelBody;
}

const stored = async (key: string | null | undefined) => key != null && (await infra.storage.size(key)) !== null;
const modelRow = (id: string) => svc.dbh.db.storedModel.findUniqueOrThrow({ where: { id } });
const jobRow = (id: string) => svc.dbh.db.job.findUnique({ where: { id }, include: { artifact: true } });
/** A model of its own bytes: the fixture and a trailing unknown field (readers skip it). */
const variant = (seed: number) => Buffer.concat([model, Buffer.from([0xfa, 0x3f, 0x01, seed])]); // field 1023, varint-length 1: an unknown field
async function createOn(api: Api, modelId: string, status = 202): Promise<Response> {
  const res = await api.post('/v1/jobs', { modelId, recipe: FAST_RECIPE });
  assert.equal(res.status, status, await res.clone().text());
  return res;
}

test('the sweeper expires unused models (bytes kept while another owner has them, or a job waits), data files of finished jobs; an expired model refuses jobs and revives on re-upload', async () => {
  const bytes = variant(1);
  const mA = await uploadModel(a, bytes);
  const mB = await uploadModel(b, bytes); // another owner, the same bytes: one blob
  const busy = await uploadModel(a, variant(2));
  const key = (await modelRow(mA.id)).storageKey;
  assert.equal(key, (await modelRow(mB.id)).storageKey);
  assert.ok(mA.expiresAt && Math.abs(Date.parse(mA.expiresAt) - Date.parse(mA.lastUsedAt) - 30 * DAY) < 1000, 'GET shows when the bytes go');
  // no worker yet: this job stays queued and keeps its model
  const queued = ((await (await createOn(a, busy.id)).json()) as { id: string }).id;
  // a canceled job with a data file
  const withData = await jobApi(a).create(jobForm(variant(3), FAST_RECIPE, { calibration: { bytes: readFileSync(FMNIST.calibration), name: 'calib.npz' } }));
  assert.equal((await a.post(`/v1/jobs/${withData}/cancel`)).status, 200);
  const dataKey = (await jobRow(withData))!.calibrationKey!;
  assert.ok(await stored(dataKey));

  const r1 = await retention.sweep(later(31)); // 31 days on: everything above is past UPLOAD_TTL_DAYS
  assert.ok(r1.models.includes(mA.id) && r1.models.includes(mB.id), 'both owners’ rows expire');
  assert.ok(!r1.models.includes(busy.id), 'a model a queued job uses is kept');
  assert.deepEqual(r1.dataJobs, [withData]);
  assert.ok(!(await stored(key)), 'no live row names the bytes any more: deleted');
  assert.ok(!(await stored(dataKey)));
  assert.ok(await stored((await modelRow(busy.id)).storageKey));
  const gone = (await (await a.get(`/v1/jobs/${withData}`)).json()) as { retention: Retention };
  assert.ok(gone.retention.dataExpiredAt, 'the job says its data files went');
  const mAView = (await (await a.get(`/v1/models/${mA.id}`)).json()) as ModelBody;
  assert.ok(mAView.expiredAt && mAView.expiresAt === null);

  // an expired model refuses new jobs and summaries, with a code that says what to do
  assert.match((await expectProblem(await createOn(a, mA.id, 410), 410, 'model_expired')).detail, /upload it again/);
  await expectProblem(await a.get(`/v1/models/${mA.id}/summary`), 410, 'model_expired');
  // the same bytes again revive the same model, and bring the blob back
  const revived = await uploadModel(a, bytes, 200);
  assert.equal(revived.id, mA.id);
  assert.equal(revived.expiredAt, null);
  assert.ok(await stored(key));
  await createOn(a, mA.id);

  // a model used recently is kept, and its blob too although another owner's row expired
  await svc.dbh.db.storedModel.update({ where: { id: mB.id }, data: { expiredAt: null } }); // B's row back in use…
  await svc.dbh.db.storedModel.update({ where: { id: mA.id }, data: { lastUsedAt: new Date(Date.now() - 40 * DAY) } }); // …A's long unused
  await svc.dbh.db.job.updateMany({ where: { modelId: mA.id }, data: { status: 'canceled', finishedAt: new Date() } });
  const r2 = await retention.sweep(new Date(Date.now() + 10 * DAY));
  assert.deepEqual(r2.models, [mA.id]);
  assert.ok(r2.blobs.kept.includes(key), 'owner B’s live row still names the blob');
  assert.ok(await stored(key));

  await a.post(`/v1/jobs/${queued}/cancel`);
});

test('a release waits for a writer holding the key’s lock, then keeps the bytes that writer’s row names', async () => {
  const db = svc.dbh.db;
  const { ownerId } = (await db.apiKey.findFirstOrThrow({ where: { name: 'a' } }));
  const key = 'models/race-test.onnx';
  const dir = mkdtempSync(join(tmpdir(), 'mp-retention-'));
  writeFileSync(join(dir, 'm.onnx'), model);
  await infra.storage.putFile(key, join(dir, 'm.onnx')); // the store may move the file: a copy
  rmSync(dir, { recursive: true, force: true });
  await recordOrphans(db, [key]);
  let releaseDone = false;
  let release: Promise<unknown> | null = null;
  await db.$transaction(async (tx) => {
    await lockBlobs(tx, [key]);
    release = releaseBlobs(db, infra.storage, [key]).then((r) => ((releaseDone = true), r));
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(releaseDone, false, 'the release waits for the lock');
    await tx.storedModel.create({ data: { ownerId, sha256: 'f'.repeat(64), sizeBytes: 1n, storageKey: key } });
  });
  const r = (await release!) as { kept: string[] };
  assert.deepEqual(r.kept, [key]);
  assert.ok(await stored(key));
});

test('the sweeper deletes an expired job’s models, keeps the bytes a live job shares, and the job says so (410 on download)', async () => {
  await startWorker();
  const { create, until } = jobApi(a);
  const m = await uploadModel(a, variant(10));
  const first = await create({ modelId: m.id, recipe: FAST_RECIPE });
  const second = await create({ modelId: m.id, recipe: FAST_RECIPE });
  for (const id of [first, second]) assert.equal((await until(id, finished, 'the job to finish')).status, 'succeeded');
  const key = (await jobRow(first))!.artifact!.storageKey;
  assert.equal((await jobRow(second))!.artifact!.storageKey, key, 'the same result: one content-addressed blob');
  const view = (await (await a.get(`/v1/jobs/${first}`)).json()) as { retention: Retention; finishedAt: string };
  assert.equal(Date.parse(view.retention.artifactExpiresAt!), Date.parse(view.finishedAt) + 7 * DAY);

  await svc.dbh.db.job.update({ where: { id: first }, data: { finishedAt: new Date(Date.now() - 8 * DAY) } });
  const r1 = await retention.sweep(new Date());
  assert.deepEqual(r1.artifactJobs, [first]);
  assert.ok(await stored(key), 'the second job still names the blob');
  const expired = (await (await a.get(`/v1/jobs/${first}`)).json()) as { retention: Retention; status: string };
  assert.equal(expired.status, 'succeeded');
  assert.ok(expired.retention.artifactExpiredAt);
  assert.equal(expired.retention.artifactExpiresAt, null);
  assert.match((await expectProblem(await a.get(`/v1/jobs/${first}/artifact`), 410, 'artifact_expired')).detail, /ARTIFACT_TTL_DAYS/);
  assert.equal((await a.get(`/v1/jobs/${first}/report`)).status, 200, 'the report stays');
  assert.equal((await a.get(`/v1/jobs/${second}/artifact`)).status, 200);

  const r2 = await retention.sweep(later(8));
  assert.deepEqual(r2.artifactJobs, [second]);
  assert.ok(!(await stored(key)), 'no live job names it now'); // (this sweep or the worker's own deleted it)
  assert.deepEqual((await retention.sweep(later(8))).artifactJobs, [], 'a mark is made once');
});

test('DELETE /v1/jobs/{id}: owner only, removes the rows and the bytes only it named, keeps shared ones, 404 the second time', async () => {
  await startWorker();
  const { create, until } = jobApi(a);
  const m = await uploadModel(a, variant(20));
  const one = await create(jobForm(variant(20), FAST_RECIPE, { evaluation: { bytes: readFileSync(FMNIST.inputs), name: 'test.npz' } }));
  const two = await create({ modelId: m.id, recipe: FAST_RECIPE });
  for (const id of [one, two]) assert.equal((await until(id, finished, 'the job to finish')).status, 'succeeded');
  const rowOne = (await jobRow(one))!;
  const key = rowOne.artifact!.storageKey;
  assert.equal((await jobRow(two))!.artifact!.storageKey, key);

  await expectProblem(await b.delete(`/v1/jobs/${one}`), 404, 'not_found'); // another owner: as if absent
  assert.equal((await a.delete(`/v1/jobs/${one}`)).status, 204);
  await expectProblem(await a.delete(`/v1/jobs/${one}`), 404, 'not_found');
  await expectProblem(await a.get(`/v1/jobs/${one}`), 404, 'not_found');
  assert.equal(await jobRow(one), null);
  assert.ok(!(await stored(rowOne.evaluationKey)), 'its uploaded data file is gone');
  assert.ok(await stored(key), 'the other job still names the artifact');
  assert.ok(await stored((await modelRow(m.id)).storageKey), 'the model is not the job’s to delete');

  assert.equal((await a.delete(`/v1/jobs/${two}`)).status, 204);
  assert.ok(!(await stored(key)), 'the last job that named the artifact is gone: so are its bytes');
  assert.equal(await svc.dbh.db.orphanBlob.count(), 0);
  // each deletion left a tombstone for live views; a sweep a day later removes them, not before
  const tombstones = () => svc.dbh.db.jobDeletion.count({ where: { jobId: { in: [one, two] } } });
  assert.equal(await tombstones(), 2);
  await retention.sweep(new Date(Date.now() + DAY / 2));
  assert.equal(await tombstones(), 2);
  await retention.sweep(new Date(Date.now() + 2 * DAY));
  assert.equal(await tombstones(), 0);
});

test('DELETE /v1/jobs/{id} of a running job cancels it first; its worker stops and stores nothing after', async () => {
  await startWorker();
  const { create, until } = jobApi(a);
  const id = await create(jobForm(variant(30), SLOW_RECIPE));
  await until(id, (j) => j.status === 'running' && j.progress.percent > 0, 'the job to run', 60_000);
  assert.equal((await a.delete(`/v1/jobs/${id}`)).status, 204);
  await expectProblem(await a.get(`/v1/jobs/${id}`), 404, 'not_found');
  await waitFor('the job process to stop', async () => runnerPids(id).length === 0, 20_000);
  await waitFor('the worker to notice', async () => /(canceled|deleted)/.test(worker!.output().split(`job ${id}`).slice(1).join('')), 20_000);
  assert.equal(await jobRow(id), null, 'no late write resurrected the row');
  assert.deepEqual(await infra.storage.list(`best/${id}`), []);
});

test('a model whose bytes left the store behind modelpress\u2019s back: its job fails at once with stored_object_missing and says what to do (not internal, not stuck running)', async () => {
  await startWorker();
  const { until } = jobApi(a);
  const m = await uploadModel(a, variant(45));
  await infra.storage.delete((await modelRow(m.id)).storageKey); // an operator's cleanup, or a store switched under the database
  const id = ((await (await createOn(a, m.id)).json()) as { id: string }).id;
  const job = await until(id, finished, 'the job to fail', 30_000);
  assert.equal(job.status, 'failed');
  assert.equal(job.error?.code, 'stored_object_missing', job.error?.message);
  assert.match(String(job.error?.message), /missing from the store.*upload it again/);
  assert.ok(!String(job.error?.message).includes(svc.dataDir), 'no server path in the message');
  // the summary of the model reads the same missing bytes: a 410 with the same code
  await expectProblem(await a.get(`/v1/models/${m.id}/summary`), 410, 'stored_object_missing');
  // uploading the bytes again stores them again under the same model, and a job on it runs
  assert.equal((await uploadModel(a, variant(45), 200)).id, m.id);
  assert.ok(await stored((await modelRow(m.id)).storageKey));
  const again = ((await (await createOn(a, m.id)).json()) as { id: string }).id;
  assert.equal((await until(again, finished, 'the job on the re-uploaded model', 60_000)).status, 'succeeded');
});

test('DELETE /v1/models/{id}: 409 model_in_use while a job uses it or finished jobs refer to it (unless ?cascade=jobs); bytes another owner shares stay', async () => {
  await startWorker();
  const { create, until } = jobApi(a);
  const bytes = variant(40);
  const mA = await uploadModel(a, bytes);
  const mB = await uploadModel(b, bytes);
  const key = (await modelRow(mA.id)).storageKey;
  const running = await create(jobForm(bytes, SLOW_RECIPE));
  await until(running, (j) => j.status === 'running', 'the job to run', 60_000);
  const inUse = await expectProblem(await a.delete(`/v1/models/${mA.id}`), 409, 'model_in_use');
  assert.deepEqual(inUse.errors, [{ path: `/jobs/${running}`, message: 'running' }]);
  await expectProblem(await a.delete(`/v1/models/${mA.id}?cascade=jobs`), 409, 'model_in_use'); // never cancels
  await expectProblem(await b.delete(`/v1/models/${mA.id}`), 404, 'not_found');

  await a.post(`/v1/jobs/${running}/cancel`);
  await until(running, finished, 'the cancel');
  const refused = await expectProblem(await a.delete(`/v1/models/${mA.id}`), 409, 'model_in_use');
  assert.match(refused.detail, /cascade=jobs/);
  assert.equal((await a.delete(`/v1/models/${mA.id}?cascade=jobs`)).status, 204);
  await expectProblem(await a.get(`/v1/models/${mA.id}`), 404, 'not_found');
  await expectProblem(await a.get(`/v1/jobs/${running}`), 404, 'not_found');
  await expectProblem(await a.delete(`/v1/models/${mA.id}`), 404, 'not_found');
  assert.ok(await stored(key), 'owner B’s model has the same bytes');

  assert.equal((await b.delete(`/v1/models/${mB.id}`)).status, 204);
  assert.ok(!(await stored(key)), 'the last model with these bytes is gone: so is the blob');
  // a new upload of the same bytes stores them again, as a new model
  const again = await uploadModel(a, bytes);
  assert.notEqual(again.id, mA.id);
  assert.ok(await stored(key));
});

test('ARTIFACT_TTL_DAYS and UPLOAD_TTL_DAYS are validated at start, naming the variable', () => {
  assert.throws(() => loadConfig({ ARTIFACT_TTL_DAYS: '-1' }), /ARTIFACT_TTL_DAYS/);
  assert.throws(() => loadConfig({ UPLOAD_TTL_DAYS: 'soon' }), /UPLOAD_TTL_DAYS/);
  const c = loadConfig({});
  assert.equal(c.artifactTtlDays, 0);
  assert.equal(c.uploadTtlDays, 0);
});

test('on an S3 store: DELETE /v1/models/{id} keeps bytes another owner shares and deletes the last copy; the sweeper deletes expired bytes', async () => {
  const s3 = await startS3();
  const storage = s3.store('retention');
  const s3App = await buildApp({ config: svc.config, infra: { ...infra, storage } });
  await s3App.ready();
  try {
    const [sa, sb] = [injectClient(s3App, await svc.newKey('s3a')), injectClient(s3App, await svc.newKey('s3b'))];
    const bytes = variant(50);
    const mA = await uploadModel(sa, bytes);
    const mB = await uploadModel(sb, bytes);
    const key = (await modelRow(mA.id)).storageKey;
    assert.equal(await storage.size(key), bytes.length);
    assert.equal((await sa.delete(`/v1/models/${mA.id}`)).status, 204);
    assert.equal(await storage.size(key), bytes.length, 'owner B still has these bytes');
    assert.equal((await sb.delete(`/v1/models/${mB.id}`)).status, 204);
    assert.equal(await storage.size(key), null);

    const old = await uploadModel(sa, variant(51));
    const oldKey = (await modelRow(old.id)).storageKey;
    const sweeper = new RetentionService({ db: svc.dbh.db, storage, jobs: s3App.jobs, config: svc.config, log: () => {} });
    const r = await sweeper.sweep(later(31));
    assert.ok(r.models.includes(old.id));
    assert.equal(await storage.size(oldKey), null);
  } finally {
    await s3App.close();
    await s3.close();
  }
});
