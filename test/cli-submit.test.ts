// `modelpress submit` as a user runs it, against a real API (listening on a port), a worker process,
// Postgres and Redis: upload with progress, follow, download; refusals and failures exit 2.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/service/app.js';
import { runOnce, ort } from '../src/runtime/ort.js';
import { FMNIST, MODELS, ROOT } from './helpers.js';
import { FAST_RECIPE, startWorkerProcess, testService, type TestService, type WorkerProcess } from './service-helpers.js';

let svc: TestService;
let app: FastifyInstance;
let worker: WorkerProcess;
let server: string;
let key: string;
const dir = mkdtempSync(join(tmpdir(), 'modelpress-submit-'));
const recipe = join(dir, 'fp16.json');
writeFileSync(recipe, JSON.stringify(FAST_RECIPE));

before(async () => {
  svc = await testService();
  app = await buildApp({ config: svc.config, forceCloseConnections: true });
  await app.listen({ port: 0, host: '127.0.0.1' });
  server = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  key = await svc.newKey('submit-tests');
  worker = await startWorkerProcess(svc.env);
});

after(async () => {
  await worker?.stop();
  await app.queue.obliterate({ force: true }).catch(() => {});
  await app.close();
  await svc.close();
});

/** Runs the CLI as a child without blocking this process (the API answers from it). */
function submit(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(ROOT, 'dist/src/cli/main.js'), 'submit', ...args, '--poll', '0.2'], { env: { ...process.env, MODELPRESS_SERVER: server, MODELPRESS_API_KEY: key, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

test('submit --wait uploads with progress, follows the job, downloads the artifact and both reports, exit 0', async () => {
  const out = join(dir, 'out.onnx');
  const report = join(dir, 'report.json');
  const html = join(dir, 'report.html');
  const r = await submit([MODELS.fmnist, '--recipe', recipe, '--data', FMNIST.inputs, '--labels', FMNIST.labels, '--out', out, '--report', report, '--report-html', html]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /uploading \[#+\] .* of /);
  assert.match(r.stderr, /job [0-9a-f-]{36} queued: http:\/\/127\.0\.0\.1:\d+\/v1\/jobs\//);
  assert.match(r.stderr, /(queued|running) \[[#.]+\] \d+%/, 'progress lines');
  assert.match(r.stdout, /succeeded: size 0\.\d{3}× the original/);
  const res = await runOnce(readFileSync(out), { input: new ort.Tensor('float32', new Float32Array(784), [1, 1, 28, 28]) });
  assert.deepEqual(res.logits!.dims, [1, 10]);
  const rep = JSON.parse(readFileSync(report, 'utf8')) as { steps: { pass: string }[]; baseline: { task: { top1: number } } };
  assert.equal(rep.steps[0]!.pass, 'convert.fp16');
  assert.ok(rep.baseline.task.top1 > 0.8, 'the labels went along');
  assert.match(readFileSync(html, 'utf8'), /^<!doctype html>/i);
});

test('without --wait it prints the job id; --job <id> --wait --out follows that job and downloads', async () => {
  const r = await submit([MODELS.fmnist, '--recipe', recipe, '--quiet']);
  assert.equal(r.code, 0, r.stderr);
  const id = r.stdout.trim();
  assert.match(id, /^[0-9a-f-]{36}$/);
  const out = join(dir, 'again.onnx');
  const f = await submit(['--job', id, '--out', out]);
  assert.equal(f.code, 0, f.stderr);
  assert.ok(readFileSync(out).length > 1000);
  // --delete: the job is gone from the server; deleting it again is a not_found refusal (exit 2)
  const d = await submit(['--job', id, '--delete']);
  assert.equal(d.code, 0, d.stderr);
  assert.match(d.stderr, new RegExp(`job ${id} deleted`));
  const again = await submit(['--job', id, '--delete']);
  assert.equal(again.code, 2, again.stderr);
  assert.match(again.stderr, /not_found/);
  assert.equal((await submit(['--delete'])).code, 2, '--delete needs --job');
});

test('refusals and failures exit 2 with the reason: no calibration data, not ONNX, a bad key, a model that fails in the worker', async () => {
  const qs = join(dir, 'static.json');
  writeFileSync(qs, JSON.stringify({ steps: [{ pass: 'quantize.static' }] }));
  let r = await submit([MODELS.fmnist, '--recipe', qs, '--out', join(dir, 'x.onnx')]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /\[invalid_input\].*step 1 \(quantize\.static\) needs calibration data.*\/calibration: required by \/steps\/0/);
  const text = join(dir, 'notes.onnx');
  writeFileSync(text, 'just some notes\n');
  r = await submit([text, '--recipe', recipe, '--out', join(dir, 'x.onnx')]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /\[invalid_model\].*not an ONNX model/);
  r = await submit([MODELS.fmnist, '--recipe', recipe], { MODELPRESS_API_KEY: 'mp_0000000000000000_nope' });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /\[unauthorized\]/);
  // framed like ONNX, garbage inside: accepted, then failed by the worker
  const graph = randomBytes(2048);
  const framed = join(dir, 'framed.onnx');
  writeFileSync(framed, Buffer.concat([Buffer.from([0x08, 0x08, 0x3a, (graph.length & 0x7f) | 0x80, graph.length >> 7]), graph]));
  r = await submit([framed, '--recipe', recipe, '--out', join(dir, 'x.onnx')]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /failed \[invalid_model\]/);
  r = await submit([MODELS.fmnist, '--recipe', recipe], { MODELPRESS_SERVER: 'http://127.0.0.1:1' });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /cannot reach the server at http:\/\/127\.0\.0\.1:1/);
});
