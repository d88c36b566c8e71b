// The HTTP API in process (app.inject) over real Postgres, Redis and storage, no worker: jobs stay
// queued. Auth before the body, ownership, validation with JSON paths, upload limits, idempotency,
// rate limits, pagination, cancel.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/service/app.js';
import type { Infra } from '../src/service/plugins/infra.js';
import { parseRecipe } from '../src/pipeline/recipe.js';
import { PASSES } from '../src/passes/index.js';
import { spawnSync } from 'node:child_process';
import { MODELS, ROOT } from './helpers.js';
import { expectProblem, FAST_RECIPE, injectClient, jobForm, testInfra, testService, type TestService } from './service-helpers.js';

let svc: TestService;
let infra: Infra;
let closeInfra: () => Promise<void>;
let app: FastifyInstance;
let keyA: string;
let keyB: string;
const model = readFileSync(MODELS.fmnist);
const client = (key?: string) => injectClient(app, key);

before(async () => {
  svc = await testService({ MAX_UPLOAD_BYTES: String(model.length + 1000), RATE_LIMIT_JOBS_PER_MINUTE: '12', MAX_ACTIVE_JOBS_PER_OWNER: '6', MAX_MODELS_PER_OWNER: '4', MAX_MODEL_BYTES_PER_OWNER: String(3 * model.length + 1000), RATE_LIMIT_UPLOADS_PER_MINUTE: '100' });
  ({ infra, close: closeInfra } = await testInfra(svc));
  app = await buildApp({ config: svc.config, infra });
  await app.ready();
  keyA = await svc.newKey('a');
  keyB = await svc.newKey('b');
});

after(async () => {
  await app.close();
  await closeInfra();
  await svc.close();
});

/** Temporary uploads in the store: a refused or cut request must leave none. */
async function tmpFiles(): Promise<string[]> {
  return (await infra.storage.list('tmp')).map((f) => f.key);
}

const problem = expectProblem;

test('health, readiness, OpenAPI and docs are public', async () => {
  const c = client();
  assert.equal((await c.get('/healthz')).status, 200);
  const ready = (await (await c.get('/readyz')).json()) as { checks: Record<string, string> };
  assert.deepEqual(ready.checks, { postgres: 'ok', redis: 'ok', storage: 'ok' });
  const spec = (await (await c.get('/openapi.json')).json()) as { paths: Record<string, unknown> };
  for (const p of ['/v1/jobs', '/v1/jobs/{id}', '/v1/jobs/{id}/cancel', '/v1/jobs/{id}/artifact', '/v1/jobs/{id}/report', '/v1/models', '/v1/passes']) assert.ok(spec.paths[p], p);
  // uploads are described as typed multipart fields, so the docs' "Try it out" can send a model
  type Body = { content: Record<string, { schema: { properties: Record<string, { type: string; format?: string }>; required: string[] } }> };
  const post = (p: string) => (spec.paths[p] as { post: { requestBody: Body } }).post.requestBody.content;
  const multipart = post('/v1/jobs')['multipart/form-data']!.schema;
  assert.deepEqual(multipart.required, ['recipe', 'model']);
  for (const f of ['model', 'calibration', 'evaluation', 'labels']) assert.equal(multipart.properties[f]!.format, 'binary', f);
  assert.ok(post('/v1/jobs')['application/json'], 'the JSON form stays');
  assert.equal(post('/v1/models')['multipart/form-data']!.schema.properties.model!.format, 'binary');
  assert.equal((await c.get('/docs/')).status, 200);
});

