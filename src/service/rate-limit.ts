// Fixed-window request counters in Redis, per owner and kind (shared by every API instance).
import type { Redis } from 'ioredis';
import { ServiceError } from '../errors.js';

const WINDOW_SEC = 60;

/** Counts one request of `kind` for the owner; throws rate_limited over `perMinute`, unavailable without Redis. */
export async function rateLimit(redis: Redis, kind: 'jobs' | 'uploads', ownerId: string, perMinute: number): Promise<void> {
  const now = Math.floor(Date.now() / 1000);
  const window = Math.floor(now / WINDOW_SEC);
  const key = `modelpress:ratelimit:${kind}:${ownerId}:${window}`;
  let count: number;
  try {
    count = await redis.incr(key);
    if (count === 1) await redis.expire(key, WINDOW_SEC + 5);
  } catch (err) {
    throw new ServiceError('unavailable', 'Redis is unreachable; try again shortly', { cause: err, retryAfterSec: 5 });
  }
  if (count > perMinute) {
    throw new ServiceError('rate_limited', `at most ${perMinute} ${kind === 'jobs' ? 'jobs' : 'model uploads'} per minute per owner`, { retryAfterSec: (window + 1) * WINDOW_SEC - now });
  }
}
