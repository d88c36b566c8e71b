import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readFileSync } from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { GraphProtoSchema, ModelProtoSchema, OperatorSetIdProtoSchema } from 'onnx-buf';
import { Value as TBValue } from '@sinclair/typebox/value';
import { decodeModel, encodeModel, importModel } from '../src/onnx/model-io.js';
import { verifyModel } from '../src/onnx/verify.js';
import { getConstant, setConstant } from '../src/onnx/constants.js';
import { DataType as DT } from '../src/onnx/dtypes.js';
import type { Model, Node } from '../src/onnx/ir.js';
import { makeTensor, readFloat32, tensorDims } from '../src/onnx/tensor-data.js';
import { PASSES } from '../src/passes/index.js';
import { fidelity } from '../src/metrics/fidelity.js';
import { ort, runOnce, seededRandom, tensorToFloat32, type Feeds } from '../src/runtime/ort.js';
import { batchesFromArrays, readArraysFile, readLabelsFile } from '../src/data/samples.js';
import { evaluateModels } from '../src/eval/evaluate.js';
import { evbmfRank } from '../src/factorize/vbmf.js';
import { refineChains, type RefitTarget } from '../src/factorize/refine.js';
import { energyRank, RANK_SELECTORS, RankSchema, rankSelector, roundRank, tuckerFractionRanks, type RankSpec } from '../src/factorize/rank.js';
import { hooi, leadingModeVectors, tensor } from '../src/linalg/index.js';
import type { ChangeLog } from '../src/pipeline/pass.js';
import type { FactorizeStats } from '../src/factorize/driver.js';
import { FMNIST, MODELS, ROOT, feedsFor, passContext } from './helpers.js';

type Method = 'svd' | 'tucker' | 'cp';

async function runPass(method: Method, input: Model, samples: Feeds[], config: Record<string, unknown>): Promise<{ model: Model; changes: ChangeLog<FactorizeStats> }> {
  const pass = PASSES[`factorize.${method}`]!;
  const cfg = TBValue.Default(pass.schema, { pass: `factorize.${method}`, requireSpeedup: false, refine: false, minParams: 0, ...config });
  assert.ok(TBValue.Check(pass.schema, cfg), 'config fits the schema');
  const ctx = passContext(samples);
  const model = await pass.run(input, cfg as never, ctx);
  verifyModel(model);
  return { model, changes: ctx.changes };
}

/** The chain that replaced the node called `name`, in order. */
function chainOf(model: Model, name: string): Node[] {
  return model.graph.nodes.filter((n) => n.name.startsWith(`${name}_f`));
}

const w32 = (n: Node, i = 1) => ({ dims: tensorDims(getConstant(n.inputs[i])!), data: readFloat32(getConstant(n.inputs[i])!) });

