// GET /v1/recipes and POST /v1/recipes/validate in process (app.inject) over real Postgres, Redis and
// storage: the templates in recipes/, each valid through the endpoint; problems at their JSON paths
// with the allowed values and "did you mean" text; the same problems POST /v1/jobs gives; public
// (no key needed, a wrong key changes nothing); a malformed body is a 400/413 problem+json, never a 500.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../src/service/app.js';
import type { Infra } from '../src/service/plugins/infra.js';
import { MODELS, ROOT } from './helpers.js';
import { expectProblem, injectClient, jobForm, testInfra, testService, type TestService } from './service-helpers.js';

let svc: TestService;
let infra: Infra;
let closeInfra: () => Promise<void>;
let app: FastifyInstance;
const client = (key?: string) => injectClient(app, key);

/** The pass names in the order the API lists them (the "available:" list of an unknown pass). */
const PASS_NAMES = ['convert.fp16', 'quantize.dynamic', 'quantize.static', 'quantize.weights', 'factorize.svd', 'factorize.tucker', 'factorize.cp', 'prune.magnitude', 'prune.nm', 'prune.structured'];

interface Validation {
  valid: boolean;
  problems: { path: string; message: string }[];
  steps: { pass: string; calibration: 'required' | 'used' | 'none' }[];
  goal: boolean;
  needsLabels: boolean;
}

before(async () => {
  svc = await testService();
  ({ infra, close: closeInfra } = await testInfra(svc));
  app = await buildApp({ config: svc.config, infra });
  await app.ready();
});

after(async () => {
  await app.close();
  await closeInfra();
  await svc.close();
});

async function validate(recipe: unknown, key?: string): Promise<Validation> {
  const res = await client(key).post('/v1/recipes/validate', { recipe });
  assert.equal(res.status, 200, await res.clone().text());
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  return (await res.json()) as Validation;
}

/** An invalid recipe's answer: no steps, no goal, the problems as given. */
async function problemsOf(recipe: unknown): Promise<{ path: string; message: string }[]> {
  const v = await validate(recipe);
  assert.equal(v.valid, false, JSON.stringify(v));
  assert.deepEqual({ ...v, problems: [] }, { valid: false, problems: [], steps: [], goal: false, needsLabels: false });
  assert.ok(v.problems.length > 0);
  return v.problems;
}

test('GET /v1/recipes (public): every file in recipes/, as written, each valid through POST /v1/recipes/validate', async () => {
  const res = await client().get('/v1/recipes');
  assert.equal(res.status, 200);
  const { items } = (await res.json()) as { items: { file: string; name: string; description?: string; recipe: Record<string, unknown> }[] };
  const files = readdirSync(join(ROOT, 'recipes')).filter((f) => f.endsWith('.json')).sort();
  assert.ok(files.length >= 10, files.join(', '));
  assert.deepEqual(items.map((i) => i.file), files);
  for (const item of items) {
    const onDisk = JSON.parse(readFileSync(join(ROOT, 'recipes', item.file), 'utf8')) as { name: string; description?: string; steps: { pass: string }[] };
    assert.deepEqual(item.recipe, onDisk, `${item.file}: the template as written, no defaults filled in`);
    assert.equal(item.name, onDisk.name);
    assert.equal(item.description, onDisk.description);
    const v = await validate(item.recipe);
    assert.deepEqual(v.problems, [], item.file);
    assert.equal(v.valid, true);
    assert.deepEqual(v.steps.map((s) => s.pass), onDisk.steps.map((s) => s.pass), `${item.file}: one entry per step, in order`);
    assert.equal(v.goal, false);
    // the same template sent as text (what the editor holds) says the same
    assert.deepEqual(await validate(readFileSync(join(ROOT, 'recipes', item.file), 'utf8')), v, `${item.file} as text`);
  }
  // data needs, per template: static int8 and structured pruning cannot run without calibration data;
  // a refit (on by default) uses it when given, as fp16's range check does
  const needs = async (file: string) => (await validate(items.find((i) => i.file === file)!.recipe)).steps.map((s) => s.calibration);
  assert.deepEqual(await needs('int8-static.json'), ['required']);
  assert.deepEqual(await needs('prune-tucker-int8.json'), ['required', 'used', 'required']);
  assert.deepEqual(await needs('int8-dynamic.json'), ['none']);
  assert.deepEqual(await needs('svd-quarter.json'), ['used']);
  assert.deepEqual(await needs('fp16.json'), ['used']);
});

