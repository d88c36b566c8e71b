// What a goal job's search leaves in the database: its trials as they finish, its best model so far
// and its frontier models. Like every job write, each is owned by one attempt: a superseded attempt
// records nothing and stores nothing (the blob is stored under the job's row lock, after the check).
import { lockBlobs } from './blobs.js';
import type { Db } from './client.js';
import type { Tx } from './owners.js';

export interface TrialFields {
  n: number;
  steps: unknown;
  status: string;
  reason: string | null;
  metricValue: number | null;
  loss: number | null;
  latencyRatio: number | null;
  sizeRatio: number | null;
  built: number;
  cached: number;
  durationMs: number;
  /** The shipped recipe (recipes/) the trial ran as written, if it was one. */
  template: string | null;
}

export interface StoredBlob {
  key: string;
  sha256: string;
  sizeBytes: number;
}

/** Records a finished trial of the attempt that owns the running job; false when it does not (nothing written). */
export async function insertTrial(db: Db, jobId: string, attempt: number, t: TrialFields): Promise<boolean> {
  const n = await db.$executeRaw`
    INSERT INTO job_trials (job_id, attempt, n, steps, status, reason, metric_value, loss, latency_ratio, size_ratio, built, cached, duration_ms, template)
    SELECT ${jobId}::uuid, ${attempt}, ${t.n}, ${JSON.stringify(t.steps)}::jsonb, ${t.status}, ${t.reason}, ${t.metricValue}::double precision,
      ${t.loss}::double precision, ${t.latencyRatio}::double precision, ${t.sizeRatio}::double precision, ${t.built}, ${t.cached}, ${Math.round(t.durationMs)}, ${t.template}
    WHERE EXISTS (SELECT 1 FROM jobs WHERE id = ${jobId}::uuid AND status = 'running' AND attempt = ${attempt})
    ON CONFLICT (job_id, attempt, n) DO NOTHING`;
  return n === 1;
}

/** Runs `fn` in a transaction holding the job's row lock, only while `attempt` owns the running job. */
function whileOwned<T>(db: Db, jobId: string, attempt: number, fn: (tx: Tx) => Promise<T>): Promise<T | null> {
  return db.$transaction(
    async (tx) => {
      const owned = await tx.$queryRaw<{ id: string }[]>`
        SELECT id::text FROM jobs WHERE id = ${jobId}::uuid AND status = 'running' AND attempt = ${attempt} FOR UPDATE`;
      return owned.length === 1 ? fn(tx) : null;
    },
    { timeout: 120_000, maxWait: 10_000 },
  );
}

/**
 * Records a new best model so far: `store` puts its file under `blob.key`, then the job points at it
 * with the search report as it stands. Returns the key it replaced (null: none), or undefined when
 * this attempt no longer owns the job (nothing stored).
 */
export async function recordBest(
  db: Db,
  jobId: string,
  attempt: number,
  best: StoredBlob & { trial: number; report: unknown },
  store: () => Promise<void>,
): Promise<string | null | undefined> {
  const replaced = await whileOwned(db, jobId, attempt, async (tx) => {
    const before = await tx.job.findUniqueOrThrow({ where: { id: jobId }, select: { bestStorageKey: true } });
    await lockBlobs(tx, [best.key]);
    await store();
    await tx.job.update({
      where: { id: jobId },
      data: { bestStorageKey: best.key, bestSha256: best.sha256, bestSizeBytes: BigInt(best.sizeBytes), bestTrial: best.trial, bestAttempt: attempt, bestReport: best.report as never },
    });
    return { key: before.bestStorageKey };
  });
  return replaced === null ? undefined : replaced.key;
}

/** Marks a trial of the owning attempt as on the frontier, its model stored by `store` under `blob.key`. */
export async function recordFrontierModel(db: Db, jobId: string, attempt: number, n: number, blob: StoredBlob, store: () => Promise<void>): Promise<boolean> {
  const done = await whileOwned(db, jobId, attempt, async (tx) => {
    await lockBlobs(tx, [blob.key]); // content-addressed: another job's release of the same key waits or keeps it
    await store();
    await tx.jobTrial.updateMany({
      where: { jobId, attempt, n },
      data: { frontier: true, artifactKey: blob.key, artifactSha256: blob.sha256, artifactSizeBytes: BigInt(blob.sizeBytes) },
    });
    return true;
  });
  return done === true;
}
