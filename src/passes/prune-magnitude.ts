// prune.magnitude: unstructured magnitude pruning — zero exactly the smallest-|w| entries of the
// constant weights of Conv/ConvTranspose/Gemm/MatMul, per layer (local) or with one threshold (global).
import { Type } from '@sinclair/typebox';
import { definePass, describeNode } from '../pipeline/pass.js';
import { pruneByMagnitude } from '../prune/sparsity.js';
import { DEFAULT_PRUNE_OPS, DENSE_KERNEL_WARNING, gzipSize, logGzip, pct, selectWeights, unstructuredPruneStats, writeWeight, type PrunableWeight } from '../prune/weights.js';

const Sparsity = (description: string, def?: number) =>
  Type.Number({ minimum: 0, maximum: 1, ...(def === undefined ? {} : { default: def }), description });

export const pruneMagnitudeSchema = Type.Object(
  {
    pass: Type.Literal('prune.magnitude'),
    sparsity: Sparsity('Fraction of the selected weights set to zero (exact count per pool).', 0.5),
    scope: Type.Union([Type.Literal('local'), Type.Literal('global')], {
      default: 'local',
      description: 'local: each layer loses `sparsity` of its weights; global: one |w| threshold over all selected weights.',
    }),
    opTypes: Type.Array(Type.Union(DEFAULT_PRUNE_OPS.map((op) => Type.Literal(op))), { default: DEFAULT_PRUNE_OPS, uniqueItems: true }),
    overrides: Type.Record(Type.String({ minLength: 1 }), Sparsity('Sparsity for this node (its own pool, also in global scope).'), {
      default: {},
      description: 'Per-node sparsity by node name.',
    }),
    excludeNodes: Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'Node names left untouched.' }),
    minElements: Type.Integer({ minimum: 0, default: 1024, description: 'Weights with fewer elements are left untouched.' }),
  },
  { additionalProperties: false },
);

export const pruneMagnitudePass = definePass({
  name: 'prune.magnitude',
  summary: 'unstructured magnitude pruning of Conv/Gemm/MatMul weights (zeros; no speed-up on dense kernels)',
  schema: pruneMagnitudeSchema,
  stats: unstructuredPruneStats,
  run(input, config, ctx) {
    const log = ctx.changes;
    const gzBefore = gzipSize(input);
    const weights = selectWeights(input, config, log);
    const byName = new Map(weights.map((w) => [w.node.name, w]));
    for (const name of Object.keys(config.overrides)) if (!byName.has(name)) log.warn(`overrides: no selected node named '${name}'`);
    const overridden = weights.filter((w) => w.node.name && config.overrides[w.node.name] !== undefined);
    const rest = weights.filter((w) => !overridden.includes(w));
    // local: every layer is its own pool; global: the non-overridden layers share one pool
    const pools: { weights: PrunableWeight[]; sparsity: number }[] = overridden.map((w) => ({ weights: [w], sparsity: config.overrides[w.node.name]! }));
    if (config.scope === 'global') pools.push({ weights: rest, sparsity: config.sparsity });
    else for (const w of rest) pools.push({ weights: [w], sparsity: config.sparsity });
    let total = 0;
    let zeros = 0;
    for (const pool of pools) {
      if (pool.weights.length === 0) continue;
      pruneByMagnitude(pool.weights.map((w) => w.data), pool.sparsity);
    }
    // the pruned arrays go into a copy, whose weights the clone's map finds
    const { model, values } = input.clone();
    for (const w of weights) {
      let z = 0;
      for (const x of w.data) if (x === 0) z++;
      total += w.data.length;
      zeros += z;
      writeWeight(w, values.get(w.value)!);
      const s = z / w.data.length;
      log.rewrite(w.node, `${pct(s)} zeros (${z}/${w.data.length}; ${pct(w.zerosBefore / w.data.length)} before)`);
      log.stat(`sparsity:${describeNode(w.node)}`, Number(s.toFixed(6)));
    }
    log.stat('prunedLayers', weights.length);
    log.stat('prunedWeights', total);
    log.stat('zeroWeights', zeros);
    log.stat('sparsity', total ? Number((zeros / total).toFixed(6)) : 0);
    logGzip(log, gzBefore, model);
    if (weights.length > 0) log.warn(DENSE_KERNEL_WARNING);
    return model;
  },
});
