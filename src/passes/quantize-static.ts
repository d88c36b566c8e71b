// quantize.static: QDQ int8 with calibrated activation ranges.
// Pre-step: BatchNormalization after a Conv is folded into it (exact), so Conv(+Relu) maps to one
// integer kernel. Then: calibrate every float activation, insert Q/DQ by the op table
// (src/quant/qdq-rules.ts), measure each quantized layer's SQNR against float on calibration data,
// and, with `sensitivity`, keep the worst layers float one by one until the target is met.
// With `biasCorrection`, each layer's systematic output shift in the quantized model is folded into
// its float bias first (src/quant/bias-correction.ts).
import { narrowUntouchedIslands, noteIslands, widenHalfLayers } from '../quant/float-islands.js';
import { Type, type Static } from '@sinclair/typebox';
import { InvalidInputError, PassFailedError } from '../errors.js';
import { DataType as DT } from '../onnx/dtypes.js';
import { inferElemTypes } from '../onnx/elem-types.js';
import { carryAcross, type ModelClone, type Node, type Value } from '../onnx/ir.js';
import { encodeModel } from '../onnx/model-io.js';
import { definePass, statFamily, statsSchema, strategyOption } from '../pipeline/pass.js';
import { calibrate, CALIBRATORS } from '../quant/calibration.js';
import { gptqWeightLevels, type WeightLevels } from '../quant/gptq.js';
import { qRange, quantizeWeightsSymmetric } from '../quant/quant-math.js';
import { foldBatchNorms } from '../quant/fold-bn.js';
import { SIMPLIFY_REWRITES, simplifyForQuantization } from '../quant/simplify.js';
import { upgradeOpset } from '../onnx/opset-upgrade.js';
import { QDQ_OP_RULES } from '../quant/qdq-rules.js';
import { nodeKey, quantizedWeightLayers, quantizeQdq, type QdqOptions, type QdqResult } from '../quant/qdq.js';
import { applyBiasShifts, measureQuantizedBiasShifts } from '../quant/bias-correction.js';
import { addedSqnr, checkTarget, searchExclusions, type TargetCheck } from '../quant/sensitivity.js';
import type { Feeds } from '../runtime/ort.js';

