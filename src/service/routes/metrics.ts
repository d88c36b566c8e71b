// GET /metrics: the API's registry in Prometheus's text format, behind METRICS_TOKEN when it is set.
import type { FastifyInstance } from 'fastify';
import { ServiceError } from '../../errors.js';
import { metricsAuthProblem } from '../metrics/endpoint.js';
import { clusterGauges, storeInfo } from '../metrics/registry.js';

export default async function metricsRoutes(app: FastifyInstance) {
  const { registry } = app.metrics;
  clusterGauges(registry, { queue: app.queue, redis: app.redis, queueName: app.config.queueName, log: (m) => app.log.warn(m) });
  storeInfo(registry, app.storage.describe());
  const token = app.config.metricsToken;
  app.get(
    '/metrics',
    {
      schema: {
        summary: `Prometheus metrics (text format 0.0.4)${token ? '; requires Authorization: Bearer <METRICS_TOKEN>' : ''}`,
        description: 'Job counters and durations counted by this API process, HTTP request durations, queue depth and live workers, and the process metrics. Workers serve their own on METRICS_PORT.',
        tags: ['health'],
        produces: ['text/plain'],
        response: { 200: { type: 'string', description: 'Prometheus text exposition format' }, '4xx': { $ref: 'Problem#' } },
      },
      onRequest: async (req) => {
        const denied = metricsAuthProblem(req.headers.authorization, token);
        if (denied) throw new ServiceError('unauthorized', denied);
      },
    },
    async (_req, reply) => reply.type(registry.contentType).send(await registry.metrics()),
  );
}
