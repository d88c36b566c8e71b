// Deleting jobs and models on the owner's request, and the sweeper that expires what outlived
// ARTIFACT_TTL_DAYS and UPLOAD_TTL_DAYS. Rows change first, in one transaction that records the keys
// they let go of (db/blobs.ts); the bytes go right after, each only when no live row names it, and
// whatever the store refused is retried by the next sweep. Safe in several processes at once: rows are
// taken with FOR UPDATE (SKIP LOCKED for the sweeper), marks are conditional, blob deletes hold the key's lock.
import { ServiceError } from '../../errors.js';
import { jobBlobKeys, recordOrphans, releaseBlobs, type ReleaseResult } from '../db/blobs.js';
import type { Db, Job } from '../db/client.js';
import { withOwnerLock, type Tx } from '../db/owners.js';
import type { ServiceConfig } from '../config.js';
import type { JobService } from '../jobs/service.js';
import { bestPrefix } from '../jobs/trials.js';
import { ownModel } from '../models/service.js';
import type { Storage } from '../storage/storage.js';

export interface RetentionDeps {
  db: Db;
  storage: Storage;
  jobs: JobService;
  config: ServiceConfig;
  log: (msg: string) => void;
}

export interface SweepResult {
  /** Jobs whose models (artifact, best so far, frontier) expired in this sweep. */
  artifactJobs: string[];
  /** Jobs whose data files (calibration, evaluation, labels) expired. */
  dataJobs: string[];
  /** Models whose bytes expired. */
  models: string[];
  blobs: ReleaseResult;
}

const DAY_MS = 24 * 3600_000;
const BATCH = 100;
const isActive = (status: string) => status === 'queued' || status === 'running';

/** When the sweeper will delete a finished job's models (null: not finished, kept, or gone already). */
export function artifactExpiresAt(job: Pick<Job, 'finishedAt' | 'artifactExpiredAt'>, config: Pick<ServiceConfig, 'artifactTtlDays'>): Date | null {
  if (!config.artifactTtlDays || !job.finishedAt || job.artifactExpiredAt) return null;
  return new Date(job.finishedAt.getTime() + config.artifactTtlDays * DAY_MS);
}

/** When the sweeper will delete a model's bytes unless it is used before (null: kept, or gone already). */
export function modelExpiresAt(model: { lastUsedAt: Date; expiredAt: Date | null }, config: Pick<ServiceConfig, 'uploadTtlDays'>): Date | null {
  if (!config.uploadTtlDays || model.expiredAt) return null;
  return new Date(model.lastUsedAt.getTime() + config.uploadTtlDays * DAY_MS);
}

export class RetentionService {
  constructor(private readonly deps: RetentionDeps) {}

  /**
   * Deletes the owner's job: its rows (trials, artifact record) and the bytes only it names (its
   * models and data files; content shared with another row stays). A queued or running job is
   * canceled first; its worker then finds the row gone and stores nothing more (every store of an
   * attempt happens under the job's row lock, after checking the attempt still owns the job).
   */
  async deleteJob(ownerId: string, id: string): Promise<void> {
    const { db, jobs } = this.deps;
    const job = await jobs.get(ownerId, id);
    if (isActive(job.status)) {
      await jobs.cancel(ownerId, id).catch((err) => {
        if (!(err instanceof ServiceError && err.code === 'conflict')) throw err; // it finished meanwhile: deleted all the same
      });
    }
    const keys = await db.$transaction(
      async (tx) => {
        const locked = await tx.$queryRaw<{ id: string }[]>`SELECT id::text FROM jobs WHERE id = ${id}::uuid AND owner_id = ${ownerId}::uuid FOR UPDATE`;
        if (locked.length === 0) return null; // deleted by a concurrent request
        const keys = await jobBlobKeys(tx, [id], ['job-data', 'job-artifact']);
        await tx.job.delete({ where: { id } });
        await tx.jobDeletion.create({ data: { jobId: id, ownerId } });
        return recordOrphans(tx, keys);
      },
      { timeout: 60_000, maxWait: 10_000 },
    );
    if (!keys) throw new ServiceError('not_found', `no job ${id}`);
    await this.release([id], keys);
  }

