// The one place where jobs change. The API creates, shows and cancels them; workers claim, complete,
// fail and hand them back; the reconciler repairs what Redis or a dead worker left behind. Routes and
// the worker parse and call. Transitions are guarded in SQL (db/jobs.ts): only the attempt that owns
// a job moves it. Per-owner limits are checked under the owner's row lock (db/owners.ts).
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { ServiceError } from '../../errors.js';
import { needsLabels } from '../../pipeline/goal.js';
import { PASSES } from '../../passes/index.js';
import type { Recipe } from '../../pipeline/recipe.js';
import type { CompressionReport } from '../../report/schema.js';
import type { ServiceConfig } from '../config.js';
import type { Db, Job, JobStatus } from '../db/client.js';
import { claimJob, completeAttempt, finalizeCanceled, finishAttempt, nextAttempt, requeueAttempt, writeProgress, type CompletedRun, type ProgressFields } from '../db/jobs.js';
import { assertActiveJobsBelowLimit, storeModel, touchModel, withOwnerLock, type UploadedModel } from '../db/owners.js';
import { ownModel } from '../models/service.js';
import { assertModelUpload } from '../models/check.js';
import { CANCEL_CHANNEL, enqueue, withDeadline, type QueuePayload } from '../queue.js';
import type { FinalStatus, JobMetrics } from '../metrics/registry.js';
import type { Storage, StoredObject } from '../storage/storage.js';
import { decodeCursor, encodeCursor, requestHash } from './encoding.js';

export const DATA_FILES = ['calibration', 'evaluation', 'labels'] as const;
export type DataFile = (typeof DATA_FILES)[number];

export interface CreateJobRequest {
  ownerId: string;
  idempotencyKey: string | null;
  /** Parsed with its defaults filled in (parseRecipe): hashed, stored and run as it is. */
  recipe: Recipe;
  timeoutMs: number | null;
  /** The model uploaded with this request, or one the owner stored before. */
  model: { upload: UploadedModel } | { id: string };
  /** Data files uploaded with this request, with their checked extension (the readers go by it). */
  data: Partial<Record<DataFile, StoredObject & { ext: string }>>;
}

export interface JobServiceDeps {
  db: Db;
  storage: Storage;
  queue: Queue<QueuePayload>;
  /** Tells the workers about cancels. */
  redis: Redis;
  config: ServiceConfig;
  log: (msg: string) => void;
  /** Counts the state changes this service makes (each process counts its own: the API, every worker). */
  metrics?: JobMetrics;
  /** A running job without a heartbeat for this long has no live worker (default: 3 lock times, at least 30 s). */
  staleRunningMs?: number;
}

/** What a worker needs to run a claimed job: storage keys, never paths. */
export interface RunSpec {
  jobId: string;
  modelKey: string;
  modelFilename: string | null;
  /** As stored: parsed and normalized when the job was created. */
  recipe: unknown;
  dataKeys: Partial<Record<DataFile, string>>;
  timeoutMs: number;
}

export type Claim = { kind: 'run'; attempt: number; spec: RunSpec } | { kind: 'skipped' } | { kind: 'gave-up' };

/** 'onnx': one model file; 'tar': the model plus its external data file, bundled. */
export type ArtifactFormat = 'onnx' | 'tar';

export interface AttemptResult extends CompletedRun {
  /** The compressed model, in the worker's temp folder. */
  file: string;
  format: ArtifactFormat;
}

export interface ArtifactDownload {
  /** `final`: the job's result; `best-so-far`: a search's best model until now (running, canceled or failed). */
  kind?: 'final' | 'best-so-far';
  sha256: string;
  sizeBytes: number;
  filename: string;
  read(range?: { start: number; end: number }): Promise<Readable>;
  /** A short-lived URL the store serves the bytes from itself, or null when it has none (the local store). */
  presignedUrl(): Promise<string | null>;
}

/** A stored object as a download: read (whole or a range) or presigned through the store, by key. */
export function storedDownload(storage: Storage, key: string, d: Omit<ArtifactDownload, 'read' | 'presignedUrl'>): ArtifactDownload {
  return { ...d, read: (range) => storage.read(key, range), presignedUrl: () => storage.presignedUrl(key, d.filename) };
}

