// prune.structured: removes whole output channels (filters / neurons) so tensors really shrink.
// Analyse first, then rewrite, per step: dependency graph (coupled channel groups, per-op rules in
// src/prune/channel-rules.ts) → importance per channel → plan (local/global, caps, roundTo) →
// apply (slice every constant the removal touches) → training-free recovery on calibration data
// (least-squares refit of the layers whose inputs lost channels, BatchNorm re-estimation where no
// refit is possible). With `steps` > 1 the ratio is reached in k steps with recovery in between.
import { Type, type Static } from '@sinclair/typebox';
import { InvalidInputError } from '../errors.js';
import type { Model, Node } from '../onnx/ir.js';
import { encodeModel } from '../onnx/model-io.js';
import { getConstant } from '../onnx/constants.js';
import { dtypeName } from '../onnx/dtypes.js';
import { isWeightFloatType } from '../onnx/float-weights.js';
import { weightLayerOf } from '../onnx/weight-layers.js';
import { definePass, describeNode, skipAlreadyQuantized, statFamily, statsSchema, strategyOption, type ChangeLog, type PassContext } from '../pipeline/pass.js';
import { measureAgainstReference } from '../eval/evaluate.js';
import type { Feeds } from '../runtime/ort.js';
import { analyzeChannels, describeGroup, discoverChannelShapes, type DependencyGraph } from '../prune/dependency-graph.js';
import type { ChannelGroup } from '../prune/layout.js';
import { IMPORTANCES } from '../prune/importance.js';
import { planPruning } from '../prune/plan.js';
import { applyPlan, keptIndices } from '../prune/apply.js';
import { captureTargets, reconstructible, reconstructLayer, reestimateBatchNorm, refitFeatures, type LayerTarget } from '../prune/recovery.js';

const Ratio = (description: string, def?: number) => Type.Number({ minimum: 0, maximum: 0.95, ...(def === undefined ? {} : { default: def }), description });

