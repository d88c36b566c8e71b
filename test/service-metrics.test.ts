// Prometheus metrics over real Postgres and Redis: the API's /metrics in process (app.inject) with no
// worker, so jobs stay queued; then a real worker process serving its own on METRICS_PORT, where the
// outcomes of the jobs it ran are counted (and not on the API: each event is counted once).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/service/app.js';
import type { Infra } from '../src/service/plugins/infra.js';
import { PRESENCE_TTL_MS, startPresence } from '../src/service/presence.js';
import { MODELS } from './helpers.js';
import { expectProblem, FAST_RECIPE, finished, SLOW_RECIPE, injectClient, jobApi, jobForm, startWorkerProcess, testInfra, testService, waitFor, type TestService, type WorkerProcess } from './service-helpers.js';

let svc: TestService;
let infra: Infra;
let closeInfra: () => Promise<void>;
let app: FastifyInstance;
let key: string;
const model = readFileSync(MODELS.fmnist);

before(async () => {
  svc = await testService();
  ({ infra, close: closeInfra } = await testInfra(svc));
  app = await buildApp({ config: svc.config, infra });
  await app.ready();
  key = await svc.newKey('metrics');
});

after(async () => {
  await app.close();
  await closeInfra();
  await svc.close();
});

/** The samples of a Prometheus text exposition: `value(name, labels)` is the sample with exactly those labels. */
function parse(text: string) {
  const samples: { name: string; labels: Record<string, string>; value: number }[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1]!, l[2]!]));
    samples.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  const same = (a: Record<string, string>, b: Record<string, string>) => Object.keys(a).length === Object.keys(b).length && Object.entries(b).every(([k, v]) => a[k] === v);
  return {
    samples,
    value: (name: string, labels: Record<string, string> = {}) => samples.find((s) => s.name === name && same(s.labels, labels))?.value,
  };
}

async function scrape(from: FastifyInstance = app, headers: Record<string, string> = {}) {
  const res = await injectClient(from).get('/metrics', headers);
  assert.equal(res.status, 200, await res.clone().text());
  return parse(await res.text());
}

const HTTP = 'modelpress_http_request_duration_seconds_count';

test('GET /metrics: Prometheus text, every name prefixed modelpress_, the process metrics included; in the OpenAPI as text/plain', async () => {
  const res = await injectClient(app).get('/metrics');
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  const { samples, value } = parse(text);
  assert.ok(samples.length > 20, text);
  for (const s of samples) assert.match(s.name, /^modelpress_/);
  for (const name of ['modelpress_process_cpu_user_seconds_total', 'modelpress_process_resident_memory_bytes', 'modelpress_nodejs_heap_size_used_bytes', 'modelpress_nodejs_eventloop_lag_seconds']) {
    assert.ok((value(name) ?? -1) >= 0, `${name} in\n${text}`);
  }
  for (const [name, type] of [
    ['modelpress_jobs_created_total', 'counter'],
    ['modelpress_jobs_succeeded_total', 'counter'],
    ['modelpress_jobs_failed_total', 'counter'],
    ['modelpress_jobs_canceled_total', 'counter'],
    ['modelpress_job_duration_seconds', 'histogram'],
    ['modelpress_pass_duration_seconds', 'histogram'],
    ['modelpress_queue_jobs', 'gauge'],
    ['modelpress_workers_active', 'gauge'],
    ['modelpress_http_request_duration_seconds', 'histogram'],
  ]) {
    assert.ok(text.includes(`# TYPE ${name} ${type}\n`), `${name} is a ${type}`);
  }
  const spec = (await (await injectClient(app).get('/openapi.json')).json()) as { paths: Record<string, { get?: { responses: Record<string, { content?: Record<string, unknown> }> } }> };
  assert.ok(spec.paths['/metrics']?.get?.responses['200']?.content?.['text/plain'], JSON.stringify(spec.paths['/metrics']));
});