export const artifactKey = (sha256: string, format: ArtifactFormat) => `artifacts/${sha256}.${format}`;

/** `<model stem>.<what>.onnx`, or `.tar` for a model stored with its external data. */
export function downloadName(modelFilename: string | null, what: string, storageKey: string): string {
  const stem = modelFilename?.replace(/\.(onnx|zip|tar|tar\.gz|tgz)$/i, '') || 'model';
  return `${stem}.${what}.${storageKey.endsWith('.tar') ? 'tar' : 'onnx'}`.replace(/[^\w.\-]+/g, '_');
}

/** A step that requires calibration data cannot run on synthetic inputs: refused before anything is stored. */
function assertStepInputs(r: CreateJobRequest): void {
  if (r.data.calibration || r.data.evaluation) return;
  r.recipe.steps.forEach((step, i) => {
    if (PASSES[step.pass]!.calibration?.(step as never) !== 'required') return;
    throw new ServiceError('invalid_input', `step ${i + 1} (${step.pass}) needs calibration data: upload \`calibration\` (samples keyed by input name), or set allowSynthetic: true in the step to run on synthetic inputs`, {
      details: [{ path: '/calibration', message: `required by /steps/${i}` }],
    });
  });
}

/** A goal is judged on evaluation data (and labels, for task metrics): refused before anything is stored. */
function assertGoalInputs(r: CreateJobRequest, timeoutMs: number): void {
  const goal = r.recipe.goal;
  if (!goal) return;
  if (!r.data.evaluation) {
    throw new ServiceError('invalid_input', 'a goal is judged on data: upload `evaluation` (samples keyed by input name; the search splits them into a search part and a held-out part)', {
      details: [{ path: '/evaluation', message: 'required with a goal' }],
    });
  }
  if (needsLabels(goal.metric) && !r.data.labels) {
    throw new ServiceError('invalid_input', `goal metric '${goal.metric}' is measured against labels: upload \`labels\`, or use a fidelity metric (agreement, sqnr)`, {
      details: [{ path: '/labels', message: `required with goal metric '${goal.metric}'` }],
    });
  }
  // the search keeps its budget within 10%; a job stopped at its time limit keeps only its best so far
  const budgetMs = r.recipe.search!.budget.minutes * 60_000;
  if (budgetMs * 1.1 > timeoutMs) {
    throw new ServiceError('invalid_recipe', `search.budget.minutes (${r.recipe.search!.budget.minutes}) does not fit the job's time limit of ${timeoutMs} ms with its 10% margin: lower the budget or raise timeoutMs`, {
      details: [{ path: '/search/budget/minutes', message: `at most ${Math.floor(timeoutMs / 1.1 / 600) / 100} for a time limit of ${timeoutMs} ms` }],
    });
  }
}

/** A job whose artifacts the retention sweeper deleted: 410, and the report stays. */
export function artifactExpired(job: Job): ServiceError {
  return new ServiceError('artifact_expired', `the job's models were deleted ${job.artifactExpiredAt!.toISOString()} (ARTIFACT_TTL_DAYS after it ended); its report and metrics stay`);
}

export function modelExpired(id: string, at: Date): ServiceError {
  return new ServiceError('model_expired', `model ${id} was not used for UPLOAD_TTL_DAYS and its bytes were deleted (${at.toISOString()}); upload it again (the same bytes revive this model id)`);
}

/** Jobs are shown with their model's file name. */
const WITH_MODEL_NAME = { model: { select: { filename: true } } } as const;

const isActive = (job: Job) => job.status === 'queued' || job.status === 'running';

export class JobService {
  readonly staleMs: number;

  constructor(private readonly deps: JobServiceDeps) {
    this.staleMs = deps.staleRunningMs ?? Math.max(30_000, 3 * deps.config.jobLockMs);
  }

  // ---- the owner's side (the API)

  /** Whether the owner already has a job with this Idempotency-Key: a replay, which no limit counts. */
  async isReplay(ownerId: string, idempotencyKey: string | null): Promise<boolean> {
    return idempotencyKey !== null && (await this.deps.db.job.count({ where: { ownerId, idempotencyKey } })) > 0;
  }

