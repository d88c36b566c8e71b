// The API's metrics: its registry (one per app; the caller may pass its own), the job counters its job
// service writes, and the duration of every HTTP request by route pattern. GET /metrics is routes/metrics.ts.
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import type { Registry } from 'prom-client';
import { httpDuration, JobMetrics, newRegistry } from '../metrics/registry.js';

export interface AppMetrics {
  registry: Registry;
  jobs: JobMetrics;
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: AppMetrics;
  }
}

export default fp(
  async function metrics(app: FastifyInstance, opts: { registry?: Registry | undefined }) {
    const registry = opts.registry ?? newRegistry();
    app.decorate('metrics', { registry, jobs: new JobMetrics(registry) });
    const http = httpDuration(registry);
    // registered before the routes, at the root: every route's requests are timed, 404s as 'unmatched'
    app.addHook('onResponse', async (req, reply) => {
      http.observe({ method: req.method, route: req.routeOptions.url ?? 'unmatched', status_code: String(reply.statusCode) }, reply.elapsedTime / 1000);
    });
  },
  { name: 'metrics' },
);
