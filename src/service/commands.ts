// The service's CLI commands: serve, worker, migrate, keys create/list/revoke. Loaded lazily by src/cli/main.ts
// so the plain compression commands don't pay for Fastify/BullMQ/Prisma.
import { join } from 'node:path';
import { InvalidInputError, ServiceError } from '../errors.js';
import { loadConfig, packageRoot } from './config.js';
import { createDb } from './db/client.js';
import { createApiKey, listApiKeys, revokeApiKey } from './db/keys.js';
import { ensureDatabase, migrate } from './db/migrate.js';

export async function cmdMigrate(): Promise<void> {
  const config = loadConfig();
  const created = await ensureDatabase(config.databaseUrl).catch(() => false);
  if (created) process.stderr.write(`migrate: created database ${new URL(config.databaseUrl).pathname.slice(1)}\n`);
  const res = await migrate(config.databaseUrl, join(packageRoot(), 'prisma/migrations'), (m) => process.stderr.write(`${m}\n`));
  process.stdout.write(`migrations: ${res.applied.length} applied, ${res.alreadyApplied.length} already applied\n`);
}

const KEYS_USAGE = 'usage: modelpress keys create <name> | keys list | keys revoke <prefix or key>';

export async function cmdKeys(argv: string[]): Promise<void> {
  const [sub, arg] = argv;
  const ok = (sub === 'create' && arg && argv.length === 2) || (sub === 'list' && argv.length === 1) || (sub === 'revoke' && arg && argv.length === 2);
  if (!ok) throw new InvalidInputError(KEYS_USAGE);
  if (sub === 'create' && !/^[\w.@ -]{1,100}$/.test(arg!)) throw new InvalidInputError('key name: 1-100 letters, digits, spaces, and . _ - @');
  const config = loadConfig();
  const dbh = createDb(config.databaseUrl);
  try {
    if (sub === 'create') {
      const key = await createApiKey(dbh.db, arg!);
      process.stderr.write(`created API key '${arg}' for owner ${key.ownerId}; it is shown only once:\n`);
      process.stdout.write(`${key.key}\n`);
    } else if (sub === 'list') {
      for (const k of await listApiKeys(dbh.db)) {
        const state = k.revokedAt ? `revoked ${k.revokedAt.toISOString()}` : `active, last used ${k.lastUsedAt?.toISOString() ?? 'never'}`;
        process.stdout.write(`${k.prefix}  ${k.name}  owner ${k.ownerId}  created ${k.createdAt.toISOString()}  ${state}\n`);
      }
    } else {
      if (!(await revokeApiKey(dbh.db, arg!))) throw new ServiceError('not_found', `no API key with prefix '${arg}' (give the 16-hex-digit prefix from \`keys list\` or the whole key)`);
      process.stderr.write(`revoked; requests with this key now get 401\n`);
    }
  } finally {
    await dbh.close();
  }
}

export async function cmdServe(): Promise<void> {
  const config = loadConfig();
  const { serve } = await import('./app.js');
  const app = await serve(config);
  process.stderr.write(`modelpress API on http://${config.host === '0.0.0.0' ? 'localhost' : config.host}:${config.port} — docs at /docs, OpenAPI at /openapi.json; store ${app.storage.describe()}\n`);
  await new Promise(() => {}); // until a signal
}

export async function cmdWorker(): Promise<void> {
  const config = loadConfig();
  const { startWorker } = await import('./worker/worker.js');
  const worker = await startWorker(config, {
    ...(process.env.RECONCILE_INTERVAL_MS ? { reconcileIntervalMs: Number(process.env.RECONCILE_INTERVAL_MS) } : {}),
    ...(process.env.STALE_RUNNING_MS ? { staleRunningMs: Number(process.env.STALE_RUNNING_MS) } : {}),
    ...(process.env.RETENTION_INTERVAL_MS ? { retentionIntervalMs: Number(process.env.RETENTION_INTERVAL_MS) } : {}),
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
