// factorize.tucker: Tucker-2 of Conv 1D/2D/3D (groups = 1): 1×1 conv Cin→R_in, the k×k core conv
// R_in→R_out with the original stride/pads/dilation, 1×1 conv R_out→Cout with the bias.
import { Type } from '@sinclair/typebox';
import { factorizeSchema, factorizeStats, runFactorization } from '../factorize/driver.js';
import { RANK_SELECTORS } from '../factorize/rank.js';
import { definePass } from '../pipeline/pass.js';

export const factorizeTuckerSchema = factorizeSchema('factorize.tucker', { rank: 'vbmf', opTypes: ['Conv'] }, {
  iterations: Type.Integer({ minimum: 0, default: 10, description: 'HOOI iterations after the HOSVD start (0 = plain HOSVD).' }),
});

export const factorizeTuckerPass = definePass({
  name: 'factorize.tucker',
  summary: `Tucker-2 decomposition of convolutions: 1×1 → k×k core → 1×1, ranks per layer (${Object.keys(RANK_SELECTORS).join(', ')})`,
  schema: factorizeTuckerSchema,
  stats: factorizeStats,
  run: (model, config, ctx) => runFactorization('tucker', model, config, ctx),
});
