// A goal job's search, as the service keeps it: every trial as it finishes, the best model so far
// (stored per attempt, so it can be downloaded at every moment and after a cancel) and the frontier
// models (content-addressed, like final artifacts). The owner lists trials and downloads frontier
// models; the worker records what its job process reports. Writes are owned by one attempt (db/search.ts).
import { ServiceError } from '../../errors.js';
import type { SearchTrialReport } from '../../report/search.js';
import { latencyOf } from '../../search/state.js';
import type { Db } from '../db/client.js';
import { insertTrial, recordBest, recordFrontierModel, type TrialFields } from '../db/search.js';
import type { Storage } from '../storage/storage.js';
import { decodeTrialCursor, encodeTrialCursor } from './encoding.js';
import { artifactExpired, artifactKey, downloadName, storedDownload, type ArtifactDownload, type ArtifactFormat, type JobService } from './service.js';

export interface TrialServiceDeps {
  db: Db;
  storage: Storage;
  jobs: JobService;
  log: (msg: string) => void;
}

/** A model file the job process wrote into the attempt's folder. */
export interface WrittenModel {
  path: string;
  sha256: string;
  sizeBytes: number;
  format: ArtifactFormat;
}

export interface TrialView {
  attempt: number;
  n: number;
  steps: unknown;
  status: string;
  reason: string | null;
  value: number | null;
  loss: number | null;
  latencyRatio: number | null;
  sizeRatio: number | null;
  built: number;
  cached: number;
  durationMs: number;
  /** The shipped recipe it ran as written (recipes/<name>.json), or null for the strategy's own candidates. */
  template: string | null;
  frontier: boolean;
  /** The stored model (frontier trials only). */
  artifact: { sha256: string; sizeBytes: number } | null;
}

/** Best-so-far blobs live under the job's own prefix, one per attempt and content: swept when the job ends. */
export const bestPrefix = (jobId: string) => `best/${jobId}`;
const bestKey = (jobId: string, attempt: number, m: WrittenModel) => `${bestPrefix(jobId)}/${attempt}-${m.sha256}.${m.format}`;

export class TrialService {
  constructor(private readonly deps: TrialServiceDeps) {}

  // ---- the owner's side

  /** The trials of the job's latest attempt, in order (a cursor stays on the attempt it started on). */
  async list(ownerId: string, jobId: string, q: { limit: number; cursor?: string | undefined }): Promise<{ items: TrialView[]; nextCursor: string | null }> {
    const job = await this.deps.jobs.get(ownerId, jobId);
    const after = q.cursor ? decodeTrialCursor(q.cursor) : null;
    if (q.cursor && !after) throw new ServiceError('invalid_input', 'invalid cursor', { details: [{ path: '/cursor', message: 'not a trials cursor from this API' }] });
    const attempt = after?.attempt ?? job.attempt;
    const rows = await this.deps.db.jobTrial.findMany({
      where: { jobId, attempt, ...(after ? { n: { gt: after.n } } : {}) },
      orderBy: { n: 'asc' },
      take: q.limit + 1,
    });
    const items = rows.slice(0, q.limit).map(trialView);
    const last = items[items.length - 1];
    return { items, nextCursor: rows.length > q.limit && last ? encodeTrialCursor(last) : null };
  }

