// Job state changes, all guarded in SQL (`UPDATE … WHERE status IN (…)`), so at-least-once delivery,
// concurrent cancels and stale workers can never move a finished job.
import { lockBlobs } from './blobs.js';
import { Prisma, type Db } from './client.js';

/**
 * Claims a job for a new attempt: queued → running, or running → running when the run's heartbeat
 * (updated_at, written every second by its worker) is older than `staleMs` — its worker is gone.
 * A running job with a live heartbeat is never claimed: a duplicate delivery must not start a second run.
 */
export async function claimJob(db: Db, jobId: string, workerId: string, staleMs: number): Promise<{ attempt: number } | null> {
  const rows = await db.$queryRaw<{ attempt: number }[]>`
    UPDATE jobs SET status = 'running', attempt = attempt + 1, started_at = COALESCE(started_at, now()),
      worker_id = ${workerId}, updated_at = now()
    WHERE id = ${jobId}::uuid AND cancel_requested_at IS NULL
      AND (status = 'queued' OR (status = 'running' AND updated_at < now() - ${staleMs}::integer * interval '1 millisecond'))
    RETURNING attempt`;
  return rows[0] ?? null;
}

/**
 * Finishes jobs whose cancel was requested but that no live worker will ever stop: queued ones, and
 * running ones without a heartbeat for `staleMs`. With `jobId`, only that job. Returns the ids canceled.
 */
export async function finalizeCanceled(db: Db, staleMs: number, jobId?: string): Promise<string[]> {
  const rows = await db.$queryRaw<{ id: string }[]>`
    UPDATE jobs SET status = 'canceled', finished_at = now(), updated_at = now()
    WHERE cancel_requested_at IS NOT NULL
      AND (status = 'queued' OR (status = 'running' AND updated_at < now() - ${staleMs}::integer * interval '1 millisecond'))
      AND (${jobId ?? null}::uuid IS NULL OR id = ${jobId ?? null}::uuid)
    RETURNING id::text`;
  return rows.map((r) => r.id);
}

/** Ends one attempt: only the attempt that still owns the job (running, same attempt number) moves it. */
export async function finishAttempt(
  db: Db,
  jobId: string,
  attempt: number,
  to: 'failed' | 'canceled',
  fields: { errorCode?: string; errorMessage?: string } = {},
): Promise<boolean> {
  const res = await db.job.updateMany({
    where: { id: jobId, status: 'running', attempt },
    data: {
      status: to,
      finishedAt: new Date(),
      ...(fields.errorCode ? { errorCode: fields.errorCode, errorMessage: fields.errorMessage ?? null } : {}),
    },
  });
  return res.count === 1;
}

/**
 * Hands a running attempt back to the queue: one attempt (worker shutdown), or whichever attempt
 * has had no heartbeat for `staleMs` (its worker is gone). A job whose cancel was requested is
 * canceled instead, so it never loops through the queue.
 */
export async function requeueAttempt(db: Db, jobId: string, guard: { attempt: number } | { staleMs: number }): Promise<'queued' | 'canceled' | null> {
  const attempt = 'attempt' in guard ? guard.attempt : null;
  const staleMs = 'staleMs' in guard ? guard.staleMs : null;
  const rows = await db.$queryRaw<{ status: string }[]>`
    UPDATE jobs SET
      status = CASE WHEN cancel_requested_at IS NULL THEN 'queued'::job_status ELSE 'canceled'::job_status END,
      finished_at = CASE WHEN cancel_requested_at IS NULL THEN NULL ELSE now() END,
      worker_id = NULL, updated_at = now()
    WHERE id = ${jobId}::uuid AND status = 'running'
      AND (${attempt}::integer IS NULL OR attempt = ${attempt}::integer)
      AND (${staleMs}::integer IS NULL OR updated_at < now() - ${staleMs}::integer * interval '1 millisecond')
    RETURNING status::text`;
  return (rows[0]?.status as 'queued' | 'canceled' | undefined) ?? null;
}

/** Starts the next attempt of a running job in place (a crashed run retried by the same worker). */
export async function nextAttempt(db: Db, jobId: string, attempt: number, workerId: string): Promise<number | null> {
  const rows = await db.$queryRaw<{ attempt: number }[]>`
    UPDATE jobs SET attempt = attempt + 1, worker_id = ${workerId}, updated_at = now()
    WHERE id = ${jobId}::uuid AND status = 'running' AND attempt = ${attempt} AND cancel_requested_at IS NULL
    RETURNING attempt`;
  return rows[0]?.attempt ?? null;
}

export interface CompletedRun {
  sha256: string;
  sizeBytes: number;
  report: Record<string, unknown>;
  progress: ProgressFields | null;
}

