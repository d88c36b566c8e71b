// The one driver of the three factorization passes: analyse (which layers, which ranks, does it save
// parameters, is it faster), then rewrite, then refine on calibration data.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { InvalidInputError } from '../errors.js';
import type { Model, Value } from '../onnx/ir.js';
import { skipAlreadyQuantized, statsSchema, type PassContext } from '../pipeline/pass.js';
import { discoverShapes, type DiscoveredValue } from '../runtime/capture.js';
import { rowsOf, type Feeds } from '../runtime/ort.js';
import { emitChain } from './chain.js';
import { cpPlan, svdPlan, tuckerPlan, type ChainPlan } from './decompose.js';
import { LAYER_RULES, type FactorMethod, type Layer } from './layers.js';
import { describeRank, RankSchema, type RankSpec } from './rank.js';
import { refineChains, type RefitTarget } from './refine.js';
import { layerSpeed } from './speed.js';

/** Options every factorization pass shares; `extra` adds the method's own. */
export function factorizeSchema<N extends string>(name: N, defaults: { rank: RankSpec; opTypes: string[] }, extra: Record<string, TSchema> = {}) {
  return Type.Object(
    {
      pass: Type.Literal(name),
      rank: { ...RankSchema, default: defaults.rank },
      roundTo: Type.Integer({ minimum: 1, default: 8, description: 'Round ranks to a multiple of this (onnxruntime kernels prefer multiples of 8); 1 = no rounding.' }),
      opTypes: Type.Array(Type.String({ minLength: 1 }), { default: defaults.opTypes, description: 'Op types to factorize.' }),
      include: Type.String({ default: '', description: 'Regular expression: only nodes whose name matches (empty = all).' }),
      excludeNodes: Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'Node names left alone.' }),
      minParams: Type.Integer({ minimum: 0, default: 4096, description: 'Leave layers with fewer weights alone.' }),
      requireSpeedup: Type.Boolean({ default: true, description: 'Benchmark each factorized layer against the original in onnxruntime and keep the original where it is not faster.' }),
      speedBatch: Type.Integer({ minimum: 1, default: 8, description: 'Batch size of the per-layer speed check.' }),
      speedRounds: Type.Integer({ minimum: 2, default: 4, description: 'A/B rounds of the per-layer speed check.' }),
      maxLatencyRatio: Type.Number({ exclusiveMinimum: 0, default: 1, description: 'Keep a factorized layer only when its latency ratio (median of rounds) is below this.' }),
      refine: Type.Boolean({ default: true, description: 'Refit the last factor of each chain by least squares on calibration data (Tucker: the k×k core with it, as the best rank-R map from its input patches).' }),
      refineSamples: Type.Integer({ minimum: 1, default: 256, description: 'Calibration items used by the refit.' }),
      ...extra,
    },
    { additionalProperties: false },
  );
}

/** The statistics every factorization pass reports. */
export const factorizeStats = statsSchema({
  rank: Type.String({ description: 'The rank rule of the config, in words.' }),
  layersKeptNotFaster: Type.Integer({ description: 'requireSpeedup: layers left as they were because their factorized form was not faster (count).' }),
  layersFactorized: Type.Integer({ description: 'Layers replaced by their factorized chain (count).' }),
  factorizedWeightsBefore: Type.Integer({ description: 'Weights of those layers before (count of elements).' }),
  factorizedWeightsAfter: Type.Integer({ description: 'Weights of their factorized chains (count of elements).' }),
  factorizedWeightsRatio: Type.Number({ description: 'factorizedWeightsAfter / factorizedWeightsBefore, 4 decimals.' }),
  layersRefitted: Type.Integer({ description: 'refine: chains whose last factor was refit by least squares (count).' }),
  layersRefitJointly: Type.Integer({ description: 'refine: of those, Tucker chains whose core was refit together with the last factor (reduced-rank regression on the core\'s input patches) (count).' }),
  refineSqnrBeforeDb: Type.Number({ description: 'refine: output SQNR against the original on calibration data before the refit, dB (2 decimals).' }),
  refineSqnrAfterDb: Type.Number({ description: 'refine: output SQNR against the original on calibration data after the refit, dB (2 decimals).' }),
});
export type FactorizeStats = Static<typeof factorizeStats>;