test('GET /v1/passes (public): every pass with the step schema the recipe validator uses, its stats schema and data needs', async () => {
  const res = await client().get('/v1/passes');
  assert.equal(res.status, 200);
  const { passes } = (await res.json()) as { passes: { name: string; summary: string; schema: unknown; stats: unknown; calibration: string }[] };
  assert.deepEqual(passes.map((p) => p.name), Object.keys(PASSES));
  for (const p of passes) {
    assert.deepEqual(p.schema, JSON.parse(JSON.stringify(PASSES[p.name]!.schema)), `${p.name}: its schema, whole`);
    assert.deepEqual(p.stats, JSON.parse(JSON.stringify(PASSES[p.name]!.stats)));
  }
  const byName = new Map(passes.map((p) => [p.name, p]));
  assert.equal(byName.get('quantize.static')!.calibration, 'required');
  assert.equal(byName.get('prune.structured')!.calibration, 'required');
  assert.equal(byName.get('quantize.dynamic')!.calibration, 'none');
  const method = (byName.get('quantize.static')!.schema as { properties: Record<string, { anyOf: { const: string }[]; default: string }> }).properties.calibrationMethod!;
  assert.deepEqual(method.anyOf.map((o) => o.const), ['minmax', 'percentile', 'entropy', 'mse']);
  assert.equal(method.default, 'percentile');
});

test('missing, malformed and unknown keys → 401 problem+json, before the upload is read', async () => {
  await problem(await client().get('/v1/jobs'), 401, 'unauthorized');
  await problem(await client('mp_0000000000000000_' + 'x'.repeat(43)).get('/v1/jobs'), 401, 'unauthorized');
  const res = await client().post('/v1/jobs', jobForm(model, FAST_RECIPE), { authorization: 'Basic abc' });
  await problem(res, 401, 'unauthorized');
  assert.deepEqual(await tmpFiles(), [], 'nothing of the body was stored');
});

test('keys list / revoke through the CLI: a revoked key gets 401, the others keep working', async () => {
  const key = await svc.newKey('to-revoke');
  const prefix = key.split('_')[1]!;
  assert.equal((await client(key).get('/v1/jobs')).status, 200);
  const run = (...args: string[]) => spawnSync(process.execPath, [join(ROOT, 'dist/src/cli/main.js'), 'keys', ...args], { env: { ...process.env, ...svc.env }, encoding: 'utf8' });
  let r = run('list');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`${prefix}  to-revoke .*active, last used 20`));
  assert.doesNotMatch(r.stdout, new RegExp(key.split('_')[2]!.slice(0, 12)), 'never the secret');
  r = run('revoke', prefix);
  assert.equal(r.status, 0, r.stderr);
  await problem(await client(key).get('/v1/jobs'), 401, 'unauthorized');
  assert.equal((await client(keyA).get('/v1/jobs')).status, 200);
  assert.match(run('list').stdout, new RegExp(`${prefix}  to-revoke .*revoked 20`));
  r = run('revoke', 'ffffffffffffffff');
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /not_found.*no API key/);
  r = run('delete', prefix);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /usage: modelpress keys/);
});

