// Quantization targets (issue 5), measured: `node dist/src/bench/quant.js` writes bench/quant.md.
// Latency ratios come from compareModels (side by side, median of per-round ratios). The PP-OCRv4 rec rows
// are in quant-rec.ts.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Value as TBValue } from '@sinclair/typebox/value';
import { decodeModel, encodeModel } from '../onnx/model-io.js';
import type { Model } from '../onnx/ir.js';
import { verifyModel } from '../onnx/verify.js';
import { channelMeans } from '../quant/bias-correction.js';
import { quantizeStaticPass } from '../passes/quantize-static.js';
import { quantizeDynamicPass } from '../passes/quantize-dynamic.js';
import { quantizeWeightsPass } from '../passes/quantize-weights.js';
import { allConstants, countParameters, getConstant } from '../onnx/constants.js';
import { tensorByteSize } from '../onnx/tensor-data.js';
import { weightLayerOf } from '../onnx/weight-layers.js';
import { fixedPassContext, type StatsOf } from '../pipeline/pass.js';
import { batchesFromArrays, readArraysFile, readLabelsFile } from '../data/samples.js';
import { evaluateModels } from '../eval/evaluate.js';
import { compareModels } from '../measure/benchmark.js';
import { profileModel } from '../measure/profile.js';
import { environment } from '../report/environment.js';
import { ort, type Feeds } from '../runtime/ort.js';
import { ROOT, type Row } from './quant-common.js';
import { recQuantized } from './quant-rec.js';

async function fmnistStatic(overrides: Record<string, unknown>, label: string, rows: Row[], notes: string[]): Promise<void> {
  const path = join(ROOT, 'test/fixtures/fmnist/fmnist-cnn.onnx');
  const bytes = readFileSync(path);
  const model = decodeModel(bytes);
  const batches = [...batchesFromArrays(model, readArraysFile(join(ROOT, 'test/fixtures/fmnist/test-2000.npz'), model), { batchSize: 50 })];
  const labels = readLabelsFile(join(ROOT, 'test/fixtures/fmnist/test-2000-labels.npy'));
  // calibration on 512 training images, never on the images accuracy is reported on
  const calibration = [...batchesFromArrays(model, readArraysFile(join(ROOT, 'test/fixtures/fmnist/calib-512.npz'), model), { batchSize: 64 })];
  // the sensitivity loop searches on the first 1000 test images (labels exist only for the test
  // set) and accuracy is then reported on the other 1000, which the search never saw
  const searched = overrides.sensitivity ? 20 : 0;
  const ctx = fixedPassContext<StatsOf<typeof quantizeStaticPass>>({ samples: calibration, evaluation: batches.slice(0, searched || batches.length), labels: searched ? Array.from(labels).slice(0, searched * 50) : labels, calibration: true });
  const q = await quantizeStaticPass.run(model, TBValue.Default(quantizeStaticPass.schema, { pass: 'quantize.static', ...overrides }) as never, ctx);
  verifyModel(q);
  const out = encodeModel(q);
  const reported = batches.slice(searched);
  const ev = await evaluateModels(bytes, out, reported, { labels: searched ? Array.from(labels).slice(searched * 50) : labels, metrics: ['top1'] });
  const drop = 100 * (ev.task!.reference.top1! - ev.task!.candidate.top1!);
  const cmp = await compareModels(bytes, out, { batchSizes: [1, 8], rounds: 8, warmup: 10, runs: 32 });
  const b8 = cmp.ratios.find((r) => r.batch === 8)!;
  const b1 = cmp.ratios.find((r) => r.batch === 1)!;
  const size = out.length / bytes.length;
  rows.push({ target: `fmnist CNN ${label}: size ≤ 0.3×`, measured: `${size.toFixed(3)}×`, pass: size <= 0.3 });
  rows.push({ target: `fmnist CNN ${label}: batch-8 latency ≤ 0.6×`, measured: `${b8.ratio.toFixed(3)}× (spread ${b8.low.toFixed(2)}–${b8.high.toFixed(2)}; b1 ${b1.ratio.toFixed(2)}×)`, pass: b8.ratio <= 0.6 });
  rows.push({
    target: `fmnist CNN ${label}: accuracy drop ≤ 0.5 pt (${searched ? `the ${reported.length * 50} test images the search did not see` : `${reported.length * 50} images`})`,
    measured: `${drop.toFixed(2)} pt (${(100 * ev.task!.reference.top1!).toFixed(2)}% → ${(100 * ev.task!.candidate.top1!).toFixed(2)}%; logits SQNR ${Object.values(ev.fidelity)[0]!.sqnrDb.toFixed(1)} dB)`,
    pass: drop <= 0.5,
  });
  const prof = await profileModel(q, { input: batches[0]!.input! } as Feeds, { runs: 4, warmup: 2 });
  notes.push(`fmnist ${label}: kernels onnxruntime ran: ${prof.byOpType.map((e) => `${e.opType ?? e.name}×${e.count ?? '?'}`).join(', ')}; worst layers: ${ctx.changes.stats.sqnrWorstFirst}${ctx.changes.stats.biasCorrectedLayers ? `; bias correction: ${ctx.changes.stats.biasCorrectedLayers} layers in ${ctx.changes.stats.biasCorrectionSeconds} s, largest per-channel shifts (rms) ${ctx.changes.stats.biasCorrectionLargest}` : ''}`);
  if (ctx.changes.stats.sensitivityResult) {
    notes.push(`fmnist ${label}: sensitivity start: ${ctx.changes.stats.sensitivityStart}; result: ${ctx.changes.stats.sensitivityResult}; kept float: ${ctx.changes.stats.excludedBySensitivity}`);
  }
}

