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
import { claimJob, finishJob } from '../src/service/db/jobs.js';

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
    const model = await db.storedModel.create({ data: { ownerId, sha256: 'a'.repeat(64), sizeBytes: 5n * 1024n ** 3n, storageKey: 'models/x.onnx', filename: 'x.onnx' } });
    const now = new Date();
    const job = await db.job.create({
      data: {
        ownerId, modelId: model.id, recipe: { steps: [{ pass: 'convert.fp16' }] }, status: 'queued', progressPercent: 12.5, progressStep: 1, progressSteps: 2,
        progressStepName: 's', progressMessage: 'm', errorCode: 'x', errorMessage: 'y', attempt: 0, timeoutMs: 1000, calibrationKey: 'uploads/a.npz',
        evaluationKey: 'uploads/b.npz', labelsKey: 'uploads/c.npy', idempotencyKey: 'k', requestHash: 'h', metrics: { a: 1 }, report: { b: [1, 2] },
        workerId: 'w', startedAt: now, finishedAt: now, cancelRequestedAt: now,
      },
    });
    await db.artifact.create({ data: { jobId: job.id, storageKey: 'artifacts/j.onnx', sha256: 'b'.repeat(64), sizeBytes: 10n } });
    const back = await db.job.findUniqueOrThrow({ where: { id: job.id }, include: { artifact: true, model: true, owner: { include: { apiKeys: true } } } });
    assert.equal(back.model.sizeBytes, 5n * 1024n ** 3n);
    assert.deepEqual(back.report, { b: [1, 2] });
    assert.equal(back.artifact?.sizeBytes, 10n);
    assert.equal(back.owner.apiKeys.length, 1);
    assert.equal(back.cancelRequestedAt?.getTime(), now.getTime());
    // (owner, idempotencyKey) is unique
    await assert.rejects(db.job.create({ data: { ownerId, modelId: model.id, recipe: {}, idempotencyKey: 'k' } }), (e: { code?: string }) => e.code === 'P2002');
    // guarded transitions: claim only from queued/running without a cancel request; finish only from the allowed states
    const j2 = await db.job.create({ data: { ownerId, modelId: model.id, recipe: {} } });
    assert.deepEqual(await claimJob(db, j2.id, 'w1'), { attempt: 1 });
    assert.equal(await finishJob(db, j2.id, 'succeeded', ['running']), true);
    assert.equal(await finishJob(db, j2.id, 'failed', ['running']), false, 'a finished job never moves');
    assert.equal(await claimJob(db, j2.id, 'w2'), null);
    assert.equal((await db.job.findUniqueOrThrow({ where: { id: j2.id } })).status, 'succeeded');
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
