// `npm run bench:service`: upload and download throughput through the real API, S3 storage against the
// local disk, for a large model (default 100 MB; `--mb 10` for a quick check), written to its section of
// bench/service.md.
//
// Two API processes (`modelpress serve`), one per store, each on its own throwaway Postgres database: one on a
// local data directory, one on a bucket of s3rver (a real S3-protocol server, in its own process, on
// 127.0.0.1 and a free port). Each store first gets a job's artifact of the model's size (its worker is
// stopped once it is there); then rounds alternate the stores' order (local first, then S3 first), each
// round uploading distinct bytes (POST /v1/models, multipart streamed from the file) and downloading
// the artifact (GET /v1/jobs/<id>/artifact), while the API process's RSS is sampled. Child processes,
// the database, the queues' Redis keys and the temp files are removed at the end, also on errors.
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, openAsBlob, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadConfig } from '../service/config.js';
import { environment } from '../report/environment.js';
import { metadataTail, writeMatMulChain, type ChainModel } from './big-onnx.js';
import { rssBytes, startProc, stopProc, type Proc } from './processes.js';
import { writeSection } from './sections.js';
import { adminQuery, dropRedisKeys, freePort, runCli } from './service-setup.js';
import { REPO_ROOT } from './repo-root.js';

const ROOT = REPO_ROOT;
const CLI = join(ROOT, 'dist/src/cli/main.js');
const S3RVER_MAIN = fileURLToPath(new URL('./s3rver-main.js', import.meta.url));
export const SERVICE_MD = join(ROOT, 'bench/service.md');
export const STORAGE_SECTION = 'storage';

const MiB = 1024 * 1024;
const BUCKET = 'modelpress-bench';
/** A job whose result is the model itself, dense and of the same size: the artifact the downloads read. */
const SAME_SIZE_RECIPE = { steps: [{ pass: 'prune.magnitude', sparsity: 0 }], benchmark: { enabled: false }, evaluate: { maxSamples: 1 } };
const RSS_SAMPLE_MS = 20;
const SETTLE_MS = 1000;

type StoreId = 'local' | 's3';
const STORE_NAMES: Record<StoreId, string> = { local: 'local disk', s3: 'S3 (s3rver)' };

export interface StorageBenchOptions {
  /** Model size in MiB of weights. */
  mb: number;
  /** Timed rounds per store (after one untimed warm-up each). */
  rounds: number;
  /** Where to write the section; null: only return it. */
  out: string | null;
}

interface Transfer {
  seconds: number;
  bytes: number;
  rssBefore: number | null;
  rssPeak: number | null;
}

interface Round {
  round: number;
  store: StoreId;
  upload: Transfer;
  download: Transfer;
}

interface Stack {
  id: StoreId;
  base: string;
  /** An API key of this stack's database. */
  key: string;
  api: Proc;
  worker: Proc;
  artifactJob?: string;
  artifactBytes?: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (m: string) => process.stderr.write(`bench:service: ${m}\n`);

async function waitFor<T>(what: string, timeoutMs: number, fn: () => Promise<T | null | undefined | false>, procs: Proc[] = []): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < end) {
    for (const p of procs) if (p.exit && !p.stopping) throw new Error(`the ${p.name} exited (${p.exit.signal ?? `code ${p.exit.code}`}):\n${p.tail.slice(-20).join('\n')}`);
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await sleep(200);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (${(last as Error).message})` : ''}`);
}

/** Runs `transfer` while sampling the API's RSS; the RSS just before is read after a short settle. */
async function measured(apiPid: number, transfer: () => Promise<number>): Promise<Transfer> {
  await sleep(SETTLE_MS);
  const rssBefore = rssBytes(apiPid);
  let rssPeak = rssBefore;
  const sample = () => {
    const v = rssBytes(apiPid);
    if (v !== null && (rssPeak === null || v > rssPeak)) rssPeak = v;
  };
  const sampler = setInterval(sample, RSS_SAMPLE_MS);
  const t0 = performance.now();
  try {
    const bytes = await transfer();
    const seconds = (performance.now() - t0) / 1000;
    sample();
    return { seconds, bytes, rssBefore, rssPeak };
  } finally {
    clearInterval(sampler);
  }
}