export const quantizeStaticSchema = Type.Object(
  {
    pass: Type.Literal('quantize.static'),
    calibrationMethod: strategyOption(CALIBRATORS, { default: 'percentile' }),
    percentile: Type.Number({ default: 99.99, minimum: 90, maximum: 100, description: 'Percentile of |activations| kept (percentile method).' }),
    maxCalibrationBatches: Type.Integer({ default: 16, minimum: 1, description: 'Calibration batches used (of the calibration data).' }),
    activationType: Type.Union([Type.Literal('uint8'), Type.Literal('int8')], { default: 'uint8' }),
    activationSymmetric: Type.Boolean({ default: false }),
    perChannel: Type.Boolean({ default: true, description: 'Per-output-channel weight scales (needs opset ≥ 13; older models are upgraded).' }),
    reduceRange: Type.Boolean({
      default: true,
      description: '7-bit weights: u8×s8 pair sums stay inside int16 on AVX2 CPUs without VNNI (onnxruntime recommends it there).',
    }),
    weightRounding: Type.Union([Type.Literal('nearest'), Type.Literal('gptq')], {
      default: 'gptq',
      description: 'nearest: round each weight on its own; gptq: round column by column, pushing each rounding error onto the columns not yet rounded through the inverse input Gram matrix on calibration data (smaller layer output error).',
    }),
    gptqMaxInputs: Type.Integer({
      minimum: 1,
      default: 2048,
      description: 'weightRounding gptq: layers with more inputs per output (Conv: C/group × kernel) are rounded to nearest; GPTQ costs d³ per layer, minutes for d = 4608 in JavaScript.',
    }),
    opTypes: Type.Array(Type.String({ minLength: 1 }), { default: Object.keys(QDQ_OP_RULES), description: 'Op types to quantize.' }),
    excludeNodes: Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'Node names kept float.' }),
    foldBatchNorm: Type.Boolean({ default: true, description: 'Fold BatchNormalization into the Conv before it first.' }),
    simplify: Type.Boolean({
      default: true,
      description: 'Exact rewrites first: per-channel Mul/Add around Convs folded into their weights, Add→Clip→Mul→Div hardswish fused into HardSwish (fewer Q/DQ roundings and int8 kernels).',
    }),
    biasCorrection: Type.Boolean({
      default: false,
      description:
        'Measure, layer by layer on the calibration data, the per-channel mean shift of each quantized Conv/Gemm/MatMul output in the quantized model against float (rounded weights, clipped and rounded inputs) and fold it into the bias. One calibration run per layer.',
    }),
    allowSynthetic: Type.Boolean({ default: false, description: 'Calibrate on synthetic inputs when no data is given (ranges are then unreliable).' }),
    sensitivity: Type.Optional(
      Type.Object(
        {
          minSqnrDb: Type.Optional(Type.Number({ description: 'SQNR of every model output vs float ≥ this (dB), on calibration data.' })),
          maxAccuracyDrop: Type.Optional(Type.Number({ minimum: 0, description: 'Top-1 drop vs float against the labels, percentage points (needs labels).' })),
          maxFidelityDrop: Type.Optional(Type.Number({ minimum: 0, description: '% of evaluation samples whose top-1 / greedy CTC sequence differs from float.' })),
          maxExcluded: Type.Integer({ default: 16, minimum: 1, description: 'Give up after keeping this many layers float.' }),
          excludedWeights: Type.Union([Type.Literal('float'), Type.Literal('int8')], {
            default: 'float',
            description:
              'Layers kept float compute in float32. float: float32 weights (fast). int8: weights stored as full-range int8 behind DequantizeLinear, so the file stays small, but onnxruntime cannot prepack a Conv weight computed at run time and those Convs run slower than float32 ones (measured on PP-OCRv4 rec: 1.24× the original).',
          }),
          probeFraction: Type.Number({
            default: 0.5,
            exclusiveMinimum: 0,
            maximum: 1,
            description: 'Share of the evaluation batches the exclusion search probes on (the result is confirmed on all of them).',
          }),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);

const seconds = (what: string) => Type.Number({ description: `${what}: time it took, seconds (1 decimal).` });

export const quantizeStaticStats = statsSchema(
  {
    opsetUpgradedFrom: Type.Integer({ description: 'The default-domain opset the model had before it was upgraded to 13 (per-channel scales).' }),
    batchNormsFolded: Type.Integer({ description: 'foldBatchNorm: BatchNormalization nodes folded into the Conv before them (count).' }),
    simplifiedSummary: Type.String({ description: 'simplify: each exact rewrite that applied and how often ("name ×n; ").' }),
    calibrationMethod: Type.String({ description: 'The calibrator that set the activation ranges (`percentile` with its percentile).' }),
    calibrationBatches: Type.Integer({ description: 'Calibration batches the activation ranges were measured on (count).' }),
    gptqLayers: Type.Integer({ description: 'weightRounding gptq: layers whose int8 weights GPTQ rounded (count).' }),
    gptqSeconds: seconds('weightRounding gptq'),
    gptqMeanOutputError: Type.String({ description: 'weightRounding gptq: mean relative layer output error ‖XΔW‖ on calibration inputs, nearest rounding → GPTQ (percent).' }),
    biasCorrectedLayers: Type.Integer({ description: 'biasCorrection: layers whose bias took the measured output shift (count).' }),
    biasCorrectionSeconds: seconds('biasCorrection'),
    biasCorrectionLargest: Type.String({ description: 'biasCorrection: the 8 layers with the largest shifts, each with its rms over channels, in the layer output\'s units ("; "-separated).' }),
    sensitivityStart: Type.String({ description: 'sensitivity: the plain int8 model against the target (each measure and its limit).' }),
    sensitivityResult: Type.String({ description: 'sensitivity: the final model against the target (each measure and its limit).' }),
    sensitivityTargetMet: Type.Boolean({ description: 'sensitivity: the final model meets every limit of the target.' }),
    sensitivityProbes: Type.Integer({ description: 'sensitivity: candidate models measured by the search (count).' }),
    sensitivitySeconds: seconds('sensitivity search'),
    excludedBySensitivity: Type.String({ description: 'sensitivity: the layers kept float, each with the SQNR its quantization adds (dB), "; "-separated; "none" when none.' }),
    excludedBySensitivityCount: Type.Integer({ description: 'sensitivity: layers kept float (count).' }),
    sensitivitySizeCostBytes: Type.Integer({ description: 'sensitivity: bytes the layers kept float add to the serialized model (bytes, against the plain int8 model).' }),
    addedSqnrWorstFirst: Type.String({ description: 'The 12 quantized layers that add the most noise, each with the SQNR it adds (dB), worst first ("; "-separated).' }),
    quantizedNodes: Type.Integer({ description: 'Nodes quantized to int8 (count).' }),
    qdqPairs: Type.Integer({ description: 'QuantizeLinear/DequantizeLinear pairs inserted (count).' }),
    excludedWithInt8Weights: Type.Integer({ description: 'sensitivity.excludedWeights int8: layers kept float whose weights are stored as int8 (count).' }),
    sqnrWorstFirst: Type.String({ description: 'The 12 quantized layers with the lowest output SQNR against float on calibration data (dB), worst first ("; "-separated).' }),
    sqnrMinDb: Type.Number({ description: 'The lowest layer output SQNR against float on calibration data, dB (2 decimals).' }),
  },
  statFamily('simplified.', Type.Integer({ description: 'simplify: times this rewrite of SIMPLIFY_REWRITES applied (count).' })),
);

export const quantizeStaticPass = definePass({
  name: 'quantize.static',
  summary: 'int8 QDQ: calibrated activations, per-channel int8 weights, int32 biases; per-layer SQNR; optional sensitivity loop',
  schema: quantizeStaticSchema,
  stats: quantizeStaticStats,
  calibration: (config) => (config.allowSynthetic ? 'used' : 'required'),
  async run(input, config, ctx) {
    const log = ctx.changes;
    if (ctx.samplesAreSynthetic && quantizeStaticPass.calibration!(config) === 'required') {
      throw new InvalidInputError('quantize.static needs calibration data (job input `calibration`, CLI --calibration or --data); set allowSynthetic: true to calibrate on synthetic inputs');
    }
    if (ctx.samplesAreSynthetic) log.warn('calibrated on SYNTHETIC inputs: activation ranges are not representative, accuracy may suffer');
    const reference = encodeModel(input);
    // the float model: a copy of the input with the exact pre-steps below, never changed after them
    // (every candidate quantizes its own clone)
    const widened = widenHalfLayers(input);
    const { model } = widened.islands > 0 ? widened : input.clone();

    // ---- pre-steps: opset ≥ 13 for per-channel scales, BatchNormalization folded into Conv
    const opset = model.opset('') ?? 0;
    if (opset < 13) {
      const up = upgradeOpset(model, 13);
      if (up.upgraded) log.stat('opsetUpgradedFrom', opset);
      else log.warn(`opset ${opset} not upgraded (${up.reason}); ${opset < 10 ? 'QuantizeLinear needs opset ≥ 10' : 'weights quantized per tensor'}`);
    }
    if ((model.opset('') ?? 0) < 10) throw new PassFailedError('quantize.static', `needs opset ≥ 10; this model is opset ${model.opset('')} and could not be upgraded`);
    if (config.foldBatchNorm) {
      const { folded } = foldBatchNorms(model);
      log.stat('batchNormsFolded', folded.length);
      for (const n of folded) log.rewrite(n, 'BatchNormalization folded in');
    }
    if (config.simplify) {
      const { applied } = simplifyForQuantization(model);
      log.stat('simplifiedSummary', [...applied].map(([name, nodes]) => `${name} ×${nodes.length}; `).join(''));
      for (const [name, nodes] of applied) {
        log.stat(`simplified.${name}`, nodes.length);
        for (const n of nodes) log.rewrite(n, SIMPLIFY_REWRITES[name]!.summary);
      }
    }

    // ---- calibration: every float activation of the main graph
    const feeds = (await ctx.sampleInputs()).slice(0, config.maxCalibrationBatches);
    const types = inferElemTypes(model);
    const values: Value[] = [];
    for (const v of model.graph.inputs) if (types.get(v) === DT.FLOAT) values.push(v);
    for (const n of model.graph.nodes) {
      if (n.opType === 'Constant') continue;
      for (const v of n.outputs) if (v && types.get(v) === DT.FLOAT) values.push(v);
    }
    const [qmin, qmax] = qRange(config.activationType);
    const ranges = await calibrate(model, values, feeds, config.calibrationMethod, config.percentile, ctx.signal, { qmin, qmax, symmetric: config.activationSymmetric });
    ctx.progress(0.3, 'calibrated');
    log.stat('calibrationMethod', config.calibrationMethod === 'percentile' ? `percentile ${config.percentile}` : config.calibrationMethod);
    log.stat('calibrationBatches', feeds.length);

    const opts: QdqOptions = {
      activationType: config.activationType,
      activationSymmetric: config.activationSymmetric,
      perChannel: config.perChannel,
      reduceRange: config.reduceRange,
      opTypes: config.opTypes,
      excludedWeights: config.sensitivity?.excludedWeights ?? 'float',
    };
    const exclude = new Set(config.excludeNodes);
    let weightLevels: Map<Value, WeightLevels> | undefined;
    if (config.weightRounding === 'gptq') {
      const t0 = Date.now();
      const qmax = config.reduceRange ? 63 : 127;
      // the layers quantizeQdq will give int8 weights, with the axis it will use
      const layers = quantizedWeightLayers(model, opts, exclude);
      const { levels, errors, tooWide } = await gptqWeightLevels(model, feeds, layers, qmax, (w, dims, axis) => quantizeWeightsSymmetric(w, dims, axis, qmax), config.gptqMaxInputs);
      weightLevels = levels;
      if (tooWide.length > 0) log.warn(`${tooWide.length} layer(s) with more than ${config.gptqMaxInputs} inputs per output rounded to nearest, not GPTQ (gptqMaxInputs): ${tooWide.slice(0, 5).map((n) => n.name).join(', ')}${tooWide.length > 5 ? ', …' : ''}`);
      const mean = (f: (e: (typeof errors)[number]) => number) => errors.reduce((a, e) => a + f(e), 0) / (errors.length || 1);
      log.stat('gptqLayers', errors.length);
      log.stat('gptqSeconds', Number(((Date.now() - t0) / 1000).toFixed(1)));
      log.stat('gptqMeanOutputError', `nearest ${(100 * mean((e) => e.nearest)).toFixed(2)}% → gptq ${(100 * mean((e) => e.gptq)).toFixed(2)}% (relative ‖XΔW‖ on calibration inputs)`);
    }
    // the ranges, GPTQ levels and bias shifts belong to the float model's values and nodes: each
    // clone gets them through its maps
    const quantizeCopy = (copy: ModelClone, exclude: ReadonlySet<string>) =>
      quantizeQdq(copy.model, carryAcross(ranges, copy.values), { ...opts, ...(weightLevels ? { weightLevels: carryAcross(weightLevels, copy.values) } : {}) }, exclude);
    let biasShifts = new Map<Node, Float32Array>();
    const quantizeOnly = (exclude: ReadonlySet<string>) => {
      const copy = model.clone();
      applyBiasShifts(copy.model, carryAcross(biasShifts, copy.nodes), (n) => exclude.has(nodeKey(n)));
      const result = quantizeCopy(copy, exclude);
      return { model: copy.model, values: copy.values, result };
    };
    // bias correction: measured on the layers not kept float
    const correctBiases = async (exclude: ReadonlySet<string>) => {
      const t0 = Date.now();
      const layers = quantizedWeightLayers(model, opts, exclude).map((l) => l.node);
      biasShifts = await measureQuantizedBiasShifts(model, layers, (copy) => void quantizeCopy(copy, exclude), feeds, ctx.signal);
      const rms = (s: Float32Array) => Math.sqrt(s.reduce((a, x) => a + x * x, 0) / s.length);
      const worst = [...biasShifts].sort((a, b) => rms(b[1]) - rms(a[1])).slice(0, 8);
      log.stat('biasCorrectedLayers', biasShifts.size);
      log.stat('biasCorrectionSeconds', Number(((Date.now() - t0) / 1000).toFixed(1)));
      log.stat('biasCorrectionLargest', worst.map(([n, s]) => `${nodeKey(n)} rms ${rms(s).toPrecision(3)}`).join('; '));
    };
    if (config.biasCorrection) {
      await correctBiases(exclude);
      ctx.progress(0.4, 'bias corrected');
    }
    const build = async (exclude: ReadonlySet<string>) => {
      const { model: q, values, result } = quantizeOnly(exclude);
      const floatOf = new Map([...values].map(([f, c]) => [c, f]));
      const { added, absolute } = await addedSqnr(model, q, result.quantized, feeds, floatOf);
      return { model: q, result, sqnr: absolute, added };
    };

    let cur = await build(exclude);
    ctx.progress(0.5, 'quantized');
    const target = config.sensitivity;
    if (target) {
      const wantsLabels = target.maxAccuracyDrop !== undefined;
      if (wantsLabels && !ctx.labels) throw new InvalidInputError('sensitivity.maxAccuracyDrop needs labels (CLI --labels)');
      const evalFeeds = target.minSqnrDb !== undefined && !wantsLabels && target.maxFidelityDrop === undefined ? feeds : await ctx.evaluationInputs();
      // the search probes on a subset; the result is confirmed on all evaluation data
      const probeFeeds = evalFeeds.slice(0, Math.max(1, Math.ceil(evalFeeds.length * target.probeFraction)));
      const labels = wantsLabels ? { labels: ctx.labels!, ...(ctx.labelOutput ? { output: ctx.labelOutput } : {}) } : undefined;
      const probeLabels = labels && probeFeeds.length < evalFeeds.length ? sliceLabels(labels, probeFeeds, evalFeeds) : labels;
      const firstSize = encodeModel(cur.model).length;
      let check: TargetCheck = await checkTarget(reference, encodeModel(cur.model), evalFeeds, target, labels);
      log.stat('sensitivityStart', check.summary);
      // rank by the SQNR each layer adds (lowest first), measured once on the plain int8 model
      const ranked = [...cur.added].filter(([k]) => !exclude.has(k)).sort((a, b) => a[1] - b[1]);
      const t0 = Date.now();
      let kept: [string, number][] = [];
      let probes = 0;
      let from = 0;
      while (!check.met && from < Math.min(target.maxExcluded, ranked.length)) {
        const s = await searchExclusions(
          ranked.map(([k]) => k),
          target.maxExcluded,
          async (k) => {
            if (k <= from) return false;
            const c = quantizeOnly(new Set([...exclude, ...ranked.slice(0, k).map(([key]) => key)]));
            const r = await checkTarget(reference, encodeModel(c.model), probeFeeds, target, probeLabels);
            ctx.progress(0.5 + 0.4 * Math.min(1, k / ranked.length), `${k} layer(s) float: ${r.summary}`);
            return r.met;
          },
        );
        probes += s.probes;
        kept = ranked.slice(0, s.k);
        const excl = new Set([...exclude, ...kept.map(([k]) => k)]);
        cur = await build(excl);
        check = await checkTarget(reference, encodeModel(cur.model), evalFeeds, target, labels);
        probes++;
        if (check.met || !s.met || probeFeeds.length === evalFeeds.length) break;
        from = s.k; // passed on the subset, not on all data: search beyond it
      }
      if (config.biasCorrection && kept.length > 0) {
        // the corrections were measured with the kept-float layers quantized: measure them again
        const excl = new Set([...exclude, ...kept.map(([k]) => k)]);
        await correctBiases(excl);
        cur = await build(excl);
        check = await checkTarget(reference, encodeModel(cur.model), evalFeeds, target, labels);
      }
      log.stat('sensitivityResult', check.summary);
      log.stat('sensitivityTargetMet', check.met);
      log.stat('sensitivityProbes', probes);
      log.stat('sensitivitySeconds', Number(((Date.now() - t0) / 1000).toFixed(1)));
      log.stat('excludedBySensitivity', kept.map(([k, db]) => `${k} (adds ${db.toFixed(1)} dB)`).join('; ') || 'none');
      log.stat('excludedBySensitivityCount', kept.length);
      log.stat('sensitivitySizeCostBytes', encodeModel(cur.model).length - firstSize);
      if (!check.met) log.warn(`sensitivity target not met after keeping ${kept.length} layer(s) float: ${check.summary}`);
    }
    noteIslands(log, widened.islands, narrowUntouchedIslands(cur.model));
    report(cur.result, cur.sqnr, cur.added, log);
    ctx.progress(1);
    return cur.model;
  },
});

/** Labels of the first batches (a prefix of the evaluation data). */
function sliceLabels(labels: { labels: ArrayLike<number | bigint>; output?: string }, prefix: Feeds[], all: Feeds[]): { labels: ArrayLike<number | bigint>; output?: string } {
  const rows = (fs: Feeds[]) => fs.reduce((n, f) => n + (Object.values(f)[0]?.dims[0] ?? 0), 0);
  const n = rows(prefix);
  return n > 0 && n <= rows(all) ? { ...labels, labels: Array.from(labels.labels).slice(0, n) } : labels;
}

function report(result: QdqResult, sqnr: Map<string, number>, added: Map<string, number>, log: import('../pipeline/pass.js').ChangeLog<Static<typeof quantizeStaticStats>>): void {
  const rows = result.quantized.map((r) => ({ ...r, db: sqnr.get(r.key) ?? NaN, add: added.get(r.key) ?? NaN })).sort((a, b) => a.db - b.db);
  for (const r of rows) {
    log.rewrite(r.node, `int8${r.fused ? ` (+${r.fused} fused)` : ''}, SQNR ${r.db.toFixed(1)} dB (adds ${r.add.toFixed(1)} dB)`);
  }
  const byAdded = [...rows].sort((a, b) => a.add - b.add);
  log.stat('addedSqnrWorstFirst', byAdded.slice(0, 12).map((r) => `${r.key} ${r.add.toFixed(1)} dB`).join('; '));
  for (const s of result.skipped) log.skip(s.node, s.reason);
  for (const w of result.warnings) log.warn(w);
  log.stat('quantizedNodes', rows.length);
  log.stat('qdqPairs', result.qdqPairs);
  if (result.weightOnly) log.stat('excludedWithInt8Weights', result.weightOnly);
  log.stat('sqnrWorstFirst', rows.slice(0, 12).map((r) => `${r.key} ${r.db.toFixed(1)} dB`).join('; '));
  if (rows.length) log.stat('sqnrMinDb', Number(rows[0]!.db.toFixed(2)));
}