/** MatMul weight bytes in the float model, and what the MatMulNBits nodes of its int4 rewrite store (weights, scales, zero points). */
function matmulWeightBytes(base: Model, int4: Model): { fp32Total: number; packedBytes: number } {
  let fp32Total = 0;
  for (const n of base.graph.nodes) {
    const w = n.opType === 'MatMul' ? getConstant(weightLayerOf(n)?.weight) : undefined;
    if (w) fp32Total += tensorByteSize(w);
  }
  let packedBytes = 0;
  for (const n of int4.graph.nodes) {
    if (n.opType !== 'MatMulNBits') continue;
    for (const v of n.inputs.slice(1)) {
      const t = getConstant(v);
      if (t) packedBytes += tensorByteSize(t);
    }
  }
  return { fp32Total, packedBytes };
}

/** The tiny ViT fixture: dynamic int8 and int4 weight-only, accuracy on the 2000 labelled images. */
async function vitRows(rows: Row[], notes: string[]): Promise<void> {
  const bytes = readFileSync(join(ROOT, 'test/fixtures/fmnist-vit/fmnist-vit.onnx'));
  const base = decodeModel(bytes);
  const batches = [...batchesFromArrays(base, readArraysFile(join(ROOT, 'test/fixtures/fmnist/test-2000.npz'), base), { batchSize: 100 })];
  const labels = readLabelsFile(join(ROOT, 'test/fixtures/fmnist/test-2000-labels.npy'));
  const runPass = async (pass: typeof quantizeDynamicPass | typeof quantizeWeightsPass, config: Record<string, unknown>) => {
    const model = decodeModel(bytes);
    const ctx = fixedPassContext({ samples: batches.slice(0, 2), evaluation: batches, calibration: false });
    const q = await pass.run(model, TBValue.Default(pass.schema, config) as never, ctx);
    verifyModel(q);
    return { q, out: encodeModel(q) };
  };
  const dynamicRows = async (label: string, config: Record<string, unknown>) => {
    const dyn = await runPass(quantizeDynamicPass, { pass: 'quantize.dynamic', minElements: 0, ...config });
    const ev = await evaluateModels(bytes, dyn.out, batches, { labels, metrics: ['top1'] });
    const drop = 100 * (ev.task!.reference.top1! - ev.task!.candidate.top1!);
    const cmp = await compareModels(bytes, dyn.out, { batchSizes: [1, 8], rounds: 12, warmup: 10, runs: 96 });
    const b8 = cmp.ratios.find((r) => r.batch === 8)!;
    const b1 = cmp.ratios.find((r) => r.batch === 1)!;
    const size = dyn.out.length / bytes.length;
    rows.push({ target: `ViT (fmnist) dynamic int8${label}: size ≤ 0.3×`, measured: `${size.toFixed(3)}× (${dyn.out.length} / ${bytes.length} bytes)`, pass: size <= 0.3 });
    rows.push({
      target: `ViT (fmnist) dynamic int8${label}: latency ≤ 0.8× (b1 and b8)`,
      measured: `b1 ${b1.ratio.toFixed(3)}× (spread ${b1.low.toFixed(2)}–${b1.high.toFixed(2)}, fp32 p50 ${b1.a.p50Ms.toFixed(3)} ms); b8 ${b8.ratio.toFixed(3)}× (spread ${b8.low.toFixed(2)}–${b8.high.toFixed(2)})`,
      pass: b8.ratio <= 0.8 && b1.ratio <= 0.8,
    });
    rows.push({
      target: `ViT (fmnist) dynamic int8${label}: accuracy drop ≤ 1 pt (2000 images)`,
      measured: `${drop.toFixed(2)} pt (${(100 * ev.task!.reference.top1!).toFixed(2)}% → ${(100 * ev.task!.candidate.top1!).toFixed(2)}%)`,
      pass: drop <= 1,
    });
    return dyn;
  };
  const load0 = os.loadavg()[0];
  const dyn = await dynamicRows('', {});
  await dynamicRows(' + otherWeights int8', { otherWeights: 'int8' });
  await dynamicRows(' + otherWeights int8, per-tensor weights', { otherWeights: 'int8', perChannel: false });
  notes.push(
    `ViT latency: machine load average ${load0.toFixed(1)} → ${os.loadavg()[0].toFixed(1)} (1 min) on ${os.cpus().length} cores during the three side-by-side comparisons (12 alternating rounds each); other jobs shared the CPU, so the per-round ratios spread widely. An earlier run of the first configuration on a quieter machine gave b8 0.783×, b1 0.885×.`,
  );
  const structure = (() => {
    let t = 0;
    for (const c of allConstants(base)) t += tensorByteSize(c.tensor);
    return bytes.length - t;
  })();
  const params = countParameters(base);
  notes.push(
    `ViT size floor: the fp32 file is ${bytes.length} bytes, of which ${structure} (${((100 * structure) / bytes.length).toFixed(1)}%) are graph structure (164 nodes with their names, 53 of them Constant nodes of the shape computation) that quantization does not shrink; ${params} parameters at one byte each plus that structure is already ${((params + structure) / bytes.length).toFixed(3)}× before any scale or DequantizeLinear node, so ≤ 0.3× is not reachable by quantizing this 72k-parameter model. otherWeights int8 stores the positional embedding, class token, LayerNorm scales/shifts and biases as int8 behind DequantizeLinear.`,
  );
  {
    // where the time goes at batch 1: profile both (same input), shares of the kernels that quantization touches
    const one = { input: batches[0]!.input! } as Feeds;
    const x1 = { input: new ort.Tensor('float32', (one.input!.data as Float32Array).slice(0, 784), [1, 1, 28, 28]) } as Feeds;
    const pf = await profileModel(base, x1, { runs: 200, warmup: 50 });
    const pq = await profileModel(dyn.q, x1, { runs: 200, warmup: 50 });
    const share = (p: typeof pf, ops: string[]) => p.byOpType.filter((e) => ops.includes(String(e.name))).reduce((a, e) => a + e.share, 0);
    const top = (p: typeof pf) => p.byOpType.slice(0, 6).map((e) => `${e.name}×${e.count} ${(100 * e.share).toFixed(0)}%`).join(', ');
    notes.push(
      `ViT batch-1 profile (onnxruntime profiler, 200 runs each): fp32 ${pf.totalMs.toFixed(3)} ms/run of kernel time, int8 ${pq.totalMs.toFixed(3)} ms/run. With profiling on, per-kernel overhead dominates at batch 1 (compare the unprofiled fp32 p50 in the latency rows above, for about 60 kernels), so these shares are indicative only: in fp32 MatMul+Gemm+BiasGelu+Add, the most the int8 rewrite can replace (it folds the bias Adds into DynamicQuantizeMatMul; fc1's bias Add+GELU run as BiasGelu in fp32), are ${(100 * share(pf, ['MatMul', 'Gemm', 'BiasGelu', 'Add'])).toFixed(0)}% (top: ${top(pf)}); in int8 DynamicQuantizeMatMul is ${(100 * share(pq, ['DynamicQuantizeMatMul'])).toFixed(0)}% (top: ${top(pq)}). Most kernels at 17 tokens × 64 channels are shape and layout ops (Shape/Gather/Unsqueeze/Concat/Reshape/Transpose/Squeeze) and LayerNorm/Softmax that int8 does not touch. Q/K/V are one MatMul (qkv, 64×192) in this export, so there is no shared DynamicQuantizeLinear to fuse; onnxruntime runs one DynamicQuantizeMatMul kernel per MatMul/Gemm.`,
    );
  }
  const int4 = await runPass(quantizeWeightsPass, { pass: 'quantize.weights', bits: 4, blockSize: 32, minElements: 0 });
  const { fp32Total, packedBytes } = matmulWeightBytes(base, int4.q);
  const ev4 = await evaluateModels(bytes, int4.out, batches, { labels, metrics: ['top1'] });
  rows.push({
    target: 'ViT (fmnist) quantize.weights int4 block 32: MatMul weight bytes ≤ 0.16× fp32',
    measured: `${(packedBytes / fp32Total).toFixed(3)}× (${packedBytes} / ${fp32Total} bytes incl. scales/zero points; top-1 ${(100 * ev4.task!.reference.top1!).toFixed(2)}% → ${(100 * ev4.task!.candidate.top1!).toFixed(2)}%)`,
    pass: packedBytes / fp32Total <= 0.16,
  });
  notes.push(`ViT dynamic int8: ${dyn.q.graph.nodes.filter((n) => n.opType === 'DynamicQuantizeMatMul').length} DynamicQuantizeMatMul nodes (the patch embedding is a MatMul over 7×7 patches in this export, not a Conv, so it is one of them)`);
}