/** The dense weight the chain computes, in the original layer's layout. */
function reconstructWeight(method: Method, chain: Node[], original: Node): Float32Array {
  const origDims = tensorDims(getConstant(original.inputs[1])!);
  if (method === 'svd') {
    const [a, b] = chain.map((n) => w32(n));
    if (original.opType === 'Conv') {
      // a [r, Cin, 1…], b [Cout, r, 1…]: W = b·a
      const [r, cin] = a!.dims as [number, number];
      const cout = b!.dims[0]!;
      const out = new Float32Array(cout * cin);
      for (let o = 0; o < cout; o++) for (let i = 0; i < cin; i++) {
        let s = 0;
        for (let k = 0; k < r; k++) s += b!.data[o * r + k]! * a!.data[k * cin + i]!;
        out[o * cin + i] = s;
      }
      return out;
    }
    const [K, r] = a!.dims as [number, number];
    const N = b!.dims[1]!;
    const out = new Float32Array(K * N);
    const trans = original.opType === 'Gemm' && original.getInt('transB', 0) === 1;
    for (let i = 0; i < K; i++) for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < r; k++) s += a!.data[i * r + k]! * b!.data[k * N + j]!;
      out[trans ? j * K + i : i * N + j] = s;
    }
    return out;
  }
  const [cout, cin, ...kernel] = origDims as [number, number, ...number[]];
  const K = kernel.reduce((x, y) => x * y, 1);
  const out = new Float32Array(cout * cin * K);
  if (method === 'tucker') {
    // optional 1×1 in, core, optional 1×1 out
    const core = chain.find((n) => tensorDims(getConstant(n.inputs[1])!).slice(2).some((k) => k > 1) || chain.length === 1)!;
    const ci = chain.indexOf(core);
    const g = w32(core);
    const [r2, r1] = g.dims as [number, number];
    const A = ci > 0 ? w32(chain[0]!).data : null; // [r1, cin]
    const B = ci < chain.length - 1 ? w32(chain[chain.length - 1]!).data : null; // [cout, r2]
    for (let o = 0; o < cout; o++) for (let i = 0; i < cin; i++) for (let p = 0; p < K; p++) {
      let s = 0;
      for (let b = 0; b < r2; b++) {
        const bo = B ? B[o * r2 + b]! : o === b ? 1 : 0;
        if (bo === 0) continue;
        for (let a = 0; a < r1; a++) s += bo * g.data[(b * r1 + a) * K + p]! * (A ? A[a * cin + i]! : a === i ? 1 : 0);
      }
      out[(o * cin + i) * K + p] = s;
    }
    return out;
  }
  // cp: pointwise A [R, cin], depthwise per axis, pointwise B [cout, R]
  const A = w32(chain[0]!);
  const R = A.dims[0]!;
  const B = w32(chain[chain.length - 1]!).data;
  const axes = chain.slice(1, -1).map((n) => w32(n).data); // [R, k_a]
  for (let o = 0; o < cout; o++) for (let i = 0; i < cin; i++) for (let p = 0; p < K; p++) {
    // multi-index of p over the kernel
    const idx: number[] = [];
    let rest = p;
    for (let a = kernel.length - 1; a >= 0; a--) {
      idx[a] = rest % kernel[a]!;
      rest = Math.floor(rest / kernel[a]!);
    }
    let s = 0;
    for (let r = 0; r < R; r++) {
      let v = B[o * R + r]! * A.data[r * cin + i]!;
      axes.forEach((d, a) => (v *= d[r * kernel[a]! + idx[a]!]!));
      s += v;
    }
    out[(o * cin + i) * K + p] = s;
  }
  return out;
}

/**
 * Outputs of the factorized model vs the original model with every factorized layer's weight
 * replaced by the weight its chain reconstructs: the same function up to float rounding.
 */
async function assertMatchesReconstruction(method: Method, originalBytes: Uint8Array, model: Model, changes: ChangeLog, feeds: Feeds, minSqnr = 60): Promise<void> {
  const reference = decodeModel(originalBytes);
  assert.ok(changes.rewritten.length > 0, 'something was factorized');
  for (const r of changes.rewritten) {
    const node = reference.graph.nodes.find((n) => n.name === r.node)!;
    const chain = chainOf(model, r.node);
    assert.ok(chain.length >= 2, `${r.node}: chain of ${chain.length}`);
    const w = node.inputs[1]!;
    setConstant(w, makeTensor(w.name, DT.FLOAT, tensorDims(getConstant(w)!), reconstructWeight(method, chain, node)));
  }
  const want = await runOnce(encodeModel(reference), feeds);
  const got = await runOnce(encodeModel(model), feeds);
  for (const k of Object.keys(want)) {
    const f = fidelity(tensorToFloat32(want[k]!), tensorToFloat32(got[k]!));
    assert.ok(f.sqnrDb > minSqnr, `${k}: SQNR vs reconstructed reference ${f.sqnrDb.toFixed(1)} dB`);
  }
}

function fmnistBatches(path: string, count: number, batchSize = 64): Feeds[] {
  const m = decodeModel(readFileSync(MODELS.fmnist));
  return [...batchesFromArrays(m, readArraysFile(path, m), { batchSize, maxSamples: count })];
}