test('create → 202 with Location; get, list with cursor pagination and status filter; other owners get 404', async () => {
  const a = client(keyA);
  const created: string[] = [];
  for (let i = 0; i < 3; i++) {
    const res = await a.post('/v1/jobs', jobForm(model, FAST_RECIPE));
    assert.equal(res.status, 202, await res.clone().text());
    const job = (await res.json()) as { id: string; status: string };
    assert.equal(res.headers.get('location'), `/v1/jobs/${job.id}`);
    assert.equal(job.status, 'queued');
    created.push(job.id);
  }
  // stored as parsed, defaults filled in: what the worker runs; parsing it again changes nothing
  const stored = (await svc.dbh.db.job.findUniqueOrThrow({ where: { id: created[0]! } })).recipe;
  assert.deepEqual(stored, JSON.parse(JSON.stringify(parseRecipe(FAST_RECIPE))));
  assert.deepEqual(parseRecipe(stored), stored);
  const got = await a.get(`/v1/jobs/${created[0]}`);
  assert.equal(got.status, 200);
  assert.ok(got.headers.get('retry-after'), 'Retry-After while not finished');
  const page1 = (await (await a.get('/v1/jobs?limit=2')).json()) as { items: { id: string }[]; nextCursor: string };
  assert.deepEqual(page1.items.map((j) => j.id), [created[2], created[1]]);
  const page2 = (await (await a.get(`/v1/jobs?limit=2&cursor=${page1.nextCursor}`)).json()) as { items: { id: string }[]; nextCursor: string | null };
  assert.deepEqual(page2.items.map((j) => j.id), [created[0]]);
  assert.equal(page2.nextCursor, null);
  const none = (await (await a.get('/v1/jobs?status=succeeded')).json()) as { items: unknown[] };
  assert.equal(none.items.length, 0);
  await problem(await a.get('/v1/jobs?cursor=garbage'), 400, 'invalid_input');

  const b = client(keyB);
  await problem(await b.get(`/v1/jobs/${created[0]}`), 404, 'not_found');
  await problem(await b.post(`/v1/jobs/${created[0]}/cancel`), 404, 'not_found');
  await problem(await b.get(`/v1/jobs/${created[0]}/artifact`), 404, 'not_found');
  assert.equal(((await (await b.get('/v1/jobs')).json()) as { items: unknown[] }).items.length, 0);

  // artifact and report don't exist until the job succeeded
  await problem(await a.get(`/v1/jobs/${created[0]}/artifact`), 409, 'conflict');
  await problem(await a.get(`/v1/jobs/${created[0]}/report`), 409, 'conflict');

  // cancel a queued job: immediate, idempotent
  const c1 = await a.post(`/v1/jobs/${created[0]}/cancel`);
  assert.equal(c1.status, 200);
  assert.equal(((await c1.json()) as { status: string }).status, 'canceled');
  const c2 = await a.post(`/v1/jobs/${created[0]}/cancel`);
  assert.equal(((await c2.json()) as { status: string }).status, 'canceled');
  assert.equal(await app.queue.getJob(created[0]!), undefined, 'removed from the queue');
  // a job that finished otherwise → 409
  await svc.dbh.db.job.update({ where: { id: created[1]! }, data: { status: 'failed', finishedAt: new Date() } });
  await problem(await a.post(`/v1/jobs/${created[1]}/cancel`), 409, 'conflict');
  await problem(await a.get('/v1/jobs/not-a-uuid'), 400, 'invalid_input');
});

test('an invalid recipe → 400 with the JSON path of each problem; nothing is stored or queued', async () => {
  const a = client(keyA);
  const before = await svc.dbh.db.job.count();
  const res = await a.post('/v1/jobs', jobForm(model, { steps: [{ pass: 'convert.fp16', keepIoTypes: 'yes' }, { pass: 'no.such' }] }));
  const body = await problem(res, 400, 'invalid_recipe');
  const paths = (body.errors as { path: string }[]).map((e) => e.path);
  assert.ok(paths.includes('/steps/1/pass'), JSON.stringify(body.errors));
  assert.ok(paths.some((p) => p.startsWith('/steps/0/')), JSON.stringify(body.errors));
  await problem(await a.post('/v1/jobs', jobForm(model, '{not json')), 400, 'invalid_recipe');
  assert.equal(await svc.dbh.db.job.count(), before);
  assert.deepEqual(await tmpFiles(), []);
});