/** POST /v1/models with the model plus `tail` (distinct content), streamed from the file; returns the bytes sent. */
async function upload(stack: Stack, model: ChainModel, tail: Buffer): Promise<number> {
  const form = new FormData();
  form.append('model', new Blob([await openAsBlob(model.path), tail]), 'chain.onnx');
  const res = await fetch(`${stack.base}/v1/models`, { method: 'POST', headers: { authorization: `Bearer ${stack.key}` }, body: form });
  const text = await res.text();
  if (res.status !== 201) throw new Error(`${stack.id}: POST /v1/models: ${res.status} ${text.slice(0, 500)}`);
  const size = (JSON.parse(text) as { sizeBytes: number }).sizeBytes;
  if (size !== model.sizeBytes + tail.length) throw new Error(`${stack.id}: stored ${size} bytes of ${model.sizeBytes + tail.length}`);
  return size;
}

/** GET the artifact, reading every byte (and hashing them when `verify`: the ETag must be their sha256). */
async function download(stack: Stack, verify = false): Promise<number> {
  const res = await fetch(`${stack.base}/v1/jobs/${stack.artifactJob}/artifact`, { headers: { authorization: `Bearer ${stack.key}` } });
  if (res.status !== 200 || !res.body) throw new Error(`${stack.id}: GET artifact: ${res.status} ${await res.text()}`);
  const hash = verify ? createHash('sha256') : null;
  let n = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    n += chunk.length;
    hash?.update(chunk);
  }
  if (n !== Number(res.headers.get('content-length'))) throw new Error(`${stack.id}: read ${n} bytes of ${res.headers.get('content-length')}`);
  if (hash && res.headers.get('etag') !== `"${hash.digest('hex')}"`) throw new Error(`${stack.id}: the ETag ${res.headers.get('etag')} is not the sha256 of the bytes`);
  return n;
}