/** A one-conv model with random weights: x [2, cin, …spatial] → Conv → y. */
function convModel(spatial: number[], kernel: number[], attrs: { strides?: number[]; pads?: number[]; dilations?: number[] }, cin: number, cout: number, seed: number): Uint8Array {
  const model = importModel(create(ModelProtoSchema, {
    irVersion: 8n,
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 13n })],
    graph: create(GraphProtoSchema, { name: 'conv' }),
  }));
  const g = model.graph;
  const rand = seededRandom(seed);
  const x = g.createValue('x');
  x.setTensorType(DT.FLOAT, [2, cin, ...spatial]);
  const y = g.createValue('y');
  y.setTensorType(DT.FLOAT);
  g.inputs = [x];
  g.outputs = [y];
  const wn = cout * cin * kernel.reduce((a, b) => a * b, 1);
  const w = g.addInitializer('w', makeTensor('', DT.FLOAT, [cout, cin, ...kernel], Float32Array.from({ length: wn }, () => rand() - 0.5)));
  const b = g.addInitializer('b', makeTensor('', DT.FLOAT, [cout], Float32Array.from({ length: cout }, () => rand() - 0.5)));
  const node = g.addNode('Conv', [x, w, b], [y], { name: 'conv' });
  node.setAttr('kernel_shape', kernel, 'ints');
  if (attrs.strides) node.setAttr('strides', attrs.strides, 'ints');
  if (attrs.pads) node.setAttr('pads', attrs.pads, 'ints');
  if (attrs.dilations) node.setAttr('dilations', attrs.dilations, 'ints');
  return encodeModel(model);
}

function randomFeeds(dims: number[], seed: number): Feeds {
  const rand = seededRandom(seed);
  const n = dims.reduce((a, b) => a * b, 1);
  return { x: new ort.Tensor('float32', Float32Array.from({ length: n }, () => rand() * 2 - 1), dims) };
}

