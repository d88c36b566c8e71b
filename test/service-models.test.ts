// GET /v1/models and GET /v1/models/{id}/summary in process (app.inject) over real Postgres, Redis and
// storage: a model is listed for its owner only (another owner's key gets neither the entry nor the
// summary), newest first; the summary's facts checked against values found without the summarizer
// (the fixture's training metadata, a protobuf-wire parameter count, the decoded graph's inputs and
// outputs, a model built here); unknown ids → 404 problem+json; a bundle has no summary in the API.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { create } from '@bufbuild/protobuf';
import { OperatorSetIdProtoSchema, TensorProtoSchema, type ValueInfoProto } from 'onnx-buf';
import { buildApp } from '../src/service/app.js';
import type { Infra } from '../src/service/plugins/infra.js';
import { decodeModelProto } from '../src/onnx/model-io.js';
import { writeTar } from '../src/bundles/tar.js';
import { FMNIST, MODELS, wireParameterCount } from './helpers.js';
import { bytesOf, graph, modelProto, node, valueInfo } from './crafted-models.js';
import { expectProblem, injectClient, testInfra, testService, type TestService } from './service-helpers.js';

let svc: TestService;
let infra: Infra;
let closeInfra: () => Promise<void>;
let app: FastifyInstance;
let keyA: string;
let keyB: string;
const client = (key?: string) => injectClient(app, key);
const fmnist = readFileSync(MODELS.fmnist);
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

interface ModelBody {
  id: string;
  sha256: string;
  sizeBytes: number;
  filename: string | null;
  createdAt: string;
  lastUsedAt: string;
}

interface SummaryBody {
  irVersion: number;
  opsets: Record<string, number>;
  producer: string;
  graphName: string;
  sizeBytes: number;
  inputs: { name: string; dtype: string; shape: (number | string | null)[] | null }[];
  outputs: { name: string; dtype: string; shape: (number | string | null)[] | null }[];
  nodes: number;
  subgraphs: number;
  opTypes: Record<string, number>;
  params: number;
  weights: { initializers: number; constantNodes: number; bytesByDtype: Record<string, number>; parameterBytes: number };
  quantization: unknown;
}

before(async () => {
  svc = await testService({ RATE_LIMIT_UPLOADS_PER_MINUTE: '100' });
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

async function upload(key: string, bytes: Uint8Array, filename: string, status = 201): Promise<ModelBody> {
  const form = new FormData();
  form.append('model', new Blob([bytes]), filename);
  const res = await client(key).post('/v1/models', form);
  assert.equal(res.status, status, await res.clone().text());
  return (await res.json()) as ModelBody;
}

async function list(key: string, query = ''): Promise<ModelBody[]> {
  const res = await client(key).get(`/v1/models${query}`);
  assert.equal(res.status, 200, await res.clone().text());
  return ((await res.json()) as { items: ModelBody[] }).items;
}

async function summary(key: string, id: string): Promise<SummaryBody> {
  const res = await client(key).get(`/v1/models/${id}/summary`);
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as SummaryBody;
}

/** y = Relu(x·W + b) then com.microsoft Gelu: x float [N, 3], W [3, 4], b [4]; 16 parameters, 64 bytes. */
function tinyModel(): Uint8Array {
  const w = create(TensorProtoSchema, { name: 'W', dataType: 1, dims: [3n, 4n], floatData: Array.from({ length: 12 }, (_, i) => i / 10) });
  const b = create(TensorProtoSchema, { name: 'b', dataType: 1, dims: [4n], floatData: [0.1, 0.2, 0.3, 0.4] });
  const gelu = node('Gelu', 'gelu', ['r'], ['y']);
  gelu.domain = 'com.microsoft';
  const g = graph('tiny', {
    input: [valueInfo('x', 1, ['N', 3])],
    output: [valueInfo('y', 1, ['N', 4])],
    initializer: [w, b],
    node: [node('MatMul', 'mm', ['x', 'W'], ['xw']), node('Add', 'add', ['xw', 'b'], ['z']), node('Relu', 'relu', ['z'], ['r']), gelu],
  });
  return bytesOf(
    modelProto(g, {
      producerName: 'modelpress-test',
      producerVersion: '1',
      opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 17n }), create(OperatorSetIdProtoSchema, { domain: 'com.microsoft', version: 1n })],
    }),
  );
}