/**
 * The bigger ViT fixture (d 256, 4 layers, 3.2M parameters; scripts/fixtures/train_fmnist_vit_base.py), where
 * MatMul weights dominate the file and the per-token matmuls are big enough for int8 GEMM: dynamic int8 variants
 * side by side with fp32, int4 block 32 weight bytes, and which kernels onnxruntime ran.
 */
async function vitBaseRows(rows: Row[], notes: string[]): Promise<void> {
  const L = 'ViT-base (fmnist)';
  const bytes = readFileSync(join(ROOT, 'test/fixtures/fmnist-vit-base/fmnist-vit-base.onnx'));
  const base = decodeModel(bytes);
  const batches = [...batchesFromArrays(base, readArraysFile(join(ROOT, 'test/fixtures/fmnist/test-2000.npz'), base), { batchSize: 100 })];
  const labels = readLabelsFile(join(ROOT, 'test/fixtures/fmnist/test-2000-labels.npy'));
  const runPass = async (pass: typeof quantizeDynamicPass | typeof quantizeWeightsPass, config: Record<string, unknown>) => {
    const model = decodeModel(bytes);
    const ctx = fixedPassContext({ samples: batches.slice(0, 2), evaluation: batches, calibration: false });
    const q = await pass.run(model, TBValue.Default(pass.schema, config) as never, ctx);
    verifyModel(q);
    return { q, out: encodeModel(q) };
  };
  const load0 = os.loadavg()[0];
  const loads: string[] = [];
  let first: Awaited<ReturnType<typeof runPass>> | undefined;
  const variants: [string, Record<string, unknown>][] = [
    ['', {}],
    [', per-tensor weights', { perChannel: false }],
    [' without reduce-range', { reduceRange: false }],
    [' + otherWeights int8', { otherWeights: 'int8' }],
  ];
  for (const [label, config] of variants) {
    const dyn = await runPass(quantizeDynamicPass, { pass: 'quantize.dynamic', ...config });
    first ??= dyn;
    const ev = await evaluateModels(bytes, dyn.out, batches, { labels, metrics: ['top1'] });
    const drop = 100 * (ev.task!.reference.top1! - ev.task!.candidate.top1!);
    const before = os.loadavg()[0];
    const cmp = await compareModels(bytes, dyn.out, { batchSizes: [1, 8, 16], rounds: 8, warmup: 10, runs: 32 });
    loads.push(`${label.replace(/^[ ,+]+/, '') || 'defaults'} ${before.toFixed(1)} → ${os.loadavg()[0].toFixed(1)}`);
    const r = (b: number) => cmp.ratios.find((x) => x.batch === b)!;
    const fmt = (b: number) => `b${b} ${r(b).ratio.toFixed(3)}× (spread ${r(b).low.toFixed(2)}–${r(b).high.toFixed(2)}, fp32 p50 ${r(b).a.p50Ms.toFixed(2)} ms)`;
    const size = dyn.out.length / bytes.length;
    const nodes = dyn.q.graph.nodes.filter((n) => n.opType === 'DynamicQuantizeMatMul').length;
    rows.push({ target: `${L} dynamic int8${label}: size ≤ 0.3×`, measured: `${size.toFixed(3)}× (${dyn.out.length} / ${bytes.length} bytes; ${nodes} DynamicQuantizeMatMul)`, pass: size <= 0.3 });
    rows.push({
      target: `${L} dynamic int8${label}: latency ≤ 0.8× (b1 and b8)`,
      measured: `${fmt(1)}; ${fmt(8)}; ${fmt(16)}`,
      pass: r(1).ratio <= 0.8 && r(8).ratio <= 0.8,
    });
    rows.push({
      target: `${L} dynamic int8${label}: accuracy drop ≤ 1 pt (2000 images)`,
      measured: `${drop.toFixed(2)} pt (${(100 * ev.task!.reference.top1!).toFixed(2)}% → ${(100 * ev.task!.candidate.top1!).toFixed(2)}%)`,
      pass: drop <= 1,
    });
  }
  notes.push(
    `${L} latency: machine load average (1 min, ${os.cpus().length} cores) ${load0.toFixed(1)} at the start; per comparison (8 alternating rounds × 32 runs per batch size): ${loads.join('; ')}.`,
  );
  {
    // which kernels onnxruntime picked, fp32 vs default int8, at batch 1 and 8 (profiling adds per-kernel overhead: shares are indicative)
    const x = (b: number) => ({ input: new ort.Tensor('float32', (batches[0]!.input!.data as Float32Array).slice(0, b * 784), [b, 1, 28, 28]) }) as Feeds;
    const top = (p: Awaited<ReturnType<typeof profileModel>>) => p.byOpType.slice(0, 8).map((e) => `${e.name}×${e.count} ${(100 * e.share).toFixed(0)}%`).join(', ');
    for (const b of [1, 8]) {
      const pf = await profileModel(base, x(b), { runs: 40, warmup: 10 });
      const pq = await profileModel(first!.q, x(b), { runs: 40, warmup: 10 });
      notes.push(`${L} batch-${b} profile (onnxruntime profiler, 40 runs): fp32 ${pf.totalMs.toFixed(2)} ms/run of kernel time (${top(pf)}); dynamic int8 ${pq.totalMs.toFixed(2)} ms/run (${top(pq)}).`);
    }
  }
  const int4 = await runPass(quantizeWeightsPass, { pass: 'quantize.weights', bits: 4, blockSize: 32, minElements: 0 });
  const { fp32Total, packedBytes } = matmulWeightBytes(base, int4.q);
  const ev4 = await evaluateModels(bytes, int4.out, batches, { labels, metrics: ['top1'] });
  rows.push({
    target: `${L} quantize.weights int4 block 32: MatMul weight bytes ≤ 0.16× fp32`,
    measured: `${(packedBytes / fp32Total).toFixed(3)}× (${packedBytes} / ${fp32Total} bytes incl. scales/zero points; file ${(int4.out.length / bytes.length).toFixed(3)}×; top-1 ${(100 * ev4.task!.reference.top1!).toFixed(2)}% → ${(100 * ev4.task!.candidate.top1!).toFixed(2)}%)`,
    pass: packedBytes / fp32Total <= 0.16,
  });
  notes.push(
    `${L} kernels: this CPU has ${environment().int8Dot}. reduce-range (7-bit weights, the default) and full-range weights run the same DynamicQuantizeMatMul kernel (u8 activations × s8 weights); 7 bits keep the pairwise u8×s8 sums of the AVX2 path inside int16, so compare the two rows' spreads before reading a speed difference into them. The int8 graph folds fc1's bias into DynamicQuantizeMatMul, so GELU runs as a plain Gelu kernel where fp32 fuses bias + GELU into BiasGelu; the attention MatMuls (both operands computed) stay float.`,
  );
  const params = countParameters(base);
  notes.push(`${L}: ${params} parameters, ${fp32Total} of the ${bytes.length} fp32 file bytes (${((100 * fp32Total) / bytes.length).toFixed(1)}%) are MatMul weights.`);
}

