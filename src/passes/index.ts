// The one table of passes, by the name recipes use.
import type { PassDefinition } from '../pipeline/pass.js';
import { convertFp16Pass } from './convert-fp16.js';
import { pruneMagnitudePass } from './prune-magnitude.js';
import { pruneNMPass } from './prune-nm.js';

export const PASSES: Record<string, PassDefinition> = {
  [convertFp16Pass.name]: convertFp16Pass as unknown as PassDefinition,
  [pruneMagnitudePass.name]: pruneMagnitudePass as unknown as PassDefinition,
  [pruneNMPass.name]: pruneNMPass as unknown as PassDefinition,
};

/** Names reserved for the pass families that are on the way; a recipe naming one gets a clear error. */
export const PLANNED_PASSES = [
  'quantize.dynamic',
  'quantize.static',
  'quantize.weights',
  'prune.structured',
  'factorize.svd',
  'factorize.tucker',
  'factorize.cp',
];
