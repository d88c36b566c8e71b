// The services routes call, over the app's infrastructure.
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import { JobService } from '../jobs/service.js';
import { TrialService } from '../jobs/trials.js';
import { ModelService } from '../models/service.js';
import { RetentionService } from '../retention/service.js';

declare module 'fastify' {
  interface FastifyInstance {
    jobs: JobService;
    models: ModelService;
    trials: TrialService;
    retention: RetentionService;
  }
}

export default fp(
  async function services(app: FastifyInstance) {
    const { db, storage, queue, redis, config } = app;
    app.decorate('models', new ModelService({ db, storage, config }));
    const log = (m: string) => app.log.warn(m);
    const jobs = new JobService({ db, storage, queue, redis, config, log, metrics: app.metrics.jobs });
    app.decorate('jobs', jobs);
    app.decorate('trials', new TrialService({ db, storage, jobs, log }));
    app.decorate('retention', new RetentionService({ db, storage, jobs, config, log }));
  },
  { name: 'services', dependencies: ['infra', 'metrics'] },
);