/** Bias correction (quantize.weights biasCorrection): output SQNR, top-1 and the mean output shift, with and without. */
async function biasCorrectionRows(rows: Row[], notes: string[]): Promise<void> {
  const labels = readLabelsFile(join(ROOT, 'test/fixtures/fmnist/test-2000-labels.npy'));
  const cases: [string, string, Record<string, unknown>][] = [
    ['fmnist CNN', 'test/fixtures/fmnist/fmnist-cnn.onnx', { bits: 8, perChannel: true }],
    ['fmnist CNN', 'test/fixtures/fmnist/fmnist-cnn.onnx', { bits: 8, perChannel: false }],
    ['ViT (fmnist)', 'test/fixtures/fmnist-vit/fmnist-vit.onnx', { bits: 4, blockSize: 32, minElements: 0 }],
    ['ViT (fmnist)', 'test/fixtures/fmnist-vit/fmnist-vit.onnx', { bits: 4, blockSize: 128, minElements: 0 }],
  ];
  for (const [name, file, config] of cases) {
    const bytes = readFileSync(join(ROOT, file));
    const base = decodeModel(bytes);
    const test = [...batchesFromArrays(base, readArraysFile(join(ROOT, 'test/fixtures/fmnist/test-2000.npz'), base), { batchSize: 100 })];
    // calibration: 512 training images, never the 2000 test images the numbers are reported on
    const calibration = [...batchesFromArrays(base, readArraysFile(join(ROOT, 'test/fixtures/fmnist/calib-512.npz'), base), { batchSize: 64 })];
    const label = config.bits === 4 ? `int4 block ${config.blockSize}` : `int8 ${config.perChannel ? 'per-channel' : 'per-tensor'}`;
    const measured: string[] = [];
    const sqnr: number[] = [];
    for (const biasCorrection of [false, true]) {
      const ctx = fixedPassContext<StatsOf<typeof quantizeWeightsPass>>({ samples: calibration, evaluation: test, calibration: true });
      const q = await quantizeWeightsPass.run(decodeModel(bytes), TBValue.Default(quantizeWeightsPass.schema, { pass: 'quantize.weights', ...config, biasCorrection }) as never, ctx);
      verifyModel(q);
      const out = encodeModel(q);
      const ev = await evaluateModels(bytes, out, test, { labels, metrics: ['top1'] });
      const fid = Object.values(ev.fidelity)[0]!;
      const shift = await meanOutputShift(bytes, out, test);
      sqnr.push(fid.sqnrDb);
      measured.push(`${biasCorrection ? 'with' : 'without'}: SQNR ${fid.sqnrDb.toFixed(2)} dB, top-1 ${(100 * ev.task!.candidate.top1!).toFixed(2)}%, rms per-class mean shift ${shift.toFixed(4)}`);
      if (biasCorrection) notes.push(`bias correction, ${name} weight-only ${label}: ${ctx.changes.stats.biasCorrected} layers corrected, largest per-channel shift ${ctx.changes.stats.biasCorrectionMaxShift}`);
    }
    rows.push({ target: `bias correction, ${name} quantize.weights ${label} (fp32 top-1 on 2000 images; calibration 512 other images)`, measured: measured.join('; '), pass: null });
  }
  notes.push(
    'bias correction measures each layer with the float model\'s own inputs (a twin node with the dequantized weights), so per layer it removes the mean shift on the calibration data; on the CNN (Conv → BatchNorm → ReLU, then global average pooling) that carries through to the logits. On the ViT the end-to-end shift does not shrink (int4 block 32 it grows) although each layer\'s own shift is removed; not isolated yet, a likely reason is that the corrected layers feed LayerNorm, GELU and softmax, where per-layer mean shifts do not add up linearly. biasCorrection stays off by default.',
  );
}

