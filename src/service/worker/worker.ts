// A worker process: takes job ids from the BullMQ queue and runs each job's pipeline in a child
// process, with throttled progress writes, cancel (Redis pub/sub + database poll), a time limit,
// crash isolation, stalled-job recovery and a reconciler for jobs Redis forgot (restart without AOF).
import { fork, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker, type Job as BullJob } from 'bullmq';
import type { ServiceConfig } from '../config.js';
import { createDb, type DbHandle } from '../db/client.js';
import { claimJob, finishJob, metricsSummary, requeueJob, writeProgress, type ProgressFields } from '../db/jobs.js';
import { CANCEL_CHANNEL, createQueue, enqueue, ensureNoEviction, redisConnection, type QueuePayload } from '../queue.js';
import { LocalStorage } from '../storage/storage.js';
import type { ChildMessage, RunMessage } from './protocol.js';

const RUNNER = fileURLToPath(new URL('./runner.js', import.meta.url));
const PROGRESS_WRITE_MS = 1000;
const KILL_GRACE_MS = 3000;

export interface WorkerOptions {
  log?: (msg: string) => void;
  /** How often to look for jobs Redis lost or a dead worker left behind. */
  reconcileIntervalMs?: number;
  /** A running job without a heartbeat for this long (and not active in BullMQ) is re-queued. */
  staleRunningMs?: number;
}

export interface WorkerHandle {
  id: string;
  close(): Promise<void>;
}

type Outcome =
  | { kind: 'done'; sha256: string; sizeBytes: number; report: unknown }
  | { kind: 'error'; code: string; message: string }
  | { kind: 'canceled' }
  | { kind: 'timeout'; ms: number }
  | { kind: 'crashed'; detail: string }
  | { kind: 'shutdown' };

interface ActiveRun {
  stop(outcome: Outcome): void;
}

