// prune.nm: N:M semi-structured sparsity — in every run of M consecutive weights along the input-channel
// axis keep the N largest |w|. The pattern sparse tensor cores run fast; onnxruntime CPU does not.
import { Type } from '@sinclair/typebox';
import { definePass, describeNode } from '../pipeline/pass.js';
import { axisView, pruneNM } from '../prune/sparsity.js';
import { DEFAULT_PRUNE_OPS, DENSE_KERNEL_WARNING, gzipSize, logGzip, pct, selectWeights, unstructuredPruneStats, writeWeight } from '../prune/weights.js';

export const pruneNMSchema = Type.Object(
  {
    pass: Type.Literal('prune.nm'),
    n: Type.Integer({ minimum: 1, default: 2, description: 'Weights kept in each group.' }),
    m: Type.Integer({ minimum: 2, default: 4, description: 'Group length along the input-channel axis.' }),
    opTypes: Type.Array(Type.Union(DEFAULT_PRUNE_OPS.map((op) => Type.Literal(op))), { default: DEFAULT_PRUNE_OPS, uniqueItems: true }),
    excludeNodes: Type.Array(Type.String({ minLength: 1 }), { default: [], description: 'Node names left untouched.' }),
    minElements: Type.Integer({ minimum: 0, default: 1024, description: 'Weights with fewer elements are left untouched.' }),
  },
  { additionalProperties: false },
);

export const pruneNMPass = definePass({
  name: 'prune.nm',
  summary: 'N:M semi-structured sparsity along input channels (default 2:4; zeros, no speed-up on CPU)',
  schema: pruneNMSchema,
  stats: unstructuredPruneStats,
  run(input, config, ctx) {
    const log = ctx.changes;
    const { n, m } = config;
    // the pruned arrays go into a copy, whose weights the clone's map finds
    const { model, values } = input.clone();
    if (n >= m) {
      log.warn(`n (${n}) >= m (${m}): nothing to prune`);
      return model;
    }
    const gzBefore = gzipSize(input);
    let total = 0;
    let zeros = 0;
    let layers = 0;
    for (const w of selectWeights(input, config, log)) {
      if (w.inputAxis === null) {
        log.skip(w.node, 'weight has no input-channel axis');
        continue;
      }
      const view = axisView(w.dims, w.inputAxis);
      if (view.len % m !== 0) {
        log.skip(w.node, `input dimension ${view.len} (axis ${w.inputAxis}) is not a multiple of ${m}`);
        continue;
      }
      pruneNM(w.data, view, n, m);
      writeWeight(w, values.get(w.value)!);
      let z = 0;
      for (const x of w.data) if (x === 0) z++;
      layers++;
      total += w.data.length;
      zeros += z;
      const s = z / w.data.length;
      log.rewrite(w.node, `${n}:${m} along axis ${w.inputAxis}: ${pct(s)} zeros (${z}/${w.data.length})`);
      log.stat(`sparsity:${describeNode(w.node)}`, Number(s.toFixed(6)));
    }
    log.stat('prunedLayers', layers);
    log.stat('prunedWeights', total);
    log.stat('zeroWeights', zeros);
    log.stat('sparsity', total ? Number((zeros / total).toFixed(6)) : 0);
    logGzip(log, gzBefore, model);
    if (layers > 0) log.warn(DENSE_KERNEL_WARNING);
    return model;
  },
});