test('mistakes caught at the door: a file that is not ONNX, a truncated model, a step without its calibration data; nothing is stored or queued', async () => {
  const a = client(await svc.newKey('door')); // its own owner: the job accepted at the end counts against no other test's limits
  const before = await svc.dbh.db.job.count();
  const modelsBefore = await svc.dbh.db.storedModel.count();
  const text = new TextEncoder().encode('name,score\nalice,3\nbob,4\n');
  let body = await problem(await a.post('/v1/jobs', jobForm(text, FAST_RECIPE)), 422, 'invalid_model');
  assert.match(body.detail, /not an ONNX model/);
  body = await problem(await a.post('/v1/jobs', jobForm(model.subarray(0, model.length - 1000), FAST_RECIPE)), 422, 'invalid_model');
  assert.match(body.detail, /past the end of the \d+-byte file \(truncated upload\?\)/);
  const upload = new FormData();
  upload.append('model', new Blob([text]), 'model.onnx');
  await problem(await a.post('/v1/models', upload), 422, 'invalid_model');
  body = await problem(await a.post('/v1/jobs', jobForm(model, { steps: [{ pass: 'convert.fp16' }, { pass: 'quantize.static' }] })), 400, 'invalid_input');
  assert.match(body.detail, /step 2 \(quantize\.static\) needs calibration data/);
  assert.deepEqual(body.errors, [{ path: '/calibration', message: 'required by /steps/1' }]);
  assert.equal(await svc.dbh.db.job.count(), before);
  assert.equal(await svc.dbh.db.storedModel.count(), modelsBefore);
  assert.deepEqual(await tmpFiles(), []);
  // the same step with allowSynthetic is a job
  const ok = await a.post('/v1/jobs', jobForm(model, { steps: [{ pass: 'quantize.static', allowSynthetic: true }], benchmark: { enabled: false } }));
  assert.equal(ok.status, 202, await ok.clone().text());
});

test('the recipe may also come as a file part (curl -F recipe=@recipe.json)', async () => {
  const form = new FormData();
  form.append('recipe', new Blob([JSON.stringify(FAST_RECIPE)]), 'recipe.json');
  form.append('model', new Blob([model]), 'model.onnx');
  const res = await client(keyB).post('/v1/jobs', form);
  assert.equal(res.status, 202, await res.clone().text());
});

test('an oversize upload → 413 and the partial file is removed', async () => {
  const big = new Uint8Array(model.length + 5000);
  const res = await client(keyA).post('/v1/jobs', jobForm(big, FAST_RECIPE));
  await problem(res, 413, 'payload_too_large');
  assert.deepEqual(await tmpFiles(), [], 'no partial upload left behind');
  assert.equal(await svc.dbh.db.storedModel.count({ where: { sizeBytes: BigInt(big.length) } }), 0);
});

test('POST /v1/models stores identical uploads once; a JSON job can reference the model', async () => {
  const a = client(keyA);
  const form = () => {
    const f = new FormData();
    f.append('model', new Blob([model]), 'fmnist.onnx');
    return f;
  };
  const r1 = await a.post('/v1/models', form());
  const r2 = await a.post('/v1/models', form());
  const m1 = (await r1.json()) as { id: string; sha256: string; sizeBytes: number };
  const m2 = (await r2.json()) as { id: string };
  assert.equal(m1.id, m2.id);
  assert.equal(m1.sizeBytes, model.length);
  assert.equal((await infra.storage.list('models')).length, 1, 'one file for identical content');
  const job = await a.post('/v1/jobs', { modelId: m1.id, recipe: FAST_RECIPE });
  assert.equal(job.status, 202, await job.clone().text());
  await problem(await client(keyB).post('/v1/jobs', { modelId: m1.id, recipe: FAST_RECIPE }), 404, 'not_found');
  const bad = await problem(await a.post('/v1/jobs', { modelId: m1.id, recipe: FAST_RECIPE, extra: 1 }), 400, 'invalid_input');
  assert.ok(bad.errors);
});

test('Idempotency-Key: same key + same body → same job; different body → 422', async () => {
  const a = client(keyA);
  const h = { 'idempotency-key': 'abc-123' };
  const r1 = await a.post('/v1/jobs', jobForm(model, FAST_RECIPE), h);
  const r2 = await a.post('/v1/jobs', jobForm(model, FAST_RECIPE), h);
  assert.equal(r1.status, 202);
  const id = ((await r1.json()) as { id: string }).id;
  assert.equal(((await r2.json()) as { id: string }).id, id);
  // the hash is over the parsed recipe: key order and spelled-out defaults make no other request
  const same = { evaluate: { batchSize: 8, maxSamples: 16 }, benchmark: { enabled: false }, steps: [{ pass: 'convert.fp16' }] };
  const r3 = await a.post('/v1/jobs', jobForm(model, same), h);
  assert.equal(((await r3.json()) as { id: string }).id, id);
  await problem(await a.post('/v1/jobs', jobForm(model, { ...FAST_RECIPE, name: 'other' }), h), 422, 'idempotency_mismatch');
  // the same key from another owner is a different job
  const rb = await client(keyB).post('/v1/jobs', jobForm(model, FAST_RECIPE), h);
  assert.equal(rb.status, 202);
});