export interface FactorizeConfig {
  rank: RankSpec;
  roundTo: number;
  opTypes: string[];
  include: string;
  excludeNodes: string[];
  minParams: number;
  requireSpeedup: boolean;
  speedBatch: number;
  speedRounds: number;
  maxLatencyRatio: number;
  refine: boolean;
  refineSamples: number;
  iterations?: number;
  tolerance?: number;
}

function regex(source: string, key: string): RegExp | null {
  if (!source) return null;
  try {
    return new RegExp(source);
  } catch (err) {
    throw new InvalidInputError(`${key}: invalid regular expression '${source}': ${(err as Error).message}`);
  }
}

function planFor(method: FactorMethod, layer: Layer, config: FactorizeConfig): ChainPlan | string {
  const rankOpts = { rank: config.rank, roundTo: config.roundTo };
  if (method === 'tucker') return tuckerPlan(layer, { ...rankOpts, iterations: config.iterations ?? 10 });
  if (method === 'cp') return cpPlan(layer, { ...rankOpts, iterations: config.iterations ?? 100, tolerance: config.tolerance ?? 1e-6 });
  return svdPlan(layer, rankOpts);
}

/** The first calibration batches covering `items` items. */
function takeItems(batches: Feeds[], items: number): Feeds[] {
  const out: Feeds[] = [];
  let n = 0;
  for (const b of batches) {
    if (n >= items) break;
    out.push(b);
    n += rowsOf(b);
  }
  return out;
}