export async function startWorker(config: ServiceConfig, opts: WorkerOptions = {}): Promise<WorkerHandle> {
  const log = opts.log ?? ((m: string) => process.stderr.write(`${new Date().toISOString()} worker: ${m}\n`));
  const workerId = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const dbh: DbHandle = createDb(config.databaseUrl, log);
  const { db } = dbh;
  const storage = new LocalStorage(config.dataDir);
  const bullConnection = redisConnection(config.redisUrl, 'blocking');
  const subscriber = redisConnection(config.redisUrl, 'blocking');
  const queueConnection = redisConnection(config.redisUrl, 'blocking');
  const queue = createQueue(config, queueConnection);
  await ensureNoEviction(queueConnection, log);
  const active = new Map<string, ActiveRun>();
  let shuttingDown = false;

  subscriber.on('message', (_channel: string, jobId: string) => active.get(jobId)?.stop({ kind: 'canceled' }));
  // (re)subscribes on every reconnect: ioredis restores subscriptions itself, this covers the first connect
  await subscriber.subscribe(CANCEL_CHANNEL).catch((err: Error) => log(`redis: subscribe failed (${err.message}); cancel falls back to polling`));

  async function runJob(jobId: string, attempt: number): Promise<void> {
    const job = await db.job.findUnique({ where: { id: jobId }, include: { model: true } });
    if (!job) return;
    const outKey = `tmp/artifact-${jobId}-${attempt}`;
    const msg: RunMessage = {
      type: 'run',
      jobId,
      modelPath: storage.localPath(job.model.storageKey),
      ...(job.model.filename ? { inputName: job.model.filename } : {}),
      recipe: job.recipe,
      ...(job.calibrationKey ? { calibrationPath: storage.localPath(job.calibrationKey) } : {}),
      ...(job.evaluationKey ? { evaluationPath: storage.localPath(job.evaluationKey) } : {}),
      ...(job.labelsKey ? { labelsPath: storage.localPath(job.labelsKey) } : {}),
      outPath: storage.localPath(outKey),
    };
    const timeoutMs = Math.min(job.timeoutMs ?? config.jobTimeoutMs, config.jobTimeoutMs);
    const execArgv = config.jobMemoryMb > 0 ? [`--max-old-space-size=${config.jobMemoryMb}`] : [];
    // the job id in argv names the child in `ps` (and lets tests find orphans)
    const child: ChildProcess = fork(RUNNER, [`--job=${jobId}`], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });

    let pending: ProgressFields | null = null;
    let latest: ProgressFields | null = null;
    const outcome = await new Promise<Outcome>((resolve) => {
      let settled = false;
      const stop = (o: Outcome) => {
        if (settled) return;
        settled = true;
        resolve(o);
      };
      active.set(jobId, { stop });
      child.on('message', (m: ChildMessage) => {
        if (m.type === 'progress') {
          const p = m.progress;
          pending = latest = { percent: p.percent, step: p.step, steps: p.steps, stepName: p.stepName, message: p.message };
        } else if (m.type === 'done') stop({ kind: 'done', sha256: m.sha256, sizeBytes: m.sizeBytes, report: m.report });
        else if (m.type === 'error') stop({ kind: 'error', code: m.code, message: m.message });
      });
      child.on('error', (err) => stop({ kind: 'crashed', detail: err.message }));
      child.on('exit', (code, signal) => {
        // a 'done'/'error' message is always sent before a normal exit
        setTimeout(() => stop({ kind: 'crashed', detail: signal ? `killed by ${signal}${signal === 'SIGKILL' ? ' (out of memory?)' : ''}` : `exited with code ${code}` }), 100);
      });
      const timer = setTimeout(() => stop({ kind: 'timeout', ms: timeoutMs }), timeoutMs);
      const ticker = setInterval(() => {
        const p = pending;
        pending = null;
        writeProgress(db, jobId, p)
          .then((r) => {
            if (r.cancelRequested || !r.running) stop({ kind: 'canceled' });
          })
          .catch((err: Error) => log(`job ${jobId}: progress write failed (${err.message})`));
      }, PROGRESS_WRITE_MS);
      child.once('exit', () => clearInterval(ticker));
      void Promise.resolve().then(() => child.send(msg));
      const cleanup = () => {
        clearTimeout(timer);
        clearInterval(ticker);
      };
      // ensure timers go away whichever way it ends
      void new Promise<void>((r) => child.once('exit', () => r())).then(cleanup);
      const origStop = stop;
      active.set(jobId, { stop: (o) => { cleanup(); origStop(o); } });
    });
    active.delete(jobId);
    await killChild(child);

    switch (outcome.kind) {
      case 'done': {
        const artifactKey = `artifacts/${jobId}.onnx`;
        await storage.promote(outKey, artifactKey);
        const report = outcome.report as Record<string, unknown>;
        const ok = await db.$transaction(async (tx) => {
          const res = await tx.job.updateMany({
            where: { id: jobId, status: 'running' },
            data: {
              status: 'succeeded',
              finishedAt: new Date(),
              progressPercent: 100,
              ...(latest ? { progressStep: latest.step, progressSteps: latest.steps, progressStepName: latest.stepName, progressMessage: null } : {}),
              report: report as never, metrics: metricsSummary(report) as never },
          });
          if (res.count !== 1) return false;
          await tx.artifact.upsert({
            where: { jobId },
            create: { jobId, storageKey: artifactKey, sha256: outcome.sha256, sizeBytes: BigInt(outcome.sizeBytes) },
            update: { storageKey: artifactKey, sha256: outcome.sha256, sizeBytes: BigInt(outcome.sizeBytes) },
          });
          return true;
        });
        if (!ok) await storage.delete(artifactKey); // canceled meanwhile
        log(`job ${jobId}: ${ok ? 'succeeded' : 'finished after it was canceled; result dropped'}`);
        return;
      }
      case 'error':
        await storage.delete(outKey);
        await finishJob(db, jobId, 'failed', ['running'], { errorCode: outcome.code, errorMessage: outcome.message });
        log(`job ${jobId}: failed (${outcome.code}: ${outcome.message})`);
        return;
      case 'canceled':
        await storage.delete(outKey);
        await finishJob(db, jobId, 'canceled', ['running', 'queued']);
        log(`job ${jobId}: canceled`);
        return;
      case 'timeout':
        await storage.delete(outKey);
        await finishJob(db, jobId, 'failed', ['running'], { errorCode: 'timeout', errorMessage: `the job ran longer than its time limit (${outcome.ms} ms) and was stopped` });
        log(`job ${jobId}: timed out`);
        return;
      case 'crashed':
        await storage.delete(outKey);
        await finishJob(db, jobId, 'failed', ['running'], { errorCode: 'internal', errorMessage: `the job's process died: ${outcome.detail}` });
        log(`job ${jobId}: its process died (${outcome.detail})`);
        return;
      case 'shutdown':
        await storage.delete(outKey);
        await requeueJob(db, jobId);
        throw new Error('worker shut down before the job finished; it will be retried');
    }
  }

  async function processJob(bullJob: BullJob<QueuePayload>): Promise<string> {
    const { jobId } = bullJob.data;
    const claimed = await claimJob(db, jobId, workerId);
    if (!claimed) return 'skipped'; // canceled, finished, or unknown: delivery is at-least-once
    if (claimed.attempt > config.maxJobStarts) {
      await finishJob(db, jobId, 'failed', ['running'], {
        errorCode: 'internal',
        errorMessage: `the job was started ${claimed.attempt - 1} times and never finished (its worker crashed or was killed each time); giving up`,
      });
      return 'gave-up';
    }
    log(`job ${jobId}: started (attempt ${claimed.attempt})`);
    await runJob(jobId, claimed.attempt);
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
  worker.on('failed', (bullJob, err) => {
    if (!bullJob) return;
    const final = bullJob.attemptsMade >= (bullJob.opts.attempts ?? 1) || /stalled/i.test(err.message);
    if (!final) return;
    void finishJob(db, bullJob.data.jobId, 'failed', ['queued', 'running'], { errorCode: 'internal', errorMessage: `the job could not be completed: ${err.message}` }).catch(() => {});
  });

  const staleMs = opts.staleRunningMs ?? Math.max(30_000, 3 * config.jobLockMs);
  async function reconcile(): Promise<void> {
    const cutoff = new Date(Date.now() - 5000);
    const queued = await db.job.findMany({ where: { status: 'queued', createdAt: { lt: cutoff } }, select: { id: true }, take: 500 });
    for (const { id } of queued) {
      const bj = await queue.getJob(id);
      if (!bj) {
        await enqueue(queue, id);
        log(`reconcile: re-enqueued job ${id} (missing from Redis)`);
      } else {
        const state = await bj.getState();
        if (state === 'completed' || state === 'failed') {
          await bj.remove().catch(() => {});
          await enqueue(queue, id);
          log(`reconcile: re-enqueued job ${id} (queue said ${state})`);
        }
      }
    }
    const stale = await db.job.findMany({ where: { status: 'running', updatedAt: { lt: new Date(Date.now() - staleMs) } }, select: { id: true }, take: 500 });
    for (const { id } of stale) {
      if (active.has(id)) continue;
      const bj = await queue.getJob(id);
      const state = bj ? await bj.getState() : 'missing';
      if (state === 'active' || state === 'waiting' || state === 'delayed') continue; // BullMQ's stalled check owns it
      if (await requeueJob(db, id)) {
        if (bj) await bj.remove().catch(() => {});
        await enqueue(queue, id);
        log(`reconcile: job ${id} was running with no live worker (queue: ${state}); re-queued`);
      }
    }
  }
  let reconciling = false;
  const reconcileTimer = setInterval(() => {
    if (reconciling || shuttingDown) return;
    reconciling = true;
    reconcile()
      .catch((err: Error) => log(`reconcile: ${err.message}`))
      .finally(() => (reconciling = false));
  }, opts.reconcileIntervalMs ?? 15_000);

  log(`${workerId} ready (queue '${config.queueName}', concurrency ${config.workerConcurrency})`);

  return {
    id: workerId,
    async close() {
      if (shuttingDown) return;
      shuttingDown = true;
      clearInterval(reconcileTimer);
      const closing = worker.close();
      const drained = await Promise.race([closing.then(() => true), sleep(config.shutdownTimeoutMs).then(() => false)]);
      if (!drained) {
        log(`shutdown: ${active.size} job(s) still running after ${config.shutdownTimeoutMs} ms; stopping them (they will be retried)`);
        for (const run of active.values()) run.stop({ kind: 'shutdown' });
        await Promise.race([closing, sleep(KILL_GRACE_MS + 2000)]);
      }
      await Promise.race([worker.close(true).catch(() => {}), sleep(2000)]);
      await Promise.allSettled([queue.close(), subscriber.quit(), bullConnection.quit(), queueConnection.quit()]);
      await dbh.close();
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** SIGTERM, then SIGKILL after a grace period; resolves when the child is gone. */
function killChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const hard = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
    child.once('exit', () => {
      clearTimeout(hard);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