/**
 * Records a succeeded attempt. Under the job's row lock, and only while this attempt still owns the
 * job, `store` puts the attempt's result under its content-addressed key; then status and artifact
 * row are written in the same transaction. A losing attempt stores nothing, so it can never touch a
 * stored artifact. Returns whether this attempt won.
 */
export async function completeAttempt(db: Db, jobId: string, attempt: number, run: CompletedRun, artifactKey: string, store: () => Promise<void>): Promise<boolean> {
  return db.$transaction(
    async (tx) => {
      const owned = await tx.$queryRaw<{ id: string }[]>`
        SELECT id::text FROM jobs WHERE id = ${jobId}::uuid AND status = 'running' AND attempt = ${attempt} FOR UPDATE`;
      if (owned.length !== 1) return false; // another attempt took it, it was canceled, or the job was deleted: nothing stored
      await lockBlobs(tx, [artifactKey]); // a blob of the same content being released waits, or keeps it (db/blobs.ts)
      await store();
      const p = run.progress;
      await tx.job.update({
        where: { id: jobId },
        data: {
          status: 'succeeded',
          finishedAt: new Date(),
          progressPercent: 100,
          ...(p ? { progressStep: p.step, progressSteps: p.steps, progressStepName: p.stepName, progressMessage: null } : {}),
          ...(p?.search ? { progressSearch: p.search as never } : {}),
          report: run.report as never,
          metrics: metricsSummary(run.report) as never,
          // the final artifact replaces a search's best so far (the worker sweeps its blobs)
          bestStorageKey: null,
          bestSha256: null,
          bestSizeBytes: null,
          bestTrial: null,
          bestAttempt: null,
          bestReport: Prisma.DbNull,
        },
      });
      await tx.artifact.create({ data: { jobId, storageKey: artifactKey, sha256: run.sha256, sizeBytes: BigInt(run.sizeBytes) } });
      return true;
    },
    { timeout: 120_000, maxWait: 10_000 },
  );
}

export interface ProgressFields {
  percent: number;
  step: number;
  steps: number;
  stepName: string;
  message?: string | undefined;
  /** A goal job's search state (SearchProgress), stored as it is. */
  search?: unknown;
}

/** Writes progress and the heartbeat of one attempt; `owned` is false once another attempt (or a cancel) took the job. */
export async function writeProgress(db: Db, jobId: string, attempt: number, p: ProgressFields | null): Promise<{ cancelRequested: boolean; owned: boolean }> {
  const rows = await db.$queryRaw<{ cancel: boolean }[]>`
    UPDATE jobs SET updated_at = now(),
      progress_percent = COALESCE(${p?.percent ?? null}::double precision, progress_percent),
      progress_step = COALESCE(${p?.step ?? null}::integer, progress_step),
      progress_steps = COALESCE(${p?.steps ?? null}::integer, progress_steps),
      progress_step_name = COALESCE(${p?.stepName ?? null}::text, progress_step_name),
      progress_message = CASE WHEN ${p !== null} THEN ${p?.message ?? null}::text ELSE progress_message END,
      progress_search = COALESCE(${p?.search ? JSON.stringify(p.search) : null}::jsonb, progress_search)
    WHERE id = ${jobId}::uuid AND status = 'running' AND attempt = ${attempt}
    RETURNING cancel_requested_at IS NOT NULL AS cancel`;
  return { owned: rows.length === 1, cancelRequested: rows[0]?.cancel ?? false };
}

/** The summary shown in GET /v1/jobs/{id}: the final stage's numbers, without the whole report. */
function metricsSummary(report: any): Record<string, unknown> {
  const f = report?.final ?? {};
  return {
    inputSizeBytes: report?.baseline?.sizeBytes ?? null,
    outputSizeBytes: f.sizeBytes ?? null,
    sizeRatio: f.sizeRatio ?? null,
    paramsRatio: f.paramsRatio ?? null,
    fidelity: f.fidelity ?? null,
    ...(f.task ? { task: f.task } : {}),
    ...(f.latency ? { latency: f.latency } : {}),
    warnings: Array.isArray(report?.warnings) ? report.warnings.length : 0,
    // the texts too (a step calibrated on the evaluation data, a step not faster…), so the job says them
    warningMessages: Array.isArray(report?.warnings) ? (report.warnings as unknown[]).slice(0, 20).map(String) : [],
    durationMs: report?.durationMs ?? null,
    ...(report?.search ? { search: searchSummary(report.search) } : {}),
  };
}

/** A goal job's verdict in one line of fields: which trial won, whether the goal held on the held-out part. */
function searchSummary(search: any): Record<string, unknown> {
  return {
    goalMet: search.best?.goalMet ?? null,
    bestTrial: search.best?.trial ?? null,
    reason: search.best?.reason ?? null,
    trials: Array.isArray(search.trials) ? search.trials.length - 1 : null,
    frontier: Array.isArray(search.frontier) ? search.frontier : [],
    stoppedBy: search.stoppedBy ?? null,
  };
}
