// The Prisma client over node-postgres (no query engine binary). We own the pg.Pool so that an
// idle connection dropped by a Postgres restart is logged and replaced, never an unhandled 'error'.
import pg from 'pg';
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from './generated/client.js';

export type Db = PrismaClient;
export { Prisma, JobStatus } from './generated/client.js';
export type { Job, StoredModel, Artifact, Owner, ApiKey } from './generated/client.js';

export interface DbHandle {
  db: Db;
  pool: pg.Pool;
  close(): Promise<void>;
}

export function createDb(databaseUrl: string, log: (msg: string) => void = () => {}): DbHandle {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 10, connectionTimeoutMillis: 5000, idleTimeoutMillis: 30_000 });
  pool.on('error', (err) => log(`postgres: idle connection lost (${err.message}); it will be replaced`));
  const db = new PrismaClient({ adapter: new PrismaPg(pool) });
  return {
    db,
    pool,
    async close() {
      await db.$disconnect().catch(() => {});
      await pool.end().catch(() => {});
    },
  };
}
