// `npm run load`: a bounded load and soak test of the service, written to bench/service.md.
//
// Starts the real API and one worker as child processes against a throwaway Postgres database
// (modelpress_load_<hex>, dropped at the end), a private queue and a temporary data dir; keeps the
// worker busy with a slow job; then (1) polls GET /v1/jobs/<id> with autocannon for a fixed time and
// (2) sends rounds of concurrent POST /v1/models uploads while sampling the API's RSS. Every loop and
// wait is bounded; child processes are stopped (process group, SIGTERM then SIGKILL) even on error.
// Exit 0 when the service worked (targets missed or not: it is a benchmark), 1 when it failed
// (5xx answers, the API died, a step of the service did not work) or the run could not be set up.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { loadConfig } from '../service/config.js';
import { fmtMB, renderLoadReport, type LoadReport, type PollResult, type UploadRound } from './load-report.js';
import { rssBytes, startProc, stopAll, stopProc, type Proc } from './processes.js';
import { adminQuery, dropRedisKeys, freePort, runCli as runCliAt } from './service-setup.js';
import { writeSection } from './sections.js';
import { REPO_ROOT } from './repo-root.js';

const ROOT = REPO_ROOT;
const CLI = join(ROOT, 'dist/src/cli/main.js');
const MODEL = join(ROOT, 'test/fixtures/fmnist/fmnist-cnn.onnx');
const OUT = join(ROOT, 'bench/service.md');

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** Everything this run does, in one place (printed into the report). */
const SETTINGS = {
  pollConnections: 10,
  pollDurationSec: 20,
  uploadsPerRound: 50,
  uploadRounds: 2,
  rssSampleMs: 100,
  settleMs: 3000,
  uploadTimeoutMs: 120_000,
  /** The whole run; past it everything is stopped and the run fails. */
  hardLimitMs: 10 * 60_000,
  apiLogLevel: process.env.LOG_LEVEL || 'info',
  slowRecipe: { steps: [{ pass: 'convert.fp16' }], benchmark: { enabled: true, batchSizes: [16], warmup: 0, runs: 100000 } },
  limits: {
    RATE_LIMIT_JOBS_PER_MINUTE: '100000',
    RATE_LIMIT_UPLOADS_PER_MINUTE: '100000',
    MAX_ACTIVE_JOBS_PER_OWNER: '100000',
    MAX_MODELS_PER_OWNER: '1000',
    MAX_MODEL_BYTES_PER_OWNER: String(10 * GiB),
    WORKER_CONCURRENCY: '1',
    SHUTDOWN_TIMEOUT_MS: '5000',
  } as Record<string, string>,
};

const TARGETS = { pollRps: 200, pollP99Ms: 50, rssGrowthMB: 100 };
// ---------------------------------------------------------------- small helpers

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (m: string) => process.stderr.write(`load: ${m}\n`);

class ServiceFailure extends Error {}

async function until<T>(what: string, timeoutMs: number, everyMs: number, fn: () => Promise<T | null | undefined | false>): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    checkAlive();
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await sleep(everyMs);
  }
  throw new ServiceFailure(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${(last as Error).message})` : ''}`);
}

const runCli = (args: string[], env: Record<string, string>, timeoutMs = 60_000) => runCliAt(CLI, args, env, timeoutMs);

let api: Proc | null = null;
let worker: Proc | null = null;
/** Set by main once it knows what to remove; until then there is nothing but processes to stop. */
let cleanup: () => Promise<void> = async () => {
  await stopAll(5000, log);
};

/** Throws when the API or the worker died while we did not stop it. */
function checkAlive(): void {
  for (const p of [api, worker]) {
    if (p && p.exit && !p.stopping) {
      throw new ServiceFailure(`the ${p.name} exited unexpectedly (${p.exit.signal ?? `code ${p.exit.code}`})`);
    }
  }
}

// ---------------------------------------------------------------- measurements

