// BullMQ queue wiring shared by the API and the workers. Jobs carry our job id only.
import { Redis, type RedisOptions } from 'ioredis';
import { Queue } from 'bullmq';
import type { ServiceConfig } from './config.js';

export const CANCEL_CHANNEL = 'modelpress:cancel';

export interface QueuePayload {
  jobId: string;
}

/** A Redis connection. `blocking` ones (BullMQ workers, subscribers) retry forever; request-path ones fail fast. */
export function redisConnection(url: string, kind: 'blocking' | 'request'): Redis {
  const opts: RedisOptions =
    kind === 'blocking'
      ? { maxRetriesPerRequest: null, enableReadyCheck: true, retryStrategy: (n) => Math.min(200 * n, 2000) }
      : { maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 2000, retryStrategy: (n) => Math.min(200 * n, 2000) };
  const redis = new Redis(url, opts);
  redis.on('error', () => {}); // reconnects on its own; readiness is reported by /readyz
  return redis;
}

export function createQueue(config: ServiceConfig, connection: Redis): Queue<QueuePayload> {
  const queue = new Queue<QueuePayload>(config.queueName, {
    connection,
    defaultJobOptions: {
      attempts: config.maxJobStarts,
      backoff: { type: 'fixed', delay: 1000 },
      removeOnComplete: { age: 24 * 3600, count: 10_000 },
      removeOnFail: { age: 7 * 24 * 3600 },
    },
  });
  queue.on('error', () => {});
  return queue;
}

export async function enqueue(queue: Queue<QueuePayload>, jobId: string): Promise<void> {
  // our id as BullMQ's id: enqueueing twice (retries, the reconciler) is a no-op
  await queue.add('compress', { jobId }, { jobId });
}

/** BullMQ loses jobs if Redis evicts keys: check the policy, fix it when allowed, warn otherwise. */
export async function ensureNoEviction(redis: Redis, log: (m: string) => void): Promise<void> {
  try {
    const res = (await redis.config('GET', 'maxmemory-policy')) as string[];
    const policy = res[1];
    if (policy === 'noeviction') return;
    try {
      await redis.config('SET', 'maxmemory-policy', 'noeviction');
      log(`redis: maxmemory-policy was '${policy}', set it to 'noeviction' (queued jobs must never be evicted)`);
    } catch {
      log(`redis: WARNING maxmemory-policy is '${policy}'; set it to 'noeviction' or queued jobs may be lost`);
    }
  } catch (err) {
    log(`redis: WARNING could not read maxmemory-policy (${(err as Error).message}); it must be 'noeviction'`);
  }
}

/** Bounds a queue call on the request path: BullMQ connections wait for Redis forever. */
export function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: Redis did not answer within ${ms} ms`)), ms);
  });
  p.catch(() => {}); // may settle after the deadline
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}
