import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { join } from 'node:path';
import { Value as TBValue } from '@sinclair/typebox/value';
import { decodeModel, encodeModel } from '../src/onnx/model-io.js';
import { verifyModel } from '../src/onnx/verify.js';
import { getConstant } from '../src/onnx/constants.js';
import { tensorDims } from '../src/onnx/tensor-data.js';
import type { Model, Value } from '../src/onnx/ir.js';
import { pruneStructuredPass } from '../src/passes/prune-structured.js';
import { analyzeChannels, discoverChannelShapes } from '../src/prune/dependency-graph.js';
import type { ChannelGroup } from '../src/prune/layout.js';
import { IMPORTANCES } from '../src/prune/importance.js';
import { planPruning } from '../src/prune/plan.js';
import { applyPlan, keptIndices, maskPlan } from '../src/prune/apply.js';
import { captureValues } from '../src/runtime/capture.js';
import { ort, runOnce, seededRandom, tensorToFloat32, type Feeds } from '../src/runtime/ort.js';
import { batchesFromArrays, readArraysFile, readLabelsFile } from '../src/data/samples.js';
import { InvalidInputError } from '../src/errors.js';
import type { StatsOf } from '../src/pipeline/pass.js';
import { FMNIST, MODELS, ROOT, feedsFor, passContext, readModel, testGraph, wireParameterCount } from './helpers.js';

/** A captured tensor as floats, with only the given channels (axis 1) when `keep` is set. */
function gatherChannels(t: ort.Tensor, keep: number[] | null): { dims: number[]; data: Float32Array } {
  const dims = t.dims.map(Number);
  const x = tensorToFloat32(t);
  if (!keep) return { dims, data: x };
  const inner = dims.slice(2).reduce((a, b) => a * b, 1);
  const out = new Float32Array(dims[0]! * keep.length * inner);
  for (let n = 0; n < dims[0]!; n++) keep.forEach((c, k) => out.set(x.subarray((n * dims[1]! + c) * inner, (n * dims[1]! + c + 1) * inner), (n * keep.length + k) * inner));
  return { dims: [dims[0]!, keep.length, ...dims.slice(2)], data: out };
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  assert.equal(a.length, b.length);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(a[i]!));
  }
  return num / (den || 1);
}

/** Plans a pruning of `model` by L2 importance and returns the plan with the graph it refers to. */
async function plan(model: Model, ratio: number, feeds?: Feeds) {
  const dg = analyzeChannels(model, await discoverChannelShapes(model, feeds));
  const groups = dg.groups().filter((g) => g.blocked.length === 0 && dg.editsOf(g).some((e) => e.role === 'out') && g.channels >= 8);
  const scores = await IMPORTANCES.l2.score(dg, groups, async () => []);
  const kept = new Map<ChannelGroup, number[]>();
  for (const p of planPruning(groups, scores, { ratio, scope: 'global', roundTo: 8, maxGroupRatio: 0.75, caps: new Map() })) if (p.keep.length < p.group.channels) kept.set(p.group, p.keep);
  return { dg, groups, kept };
}

/**
 * The exactness property of structured pruning without recovery: the pruned model computes what
 * the original computes when every weight that reads a removed channel is zeroed. Any consumer the
 * dependency graph missed (or any mis-sliced constant) breaks this equality or the model itself.
 */