export async function runFactorization(method: FactorMethod, input: Model, config: FactorizeConfig, ctx: PassContext<FactorizeStats>): Promise<Model> {
  const log = ctx.changes;
  const include = regex(config.include, 'include');
  const exclude = new Set(config.excludeNodes);
  const opTypes = new Set(config.opTypes);
  for (const op of opTypes) {
    if (!LAYER_RULES[op]?.methods.includes(method)) throw new InvalidInputError(`opTypes: factorize.${method} does not apply to ${op} (supported: ${Object.keys(LAYER_RULES).filter((k) => LAYER_RULES[k]!.methods.includes(method)).join(', ')})`);
  }
  log.stat('rank', describeRank(config.rank));

  // ---- analysis 1: candidate layers and their factorized chains
  const plans: ChainPlan[] = [];
  const quantized = skipAlreadyQuantized(input, log);
  const candidates = input.graph.nodes.filter((n) => opTypes.has(n.opType) && n.domain === '' && !quantized.has(n));
  for (const g of input.allGraphs()) {
    if (g === input.graph) continue;
    for (const n of g.nodes) if (opTypes.has(n.opType)) log.skip(n, 'inside a subgraph (only main-graph layers are factorized)');
  }
  for (const [i, node] of candidates.entries()) {
    ctx.progress((0.4 * i) / Math.max(1, candidates.length), `decomposing ${node.name || node.opType}`);
    if (include && !include.test(node.name)) continue;
    if (exclude.has(node.name)) continue;
    const layer = LAYER_RULES[node.opType]!.match(node, method);
    if (typeof layer === 'string') {
      log.skip(node, layer);
      continue;
    }
    if (layer.weight.length < config.minParams) {
      log.skip(node, `${layer.weight.length} weights < minParams ${config.minParams}`);
      continue;
    }
    const plan = planFor(method, layer, config);
    if (typeof plan === 'string') log.skip(node, plan);
    else plans.push(plan);
  }

  // ---- analysis 2: per-layer speed check in onnxruntime
  let kept = plans;
  if (config.requireSpeedup && plans.length > 0) {
    const samples = await ctx.sampleInputs();
    const shapes = samples[0] ? await discoverShapes(input, samples[0]) : new Map<Value, DiscoveredValue>();
    const opset = input.opset() ?? 13;
    kept = [];
    for (const [i, plan] of plans.entries()) {
      ctx.progress(0.4 + (0.4 * i) / plans.length, `speed check ${plan.layer.node.name}`);
      const dims = shapes.get(plan.layer.input)?.dims;
      if (!dims || dims.length === 0) {
        log.skip(plan.layer.node, 'input shape unknown on the sample inputs: speed cannot be checked');
        continue;
      }
      const inputDims = [config.speedBatch, ...dims.slice(1)];
      const speed = await layerSpeed(plan, opset, inputDims, { rounds: config.speedRounds, runs: 4 * config.speedRounds, ...(ctx.signal ? { signal: ctx.signal } : {}) });
      (plan as ChainPlan & { latencyRatio?: number }).latencyRatio = speed.ratio;
      if (speed.ratio < config.maxLatencyRatio) kept.push(plan);
      else {
        log.skip(plan.layer.node, `factorized form not faster: ${speed.ratio.toFixed(2)}× the original's latency at [${inputDims.join(',')}] (rank ${plan.ranks.join('×')})`);
        log.count('layersKeptNotFaster');
      }
    }
  }

  // ---- rewrite a copy: the plans reach its layers through the clone's maps
  const original = config.refine && kept.length > 0 ? input : null;
  const { model, nodes: nodeOf, values: valueOf } = input.clone();
  const targets: RefitTarget[] = [];
  let before = 0;
  let after = 0;
  for (const plan of kept) {
    const node = plan.layer.node;
    const detail = `${describeLayer(plan)}; weights ${plan.paramsBefore} → ${plan.paramsAfter} (${(plan.paramsAfter / plan.paramsBefore).toFixed(3)}×), weight error ${(100 * plan.weightError).toFixed(1)}%`
      + ((plan as ChainPlan & { latencyRatio?: number }).latencyRatio !== undefined ? `, latency ${(plan as ChainPlan & { latencyRatio?: number }).latencyRatio!.toFixed(2)}×` : '');
    log.rewrite(node, detail);
    const output = valueOf.get(plan.layer.output)!;
    const nodes = emitChain(model.graph, { node: nodeOf.get(node)!, input: valueOf.get(plan.layer.input)!, output, dtype: plan.layer.dtype }, plan.steps);
    nodes.forEach((n, i) => log.add(n, plan.steps[i]!.role));
    before += plan.paramsBefore;
    after += plan.paramsAfter;
    const last = plan.steps[plan.steps.length - 1]!;
    const core = plan.steps.findIndex((st) => st.refitWithLast);
    if (last.refitAxis !== undefined) targets.push({ node: nodes[nodes.length - 1]!, axis: last.refitAxis, output, reference: plan.layer.output, ...(core >= 0 ? { core: nodes[core]! } : {}) });
  }
  model.graph.cleanup();
  log.stat('layersFactorized', kept.length);
  log.stat('factorizedWeightsBefore', before);
  log.stat('factorizedWeightsAfter', after);
  if (before > 0) log.stat('factorizedWeightsRatio', Number((after / before).toFixed(4)));

  // ---- refinement on calibration data
  if (original && targets.length > 0) {
    ctx.progress(0.85, 'refitting factors on calibration data');
    if (ctx.samplesAreSynthetic) log.warn('factor refinement ran on synthetic inputs; give calibration data (--calibration) to make it meaningful');
    const batches = takeItems(await ctx.sampleInputs(), config.refineSamples);
    const r = await refineChains(model, original, targets, batches, ctx.signal);
    log.stat('layersRefitted', r.refitted);
    log.stat('layersRefitJointly', r.jointly);
    log.stat('refineSqnrBeforeDb', Number(r.before.sqnrDb.toFixed(2)));
    log.stat('refineSqnrAfterDb', Number(r.after.sqnrDb.toFixed(2)));
    if (r.after.sqnrDb < r.before.sqnrDb) log.warn(`refinement lowered output SQNR on calibration data (${r.before.sqnrDb.toFixed(1)} → ${r.after.sqnrDb.toFixed(1)} dB)`);
  }
  if (kept.length === 0) log.warn(`factorize.${method}: no layer was factorized`);
  ctx.progress(1);
  return model;
}

function describeLayer(plan: ChainPlan): string {
  const d = plan.layer.weightDims.join('×');
  return `${plan.layer.op} [${d}] → ${plan.steps.map((s) => `${s.op}[${s.weightDims.join('×')}]`).join(' → ')}, rank ${plan.ranks.join('×')}`;
}

