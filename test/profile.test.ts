import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatProfile, kernelsFromTrace, nameUnnamedNodes, profileModel, summarizeProfile } from '../src/measure/profile.js';
import { countParameters } from '../src/onnx/constants.js';
import type { Model } from '../src/onnx/ir.js';
import { decodeModel, encodeModel } from '../src/onnx/model-io.js';
import type { ProfileEntry, ProfileReport } from '../src/report/schema.js';
import { syntheticInputs } from '../src/runtime/ort.js';
import { InvalidInputError } from '../src/errors.js';
import { MODELS, feedsFor, readModel, wireParameterCount } from './helpers.js';

const sumOf = (xs: readonly ProfileEntry[], f: (e: ProfileEntry) => number): number => xs.reduce((s, e) => s + f(e), 0);

function assertShares(r: ProfileReport): void {
  assert.ok(r.totalMs > 0, 'some kernel time');
  for (const [list, entries] of [['byNode', r.byNode], ['byOpType', r.byOpType], ['byBlock', r.byBlock]] as const) {
    assert.ok(Math.abs(sumOf(entries, (e) => e.share) - 1) < 1e-6, `${list} shares sum to 1`);
    assert.ok(Math.abs(sumOf(entries, (e) => e.ms) - r.totalMs) < 1e-6 * Math.max(1, r.totalMs), `${list} ms sum to the total`);
    for (let i = 1; i < entries.length; i++) assert.ok(entries[i - 1]!.ms >= entries[i]!.ms, `${list} sorted by ms`);
  }
}

/** Names a kernel may legitimately map to: the graph's node names after unnamed nodes got names. */
function namedNodes(bytes: Uint8Array): { model: Model; names: Set<string>; compute: number } {
  const model = decodeModel(bytes);
  nameUnnamedNodes(model);
  const nodes = [...model.graph.walkNodes()];
  return { model, names: new Set(nodes.map((n) => n.name)), compute: nodes.filter((n) => n.opType !== 'Constant').length };
}

describe('profile: PP-OCRv4 rec (flat names, weights in Constant nodes)', () => {
  const bytes = readModel(MODELS.ppocrRec);

  it('time and parameters add up per node, op type and block; the caller model is untouched', async () => {
    const model = decodeModel(bytes);
    assert.ok([...model.graph.nodes].some((n) => !n.name), 'the fixture has unnamed nodes');
    const before = encodeModel(model);
    const r = await profileModel(model, feedsFor('ppocrRec', model), { warmup: 2, runs: 5 });
    assert.deepEqual(Buffer.from(encodeModel(model)), Buffer.from(before), 'caller model unchanged');
    assert.ok([...model.graph.nodes].some((n) => !n.name), 'caller nodes stay unnamed');

    assert.equal(r.runs, 5);
    assert.equal(r.batch, 1);
    assert.equal(r.depth, 2);
    assertShares(r);
    const ops = new Set(r.byOpType.map((o) => o.name));
    assert.ok(ops.has('Conv'), `Conv among ${[...ops].join(', ')}`);
    assert.ok(ops.has('MatMul') || ops.has('FusedMatMul'), `MatMul among ${[...ops].join(', ')}`);
    // Which op type is heaviest is a timing fact (Conv and the 88 HardSwish Muls trade places on
    // a busy machine), so the test only asks that Conv holds a real share of the time.
    const conv = r.byOpType.find((o) => o.name === 'Conv')!;
    assert.ok(r.byOpType.slice(0, 3).includes(conv), `Conv among the three heaviest op types: ${r.byOpType.slice(0, 3).map((o) => o.name).join(', ')}`);
    assert.ok(conv.share > 0.05, `Conv share ${conv.share}`);

    const params = sumOf(r.byBlock, (b) => b.params ?? 0);
    assert.equal(params, countParameters(model));
    assert.equal(params, wireParameterCount(bytes));
    assert.ok(Math.abs(sumOf(r.byBlock, (b) => b.paramShare ?? 0) - 1) < 1e-6, 'param shares sum to 1');

    // flat names: blocks are layers named after their Conv/MatMul node (or ORT's layout reorders)
    const { names } = namedNodes(bytes);
    for (const b of r.byBlock) {
      assert.ok(names.has(b.name) || /^Reorder(Input|Output)$/.test(b.name), `block ${b.name}`);
      assert.ok((b.count ?? 0) > 0);
    }
    const heaviest = r.byBlock.reduce((a, b) => ((b.params ?? 0) > (a.params ?? 0) ? b : a));
    assert.match(heaviest.name, /^p2o\.(Conv|MatMul)\./);
  });

  it('with graph optimizations disabled every kernel maps to an original node', async () => {
    const model = decodeModel(bytes);
    const r = await profileModel(model, feedsFor('ppocrRec', model), { warmup: 1, runs: 2, graphOptimizationLevel: 'disabled' });
    assertShares(r);
    const { names, compute } = namedNodes(bytes);
    const unmapped = r.byNode.filter((e) => !names.has(e.name)).map((e) => e.name);
    assert.deepEqual(unmapped, []);
    assert.equal(r.byNode.length, compute, 'one entry per compute node');
    for (const e of r.byNode) assert.equal(e.count, 1);
  });
});