describe('factorize.tucker', () => {
  it('fmnist CNN, explicit ranks [16, 8]: 1×1 → core (original stride/pads) → 1×1 with bias; equals the reconstructed weights', async () => {
    const bytes = readFileSync(MODELS.fmnist);
    const feeds = fmnistBatches(FMNIST.inputs, 16, 16);
    const { model, changes } = await runPass('tucker', decodeModel(bytes), feeds, { rank: [16, 8], roundTo: 1 });
    const original = decodeModel(bytes);
    const convs3 = original.graph.nodes.filter((n) => n.opType === 'Conv' && n.getInts('kernel_shape', [])[0] === 3);
    // the stem (Cin = 1, 288 weights) would only grow: it stays, with the reason
    assert.equal(changes.rewritten.length, convs3.length - 1);
    assert.match(changes.skipped.find((s) => s.node === '/stem/conv/Conv')!.reason, /does not save parameters/);
    for (const orig of convs3.filter((n) => n.name !== '/stem/conv/Conv')) {
      const chain = chainOf(model, orig.name);
      const [cout, cin] = tensorDims(getConstant(orig.inputs[1])!) as [number, number];
      const dims = chain.map((n) => tensorDims(getConstant(n.inputs[1])!));
      assert.deepEqual(dims, [[8, cin, 1, 1], [16, 8, 3, 3], [cout, 16, 1, 1]], orig.name);
      assert.equal(chain[0]!.inputs.length, 2, 'no bias on the first 1×1');
      const core = chain.find((n) => n.getInts('kernel_shape', [])[0] === 3)!;
      assert.deepEqual(core.getInts('strides', []), orig.getInts('strides', []));
      assert.deepEqual(core.getInts('pads', []), orig.getInts('pads', []));
      assert.equal(chain[chain.length - 1]!.inputs.length, orig.inputs.length, 'the bias (if any) on the last node');
    }
    await assertMatchesReconstruction('tucker', bytes, model, changes, feeds[0]!);
  });

  it('rank modes: fraction keeps ≈ that share of weights; energy and vbmf ranks follow the unfolding spectra', async () => {
    const bytes = readFileSync(MODELS.fmnist);
    const feeds = fmnistBatches(FMNIST.inputs, 8, 8);
    const { changes: fraction } = await runPass('tucker', decodeModel(bytes), feeds, { rank: 0.3, roundTo: 1, include: 'block' });
    const ratio = Number(fraction.stats.factorizedWeightsRatio);
    assert.ok(ratio > 0.25 && ratio < 0.35, `fraction 0.3 kept ${ratio}`);
    const name = '/block2/conv1/Conv';
    const orig = decodeModel(bytes).graph.nodes.find((n) => n.name === name)!;
    const t = tensor(tensorDims(getConstant(orig.inputs[1])!), readFloat32(getConstant(orig.inputs[1])!));
    const s0 = leadingModeVectors(t, 0, 0).singularValues;
    const s1 = leadingModeVectors(t, 1, 0).singularValues;
    for (const [spec, expect] of [
      [{ energy: 0.8 }, [energyRank(s0, 0.8), energyRank(s1, 0.8)]],
      ['vbmf', [evbmfRank(s0, 64, 576).rank, evbmfRank(s1, 64, 576).rank]],
    ] as const) {
      const { model } = await runPass('tucker', decodeModel(bytes), feeds, { rank: spec, include: `^${name}$` });
      const chain = chainOf(model, name);
      const want = expect.map((r) => roundRank(r, 8, 64, 'up'));
      assert.deepEqual(tensorDims(getConstant(chain[1]!.inputs[1])!).slice(0, 2), want, `${JSON.stringify(spec)} ranks`);
    }
  });

  it('HOOI on the fmnist CNN\'s conv weights: the stopping rule ends within 0.05% of the converged error', () => {
    const model = decodeModel(readFileSync(MODELS.fmnist));
    const convs = model.graph.nodes.filter((n) => n.opType === 'Conv' && n.getInts('kernel_shape', [])[0] === 3 && n.name !== '/stem/conv/Conv');
    assert.ok(convs.length >= 8);
    for (const node of convs) {
      const w = getConstant(node.inputs[1])!;
      const t = tensor(tensorDims(w), readFloat32(w));
      const [cout, cin] = t.dims as [number, number];
      const [rOut, rIn] = tuckerFractionRanks(cout, cin, 9, 0.5).map((r, i) => roundRank(r, 8, t.dims[i]!));
      const ranks = new Map([[0, rOut!], [1, rIn!]]);
      const fast = hooi(t, ranks, { maxIterations: 10 });
      const converged = hooi(t, ranks, { maxIterations: 40, tolerance: 0 });
      assert.ok(fast.iterations < converged.iterations, `${node.name}: ${fast.iterations} vs ${converged.iterations} sweeps`);
      assert.ok(fast.relativeError < converged.relativeError * 1.0005, `${node.name}: error ${fast.relativeError} vs ${converged.relativeError}`);
    }
  });

  it('rank option: the recipe values of RANK_SELECTORS, each picking its selector', () => {
    const picks: [unknown, string][] = [[0.5, 'fraction'], [8, 'explicit'], [[16, 8], 'explicit'], [{ energy: 0.9 }, 'energy'], ['vbmf', 'vbmf']];
    for (const [spec, name] of picks) {
      assert.ok(TBValue.Check(RankSchema, spec), JSON.stringify(spec));
      assert.equal(rankSelector(spec as RankSpec), RANK_SELECTORS[name as keyof typeof RANK_SELECTORS]);
    }
    for (const bad of [0, 1.5, -2, [], [1, 2, 3], [0.5], { energy: 0 }, { energy: 0.5, x: 1 }, 'energy', 'fraction', null]) assert.ok(!TBValue.Check(RankSchema, bad), JSON.stringify(bad));
  });

  it('Conv1D and Conv3D (strides, pads, dilations) in onnxruntime equal the reconstructed weights', async () => {
    const cases = [
      { spatial: [17], kernel: [5], attrs: { strides: [2], pads: [2, 1], dilations: [1] } },
      { spatial: [6, 9, 8], kernel: [3, 3, 3], attrs: { strides: [1, 2, 1], pads: [1, 1, 0, 1, 1, 0], dilations: [1, 1, 2] } },
    ];
    for (const [i, c] of cases.entries()) {
      for (const method of ['tucker', 'cp'] as const) {
        const bytes = convModel(c.spatial, c.kernel, c.attrs, 24, 32, 40 + i);
        const feeds = randomFeeds([2, 24, ...c.spatial], 50 + i);
        const { model, changes } = await runPass(method, decodeModel(bytes), [feeds], { rank: method === 'tucker' ? [8, 8] : 8 });
        const chain = chainOf(model, 'conv');
        assert.equal(chain.length, method === 'tucker' ? 3 : 2 + c.spatial.length, `${method} ${c.spatial.length}-D chain`);
        await assertMatchesReconstruction(method, bytes, model, changes, feeds);
      }
    }
  });
});

