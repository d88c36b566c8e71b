// The web app in Debian's chromium (playwright-core), against a real API on a port, a worker process,
// Postgres and Redis: sign-in, upload with progress, a job moving live to succeeded, downloads, cancel,
// a recipe error at its JSON path, and a goal search's frontier. Screenshots go to a temp dir, or to
// MODELPRESS_SCREENSHOTS (docs/ holds two of them).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { chromium, type Browser, type Page } from 'playwright-core';
import { buildApp } from '../src/service/app.js';
import { runOnce, ort } from '../src/runtime/ort.js';
import { FMNIST, MODELS } from './helpers.js';
import { BUSY_RECIPE, SLOW_RECIPE, client, finished, jobApi, jobForm, startWorkerProcess, testService, type TestService, type WorkerProcess } from './service-helpers.js';

const CHROMIUM = '/usr/bin/chromium';
let svc: TestService;
let app: FastifyInstance;
let worker: WorkerProcess;
let browser: Browser;
let base: string;
let key: string;
const shots = process.env.MODELPRESS_SCREENSHOTS ?? mkdtempSync(join(tmpdir(), 'modelpress-web-'));

before(async () => {
  assert.ok(existsSync(CHROMIUM), 'Debian chromium is installed (scripts/setup.sh installs it)');
  mkdirSync(shots, { recursive: true });
  svc = await testService();
  app = await buildApp({ config: svc.config, forceCloseConnections: true });
  await app.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  key = await svc.newKey('web');
  worker = await startWorkerProcess(svc.env);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
});

after(async () => {
  await browser?.close();
  await worker?.stop();
  await app.queue.obliterate({ force: true }).catch(() => {});
  await app.close();
  await svc.close();
});

async function signedIn(): Promise<Page> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on('dialog', (d) => void d.accept());
  await page.goto(`${base}/`);
  await page.fill('#key', key);
  await page.click('button[type=submit]');
  await page.waitForSelector('table.jobs');
  return page;
}