/** Root mean square over output channels of the mean (over all samples) of candidate − reference: the systematic shift. */
async function meanOutputShift(reference: Uint8Array, candidate: Uint8Array, batches: Feeds[]): Promise<number> {
  const means = async (bytes: Uint8Array) => {
    const m = decodeModel(bytes);
    const y = m.graph.outputs[0]!;
    return (await channelMeans(m, [{ value: y, opType: 'output' }], batches)).get(y)!; // classes on the last axis
  };
  const [a, b] = [await means(reference), await means(candidate)];
  return Math.sqrt(a.reduce((acc, x, c) => acc + (b[c]! - x) ** 2, 0) / a.length);
}

/** QUANT_BENCH_ONLY=vit,bias runs only those families (fmnist, rec, recweights, vit, vitbase, bias) and updates only their rows. */
const FAMILY_PREFIXES: Record<string, string[]> = {
  fmnist: ['fmnist CNN', 'fmnist '],
  rec: ['PP-OCRv4 rec'],
  recweights: ['PP-OCRv4 rec quantize.weights'],
  // not a bare 'ViT': that would also claim (and drop) the ViT-base rows
  vit: ['ViT (fmnist)', 'ViT latency', 'ViT size floor', 'ViT batch-1', 'ViT dynamic int8'],
  vitbase: ['ViT-base'],
  bias: ['bias correction'],
};