  /** The cheap check before an upload is read; `createJob` checks the limit again, atomically. */
  async admit(ownerId: string, idempotencyKey: string | null): Promise<void> {
    if (!(await this.isReplay(ownerId, idempotencyKey))) await assertActiveJobsBelowLimit(this.deps.db, ownerId, this.deps.config);
  }

  /**
   * Records a job and enqueues it. The idempotency lookup, the active-jobs limit, the model quota,
   * storing the uploads and the insert run in one transaction under the owner's row lock, so they
   * cannot interleave with another request of the same owner. A replay returns the first job.
   */
  async createJob(r: CreateJobRequest): Promise<{ job: Job; replayed: boolean }> {
    const { db, storage, config } = this.deps;
    assertStepInputs(r);
    assertGoalInputs(r, Math.min(r.timeoutMs ?? config.jobTimeoutMs, config.jobTimeoutMs));
    if ('upload' in r.model) await assertModelUpload(storage, r.model.upload);
    const stored = 'id' in r.model ? await ownModel(db, r.ownerId, r.model.id) : null;
    if (stored?.expiredAt) throw modelExpired(stored.id, stored.expiredAt);
    const upload = 'upload' in r.model ? r.model.upload : null;
    const hash = requestHash({
      modelSha256: stored?.sha256 ?? upload!.sha256,
      data: Object.fromEntries(DATA_FILES.flatMap((f) => (r.data[f] ? [[f, r.data[f].sha256]] : []))),
      recipe: r.recipe,
      timeoutMs: r.timeoutMs,
    });
    const dataKeys: Partial<Record<DataFile, string>> = {};
    const created = await withOwnerLock(db, r.ownerId, async (tx) => {
      if (r.idempotencyKey) {
        const prior = await tx.job.findUnique({ where: { ownerId_idempotencyKey: { ownerId: r.ownerId, idempotencyKey: r.idempotencyKey } } });
        if (prior) {
          if (prior.requestHash !== hash) throw new ServiceError('idempotency_mismatch', 'this Idempotency-Key was used with a different request');
          return { job: prior, replayed: true };
        }
      }
      await assertActiveJobsBelowLimit(tx, r.ownerId, config);
      // a job is a use of its model: its bytes are kept UPLOAD_TTL_DAYS from now (and a concurrent expiry waits, then keeps them)
      if (stored && !(await touchModel(tx, stored.id))) throw modelExpired(stored.id, new Date());
      const modelId = stored?.id ?? (await storeModel(tx, storage, config, r.ownerId, upload!)).model.id;
      for (const f of DATA_FILES) {
        const file = r.data[f];
        if (!file) continue;
        dataKeys[f] = `uploads/${randomUUID()}.${file.ext}`;
        await storage.promote(file.key, dataKeys[f]);
      }
      const job = await tx.job.create({
        data: {
          ownerId: r.ownerId,
          modelId,
          recipe: r.recipe as never,
          timeoutMs: r.timeoutMs,
          idempotencyKey: r.idempotencyKey,
          requestHash: hash,
          calibrationKey: dataKeys.calibration ?? null,
          evaluationKey: dataKeys.evaluation ?? null,
          labelsKey: dataKeys.labels ?? null,
        },
      });
      return { job, replayed: false };
    }).catch(async (err) => {
      await Promise.all(Object.values(dataKeys).map((k) => storage.delete(k))); // unique keys: nothing else refers to them
      throw err;
    });
    if (!created.replayed) {
      this.deps.metrics?.created();
      try {
        await withDeadline(enqueue(this.deps.queue, created.job.id), 3000, 'enqueue');
      } catch (err) {
        this.deps.log(`job ${created.job.id}: enqueue failed (${(err as Error).message}); it stays queued until a worker's reconciler enqueues it`);
      }
    }
    return created;
  }

  /** The owner's job; other owners' jobs look exactly like missing ones. */
  async get(ownerId: string, id: string): Promise<Job> {
    const job = await this.deps.db.job.findFirst({ where: { id, ownerId }, include: WITH_MODEL_NAME });
    if (!job) throw new ServiceError('not_found', `no job ${id}`);
    return job;
  }