test('a valid recipe: valid, each step with its data needs; a goal says whether labels are needed', async () => {
  assert.deepEqual(await validate({ steps: [{ pass: 'quantize.static' }, { pass: 'quantize.static', allowSynthetic: true }, { pass: 'factorize.tucker', refine: false }] }), {
    valid: true,
    problems: [],
    steps: [
      { pass: 'quantize.static', calibration: 'required' },
      { pass: 'quantize.static', calibration: 'used' },
      { pass: 'factorize.tucker', calibration: 'none' },
    ],
    goal: false,
    needsLabels: false,
  });
  assert.deepEqual(await validate({ goal: { metric: 'top1', maxDrop: 0.01 } }), { valid: true, problems: [], steps: [], goal: true, needsLabels: true });
  assert.deepEqual(await validate({ steps: [{ pass: 'prune.magnitude', sparsity: 0.3 }], goal: { metric: 'agreement', min: 0.95 } }), {
    valid: true,
    problems: [],
    steps: [{ pass: 'prune.magnitude', calibration: 'none' }],
    goal: true,
    needsLabels: false,
  });
});

test('invalid recipes: each problem at its JSON path, with the allowed values and the nearest known name', async () => {
  // a misspelt choice: the choices, and the one meant
  assert.deepEqual(await problemsOf({ steps: [{ pass: 'quantize.static', calibrationMethod: 'entropi' }] }), [
    { path: '/steps/0/calibrationMethod', message: '"entropi" is not allowed: expected one of "minmax", "percentile", "entropy", "mse"; did you mean "entropy"?' },
  ]);
  // a choice far from every option: the choices, no guess
  assert.deepEqual(await problemsOf({ steps: [{ pass: 'quantize.static', calibrationMethod: 'histogram' }] }), [
    { path: '/steps/0/calibrationMethod', message: '"histogram" is not allowed: expected one of "minmax", "percentile", "entropy", "mse"' },
  ]);
  // a choice that may also be a number: the shapes allowed besides the literal
  assert.deepEqual(await problemsOf({ steps: [{ pass: 'factorize.svd', rank: 'quarter' }] }), [
    { path: '/steps/0/rank', message: '"quarter" is not allowed: expected one of "vbmf", a number > 0 and < 1, an integer ≥ 1, an array, an object' },
  ]);
  // a misspelt option: the option meant, and the pass's options
  const [opt] = await problemsOf({ steps: [{ pass: 'convert.fp16' }, { pass: 'quantize.dynamic', opTypse: ['MatMul'] }] });
  assert.equal(opt!.path, '/steps/1/opTypse');
  assert.match(opt!.message, /^unknown option "opTypse"; did you mean "opTypes"\? \(options: pass, opTypes, [^)]*perChannel[^)]*\)$/);
  // a misspelt pass: the pass meant, and every pass there is
  assert.deepEqual(await problemsOf({ steps: [{ pass: 'quantize.statik' }] }), [
    { path: '/steps/0/pass', message: `unknown pass 'quantize.statik' (did you mean 'quantize.static'?); available: ${PASS_NAMES.join(', ')}` },
  ]);
  // outside the steps: benchmark, evaluate and goal, at their paths
  const [bench] = await problemsOf({ steps: [{ pass: 'convert.fp16' }], benchmark: { enabld: false } });
  assert.equal(bench!.path, '/benchmark/enabld');
  assert.match(bench!.message, /^unknown option "enabld"; did you mean "enabled"\? \(options: enabled, batchSizes, warmup, runs, /);
  assert.deepEqual(await problemsOf({ steps: [{ pass: 'convert.fp16' }], evaluate: { maxSamples: 0 } }), [
    { path: '/evaluate/maxSamples', message: 'Expected integer to be greater or equal to 1' },
  ]);
  assert.deepEqual(await problemsOf({ goal: { metric: 'top-1' } }), [
    { path: '/goal/metric', message: '"top-1" is not allowed: expected one of "top1", "top5", "mae", "rmse", "obo", "nmae", "agreement", "sqnr"; did you mean "top1"?' },
  ]);
  // the recipe as a whole
  assert.deepEqual(await problemsOf({}), [{ path: '/steps', message: 'a recipe needs steps, a goal, or both' }]);
  assert.deepEqual(await problemsOf({ steps: [{ pass: 'convert.fp16' }], search: { budget: { minutes: 1 } } }), [{ path: '/search', message: 'search settings need a goal (/goal)' }]);
  assert.deepEqual(await problemsOf({ steps: [{ pass: 'convert.fp16' }], stepz: [] }), [{ path: '/stepz', message: 'unknown option "stepz"; did you mean "steps"? (options: name, description, steps, goal, search, benchmark, evaluate, output)' }]);
  // every problem at once, in order, not just the first
  const many = await problemsOf({ steps: [{ pass: 'prune.magnitude', sparsity: 1.5 }, { pass: 'no.such' }, { pass: 'quantize.static', calibrationMethod: 'mse', percentile: 'high' }] });
  assert.deepEqual(many.map((p) => p.path), ['/steps/0/sparsity', '/steps/1/pass', '/steps/2/percentile']);
  // text: what the editor sends while the JSON is half typed
  const [text] = await problemsOf('{"steps": [');
  assert.equal(text!.path, '');
  assert.match(text!.message, /^not valid JSON: /);
  assert.deepEqual(await problemsOf(`{"steps":${'['.repeat(40)}${']'.repeat(40)}}`), [{ path: '', message: 'nested deeper than 32 levels; a recipe is a few levels deep' }]);
  // scalars are taken as text (the body schema coerces them): the text is not a recipe
  assert.deepEqual(await problemsOf(5), [{ path: '', message: 'Expected object' }]);
  assert.deepEqual(await problemsOf(true), [{ path: '', message: 'Expected object' }]);
});

