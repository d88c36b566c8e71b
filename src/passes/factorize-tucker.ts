// factorize.tucker: Tucker-2 of Conv 1D/2D/3D (groups = 1): 1×1 conv Cin→R_in, the k×k core conv
// R_in→R_out with the original stride/pads/dilation, 1×1 conv R_out→Cout with the bias.
import { Type } from '@sinclair/typebox';
import { factorizeSchema, factorizeStats, runFactorization } from '../factorize/driver.js';
import { RANK_SELECTORS } from '../factorize/rank.js';
import { HOOI_TOLERANCE } from '../linalg/index.js';
import { definePass } from '../pipeline/pass.js';

export const factorizeTuckerSchema = factorizeSchema('factorize.tucker', { rank: 'vbmf', opTypes: ['Conv'] }, {
  iterations: Type.Integer({ minimum: 0, default: 10, description: `Most HOOI sweeps after the HOSVD start; a sweep that lowers the weight error by less than ${HOOI_TOLERANCE} of itself is the last (0 = plain HOSVD).` }),
});

export const factorizeTuckerPass = definePass({
  name: 'factorize.tucker',
  summary: `Tucker-2 decomposition of convolutions: 1×1 → k×k core → 1×1, ranks per layer (${Object.keys(RANK_SELECTORS).join(', ')})`,
  schema: factorizeTuckerSchema,
  stats: factorizeStats,
  calibration: (config) => (config.refine ? 'used' : undefined),
  run: (model, config, ctx) => runFactorization('tucker', model, config, ctx),
});
