// Which workers are alive, for the API's metrics: every worker refreshes a key with a TTL in Redis,
// and the API counts the keys that still exist. A worker that dies stops refreshing and drops out
// within PRESENCE_TTL_MS; one that shuts down removes itself. Job liveness is a different thing: the
// per-job heartbeat in Postgres (jobs.updated_at), which decides whether a running job can be claimed.
import type { Redis } from 'ioredis';

export const PRESENCE_BEAT_MS = 5000;
export const PRESENCE_TTL_MS = 3 * PRESENCE_BEAT_MS;

/** The set of worker ids that beat recently (it expires too, so nothing outlives the last worker). */
const membersKey = (queueName: string) => `modelpress:workers:${queueName}`;
const workerKey = (queueName: string, workerId: string) => `modelpress:workers:${queueName}:${workerId}`;

export interface Presence {
  stop(): Promise<void>;
}

/** Starts beating for one worker of a queue; `stop` removes it at once. */
export function startPresence(redis: Redis, queueName: string, workerId: string, log: (m: string) => void): Presence {
  const set = membersKey(queueName);
  const key = workerKey(queueName, workerId);
  let inFlight = false;
  let failing = false;
  const beat = () => {
    if (inFlight) return; // Redis is slow or down: one beat at a time, never a backlog
    inFlight = true;
    redis
      .multi()
      .set(key, '1', 'PX', PRESENCE_TTL_MS)
      .sadd(set, workerId)
      .pexpire(set, PRESENCE_TTL_MS)
      .exec()
      .then(() => {
        if (failing) log('presence: heartbeats reach Redis again');
        failing = false;
      })
      .catch((err: Error) => {
        if (!failing) log(`presence: heartbeat failed (${err.message}); the metrics count this worker out until Redis answers`);
        failing = true;
      })
      .finally(() => (inFlight = false));
  };
  beat();
  const timer = setInterval(beat, PRESENCE_BEAT_MS);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      // bounded: a worker's connection waits for Redis forever, and shutting down must not (the key expires anyway)
      let bound: NodeJS.Timeout | undefined;
      await Promise.race([
        redis.multi().del(key).srem(set, workerId).exec().catch(() => {}),
        new Promise<void>((r) => (bound = setTimeout(r, 1000))),
      ]);
      clearTimeout(bound);
    },
  };
}

/** How many workers of the queue beat within the TTL; members whose key expired are removed on the way. */
export async function countLiveWorkers(redis: Redis, queueName: string): Promise<number> {
  const set = membersKey(queueName);
  const ids = await redis.smembers(set);
  if (ids.length === 0) return 0;
  const exists = await Promise.all(ids.map((id) => redis.exists(workerKey(queueName, id))));
  const dead = ids.filter((_, i) => exists[i] === 0);
  if (dead.length > 0) await redis.srem(set, ...dead);
  return ids.length - dead.length;
}