  /** The owner's jobs changed after `since` (oldest change first), for live views. */
  changedSince(ownerId: string, since: Date, limit = 100): Promise<Job[]> {
    return this.deps.db.job.findMany({ where: { ownerId, updatedAt: { gt: since } }, orderBy: [{ updatedAt: 'asc' }, { id: 'asc' }], take: limit, include: WITH_MODEL_NAME });
  }

  /** The owner's jobs deleted after `since` (kept a day), oldest first. */
  deletedSince(ownerId: string, since: Date, limit = 100): Promise<{ jobId: string; deletedAt: Date }[]> {
    return this.deps.db.jobDeletion.findMany({ where: { ownerId, deletedAt: { gt: since } }, orderBy: [{ deletedAt: 'asc' }, { jobId: 'asc' }], take: limit, select: { jobId: true, deletedAt: true } });
  }

  /** The owner's jobs, newest first; `cursor` is the `nextCursor` of the page before. */
  async list(ownerId: string, q: { limit: number; cursor?: string | undefined; status?: JobStatus | undefined }): Promise<{ items: Job[]; nextCursor: string | null }> {
    const after = q.cursor ? decodeCursor(q.cursor) : null;
    if (q.cursor && !after) throw new ServiceError('invalid_input', 'invalid cursor', { details: [{ path: '/cursor', message: 'not a cursor from this API' }] });
    const rows = await this.deps.db.job.findMany({
      where: {
        ownerId,
        ...(q.status ? { status: q.status } : {}),
        ...(after ? { OR: [{ createdAt: { lt: after.createdAt } }, { createdAt: after.createdAt, id: { lt: after.id } }] } : {}),
      },
      orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      take: q.limit + 1,
      include: WITH_MODEL_NAME,
    });
    const items = rows.slice(0, q.limit);
    const last = items[items.length - 1];
    return { items, nextCursor: rows.length > q.limit && last ? encodeCursor(last) : null };
  }

  /**
   * Cancels the owner's job: a queued one at once, a running one by its worker within seconds (or by
   * a reconciler when its worker is gone). Idempotent; a job that finished otherwise is a conflict.
   */
  async cancel(ownerId: string, id: string): Promise<Job> {
    const { db, queue, redis } = this.deps;
    const job = await this.get(ownerId, id);
    if (job.status === 'canceled') return job;
    if (!isActive(job)) throw new ServiceError('conflict', `the job already ${job.status}`);
    await db.job.updateMany({ where: { id, status: { in: ['queued', 'running'] }, cancelRequestedAt: null }, data: { cancelRequestedAt: new Date() } });
    const now = await db.job.updateMany({ where: { id, status: 'queued' }, data: { status: 'canceled', finishedAt: new Date() } });
    if (now.count === 1) {
      await this.ended('canceled', [id]);
      await withDeadline(queue.remove(id), 3000, 'dequeue').catch(() => {});
    }
    else await redis.publish(CANCEL_CHANNEL, id).catch(() => {}); // the worker also polls the database
    const fresh = await db.job.findUnique({ where: { id } });
    if (!fresh) throw new ServiceError('not_found', `no job ${id}`); // deleted meanwhile
    if (fresh.status !== 'canceled' && !isActive(fresh)) throw new ServiceError('conflict', `the job already ${fresh.status}`);
    return fresh;
  }

