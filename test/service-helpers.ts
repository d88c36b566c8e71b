// Service test helpers: a fresh database per run (dropped at the end), a private queue name and data
// dir, the test's own infrastructure for an in-process API (app.inject), the API on a real port where
// the port matters, and workers as real child processes (so they can be SIGKILLed).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { Redis } from 'ioredis';
import type { FastifyInstance } from 'fastify';
import { ROOT } from './helpers.js';
import { loadConfig, type ServiceConfig } from '../src/service/config.js';
import { migrate } from '../src/service/db/migrate.js';
import { createDb, type DbHandle } from '../src/service/db/client.js';
import { createApiKey } from '../src/service/db/keys.js';
import type { Infra } from '../src/service/plugins/infra.js';
import { createQueue, redisConnection } from '../src/service/queue.js';
import { LocalStorage } from '../src/service/storage/local.js';

export const PG_ADMIN_URL = process.env.TEST_PG_ADMIN_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
export const MIGRATIONS = join(ROOT, 'prisma/migrations');
export const CLI = join(ROOT, 'dist/src/cli/main.js');

export async function adminQuery(sql: string, url = PG_ADMIN_URL): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(sql);
  } finally {
    await c.end();
  }
}

export interface TestDatabase {
  url: string;
  drop(): Promise<void>;
}

