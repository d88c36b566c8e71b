// The one table of passes, by the name recipes use, and what follows from it: each pass's statistics by name.
import { Type } from '@sinclair/typebox';
import type { PassDefinition, StatsOf } from '../pipeline/pass.js';
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

/** Every pass, in the order `modelpress passes` lists them. */
const ALL_PASSES = [
  convertFp16Pass,
  quantizeDynamicPass,
  quantizeStaticPass,
  quantizeWeightsPass,
  factorizeSvdPass,
  factorizeTuckerPass,
  factorizeCpPass,
  pruneMagnitudePass,
  pruneNMPass,
  pruneStructuredPass,
] as const;

/**
 * The passes by the name recipes use. Without a prototype: a recipe's `"pass": "constructor"` (or
 * `toString`, `__proto__`) is an unknown pass, not Object.prototype's member.
 */
export const PASSES: Record<string, PassDefinition> = Object.assign(Object.create(null) as Record<string, PassDefinition>, Object.fromEntries(ALL_PASSES.map((p) => [p.name, p as unknown as PassDefinition])));

/** Each pass's statistics by its name: what `changes.stats` of a report step holds (`PipelineReport`). */
export type PassStats = { [P in (typeof ALL_PASSES)[number] as P['name']]: StatsOf<P> };

/** The same as a schema, for reports read back: a step's `{ pass, stats }`, one member per pass. */
export const STEP_STATS_SCHEMA = Type.Union(ALL_PASSES.map((p) => Type.Object({ pass: Type.Literal(p.name), stats: p.stats })));
