import type { FastifyInstance } from 'fastify';
import { sendProblem } from '../plugins/problems.js';

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms).unref())]);
}

const Health = {
  type: 'object',
  properties: { status: { type: 'string' }, checks: { type: 'object', additionalProperties: { type: 'string' } } },
} as const;

export default async function healthRoutes(app: FastifyInstance) {
  app.get('/healthz', { schema: { summary: 'The process is up', tags: ['health'], response: { 200: Health } } }, async () => ({ status: 'ok' }));
  app.get(
    '/readyz',
    { schema: { summary: 'Postgres and Redis are reachable', tags: ['health'], response: { 200: Health, 503: { $ref: 'Problem#' } } } },
    async (_req, reply) => {
      const [pg, redis] = await Promise.allSettled([
        withTimeout(app.db.$queryRaw`SELECT 1`, 1500, 'postgres'),
        withTimeout(app.redis.ping(), 1500, 'redis'),
      ]);
      const checks = {
        postgres: pg.status === 'fulfilled' ? 'ok' : String((pg.reason as Error).message),
        redis: redis.status === 'fulfilled' ? 'ok' : String((redis.reason as Error).message),
      };
      if (pg.status === 'fulfilled' && redis.status === 'fulfilled') return { status: 'ok', checks };
      return sendProblem(reply, 'unavailable', `not ready: postgres ${checks.postgres}; redis ${checks.redis}`, { errors: checks, retryAfterSec: 5 });
    },
  );
}
