// Postgres and Redis restarted, flushed or down, while the service is idle and while it works: API
// and worker recover without a restart, no job is lost or run twice, no request gets a 500.
// Uses private servers on free ports (never the shared ones): its own Redis (AOF on, as the compose
// file runs it) and its own Postgres cluster.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/service/app.js';
import { isDatabaseUnreachable } from '../src/service/plugins/problems.js';
import { MODELS } from './helpers.js';
import { BUSY_RECIPE, client, FAST_RECIPE, finished, jobApi, jobForm, startWorkerProcess, testService, waitFor, type TestService, type WorkerProcess } from './service-helpers.js';

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
  redis = spawn(REDIS!, ['--port', String(redisPort), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--maxmemory-policy', 'noeviction'], { stdio: 'ignore' });
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

const pgCtlArgs = (action: string) => ['-D', join(dir, 'pg'), '-l', join(dir, 'pg.log'), '-w', '-m', 'fast', '-o', `-p ${pgPort} -k ${dir} -c listen_addresses=127.0.0.1`, action];
const pgCtl = (action: string) => pgTool('pg_ctl', pgCtlArgs(action));
/** pg_ctl without blocking this process: the API under test runs in it and must keep serving meanwhile. */
function pgCtlAsync(action: string): Promise<void> {
  const cmd = join(PG_BIN!, 'pg_ctl');
  const [file, args] = asRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...pgCtlArgs(action)]] : [cmd, pgCtlArgs(action)];
  return new Promise((resolve, reject) => execFile(file, args, (err) => (err ? reject(err) : resolve())));
}

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

async function busyApi() {
  const api = client(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, await svc.newKey(`busy-${Math.random()}`));
  const jobs = jobApi(api);
  return {
    api,
    ...jobs,
    create: (recipe: object = BUSY_RECIPE) => jobs.create(jobForm(readFileSync(MODELS.fmnist), recipe)),
    /** The job succeeded once: one attempt, one artifact row, and the bytes served match their ETag. */
    async assertOneArtifact(id: string): Promise<void> {
      const j = await jobs.job(id);
      assert.equal(j.status, 'succeeded', JSON.stringify(j));
      assert.equal(j.attempt, 1, 'run once');
      assert.equal(await svc.dbh.db.artifact.count({ where: { jobId: id } }), 1);
      const res = await api.get(`/v1/jobs/${id}/artifact`);
      assert.equal(res.status, 200);
      const sha = createHash('sha256').update(new Uint8Array(await res.arrayBuffer())).digest('hex');
      assert.equal(res.headers.get('etag'), `"${sha}"`);
    },
  };
}
const redisCli = (...args: string[]) => execFileSync('redis-cli', ['-p', String(redisPort), ...args], { encoding: 'utf8' });

test('Redis restarted in the middle of a job (AOF on) → the job succeeds once, with one artifact', { skip }, async () => {
  const b = await busyApi();
  const id = await b.create();
  await b.until(id, (j) => j.status === 'running', 'the job to start');
  await stopRedis();
  await new Promise((r) => setTimeout(r, 3000)); // longer than the job lock (JOB_LOCK_MS=2000)
  await startRedis();
  await b.until(id, finished, 'the job to finish');
  await b.assertOneArtifact(id);
});

test('Redis FLUSHALL with one job running and two queued → all three finish', { skip }, async () => {
  const b = await busyApi();
  const ids = [await b.create(), await b.create(), await b.create()];
  await b.until(ids[0]!, (j) => j.status === 'running', 'the first job to start');
  assert.equal((await b.job(ids[2]!)).status, 'queued');
  redisCli('FLUSHALL');
  for (const id of ids) {
    await b.until(id, finished, `job ${id} to finish after the flush`, 120_000);
    await b.assertOneArtifact(id);
  }
});

test('POST while Redis is down → 503 and no job row; accepted again once Redis is back', { skip }, async () => {
  const b = await busyApi();
  const before = await svc.dbh.db.job.count();
  await stopRedis();
  try {
    const res = await b.api.post('/v1/jobs', jobForm(readFileSync(MODELS.fmnist), FAST_RECIPE));
    assert.equal(res.status, 503, await res.clone().text());
    assert.equal(((await res.json()) as { code: string }).code, 'unavailable');
    assert.equal(await svc.dbh.db.job.count(), before, 'no row for a refused job');
  } finally {
    await startRedis();
  }
  await waitFor('readiness', async () => (await b.api.get('/readyz')).status === 200, 20_000);
  const id = await b.create(FAST_RECIPE);
  assert.equal((await b.until(id, finished, 'the job after Redis came back')).status, 'succeeded');
});

test('Postgres down and back under a polling load → 503s while it is down, never a 500; the running job succeeds', { skip }, async (t) => {
  const b = await busyApi();
  const id = await b.create();
  await b.until(id, (j) => j.status === 'running', 'the job to start');
  const statuses = new Map<number, number>();
  let polling = true;
  const poller = async () => {
    for (let i = 0; polling && i < 5000; i++) {
      const res = await b.api.get(`/v1/jobs/${id}`).catch(() => null);
      const code = res?.status ?? 0;
      statuses.set(code, (statuses.get(code) ?? 0) + 1);
      await res?.arrayBuffer().catch(() => {});
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const pollers = Array.from({ length: 4 }, poller);
  await new Promise((r) => setTimeout(r, 500));
  // down for a while (a restart alone is over in a few hundred ms), then up again
  await pgCtlAsync('stop');
  // what a route's own query throws when Postgres is gone is recognised as "unreachable" (→ 503)
  const err = await svc.dbh.db.job.findFirst({}).then(() => null, (e: unknown) => e);
  assert.ok(err && isDatabaseUnreachable(err), `not recognised: ${String(err)}`);
  await new Promise((r) => setTimeout(r, 1500));
  await pgCtlAsync('start');
  await new Promise((r) => setTimeout(r, 2000));
  polling = false;
  await Promise.all(pollers);
  const seen = Object.fromEntries(statuses);
  t.diagnostic(`poll statuses during the restart: ${JSON.stringify(seen)}`);
  assert.ok(!statuses.has(500), `no 500: ${JSON.stringify(seen)}`);
  assert.deepEqual([...statuses.keys()].filter((c) => c !== 200 && c !== 503), [], JSON.stringify(seen));
  assert.ok((statuses.get(200) ?? 0) > 0);
  assert.ok((statuses.get(503) ?? 0) > 0, 'the outage was seen (else this test tests nothing)');
  await b.until(id, finished, 'the job to finish after the restart', 120_000);
  await b.assertOneArtifact(id);
});