  /**
   * The compressed model of the owner's succeeded job; before that (or after a cancel or failure), a
   * search's best model so far when it has one.
   */
  async artifact(ownerId: string, id: string): Promise<ArtifactDownload> {
    const { db, storage } = this.deps;
    const job = await this.get(ownerId, id);
    if (job.artifactExpiredAt) throw artifactExpired(job);
    const model = await db.storedModel.findUnique({ where: { id: job.modelId } });
    if (job.status !== 'succeeded') {
      const key = job.bestStorageKey;
      if (key && job.bestSha256 && job.bestSizeBytes !== null) {
        return storedDownload(storage, key, { kind: 'best-so-far', sha256: job.bestSha256, sizeBytes: Number(job.bestSizeBytes), filename: downloadName(model?.filename ?? null, `best-so-far-trial-${job.bestTrial}`, key) });
      }
      throw new ServiceError('conflict', `the job is ${job.status}; the artifact exists once it succeeded (a goal job's best so far once its first trial is measured)`, isActive(job) ? { retryAfterSec: 2 } : {});
    }
    const artifact = await db.artifact.findUnique({ where: { jobId: id } });
    if (!artifact) throw new ServiceError('internal', 'the job succeeded but its artifact record is missing');
    return storedDownload(storage, artifact.storageKey, {
      kind: 'final',
      sha256: artifact.sha256,
      sizeBytes: Number(artifact.sizeBytes),
      // a model written with external data is a .tar of the .onnx and its data file
      filename: downloadName(model?.filename ?? null, 'compressed', artifact.storageKey),
    });
  }

  /** The report of a succeeded job; with `bestSoFar`, before that a search's report as it stood at its best so far. */
  async report(ownerId: string, id: string, opts: { bestSoFar?: boolean } = {}): Promise<{ kind: 'final' | 'best-so-far'; report: CompressionReport }> {
    const job = await this.get(ownerId, id);
    if (job.report) return { kind: 'final', report: job.report as unknown as CompressionReport };
    if (opts.bestSoFar && job.bestReport) return { kind: 'best-so-far', report: job.bestReport as unknown as CompressionReport };
    throw new ServiceError('conflict', `the job is ${job.status}; the report exists once it succeeded`);
  }

  // ---- the worker's side: every call names the attempt, and only the attempt that owns the job moves it

  /**
   * Claims a delivered job for a new attempt: a queued one, or a running one whose worker is gone. A
   * job that cannot be claimed gets its pending cancel finished when no live worker holds it; one
   * started MAX_JOB_STARTS times already is failed.
   */
  async claim(jobId: string, workerId: string): Promise<Claim> {
    const { db, config } = this.deps;
    const claimed = await claimJob(db, jobId, workerId, this.staleMs);
    if (!claimed) {
      // finished, unknown, running elsewhere with a live heartbeat, or canceled while no worker held it
      await this.ended('canceled', await finalizeCanceled(db, this.staleMs, jobId));
      return { kind: 'skipped' };
    }
    if (claimed.attempt > config.maxJobStarts) {
      const failed = await finishAttempt(db, jobId, claimed.attempt, 'failed', {
        errorCode: 'internal',
        errorMessage: `the job was started ${claimed.attempt - 1} times and never finished (its worker died or was stopped each time); giving up`,
      });
      if (failed) await this.ended('failed', [jobId], 'internal');
      return { kind: 'gave-up' };
    }
    const job = await db.job.findUnique({ where: { id: jobId }, include: { model: true } });
    if (!job) return { kind: 'skipped' }; // deleted since it was claimed
    const dataKeys: Partial<Record<DataFile, string>> = {};
    if (job.calibrationKey) dataKeys.calibration = job.calibrationKey;
    if (job.evaluationKey) dataKeys.evaluation = job.evaluationKey;
    if (job.labelsKey) dataKeys.labels = job.labelsKey;
    return {
      kind: 'run',
      attempt: claimed.attempt,
      spec: {
        jobId,
        modelKey: job.model.storageKey,
        modelFilename: job.model.filename,
        recipe: job.recipe,
        dataKeys,
        timeoutMs: Math.min(job.timeoutMs ?? config.jobTimeoutMs, config.jobTimeoutMs),
      },
    };
  }

  /** An attempt's heartbeat and latest progress; answers whether it still owns the job and whether a cancel came. */
  heartbeat(jobId: string, attempt: number, progress: ProgressFields | null): Promise<{ owned: boolean; cancelRequested: boolean }> {
    return writeProgress(this.deps.db, jobId, attempt, progress);
  }

  /** Records a succeeded attempt; its file is stored (content-addressed) only if it still owns the job. Returns whether it did. */
  async complete(jobId: string, attempt: number, result: AttemptResult): Promise<boolean> {
    const key = artifactKey(result.sha256, result.format);
    const { file, format: _format, ...run } = result;
    const won = await completeAttempt(this.deps.db, jobId, attempt, run, key, () => this.deps.storage.putFile(key, file));
    if (won) await this.ended('succeeded', [jobId]);
    return won;
  }

