// What the service benchmarks (`npm run load`, `npm run bench:service`) set up around the processes they
// start: a free port, the CLI run to completion, a throwaway database, and the Redis keys to remove after.
import { execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import pg from 'pg';

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Runs one statement (CREATE/DROP DATABASE) on the server of `databaseUrl`, connected to its `postgres` database. */
export async function adminQuery(databaseUrl: string, sql: string): Promise<void> {
  const url = new URL(databaseUrl);
  url.pathname = '/postgres';
  const c = new pg.Client({ connectionString: url.toString(), connectionTimeoutMillis: 10_000 });
  c.on('error', () => {});
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end().catch(() => {});
  }
}

/** `node <cli> ...args` to completion, with `env` over this process's environment. */
export function runCli(cli: string, args: string[], env: Record<string, string>, timeoutMs = 60_000): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [cli, ...args], { env: { ...process.env, ...env }, timeout: timeoutMs, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`modelpress ${args.join(' ')} failed: ${err.message}\n${stderr}`));
      else resolve({ stdout, stderr });
    });
  });
}

/** Deletes every key matching the patterns (SCAN, bounded). */
export async function dropRedisKeys(url: string, patterns: string[]): Promise<void> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1, connectTimeout: 2000, lazyConnect: true });
  redis.on('error', () => {});
  try {
    await redis.connect();
    for (const pattern of patterns) {
      let cursor = '0';
      let rounds = 0;
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
        cursor = next;
        if (keys.length) await redis.del(...keys);
      } while (cursor !== '0' && ++rounds < 10_000);
    }
  } finally {
    redis.disconnect();
  }
}