async function poll(base: string, key: string, jobId: string): Promise<PollResult> {
  const r = await autocannon({
    url: `${base}/v1/jobs/${jobId}`,
    method: 'GET',
    headers: { authorization: `Bearer ${key}` },
    connections: SETTINGS.pollConnections,
    duration: SETTINGS.pollDurationSec,
    timeout: 10,
  });
  const requests = r['1xx'] + r['2xx'] + r['3xx'] + r['4xx'] + r['5xx'];
  return {
    requests,
    rps: requests / r.duration,
    p50: r.latency.p50,
    p99: r.latency.p99,
    max: r.latency.max,
    non2xx: r.non2xx,
    s4xx: r['4xx'],
    s5xx: r['5xx'],
    errors: r.errors,
    timeouts: r.timeouts,
    durationSec: r.duration,
  };
}

async function uploadRound(round: number, base: string, key: string, model: Buffer, apiPid: number): Promise<UploadRound> {
  const n = SETTINGS.uploadsPerRound;
  // distinct bytes per upload (the store dedupes identical ones): the model plus a unique tail
  const bodies = Array.from({ length: n }, () => Buffer.concat([model, randomBytes(64)]));
  await sleep(SETTINGS.settleMs);
  const rssBefore = rssBytes(apiPid);
  let rssPeak = rssBefore;
  // garbage left by earlier phases may be collected during the round, which hides the round's own
  // growth behind a lower RSS: also track the largest rise from a low to a later sample
  let rssLow = rssBefore;
  let rssRise: number | null = rssBefore === null ? null : 0;
  const sample = () => {
    const v = rssBytes(apiPid);
    if (v === null) return;
    if (rssPeak === null || v > rssPeak) rssPeak = v;
    if (rssLow === null || v < rssLow) rssLow = v;
    rssRise = Math.max(rssRise ?? 0, v - rssLow);
  };
  const sampler = setInterval(sample, SETTINGS.rssSampleMs);
  const statuses: Record<string, number> = {};
  const failures: string[] = [];
  let slowestMs = 0;
  const t0 = performance.now();
  try {
    await Promise.all(
      bodies.map(async (bytes, i) => {
        const form = new FormData();
        form.append('model', new Blob([bytes]), `load-${round}-${i}.onnx`);
        const s = performance.now();
        try {
          const res = await fetch(`${base}/v1/models`, {
            method: 'POST',
            headers: { authorization: `Bearer ${key}` },
            body: form,
            signal: AbortSignal.timeout(SETTINGS.uploadTimeoutMs),
          });
          const text = await res.text();
          statuses[res.status] = (statuses[res.status] ?? 0) + 1;
          if (res.status >= 300 && failures.length < 5) failures.push(`${res.status} ${text.slice(0, 300)}`);
        } catch (err) {
          statuses.error = (statuses.error ?? 0) + 1;
          if (failures.length < 5) failures.push(`request error: ${(err as Error).message}`);
        }
        slowestMs = Math.max(slowestMs, performance.now() - s);
      }),
    );
  } finally {
    clearInterval(sampler);
  }
  const totalMs = performance.now() - t0;
  sample();
  await sleep(SETTINGS.settleMs);
  const rssAfter = rssBytes(apiPid);
  return { round, bytesEach: model.length + 64, statuses, failures, totalMs, slowestMs, rssBefore, rssPeak, rssLow, rssRise, rssAfter };
}