export async function serviceStorageBench(opts: StorageBenchOptions): Promise<string> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first (or use \`npm run bench:service\`)`);
  const started = new Date();
  const loadBefore = loadavg();
  const defaults = loadConfig({ DATABASE_URL: process.env.DATABASE_URL, REDIS_URL: process.env.REDIS_URL });
  const hex = randomBytes(5).toString('hex');
  // a database per store: the service deduplicates models by content, and a model row of one store names no object in the other
  const dbNames: Record<StoreId, string> = { local: `modelpress_bench_${hex}_local`, s3: `modelpress_bench_${hex}_s3` };
  const dbUrl = (id: StoreId) => {
    const u = new URL(defaults.databaseUrl);
    u.pathname = `/${dbNames[id]}`;
    return u.toString();
  };
  const queues: Record<StoreId, string> = { local: `mpbench-local-${hex}`, s3: `mpbench-s3-${hex}` };
  const admin = (sql: string) => adminQuery(defaults.databaseUrl, sql);

  const dir = mkdtempSync(join(tmpdir(), 'modelpress-bench-storage-'));
  const procs: Proc[] = [];
  const dbCreated: string[] = [];
  const cleanup = async () => {
    for (const p of procs.reverse()) await stopProc(p, 15_000, log);
    for (const name of dbCreated) await admin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch((err: Error) => log(`could not drop database ${name}: ${err.message}`));
    await dropRedisKeys(defaults.redisUrl, Object.values(queues).map((q) => `bull:${q}:*`)).catch((err: Error) => log(`could not remove the queues' Redis keys: ${err.message}`));
    rmSync(dir, { recursive: true, force: true });
  };
  const onSignal = (sig: NodeJS.Signals) => {
    log(`${sig}: stopping the processes and removing the throwaway database`);
    void Promise.race([cleanup(), sleep(40_000)]).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const rounds: Round[] = [];
  let model: ChainModel;
  try {
    model = await writeMatMulChain(join(dir, 'chain.onnx'), opts.mb);
    log(`model: ${(model.sizeBytes / MiB).toFixed(1)} MB (${model.layers} MatMuls of ${model.width}×${model.width} float32), databases ${Object.values(dbNames).join(', ')}`);
    const keys = {} as Record<StoreId, string>;
    for (const id of ['local', 's3'] as StoreId[]) {
      await admin(`CREATE DATABASE ${dbNames[id]}`);
      dbCreated.push(dbNames[id]);
      await runCli(CLI, ['migrate'], { DATABASE_URL: dbUrl(id) });
      keys[id] = (await runCli(CLI, ['keys', 'create', 'bench-storage'], { DATABASE_URL: dbUrl(id) })).stdout.trim().split('\n').pop()!.trim();
    }

    mkdirSync(join(dir, 's3rver'));
    const s3 = startProc(S3RVER_MAIN, 's3rver', [join(dir, 's3rver'), BUCKET], {});
    procs.push(s3);
    const s3Port = await waitFor('s3rver', 20_000, async () => Number(/s3rver on (\d+)/.exec(s3.tail.join('\n'))?.[1]) || null, [s3]);

    const common: Record<string, string> = {
      REDIS_URL: defaults.redisUrl,
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      WORKER_CONCURRENCY: '1',
      RATE_LIMIT_UPLOADS_PER_MINUTE: '100000',
      RATE_LIMIT_JOBS_PER_MINUTE: '100000',
      MAX_MODELS_PER_OWNER: '10000',
      MAX_MODEL_BYTES_PER_OWNER: String(1024 * 1024 * MiB),
      SHUTDOWN_TIMEOUT_MS: '5000',
    };
    const storeEnv: Record<StoreId, Record<string, string>> = {
      local: { MODELPRESS_DATA_DIR: join(dir, 'local-data') },
      s3: {
        MODELPRESS_DATA_DIR: join(dir, 'unused-data'),
        MODELPRESS_STORAGE_URL: `s3://${BUCKET}/bench`,
        S3_ENDPOINT: `http://127.0.0.1:${s3Port}`,
        S3_FORCE_PATH_STYLE: '1',
        AWS_ACCESS_KEY_ID: 'S3RVER',
        AWS_SECRET_ACCESS_KEY: 'S3RVER',
        AWS_REGION: 'us-east-1',
      },
    };
    const stacks: Stack[] = [];
    for (const id of ['local', 's3'] as StoreId[]) {
      const port = await freePort();
      const env = { ...common, ...storeEnv[id], DATABASE_URL: dbUrl(id), MODELPRESS_QUEUE: queues[id], PORT: String(port) };
      const api = startProc(CLI, `${id} API`, ['serve'], env);
      const worker = startProc(CLI, `${id} worker`, ['worker'], { ...env, TMPDIR: mkdtempSync(join(dir, `${id}-worker-tmp-`)) });
      procs.push(api, worker);
      stacks.push({ id, base: `http://127.0.0.1:${port}`, key: keys[id], api, worker });
    }
    for (const s of stacks) {
      await waitFor(`the ${s.id} API`, 30_000, async () => (await fetch(`${s.base}/readyz`, { signal: AbortSignal.timeout(2000) })).status === 200, [s.api]);
      await waitFor(`the ${s.id} worker`, 30_000, async () => s.worker.tail.some((l) => /ready \(queue/.test(l)), [s.worker]);
    }

    // the artifacts to download: one job per store, then its worker stops (it would only take CPU)
    for (const s of stacks) {
      const form = new FormData();
      form.append('recipe', JSON.stringify(SAME_SIZE_RECIPE));
      form.append('model', new Blob([await openAsBlob(model.path)]), 'chain.onnx');
      const res = await fetch(`${s.base}/v1/jobs`, { method: 'POST', headers: { authorization: `Bearer ${s.key}` }, body: form });
      const body = await res.text();
      if (res.status !== 202) throw new Error(`${s.id}: POST /v1/jobs: ${res.status} ${body}`);
      s.artifactJob = (JSON.parse(body) as { id: string }).id;
    }
    for (const s of stacks) {
      const job = await waitFor(`the ${s.id} job`, 15 * 60_000, async () => {
        const j = (await (await fetch(`${s.base}/v1/jobs/${s.artifactJob}`, { headers: { authorization: `Bearer ${s.key}` } })).json()) as { status: string; error: unknown };
        return j.status === 'queued' || j.status === 'running' ? null : j;
      }, [s.api, s.worker]);
      if (job.status !== 'succeeded') throw new Error(`${s.id}: the job that makes the artifact ${job.status}: ${JSON.stringify(job.error)}\n${s.worker.tail.slice(-20).join('\n')}`);
      await stopProc(s.worker, 15_000, log);
      // warm-up, untimed: one download (the ETag checked against the bytes) and one upload
      s.artifactBytes = await download(s, true);
      await upload(s, model, metadataTail('bench', `${s.id}-warmup`));
      log(`${s.id}: artifact ${(s.artifactBytes / MiB).toFixed(1)} MB; warmed up`);
    }

    for (let r = 1; r <= opts.rounds; r++) {
      const order = r % 2 === 1 ? stacks : [...stacks].reverse();
      for (const s of order) {
        const up = await measured(s.api.pid, () => upload(s, model, metadataTail('bench', `${s.id}-${r}`)));
        const down = await measured(s.api.pid, () => download(s));
        rounds.push({ round: r, store: s.id, upload: up, download: down });
        log(`round ${r} ${s.id}: upload ${mbps(up).toFixed(0)} MB/s, download ${mbps(down).toFixed(0)} MB/s; API RSS +${fmt(rise(up))} / +${fmt(rise(down))} MB`);
      }
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await cleanup();
  }
  const md = render({ opts, model, rounds, started, loadBefore, loadAfter: loadavg(), finished: new Date() });
  if (opts.out) writeSection(opts.out, STORAGE_SECTION, md);
  return md;
}

// ---------------------------------------------------------------- the report

const mbps = (t: Transfer) => t.bytes / MiB / t.seconds;
const rise = (t: Transfer) => (t.rssBefore === null || t.rssPeak === null ? NaN : (t.rssPeak - t.rssBefore) / MiB);
const fmt = (x: number, digits = 1) => (Number.isFinite(x) ? x.toFixed(digits) : '—');
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length === 0 ? NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const spread = (xs: number[]) => `${fmt(median(xs), 0)} (${fmt(Math.min(...xs), 0)}–${fmt(Math.max(...xs), 0)})`;

function render(r: { opts: StorageBenchOptions; model: ChainModel; rounds: Round[]; started: Date; loadBefore: number[]; loadAfter: number[]; finished: Date }): string {
  const machine = environment();
  const size = r.model.sizeBytes / MiB;
  const la = (l: number[]) => l.map((x) => x.toFixed(2)).join(' ');
  const of = (store: StoreId) => r.rounds.filter((x) => x.store === store);
  const ratios = (pick: (t: Round) => Transfer) =>
    r.rounds.filter((x) => x.store === 's3').map((s) => {
      const l = r.rounds.find((x) => x.store === 'local' && x.round === s.round)!;
      return mbps(pick(s)) / mbps(pick(l));
    });
  const lines = [
    '## Storage: S3 against the local disk, through the API',
    '',
    `Measured ${r.started.toISOString().replace(/\.\d+Z$/, 'Z')} by \`npm run bench:service\` (src/bench/service-storage.ts) on ${machine.cpuModel} (${machine.cores} cores), Node ${machine.node}.`,
    `Load average (1/5/15 min) before: ${la(r.loadBefore)}; after: ${la(r.loadAfter)}. Run took ${((r.finished.getTime() - r.started.getTime()) / 1000).toFixed(0)} s.`,
    '',
    `Setup: two API processes (\`modelpress serve\`), one per store, each with its throwaway Postgres database: one on a local data directory, one on a`,
    'bucket of s3rver (a real S3-protocol server, in its own process, its files on this machine\'s disk) at 127.0.0.1. The model is a',
    `${fmt(size)} MB ONNX model (${r.model.layers} MatMuls of ${r.model.width}×${r.model.width} float32 weights, \`src/bench/big-onnx.ts\`).`,
    '- upload: POST /v1/models, multipart streamed from the file (fetch + FormData over a file-backed Blob), each time other bytes (one',
    '  metadata entry appended: nothing is deduplicated), timed until the 201 (the API has then stored it under its sha256 and checked its framing)',
    `- download: GET /v1/jobs/<id>/artifact of a job's result of the same size (\`${JSON.stringify(SAME_SIZE_RECIPE.steps[0])}\`, made before the`,
    '  measurement by a worker that is then stopped), every byte read, timed until the last one',
    `- ${r.opts.rounds} rounds per store after one untimed warm-up each (the warm-up download checks that the ETag is the sha256 of the bytes);`,
    '  rounds alternate the order (local first, then S3 first); MB = 2^20 bytes',
    `- API RSS: VmRSS of the API process that serves the transfer, read just before it (after ${SETTLE_MS / 1000} s idle) and every ${RSS_SAMPLE_MS} ms during it;`,
    '  "RSS rise" is the peak minus that value: a transfer that is streamed, not buffered, keeps it far below the model\'s size',
    '',
    `| store | upload MB/s, median (min–max) | download MB/s, median (min–max) | API RSS rise, upload (max) | API RSS rise, download (max) | model size |`,
    '|---|---|---|---|---|---|',
  ];
  for (const store of ['local', 's3'] as StoreId[]) {
    const xs = of(store);
    lines.push(
      `| ${STORE_NAMES[store]} | ${spread(xs.map((x) => mbps(x.upload)))} | ${spread(xs.map((x) => mbps(x.download)))} | ${fmt(Math.max(...xs.map((x) => rise(x.upload))))} MB | ${fmt(Math.max(...xs.map((x) => rise(x.download))))} MB | ${fmt(size)} MB |`,
    );
  }
  const up = ratios((x) => x.upload);
  const down = ratios((x) => x.download);
  lines.push(
    '',
    `S3 / local throughput, the median of per-round ratios (min–max): upload ${fmt(median(up), 2)}× (${fmt(Math.min(...up), 2)}–${fmt(Math.max(...up), 2)}), download ${fmt(median(down), 2)}× (${fmt(Math.min(...down), 2)}–${fmt(Math.max(...down), 2)}).`,
    '',
    '| round | store | upload s | upload MB/s | API RSS before → peak (upload) | download s | download MB/s | API RSS before → peak (download) |',
    '|---|---|---|---|---|---|---|---|',
  );
  const rss = (t: Transfer) => `${t.rssBefore === null ? '—' : fmt(t.rssBefore / MiB)} → ${t.rssPeak === null ? '—' : fmt(t.rssPeak / MiB)} MB`;
  for (const x of r.rounds) {
    lines.push(`| ${x.round} | ${STORE_NAMES[x.store]} | ${fmt(x.upload.seconds, 2)} | ${fmt(mbps(x.upload), 0)} | ${rss(x.upload)} | ${fmt(x.download.seconds, 2)} | ${fmt(mbps(x.download), 0)} | ${rss(x.download)} |`);
  }
  lines.push(
    '',
    'Note: the client, both APIs, s3rver, Postgres and Redis share this machine; all traffic is to 127.0.0.1. s3rver is not a production',
    'object store: S3 here costs the protocol (multipart parts, a server-side copy from `tmp/` to the content key, a second disk write',
    'in s3rver) without a network. Compare runs only from a quiet machine of the same kind (see the load average above).',
    '',
  );
  return lines.join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { mb: { type: 'string', default: '100' }, rounds: { type: 'string', default: '4' }, out: { type: 'string' } } });
  const mb = Number(values.mb);
  const rounds = Number(values.rounds);
  if (!(mb > 0) || !Number.isInteger(rounds) || rounds < 1) throw new Error('--mb must be > 0 and --rounds a positive integer');
  const out = values.out ?? SERVICE_MD;
  const md = await serviceStorageBench({ mb, rounds, out });
  process.stdout.write(`${md}\nwritten to ${out}\n`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().then(
    () => process.exit(0),
    (err: Error) => {
      log(`error: ${err.stack ?? err.message}`);
      process.exit(1);
    },
  );
}