  async fail(jobId: string, attempt: number, error: { code: string; message: string }): Promise<boolean> {
    const failed = await finishAttempt(this.deps.db, jobId, attempt, 'failed', { errorCode: error.code, errorMessage: error.message });
    if (failed) await this.ended('failed', [jobId], error.code);
    return failed;
  }

  /** The attempt stopped on a cancel request. */
  async finishCanceled(jobId: string, attempt: number): Promise<boolean> {
    const canceled = await finishAttempt(this.deps.db, jobId, attempt, 'canceled');
    if (canceled) await this.ended('canceled', [jobId]);
    return canceled;
  }

  /** The next attempt of a crashed run, in place; null when this attempt lost the job or a cancel came. */
  retry(jobId: string, attempt: number, workerId: string): Promise<number | null> {
    return nextAttempt(this.deps.db, jobId, attempt, workerId);
  }

  /** Gives a running attempt back to the queue (its worker shuts down); a job whose cancel was requested is canceled instead. */
  async handBack(jobId: string, attempt: number): Promise<void> {
    if ((await requeueAttempt(this.deps.db, jobId, { attempt })) === 'canceled') await this.ended('canceled', [jobId]);
  }

  /**
   * Repairs what no worker will: cancels requested while no worker held the job, queued jobs that
   * Redis lost (a restart, FLUSHALL) and running jobs whose worker died. `isLocal`: a job the calling
   * worker runs right now.
   */
  async reconcile(isLocal: (jobId: string) => boolean): Promise<void> {
    const { db, queue, log } = this.deps;
    const canceled = await finalizeCanceled(db, this.staleMs);
    await this.ended('canceled', canceled);
    for (const id of canceled) log(`reconcile: job ${id} canceled (its cancel was requested while no worker held it)`);
    const queued = await db.job.findMany({ where: { status: 'queued', createdAt: { lt: new Date(Date.now() - 5000) } }, select: { id: true }, take: 500 });
    for (const { id } of queued) {
      const bj = await queue.getJob(id);
      const state = bj ? await bj.getState() : 'missing';
      if (state !== 'missing' && state !== 'completed' && state !== 'failed') continue;
      await bj?.remove().catch(() => {});
      await enqueue(queue, id);
      log(`reconcile: re-enqueued job ${id} (${state === 'missing' ? 'missing from Redis' : `queue said ${state}`})`);
    }
    const stale = await db.job.findMany({ where: { status: 'running', updatedAt: { lt: new Date(Date.now() - this.staleMs) } }, select: { id: true }, take: 500 });
    for (const { id } of stale) {
      if (isLocal(id)) continue;
      const bj = await queue.getJob(id);
      const state = bj ? await bj.getState() : 'missing';
      if (state === 'active' || state === 'waiting' || state === 'delayed') continue; // BullMQ's stalled check owns it
      const to = await requeueAttempt(db, id, { staleMs: this.staleMs });
      if (to === 'queued') {
        await bj?.remove().catch(() => {});
        await enqueue(queue, id);
        log(`reconcile: job ${id} was running with no live worker (queue: ${state}); re-queued`);
      } else if (to === 'canceled') await this.ended('canceled', [id]);
    }
  }

  /**
   * Counts jobs this call just moved to a final status, and their run time (first start to end; a job
   * canceled before it started has none). Metrics never fail a state change.
   */
  private async ended(status: FinalStatus, ids: string[], code?: string): Promise<void> {
    const metrics = this.deps.metrics;
    if (!metrics || ids.length === 0) return;
    for (const _ of ids) metrics.finished(status, code);
    try {
      const rows = await this.deps.db.job.findMany({ where: { id: { in: ids } }, select: { startedAt: true, finishedAt: true } });
      for (const r of rows) if (r.startedAt && r.finishedAt) metrics.duration(status, (r.finishedAt.getTime() - r.startedAt.getTime()) / 1000);
    } catch (err) {
      this.deps.log(`metrics: job durations not read (${(err as Error).message})`);
    }
  }
}
