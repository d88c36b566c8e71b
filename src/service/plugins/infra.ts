// Infrastructure shared by all routes: database, queue, storage, config. Tests may inject their own.
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { Queue } from 'bullmq';
import type { ServiceConfig } from '../config.js';
import { createDb, type Db } from '../db/client.js';
import { createQueue, ensureNoEviction, redisConnection, type QueuePayload } from '../queue.js';
import { LocalStorage, type Storage } from '../storage/storage.js';

declare module 'fastify' {
  interface FastifyInstance {
    config: ServiceConfig;
    db: Db;
    redis: Redis;
    queue: Queue<QueuePayload>;
    storage: Storage;
  }
}

export default fp(
  async function infra(app: FastifyInstance, opts: { config: ServiceConfig }) {
    const { config } = opts;
    const log = (m: string) => app.log.warn(m);
    const dbh = createDb(config.databaseUrl, log);
    const redis = redisConnection(config.redisUrl, 'request');
    const queueConnection = redisConnection(config.redisUrl, 'blocking');
    const queue = createQueue(config, queueConnection);
    app.decorate('config', config);
    app.decorate('db', dbh.db);
    app.decorate('redis', redis);
    app.decorate('queue', queue);
    app.decorate('storage', new LocalStorage(config.dataDir));
    const storage = app.storage;
    // temp uploads older than the longest request belong to no request any more (an API process
    // killed mid-upload): swept at start and then every few minutes
    const sweepTemp = async () => {
      const cutoff = Date.now() - config.requestTimeoutMs - 60_000;
      for (const f of await storage.list('tmp')) {
        if (f.modifiedAt.getTime() < cutoff) await storage.delete(f.key).catch(() => {});
      }
    };
    const sweeper = setInterval(() => void sweepTemp().catch(() => {}), 10 * 60_000).unref();
    app.addHook('onReady', async () => {
      await ensureNoEviction(queueConnection, log);
      await sweepTemp();
    });
    app.addHook('onClose', async () => {
      clearInterval(sweeper);
      await Promise.race([queue.close(), new Promise((r) => setTimeout(r, 2000))]).catch(() => {});
      redis.disconnect();
      queueConnection.disconnect();
      await dbh.close();
    });
  },
  { name: 'infra' },
);
