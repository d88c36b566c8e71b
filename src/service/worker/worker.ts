// A worker process: takes job ids from the BullMQ queue and runs each job's pipeline in a child
// process, with throttled progress writes, cancel (Redis pub/sub + database poll), a time limit, a
// memory limit, crash retries, stalled-job recovery and a reconciler for jobs Redis forgot.
//
// Delivery is at least once, so every state change is owned by one attempt (jobs.attempt): a run
// writes its result into its own temp folder and only the attempt that still owns the job may store
// it. Job state changes go through the job service; this file runs processes and decides outcomes.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { dirname, resolve } from 'node:path';
import { Worker, type Job as BullJob } from 'bullmq';
import type { ServiceConfig } from '../config.js';
import { createDb, type DbHandle } from '../db/client.js';
import type { ProgressFields } from '../db/jobs.js';
import { JobService, type ArtifactFormat, type RunSpec } from '../jobs/service.js';
import { TrialService, type WrittenModel } from '../jobs/trials.js';
import { RetentionService } from '../retention/service.js';
import { CANCEL_CHANNEL, createQueue, ensureNoEviction, redisConnection, type QueuePayload } from '../queue.js';
import { createStorage } from '../storage/create.js';
import { withLocalCopies } from '../storage/storage.js';
import { ModelpressError } from '../../errors.js';
import { serveMetrics, type MetricsServer } from '../metrics/endpoint.js';
import { JobMetrics, newRegistry, storeInfo, workerRunningJobs } from '../metrics/registry.js';
import { startPresence } from '../presence.js';
import { classifyCrash, memoryLimitEnforced, startJobChild, type CrashKind } from './child.js';
import type { ChildMessage, RunMessage } from './protocol.js';
import { attemptDir, sweepAttemptDirs, type AttemptDir } from './temp.js';

const PROGRESS_WRITE_MS = 1000;
const CRASH_RETRY_DELAY_MS = 1000;

export interface WorkerOptions {
  log?: (msg: string) => void;
  /** How often to look for jobs Redis lost or a dead worker left behind. */
  reconcileIntervalMs?: number;
  /** A running job without a heartbeat for this long has no live worker: it may be claimed again. */
  staleRunningMs?: number;
  /** How often to sweep what outlived ARTIFACT_TTL_DAYS / UPLOAD_TTL_DAYS, and retry blob deletes a store refused (default 10 min). */
  retentionIntervalMs?: number;
}

export interface WorkerHandle {
  id: string;
  /** The port of the worker's metrics server (METRICS_PORT; 0 there picks a free one), or null without one. */
  metricsPort: number | null;
  close(): Promise<void>;
}

type Outcome =
  | { kind: 'done'; sha256: string; sizeBytes: number; format: ArtifactFormat; report: Record<string, unknown> }
  | { kind: 'error'; code: string; message: string }
  | { kind: 'canceled' }
  /** another attempt owns the job now (this one's heartbeat went stale and it was claimed again) */
  | { kind: 'superseded' }
  | { kind: 'timeout'; ms: number }
  | { kind: 'crashed'; crash: CrashKind; detail: string }
  /** the store did not hand over the job's inputs (down, or failing): retried like a crash, then `unavailable` */
  | { kind: 'unfetched'; detail: string }
  | { kind: 'shutdown' };

interface AttemptEnd {
  outcome: Outcome;
  progress: ProgressFields | null;
}

interface ActiveRun {
  stop(outcome: Outcome): void;
}