export async function freshDatabase(adminUrl = PG_ADMIN_URL): Promise<TestDatabase> {
  const name = `modelpress_test_${randomBytes(6).toString('hex')}`;
  await adminQuery(`CREATE DATABASE ${name}`, adminUrl);
  const u = new URL(adminUrl);
  u.pathname = `/${name}`;
  return { url: u.toString(), drop: () => adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`, adminUrl) };
}

export interface TestService {
  config: ServiceConfig;
  env: Record<string, string>;
  dbh: DbHandle;
  database: TestDatabase;
  dataDir: string;
  newKey(name?: string): Promise<string>;
  close(): Promise<void>;
}

/** A migrated fresh database, a private queue and data dir, and the env a worker/API process needs. */
export async function testService(overrides: Record<string, string> = {}, opts: { adminUrl?: string; redisUrl?: string } = {}): Promise<TestService> {
  const database = await freshDatabase(opts.adminUrl);
  await migrate(database.url, MIGRATIONS);
  const dataDir = mkdtempSync(join(tmpdir(), 'mp-service-'));
  const env: Record<string, string> = {
    DATABASE_URL: database.url,
    REDIS_URL: opts.redisUrl ?? TEST_REDIS_URL,
    MODELPRESS_DATA_DIR: dataDir,
    MODELPRESS_QUEUE: `mptest-${randomBytes(4).toString('hex')}`,
    JOB_LOCK_MS: '2000',
    RECONCILE_INTERVAL_MS: '1000',
    STALE_RUNNING_MS: '4000',
    SHUTDOWN_TIMEOUT_MS: '3000',
    PORT: '0',
    HOST: '127.0.0.1',
    ...overrides,
  };
  const config = loadConfig(env);
  const dbh = createDb(database.url);
  return {
    config,
    env,
    dbh,
    database,
    dataDir,
    newKey: async (name = 'test') => (await createApiKey(dbh.db, name)).key,
    async close() {
      await dropQueueKeys(env.REDIS_URL!, env.MODELPRESS_QUEUE!).catch(() => {});
      await dbh.close();
      await database.drop().catch(() => {});
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Real Postgres (the test database's handle), Redis, queue and storage for `buildApp({ infra })`; the test closes them. */
export async function testInfra(svc: TestService): Promise<{ infra: Infra; close(): Promise<void> }> {
  const redis = redisConnection(svc.config.redisUrl, 'request');
  const queueConnection = redisConnection(svc.config.redisUrl, 'blocking');
  // a request-path connection refuses commands until it is connected
  if (redis.status !== 'ready') await new Promise((r) => redis.once('ready', r));
  const queue = createQueue(svc.config, queueConnection);
  return {
    infra: { db: svc.dbh.db, redis, queue, storage: new LocalStorage(svc.dataDir) },
    async close() {
      await queue.obliterate({ force: true }).catch(() => {});
      await queue.close();
      redis.disconnect();
      queueConnection.disconnect();
    },
  };
}

/** Removes every Redis key of a test queue (the shared Redis keeps nothing of a test run). */
async function dropQueueKeys(url: string, queue: string): Promise<void> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1, connectTimeout: 2000, lazyConnect: true });
  redis.on('error', () => {});
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `bull:${queue}:*`, 'COUNT', 500);
      cursor = next;
      if (keys.length) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

export interface WorkerProcess {
  child: ChildProcess;
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export function startWorkerProcess(env: Record<string, string>): Promise<WorkerProcess> {
  const child = spawn(process.execPath, [CLI, 'worker'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const handle: WorkerProcess = {
    child,
    output: () => out,
    stop: (signal = 'SIGTERM') =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill(signal);
      }),
  };
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`worker did not start:\n${out}`)), 20_000);
    const check = () => {
      if (/ready \(queue/.test(out)) {
        clearTimeout(t);
        resolve(handle);
      }
    };
    child.stderr!.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`worker exited (${code}):\n${out}`));
    });
  });
}

/** Processes whose command line names this job's runner (`--job=<id>`). */
export function runnerPids(jobId: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      if (cmd.includes(`--job=${jobId}`)) pids.push(Number(p));
    } catch {
      /* gone */
    }
  }
  return pids;
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs = 30_000, everyMs = 200): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
}

/** The API as tests call it: fetch's Responses, whether over a real port or app.inject. */
export interface Api {
  get(path: string, headers?: Record<string, string>): Promise<Response>;
  /** FormData goes as multipart, an object as JSON, a string as it is (JSON unless the headers say otherwise). */
  post(path: string, body?: FormData | object | string, headers?: Record<string, string>): Promise<Response>;
  delete(path: string, headers?: Record<string, string>): Promise<Response>;
}

/** A real HTTP client for the API (multipart via FormData). */
export function client(base: string, key?: string): Api {
  const auth: Record<string, string> = key ? { authorization: `Bearer ${key}` } : {};
  return {
    async get(path: string, headers: Record<string, string> = {}) {
      return fetch(`${base}${path}`, { headers: { ...auth, ...headers } });
    },
    async post(path: string, body?: FormData | object | string, headers: Record<string, string> = {}) {
      const isForm = body instanceof FormData;
      return fetch(`${base}${path}`, {
        method: 'POST',
        headers: { ...auth, ...(body && !isForm ? { 'content-type': 'application/json' } : {}), ...headers },
        ...(body ? { body: isForm || typeof body === 'string' ? body : JSON.stringify(body) } : {}),
      });
    },
    async delete(path: string, headers: Record<string, string> = {}) {
      return fetch(`${base}${path}`, { method: 'DELETE', headers: { ...auth, ...headers } });
    },
  };
}

/** The same client over app.inject: no port, the bytes fetch would send. */
export function injectClient(app: FastifyInstance, key?: string): Api {
  const auth: Record<string, string> = key ? { authorization: `Bearer ${key}` } : {};
  async function send(method: 'GET' | 'POST' | 'DELETE', url: string, body: FormData | object | string | undefined, headers: Record<string, string>): Promise<Response> {
    let payload: Buffer | string | undefined;
    let contentType: Record<string, string> = {};
    if (body instanceof FormData) {
      const encoded = new Response(body); // multipart bytes and their boundary, as fetch makes them
      payload = Buffer.from(await encoded.arrayBuffer());
      contentType = { 'content-type': encoded.headers.get('content-type')! };
    } else if (body !== undefined) {
      payload = typeof body === 'string' ? body : JSON.stringify(body);
      contentType = { 'content-type': 'application/json' };
    }
    const res = await app.inject({ method, url, headers: { ...auth, ...contentType, ...headers }, ...(payload !== undefined ? { payload } : {}) });
    const out = new Headers();
    for (const [k, v] of Object.entries(res.headers)) for (const x of [v ?? []].flat()) out.append(k, String(x));
    return new Response([204, 304].includes(res.statusCode) ? null : res.rawPayload, { status: res.statusCode, headers: out });
  }
  return {
    get: (path, headers = {}) => send('GET', path, undefined, headers),
    post: (path, body, headers = {}) => send('POST', path, body, headers),
    delete: (path, headers = {}) => send('DELETE', path, undefined, headers),
  };
}

/** A problem+json response with this status and stable `code`, and nothing of the server's insides (no stack). */
export async function expectProblem(res: Response, status: number, code: string): Promise<{ code: string; status: number; detail: string; errors?: unknown; stack?: unknown }> {
  assert.equal(res.status, status, `expected ${status}, got ${res.status}: ${await res.clone().text()}`);
  assert.match(res.headers.get('content-type') ?? '', /application\/problem\+json/);
  const body = (await res.json()) as { code: string; status: number; detail: string; errors?: unknown; stack?: unknown };
  assert.equal(body.code, code);
  assert.equal(body.status, status);
  assert.equal(body.stack, undefined);
  assert.doesNotMatch(JSON.stringify(body), /at .*\.js:\d+/);
  return body;
}

/** A job as the API shows it (the fields tests read). */
export interface JobBody {
  id: string;
  status: string;
  attempt: number;
  cancelRequested: boolean;
  progress: { percent: number; step: number; steps: number; stepName: string | null };
  error: { code: string; message: string } | null;
  metrics: Record<string, unknown> | null;
}

export const finished = (j: JobBody) => !['queued', 'running'].includes(j.status);

/** Create a job (202 expected), read it, and wait for a state, through a real client. */
export function jobApi(api: Api) {
  const job = async (id: string) => (await (await api.get(`/v1/jobs/${id}`)).json()) as JobBody;
  return {
    job,
    async create(body: FormData | object): Promise<string> {
      const res = await api.post('/v1/jobs', body);
      if (res.status !== 202) throw new Error(`expected 202, got ${res.status}: ${await res.text()}`);
      return ((await res.json()) as JobBody).id;
    },
    until(id: string, pred: (j: JobBody) => boolean, what: string, timeoutMs = 60_000): Promise<JobBody> {
      return waitFor(what, async () => {
        const j = await job(id);
        return pred(j) ? j : null;
      }, timeoutMs);
    },
  };
}

export function jobForm(model: Uint8Array, recipe: unknown, extra: Record<string, string | { bytes: Uint8Array; name: string }> = {}): FormData {
  const form = new FormData();
  form.append('recipe', typeof recipe === 'string' ? recipe : JSON.stringify(recipe));
  form.append('model', new Blob([model]), 'model.onnx');
  for (const [k, v] of Object.entries(extra)) {
    if (typeof v === 'string') form.append(k, v);
    else form.append(k, new Blob([v.bytes]), v.name);
  }
  return form;
}

export const FAST_RECIPE = { steps: [{ pass: 'convert.fp16' }], benchmark: { enabled: false }, evaluate: { maxSamples: 16 } };
/** Real work that takes several seconds: timing the original and the fp16 model at batch 16. */
export const BUSY_RECIPE = { steps: [{ pass: 'convert.fp16' }], benchmark: { enabled: true, batchSizes: [16], warmup: 0, runs: 400, rounds: 2 }, evaluate: { maxSamples: 16 } };
/** Real work that takes minutes: timing the original model 100000 times at batch 16. */
export const SLOW_RECIPE = { steps: [{ pass: 'convert.fp16' }], benchmark: { enabled: true, batchSizes: [16], warmup: 0, runs: 100000 } };