/** A graph value as the summary should describe it, read from the decoded protobuf (not the IR). */
function described(v: ValueInfoProto): { name: string; dtype: string; shape: (number | string)[] } {
  assert.equal(v.type?.value.case, 'tensorType');
  const t = v.type.value.value;
  assert.equal(t.elemType, 1, `${v.name}: float`);
  return { name: v.name, dtype: 'float32', shape: t.shape!.dim.map((d) => (d.value.case === 'dimValue' ? Number(d.value.value) : (d.value.value as string))) };
}

test('a model is listed for its owner only, newest first; another owner gets neither the entry, the model nor its summary', async () => {
  const a = await upload(keyA, fmnist, 'fmnist.onnx');
  assert.deepEqual({ ...a, id: '', createdAt: '', lastUsedAt: '' }, { id: '', sha256: sha256(fmnist), sizeBytes: fmnist.length, filename: 'fmnist.onnx', createdAt: '', lastUsedAt: '', expiresAt: null, expiredAt: null });
  assert.equal(a.lastUsedAt, a.createdAt, 'an upload is its first use');
  assert.ok(Math.abs(Date.parse(a.createdAt) - Date.now()) < 60_000, a.createdAt);
  assert.deepEqual(await list(keyA), [a]);
  const got = await client(keyA).get(`/v1/models/${a.id}`);
  assert.equal(got.status, 200);
  assert.deepEqual(await got.json(), a);

  // another owner: an empty list, and the model looks exactly like one that does not exist
  assert.deepEqual(await list(keyB), []);
  const missing = randomUUID();
  for (const path of ['', '/summary']) {
    const theirs = await expectProblem(await client(keyB).get(`/v1/models/${a.id}${path}`), 404, 'not_found');
    const none = await expectProblem(await client(keyB).get(`/v1/models/${missing}${path}`), 404, 'not_found');
    assert.equal(theirs.detail, `no model ${a.id}`);
    assert.equal(theirs.detail.replace(a.id, missing), none.detail, 'the same answer as for a missing model');
  }

  // the same bytes from the other owner: their own model, in their list only
  const b = await upload(keyB, fmnist, 'mine.onnx');
  assert.notEqual(b.id, a.id);
  assert.equal(b.sha256, a.sha256);
  assert.deepEqual(await list(keyB), [b]);
  assert.deepEqual(await list(keyA), [a]);
  assert.equal((await summary(keyB, b.id)).params, (await summary(keyA, a.id)).params);
  await expectProblem(await client(keyA).get(`/v1/models/${b.id}/summary`), 404, 'not_found');

  // identical bytes again: the same model, not a second entry
  assert.equal((await upload(keyA, fmnist, 'again.onnx', 200)).id, a.id);
  // newest first, and the limit
  const tiny = await upload(keyA, tinyModel(), 'tiny.onnx');
  assert.deepEqual((await list(keyA)).map((m) => m.id), [tiny.id, a.id]);
  assert.deepEqual((await list(keyA, '?limit=1')).map((m) => m.id), [tiny.id]);
  for (const q of ['?limit=0', '?limit=101', '?limit=many', '?owner=b']) await expectProblem(await client(keyA).get(`/v1/models${q}`), 400, 'invalid_input');

  // no key, no models
  await expectProblem(await client().get('/v1/models'), 401, 'unauthorized');
  await expectProblem(await client().get(`/v1/models/${a.id}/summary`), 401, 'unauthorized');
  await expectProblem(await client('mp_0000000000000000_' + 'x'.repeat(43)).get(`/v1/models/${a.id}/summary`), 401, 'unauthorized');
});