  /**
   * Deletes the owner's model and its bytes (unless another owner's model has the same). Refused
   * (409 model_in_use) while a queued or running job uses it; finished jobs on it are refused too,
   * unless `cascadeJobs`, which deletes them with it (their results included): a job's record never
   * points at a model that is gone.
   */
  async deleteModel(ownerId: string, id: string, opts: { cascadeJobs?: boolean } = {}): Promise<{ deletedJobs: string[] }> {
    const { db } = this.deps;
    await ownModel(db, ownerId, id);
    // under the owner's lock: no job of this owner is created on the model meanwhile (createJob holds it too)
    const done = await withOwnerLock(db, ownerId, async (tx) => {
      const model = await tx.storedModel.findFirst({ where: { id, ownerId } });
      if (!model) return null;
      const users = await tx.job.findMany({ where: { modelId: id }, select: { id: true, status: true }, orderBy: [{ createdAt: 'desc' }, { id: 'desc' }] });
      const active = users.filter((j) => isActive(j.status));
      if (active.length > 0) {
        throw new ServiceError('model_in_use', `${active.length} unfinished job${active.length > 1 ? 's use' : ' uses'} this model (${active.slice(0, 3).map((j) => j.id).join(', ')}${active.length > 3 ? ', …' : ''}): cancel or wait for ${active.length > 1 ? 'them' : 'it'}, then delete the model`, {
          details: active.slice(0, 100).map((j) => ({ path: `/jobs/${j.id}`, message: j.status })),
        });
      }
      if (users.length > 0 && !opts.cascadeJobs) {
        throw new ServiceError('model_in_use', `${users.length} finished job${users.length > 1 ? 's refer' : ' refers'} to this model: delete ${users.length > 1 ? 'them' : 'it'} first, or DELETE /v1/models/${id}?cascade=jobs to delete ${users.length > 1 ? 'them' : 'it'} (and ${users.length > 1 ? 'their' : 'its'} results) with the model`, {
          details: users.slice(0, 100).map((j) => ({ path: `/jobs/${j.id}`, message: j.status })),
        });
      }
      const jobIds = users.map((j) => j.id);
      if (jobIds.length) await tx.$queryRaw`SELECT id::text FROM jobs WHERE id = ANY(${jobIds}::uuid[]) FOR UPDATE`;
      const keys = [model.storageKey, ...(await jobBlobKeys(tx, jobIds, ['job-data', 'job-artifact']))];
      await tx.job.deleteMany({ where: { id: { in: jobIds } } });
      await tx.jobDeletion.createMany({ data: jobIds.map((jobId) => ({ jobId, ownerId })) });
      await tx.storedModel.delete({ where: { id } });
      return { jobIds, keys: await recordOrphans(tx, keys) };
    });
    if (!done) throw new ServiceError('not_found', `no model ${id}`);
    await this.release(done.jobIds, done.keys);
    return { deletedJobs: done.jobIds };
  }

