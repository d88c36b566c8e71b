// factorize.cp: CP decomposition of Conv 1D/2D/3D (groups = 1) into the separable form: pointwise
// Cin→R, one depthwise conv per spatial axis (stride/pads/dilation of that axis), pointwise R→Cout.
import { Type } from '@sinclair/typebox';
import { factorizeSchema, factorizeStats, runFactorization } from '../factorize/driver.js';
import { definePass } from '../pipeline/pass.js';

export const factorizeCpSchema = factorizeSchema('factorize.cp', { rank: 0.25, opTypes: ['Conv'] }, {
  iterations: Type.Integer({ minimum: 1, default: 100, description: 'Maximum CP-ALS sweeps.' }),
  tolerance: Type.Number({ exclusiveMinimum: 0, default: 1e-6, description: 'Stop when the relative fit change is below this.' }),
});

export const factorizeCpPass = definePass({
  name: 'factorize.cp',
  summary: 'CP decomposition of convolutions: pointwise → depthwise per spatial axis → pointwise',
  schema: factorizeCpSchema,
  stats: factorizeStats,
  calibration: (config) => (config.refine ? 'used' : undefined),
  run: (model, config, ctx) => runFactorization('cp', model, config, ctx),
});