describe('profile: Fashion-MNIST CNN (hierarchical names)', () => {
  const bytes = readModel(MODELS.fmnist);
  const feedsOf = (m: Model) => syntheticInputs(m, { shapes: { input: [8, 1, 28, 28] } });

  it('depth 1 gives the network stages, conv-heavy ones holding the parameters', async () => {
    const model = decodeModel(bytes);
    const before = encodeModel(model);
    const r = await profileModel(model, feedsOf(model), { warmup: 2, runs: 5, depth: 1 });
    assert.deepEqual(Buffer.from(encodeModel(model)), Buffer.from(before), 'caller model unchanged');
    assert.equal(r.batch, 8);
    assertShares(r);
    const stages = ['/stem', '/block1', '/down2', '/block2', '/down3', '/block3', '/head'];
    const graphBlocks = r.byBlock.filter((b) => b.name.startsWith('/')).map((b) => b.name);
    assert.deepEqual(new Set(graphBlocks), new Set(stages));
    const p = (name: string) => r.byBlock.find((b) => b.name === name)!.params!;
    const byParams = [...r.byBlock].sort((a, b) => (b.params ?? 0) - (a.params ?? 0)).map((b) => b.name);
    assert.deepEqual(new Set(byParams.slice(0, 2)), new Set(['/block3', '/down3']));
    assert.ok(p('/block3') > p('/head') && p('/block1') > p('/stem'));
    assert.equal(sumOf(r.byBlock, (b) => b.params ?? 0), countParameters(model));
    assert.equal(r.byBlock.find((b) => b.name === '/block1')!.count, 7, 'nodes in /block1');
    const table = formatProfile(r);
    assert.match(table, /block\s+latency %\s+ms\/run\s+params %\s+params/);
    for (const s of stages) assert.match(table, new RegExp(`^  ${s} `, 'm'));
  });

  it("fused NCHWc convs (named after the Relu/BN output) are charged to the Conv nodes", async () => {
    const model = decodeModel(bytes);
    const r = await profileModel(model, feedsOf(model), { warmup: 1, runs: 2, graphOptimizationLevel: 'all' });
    const convs = model.graph.nodes.filter((n) => n.opType === 'Conv').map((n) => n.name);
    const convEntries = r.byNode.filter((e) => e.opType === 'Conv').map((e) => e.name);
    assert.deepEqual(new Set(convEntries), new Set(convs));
    const { names } = namedNodes(bytes);
    for (const e of r.byNode) assert.ok(names.has(e.name) || e.opType?.startsWith('Reorder'), `${e.name} (${e.opType})`);
    assert.equal(r.byBlock.find((b) => b.name === '/down2/bn1')?.ms, 0, 'folded BN: params, no time');
  });
});

describe('profile: trace parsing and name mapping (synthetic trace)', () => {
  const ev = (name: string, op: string, ts: number, dur: number) => ({ cat: 'Node', name: `${name}_kernel_time`, ph: 'X', ts, dur, tid: 1, args: { op_name: op } });
  const run = (ts: number, dur: number) => ({ cat: 'Session', name: 'model_run', ph: 'X', ts, dur, tid: 1 });

  it('drops warmup runs, subtracts nested subgraph kernels, maps fused and inserted kernels', () => {
    const trace = [
      ev('/stem/conv/Conv', 'Conv', 10, 50), // warmup
      run(5, 100),
      ev('/stem/relu/Relu_output_0_nchwc', 'Conv', 210, 40), // → the Conv, not the Relu
      ev('ReorderInput_token_7', 'ReorderInput', 251, 5),
      ev('/head/fc/Gemm/GemmActivationFusion/', 'FusedGemm', 260, 10),
      ev('/block1/Add', 'If', 300, 30), // a control-flow kernel enclosing two others
      ev('/block1/relu_out/Relu', 'Relu', 305, 8),
      ev('/block1/bn2/BatchNormalization', 'BatchNormalization', 314, 6),
      run(200, 140),
    ];
    const { kernels, runs } = kernelsFromTrace(trace, 1);
    assert.equal(runs, 1);
    assert.equal(kernels.length, 6);
    assert.equal(kernels.find((k) => k.name === '/block1/Add')!.us, 30 - 8 - 6);
    assert.equal(kernels.reduce((s, k) => s + k.us, 0), 40 + 5 + 10 + 16 + 8 + 6);

    const model = decodeModel(readModel(MODELS.fmnist));
    const r = summarizeProfile(model, kernels, runs, { depth: 1, batch: 1 });
    const node = (n: string) => r.byNode.find((e) => e.name === n);
    assert.equal(node('/stem/conv/Conv')?.ms, 0.04);
    assert.equal(node('/head/fc/Gemm')?.opType, 'FusedGemm');
    assert.equal(node('ReorderInput_token_7')?.opType, 'ReorderInput');
    assert.ok(r.byBlock.some((b) => b.name === 'ReorderInput'), 'inserted kernels grouped under their ORT name');
    assert.equal(r.byBlock.find((b) => b.name === '/block1')!.ms, 0.03);
    assertShares(r);
    assert.equal(r.byBlock.find((b) => b.name === '/down3')!.ms, 0, 'blocks with parameters and no time appear');
  });

  it('rejects bad options before loading anything', async () => {
    const model = decodeModel(readModel(MODELS.fmnist));
    await assert.rejects(profileModel(model, {}, { runs: 0 }), InvalidInputError);
    await assert.rejects(profileModel(model, {}, { depth: 0 }), InvalidInputError);
  });
});