export async function startWorker(config: ServiceConfig, opts: WorkerOptions = {}): Promise<WorkerHandle> {
  const log = opts.log ?? ((m: string) => process.stderr.write(`${new Date().toISOString()} worker: ${m}\n`));
  const workerId = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const dbh: DbHandle = createDb(config.databaseUrl, log);
  const storage = await createStorage(config);
  const bullConnection = redisConnection(config.redisUrl, 'blocking');
  const subscriber = redisConnection(config.redisUrl, 'blocking');
  const queueConnection = redisConnection(config.redisUrl, 'blocking');
  const queue = createQueue(config, queueConnection);
  await ensureNoEviction(queueConnection, log);
  // a store that does not answer yet does not stop the worker from starting; the log says so
  await storage.check().catch((err: Error) => log(`WARNING: the store ${storage.describe()} is not reachable yet (${err.name}: ${err.message})`));
  // the outcomes of the jobs this worker runs are counted here, where they happen, and served on METRICS_PORT
  const registry = newRegistry();
  const metrics = new JobMetrics(registry);
  const jobs = new JobService({ db: dbh.db, storage, queue, redis: queueConnection, config, log, metrics, ...(opts.staleRunningMs ? { staleRunningMs: opts.staleRunningMs } : {}) });
  const trials = new TrialService({ db: dbh.db, storage, jobs, log });
  const retention = new RetentionService({ db: dbh.db, storage, jobs, config, log });
  const active = new Map<string, ActiveRun>();
  workerRunningJobs(registry, () => active.size);
  storeInfo(registry, storage.describe());
  // before any job is taken: a port in use stops the worker here
  const metricsServer: MetricsServer | null = config.metricsPort === null ? null : await serveMetrics(registry, { host: config.host, port: config.metricsPort, token: config.metricsToken });
  if (metricsServer) log(`metrics on http://${config.host}:${metricsServer.port}/metrics${config.metricsToken ? ' (METRICS_TOKEN required)' : ''}`);
  let shuttingDown = false;
  if (config.jobMemoryMb > 0 && !memoryLimitEnforced()) log(`WARNING: prlimit (util-linux) not found: JOB_MEMORY_MB=${config.jobMemoryMb} bounds the JavaScript heap only, not onnxruntime's memory`);

  subscriber.on('message', (_channel: string, jobId: string) => active.get(jobId)?.stop({ kind: 'canceled' }));
  // (re)subscribes on every reconnect: ioredis restores subscriptions itself, this covers the first connect
  await subscriber.subscribe(CANCEL_CHANNEL).catch((err: Error) => log(`redis: subscribe failed (${err.message}); cancel falls back to polling`));

  /** A write that records a finished run (its row, and its file in the store): retried through a Postgres or store outage, since the result exists. */
  async function persist<T>(what: string, fn: () => Promise<T>): Promise<T> {
    for (let i = 0; ; i++) {
      try {
        return await fn();
      } catch (err) {
        if (i >= 60 || shuttingDown) throw err;
        log(`job ${what}: recording failed (${(err as Error).message}); retrying`);
        await sleep(Math.min(500 * (i + 1), 5000));
      }
    }
  }

  /** Runs one attempt in a child process, on local copies of its inputs, and returns how it ended; touches no job state. */
  function runAttempt(spec: RunSpec, attempt: number, dir: AttemptDir): Promise<AttemptEnd> {
    const { calibration, evaluation, labels } = spec.dataKeys;
    let started = false;
    return withLocalCopies(storage, [spec.modelKey, calibration ?? null, evaluation ?? null, labels ?? null], ([modelPath, calibrationPath, evaluationPath, labelsPath]) => {
      started = true;
      return runChild(attempt, spec.timeoutMs, dir, {
        type: 'run',
        jobId: spec.jobId,
        modelPath: modelPath!,
        ...(spec.modelFilename ? { inputName: spec.modelFilename } : {}),
        recipe: spec.recipe,
        ...(calibrationPath ? { calibrationPath } : {}),
        ...(evaluationPath ? { evaluationPath } : {}),
        ...(labelsPath ? { labelsPath } : {}),
        outPath: dir.result,
        modelsDir: dir.models,
        workDir: dir.cwd,
        maxUnpackedBytes: config.maxUnpackedBytes,
        memoryLimitMb: config.jobMemoryMb,
      });
    }).catch((err: unknown): AttemptEnd => {
      // an input the store does not have fails the job with the reason at once (retrying cannot bring it
      // back); a store that is down goes back to the queue like a crash, boundedly
      if (started) throw err;
      if (err instanceof ModelpressError && err.code === 'stored_object_missing') return { outcome: { kind: 'error', code: err.code, message: `${err.message}: the job's input is gone; upload it again and resubmit` }, progress: null };
      return { outcome: { kind: 'unfetched', detail: (err as Error).message }, progress: null };
    });
  }

  async function runChild(attempt: number, timeoutMs: number, dir: AttemptDir, msg: RunMessage): Promise<AttemptEnd> {
    const { jobId } = msg;
    // one input or intermediate tensor may take at most half the job's memory
    const child = startJobChild(jobId, dir.cwd, { memoryMb: config.jobMemoryMb, maxTensorMb: config.jobMemoryMb > 0 ? Math.max(1, Math.floor(config.jobMemoryMb / 2)) : 0 });

    let pending: ProgressFields | null = null;
    let latest: ProgressFields | null = null;
    // a goal job's trials, best so far and frontier models: recorded in order, each only by the attempt that owns the job
    let writes = Promise.resolve();
    const record = (what: string, fn: () => Promise<unknown>) => {
      writes = writes.then(() => persist(`${jobId} ${what}`, fn)).then(
        () => {},
        (err: Error) => log(`job ${jobId}: ${what} not recorded (${err.message})`),
      );
    };
    /** A model file the job process wrote: stored only from the attempt's own models folder. */
    const ownFile = (m: WrittenModel): WrittenModel | null => (dirname(resolve(m.path)) === resolve(dir.models) ? m : null);
    // a recipe job's passes are timed as each ends (its job may still fail or be canceled); a goal job's
    // search reports none, and its chosen steps come from the report when it succeeds
    let passesTimed = false;
    const outcome = await new Promise<Outcome>((resolve) => {
      let settled = false;
      const timer = setTimeout(() => stop({ kind: 'timeout', ms: timeoutMs }), timeoutMs);
      const ticker = setInterval(() => {
        const p = pending;
        pending = null;
        jobs
          .heartbeat(jobId, attempt, p)
          .then((r) => {
            if (r.cancelRequested) stop({ kind: 'canceled' });
            else if (!r.owned) stop({ kind: 'superseded' });
          })
          .catch((err: Error) => log(`job ${jobId}: progress write failed (${err.message})`));
      }, PROGRESS_WRITE_MS);
      function stop(o: Outcome) {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        clearInterval(ticker);
        resolve(o);
      }
      active.set(jobId, { stop });
      child.process.on('message', (m: ChildMessage) => {
        if (m.type === 'progress') {
          const p = m.progress;
          pending = latest = { percent: p.percent, step: p.step, steps: p.steps, stepName: p.stepName, message: p.message, ...(m.search ? { search: m.search } : {}) };
        } else if (m.type === 'pass') {
          passesTimed = true;
          metrics.pass(m.pass, m.durationMs);
        } else if (m.type === 'trial') record(`trial ${m.trial.n}`, () => trials.recordTrial(jobId, attempt, m.trial));
        else if (m.type === 'best' || m.type === 'frontier') {
          const file = ownFile(m.model);
          if (!file) log(`job ${jobId}: ignored a ${m.type} model outside the attempt's folder (${m.model.path})`);
          else if (m.type === 'best') record(`best so far (trial ${m.trial})`, () => trials.recordBest(jobId, attempt, m.trial, file, m.report));
          else record(`frontier model (trial ${m.trial})`, () => trials.recordFrontier(jobId, attempt, m.trial, file));
        } else if (m.type === 'done') {
          if (!passesTimed) metrics.passes(m.report);
          stop({ kind: 'done', sha256: m.sha256, sizeBytes: m.sizeBytes, format: m.format, report: m.report as Record<string, unknown> });
        } else if (m.type === 'error') stop({ kind: 'error', code: m.code, message: m.message });
      });
      child.process.on('error', (err) => stop({ kind: 'crashed', crash: 'crashed', detail: err.message }));
      child.process.on('exit', (code, signal) => {
        // a 'done'/'error' message is always sent before a normal exit; give it time to arrive
        setTimeout(() => {
          if (child.killedByUs()) return;
          const c = classifyCrash(code, signal, child.stderrTail());
          stop({ kind: 'crashed', crash: c.kind, detail: c.detail });
        }, 100);
      });
      void Promise.resolve().then(() => child.process.send(msg));
    });
    active.delete(jobId);
    await child.stop();
    await writes; // what the run reported is recorded before its end is
    return { outcome, progress: latest };
  }

  /** Records how an attempt ended; returns the next attempt's number when a crashed run is retried. */
  async function settle(jobId: string, attempt: number, outcome: Outcome, progress: ProgressFields | null, result: string): Promise<number | null> {
    switch (outcome.kind) {
      case 'done': {
        const { sha256, sizeBytes, format, report } = outcome;
        // a losing attempt stores nothing: a stored artifact is never touched
        const won = await persist(jobId, () => jobs.complete(jobId, attempt, { sha256, sizeBytes, report, progress, file: result, format }));
        log(`job ${jobId}: ${won ? 'succeeded' : `attempt ${attempt} finished but no longer owns the job; its result is dropped`}`);
        return null;
      }
      case 'error':
        await persist(jobId, () => jobs.fail(jobId, attempt, outcome));
        log(`job ${jobId}: failed (${outcome.code}: ${outcome.message})`);
        return null;
      case 'canceled':
        await persist(jobId, () => jobs.finishCanceled(jobId, attempt));
        log(`job ${jobId}: canceled`);
        return null;
      case 'superseded':
        log(`job ${jobId}: attempt ${attempt} stopped: another attempt owns the job, or the job was deleted`);
        return null;
      case 'timeout':
        await persist(jobId, () => jobs.fail(jobId, attempt, { code: 'timeout', message: `the job ran longer than its time limit (${outcome.ms} ms) and was stopped` }));
        log(`job ${jobId}: timed out`);
        return null;
      case 'unfetched':
      case 'crashed': {
        const unfetched = outcome.kind === 'unfetched';
        const limit = config.jobMemoryMb > 0 ? `the job's memory limit is ${config.jobMemoryMb} MB (JOB_MEMORY_MB)` : 'no job memory limit is set (JOB_MEMORY_MB)';
        // running out of V8's heap is deterministic; a kill from outside (the kernel's OOM killer under
        // pressure from other processes) or an unknown crash may not recur: retried, boundedly
        if ((unfetched || outcome.crash !== 'out_of_memory') && attempt < config.maxJobStarts && !shuttingDown) {
          const next = await persist(jobId, () => jobs.retry(jobId, attempt, workerId));
          if (next !== null) {
            log(`job ${jobId}: attempt ${attempt}${unfetched ? ' could not fetch its inputs' : "'s process died"} (${outcome.detail}); retrying as attempt ${next}`);
            await sleep(CRASH_RETRY_DELAY_MS);
            return next;
          }
          return null;
        }
        if (unfetched) {
          const message = `the job's inputs could not be fetched from the store on ${attempt} start${attempt > 1 ? 's' : ''} (${outcome.detail}); resubmit once the store is reachable`;
          await persist(jobId, () => jobs.fail(jobId, attempt, { code: 'unavailable', message }));
          log(`job ${jobId}: failed: ${message}`);
          return null;
        }
        const oom = outcome.crash !== 'crashed';
        const message = oom
          ? `the job's process ran out of memory: ${outcome.detail}, on ${attempt} start${attempt > 1 ? 's' : ''}; ${limit}. Use a smaller model, smaller batches or shapes, or raise the limit`
          : `the job's process died: ${outcome.detail} (${attempt} start${attempt > 1 ? 's' : ''})`;
        await persist(jobId, () => jobs.fail(jobId, attempt, { code: oom ? 'memory_limit' : 'internal', message }));
        log(`job ${jobId}: failed: ${message}`);
        return null;
      }
      case 'shutdown':
        await jobs.handBack(jobId, attempt);
        throw new Error('worker shut down before the job finished; it will be retried');
    }
  }

  async function processJob(bullJob: BullJob<QueuePayload>): Promise<string> {
    const { jobId } = bullJob.data;
    if (active.has(jobId)) return 'skipped'; // a duplicate delivery to this very worker
    const claim = await jobs.claim(jobId, workerId);
    if (claim.kind !== 'run') return claim.kind;
    let attempt: number | null = claim.attempt;
    while (attempt !== null) {
      log(`job ${jobId}: started (attempt ${attempt})`);
      const dir = await attemptDir(jobId, attempt);
      try {
        const { outcome, progress } = await runAttempt(claim.spec, attempt, dir);
        attempt = await settle(jobId, attempt, outcome, progress, dir.result);
      } finally {
        await dir.remove();
      }
    }
    await trials.sweepBest(jobId).catch((err: Error) => log(`job ${jobId}: best-so-far sweep failed (${err.message})`));
    return 'done';
  }

  const worker = new Worker<QueuePayload>(config.queueName, processJob, {
    connection: bullConnection,
    concurrency: config.workerConcurrency,
    lockDuration: config.jobLockMs,
    stalledInterval: config.jobLockMs,
    maxStalledCount: config.maxJobStarts,
  });
  worker.on('error', (err) => log(`queue: ${err.message}`));

  async function reconcile(): Promise<void> {
    await jobs.reconcile((id) => active.has(id));
    // an attempt lives at most its time limit, plus a Postgres outage's worth of retried writes
    for (const name of await sweepAttemptDirs(config.jobTimeoutMs + 10 * 60_000)) log(`reconcile: removed ${name} (left by a worker that died)`);
  }
  let reconciling = false;
  const reconcileTimer = setInterval(() => {
    if (reconciling || shuttingDown) return;
    reconciling = true;
    reconcile()
      .catch((err: Error) => log(`reconcile: ${err.message}`))
      .finally(() => (reconciling = false));
  }, opts.reconcileIntervalMs ?? 15_000);

  // every worker sweeps; concurrent sweeps share the work (rows taken with SKIP LOCKED, blob deletes under the key's lock)
  let sweeping = false;
  const sweep = () => {
    if (sweeping || shuttingDown) return;
    sweeping = true;
    retention
      .sweep()
      .then((r) => {
        const parts = [
          r.artifactJobs.length ? `${r.artifactJobs.length} job(s)' models expired (ARTIFACT_TTL_DAYS=${config.artifactTtlDays})` : '',
          r.dataJobs.length ? `${r.dataJobs.length} job(s)' data files expired (UPLOAD_TTL_DAYS=${config.uploadTtlDays})` : '',
          r.models.length ? `${r.models.length} model(s) expired (UPLOAD_TTL_DAYS=${config.uploadTtlDays})` : '',
          r.blobs.deleted.length || r.blobs.failed.length ? `${r.blobs.deleted.length} blob(s) deleted, ${r.blobs.kept.length} kept (shared), ${r.blobs.failed.length} left for the next sweep` : '',
        ].filter(Boolean);
        if (parts.length) log(`retention: ${parts.join('; ')}`);
      })
      .catch((err: Error) => log(`retention: sweep failed (${err.message})`))
      .finally(() => (sweeping = false));
  };
  const retentionTimer = setInterval(sweep, opts.retentionIntervalMs ?? 10 * 60_000);
  const firstSweep = setTimeout(sweep, 5000);

  // the API's metrics count live workers by this heartbeat
  const presence = startPresence(queueConnection, config.queueName, workerId, log);

  const memory = config.jobMemoryMb > 0 ? `job memory limit ${config.jobMemoryMb} MB${memoryLimitEnforced() ? ' (RLIMIT_AS)' : ' (JavaScript heap only)'}` : 'no job memory limit';
  log(`${workerId} ready (queue '${config.queueName}', concurrency ${config.workerConcurrency}, store ${storage.describe()}, ${memory})`);

  return {
    id: workerId,
    metricsPort: metricsServer?.port ?? null,
    async close() {
      if (shuttingDown) return;
      shuttingDown = true;
      clearInterval(reconcileTimer);
      clearInterval(retentionTimer);
      clearTimeout(firstSweep);
      await presence.stop();
      const closing = worker.close();
      const drained = await Promise.race([closing.then(() => true), sleep(config.shutdownTimeoutMs).then(() => false)]);
      if (!drained) {
        log(`shutdown: ${active.size} job(s) still running after ${config.shutdownTimeoutMs} ms; stopping them (they will be retried)`);
        for (const run of active.values()) run.stop({ kind: 'shutdown' });
        await Promise.race([closing, sleep(5000)]);
      }
      await Promise.race([worker.close(true).catch(() => {}), sleep(2000)]);
      await metricsServer?.close();
      await Promise.allSettled([queue.close(), subscriber.quit(), bullConnection.quit(), queueConnection.quit()]);
      await dbh.close();
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
