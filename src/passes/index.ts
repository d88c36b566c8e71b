// The one table of passes, by the name recipes use.
import type { PassDefinition } from '../pipeline/pass.js';
import { convertFp16Pass } from './convert-fp16.js';
import { factorizeCpPass } from './factorize-cp.js';
import { factorizeSvdPass } from './factorize-svd.js';
import { factorizeTuckerPass } from './factorize-tucker.js';
import { pruneMagnitudePass } from './prune-magnitude.js';
import { pruneNMPass } from './prune-nm.js';
import { pruneStructuredPass } from './prune-structured.js';
import { quantizeDynamicPass } from './quantize-dynamic.js';
import { quantizeStaticPass } from './quantize-static.js';
import { quantizeWeightsPass } from './quantize-weights.js';

export const PASSES: Record<string, PassDefinition> = {
  [convertFp16Pass.name]: convertFp16Pass as unknown as PassDefinition,
  [quantizeDynamicPass.name]: quantizeDynamicPass as unknown as PassDefinition,
  [quantizeStaticPass.name]: quantizeStaticPass as unknown as PassDefinition,
  [quantizeWeightsPass.name]: quantizeWeightsPass as unknown as PassDefinition,
  [factorizeSvdPass.name]: factorizeSvdPass as unknown as PassDefinition,
  [factorizeTuckerPass.name]: factorizeTuckerPass as unknown as PassDefinition,
  [factorizeCpPass.name]: factorizeCpPass as unknown as PassDefinition,
  [pruneMagnitudePass.name]: pruneMagnitudePass as unknown as PassDefinition,
  [pruneNMPass.name]: pruneNMPass as unknown as PassDefinition,
  [pruneStructuredPass.name]: pruneStructuredPass as unknown as PassDefinition,
};