describe('factorize.cp', () => {
  it('fmnist CNN rank 16: pointwise → k×1 → 1×k (group R, stride and pads per axis) → pointwise; equals the reconstructed weights', async () => {
    const bytes = readFileSync(MODELS.fmnist);
    const feeds = fmnistBatches(FMNIST.inputs, 16, 16);
    const { model, changes } = await runPass('cp', decodeModel(bytes), feeds, { rank: 16, include: 'down|block1', iterations: 30 });
    assert.ok(changes.rewritten.length >= 4);
    const orig = decodeModel(bytes).graph.nodes.find((n) => n.name === '/down2/conv1/Conv')!;
    const chain = chainOf(model, orig.name);
    assert.deepEqual(chain.map((n) => tensorDims(getConstant(n.inputs[1])!)), [[16, 32, 1, 1], [16, 1, 3, 1], [16, 1, 1, 3], [64, 16, 1, 1]]);
    assert.deepEqual(chain.slice(1, 3).map((n) => n.getInt('group', 1)), [16, 16]);
    assert.deepEqual(chain.slice(1, 3).map((n) => n.getInts('strides', [])), [[2, 1], [1, 2]]);
    assert.deepEqual(chain.slice(1, 3).map((n) => n.getInts('pads', [])), [[1, 0, 1, 0], [0, 1, 0, 1]]);
    await assertMatchesReconstruction('cp', bytes, model, changes, feeds[0]!);
  });
});

describe('factorize.svd', () => {
  it('PP-OCRv4 rec MatMuls at rank fraction 0.25 (Constant-node weights): ≤ 0.3× weights, two MatMuls, equals the reconstructed weights', async () => {
    const bytes = readFileSync(MODELS.ppocrRec);
    const input = decodeModel(bytes);
    const feeds = feedsFor('ppocrRec', input);
    const { model, changes } = await runPass('svd', input, [feeds], { rank: 0.25, opTypes: ['MatMul'], minParams: 4096 });
    assert.ok(Number(changes.stats.factorizedWeightsRatio) <= 0.3, `ratio ${changes.stats.factorizedWeightsRatio}`);
    for (const r of changes.rewritten) {
      const chain = chainOf(model, r.node);
      assert.deepEqual(chain.map((n) => n.opType), ['MatMul', 'MatMul']);
      assert.equal(chain[0]!.inputs[1]!.producer?.opType, 'Constant', 'weights stay in Constant nodes like the rest of the model');
    }
    await assertMatchesReconstruction('svd', bytes, model, changes, feeds, 50);
  });

  it('Gemm with transB (fmnist head) and 1×1 Conv with stride (shortcuts)', async () => {
    const bytes = readFileSync(MODELS.fmnist);
    const feeds = fmnistBatches(FMNIST.inputs, 16, 16);
    const { model, changes } = await runPass('svd', decodeModel(bytes), feeds, { rank: 4, roundTo: 1, opTypes: ['Gemm', 'Conv'] });
    const names = changes.rewritten.map((r) => r.node).sort();
    assert.deepEqual(names, ['/down2/shortcut/conv/Conv', '/down3/shortcut/conv/Conv', '/head/fc/Gemm']);
    const gemm = chainOf(model, '/head/fc/Gemm');
    assert.deepEqual(gemm.map((n) => n.opType), ['Gemm', 'Gemm']);
    assert.equal(gemm[1]!.inputs.length, 3, 'C kept on the second Gemm');
    const sc = chainOf(model, '/down2/shortcut/conv/Conv');
    assert.deepEqual(sc[0]!.getInts('strides', []), [2, 2]);
    assert.ok(changes.skipped.some((s) => /not 1×1/.test(s.reason)), '3×3 convs are left to tucker/cp');
    await assertMatchesReconstruction('svd', bytes, model, changes, feeds[0]!);
  });

  it('a rank that does not save parameters leaves the layer alone and says so', async () => {
    const { changes } = await runPass('svd', decodeModel(readFileSync(MODELS.fmnist)), fmnistBatches(FMNIST.inputs, 8, 8), { rank: 60, roundTo: 1, opTypes: ['Gemm'] });
    assert.equal(changes.rewritten.length, 0);
    assert.ok(changes.skipped.some((s) => s.node === '/head/fc/Gemm' && /does not save parameters/.test(s.reason)));
  });
});

