// The migrations really create the schema the generated Prisma client expects (every model, every
// field), the migrator is idempotent and refuses edited migrations, and config validation is clear.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freshDatabase, MIGRATIONS } from './service-helpers.js';
import { migrate, readMigrations } from '../src/service/db/migrate.js';
import { createDb } from '../src/service/db/client.js';
import { createApiKey, verifyApiKey } from '../src/service/db/keys.js';
import { loadConfig } from '../src/service/config.js';
import { claimJob, completeAttempt, finalizeCanceled, finishAttempt, nextAttempt, requeueAttempt, writeProgress } from '../src/service/db/jobs.js';
import { insertTrial, recordBest, recordFrontierModel } from '../src/service/db/search.js';

test('migrate applies every migration on a fresh database, records it like Prisma, and is idempotent', async () => {
  const database = await freshDatabase();
  try {
    const first = await migrate(database.url, MIGRATIONS);
    assert.deepEqual(first.applied, readMigrations(MIGRATIONS).map((m) => m.name));
    const second = await migrate(database.url, MIGRATIONS);
    assert.deepEqual(second.applied, []);
    assert.equal(second.alreadyApplied.length, first.applied.length);
    const c = new pg.Client({ connectionString: database.url });
    await c.connect();
    const { rows } = await c.query('SELECT migration_name, checksum, finished_at FROM "_prisma_migrations"');
    await c.end();
    assert.equal(rows.length, first.applied.length);
    for (const r of rows) assert.ok(r.finished_at && /^[0-9a-f]{64}$/.test(r.checksum));
  } finally {
    await database.drop();
  }
});