test('rate limits: active jobs per owner and creations per minute → 429 with Retry-After', async () => {
  // the window opens with a fresh owner's first request and lasts a minute: everything below fits in it
  const c = client(await svc.newKey('limited'));
  const ids: string[] = [];
  for (let i = 0; i < 6; i++) {
    const res = await c.post('/v1/jobs', jobForm(model, FAST_RECIPE));
    assert.equal(res.status, 202);
    ids.push(((await res.json()) as { id: string }).id);
  }
  const capped = await c.post('/v1/jobs', jobForm(model, FAST_RECIPE));
  assert.ok(Number(capped.headers.get('retry-after')) >= 1);
  assert.match((await problem(capped, 429, 'rate_limited')).detail, /unfinished jobs/);
  for (const id of ids) assert.equal((await c.post(`/v1/jobs/${id}/cancel`)).status, 200);
  // 7 creations counted so far; 5 more fit in the per-minute limit of 12, the next does not
  const once = { 'idempotency-key': 'once' };
  for (let i = 0; i < 5; i++) assert.equal((await c.post('/v1/jobs', jobForm(model, FAST_RECIPE), i === 0 ? once : {})).status, 202);
  const limited = await c.post('/v1/jobs', jobForm(model, FAST_RECIPE));
  const retryAfter = Number(limited.headers.get('retry-after'));
  assert.ok(retryAfter >= 1 && retryAfter <= 60, String(retryAfter));
  assert.match((await problem(limited, 429, 'rate_limited')).detail, /per minute/);
  assert.equal((await c.post('/v1/jobs', jobForm(model, FAST_RECIPE), once)).status, 202, 'a replay of an accepted request is not counted');
});

/** A model upload of distinct bytes (the store takes any bytes; the worker is what parses them). */
function modelForm(seed: number, size = model.length): FormData {
  const form = new FormData();
  form.append('model', new Blob([modelBytes(seed, size)]), `m${seed}.onnx`);
  return form;
}

/** A model of `size` bytes, distinct per seed: the fixture with its last byte changed, or (smaller) a framed stand-in. */
function modelBytes(seed: number, size = model.length): Uint8Array {
  let bytes: Uint8Array;
  if (size >= model.length) {
    bytes = new Uint8Array(model);
  } else {
    // ir_version 8, an empty graph, then a doc_string filling the rest: a ModelProto's framing, as the door checks it
    const head = [0x08, 0x08, 0x3a, 0x00, 0x32];
    const docLength = size - head.length - 2;
    assert.ok(docLength >= 128 && docLength < 16384, 'two length bytes');
    bytes = new Uint8Array(size);
    bytes.set([...head, (docLength & 0x7f) | 0x80, docLength >> 7]);
  }
  bytes[bytes.length - 1] = seed; // distinct content, distinct model
  return bytes;
}

test('the active-jobs limit holds under a race: 50 concurrent creations by a fresh owner → exactly the limit accepted', async () => {
  const c = client(await svc.newKey('racer'));
  const { id: modelId } = (await (await c.post('/v1/models', modelForm(1))).json()) as { id: string };
  const results = await Promise.all(Array.from({ length: 50 }, () => c.post('/v1/jobs', { modelId, recipe: FAST_RECIPE })));
  const accepted = results.filter((r) => r.status === 202).length;
  assert.equal(accepted, svc.config.maxActiveJobsPerOwner, results.map((r) => r.status).join(','));
  assert.ok(results.every((r) => r.status === 202 || r.status === 429));
  const owner = (await svc.dbh.db.storedModel.findUniqueOrThrow({ where: { id: modelId } })).ownerId;
  assert.equal(await svc.dbh.db.job.count({ where: { ownerId: owner } }), svc.config.maxActiveJobsPerOwner, 'no row beyond the limit');
});