  /**
   * One sweep at `now`: marks what expired and deletes its bytes, then retries the deletes a store
   * refused before. Every worker runs it periodically; concurrent sweeps share the work.
   */
  async sweep(now: Date = new Date()): Promise<SweepResult> {
    const { config } = this.deps;
    const out: SweepResult = { artifactJobs: [], dataJobs: [], models: [], blobs: { deleted: [], kept: [], failed: [] } };
    const keys: string[] = [];
    if (config.artifactTtlDays > 0) {
      const cutoff = new Date(now.getTime() - config.artifactTtlDays * DAY_MS);
      for (;;) {
        const batch = await this.expireJobs(now, 'job-artifact', (tx) => tx.$queryRaw<{ id: string }[]>`
          SELECT id::text FROM jobs j
          WHERE status IN ('succeeded', 'failed', 'canceled') AND finished_at < ${cutoff} AND artifact_expired_at IS NULL
            AND (best_storage_key IS NOT NULL OR EXISTS (SELECT 1 FROM artifacts a WHERE a.job_id = j.id)
                 OR EXISTS (SELECT 1 FROM job_trials t WHERE t.job_id = j.id AND t.artifact_key IS NOT NULL))
          ORDER BY finished_at LIMIT ${BATCH} FOR UPDATE SKIP LOCKED`);
        out.artifactJobs.push(...batch.ids);
        keys.push(...batch.keys);
        for (const id of batch.ids) keys.push(...(await this.strayBest(id)));
        if (batch.ids.length < BATCH) break;
      }
    }
    if (config.uploadTtlDays > 0) {
      const cutoff = new Date(now.getTime() - config.uploadTtlDays * DAY_MS);
      for (;;) {
        const batch = await this.expireJobs(now, 'job-data', (tx) => tx.$queryRaw<{ id: string }[]>`
          SELECT id::text FROM jobs
          WHERE status IN ('succeeded', 'failed', 'canceled') AND created_at < ${cutoff} AND data_expired_at IS NULL
            AND (calibration_key IS NOT NULL OR evaluation_key IS NOT NULL OR labels_key IS NOT NULL)
          ORDER BY created_at LIMIT ${BATCH} FOR UPDATE SKIP LOCKED`);
        out.dataJobs.push(...batch.ids);
        keys.push(...batch.keys);
        if (batch.ids.length < BATCH) break;
      }
      for (;;) {
        // a model a job is being created on is locked (createJob touches it) and skipped; one an unfinished job uses is kept
        const rows = await this.deps.db.$transaction(async (tx) => {
          const rows = await tx.$queryRaw<{ id: string; storage_key: string }[]>`
            UPDATE models SET expired_at = ${now} WHERE id IN (
              SELECT id FROM models m WHERE expired_at IS NULL AND last_used_at < ${cutoff}
                AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.model_id = m.id AND j.status IN ('queued', 'running'))
              ORDER BY last_used_at LIMIT ${BATCH} FOR UPDATE SKIP LOCKED)
            RETURNING id::text, storage_key`;
          await recordOrphans(tx, rows.map((r) => r.storage_key));
          return rows;
        });
        out.models.push(...rows.map((r) => r.id));
        keys.push(...rows.map((r) => r.storage_key));
        if (rows.length < BATCH) break;
      }
    }
    // tombstones of deleted jobs: live views have had their day to see them
    await this.deps.db.jobDeletion.deleteMany({ where: { deletedAt: { lt: new Date(now.getTime() - DAY_MS) } } });
    // this sweep's keys, then whatever earlier deletes left (a store that was down, a process that died)
    const mine = await releaseBlobs(this.deps.db, this.deps.storage, keys, this.deps.log);
    const left = await releaseBlobs(this.deps.db, this.deps.storage, undefined, this.deps.log);
    for (const k of ['deleted', 'kept', 'failed'] as const) out.blobs[k] = [...mine[k], ...left[k]];
    return out;
  }

  /** Marks a batch of jobs' models or data files expired, recording their keys; returns both. */
  private expireJobs(now: Date, kind: 'job-artifact' | 'job-data', select: (tx: Tx) => Promise<{ id: string }[]>): Promise<{ ids: string[]; keys: string[] }> {
    return this.deps.db.$transaction(
      async (tx) => {
        const ids = (await select(tx)).map((r) => r.id);
        if (ids.length === 0) return { ids, keys: [] };
        const keys = await jobBlobKeys(tx, ids, [kind]);
        // updated_at moves too: live views (the events stream) show the mark
        const mark = kind === 'job-artifact' ? { artifactExpiredAt: now } : { dataExpiredAt: now };
        await tx.job.updateMany({ where: { id: { in: ids } }, data: { ...mark, updatedAt: new Date() } });
        return { ids, keys: await recordOrphans(tx, keys) };
      },
      { timeout: 60_000, maxWait: 10_000 },
    );
  }

  /** Best-so-far blobs of earlier attempts (the job names only its latest): the job's own prefix. */
  private async strayBest(jobId: string): Promise<string[]> {
    const keys = (await this.deps.storage.list(bestPrefix(jobId)).catch(() => [])).map((o) => o.key);
    return recordOrphans(this.deps.db, keys);
  }

  /** Deletes the bytes the jobs' rows let go of (`keys`, recorded as orphans) and their stray best-so-far blobs. */
  private async release(jobIds: string[], keys: string[]): Promise<void> {
    const stray: string[] = [];
    for (const id of jobIds) stray.push(...(await this.strayBest(id)));
    const r = await releaseBlobs(this.deps.db, this.deps.storage, [...keys, ...stray], this.deps.log);
    if (r.failed.length) this.deps.log(`retention: ${r.failed.length} blob(s) left for the sweeper to delete`);
  }
}