test('migrate refuses a migration edited after it was applied', async () => {
  const database = await freshDatabase();
  const dir = mkdtempSync(join(tmpdir(), 'mp-migrations-'));
  try {
    cpSync(MIGRATIONS, dir, { recursive: true });
    await migrate(database.url, dir);
    const name = readMigrations(dir)[0]!.name;
    const file = join(dir, name, 'migration.sql');
    writeFileSync(file, `${readFileSync(file, 'utf8')}\n-- edited\n`);
    await assert.rejects(migrate(database.url, dir), /was edited after it was applied/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await database.drop();
  }
});

test('the generated Prisma client works against the migrated schema for every model and field', async () => {
  const database = await freshDatabase();
  await migrate(database.url, MIGRATIONS);
  const { db, close } = createDb(database.url);
  try {
    const { key, ownerId } = await createApiKey(db, 'drift-check');
    assert.equal(await verifyApiKey(db, key), ownerId);
    assert.equal(await verifyApiKey(db, key.slice(0, -1) + (key.endsWith('A') ? 'B' : 'A')), null);
    assert.equal(await verifyApiKey(db, 'not-a-key'), null);
    const now = new Date();
    const model = await db.storedModel.create({ data: { ownerId, sha256: 'a'.repeat(64), sizeBytes: 5n * 1024n ** 3n, storageKey: 'models/x.onnx', filename: 'x.onnx', lastUsedAt: now, expiredAt: null } });
    await db.orphanBlob.create({ data: { key: 'artifacts/o.onnx' } });
    assert.equal((await db.orphanBlob.findUniqueOrThrow({ where: { key: 'artifacts/o.onnx' } })).createdAt instanceof Date, true);
    const job = await db.job.create({
      data: {
        ownerId, modelId: model.id, recipe: { steps: [{ pass: 'convert.fp16' }] }, status: 'queued', progressPercent: 12.5, progressStep: 1, progressSteps: 2,
        progressStepName: 's', progressMessage: 'm', errorCode: 'x', errorMessage: 'y', attempt: 0, timeoutMs: 1000, calibrationKey: 'uploads/a.npz',
        evaluationKey: 'uploads/b.npz', labelsKey: 'uploads/c.npy', idempotencyKey: 'k', requestHash: 'h', metrics: { a: 1 }, report: { b: [1, 2] },
        workerId: 'w', startedAt: now, finishedAt: now, cancelRequestedAt: now, progressSearch: { phase: 'searching', trial: 3 },
        bestStorageKey: 'best/x/1-a.onnx', bestSha256: 'd'.repeat(64), bestSizeBytes: 7n, bestTrial: 2, bestAttempt: 1, bestReport: { kind: 'search-in-progress' },
        artifactExpiredAt: now, dataExpiredAt: now,
      },
    });
    await db.jobTrial.create({
      data: {
        jobId: job.id, attempt: 1, n: 0, steps: [], status: 'meets', reason: 'r', metricValue: 0.9, loss: 0, latencyRatio: 1, sizeRatio: 1, built: 0, cached: 0,
        durationMs: 12, frontier: true, artifactKey: 'artifacts/t.onnx', artifactSha256: 'e'.repeat(64), artifactSizeBytes: 8n,
      },
    });
    await db.artifact.create({ data: { jobId: job.id, storageKey: 'artifacts/j.onnx', sha256: 'b'.repeat(64), sizeBytes: 10n } });
    const back = await db.job.findUniqueOrThrow({ where: { id: job.id }, include: { artifact: true, model: true, trials: true, owner: { include: { apiKeys: true } } } });
    assert.deepEqual(back.progressSearch, { phase: 'searching', trial: 3 });
    assert.equal(back.bestSizeBytes, 7n);
    assert.deepEqual(back.bestReport, { kind: 'search-in-progress' });
    assert.deepEqual(back.trials.map((t) => [t.n, t.metricValue, t.frontier, t.artifactSizeBytes]), [[0, 0.9, true, 8n]]);
    assert.equal(back.model.sizeBytes, 5n * 1024n ** 3n);
    assert.deepEqual(back.report, { b: [1, 2] });
    assert.equal(back.artifact?.sizeBytes, 10n);
    assert.equal(back.owner.apiKeys.length, 1);
    assert.equal(back.cancelRequestedAt?.getTime(), now.getTime());
    assert.equal(back.artifactExpiredAt?.getTime(), now.getTime());
    assert.equal(back.dataExpiredAt?.getTime(), now.getTime());
    assert.equal(back.model.lastUsedAt.getTime(), now.getTime());
    // (owner, idempotencyKey) is unique
    await assert.rejects(db.job.create({ data: { ownerId, modelId: model.id, recipe: {}, idempotencyKey: 'k' } }), (e: { code?: string }) => e.code === 'P2002');
    // guarded transitions: claim only queued jobs (or running ones with a stale heartbeat); only the
    // attempt that owns the job moves it
    const j2 = await db.job.create({ data: { ownerId, modelId: model.id, recipe: {} } });
    assert.deepEqual(await claimJob(db, j2.id, 'w1', 60_000), { attempt: 1 });
    assert.equal(await claimJob(db, j2.id, 'w2', 60_000), null, 'a running job with a live heartbeat is not claimed again');
    await db.$executeRaw`UPDATE jobs SET updated_at = now() - interval '2 minutes' WHERE id = ${j2.id}::uuid`;
    assert.deepEqual(await claimJob(db, j2.id, 'w2', 60_000), { attempt: 2 }, 'a stale run is taken over');
    assert.deepEqual(await writeProgress(db, j2.id, 1, null), { owned: false, cancelRequested: false }, 'the superseded attempt learns it lost');
    assert.equal(await finishAttempt(db, j2.id, 1, 'failed', { errorCode: 'internal', errorMessage: 'x' }), false, 'the old attempt cannot fail the job');
    const run = { sha256: 'c'.repeat(64), sizeBytes: 3, report: {}, progress: null };
    let promoted = 0;
    assert.equal(await completeAttempt(db, j2.id, 1, run, 'artifacts/c.onnx', async () => void promoted++), false);
    assert.equal(promoted, 0, 'a losing attempt promotes nothing');
    assert.equal(await nextAttempt(db, j2.id, 2, 'w2'), 3);
    assert.equal(await completeAttempt(db, j2.id, 3, run, 'artifacts/c.onnx', async () => void promoted++), true);
    assert.equal(promoted, 1);
    assert.equal(await completeAttempt(db, j2.id, 3, run, 'artifacts/c.onnx', async () => void promoted++), false, 'a finished job never moves');
    assert.equal(await finishAttempt(db, j2.id, 3, 'failed'), false);
    assert.equal(await claimJob(db, j2.id, 'w3', 0), null);
    const done = await db.job.findUniqueOrThrow({ where: { id: j2.id }, include: { artifact: true } });
    assert.equal(done.status, 'succeeded');
    assert.equal(done.artifact?.storageKey, 'artifacts/c.onnx');
    // cancel requested: never claimed; requeue and the reconciler's sweep turn it into canceled
    const j3 = await db.job.create({ data: { ownerId, modelId: model.id, recipe: {} } });
    assert.deepEqual(await claimJob(db, j3.id, 'w1', 60_000), { attempt: 1 });
    await db.job.update({ where: { id: j3.id }, data: { cancelRequestedAt: new Date() } });
    assert.equal(await requeueAttempt(db, j3.id, { attempt: 1 }), 'canceled');
    const j4 = await db.job.create({ data: { ownerId, modelId: model.id, recipe: {}, cancelRequestedAt: new Date() } });
    assert.equal(await claimJob(db, j4.id, 'w1', 0), null);
    assert.deepEqual(await finalizeCanceled(db, 60_000, j4.id), [j4.id]);
    assert.equal((await db.job.findUniqueOrThrow({ where: { id: j4.id } })).status, 'canceled');
  } finally {
    await close();
    await database.drop();
  }
});

test("a search's records are owned by one attempt: trials, the best so far and frontier models of a superseded attempt are neither stored nor recorded", async () => {
  const database = await freshDatabase();
  await migrate(database.url, MIGRATIONS);
  const { db, close } = createDb(database.url);
  try {
    const { ownerId } = await createApiKey(db, 'search-records');
    const model = await db.storedModel.create({ data: { ownerId, sha256: 'a'.repeat(64), sizeBytes: 1n, storageKey: 'models/x.onnx' } });
    const job = await db.job.create({ data: { ownerId, modelId: model.id, recipe: {} } });
    const trial = (n: number) => ({ n, steps: [{ pass: 'convert.fp16' }], status: 'meets', reason: null, metricValue: 0.9, loss: 0.001, latencyRatio: 0.8, sizeRatio: 0.5, built: 1, cached: 0, durationMs: 5, template: n === 0 ? null : 'fp16' });
    assert.equal(await insertTrial(db, job.id, 1, trial(0)), false, 'a queued job has no attempt to record for');
    await claimJob(db, job.id, 'w1', 60_000);
    assert.equal(await insertTrial(db, job.id, 1, trial(0)), true);
    assert.equal(await insertTrial(db, job.id, 1, trial(0)), false, 'a duplicate is ignored');
    let stored = 0;
    const store = async () => void stored++;
    assert.equal(await recordBest(db, job.id, 1, { key: 'best/j/1-a.onnx', sha256: 'a'.repeat(64), sizeBytes: 3, trial: 0, report: { kind: 'search-in-progress' } }, store), null, 'no best before');
    assert.equal(await recordBest(db, job.id, 1, { key: 'best/j/1-b.onnx', sha256: 'b'.repeat(64), sizeBytes: 4, trial: 1, report: {} }, store), 'best/j/1-a.onnx');
    // attempt 2 takes over (attempt 1's worker looked dead): attempt 1 records and stores nothing more
    await db.$executeRaw`UPDATE jobs SET updated_at = now() - interval '2 minutes' WHERE id = ${job.id}::uuid`;
    assert.deepEqual(await claimJob(db, job.id, 'w2', 60_000), { attempt: 2 });
    assert.equal(await insertTrial(db, job.id, 1, trial(1)), false);
    assert.equal(await recordBest(db, job.id, 1, { key: 'best/j/1-c.onnx', sha256: 'c'.repeat(64), sizeBytes: 5, trial: 1, report: {} }, store), undefined);
    assert.equal(await recordFrontierModel(db, job.id, 1, 0, { key: 'artifacts/c.onnx', sha256: 'c'.repeat(64), sizeBytes: 5 }, store), false);
    assert.equal(stored, 2);
    assert.equal(await insertTrial(db, job.id, 2, trial(0)), true);
    assert.equal(await insertTrial(db, job.id, 2, trial(1)), true);
    assert.deepEqual((await db.jobTrial.findMany({ where: { jobId: job.id, attempt: 2 }, orderBy: { n: 'asc' }, select: { template: true } })).map((t) => t.template), [null, 'fp16'], 'a trial that ran a shipped recipe names it');
    assert.equal(await recordFrontierModel(db, job.id, 2, 0, { key: 'artifacts/d.onnx', sha256: 'd'.repeat(64), sizeBytes: 6 }, store), true);
    assert.equal(stored, 3);
    const rows = await db.jobTrial.findMany({ where: { jobId: job.id }, orderBy: [{ attempt: 'asc' }, { n: 'asc' }] });
    assert.deepEqual(rows.map((r) => [r.attempt, r.n, r.frontier, r.artifactKey]), [[1, 0, false, null], [2, 0, true, 'artifacts/d.onnx'], [2, 1, false, null]]);
    const back = await db.job.findUniqueOrThrow({ where: { id: job.id } });
    assert.deepEqual([back.bestStorageKey, back.bestTrial, back.bestAttempt], ['best/j/1-b.onnx', 1, 1], "the last best of the attempt that owned the job");
    // the final artifact replaces the best so far
    assert.equal(await completeAttempt(db, job.id, 2, { sha256: 'e'.repeat(64), sizeBytes: 1, report: {}, progress: null }, 'artifacts/e.onnx', store), true);
    const done = await db.job.findUniqueOrThrow({ where: { id: job.id } });
    assert.deepEqual([done.bestStorageKey, done.bestReport], [null, null]);
  } finally {
    await close();
    await database.drop();
  }
});

test('service config: defaults, and every bad variable named in one clear error', () => {
  const c = loadConfig({});
  assert.equal(c.port, 8080);
  assert.equal(c.maxUploadBytes, 2 * 1024 ** 3);
  assert.equal(c.jobTimeoutMs, 30 * 60 * 1000);
  assert.throws(
    () => loadConfig({ PORT: 'eighty', DATABASE_URL: 'mysql://x', WORKER_CONCURRENCY: '0' }),
    (e: Error & { code?: string }) => e.code === 'invalid_input' && /PORT/.test(e.message) && /DATABASE_URL/.test(e.message) && /WORKER_CONCURRENCY/.test(e.message),
  );
});
