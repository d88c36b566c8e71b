// Postgres and Redis restarted while the service is idle: API and worker recover without a restart.
// Uses private servers on free ports (never the shared ones): its own Redis and its own Postgres cluster.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/service/app.js';
import { MODELS } from './helpers.js';
import { client, FAST_RECIPE, jobForm, startWorkerProcess, testService, waitFor, type TestService, type WorkerProcess } from './service-helpers.js';

const PG_BIN = ['/usr/lib/postgresql/15/bin', '/usr/lib/postgresql/16/bin', '/usr/lib/postgresql/17/bin'].find((d) => existsSync(join(d, 'initdb')));
const REDIS = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find(existsSync);
const skip = !PG_BIN || !REDIS ? 'needs postgresql and redis-server installed (scripts/setup.sh)' : false;

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

const asRoot = process.getuid?.() === 0;
/** Postgres refuses to run as root: run its tools as the `postgres` user then. */
function pgTool(tool: string, args: string[]): string {
  const cmd = join(PG_BIN!, tool);
  return asRoot ? execFileSync('runuser', ['-u', 'postgres', '--', cmd, ...args], { encoding: 'utf8' }) : execFileSync(cmd, args, { encoding: 'utf8' });
}

let dir: string;
let pgPort: number;
let redisPort: number;
let redis: ChildProcess | null = null;
let svc: TestService;
let app: FastifyInstance;
let worker: WorkerProcess;

function startRedis(): Promise<void> {
  redis = spawn(REDIS!, ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction'], { stdio: 'ignore' });
  return waitFor('private redis', async () => {
    try {
      execFileSync('redis-cli', ['-p', String(redisPort), 'ping'], { stdio: 'pipe' });
      return true;
    } catch {
      return false;
    }
  }, 10_000).then(() => {});
}

function stopRedis(): Promise<void> {
  return new Promise((resolve) => {
    if (!redis || redis.exitCode !== null) return resolve();
    redis.once('exit', () => resolve());
    redis.kill('SIGTERM');
  });
}

const pgCtl = (action: string) => pgTool('pg_ctl', ['-D', join(dir, 'pg'), '-l', join(dir, 'pg.log'), '-w', '-m', 'fast', '-o', `-p ${pgPort} -k ${dir} -c listen_addresses=127.0.0.1`, action]);

before(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), 'mp-restart-'));
  chmodSync(dir, 0o777);
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(dir, uid, gid);
  }
  pgPort = await freePort();
  redisPort = await freePort();
  pgTool('initdb', ['-D', join(dir, 'pg'), '-A', 'trust', '-U', 'postgres', '--no-sync']);
  pgCtl('start');
  await startRedis();
  svc = await testService({}, { adminUrl: `postgresql://postgres@127.0.0.1:${pgPort}/postgres`, redisUrl: `redis://127.0.0.1:${redisPort}` });
  app = await buildApp({ config: svc.config, forceCloseConnections: true });
  await app.listen({ port: 0, host: '127.0.0.1' });
  worker = await startWorkerProcess(svc.env);
});

after(async () => {
  if (skip) return;
  await worker?.stop();
  await app?.close();
  await svc?.dbh.close();
  await stopRedis();
  try {
    pgCtl('stop');
  } catch {
    /* already down */
  }
  rmSync(dir, { recursive: true, force: true });
});

test('restart Postgres and Redis while idle → readiness and jobs recover without restarting API or worker', { skip }, async () => {
  const api = client(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, await svc.newKey('restart'));
  const model = readFileSync(MODELS.fmnist);
  const runJob = async () => {
    const res = await api.post('/v1/jobs', jobForm(model, FAST_RECIPE));
    assert.equal(res.status, 202, await res.clone().text());
    const { id } = (await res.json()) as { id: string };
    return waitFor(`job ${id} to succeed`, async () => {
      const j = (await (await api.get(`/v1/jobs/${id}`)).json()) as { status: string; error: unknown };
      if (j.status === 'failed' || j.status === 'canceled') throw new Error(JSON.stringify(j));
      return j.status === 'succeeded' ? j : null;
    }, 60_000);
  };
  await runJob();

  pgCtl('restart');
  await waitFor('readiness after the Postgres restart', async () => (await api.get('/readyz')).status === 200, 20_000);
  await runJob();

  await stopRedis();
  const down = await api.get('/readyz');
  assert.equal(down.status, 503, 'not ready while Redis is down');
  assert.equal(((await down.json()) as { code: string }).code, 'unavailable');
  await startRedis();
  await waitFor('readiness after the Redis restart', async () => (await api.get('/readyz')).status === 200, 20_000);
  await runJob();
  assert.equal(worker.child.exitCode, null, 'the same worker process served all three jobs');
});
