// Scale-out: the API and two workers as separate processes, each with its own empty data directory and
// temp directory, and nothing in common but Postgres, Redis and one S3 bucket (s3rver on a free port).
// Four jobs succeed, both workers run jobs (at the same time: each has concurrency 1), the artifacts
// download through the API with ETag = sha256 of the bytes and Range, and afterwards no process's
// directory holds a model or an artifact: everything lives in the bucket.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { MODELS } from './helpers.js';
import { startS3, type TestS3 } from './s3-helpers.js';
import { CLI, client, finished, jobApi, jobForm, startWorkerProcess, testService, waitFor, type TestService, type WorkerProcess } from './service-helpers.js';

const PREFIX = 'scale';
/** Real work that keeps a worker busy for a second or more: timing the original and the fp16 model at batch 16. */
const RECIPE = { steps: [{ pass: 'convert.fp16' }], benchmark: { enabled: true, batchSizes: [16], warmup: 0, runs: 100, rounds: 2 }, evaluate: { maxSamples: 16 } };
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const model = readFileSync(MODELS.fmnist);

let s3: TestS3;
let svc: TestService;
const dirs: string[] = [];
const privateDir = (what: string) => {
  const d = mkdtempSync(join(tmpdir(), `mp-scale-${what}-`));
  dirs.push(d);
  return d;
};

before(async () => {
  s3 = await startS3();
  svc = await testService({ ...s3.env(PREFIX), WORKER_CONCURRENCY: '1' });
});

after(async () => {
  await svc?.close();
  await s3?.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const p = (srv.address() as AddressInfo).port;
      srv.close(() => resolve(p));
    });
  });
}

/** The model with one more metadata_props entry (ModelProto field 14, appended): four models, four artifacts. */
function withMetadata(bytes: Uint8Array, key: string, value: string): Uint8Array {
  const str = (field: number, s: string) => Buffer.concat([Buffer.from([(field << 3) | 2, Buffer.byteLength(s)]), Buffer.from(s)]);
  const entry = Buffer.concat([str(1, key), str(2, value)]);
  return Buffer.concat([bytes, Buffer.from([(14 << 3) | 2, entry.length]), entry]);
}

/** Every file under `dir` (relative paths), except onnxruntime's own telemetry files (`.ses`, `mat-debug-<pid>.log`). */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (name !== '.ses' && !/^mat-debug-\d+\.log$/.test(name)) out.push(relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

test('the API and two workers with their own empty directories and only S3 in common: four jobs succeed on both workers; artifacts download with ETag = sha256 and Range; no directory keeps an artifact', async () => {
  const api = { data: privateDir('api-data'), tmp: privateDir('api-tmp') };
  const workers = [0, 1].map((i) => ({ data: privateDir(`worker${i}-data`), tmp: privateDir(`worker${i}-tmp`) }));
  const port = await freePort();
  let apiProc: ChildProcess | null = null;
  let apiOut = '';
  const procs: WorkerProcess[] = [];
  try {
    apiProc = spawn(process.execPath, [CLI, 'serve'], {
      env: { ...process.env, ...svc.env, PORT: String(port), MODELPRESS_DATA_DIR: api.data, TMPDIR: api.tmp, LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    apiProc.stdout!.on('data', (d) => (apiOut += d));
    apiProc.stderr!.on('data', (d) => (apiOut += d));
    const base = `http://127.0.0.1:${port}`;
    await waitFor('the API to be ready', async () => (await fetch(`${base}/readyz`)).status === 200, 30_000);
    assert.match(apiOut, new RegExp(`store s3://${s3.bucket}/${PREFIX} @ `), 'the API logs its store');
    for (const w of workers) procs.push(await startWorkerProcess({ ...svc.env, MODELPRESS_DATA_DIR: w.data, TMPDIR: w.tmp }));
    const workerIds = procs.map((p) => /(\S+:\d+:[0-9a-f]{8}) ready \(queue/.exec(p.output())?.[1]);
    for (const [i, p] of procs.entries()) {
      assert.ok(workerIds[i], p.output());
      assert.match(p.output(), new RegExp(`concurrency 1, store s3://${s3.bucket}/${PREFIX} @ `), 'the worker logs its store');
    }

    const http = client(base, await svc.newKey('scale'));
    const { create, until } = jobApi(http);
    // each job times the fp16 model for a few seconds: while one worker is busy with a job (concurrency 1),
    // the next waiting one can only go to the other worker
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      ids.push(await create(jobForm(withMetadata(model, 'job', String(i)), RECIPE)));
    }
    // both workers run a job at the same moment (the database row names the worker of the attempt)
    const runningOn = async () =>
      new Set((await svc.dbh.db.job.findMany({ where: { id: { in: ids }, status: 'running' }, select: { workerId: true } })).map((j) => j.workerId));
    await waitFor('two jobs running at once, one on each worker', async () => (await runningOn()).size === 2, 120_000, 100);
    for (const id of ids) {
      const done = await until(id, finished, `job ${id} to finish`, 180_000);
      assert.equal(done.status, 'succeeded', `${JSON.stringify(done.error)}\n${procs.map((p) => p.output()).join('\n')}`);
    }
    const rows = await svc.dbh.db.job.findMany({ where: { id: { in: ids } }, select: { workerId: true } });
    assert.deepEqual(new Set(rows.map((r) => r.workerId)), new Set(workerIds), 'both workers ran jobs, and nobody else did');

    const shas: string[] = [];
    for (const id of ids) {
      const res = await http.get(`/v1/jobs/${id}/artifact`);
      assert.equal(res.status, 200);
      const bytes = new Uint8Array(await res.arrayBuffer());
      assert.equal(res.headers.get('etag'), `"${sha256(bytes)}"`, 'ETag = sha256 of the bytes served');
      assert.equal(Number(res.headers.get('content-length')), bytes.length);
      shas.push(sha256(bytes));
      const part = await http.get(`/v1/jobs/${id}/artifact`, { range: 'bytes=100-4195' });
      assert.equal(part.status, 206);
      assert.equal(part.headers.get('content-range'), `bytes 100-4195/${bytes.length}`);
      assert.equal(part.headers.get('etag'), `"${sha256(bytes)}"`);
      assert.deepEqual(new Uint8Array(await part.arrayBuffer()), bytes.slice(100, 4196));
    }
    assert.equal(new Set(shas).size, 4, 'four distinct artifacts');
    const stored = (await s3.store(PREFIX).list('artifacts')).map((o) => o.key).sort();
    assert.deepEqual(stored, shas.map((s) => `artifacts/${s}.onnx`).sort(), 'the artifacts are in the bucket, by content');
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    if (apiProc && apiProc.exitCode === null && apiProc.signalCode === null) {
      const exited = new Promise((r) => apiProc!.once('exit', r));
      apiProc.kill('SIGTERM');
      await exited;
    }
  }
  // after the processes are gone (nothing is left to be cleaned up later): no process kept a model or an artifact
  assert.deepEqual(filesUnder(api.data), [], "nothing in the API's data directory");
  assert.deepEqual(filesUnder(api.tmp), [], "nothing in the API's temp directory");
  for (const [i, w] of workers.entries()) {
    assert.deepEqual(filesUnder(w.data), [], `nothing in worker ${i}'s data directory`);
    assert.deepEqual(filesUnder(w.tmp), [], `no input copy, attempt folder or artifact in worker ${i}'s temp directory`);
  }
});