test('model quotas per owner (count and bytes), also under concurrent uploads; a known model is not a new one', async () => {
  // count: small models, 8 at once → exactly MAX_MODELS_PER_OWNER stored
  const c = client(await svc.newKey('quota'));
  const results = await Promise.all(Array.from({ length: 8 }, (_, i) => c.post('/v1/models', modelForm(10 + i, 1000))));
  assert.equal(results.filter((r) => r.status === 201).length, svc.config.maxModelsPerOwner, results.map((r) => r.status).join(','));
  const refused = results.find((r) => r.status !== 201)!;
  assert.match((await problem(refused, 409, 'quota_exceeded')).detail, /MAX_MODELS_PER_OWNER/);
  const stored = await Promise.all(results.filter((r) => r.status === 201).map(async (r) => ((await r.json()) as { filename: string }).filename));
  const again = await c.post('/v1/models', modelForm(Number(/m(\d+)/.exec(stored[0]!)![1]), 1000));
  assert.equal(again.status, 200, 'identical bytes: the stored model, no quota needed');
  // at the quota, a new model is refused, by itself or with a job
  await problem(await c.post('/v1/models', modelForm(99, 1000)), 409, 'quota_exceeded');
  await problem(await c.post('/v1/jobs', jobForm(modelBytes(3, 1000), FAST_RECIPE)), 409, 'quota_exceeded');
  // bytes: full-size models, 5 at once → the 3 that fit MAX_MODEL_BYTES_PER_OWNER
  const d = client(await svc.newKey('bytes'));
  const big = await Promise.all(Array.from({ length: 5 }, (_, i) => d.post('/v1/models', modelForm(40 + i))));
  assert.equal(big.filter((r) => r.status === 201).length, 3, big.map((r) => r.status).join(','));
  assert.match((await problem(big.find((r) => r.status !== 201)!, 409, 'quota_exceeded')).detail, /MAX_MODEL_BYTES_PER_OWNER/);
  assert.deepEqual(await tmpFiles(), [], 'refused uploads leave nothing');
});

test('hostile input → 400, never 500: a 100k-deep recipe, a cursor from year −271821, ids made of dashes, unbounded maxSamples', async () => {
  const c = client(keyA);
  const deep = '['.repeat(100_000) + ']'.repeat(100_000);
  await problem(await c.post('/v1/jobs', jobForm(model, `{"steps":${deep}}`)), 400, 'invalid_recipe');
  await problem(await c.post('/v1/jobs', `{"modelId":"x","recipe":${deep}}`), 400, 'invalid_input');
  const cursor = Buffer.from(JSON.stringify([new Date(-8.64e15).toISOString(), '00000000-0000-0000-0000-000000000000'])).toString('base64url');
  await problem(await c.get(`/v1/jobs?cursor=${cursor}`), 400, 'invalid_input');
  const dashes = '-'.repeat(36);
  await problem(await c.get(`/v1/jobs/${dashes}`), 400, 'invalid_input');
  await problem(await c.post(`/v1/jobs/${dashes}/cancel`), 400, 'invalid_input');
  await problem(await c.get(`/v1/models/${dashes}`), 400, 'invalid_input');
  await problem(await c.post('/v1/jobs', { modelId: dashes, recipe: FAST_RECIPE }), 400, 'invalid_input');
  const huge = await c.post('/v1/jobs', jobForm(model, { ...FAST_RECIPE, evaluate: { maxSamples: 1e9 } }));
  assert.match(JSON.stringify((await problem(huge, 400, 'invalid_recipe')).errors), /evaluate\/maxSamples/);
});
