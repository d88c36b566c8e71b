// factorize.svd: a constant weight W (MatMul, Gemm, 1×1 Conv) → two layers U√Σ and √ΣVᵀ, bias kept
// on the second. Only where the rank saves parameters.
import { factorizeSchema, factorizeStats, runFactorization } from '../factorize/driver.js';
import { definePass } from '../pipeline/pass.js';

export const factorizeSvdSchema = factorizeSchema('factorize.svd', { rank: 0.25, opTypes: ['MatMul', 'Gemm', 'Conv'] });

export const factorizeSvdPass = definePass({
  name: 'factorize.svd',
  summary: 'Truncated SVD of MatMul/Gemm/1×1-Conv weights into two thinner layers',
  schema: factorizeSvdSchema,
  stats: factorizeStats,
  calibration: (config) => (config.refine ? 'used' : undefined),
  run: (model, config, ctx) => runFactorization('svd', model, config, ctx),
});