function mergeIntoExisting(previous: string, md: string, families: string[]): string {
  const prefixes = families.flatMap((f) => FAMILY_PREFIXES[f] ?? []);
  const ours = (line: string) => prefixes.some((p) => line.startsWith(`| ${p}`) || line.startsWith(`- ${p}`));
  const fresh = md.split('\n');
  const freshRows = fresh.filter((l) => l.startsWith('| ') && !l.startsWith('| target') && ours(l));
  const freshNotes = fresh.filter((l) => l.startsWith('- ') && ours(l));
  const out: string[] = [];
  let rowsPlaced = false;
  let notesPlaced = false;
  const lines = previous.split('\n');
  const lastRow = lines.map((l) => l.startsWith('| ')).lastIndexOf(true);
  lines.forEach((l, i) => {
    if (ours(l)) {
      if (l.startsWith('| ') && !rowsPlaced) (out.push(...freshRows), (rowsPlaced = true));
      if (l.startsWith('- ') && !notesPlaced) (out.push(...freshNotes), (notesPlaced = true));
      return;
    }
    out.push(l);
    if (i === lastRow && !rowsPlaced) (out.push(...freshRows), (rowsPlaced = true));
  });
  if (!notesPlaced) {
    while (out.length && out[out.length - 1] === '') out.pop();
    out.push(...freshNotes, '');
  }
  return out.join('\n');
}