export const pruneStructuredSchema = Type.Object(
  {
    pass: Type.Literal('prune.structured'),
    ratio: Ratio('Fraction of the prunable channels removed (before rounding to `roundTo`).', 0.3),
    scope: Type.Union([Type.Literal('local'), Type.Literal('global')], {
      default: 'global',
      description: 'local: every group loses `ratio` of its channels; global: the least important channels across all groups (scores normalized per group).',
    }),
    importance: strategyOption(IMPORTANCES, { default: 'l2' }),
    roundTo: Type.Integer({ minimum: 1, default: 8, description: 'Kept channel counts are multiples of this (kernel-friendly widths).' }),
    maxLayerRatio: Ratio('No group loses more than this fraction of its channels.', 0.75),
    caps: Type.Record(Type.String({ minLength: 1 }), Ratio('Largest fraction removed from the group this node produces.'), {
      default: {},
      description: 'Per-layer caps by producer node name.',
    }),
    excludeNodes: Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'Producer node names whose groups keep all channels.' }),
    minChannels: Type.Integer({ minimum: 1, default: 8, description: 'Groups with fewer channels are left alone.' }),
    steps: Type.Integer({ minimum: 1, maximum: 10, default: 1, description: 'Iterative schedule: reach `ratio` in this many steps, with recovery after each.' }),
    recovery: Type.Object(
      {
        leastSquares: Type.Boolean({ default: true, description: 'Refit each layer whose input lost channels so it reproduces the unpruned layer\'s output on calibration data.' }),
        batchNorm: Type.Boolean({ default: true, description: 'Re-estimate BatchNorm statistics after layers that could not be refit.' }),
        ridge: Type.Number({ minimum: 0, default: 1e-3, description: 'Ridge strength (relative to the mean feature energy) pulling the refit toward the current weights.' }),
        maxRows: Type.Integer({ minimum: 16, default: 4096, description: 'Sampled output positions per refit layer.' }),
        rowsPerFeature: Type.Number({
          minimum: 0,
          default: 4,
          description: 'Raise the sampled positions of a layer to this many per refit weight (when the data holds that many), so the fit stays overdetermined.',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    maxCalibrationBatches: Type.Integer({ minimum: 1, default: 16, description: 'Calibration batches used for importance and recovery.' }),
    measureRecovery: Type.Boolean({ default: true, description: 'Report fidelity (and accuracy with labels) before and after recovery.' }),
    allowSynthetic: Type.Boolean({ default: false, description: 'Run activation importance / recovery on synthetic inputs when no data is given.' }),
  },
  { additionalProperties: false },
);

type Config = (typeof pruneStructuredSchema)['static'];

const fidelityText = (when: string) =>
  Type.String({ description: `measureRecovery: ${when}, on the evaluation data: output SQNR (dB), % agreement and, with labels, top-1 (%).` });
const overSteps = (what: string) => Type.Integer({ description: `${what}, summed over the steps (count).` });

export const pruneStructuredStats = statsSchema(
  {
    original: fidelityText('the model before pruning against itself'),
    beforeRecovery: fidelityText('the pruned model before recovery, against the original'),
    afterRecovery: fidelityText('the pruned model after recovery, against the original'),
    pruned: fidelityText('the pruned model (recovery off), against the original'),
    channelsBefore: Type.Integer({ description: 'Channels of the prunable groups before pruning (count).' }),
    channelsAfter: Type.Integer({ description: 'Channels of those groups after pruning (count).' }),
    channelRatio: Type.Number({ description: 'channelsAfter / channelsBefore, 4 decimals.' }),
    groups: Type.Integer({ description: 'Coupled channel groups in the model (count).' }),
    prunableGroups: Type.Integer({ description: 'Groups the plan may prune (count).' }),
    skippedGroups: Type.Integer({ description: 'Groups left whole, each with its reason in `skipped` (count).' }),
    prunedGroups: overSteps('Groups that lost channels'),
    refitLayers: overSteps('Layers refit by least squares'),
    batchNormsReestimated: overSteps('BatchNorms re-estimated after layers that could not be refit'),
  },
  statFamily('refit:', Type.String({ description: 'The layer\'s least-squares refit: relative output error before → after, on its sampled rows × features.' })),
);
type PruneStructuredStats = Static<typeof pruneStructuredStats>;

/** The groups a plan may touch, and why each other group stays whole (for the report). */
function selectGroups(dg: DependencyGraph, config: Config): { prunable: ChannelGroup[]; skipped: { group: ChannelGroup; reason: string }[] } {
  const prunable: ChannelGroup[] = [];
  const skipped: { group: ChannelGroup; reason: string }[] = [];
  for (const g of dg.groups()) {
    const excluded = g.producers.filter((p) => config.excludeNodes.includes(p.name));
    const hasOut = dg.editsOf(g).some((e) => e.role === 'out');
    let reason: string | undefined;
    if (g.blocked.length > 0) reason = g.blocked.join('; ');
    else if (excluded.length > 0) reason = `in excludeNodes (${excluded.map((n) => n.name).join(', ')})`;
    else if (!hasOut) reason = 'no producing weight to slice';
    else if (g.channels < config.minChannels) reason = `only ${g.channels} channels (minChannels ${config.minChannels})`;
    if (reason) skipped.push({ group: g, reason });
    else prunable.push(g);
  }
  return { prunable, skipped };
}

interface Measured {
  summary: string;
  sqnrDb: number;
  agreement?: number;
  top1?: number;
}

async function measure(reference: Uint8Array, model: Model, ctx: PassContext): Promise<Measured> {
  const feeds = await ctx.evaluationInputs();
  const r = await measureAgainstReference(reference, encodeModel(model), feeds, ctx.labels ? { labels: ctx.labels, ...(ctx.labelOutput ? { output: ctx.labelOutput } : {}) } : undefined);
  const parts = [`output SQNR ${r.sqnrDb.toFixed(1)} dB`];
  const m: Measured = { summary: '', sqnrDb: r.sqnrDb };
  if (r.agreement !== undefined) {
    m.agreement = r.agreement;
    parts.push(`${(100 * m.agreement).toFixed(2)}% agree with the original`);
  }
  if (r.top1) {
    m.top1 = r.top1.candidate;
    parts.push(`top-1 ${(100 * m.top1).toFixed(2)}% (original ${(100 * r.top1.reference).toFixed(2)}%)`);
  }
  m.summary = parts.join(', ');
  return m;
}

/** How many channels the step removes, per group, so that the cumulative removal follows the schedule. */
function stepRatio(config: Config, step: number, origTotal: number, curTotal: number): number {
  const targetRemoved = config.ratio * origTotal * (step / config.steps);
  const alreadyRemoved = origTotal - curTotal;
  return Math.max(0, Math.min(0.95, (targetRemoved - alreadyRemoved) / Math.max(1, curTotal)));
}

export const pruneStructuredPass = definePass({
  name: 'prune.structured',
  summary: 'structured channel pruning through a dependency graph, with least-squares / BatchNorm recovery on calibration data',
  schema: pruneStructuredSchema,
  stats: pruneStructuredStats,
  calibration: (config) => {
    const needsData = config.recovery.leastSquares || config.recovery.batchNorm || IMPORTANCES[config.importance].needsData;
    return needsData ? (config.allowSynthetic ? 'used' : 'required') : undefined;
  },
  async run(input, config, ctx) {
    const log = ctx.changes;
    const recover = config.recovery.leastSquares || config.recovery.batchNorm;
    const importance = IMPORTANCES[config.importance];
    const need = pruneStructuredPass.calibration!(config);
    const needsData = need !== undefined;
    if (ctx.samplesAreSynthetic && need === 'required') {
      throw new InvalidInputError(
        'prune.structured needs calibration data for activation importance and recovery (job input `calibration`, CLI --calibration or --data); set allowSynthetic: true, or turn recovery off and use a weight-based importance',
      );
    }
    if (needsData && ctx.samplesAreSynthetic) log.warn('importance/recovery ran on synthetic inputs: recovery fits random data, not the model\'s real input distribution');
    const samples = needsData ? (await ctx.sampleInputs()).slice(0, config.maxCalibrationBatches) : [];
    skipAlreadyQuantized(input, log); // their channels stay: DequantizeLinear and the QLinear ops have no channel rule
    const reference = encodeModel(input);
    // every step analyses what the step before pruned: analysis and rewrite alternate on one copy
    const { model } = input.clone();

    // The first analysis fixes what "original" means: channel counts and, per producer, which
    // original channel each current output channel is (composed over steps).
    const shapes = await discoverChannelShapes(model, samples[0]);
    const dg0 = analyzeChannels(model, shapes);
    const first = selectGroups(dg0, config);
    // Caps hold against a group's ORIGINAL width over all steps: translated into a fraction of its current width.
    const caps = (dg: DependencyGraph) => {
      const m = new Map<ChannelGroup, number>();
      for (const g of dg.groups()) {
        const orig = Math.max(g.channels, ...g.producers.map((n) => origChannels.get(n) ?? 0));
        const cap = Math.min(config.maxLayerRatio, ...g.producers.map((n) => config.caps[n.name] ?? 1));
        const minKeep = Math.ceil(orig * (1 - cap) - 1e-9);
        m.set(g, Math.max(0, (g.channels - minKeep) / g.channels));
      }
      return m;
    };
    const knownProducers = new Set(dg0.groups().flatMap((g) => g.producers.map((p) => p.name)));
    for (const name of [...Object.keys(config.caps), ...config.excludeNodes]) if (!knownProducers.has(name)) log.warn(`no channel-producing node named '${name}'`);
    const origTotal = first.prunable.reduce((s, g) => s + g.channels, 0);
    const origChannels = new Map<Node, number>();
    for (const g of first.prunable) for (const p of g.producers) origChannels.set(p, g.channels);
    const originalIndex = new Map<Node, number[]>();

    // Targets for the refit: the unpruned layers' outputs at sampled positions, captured once.
    const consumers = new Set<Node>();
    for (const e of dg0.edits) if (e.role === 'in' && e.layout.segments.some((s) => first.prunable.includes(s.group.find()))) consumers.add(e.node);
    let targets = new Map<Node, LayerTarget>();
    if (config.recovery.leastSquares && consumers.size > 0) {
      const refit = [...consumers].filter(reconstructible);
      ctx.progress(0.02, `capturing ${refit.length} layer outputs for recovery`);
      targets = await captureTargets(model, samples, refit, (n) => Math.max(config.recovery.maxRows, Math.ceil(config.recovery.rowsPerFeature * refitFeatures(n))));
    }
    if (config.measureRecovery) log.stat('original', (await measure(reference, model, ctx)).summary);

    const affected = new Set<Node>();
    for (let step = 1; step <= config.steps; step++) {
      const dg = step === 1 ? dg0 : analyzeChannels(model, shapes);
      const { prunable, skipped } = step === 1 ? first : selectGroups(dg, config);
      const curTotal = prunable.reduce((s, g) => s + g.channels, 0);
      const ratio = stepRatio(config, step, origTotal, curTotal);
      ctx.progress((step - 1) / config.steps + 0.05 / config.steps, `step ${step}/${config.steps}: importance of ${prunable.length} groups`);
      const scores = await importance.score(dg, prunable, async () => samples);
      const plan = planPruning(prunable, scores, { ratio, scope: config.scope, roundTo: config.roundTo, maxGroupRatio: 1, caps: caps(dg) });
      const kept = new Map<ChannelGroup, number[]>();
      for (const p of plan) if (p.keep.length < p.group.channels) kept.set(p.group, p.keep);
      for (const e of dg.edits) if (e.role === 'in' && keptIndices(e.layout, kept)) affected.add(e.node);
      for (const [g, keep] of kept) for (const p of g.producers) originalIndex.set(p, keep.map((i) => originalIndex.get(p)?.[i] ?? i));
      if (step === config.steps || kept.size > 0) reportStep(log, step, config.steps, prunable, skipped, kept, step === config.steps);
      applyPlan(dg, kept);
      model.graph.toposort(false);
      if (recover && affected.size > 0) {
        if (config.measureRecovery && step === config.steps) log.stat('beforeRecovery', (await measure(reference, model, ctx)).summary);
        await recoverLayers(model, samples, affected, targets, originalIndex, config, log, ctx, step);
      }
    }
    if (config.measureRecovery) log.stat(recover ? 'afterRecovery' : 'pruned', (await measure(reference, model, ctx)).summary);
    const dgEnd = analyzeChannels(model, shapes);
    const finalTotal = selectGroups(dgEnd, config).prunable.reduce((s, g) => s + g.channels, 0);
    log.stat('channelsBefore', origTotal);
    log.stat('channelsAfter', finalTotal);
    log.stat('channelRatio', Number((finalTotal / Math.max(1, origTotal)).toFixed(4)));
    return model;
  },
});

function reportStep(log: ChangeLog<PruneStructuredStats>, step: number, steps: number, prunable: ChannelGroup[], skipped: { group: ChannelGroup; reason: string }[], kept: Map<ChannelGroup, number[]>, last: boolean): void {
  const tag = steps > 1 ? `step ${step}: ` : '';
  for (const g of prunable) {
    const keep = kept.get(g);
    const [lead, ...rest] = g.producers;
    const coupled = rest.length ? ` (coupled with ${rest.map(describeNode).join(', ')})` : '';
    if (keep) log.rewrite(lead!, `${tag}group #${g.id}: ${g.channels} → ${keep.length} channels${coupled}`);
    else if (last) log.skip(lead!, `${tag}group #${g.id}: kept all ${g.channels} channels (least-important channels below the rounding/cap)${coupled}`);
  }
  if (step === 1) {
    for (const { group, reason } of skipped) log.skip(group.producers[0]!, `group #${group.id} (${group.channels} channels; ${describeGroup(group)}) not pruned: ${reason}`);
    log.stat('groups', prunable.length + skipped.length);
    log.stat('prunableGroups', prunable.length);
    log.stat('skippedGroups', skipped.length);
  }
  log.count('prunedGroups', kept.size);
}

async function recoverLayers(
  model: Model,
  samples: Feeds[],
  affected: Set<Node>,
  targets: Map<Node, LayerTarget>,
  originalIndex: Map<Node, number[]>,
  config: Config,
  log: ChangeLog<PruneStructuredStats>,
  ctx: PassContext,
  step: number,
): Promise<void> {
  // graph order, so each refit sees the already recovered layers upstream
  const order = model.graph.nodes.filter((n) => affected.has(n));
  let done = 0;
  for (const node of order) {
    ctx.progress(Math.min(0.99, (step - 1 + (0.2 + (0.8 * done++) / order.length)) / config.steps), `recovery: ${describeNode(node)}`);
    const target = targets.get(node);
    if (config.recovery.leastSquares && target && reconstructible(node)) {
      const r = await reconstructLayer(model, samples, target, originalIndex.get(node) ?? null, config.recovery.ridge);
      // fewer rows than features: the refit can match the calibration data exactly and generalize poorly
      if (step === config.steps && r.rows < 2 * r.features) {
        log.warn(`recovery of ${describeNode(node)} fit ${r.features} weights per output on only ${r.rows} sampled positions: it may overfit the calibration data; give more calibration data`);
      }
      if (step === config.steps) log.stat(`refit:${describeNode(node)}`, `relative error ${r.errorBefore.toFixed(4)} → ${r.errorAfter.toFixed(4)} (${r.rows} rows × ${r.features} features)`);
      log.count('refitLayers');
      continue;
    }
    if (!config.recovery.batchNorm) continue;
    // no refit: re-estimate the BatchNorm that normalizes this layer's output, if there is one
    const out = node.outputs[0];
    const bn = out?.consumers.length === 1 && out.consumers[0]!.opType === 'BatchNormalization' ? out.consumers[0]! : undefined;
    if (bn && (await reestimateBatchNorm(model, samples, bn))) {
      log.count('batchNormsReestimated');
    } else if (step === config.steps) {
      const w = getConstant(weightLayerOf(node)?.weight);
      const why = w && !isWeightFloatType(w.dataType) ? `its weights are ${dtypeName(w.dataType)} (recovery works on float weights: prune before quantization)` : 'it can neither be refit nor has a BatchNorm to re-estimate';
      log.skip(node, `recovery: input channels were removed but ${why}`);
    }
  }
}