describe('factorize: speed check and refinement', () => {
  it('requireSpeedup keeps the original when the factorized layer is not fast enough, and lists it', async () => {
    const bytes = readFileSync(MODELS.fmnist);
    const feeds = fmnistBatches(FMNIST.inputs, 8, 8);
    const { changes: a } = await runPass('tucker', decodeModel(bytes), feeds, { rank: [16, 16], include: '^/block1/conv1/Conv$', requireSpeedup: true, speedRounds: 2, maxLatencyRatio: 1e-3 });
    assert.equal(a.rewritten.length, 0);
    assert.match(a.skipped.find((s) => s.node === '/block1/conv1/Conv')!.reason, /not faster: \d+\.\d+× .*\[8,32,28,28\]/);
    const { changes: b } = await runPass('tucker', decodeModel(bytes), feeds, { rank: [16, 16], include: '^/block1/conv1/Conv$', requireSpeedup: true, speedRounds: 2, maxLatencyRatio: 1e3 });
    assert.equal(b.rewritten.length, 1);
    assert.match(b.rewritten[0]!.detail!, /latency \d+\.\d+×/);
  });

  it('least-squares refinement on training-set calibration data raises fidelity and recovers accuracy (fmnist, vbmf ranks)', async () => {
    const bytes = readFileSync(MODELS.fmnist);
    const calib = fmnistBatches(`${ROOT}/test/fixtures/fmnist/calib-512.npz`, 256);
    const { model, changes } = await runPass('tucker', decodeModel(bytes), calib, { rank: 'vbmf', refine: true, refineSamples: 256, minParams: 4096 });
    const before = Number(changes.stats.refineSqnrBeforeDb);
    const after = Number(changes.stats.refineSqnrAfterDb);
    assert.ok(after > before + 3, `SQNR ${before} → ${after} dB`);
    const m = decodeModel(bytes);
    const arrays = readArraysFile(FMNIST.inputs, m);
    const labels = readLabelsFile(FMNIST.labels);
    const ev = await evaluateModels(bytes, encodeModel(model), [...batchesFromArrays(m, arrays, { batchSize: 100, maxSamples: 1000 })], { labels });
    const drop = ev.task!.reference.top1! - ev.task!.candidate.top1!;
    assert.ok(drop < 0.03, `top-1 drop ${(100 * drop).toFixed(1)} pt on 1000 test images`);
    assert.equal(changes.stats.layersRefitJointly, changes.stats.layersRefitted, 'every fmnist chain has a 3×3 core with an output projection');
  });

  it('Tucker: refitting the core together with the last factor beats refitting the last factor alone, on images the refit never saw', async () => {
    const bytes = readFileSync(MODELS.fmnist);
    const original = decodeModel(bytes);
    const calib = fmnistBatches(`${ROOT}/test/fixtures/fmnist/calib-512.npz`, 256);
    const { model: unrefined } = await runPass('tucker', original, calib, { rank: 0.2, refine: false, minParams: 4096 });
    const refit = async (joint: boolean) => {
      const { model } = unrefined.clone();
      const targets: RefitTarget[] = [];
      for (const n of original.graph.nodes.filter((x) => x.opType === 'Conv')) {
        const chain = chainOf(model, n.name);
        if (chain.length !== 3) continue;
        targets.push({ node: chain[2]!, axis: 1, output: chain[2]!.outputs[0]!, reference: n.outputs[0]!, ...(joint ? { core: chain[1]! } : {}) });
      }
      const r = await refineChains(model, original, targets, calib);
      return { model, r, chains: targets.length };
    };
    const lastOnly = await refit(false);
    const joint = await refit(true);
    assert.ok(joint.chains >= 5);
    assert.deepEqual([lastOnly.r.jointly, joint.r.jointly], [0, joint.chains]);
    const test = [...batchesFromArrays(original, readArraysFile(FMNIST.inputs, original), { batchSize: 100, maxSamples: 1000 })];
    const sqnr = async (m: Model) => (await evaluateModels(bytes, encodeModel(m), test)).fidelity.logits!.sqnrDb;
    const [a, b] = [await sqnr(lastOnly.model), await sqnr(joint.model)];
    assert.ok(b > a + 0.5, `logits SQNR on 1000 test images: last factor alone ${a.toFixed(2)} dB, core and last factor ${b.toFixed(2)} dB`);
  });
});