  /** A frontier trial's model (of the job's latest attempt); other trials' models are not kept. */
  async artifact(ownerId: string, jobId: string, n: number): Promise<ArtifactDownload> {
    const job = await this.deps.jobs.get(ownerId, jobId);
    if (job.artifactExpiredAt) throw artifactExpired(job);
    const trial = await this.deps.db.jobTrial.findUnique({ where: { jobId_attempt_n: { jobId, attempt: job.attempt, n } } });
    if (!trial) throw new ServiceError('not_found', `job ${jobId} has no trial ${n}${job.status === 'queued' || job.status === 'running' ? ' (yet)' : ''}`);
    if (!trial.artifactKey || !trial.artifactSha256 || trial.artifactSizeBytes === null) {
      const frontier = await this.deps.db.jobTrial.findMany({ where: { jobId, attempt: job.attempt, frontier: true }, select: { n: true }, orderBy: { n: 'asc' } });
      const which = frontier.length ? `the frontier is trial${frontier.length > 1 ? 's' : ''} ${frontier.map((t) => t.n).join(', ')}` : 'the frontier is stored when the search ends';
      throw new ServiceError('not_found', `trial ${n} is not on the search's frontier, and only frontier models are kept; ${which}`);
    }
    const model = await this.deps.db.storedModel.findUnique({ where: { id: job.modelId } });
    const key = trial.artifactKey;
    return storedDownload(this.deps.storage, key, {
      sha256: trial.artifactSha256,
      sizeBytes: Number(trial.artifactSizeBytes),
      filename: downloadName(model?.filename ?? null, `trial-${n}`, key),
    });
  }

  // ---- the worker's side: each call names the attempt; only the attempt that owns the job records

  async recordTrial(jobId: string, attempt: number, t: SearchTrialReport): Promise<void> {
    await insertTrial(this.deps.db, jobId, attempt, {
      n: t.n,
      steps: t.steps,
      status: t.status,
      reason: t.reason ?? null,
      metricValue: finite(t.value),
      loss: finite(t.loss),
      latencyRatio: finite(latencyOf(t)),
      sizeRatio: finite(t.sizeRatio),
      built: t.built,
      cached: t.cached,
      durationMs: t.durationMs,
      template: t.template ?? null,
    });
  }

  /** Stores a new best so far and points the job at it; the one it replaced stays until the job ends (a download may be reading it). */
  async recordBest(jobId: string, attempt: number, trial: number, file: WrittenModel, report: unknown): Promise<boolean> {
    const key = bestKey(jobId, attempt, file);
    const replaced = await recordBest(this.deps.db, jobId, attempt, { key, sha256: file.sha256, sizeBytes: file.sizeBytes, trial, report }, () => this.deps.storage.putFile(key, file.path));
    return replaced !== undefined;
  }

  async recordFrontier(jobId: string, attempt: number, n: number, file: WrittenModel): Promise<boolean> {
    const key = artifactKey(file.sha256, file.format);
    return recordFrontierModel(this.deps.db, jobId, attempt, n, { key, sha256: file.sha256, sizeBytes: file.sizeBytes }, () => this.deps.storage.putFile(key, file.path));
  }

  /** Once the job has ended: deletes every best-so-far blob but the one it points at (none once it succeeded). */
  async sweepBest(jobId: string): Promise<void> {
    const { db, storage, log } = this.deps;
    const job = await db.job.findUnique({ where: { id: jobId }, select: { status: true, bestStorageKey: true } });
    if (!job || job.status === 'queued' || job.status === 'running') return; // another attempt may be writing
    for (const { key } of await storage.list(bestPrefix(jobId))) {
      if (key === job.bestStorageKey) continue;
      await storage.delete(key).catch((err: Error) => log(`job ${jobId}: could not delete ${key} (${err.message})`));
    }
  }
}

const finite = (x: number | undefined): number | null => (x !== undefined && Number.isFinite(x) ? x : null);

function trialView(t: TrialFields & { attempt: number; frontier: boolean; artifactSha256: string | null; artifactSizeBytes: bigint | null }): TrialView {
  return {
    attempt: t.attempt,
    n: t.n,
    steps: t.steps,
    status: t.status,
    reason: t.reason,
    value: t.metricValue,
    loss: t.loss,
    latencyRatio: t.latencyRatio,
    sizeRatio: t.sizeRatio,
    built: t.built,
    cached: t.cached,
    durationMs: t.durationMs,
    template: t.template,
    frontier: t.frontier,
    artifact: t.artifactSha256 && t.artifactSizeBytes !== null ? { sha256: t.artifactSha256, sizeBytes: Number(t.artifactSizeBytes) } : null,
  };
}