test('the app is served at / with a strict CSP and nothing from elsewhere; a wrong key is refused, the right one signs in and stays in the tab', async () => {
  const res = await fetch(`${base}/`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-security-policy') ?? '', /default-src 'self'/);
  const page = await browser.newPage();
  const foreign: string[] = [];
  page.on('request', (r) => {
    if (!r.url().startsWith(base) && !r.url().startsWith('data:') && !r.url().startsWith('blob:') && !r.url().startsWith('about:')) foreign.push(r.url());
  });
  await page.goto(`${base}/`);
  await page.fill('#key', 'mp_0000000000000000_wrong');
  await page.click('button[type=submit]');
  await page.waitForSelector('p.error[role=alert]');
  assert.match(await page.textContent('p.error') ?? '', /not accepted/);
  await page.fill('#key', key);
  await page.click('button[type=submit]');
  await page.waitForSelector('table.jobs');
  assert.equal(await page.evaluate('sessionStorage.getItem("modelpress.key")'), key);
  assert.ok(!page.url().includes(key), 'the key is never in the URL');
  assert.deepEqual(foreign, [], 'no request leaves this server');
  await page.close();
});

test('new job: upload with a progress bar, then the job page follows it live from queued to succeeded; downloads', async () => {
  const page = await signedIn();
  await page.goto(`${base}/#/new`);
  await page.waitForSelector('select');
  await page.selectOption('.recipe select', 'fp16.json');
  // the fp16 template with a benchmark, so the job takes a few seconds once a worker has it
  await page.fill('textarea', JSON.stringify({ ...BUSY_RECIPE, name: 'fp16' }));
  await page.setInputFiles('input[name=model]', MODELS.fmnist);
  await page.setInputFiles('input[name=evaluation]', FMNIST.inputs);
  await page.setInputFiles('input[name=labels]', FMNIST.labels);
  await page.waitForSelector('.check .ok');
  // a slow link, so the upload takes long enough to watch its bar move
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 1024 * 1024 });
  const seen = new Set<number>();
  // no worker until the page shows the job queued: the test holds the job still instead of racing it
  await worker.stop();
  await page.click('button.primary');
  while (!/#\/jobs\//.test(page.url())) {
    const v = await page.getAttribute('.upload [role=progressbar]', 'aria-valuenow').catch(() => null);
    if (v !== null) seen.add(Number(v));
    await page.waitForTimeout(100);
  }
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
  assert.ok([...seen].some((v) => v > 0 && v < 100), `the upload bar moved: ${[...seen].join(',')}`);
  // live: statuses arrive without a reload
  await page.evaluate('window.marker = 42');
  const statuses = new Set<string>();
  await page.waitForSelector('.job .toolbar .status[data-status=queued]', { timeout: 30_000 });
  statuses.add('queued');
  worker = await startWorkerProcess(svc.env);
  for (let i = 0; i < 600; i++) {
    const s = await page.getAttribute('.job .toolbar .status', 'data-status').catch(() => null);
    if (s) statuses.add(s);
    if (s === 'succeeded') break;
    await page.waitForTimeout(100);
  }
  assert.ok(statuses.has('succeeded'), `reached succeeded: ${[...statuses].join(' → ')}`);
  assert.ok(statuses.size >= 2, `saw it change live: ${[...statuses].join(' → ')}`);
  assert.equal(await page.evaluate('window.marker'), 42, 'no reload');
  // the report's warnings are on the job: no calibration data was given, so the step tuned on the evaluation data
  assert.match(await page.textContent('ul.warnings') ?? '', /calibrated on the evaluation data/);
  // the HTML report, shown in the page (a frame without scripts)
  const frame = await (await page.waitForSelector('iframe.report'))!.contentFrame();
  await frame!.waitForSelector('#summary', { timeout: 10_000 });
  await page.waitForTimeout(300);
  await page.screenshot({ path: join(shots, 'web-job.png'), fullPage: false });
  // downloads: the model runs, the JSON report parses
  const [model] = await Promise.all([page.waitForEvent('download'), page.click('.downloads button:nth-child(1)')]);
  const bytes = readFileSync((await model.path())!);
  const res = await runOnce(bytes, { input: new ort.Tensor('float32', new Float32Array(784), [1, 1, 28, 28]) });
  assert.deepEqual(res.logits!.dims, [1, 10]);
  const id = /#\/jobs\/([0-9a-f-]{36})/.exec(page.url())![1]!;
  const job = (await (await fetch(`${base}/v1/jobs/${id}/artifact`, { headers: { authorization: `Bearer ${key}` } })).arrayBuffer());
  assert.equal(createHash('sha256').update(bytes).digest('hex'), createHash('sha256').update(new Uint8Array(job)).digest('hex'));
  const [report] = await Promise.all([page.waitForEvent('download'), page.click('.downloads button:nth-child(2)')]);
  assert.equal((JSON.parse(readFileSync((await report.path())!, 'utf8')) as { steps: { pass: string }[] }).steps[0]!.pass, 'convert.fp16');
  // the jobs list shows it, with model and recipe names
  await page.goto(`${base}/#/jobs`);
  await page.waitForSelector(`tr[data-job="${id}"]`);
  assert.match(await page.textContent(`tr[data-job="${id}"]`) ?? '', /fmnist-cnn\.onnx.*fp16/s);
  await page.screenshot({ path: join(shots, 'web-jobs.png'), fullPage: false });
  // the models page: the uploaded model, its inspect summary, and a new job from it
  await page.goto(`${base}/#/models`);
  await page.click('tr[data-model] button.link');
  await page.waitForSelector('dl.summary');
  assert.match(await page.textContent('dl.summary') ?? '', /input: float32\[batch, 1, 28, 28\].*parameters/s);
  await page.click('tr[data-model] a.button');
  await page.waitForSelector('section.newjob');
  assert.match(page.url(), /#\/new\?model=[0-9a-f-]{36}/);
  await page.close();
});

test('a recipe error is shown at its JSON path, and a step without its data is stopped before upload', async () => {
  const page = await signedIn();
  await page.goto(`${base}/#/new`);
  await page.waitForSelector('textarea');
  await page.fill('textarea', JSON.stringify({ steps: [{ pass: 'quantize.static', calibrationMethod: 'percentil' }] }));
  await page.waitForSelector('li[data-path="/steps/0/calibrationMethod"]');
  assert.match(await page.textContent('li[data-path="/steps/0/calibrationMethod"]') ?? '', /did you mean "percentile"/);
  assert.equal(await page.isDisabled('button.primary'), true);
  await page.fill('textarea', JSON.stringify({ steps: [{ pass: 'quantize.static' }] }));
  await page.waitForSelector('.check .ok');
  await page.setInputFiles('input[name=model]', MODELS.fmnist);
  await page.waitForSelector('ul.problems.data');
  assert.match(await page.textContent('ul.problems.data') ?? '', /step 1 \(quantize\.static\) needs calibration data/);
  assert.equal(await page.isDisabled('button.primary'), true);
  await page.close();
});

