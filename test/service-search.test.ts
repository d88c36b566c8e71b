// A goal through the service, against real Postgres, Redis, a worker process and onnxruntime: a goal
// job without the data it is judged on is refused before the 202; a search on the fmnist CNN shows
// its state in the job's progress, lists its trials page by page and serves its frontier models; a
// search canceled mid-way keeps its best so far (and its partial report) downloadable.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/service/app.js';
import { openDataset, readLabelsFile } from '../src/data/samples.js';
import { decodeModel } from '../src/onnx/model-io.js';
import { createSession, type Feeds } from '../src/runtime/ort.js';
import { FMNIST, MODELS } from './helpers.js';
import { client, finished, jobApi, jobForm, startWorkerProcess, testService, waitFor, type Api, type JobBody, type TestService, type WorkerProcess } from './service-helpers.js';

let svc: TestService;
let app: FastifyInstance;
let worker: WorkerProcess;
let api: Api;
let jobsApi: ReturnType<typeof jobApi>;
const model = readFileSync(MODELS.fmnist);

/** Quick trials: channels pruned without recovery (most stop early on the probe), float16 or not. */
const QUICK_SPACE = [
  { pass: 'prune.structured', ratio: { range: [0.05, 0.5] }, optional: true, recovery: { leastSquares: false, batchNorm: false }, measureRecovery: false },
  { pass: 'convert.fp16', optional: true },
];
/** Slower trials (tens of seconds each on a busy machine): pruning with least-squares recovery, static int8. */
const SLOW_SPACE = [
  { pass: 'prune.structured', ratio: { range: [0.1, 0.5] }, optional: true, recovery: { leastSquares: true, batchNorm: true } },
  { pass: 'quantize.static', optional: true, weightRounding: 'nearest' },
];

/** A goal on the fmnist CNN with an explicit tiny space; the evaluation file cut to `samples` (60% searched, 40% held out). */
function goalRecipe(space: object[], budget: { minutes: number; trials: number }, samples: number) {
  return {
    name: 'tiny goal',
    goal: { metric: 'top1', maxDrop: 0.03, objective: 'latency', batchSize: 8, threads: 1 },
    search: { budget, space, seed: 1 },
    evaluate: { batchSize: 50, maxSamples: samples },
  };
}

type Files = 'evaluation' | 'labels' | 'calibration';
function goalForm(recipe: unknown, files: Files[] = ['evaluation', 'labels', 'calibration'], extra: Record<string, string> = {}): FormData {
  const all = {
    evaluation: { bytes: readFileSync(FMNIST.inputs), name: 'test-2000.npz' },
    labels: { bytes: readFileSync(FMNIST.labels), name: 'labels.npy' },
    calibration: { bytes: readFileSync(FMNIST.calibration), name: 'calib-512.npz' },
  };
  return jobForm(model, recipe, { ...Object.fromEntries(files.map((f) => [f, all[f]])), ...extra });
}

interface SearchJob extends JobBody {
  progress: JobBody['progress'] & { search: { phase: string; trial: number; maxTrials: number; elapsedMs: number; remainingMs: number; best?: { trial: number; value?: number; loss?: number; latencyRatio?: number; sizeRatio?: number } } | null };
  bestSoFar: { trial: number; attempt: number; sha256: string; sizeBytes: number } | null;
}