export async function quantBench(): Promise<string> {
  const rows: Row[] = [];
  const notes: string[] = [];
  const only = process.env.QUANT_BENCH_ONLY?.split(',').map((f) => f.trim());
  const runs = (family: string) => !only || only.includes(family);
  if (runs('fmnist')) {
    await fmnistStatic({}, 'static int8 (percentile 99.99, per-channel, reduce-range)', rows, notes);
    await fmnistStatic({ reduceRange: false }, 'static int8 without reduce-range', rows, notes);
    await fmnistStatic({ calibrationMethod: 'entropy' }, 'static int8, entropy calibration', rows, notes);
    await fmnistStatic({ calibrationMethod: 'entropy', sensitivity: { maxAccuracyDrop: 0.5 } }, 'static int8, entropy + sensitivity(maxAccuracyDrop 0.5)', rows, notes);
    await fmnistStatic({ calibrationMethod: 'entropy', sensitivity: { maxAccuracyDrop: 0.5, excludedWeights: 'int8' } }, 'static int8, entropy + sensitivity(maxAccuracyDrop 0.5, excluded layers keep int8 weights)', rows, notes);
    await fmnistStatic({ weightRounding: 'nearest' }, 'static int8, nearest weight rounding', rows, notes);
    await fmnistStatic({ biasCorrection: true }, 'static int8 + bias correction', rows, notes);
    await fmnistStatic({ calibrationMethod: 'entropy', biasCorrection: true }, 'static int8, entropy calibration + bias correction', rows, notes);
    await fmnistStatic({ calibrationMethod: 'mse' }, 'static int8, mse calibration', rows, notes);
  }
  if (runs('rec')) {
    await recQuantized({}, 'static int8', rows, notes);
    await recQuantized({ weightRounding: 'nearest' }, 'static int8, nearest weight rounding', rows, notes);
    await recQuantized({ weightRounding: 'nearest', biasCorrection: true }, 'static int8, nearest weight rounding + bias correction', rows, notes);
    await recQuantized({ biasCorrection: true }, 'static int8 + bias correction (GPTQ rounding)', rows, notes);
    await recQuantized({ weightRounding: 'nearest', biasCorrection: true, calibrationMethod: 'mse' }, 'static int8, nearest weight rounding + bias correction, mse calibration', rows, notes);
    await recQuantized({ sensitivity: { maxFidelityDrop: 2, maxExcluded: 400 } }, 'static int8 + sensitivity(maxFidelityDrop 2, searched on the calibration lines)', rows, notes);
    await recQuantized({ sensitivity: { maxFidelityDrop: 2, maxExcluded: 400, excludedWeights: 'int8' } }, 'static int8 + sensitivity(maxFidelityDrop 2 on the calibration lines, excluded layers keep int8 weights)', rows, notes);
  }
  if (runs('rec') || runs('recweights')) {
    // where the static model's noise comes from: the same int8 weights with every activation left float
    await recQuantized({ bits: 8, biasCorrection: true }, 'quantize.weights int8 + bias correction (activations stay float; for comparison)', rows, notes, 'weights');
  }
  if (runs('vit')) await vitRows(rows, notes);
  if (runs('vitbase')) await vitBaseRows(rows, notes);
  if (runs('bias')) await biasCorrectionRows(rows, notes);
  const env = environment();
  return [
    '## Quantization (issue 5)',
    '',
    `Measured by \`node dist/src/bench/quant.js\` on ${env.cpuModel} (${env.cores} cores), onnxruntime-node ${env.onnxruntime}.`,
    '',
    '| target | measured | result |',
    '|---|---|---|',
    ...rows.map((r) => `| ${r.target} | ${r.measured} | ${r.pass === null ? '—' : r.pass ? 'pass' : 'MISS'} |`),
    '',
    ...notes.map((n) => `- ${n}`),
    '',
  ].join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  let md = await quantBench();
  mkdirSync(join(ROOT, 'bench'), { recursive: true });
  const only = process.env.QUANT_BENCH_ONLY?.split(',').map((f) => f.trim());
  const target = join(ROOT, 'bench/quant.md');
  if (only && existsSync(target)) md = mergeIntoExisting(readFileSync(target, 'utf8'), md, only);
  writeFileSync(target, md);
  process.stdout.write(md);
}
