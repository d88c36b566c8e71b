// Job state changes, all guarded in SQL (`UPDATE … WHERE status IN (…)`), so at-least-once delivery,
// concurrent cancels and stale workers can never move a finished job.
import type { Db, Job } from './client.js';

export type JobStatusName = 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled';
export const ACTIVE: JobStatusName[] = ['queued', 'running'];

/** Claims a job for a run: queued (or running, when a stalled run is re-delivered) → running, attempt+1. */
export async function claimJob(db: Db, jobId: string, workerId: string): Promise<{ attempt: number } | null> {
  const rows = await db.$queryRaw<{ attempt: number }[]>`
    UPDATE jobs SET status = 'running', attempt = attempt + 1, started_at = COALESCE(started_at, now()),
      worker_id = ${workerId}, updated_at = now()
    WHERE id = ${jobId}::uuid AND status IN ('queued', 'running') AND cancel_requested_at IS NULL
    RETURNING attempt`;
  return rows[0] ?? null;
}

export async function finishJob(
  db: Db,
  jobId: string,
  to: 'failed' | 'canceled' | 'succeeded',
  from: JobStatusName[],
  fields: { errorCode?: string; errorMessage?: string } = {},
): Promise<boolean> {
  const res = await db.job.updateMany({
    where: { id: jobId, status: { in: from } },
    data: {
      status: to,
      finishedAt: new Date(),
      ...(fields.errorCode ? { errorCode: fields.errorCode, errorMessage: fields.errorMessage ?? null } : {}),
    },
  });
  return res.count === 1;
}

export async function requeueJob(db: Db, jobId: string): Promise<boolean> {
  const res = await db.job.updateMany({ where: { id: jobId, status: 'running' }, data: { status: 'queued', workerId: null } });
  return res.count === 1;
}

export interface ProgressFields {
  percent: number;
  step: number;
  steps: number;
  stepName: string;
  message?: string | undefined;
}

/** Writes progress (and the heartbeat); returns whether a cancel was requested. */
export async function writeProgress(db: Db, jobId: string, p: ProgressFields | null): Promise<{ cancelRequested: boolean; running: boolean }> {
  const rows = await db.$queryRaw<{ cancel: boolean }[]>`
    UPDATE jobs SET updated_at = now(),
      progress_percent = COALESCE(${p?.percent ?? null}::double precision, progress_percent),
      progress_step = COALESCE(${p?.step ?? null}::integer, progress_step),
      progress_steps = COALESCE(${p?.steps ?? null}::integer, progress_steps),
      progress_step_name = COALESCE(${p?.stepName ?? null}::text, progress_step_name),
      progress_message = CASE WHEN ${p !== null} THEN ${p?.message ?? null}::text ELSE progress_message END
    WHERE id = ${jobId}::uuid AND status = 'running'
    RETURNING cancel_requested_at IS NOT NULL AS cancel`;
  return { running: rows.length === 1, cancelRequested: rows[0]?.cancel ?? false };
}

/** The summary shown in GET /v1/jobs/{id}: the final stage's numbers, without the whole report. */
export function metricsSummary(report: any): Record<string, unknown> {
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
    durationMs: report?.durationMs ?? null,
  };
}

export function jobView(job: Job, base = '/v1/jobs') {
  const self = `${base}/${job.id}`;
  return {
    id: job.id,
    status: job.status as JobStatusName,
    modelId: job.modelId,
    progress: {
      percent: job.progressPercent,
      step: job.progressStep,
      steps: job.progressSteps,
      stepName: job.progressStepName,
      message: job.progressMessage,
    },
    attempt: job.attempt,
    createdAt: job.createdAt.toISOString(),
    startedAt: job.startedAt?.toISOString() ?? null,
    finishedAt: job.finishedAt?.toISOString() ?? null,
    cancelRequested: job.cancelRequestedAt !== null,
    error: job.errorCode ? { code: job.errorCode, message: job.errorMessage ?? '' } : null,
    metrics: (job.metrics as Record<string, unknown> | null) ?? null,
    links: {
      self,
      cancel: `${self}/cancel`,
      artifact: `${self}/artifact`,
      report: `${self}/report`,
      reportHtml: `${self}/report.html`,
    },
  };
}