async function checkPrunedEqualsMasked(source: string | Uint8Array, feeds: Feeds, ratio: number) {
  const bytes = typeof source === 'string' ? readModel(source) : source;
  const pruned = decodeModel(bytes.slice());
  const masked = decodeModel(bytes.slice());
  const p = await plan(pruned, ratio, feeds);
  assert.ok(p.kept.size > 0, 'something is pruned');
  applyPlan(p.dg, p.kept);
  verifyModel(pruned);
  const m = await plan(masked, ratio, feeds);
  maskPlan(m.dg, m.kept);
  const prunedBytes = encodeModel(pruned);
  assert.ok(prunedBytes.length < bytes.length * 0.95, `pruned file is smaller (${prunedBytes.length} vs ${bytes.length})`);
  // the outputs, and the inputs of the ops producing them (a saturated Sigmoid would hide differences)
  const compared = (m: Model) => {
    const vals = [...m.graph.outputs];
    for (const o of m.graph.outputs) for (const v of o.producer?.inputs ?? []) if (v?.producer && !vals.includes(v)) vals.push(v);
    return vals;
  };
  const capture = async (m: Model, keptOf?: (v: Value) => number[] | null) => {
    const vals = compared(m);
    const got = await captureValues(m, [feeds], vals);
    return new Map(vals.map((v) => [v.name, gatherChannels(got.get(v)![0]!, keptOf?.(v) ?? null)]));
  };
  // the masked model still has the removed channels: compare its kept ones
  const a = await capture(masked, (v) => { const l = m.dg.layouts.get(v); return l ? keptIndices(l, m.kept) : null; });
  const b = await capture(pruned);
  const orig = await capture(decodeModel(bytes));
  for (const [name, t] of a) {
    assert.deepEqual(b.get(name)!.dims, t.dims, `${name}: shape`);
    const d = maxRelDiff(t.data, b.get(name)!.data);
    assert.ok(d < 1e-4, `${name}: pruned vs masked original differ by ${d}`);
  }
  // and pruning did change the function (the test can fail the other way too)
  for (const o of pruned.graph.outputs) assert.ok(maxRelDiff(orig.get(o.name)!.data, b.get(o.name)!.data) > 1e-3, `${o.name}: pruning changed nothing`);
  return p;
}

function fmnistBatches(path: string, samples: number, batchSize = 64) {
  const model = decodeModel(readModel(MODELS.fmnist));
  return [...batchesFromArrays(model, readArraysFile(path, model), { batchSize, maxSamples: samples })];
}

async function runPass(path: string, config: Record<string, unknown>, samples: Feeds[], opts: { synthetic?: boolean; labels?: number[]; evaluation?: Feeds[] } = {}) {
  const model = decodeModel(readModel(path));
  const ctx = passContext<StatsOf<typeof pruneStructuredPass>>(samples, { synthetic: opts.synthetic ?? false, ...(opts.labels ? { labels: opts.labels } : {}) });
  if (opts.evaluation) ctx.evaluationInputs = async () => opts.evaluation!;
  const full = TBValue.Default(pruneStructuredPass.schema, { pass: 'prune.structured', ...config }) as never;
  assert.ok(TBValue.Check(pruneStructuredPass.schema, full), 'config is valid');
  const out = await pruneStructuredPass.run(model, full, ctx);
  verifyModel(out);
  return { model: out, bytes: encodeModel(out), log: ctx.changes };
}

/**
 * A small graph that exercises the rules no fixture has: Split of a Concat, a residual Add across
 * the split halves (coupling two convs), a Concat where one group appears three times, Pad and
 * Slice on spatial axes, ConvTranspose, and Flatten of a spatial map into a Gemm (channel blocks).
 */
function ruleZoo(): Uint8Array {
  const { model, g, weight, ints, x, node } = testGraph('zoo', 5, { name: 'x', dims: [2, 3, 8, 8] });
  const [a0] = node('Conv', [x, weight('wa', [16, 3, 3, 3]), weight('ba', [16])], { pads: [1, 1, 1, 1] });
  const [a] = node('Relu', [a0!]);
  const [b] = node('Conv', [a!, weight('wb', [16, 16, 3, 3])], { pads: [1, 1, 1, 1] });
  const [cat] = node('Concat', [a!, b!], { axis: 1 });
  const [p0, p1] = node('Split', [cat!, ints('split', [16, 16])], { axis: 1 }, 2);
  const [sum] = node('Add', [p0!, p1!]);
  const [t] = node('Concat', [sum!, cat!], { axis: 1 });
  const [c] = node('Conv', [t!, weight('wc', [24, 48, 1, 1]), weight('bc', [24])]);
  const [padded] = node('Pad', [c!, ints('pads', [0, 0, 1, 1, 0, 0, 1, 1])]);
  const [sliced] = node('Slice', [padded!, ints('starts', [1, 1]), ints('ends', [9, 9]), ints('axes', [2, 3])]);
  const [up] = node('ConvTranspose', [sliced!, weight('wt', [24, 16, 2, 2]), weight('bt', [16])], { strides: [2, 2] });
  const [pooled] = node('AveragePool', [up!], { kernel_shape: [2, 2], strides: [2, 2] });
  const [flat] = node('Flatten', [pooled!], { axis: 1 });
  const [y] = node('Gemm', [flat!, weight('wg', [10, 16 * 8 * 8]), weight('bg', [10])], { transB: 1 });
  g.outputs = [y!];
  return encodeModel(model);
}