interface Trial {
  attempt: number;
  n: number;
  steps: { pass: string }[];
  status: string;
  value: number | null;
  loss: number | null;
  latencyRatio: number | null;
  sizeRatio: number | null;
  frontier: boolean;
  artifact: { sha256: string; sizeBytes: number } | null;
  links: { artifact?: string };
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const getJson = async <T>(path: string): Promise<T> => (await (await api.get(path)).json()) as T;
const job = (id: string) => getJson<SearchJob>(`/v1/jobs/${id}`);

/** Every trial of a job, page by page. */
async function allTrials(id: string, limit: number): Promise<{ trials: Trial[]; pages: number }> {
  const trials: Trial[] = [];
  let cursor: string | null = null;
  let pages = 0;
  do {
    const page: { items: Trial[]; nextCursor: string | null } = await getJson(`/v1/jobs/${id}/trials?limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    assert.ok(page.items.length <= limit);
    trials.push(...page.items);
    cursor = page.nextCursor;
    pages++;
  } while (cursor);
  return { trials, pages };
}

/** The model's top-1 accuracy on the first 200 fmnist test samples, in onnxruntime. */
async function top1(bytes: Uint8Array): Promise<number> {
  const feeds: Feeds = [...openDataset(FMNIST.inputs, decodeModel(bytes)).batches({ batchSize: 200, maxSamples: 200 })][0]!;
  const labels = readLabelsFile(FMNIST.labels);
  const session = await createSession(bytes);
  try {
    const out = Object.values(await session.run(feeds))[0]!;
    assert.deepEqual(out.dims, [200, 10]);
    const logits = out.data as Float32Array;
    assert.ok(logits.every(Number.isFinite));
    let right = 0;
    for (let i = 0; i < 200; i++) {
      const row = Array.from(logits.subarray(i * 10, i * 10 + 10));
      if (row.indexOf(Math.max(...row)) === Number(labels[i])) right++;
    }
    return right / 200;
  } finally {
    await session.release();
  }
}

/** The best-so-far blobs the store holds for a job. */
const bestBlobs = (id: string): string[] => {
  try {
    return readdirSync(join(svc.dataDir, 'best', id));
  } catch {
    return [];
  }
};

before(async () => {
  svc = await testService();
  app = await buildApp({ config: svc.config, forceCloseConnections: true });
  await app.listen({ port: 0, host: '127.0.0.1' });
  api = client(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, await svc.newKey('search-tests'));
  jobsApi = jobApi(api);
  worker = await startWorkerProcess(svc.env);
});

after(async () => {
  await worker?.stop();
  await app.queue.obliterate({ force: true }).catch(() => {});
  await app.close();
  await svc.close();
});

test('the OpenAPI document lists the trial routes with their schemas', async () => {
  const spec = (await (await api.get('/openapi.json')).json()) as { paths: Record<string, { get?: { parameters?: { name: string }[]; responses: Record<string, unknown> } }> };
  const list = spec.paths['/v1/jobs/{id}/trials']?.get;
  assert.ok(list, 'GET /v1/jobs/{id}/trials');
  assert.deepEqual(list.parameters?.map((p) => p.name).sort(), ['cursor', 'id', 'limit']);
  assert.ok(list.responses['200']);
  assert.ok(spec.paths['/v1/jobs/{id}/trials/{n}/artifact']?.get);
});

test('a goal job without the data it is judged on is refused before the 202, naming what to upload', async () => {
  const recipe = goalRecipe(QUICK_SPACE, { minutes: 0.5, trials: 4 }, 200);
  const expect400 = async (form: FormData, code: string, path: string, detail: RegExp) => {
    const res = await api.post('/v1/jobs', form);
    assert.equal(res.status, 400);
    assert.match(res.headers.get('content-type') ?? '', /application\/problem\+json/);
    const p = (await res.json()) as { code: string; detail: string; errors: { path: string }[] };
    assert.equal(p.code, code);
    assert.match(p.detail, detail);
    assert.deepEqual(p.errors.map((e) => e.path), [path]);
  };
  // top1 is measured against labels
  await expect400(goalForm(recipe, ['evaluation', 'calibration']), 'invalid_input', '/labels', /goal metric 'top1' is measured against labels: upload `labels`/);
  // every goal is judged on evaluation data
  await expect400(goalForm(recipe, ['labels']), 'invalid_input', '/evaluation', /upload `evaluation`/);
  // a budget the job's time limit would cut
  await expect400(goalForm(recipe, undefined, { timeoutMs: '20000' }), 'invalid_recipe', '/search/budget/minutes', /does not fit the job's time limit of 20000 ms/);
  // a fidelity metric needs no labels: accepted (then canceled, it is not what this test runs)
  const id = await jobsApi.create(goalForm({ ...recipe, goal: { metric: 'agreement', min: 0.98 } }, ['evaluation']));
  await api.post(`/v1/jobs/${id}/cancel`);
  await jobsApi.until(id, finished, 'the accepted job to be canceled');
  const list = await getJson<{ items: JobBody[] }>('/v1/jobs');
  assert.deepEqual(list.items.map((j) => j.id), [id], 'nothing was recorded for the refused requests');
});

test('a search job: its state in the progress, trials page by page, frontier models downloadable, the final artifact', async () => {
  const id = await jobsApi.create(goalForm(goalRecipe(QUICK_SPACE, { minutes: 0.75, trials: 8 }, 200)));
  const seen: NonNullable<SearchJob['progress']['search']>[] = [];
  let bestWhileRunning: { header: string | null; etag: string | null; sha: string; expected: string } | null = null;
  const done = await waitFor(
    'the search job to finish',
    async () => {
      const j = await job(id);
      if (j.progress.search && j.status === 'running') seen.push(j.progress.search);
      if (j.status === 'running' && j.bestSoFar && !bestWhileRunning) {
        const res = await api.get(`/v1/jobs/${id}/artifact`);
        if (res.status === 200) {
          const bytes = new Uint8Array(await res.arrayBuffer());
          bestWhileRunning = { header: res.headers.get('x-modelpress-artifact'), etag: res.headers.get('etag'), sha: sha256(bytes), expected: j.bestSoFar.sha256 };
        }
      }
      return finished(j) ? j : null;
    },
    5 * 60_000,
    300,
  );
  assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
  // the search's state, as a client polling the job saw it
  const searching = seen.find((s) => s.phase === 'searching');
  assert.ok(searching, `no searching state among ${seen.length} polls: ${JSON.stringify(seen.slice(-3))}`);
  assert.equal(searching.maxTrials, 8);
  assert.ok(searching.trial >= 1 && searching.trial <= 8);
  assert.ok(searching.elapsedMs > 0 && searching.remainingMs >= 0 && searching.elapsedMs + searching.remainingMs <= 0.75 * 60_000 + 1000);
  assert.ok(searching.best && searching.best.trial >= 0 && typeof searching.best.value === 'number' && typeof searching.best.loss === 'number', JSON.stringify(searching.best));
  if (bestWhileRunning) {
    const b = bestWhileRunning as { header: string | null; etag: string | null; sha: string; expected: string };
    assert.equal(b.header, 'best-so-far');
    assert.equal(b.etag, `"${b.sha}"`);
  }

  // the final artifact and report; the best-so-far blobs are gone with the job's end
  assert.equal(done.bestSoFar, null);
  assert.equal(done.progress.percent, 100);
  const res = await api.get(`/v1/jobs/${id}/artifact`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('x-modelpress-artifact'), 'final');
  const finalBytes = new Uint8Array(await res.arrayBuffer());
  assert.equal(res.headers.get('etag'), `"${sha256(finalBytes)}"`);
  const reportRes = await api.get(`/v1/jobs/${id}/report`);
  assert.equal(reportRes.headers.get('x-modelpress-report'), 'final');
  const report = (await reportRes.json()) as { search: { stoppedBy: string; trials: { n: number; status: string; reason?: string; durationMs: number; steps: unknown[] }[]; frontier: number[]; best: { trial: number; goalMet: boolean } } };
  const summary = `stopped by ${report.search.stoppedBy}; trials ${JSON.stringify(report.search.trials.map((t) => [t.n, t.status, t.reason, t.durationMs]))}`;
  assert.equal((done.metrics?.search as { bestTrial: number }).bestTrial, report.search.best.trial);
  await waitFor('the best-so-far blobs to be swept', async () => bestBlobs(id).length === 0, 10_000);

  // trials, two at a time: every trial the search finished, in order, the frontier flagged
  const first = await getJson<{ items: Trial[]; nextCursor: string | null }>(`/v1/jobs/${id}/trials?limit=2`);
  assert.equal(first.items.length, 2, summary);
  assert.ok(first.nextCursor, `a next cursor after the first page: ${summary}`);
  const { trials, pages } = await allTrials(id, 2);
  assert.ok(pages >= 2);
  const finishedTrials = report.search.trials.filter((t) => !t.reason?.startsWith('cut short'));
  assert.deepEqual(trials.map((t) => t.n), finishedTrials.map((t) => t.n));
  assert.deepEqual(trials.map((t) => t.status), finishedTrials.map((t) => t.status));
  assert.deepEqual(trials.map((t) => t.steps), finishedTrials.map((t) => t.steps));
  assert.equal(trials[0]!.n, 0);
  assert.equal(trials[0]!.latencyRatio, 1, 'the original is the latency reference');
  assert.deepEqual(trials.filter((t) => t.frontier).map((t) => t.n), [...report.search.frontier].sort((a, b) => a - b));
  assert.ok(report.search.frontier.length >= 1);
  assert.equal((await api.get(`/v1/jobs/${id}/trials?cursor=not-a-cursor`)).status, 400);

  // a frontier model: ETag = sha256, and it runs in onnxruntime close to the original
  const pick = trials.find((t) => t.frontier && t.n > 0) ?? trials.find((t) => t.frontier)!;
  assert.ok(pick.artifact && pick.links.artifact);
  const got = await api.get(pick.links.artifact!);
  assert.equal(got.status, 200);
  const bytes = new Uint8Array(await got.arrayBuffer());
  assert.equal(got.headers.get('etag'), `"${sha256(bytes)}"`);
  assert.equal(pick.artifact.sha256, sha256(bytes));
  const [original, candidate] = [await top1(model), await top1(bytes)];
  assert.ok(candidate >= original - 0.06, `frontier trial ${pick.n}: top-1 ${candidate} against the original's ${original}`);
  const part = await api.get(pick.links.artifact!, { range: 'bytes=0-99' });
  assert.equal(part.status, 206);
  assert.deepEqual(new Uint8Array(await part.arrayBuffer()), bytes.slice(0, 100));

  // off the frontier, or no such trial: 404 with the reason
  const off = trials.find((t) => !t.frontier);
  if (off) {
    const r = await api.get(`/v1/jobs/${id}/trials/${off.n}/artifact`);
    assert.equal(r.status, 404);
    const p = (await r.json()) as { code: string; detail: string };
    assert.equal(p.code, 'not_found');
    assert.match(p.detail, new RegExp(`trial ${off.n} is not on the search's frontier.*the frontier is trials? ${report.search.frontier.length ? '\\d' : ''}`));
  }
  assert.equal((await api.get(`/v1/jobs/${id}/trials/999/artifact`)).status, 404);
  // another owner sees nothing
  const other = client(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, await svc.newKey('someone-else'));
  assert.equal((await other.get(`/v1/jobs/${id}/trials`)).status, 404);
  assert.equal((await other.get(pick.links.artifact!)).status, 404);
});

test('a search canceled mid-way keeps its best so far downloadable, with its partial report', async () => {
  const id = await jobsApi.create(goalForm(goalRecipe(SLOW_SPACE, { minutes: 3, trials: 40 }, 400)));
  // at least one candidate past the original has finished
  await waitFor('a trial beyond 0', async () => (await getJson<{ items: Trial[] }>(`/v1/jobs/${id}/trials?limit=100`)).items.some((t) => t.n >= 1), 3 * 60_000, 500);
  const running = await job(id);
  assert.equal(running.status, 'running');
  assert.ok(running.bestSoFar, 'the original is the first best so far');
  const cancel = await api.post(`/v1/jobs/${id}/cancel`);
  assert.ok(cancel.status === 200 || cancel.status === 202);
  const j = (await jobsApi.until(id, finished, 'the cancel to land', 30_000)) as SearchJob;
  assert.equal(j.status, 'canceled');
  assert.ok(j.bestSoFar);

  const res = await api.get(`/v1/jobs/${id}/artifact`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('x-modelpress-artifact'), 'best-so-far');
  const bytes = new Uint8Array(await res.arrayBuffer());
  assert.equal(res.headers.get('etag'), `"${sha256(bytes)}"`);
  assert.equal(j.bestSoFar.sha256, sha256(bytes));
  assert.match(res.headers.get('content-disposition') ?? '', new RegExp(`best-so-far-trial-${j.bestSoFar.trial}\\.onnx`));
  assert.ok((await top1(bytes)) >= (await top1(model)) - 0.06);

  const reportRes = await api.get(`/v1/jobs/${id}/report`);
  assert.equal(reportRes.status, 200);
  assert.equal(reportRes.headers.get('x-modelpress-report'), 'best-so-far');
  const partial = (await reportRes.json()) as { kind: string; search: { trials: { n: number }[]; best: { trial: number; goalMet: boolean } } };
  assert.equal(partial.kind, 'search-in-progress');
  assert.equal(partial.search.best.trial, j.bestSoFar.trial);
  assert.equal(partial.search.best.goalMet, false, 'not judged on the held-out part');
  assert.ok(partial.search.trials.some((t) => t.n === j.bestSoFar!.trial));
  assert.equal((await api.get(`/v1/jobs/${id}/report.html`)).status, 409, 'the HTML report is of a finished job only');
  // the trials it finished stay listed; of the best-so-far blobs only the current one is kept
  assert.ok((await allTrials(id, 100)).trials.some((t) => t.n >= 1));
  await waitFor('superseded best-so-far blobs to be swept', async () => bestBlobs(id).length === 1, 10_000);
  assert.match(bestBlobs(id)[0]!, new RegExp(`^${j.bestSoFar.attempt}-${j.bestSoFar.sha256}\\.onnx$`));
});