test('cancel from the job page stops a running job', async () => {
  const api = client(base, key);
  const { create } = jobApi(api);
  const id = await create(jobForm(readFileSync(MODELS.fmnist), SLOW_RECIPE));
  const page = await signedIn();
  await page.goto(`${base}/#/jobs/${id}`);
  await page.waitForSelector('.job [data-status=running]', { timeout: 60_000 });
  await page.click('.live button.danger');
  await page.waitForSelector('.job .toolbar [data-status=canceled]', { timeout: 60_000 });
  await page.close();
});

test('delete: from the job page (an open jobs list drops it live), and a model with its finished jobs from the models page', async () => {
  const api = client(base, key);
  const { create, until } = jobApi(api);
  // a model of its own (one changed byte), so deleting it touches no other test's jobs
  const bytes = Buffer.from(readFileSync(MODELS.fmnist));
  bytes[bytes.length - 1] ^= 1;
  const doomed = await create(jobForm(bytes, { ...BUSY_RECIPE, name: 'doomed' }));
  const kept = await create(jobForm(bytes, { ...BUSY_RECIPE, name: 'kept' }));
  for (const id of [doomed, kept]) await until(id, finished, 'the job to finish', 120_000);
  const list = await signedIn();
  await list.waitForSelector(`tr[data-job="${doomed}"]`);
  const page = await signedIn();
  await page.goto(`${base}/#/jobs/${doomed}`);
  await page.waitForSelector('.job .toolbar [data-status=succeeded]');
  await page.click('.downloads button.delete');
  await page.waitForSelector('table.jobs');
  assert.match(page.url(), /#\/jobs$/);
  assert.equal(await page.$(`tr[data-job="${doomed}"]`), null);
  await list.waitForSelector(`tr[data-job="${doomed}"]`, { state: 'detached', timeout: 10_000 });
  assert.equal((await fetch(`${base}/v1/jobs/${doomed}`, { headers: { authorization: `Bearer ${key}` } })).status, 404);
  // the model: a finished job still uses it, so the page asks before deleting both
  const modelId = ((await (await fetch(`${base}/v1/jobs/${kept}`, { headers: { authorization: `Bearer ${key}` } })).json()) as { modelId: string }).modelId;
  const dialogs: string[] = [];
  page.on('dialog', (d) => dialogs.push(d.message()));
  await page.goto(`${base}/#/models`);
  await page.click(`tr[data-model="${modelId}"] button.delete`);
  await page.waitForSelector(`tr[data-model="${modelId}"]`, { state: 'detached', timeout: 10_000 });
  assert.match(dialogs.join('\n'), /1 finished job uses this model\. Delete the model with that job/);
  assert.equal((await fetch(`${base}/v1/jobs/${kept}`, { headers: { authorization: `Bearer ${key}` } })).status, 404);
  await list.waitForSelector(`tr[data-job="${kept}"]`, { state: 'detached', timeout: 10_000 });
  await Promise.all([list.close(), page.close()]);
});

test('a goal search shows its trials and frontier chart, updating as trials finish', async () => {
  const api = client(base, key);
  const { create } = jobApi(api);
  const recipe = {
    goal: { metric: 'top1', maxDrop: 0.02, objective: 'latency', batchSize: 8, threads: 1 },
    search: { budget: { minutes: 0.5, trials: 6 }, space: [{ pass: 'quantize.static', optional: true, calibrationMethod: { choices: ['percentile', 'minmax'] } }], seed: 1 },
    evaluate: { batchSize: 50, maxSamples: 300 },
  };
  const id = await create(
    jobForm(readFileSync(MODELS.fmnist), recipe, {
      calibration: { bytes: readFileSync(FMNIST.calibration), name: 'calib.npz' },
      evaluation: { bytes: readFileSync(FMNIST.inputs), name: 'test.npz' },
      labels: { bytes: readFileSync(FMNIST.labels), name: 'labels.npy' },
    }),
  );
  const page = await signedIn();
  await page.goto(`${base}/#/jobs/${id}`);
  await page.waitForSelector('section.search table.trials tbody tr', { timeout: 120_000 });
  await page.waitForSelector('svg[data-chart=frontier] circle', { timeout: 180_000 });
  await page.waitForSelector('.job .toolbar [data-status=succeeded]', { timeout: 180_000 });
  await page.waitForSelector('svg[data-chart=frontier] circle.frontier', { timeout: 30_000 });
  assert.ok((await page.$$('section.search table.trials tbody tr')).length >= 2, 'the original and at least one candidate');
  await page.close();
});
