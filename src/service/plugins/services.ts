// The services routes call, over the app's infrastructure.
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import { JobService } from '../jobs/service.js';
import { ModelService } from '../models/service.js';

declare module 'fastify' {
  interface FastifyInstance {
    jobs: JobService;
    models: ModelService;
  }
}

export default fp(
  async function services(app: FastifyInstance) {
    const { db, storage, queue, redis, config } = app;
    app.decorate('models', new ModelService({ db, storage, config }));
    app.decorate('jobs', new JobService({ db, storage, queue, redis, config, log: (m) => app.log.warn(m) }));
  },
  { name: 'services', dependencies: ['infra'] },
);
