import type { FastifyInstance } from 'fastify';
import { sendProblem } from '../plugins/problems.js';

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms).unref())]);
}

const Health = {
  type: 'object',
  properties: { status: { type: 'string' }, checks: { type: 'object', additionalProperties: { type: 'string' } }, store: { type: 'string' } },
} as const;

export default async function healthRoutes(app: FastifyInstance) {
  app.get('/healthz', { schema: { summary: 'The process is up', tags: ['health'], response: { 200: Health } } }, async () => ({ status: 'ok' }));
  app.get(
    '/readyz',
    { schema: { summary: 'Postgres, Redis and the object store are reachable', tags: ['health'], response: { 200: Health, 503: { $ref: 'Problem#' } } } },
    async (_req, reply) => {
      const probes = {
        postgres: withTimeout(app.db.$queryRaw`SELECT 1`, 1500, 'postgres'),
        redis: withTimeout(app.redis.ping(), 1500, 'redis'),
        storage: withTimeout(app.storage.check(), 1500, 'storage'),
      };
      const results = await Promise.allSettled(Object.values(probes));
      const checks = Object.fromEntries(Object.keys(probes).map((name, i) => {
        const r = results[i]!;
        return [name, r.status === 'fulfilled' ? 'ok' : String((r.reason as Error).message || (r.reason as Error).name)];
      }));
      const store = app.storage.describe();
      if (results.every((r) => r.status === 'fulfilled')) return { status: 'ok', checks, store };
      const detail = Object.entries(checks).map(([name, v]) => `${name} ${name === 'storage' ? `(${store}) ` : ''}${v}`).join('; ');
      return sendProblem(reply, 'unavailable', `not ready: ${detail}`, { errors: checks, retryAfterSec: 5 });
    },
  );
}