test('summary of the fmnist fixture: what its training script recorded, a wire-level parameter count, the decoded graph interface', async () => {
  const key = await svc.newKey('fmnist');
  const { id } = await upload(key, fmnist, 'fmnist.onnx');
  const s = await summary(key, id);
  const meta = JSON.parse(readFileSync(FMNIST.meta, 'utf8')) as { opset: number; stateDictFloatElements: number; onnxNodeCounts: Record<string, number> };
  // ops: the counts the training script took from the exported graph
  assert.deepEqual(s.opTypes, meta.onnxNodeCounts);
  assert.equal(s.nodes, Object.values(meta.onnxNodeCounts).reduce((x, y) => x + y, 0));
  assert.equal(s.subgraphs, 0);
  assert.deepEqual(s.opsets, { 'ai.onnx': meta.opset });
  // parameters: every float element of the state dict (weights and BatchNorm statistics), counted
  // from the protobuf wire format too; all float32, 4 bytes each
  assert.equal(s.params, meta.stateDictFloatElements);
  assert.equal(s.params, wireParameterCount(fmnist));
  assert.deepEqual(s.weights.bytesByDtype, { float32: 4 * s.params });
  assert.equal(s.weights.parameterBytes, 4 * s.params);
  assert.equal(s.sizeBytes, fmnist.length);
  // the interface, as the decoded protobuf declares it (graph inputs that are not initializers)
  const proto = decodeModelProto(fmnist);
  const inits = new Set(proto.graph!.initializer.map((t) => t.name));
  assert.equal(s.weights.initializers, inits.size);
  assert.equal(s.weights.constantNodes, 0);
  assert.deepEqual(s.inputs, proto.graph!.input.filter((v) => !inits.has(v.name)).map(described));
  assert.deepEqual(s.outputs, proto.graph!.output.map(described));
  // which the fixture's README states in words: input `input` [N, 1, 28, 28], output `logits` [N, 10]
  assert.deepEqual(s.inputs.map((v) => [v.name, v.shape!.slice(1)]), [['input', [1, 28, 28]]]);
  assert.deepEqual(s.outputs.map((v) => [v.name, v.shape!.slice(1)]), [['logits', [10]]]);
  assert.equal(typeof s.inputs[0]!.shape![0], 'string', 'a dynamic batch');
  assert.equal(s.irVersion, Number(proto.irVersion));
  assert.equal(s.quantization, null);
});

test('summary of a model built here: exactly what it holds', async () => {
  const key = await svc.newKey('tiny');
  const bytes = tinyModel();
  const { id } = await upload(key, bytes, 'tiny.onnx');
  assert.deepEqual(await summary(key, id), {
    irVersion: 8,
    opsets: { 'ai.onnx': 17, 'com.microsoft': 1 },
    producer: 'modelpress-test 1',
    graphName: 'tiny',
    sizeBytes: bytes.length,
    inputs: [{ name: 'x', dtype: 'float32', shape: ['N', 3] }],
    outputs: [{ name: 'y', dtype: 'float32', shape: ['N', 4] }],
    nodes: 4,
    subgraphs: 0,
    opTypes: { MatMul: 1, Add: 1, Relu: 1, 'com.microsoft::Gelu': 1 },
    params: 16,
    weights: { initializers: 2, constantNodes: 0, bytesByDtype: { float32: 64 }, parameterBytes: 64 },
    quantization: null,
  });
  // asked again (served from the cache by content): the same
  assert.equal((await summary(key, id)).params, 16);
});

test('unknown and malformed ids → 404 / 400 problem+json; a bundle has no summary in the API (409)', async () => {
  const c = client(keyA);
  await expectProblem(await c.get(`/v1/models/${randomUUID()}/summary`), 404, 'not_found');
  await expectProblem(await c.get(`/v1/models/${randomUUID()}`), 404, 'not_found');
  await expectProblem(await c.get('/v1/models/not-a-uuid/summary'), 400, 'invalid_input');
  await expectProblem(await c.get('/v1/models/00000000-0000-0000-0000-000000000000/summary'), 404, 'not_found');
  // a .tar of a model: stored as it is, unpacked only by a worker
  const dir = mkdtempSync(join(tmpdir(), 'mp-models-'));
  try {
    writeFileSync(join(dir, 'tiny.onnx'), tinyModel());
    await writeTar(join(dir, 'tiny.tar'), [{ name: 'tiny.onnx', path: join(dir, 'tiny.onnx') }]);
    const bundle = await upload(keyA, readFileSync(join(dir, 'tiny.tar')), 'tiny.tar');
    const body = await expectProblem(await c.get(`/v1/models/${bundle.id}/summary`), 409, 'conflict');
    assert.match(body.detail, /bundle/);
    assert.ok((await list(keyA)).some((m) => m.id === bundle.id), 'listed all the same');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
