// The service's CLI commands: serve, worker, migrate, keys create. Loaded lazily by src/cli/main.ts
// so the plain compression commands don't pay for Fastify/BullMQ/Prisma.
import { join } from 'node:path';
import { InvalidInputError } from '../errors.js';
import { loadConfig, packageRoot } from './config.js';
import { createDb } from './db/client.js';
import { createApiKey } from './db/keys.js';
import { ensureDatabase, migrate } from './db/migrate.js';

export async function cmdMigrate(): Promise<void> {
  const config = loadConfig();
  const created = await ensureDatabase(config.databaseUrl).catch(() => false);
  if (created) process.stderr.write(`migrate: created database ${new URL(config.databaseUrl).pathname.slice(1)}\n`);
  const res = await migrate(config.databaseUrl, join(packageRoot(), 'prisma/migrations'), (m) => process.stderr.write(`${m}\n`));
  process.stdout.write(`migrations: ${res.applied.length} applied, ${res.alreadyApplied.length} already applied\n`);
}

export async function cmdKeys(argv: string[]): Promise<void> {
  const [sub, name] = argv;
  if (sub !== 'create' || !name || argv.length !== 2) throw new InvalidInputError('usage: modelpress keys create <name>');
  if (!/^[\w.@ -]{1,100}$/.test(name)) throw new InvalidInputError('key name: 1-100 letters, digits, spaces, and . _ - @');
  const config = loadConfig();
  const dbh = createDb(config.databaseUrl);
  try {
    const key = await createApiKey(dbh.db, name);
    process.stderr.write(`created API key '${name}' for owner ${key.ownerId}; it is shown only once:\n`);
    process.stdout.write(`${key.key}\n`);
  } finally {
    await dbh.close();
  }
}

export async function cmdServe(): Promise<void> {
  const config = loadConfig();
  const { serve } = await import('./app.js');
  await serve(config);
  process.stderr.write(`modelpress API on http://${config.host === '0.0.0.0' ? 'localhost' : config.host}:${config.port} — docs at /docs, OpenAPI at /openapi.json\n`);
  await new Promise(() => {}); // until a signal
}

export async function cmdWorker(): Promise<void> {
  const config = loadConfig();
  const { startWorker } = await import('./worker/worker.js');
  const worker = await startWorker(config, {
    ...(process.env.RECONCILE_INTERVAL_MS ? { reconcileIntervalMs: Number(process.env.RECONCILE_INTERVAL_MS) } : {}),
    ...(process.env.STALE_RUNNING_MS ? { staleRunningMs: Number(process.env.STALE_RUNNING_MS) } : {}),
  });
  const stop = (signal: string) => {
    process.stderr.write(`worker: ${signal}: draining (up to ${config.shutdownTimeoutMs} ms)\n`);
    const force = setTimeout(() => process.exit(1), config.shutdownTimeoutMs + 10_000).unref();
    worker.close().then(() => {
      clearTimeout(force);
      process.exit(0);
    });
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  await new Promise(() => {});
}