describe('prune.structured: dependency graph', () => {
  it('rule zoo: Split/Add coupling, repeated Concat segments, Pad, Slice, ConvTranspose, Flatten → Gemm; pruned equals masked', async () => {
    const bytes = ruleZoo();
    const rand = seededRandom(9);
    const feeds = { x: new ort.Tensor('float32', Float32Array.from({ length: 2 * 3 * 64 }, () => rand() * 2 - 1), [2, 3, 8, 8]) };
    const zoo = decodeModel(bytes);
    assert.match(analyzeChannels(zoo).groups()[2]!.blocked.join(), /Flatten .* unknown spatial size/, 'without shapes the Flatten is not provable');
    const dg = analyzeChannels(zoo, await discoverChannelShapes(zoo, feeds));
    const groups = dg.groups().map((grp) => [grp.producers.map((n) => n.opType).sort().join('+'), grp.channels, grp.blocked.join('; ')]);
    assert.deepEqual(groups, [['Conv+Conv', 16, ''], ['Conv', 24, ''], ['ConvTranspose', 16, ''], ['Gemm', 10, "reaches graph output 'gemm_out0'"]]);
    const p = await checkPrunedEqualsMasked(bytes, feeds, 0.5);
    assert.equal(p.kept.size, 3, 'all three free groups pruned');
  });


  it('finds the residual couplings of the fmnist CNN and blocks the classifier output', () => {
    const dg = analyzeChannels(decodeModel(readModel(MODELS.fmnist)));
    const groups = dg.groups();
    const names = (g: ChannelGroup) => g.producers.map((n) => n.name).sort();
    const stem = groups.find((g) => names(g).includes('/stem/conv/Conv'))!;
    // the stem's channels run through block1's residual Add: one group with block1's second conv
    assert.deepEqual(names(stem), ['/block1/conv2/Conv', '/stem/conv/Conv']);
    const stage2 = groups.find((g) => names(g).includes('/down2/shortcut/conv/Conv'))!;
    assert.deepEqual(names(stage2), ['/block2/conv2/Conv', '/down2/conv2/Conv', '/down2/shortcut/conv/Conv']);
    const head = groups.find((g) => names(g).includes('/head/fc/Gemm'))!;
    assert.match(head.blocked.join(), /reaches graph output 'logits'/);
    assert.equal(groups.filter((g) => g.blocked.length === 0).length, 8);
    // every BatchNormalization parameter follows its conv's group
    assert.equal(dg.edits.filter((e) => e.node.opType === 'BatchNormalization').length, 13 * 4);
  });
});

