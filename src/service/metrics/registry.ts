// Every Prometheus metric the service exposes, with its labels (the README's "Metrics" lists the same).
// One registry per API app or worker, never prom-client's global one: several apps in one process
// (tests) keep their own counts. Each event is counted by the process where it happens: the job
// service counts the state changes it makes, so the API counts creations and the cancels of queued
// jobs, and a worker counts the outcomes of the jobs it runs. Cluster-wide state (queue depth, live
// workers) is read at scrape time, by the API only.
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { countLiveWorkers } from '../presence.js';
import { withDeadline, type QueuePayload } from '../queue.js';

export const METRICS_PREFIX = 'modelpress_';

export type FinalStatus = 'succeeded' | 'failed' | 'canceled';

/** Buckets (seconds): jobs run from seconds to the job time limit; passes from milliseconds to many minutes. */
const JOB_SECONDS = [1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200];
const PASS_SECONDS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800];
const HTTP_SECONDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120];

/** The queue states the depth gauge reports (BullMQ's names). */
export const QUEUE_STATES = ['waiting', 'active', 'delayed'] as const;

/** A registry with the process's default metrics (CPU, memory, event loop, GC), prefixed. */
export function newRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: METRICS_PREFIX });
  return registry;
}

/** Job state changes, counted by the job service of the process that makes them. */
export class JobMetrics {
  private readonly createdTotal: Counter;
  private readonly succeededTotal: Counter;
  private readonly failedTotal: Counter<'code'>;
  private readonly canceledTotal: Counter;
  private readonly jobSeconds: Histogram<'status'>;
  private readonly passSeconds: Histogram<'pass'>;

  constructor(registry: Registry) {
    const registers = [registry];
    const p = METRICS_PREFIX;
    this.createdTotal = new Counter({ name: `${p}jobs_created_total`, help: 'Jobs created (an idempotent replay is not counted).', registers });
    this.succeededTotal = new Counter({ name: `${p}jobs_succeeded_total`, help: 'Jobs that succeeded.', registers });
    this.failedTotal = new Counter({ name: `${p}jobs_failed_total`, help: 'Jobs that failed, by stable error code.', labelNames: ['code'], registers });
    this.canceledTotal = new Counter({ name: `${p}jobs_canceled_total`, help: 'Jobs canceled (queued ones by the API, running ones by a worker).', registers });
    this.jobSeconds = new Histogram({
      name: `${p}job_duration_seconds`,
      help: 'Wall time of a job from its first start to its end, by final status (jobs canceled before they started are not observed).',
      labelNames: ['status'],
      buckets: JOB_SECONDS,
      registers,
    });
    this.passSeconds = new Histogram({
      name: `${p}pass_duration_seconds`,
      help: "Time a pass took to rewrite the model in a job's process: each recipe step as it ends (whatever becomes of the job); a goal job's chosen steps when it succeeds.",
      labelNames: ['pass'],
      buckets: PASS_SECONDS,
      registers,
    });
  }

  created(): void {
    this.createdTotal.inc();
  }

  finished(status: FinalStatus, code?: string | null): void {
    if (status === 'succeeded') this.succeededTotal.inc();
    else if (status === 'failed') this.failedTotal.inc({ code: code ?? 'internal' });
    else this.canceledTotal.inc();
  }

  duration(status: FinalStatus, seconds: number): void {
    if (Number.isFinite(seconds) && seconds >= 0) this.jobSeconds.observe({ status }, seconds);
  }

  /** One pass that ran in a job's process, as it ended. */
  pass(pass: string, durationMs: number): void {
    if (Number.isFinite(durationMs) && durationMs >= 0) this.passSeconds.observe({ pass }, durationMs / 1000);
  }

  /** The steps of a job's report (`steps[].pass`, `steps[].durationMs`): a goal job's chosen recipe. */
  passes(report: unknown): void {
    const steps = (report as { steps?: unknown } | null)?.steps;
    if (!Array.isArray(steps)) return;
    for (const s of steps as { pass?: unknown; durationMs?: unknown }[]) {
      if (typeof s?.pass === 'string' && typeof s.durationMs === 'number') this.pass(s.pass, s.durationMs);
    }
  }
}

/** HTTP requests of the API by route pattern (`/v1/jobs/:id`, never the raw URL), method and status. */
export function httpDuration(registry: Registry): Histogram<'method' | 'route' | 'status_code'> {
  return new Histogram({
    name: `${METRICS_PREFIX}http_request_duration_seconds`,
    help: "HTTP requests to the API, by method, route pattern ('unmatched' for no route) and status code.",
    labelNames: ['method', 'route', 'status_code'],
    buckets: HTTP_SECONDS,
    registers: [registry],
  });
}

/**
 * Queue depth and live workers, read from Redis at scrape time (the API's registry only: every API
 * process would report the same numbers). When Redis does not answer, the scrape leaves them out.
 */
export function clusterGauges(registry: Registry, deps: { queue: Queue<QueuePayload>; redis: Redis; queueName: string; log: (m: string) => void }): void {
  new Gauge({
    name: `${METRICS_PREFIX}queue_jobs`,
    help: 'Jobs in the queue by state (waiting, active, delayed), read from BullMQ at scrape time.',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      try {
        const counts = await withDeadline(deps.queue.getJobCounts(...QUEUE_STATES), 1500, 'queue depth');
        for (const state of QUEUE_STATES) this.set({ state }, counts[state] ?? 0);
      } catch (err) {
        this.reset(); // absent, not 0
        deps.log(`metrics: queue depth not read (${(err as Error).message})`);
      }
    },
  });
  new Gauge({
    name: `${METRICS_PREFIX}workers_active`,
    help: 'Workers whose heartbeat in Redis is live (each refreshes it every few seconds).',
    registers: [registry],
    async collect() {
      try {
        this.set(await withDeadline(countLiveWorkers(deps.redis, deps.queueName), 1500, 'live workers'));
      } catch (err) {
        this.remove(); // absent, not 0: nobody knows
        deps.log(`metrics: live workers not read (${(err as Error).message})`);
      }
    },
  });
}

/** Jobs a worker runs right now (the worker's registry). */
export function workerRunningJobs(registry: Registry, running: () => number): void {
  new Gauge({
    name: `${METRICS_PREFIX}worker_running_jobs`,
    help: 'Jobs this worker is running now.',
    registers: [registry],
    collect() {
      this.set(running());
    },
  });
}

/** Which store this process reads and writes (an info metric: value 1, the store in its label; never a secret). */
export function storeInfo(registry: Registry, store: string): void {
  new Gauge({ name: `${METRICS_PREFIX}store_info`, help: 'The object store this process uses (local:<dir> or s3://bucket/prefix @ endpoint).', labelNames: ['store'], registers: [registry] }).set({ store }, 1);
}