test('pass names that are Object.prototype members are unknown passes, not a 500', async () => {
  for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf']) {
    assert.deepEqual(await problemsOf({ steps: [{ pass: name }] }), [{ path: '/steps/0/pass', message: `unknown pass '${name}'; available: ${PASS_NAMES.join(', ')}` }], name);
    // in a goal's search space too
    const space = await problemsOf({ goal: { metric: 'agreement', min: 0.9 }, search: { space: [{ pass: name }] } });
    assert.deepEqual(space.map((p) => p.path), ['/search/space/0/pass'], name);
  }
});

test('the validation is the one POST /v1/jobs applies: the same problems at the same paths', async () => {
  const key = await svc.newKey('jobs');
  const model = readFileSync(MODELS.fmnist);
  const recipes = [
    { steps: [{ pass: 'quantize.static', calibrationMethod: 'entropi' }, { pass: 'constructor' }] },
    { steps: [{ pass: 'convert.fp16', keepIoTypes: 'yes' }], benchmark: { enabld: true } },
    { goal: { metric: 'top-1' } },
  ];
  for (const recipe of recipes) {
    const { problems } = await validate(recipe);
    const body = await expectProblem(await client(key).post('/v1/jobs', jobForm(model, recipe)), 400, 'invalid_recipe');
    assert.deepEqual(body.errors, problems, JSON.stringify(recipe));
  }
  assert.equal(await svc.dbh.db.job.count(), 0, 'no job from an invalid recipe');
});

test('public: no key needed, and a missing, malformed or wrong key changes nothing', async () => {
  const recipe = { steps: [{ pass: 'quantize.dynamic' }] };
  const expected = await validate(recipe);
  assert.equal(expected.valid, true);
  for (const authorization of ['Bearer mp_0000000000000000_' + 'x'.repeat(43), 'Basic abc']) {
    const res = await client().post('/v1/recipes/validate', { recipe }, { authorization });
    assert.equal(res.status, 200, authorization);
    assert.deepEqual(await res.json(), expected);
    assert.equal((await client().get('/v1/recipes', { authorization })).status, 200);
  }
  // the authenticated scope next door still wants a key
  await expectProblem(await client().get('/v1/models'), 401, 'unauthorized');
});

test('a malformed body → 400 (or 413) problem+json with a stable code, never a 500', async () => {
  const c = client();
  const post = (body: string | object, headers: Record<string, string> = {}) => c.post('/v1/recipes/validate', body, headers);
  assert.match((await expectProblem(await post('{"recipe": {'), 400, 'invalid_input')).detail, /not valid JSON/);
  await expectProblem(await post('', { 'content-type': 'application/json' }), 400, 'invalid_input');
  let body = await expectProblem(await post({}), 400, 'invalid_input');
  assert.deepEqual(body.errors, [{ path: '/', message: "must have required property 'recipe'" }]);
  body = await expectProblem(await post({ recipe: [] }), 400, 'invalid_input');
  assert.ok((body.errors as { path: string }[]).every((e) => e.path === '/recipe'), JSON.stringify(body.errors));
  await expectProblem(await post('[{"recipe": {}}]'), 400, 'invalid_input');
  await expectProblem(await post('recipe=x', { 'content-type': 'text/plain' }), 400, 'invalid_input');
  await expectProblem(await post('recipe=x', { 'content-type': 'application/x-www-form-urlencoded' }), 400, 'invalid_input');
  // prototype poisoning is refused by the JSON parser
  await expectProblem(await post('{"recipe": {"__proto__": {"polluted": 1}, "steps": [{"pass": "convert.fp16"}]}}'), 400, 'invalid_input');
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  // a body nested past any recipe is refused before it is parsed
  assert.match((await expectProblem(await post(`{"recipe":${'['.repeat(100_000)}${']'.repeat(100_000)}}`), 400, 'invalid_input')).detail, /nested deeper than 32 levels/);
  // past the body limit
  await expectProblem(await post({ recipe: { name: 'x'.repeat(2 * 1024 * 1024), steps: [{ pass: 'convert.fp16' }] } }), 413, 'payload_too_large');
  // the route takes POST only
  await expectProblem(await c.get('/v1/recipes/validate'), 404, 'not_found');
});