describe('prune.structured: unpruned channels compute what they computed before', () => {
  it('fmnist: kept stem channels are bit-identical, and the pruned model equals the masked original', async () => {
    const feeds = fmnistBatches(FMNIST.inputs, 16, 16)[0]!;
    const p = await checkPrunedEqualsMasked(MODELS.fmnist, feeds, 0.3);
    // the first layer reads the untouched input: its kept output channels are exactly the original ones
    const original = decodeModel(readModel(MODELS.fmnist));
    const pruned = decodeModel(readModel(MODELS.fmnist));
    const q = await plan(pruned, 0.3);
    applyPlan(q.dg, q.kept);
    const stemOut = (m: Model) => m.graph.nodes.find((n) => n.name === '/stem/conv/Conv')!.outputs[0]!;
    const a = (await captureValues(original, [feeds], [stemOut(original)])).get(stemOut(original))![0]!;
    const b = (await captureValues(pruned, [feeds], [stemOut(pruned)])).get(stemOut(pruned))![0]!;
    const keep = [...q.kept].find(([g]) => g.producers.some((n) => n.name === '/stem/conv/Conv'))![1];
    const [n, c, h, w] = a.dims.map(Number) as [number, number, number, number];
    assert.equal(b.dims[1], keep.length);
    const fa = tensorToFloat32(a);
    const fb = tensorToFloat32(b);
    for (let i = 0; i < n; i++) for (let k = 0; k < keep.length; k++) for (let s = 0; s < h * w; s++) assert.equal(fb[(i * keep.length + k) * h * w + s], fa[(i * c + keep[k]!) * h * w + s]);
    assert.ok(p.kept.size >= 6);
  });

  it('PP-OCRv4 det (Conv, ConvTranspose, Resize, Concat, hardswish): pruned equals masked', async () => {
    const model = decodeModel(readModel(MODELS.ppocrDet));
    await checkPrunedEqualsMasked(MODELS.ppocrDet, feedsFor('ppocrDet', model), 0.3);
  });

  it('Conv3D video model (ReduceMean over time and space → Gemm): pruned equals masked, and recovery refits the 3-D convs', async () => {
    const path = join(ROOT, 'test/fixtures/video3d/video3d-cnn.onnx');
    const model = decodeModel(readModel(path));
    const data = readArraysFile(join(ROOT, 'test/fixtures/video3d/calib-128.npz'), model);
    const batches = [...batchesFromArrays(model, data, { batchSize: 32, maxSamples: 128 })];
    await checkPrunedEqualsMasked(path, batches[0]!, 0.3);
    const { log } = await runPass(path, { ratio: 0.3, recovery: { maxRows: 512, rowsPerFeature: 1 } }, batches.slice(0, 2));
    assert.equal(log.stats.refitLayers, 5, 'four Conv3D layers and the Gemm');
    const agree = (s: unknown) => Number(/([\d.]+)% agree/.exec(String(s))![1]);
    assert.ok(agree(log.stats.afterRecovery) > agree(log.stats.beforeRecovery) + 20, `${log.stats.beforeRecovery} → ${log.stats.afterRecovery}`);
  });

  it('PP-OCR orientation classifier (depthwise Conv, SE blocks): pruned equals masked', async () => {
    const model = decodeModel(readModel(MODELS.ppocrCls));
    await checkPrunedEqualsMasked(MODELS.ppocrCls, feedsFor('ppocrCls', model), 0.3);
  });
});