async function jobStatus(base: string, key: string, jobId: string): Promise<string> {
  const res = await fetch(`${base}/v1/jobs/${jobId}`, { headers: { authorization: `Bearer ${key}` }, signal: AbortSignal.timeout(10_000) });
  if (res.status >= 500) throw new ServiceFailure(`GET /v1/jobs/${jobId}: ${res.status} ${await res.text()}`);
  if (res.status !== 200) throw new Error(`GET /v1/jobs/${jobId}: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { status: string }).status;
}

// ---------------------------------------------------------------- the run

async function main(): Promise<number> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first (or use \`npm run load\`)`);
  const model = readFileSync(MODEL);
  const defaults = loadConfig({ DATABASE_URL: process.env.DATABASE_URL, REDIS_URL: process.env.REDIS_URL });
  const dbName = `modelpress_load_${randomBytes(6).toString('hex')}`;
  const dbUrl = new URL(defaults.databaseUrl);
  dbUrl.pathname = `/${dbName}`;
  const queue = `mpload-${randomBytes(4).toString('hex')}`;
  const redisUrl = defaults.redisUrl;

  const admin = (sql: string) => adminQuery(defaults.databaseUrl, sql);

  const rep: LoadReport = { startedAt: new Date(), loadBefore: loadavg(), apiRssStart: null, uploads: [], failures: [] };
  let dataDir: string | null = null;
  let dbCreated = false;
  let ownerId: string | null = null;
  let measured = false;
  let setupError: Error | null = null;

  // one idempotent cleanup for the normal end, errors, the hard time limit and SIGINT/SIGTERM
  let cleaning: Promise<void> | null = null;
  cleanup = () =>
    (cleaning ??= (async () => {
      // worker first: it cancels/kills its job runner; each is SIGKILLed (with its group) if it does not stop
      if (worker) await stopProc(worker, 15_000);
      if (api) await stopProc(api, 15_000);
      if (dbCreated) await admin(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch((err: Error) => log(`could not drop database ${dbName}: ${err.message}`));
      await dropRedisKeys(redisUrl, [`bull:${queue}:*`, ...(ownerId ? [`modelpress:ratelimit:jobs:${ownerId}:*`] : [])]).catch((err: Error) =>
        log(`could not remove the queue's Redis keys: ${err.message}`),
      );
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    })());

  const hardLimit = setTimeout(() => {
    log(`the run exceeded ${SETTINGS.hardLimitMs / 1000} s; stopping everything`);
    void Promise.race([cleanup(), sleep(30_000)]).finally(() => process.exit(1));
  }, SETTINGS.hardLimitMs);
  hardLimit.unref();

  try {
    log(`database ${dbName}, queue ${queue}`);
    await admin(`CREATE DATABASE ${dbName}`);
    dbCreated = true;
    const dbEnv = { DATABASE_URL: dbUrl.toString() };
    await runCli(['migrate'], dbEnv);
    const created = await runCli(['keys', 'create', 'load'], dbEnv);
    const key = created.stdout.trim().split('\n').pop()!.trim();
    ownerId = /owner (\S+?);/.exec(created.stderr)?.[1] ?? null;
    if (!/^mp_/.test(key)) throw new Error(`keys create printed no key: ${created.stdout}`);

    dataDir = mkdtempSync(join(tmpdir(), 'modelpress-load-'));
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const env: Record<string, string> = {
      DATABASE_URL: dbUrl.toString(),
      REDIS_URL: redisUrl,
      MODELPRESS_DATA_DIR: dataDir,
      MODELPRESS_QUEUE: queue,
      HOST: '127.0.0.1',
      PORT: String(port),
      LOG_LEVEL: SETTINGS.apiLogLevel,
      ...SETTINGS.limits,
    };
    api = startProc(CLI, 'API', ['serve'], env);
    worker = startProc(CLI, 'worker', ['worker'], env);
    await until('the API /readyz', 30_000, 200, async () => (await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(2000) })).status === 200);
    await until('the worker to be ready', 30_000, 200, async () => worker!.tail.some((l) => /ready \(queue/.test(l)));
    rep.apiRssStart = rssBytes(api.pid);
    log(`API pid ${api.pid} on ${base}, worker pid ${worker.pid}`);

    // the slow job
    const form = new FormData();
    form.append('recipe', JSON.stringify(SETTINGS.slowRecipe));
    form.append('model', new Blob([model]), 'fmnist-cnn.onnx');
    const created202 = await fetch(`${base}/v1/jobs`, { method: 'POST', headers: { authorization: `Bearer ${key}` }, body: form, signal: AbortSignal.timeout(60_000) });
    const jobBody = await created202.text();
    if (created202.status !== 202) throw new ServiceFailure(`POST /v1/jobs: ${created202.status} ${jobBody}`);
    const jobId = (JSON.parse(jobBody) as { id: string }).id;
    await until(`job ${jobId} to be running`, 60_000, 250, async () => {
      const s = await jobStatus(base, key, jobId);
      if (s !== 'running' && s !== 'queued') throw new ServiceFailure(`job ${jobId} is ${s} before the measurement started`);
      return s === 'running';
    });
    log(`job ${jobId} running; polling for ${SETTINGS.pollDurationSec} s with ${SETTINGS.pollConnections} connections`);
    measured = true;

    rep.poll = await poll(base, key, jobId);
    checkAlive();
    rep.apiRssAfterPoll = rssBytes(api.pid);
    log(`polls: ${rep.poll.rps.toFixed(0)}/s, p50 ${rep.poll.p50} ms, p99 ${rep.poll.p99} ms, ${rep.poll.non2xx} non-2xx, ${rep.poll.errors} errors`);
    if (rep.poll.s5xx > 0) rep.failures.push(`${rep.poll.s5xx} 5xx answers to GET /v1/jobs/<id>`);
    rep.jobStatusAfterPoll = await jobStatus(base, key, jobId);

    for (let round = 1; round <= SETTINGS.uploadRounds; round++) {
      log(`upload round ${round}: ${SETTINGS.uploadsPerRound} concurrent uploads`);
      const u = await uploadRound(round, base, key, model, api.pid);
      rep.uploads.push(u);
      checkAlive();
      log(`  ${JSON.stringify(u.statuses)} in ${(u.totalMs / 1000).toFixed(2)} s; RSS ${fmtMB(u.rssBefore)} → peak ${fmtMB(u.rssPeak)} → ${fmtMB(u.rssAfter)}`);
      const n5xx = Object.entries(u.statuses).filter(([k]) => /^5/.test(k)).reduce((a, [, v]) => a + v, 0);
      if (n5xx > 0) rep.failures.push(`upload round ${round}: ${n5xx} 5xx answers (${u.failures[0] ?? ''})`);
      for (const f of u.failures) log(`  ${f}`);
    }
    rep.jobStatusAfterUploads = await jobStatus(base, key, jobId);

    // cancel the slow job and see it canceled by its worker
    const cancel = await fetch(`${base}/v1/jobs/${jobId}/cancel`, { method: 'POST', headers: { authorization: `Bearer ${key}` }, signal: AbortSignal.timeout(10_000) });
    const cancelText = await cancel.text();
    if (cancel.status >= 500) throw new ServiceFailure(`POST /v1/jobs/${jobId}/cancel: ${cancel.status} ${cancelText}`);
    if (cancel.status === 200 || cancel.status === 202) {
      rep.jobCanceled = await until(`job ${jobId} to be canceled`, 30_000, 250, async () => (await jobStatus(base, key, jobId)) === 'canceled').catch((err: Error) => {
        rep.failures.push(err.message);
        return false;
      });
    } else {
      // 409: it finished already (it should not have; reported as a busy-worker FAIL above)
      rep.jobCanceled = false;
      log(`cancel: ${cancel.status} ${cancelText}`);
    }
    checkAlive();
    if (api.errorLines > 0) log(`the API logged ${api.errorLines} error line(s)`);
  } catch (err) {
    if (err instanceof ServiceFailure || measured) {
      rep.failures.push((err as Error).message);
    } else {
      setupError = err as Error;
    }
  } finally {
    if (api?.exit && !api.stopping && !rep.failures.some((f) => f.startsWith('the API exited'))) {
      rep.failures.push(`the API exited unexpectedly (${api.exit.signal ?? `code ${api.exit.code}`})`);
    }
    await cleanup();
    clearTimeout(hardLimit);
  }

  const serviceFailed = rep.failures.length > 0;
  if (serviceFailed) {
    for (const f of rep.failures) log(`SERVICE FAILURE: ${f}`);
    for (const p of [api, worker]) if (p && p.tail.length) log(`last output of the ${p.name}:\n${p.tail.slice(-20).join('\n')}`);
  }
  if (setupError) {
    log(`could not run the load test: ${setupError.message}`);
    for (const p of [api, worker]) if (p && p.tail.length) log(`last output of the ${p.name}:\n${p.tail.slice(-20).join('\n')}`);
  }
  if (!measured) {
    log(`nothing was measured; ${OUT} is left as it was`);
    return 1;
  }
  rep.finishedAt = new Date();
  rep.loadAfter = loadavg();
  const md = renderLoadReport(rep, SETTINGS, TARGETS, serviceFailed);
  // bench/service.md is shared: this run rewrites its own section only (`npm run bench:service` writes another)
  writeSection(OUT, 'load', md);
  process.stdout.write(`${md}\nwritten to ${OUT}\n`);
  return serviceFailed ? 1 : 0;
}

let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    if (interrupted) return;
    interrupted = true;
    log(`${sig}: stopping the service processes and removing the throwaway database`);
    void Promise.race([cleanup(), sleep(40_000)]).finally(() => process.exit(130));
  });
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    log(`error: ${err.stack ?? err.message}`);
    process.exit(1);
  },
);