test('METRICS_TOKEN: /metrics answers 401 problem+json without it, with a wrong one or an API key; 200 with it', async () => {
  // a second app in the same process: its own registry, no clash of metric names
  const guarded = await buildApp({ config: { ...svc.config, metricsToken: 'scrape-secret' }, infra });
  try {
    const c = injectClient(guarded);
    const missing = await c.get('/metrics');
    assert.equal(missing.headers.get('www-authenticate'), 'Bearer realm="modelpress"');
    await expectProblem(missing, 401, 'unauthorized');
    await expectProblem(await c.get('/metrics', { authorization: 'Bearer scrape-secreT' }), 401, 'unauthorized');
    await expectProblem(await c.get('/metrics', { authorization: 'Basic c2NyYXBlLXNlY3JldA==' }), 401, 'unauthorized');
    await expectProblem(await c.get('/metrics', { authorization: `Bearer ${key}` }), 401, 'unauthorized');
    const ok = await c.get('/metrics', { authorization: 'Bearer scrape-secret' });
    assert.equal(ok.status, 200);
    assert.match(await ok.text(), /^# HELP modelpress_/m);
    // the refused scrapes were timed like any request, by their route
    assert.equal((await scrape(guarded, { authorization: 'Bearer scrape-secret' })).value(HTTP, { method: 'GET', route: '/metrics', status_code: '401' }), 4);
  } finally {
    await guarded.close();
  }
});

test('HTTP request durations are labelled with the route pattern and status, never the raw URL', async () => {
  const before = await scrape();
  const id = randomUUID();
  assert.equal((await injectClient(app, key).get(`/v1/jobs/${id}`)).status, 404);
  assert.equal((await injectClient(app, key).get(`/v1/jobs/${randomUUID()}`)).status, 404);
  assert.equal((await injectClient(app).get(`/no/such/${id}`)).status, 404);
  assert.equal((await injectClient(app).get('/healthz')).status, 200);
  const res = await injectClient(app).get('/metrics');
  const text = await res.text();
  const now = parse(text);
  const moved = (labels: Record<string, string>) => (now.value(HTTP, labels) ?? 0) - (before.value(HTTP, labels) ?? 0);
  assert.equal(moved({ method: 'GET', route: '/v1/jobs/:id', status_code: '404' }), 2);
  assert.equal(moved({ method: 'GET', route: 'unmatched', status_code: '404' }), 1);
  assert.equal(moved({ method: 'GET', route: '/healthz', status_code: '200' }), 1);
  assert.ok(!text.includes(id), 'no id in any label');
  const sum = now.value('modelpress_http_request_duration_seconds_sum', { method: 'GET', route: '/v1/jobs/:id', status_code: '404' })!;
  assert.ok(sum > 0, `time was observed: ${sum}`);
});

test('jobs created: POST /v1/jobs counts once per job (an idempotent replay is not a new job); the queue depth shows it waiting; cancel counts it out', async () => {
  const api = injectClient(app, key);
  const before = await scrape();
  const waiting = before.value('modelpress_queue_jobs', { state: 'waiting' });
  assert.ok(waiting !== undefined, 'the queue depth is reported');
  const h = { 'idempotency-key': `metrics-${randomBytes(4).toString('hex')}` };
  const r1 = await api.post('/v1/jobs', jobForm(model, FAST_RECIPE), h);
  assert.equal(r1.status, 202, await r1.clone().text());
  const id = ((await r1.json()) as { id: string }).id;
  assert.equal(((await (await api.post('/v1/jobs', jobForm(model, FAST_RECIPE), h)).json()) as { id: string }).id, id);

  const queued = await scrape();
  assert.equal(queued.value('modelpress_jobs_created_total')! - before.value('modelpress_jobs_created_total')!, 1);
  assert.equal(queued.value('modelpress_queue_jobs', { state: 'waiting' }), waiting + 1, 'no worker runs: the job waits');
  assert.equal(queued.value('modelpress_queue_jobs', { state: 'active' }), 0);
  assert.equal(queued.value('modelpress_queue_jobs', { state: 'delayed' }), 0);

  // the API cancels a queued job itself, so the API counts it; it never ran, so no duration
  assert.equal((await api.post(`/v1/jobs/${id}/cancel`)).status, 200);
  const canceled = await scrape();
  assert.equal(canceled.value('modelpress_jobs_canceled_total')! - before.value('modelpress_jobs_canceled_total')!, 1);
  assert.equal(canceled.value('modelpress_queue_jobs', { state: 'waiting' }), waiting);
  assert.equal(canceled.value('modelpress_job_duration_seconds_count', { status: 'canceled' }) ?? 0, 0);
});

test('active workers: each live heartbeat counts, a stopped worker counts out at once', async () => {
  const redis = infra.redis;
  const q = svc.config.queueName;
  assert.equal((await scrape()).value('modelpress_workers_active'), 0);
  const a = startPresence(redis, q, 'metrics-test-a', () => {});
  const b = startPresence(redis, q, 'metrics-test-b', () => {});
  const other = startPresence(redis, `${q}-other`, 'metrics-test-c', () => {}); // another queue's worker is not ours
  try {
    await waitFor('two live workers', async () => (await scrape()).value('modelpress_workers_active') === 2, 5000);
    await a.stop();
    assert.equal((await scrape()).value('modelpress_workers_active'), 1);
  } finally {
    await Promise.all([a.stop(), b.stop(), other.stop()]);
  }
  assert.equal((await scrape()).value('modelpress_workers_active'), 0);
});

test('a worker process counts the outcomes of its jobs and serves them on METRICS_PORT (behind METRICS_TOKEN); the API does not count them again', async () => {
  const { create, until } = jobApi(injectClient(app, key));
  const apiBefore = await scrape();
  let worker: WorkerProcess | undefined;
  try {
    worker = await startWorkerProcess({ ...svc.env, METRICS_PORT: '0', METRICS_TOKEN: 'worker-secret' });
    const port = Number(/metrics on http:\/\/127\.0\.0\.1:(\d+)\/metrics/.exec(worker.output())?.[1]);
    assert.ok(port > 0, worker.output());
    const url = `http://127.0.0.1:${port}/metrics`;
    await expectProblem(await fetch(url), 401, 'unauthorized');
    await expectProblem(await fetch(url, { headers: { authorization: 'Bearer nope' } }), 401, 'unauthorized');
    await expectProblem(await fetch(`http://127.0.0.1:${port}/other`, { headers: { authorization: 'Bearer worker-secret' } }), 404, 'not_found');
    const workerScrape = async () => {
      const res = await fetch(url, { headers: { authorization: 'Bearer worker-secret' } });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
      return parse(await res.text());
    };
    const idle = await workerScrape();
    assert.equal(idle.value('modelpress_jobs_succeeded_total'), 0);
    assert.ok((idle.value('modelpress_process_resident_memory_bytes') ?? 0) > 0, 'the worker has the process metrics too');
    assert.equal(idle.value('modelpress_worker_running_jobs'), 0);
    assert.equal(idle.value('modelpress_store_info', { store: `local:${svc.dataDir}` }), 1, 'the worker says which store it uses');
    await waitFor('the API to see the worker', async () => (await scrape()).value('modelpress_workers_active') === 1, 10_000);

    const ok = await until(await create(jobForm(model, FAST_RECIPE)), finished, 'the job to finish');
    assert.equal(ok.status, 'succeeded', JSON.stringify(ok.error));
    // framed like ONNX, garbage inside: gets past the upload check, fails in the job process
    const graph = randomBytes(4096);
    const framed = Buffer.concat([Buffer.from([0x08, 0x08, 0x3a, (graph.length & 0x7f) | 0x80, graph.length >> 7]), graph]);
    const bad = await until(await create(jobForm(framed, FAST_RECIPE)), finished, 'the bad job to fail');
    assert.equal(bad.error?.code, 'invalid_model');

    const w = await workerScrape();
    assert.equal(w.value('modelpress_jobs_succeeded_total'), 1);
    assert.equal(w.value('modelpress_jobs_failed_total', { code: 'invalid_model' }), 1);
    assert.equal(w.value('modelpress_jobs_created_total'), 0, 'the API creates jobs, not the worker');
    assert.equal(w.value('modelpress_job_duration_seconds_count', { status: 'succeeded' }), 1);
    assert.equal(w.value('modelpress_job_duration_seconds_count', { status: 'failed' }), 1);
    assert.ok(w.value('modelpress_job_duration_seconds_sum', { status: 'succeeded' })! > 0);
    assert.equal(w.value('modelpress_pass_duration_seconds_count', { pass: 'convert.fp16' }), 1, 'the one step of the succeeded job');
    assert.ok(w.value('modelpress_pass_duration_seconds_sum', { pass: 'convert.fp16' })! > 0);
    const report = (await (await injectClient(app, key).get(`/v1/jobs/${ok.id}/report`)).json()) as { steps: { durationMs: number }[] };
    assert.equal(w.value('modelpress_pass_duration_seconds_sum', { pass: 'convert.fp16' }), report.steps[0]!.durationMs / 1000, "the report's own step time");
    assert.equal(w.value('modelpress_worker_running_jobs'), 0);

    // the pass is timed in the job's process and reaches the worker's registry as it ends, while the job still runs
    // (here for minutes, timing the models): a job canceled afterwards has its pass counted all the same
    const slow = await create(jobForm(model, SLOW_RECIPE));
    const during = await waitFor('the slow job\'s pass to be counted while it runs', async () => {
      const now = await workerScrape();
      return now.value('modelpress_pass_duration_seconds_count', { pass: 'convert.fp16' }) === 2 ? now : null;
    }, 60_000, 250);
    assert.equal((await jobApi(injectClient(app, key)).job(slow)).status, 'running', 'counted before the job ended');
    assert.equal(during.value('modelpress_worker_running_jobs'), 1);
    assert.equal((await injectClient(app, key).post(`/v1/jobs/${slow}/cancel`)).status, 202);
    assert.equal((await until(slow, finished, 'the slow job to be canceled')).status, 'canceled');
    const afterCancel = await workerScrape();
    assert.equal(afterCancel.value('modelpress_jobs_canceled_total'), 1, 'a running job canceled by its worker counts there');
    assert.equal(afterCancel.value('modelpress_job_duration_seconds_count', { status: 'canceled' }), 1);
    assert.equal(afterCancel.value('modelpress_pass_duration_seconds_count', { pass: 'convert.fp16' }), 2);

    const api = await scrape();
    const delta = (name: string, labels: Record<string, string> = {}) => (api.value(name, labels) ?? 0) - (apiBefore.value(name, labels) ?? 0);
    assert.equal(delta('modelpress_jobs_created_total'), 3);
    assert.equal(delta('modelpress_jobs_succeeded_total'), 0, 'counted once, by the worker');
    assert.equal(delta('modelpress_jobs_failed_total', { code: 'invalid_model' }), 0);
    assert.equal(api.value('modelpress_queue_jobs', { state: 'waiting' }), 0);
    assert.equal(api.value('modelpress_queue_jobs', { state: 'active' }), 0);
  } finally {
    await worker?.stop('SIGKILL');
  }
  // a worker that dies takes no leave: it counts out when its heartbeat's TTL runs out (one that shuts down, at
  // once: above), while another worker beats on
  const survivor = startPresence(infra.redis, svc.config.queueName, 'metrics-test-survivor', () => {});
  try {
    await waitFor('the survivor to count', async () => (await scrape()).value('modelpress_workers_active') === 2, 5000);
    await waitFor('the killed worker to count out', async () => (await scrape()).value('modelpress_workers_active') === 1, PRESENCE_TTL_MS + 10_000, 500);
  } finally {
    await survivor.stop();
  }
  assert.equal((await scrape()).value('modelpress_workers_active'), 0);
});