describe('prune.structured: the pass', () => {
  it('fmnist 30% global: half the parameters, and recovery on calibration data restores accuracy', async () => {
    const calibration = fmnistBatches(FMNIST.calibration, 256);
    const evaluation = fmnistBatches(FMNIST.inputs, 500, 100);
    const labels = Array.from(readLabelsFile(FMNIST.labels), Number).slice(0, 500);
    const { bytes, log } = await runPass(MODELS.fmnist, { ratio: 0.3, maxCalibrationBatches: 4, recovery: { maxRows: 2048 } }, calibration, { labels, evaluation });
    const ratio = wireParameterCount(bytes) / wireParameterCount(readModel(MODELS.fmnist));
    assert.ok(ratio <= 0.55, `parameters ${ratio.toFixed(3)}×`);
    const top1 = (s: unknown) => Number(/top-1 ([\d.]+)%/.exec(String(s))![1]);
    const original = top1(log.stats.original);
    const before = top1(log.stats.beforeRecovery);
    const after = top1(log.stats.afterRecovery);
    assert.ok(before < original - 20, `pruning without recovery hurts (${original}% → ${before}%)`);
    assert.ok(after >= original - 2, `recovery restores accuracy (${original}% → ${after}%)`);
    assert.equal(log.stats.prunableGroups, 8);
    assert.equal(log.rewritten.length, 8);
    assert.ok(log.skipped.some((s) => s.node === '/head/fc/Gemm' && /reaches graph output/.test(s.reason)));
    assert.ok(Number(log.stats.refitLayers) >= 10);
    // every kept width is a multiple of 8
    for (const r of log.rewritten) assert.equal(Number(/→ (\d+) channels/.exec(r.detail!)![1]) % 8, 0, r.detail);
  });

  it('iterative schedule, local scope, activation importance, caps and excludeNodes', async () => {
    const calibration = fmnistBatches(FMNIST.calibration, 128);
    const { bytes, log } = await runPass(
      MODELS.fmnist,
      { ratio: 0.4, scope: 'local', steps: 2, importance: 'activation', caps: { '/block1/conv1/Conv': 0.25 }, excludeNodes: ['/down3/conv1/Conv'], maxCalibrationBatches: 2, recovery: { maxRows: 512, rowsPerFeature: 1 }, measureRecovery: false },
      calibration,
    );
    const pruned = decodeModel(bytes);
    const out = (name: string) => tensorDims(getConstant(pruned.graph.nodes.find((n) => n.name === name)!.inputs[1])!)[0]!;
    assert.equal(out('/block1/conv1/Conv'), 24, 'cap 0.25 of 32 channels keeps 24');
    assert.equal(out('/down3/conv1/Conv'), 88, 'excluded');
    assert.ok(out('/block3/conv1/Conv') <= 56, `local 40% of 88 → ${out('/block3/conv1/Conv')}`);
    assert.ok(log.rewritten.some((r) => r.detail!.startsWith('step 1:')) && log.rewritten.some((r) => r.detail!.startsWith('step 2:')));
    assert.ok(log.skipped.some((s) => /in excludeNodes/.test(s.reason)));
    const evaluation = fmnistBatches(FMNIST.inputs, 64);
    const res = await runOnceBatch(bytes, evaluation[0]!);
    assert.deepEqual(res.dims, [64, 10]);
  });

  it('PP-OCRv4 det and the orientation classifier: pruned models run, and every group is reported', async () => {
    for (const key of ['ppocrDet', 'ppocrCls'] as const) {
      const original = decodeModel(readModel(MODELS[key]));
      const feeds = [feedsFor(key, original, 1), feedsFor(key, original, 2)];
      const { bytes, log } = await runPass(MODELS[key], { ratio: 0.3, allowSynthetic: true, maxCalibrationBatches: 2, recovery: { maxRows: 256, rowsPerFeature: 0 } }, feeds, { synthetic: true });
      assert.ok(log.warnings.some((w) => /synthetic/.test(w)));
      const groups = Number(log.stats.groups);
      // each group appears once: pruned (rewritten) or kept whole (skipped, with the reason)
      const reported = new Set([...log.rewritten.map((r) => /group #(\d+)/.exec(r.detail!)![1]), ...log.skipped.map((s) => /group #(\d+)/.exec(s.reason)?.[1]).filter(Boolean)]);
      assert.equal(reported.size, groups, `${key}: ${reported.size} of ${groups} groups reported`);
      assert.ok(log.rewritten.length >= (key === 'ppocrDet' ? 20 : 10), `${key}: ${log.rewritten.length} groups pruned`);
      assert.ok(bytes.length < readModel(MODELS[key]).length * 0.8);
      const a = await runOnceBatch(readModel(MODELS[key]), feeds[0]!);
      const b = await runOnceBatch(bytes, feeds[0]!);
      assert.deepEqual(b.dims, a.dims, `${key}: output shape`);
    }
  });

  it('refuses to recover on synthetic inputs unless allowed', async () => {
    const model = decodeModel(readModel(MODELS.fmnist));
    await assert.rejects(runPass(MODELS.fmnist, {}, [feedsFor('fmnist', model)], { synthetic: true }), (e: unknown) => e instanceof InvalidInputError && /calibration data/.test((e as Error).message));
  });
});

async function runOnceBatch(bytes: Uint8Array, feeds: Feeds): Promise<ort.Tensor> {
  const out = await runOnce(bytes, feeds);
  return Object.values(out)[0]!;
}
