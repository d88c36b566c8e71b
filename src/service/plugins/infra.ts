// Infrastructure shared by all routes: database, Redis, queue, storage, config. Built from the config
// unless the caller passes its own (tests do); what the caller passes, the caller checks and closes.
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { Queue } from 'bullmq';
import type { ServiceConfig } from '../config.js';
import { createDb, type Db } from '../db/client.js';
import { createQueue, ensureNoEviction, redisConnection, type QueuePayload } from '../queue.js';
import { createStorage } from '../storage/create.js';
import type { Storage } from '../storage/storage.js';

export interface Infra {
  db: Db;
  /** A request-path connection: fails fast while Redis is down. */
  redis: Redis;
  queue: Queue<QueuePayload>;
  storage: Storage;
}

declare module 'fastify' {
  interface FastifyInstance {
    config: ServiceConfig;
    db: Db;
    redis: Redis;
    queue: Queue<QueuePayload>;
    storage: Storage;
  }
}

/** The infrastructure a config names, its start-up check and how to close it. */
async function createInfra(config: ServiceConfig, log: (m: string) => void): Promise<{ infra: Infra; check(): Promise<void>; close(): Promise<void> }> {
  const dbh = createDb(config.databaseUrl, log);
  const redis = redisConnection(config.redisUrl, 'request');
  const queueConnection = redisConnection(config.redisUrl, 'blocking');
  const queue = createQueue(config, queueConnection);
  const storage = await createStorage(config);
  return {
    infra: { db: dbh.db, redis, queue, storage },
    check: () => ensureNoEviction(queueConnection, log),
    async close() {
      await Promise.race([queue.close(), new Promise((r) => setTimeout(r, 2000))]).catch(() => {});
      redis.disconnect();
      queueConnection.disconnect();
      await dbh.close();
    },
  };
}

export default fp(
  async function infra(app: FastifyInstance, opts: { config: ServiceConfig; infra?: Infra | undefined }) {
    const { config } = opts;
    const log = (m: string) => app.log.warn(m);
    const owned = opts.infra ? null : await createInfra(config, log);
    const { db, redis, queue, storage } = opts.infra ?? owned!.infra;
    app.decorate('config', config);
    app.decorate('db', db);
    app.decorate('redis', redis);
    app.decorate('queue', queue);
    app.decorate('storage', storage);
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
      await owned?.check();
      await sweepTemp().catch((err: Error) => log(`temp sweep: ${err.message}`)); // a store that is down now does not stop the API
    });
    app.addHook('onClose', async () => {
      clearInterval(sweeper);
      await owned?.close();
    });
  },
  { name: 'infra' },
);
