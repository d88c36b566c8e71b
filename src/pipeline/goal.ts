// A goal instead of (or after) fixed steps: what the user wants of the result, and how long
// modelpress may search for the recipe that gets it. The schemas the CLI and the API validate with;
// the search itself is src/search/.
import { Type, type Static } from '@sinclair/typebox';
import { METRIC_NAMES } from '../metrics/task.js';

/** Fidelity metrics need no labels: the candidate against the original on the same inputs. */
export const FIDELITY_METRICS = ['agreement', 'sqnr'] as const;
export const GOAL_METRICS = [...METRIC_NAMES, ...FIDELITY_METRICS] as const;
export type GoalMetric = (typeof GOAL_METRICS)[number];

/** Task metrics are measured against labels; the fidelity metrics only against the original. */
export function needsLabels(metric: GoalMetric): boolean {
  return !(FIDELITY_METRICS as readonly string[]).includes(metric);
}

export const GoalSchema = Type.Object(
  {
    metric: Type.Union(
      GOAL_METRICS.map((m) => Type.Literal(m)),
      {
        description:
          'What must hold: a task metric against --labels (top1, top5: higher is better; mae, rmse, obo, nmae: lower is better), ' +
          'or without labels a fidelity metric against the original: agreement (share of samples whose top-1 class or greedy CTC sequence is the original\'s), sqnr (the lowest output SQNR, dB).',
      },
    ),
    maxDrop: Type.Optional(
      Type.Number({
        minimum: 0,
        description: "The largest allowed loss in the metric's own units (0.01 = 1 pt of top-1; for error metrics the largest allowed increase; for agreement 0.02 = 98% of samples agree).",
      }),
    ),
    min: Type.Optional(Type.Number({ description: 'An absolute floor instead of a drop: agreement ≥ min (0..1), sqnr ≥ min dB.' })),
    objective: Type.Union([Type.Literal('latency'), Type.Literal('size'), Type.Literal('balanced')], {
      default: 'latency',
      description: 'What the search minimizes among candidates that meet the goal: latency ratio, size ratio, or their geometric mean.',
    }),
    batchSize: Type.Integer({ minimum: 1, maximum: 4096, default: 1, description: 'The deployment batch size latency is judged at.' }),
    threads: Type.Integer({ minimum: 0, maximum: 256, default: 1, description: 'Intra-op threads latency is judged with (0 = onnxruntime default).' }),
    minSpeedup: Type.Optional(Type.Number({ exclusiveMinimum: 0, description: 'Only candidates at least this much faster count (original latency / candidate latency).' })),
    maxSizeRatio: Type.Optional(Type.Number({ exclusiveMinimum: 0, description: 'Only candidates at most this share of the original size count.' })),
  },
  { additionalProperties: false },
);

/**
 * One step of an explicit space: a pass, fixed options, and knobs given as `{ "range": [lo, hi] }` or
 * `{ "choices": [...] }`; `optional` steps may be left out of a candidate.
 */
export const SpaceStepSchema = Type.Object(
  { pass: Type.String({ minLength: 1 }), optional: Type.Optional(Type.Boolean()) },
  // the pass's own schema checks every value a knob can take (recipe.ts)
  { additionalProperties: true },
);
export type SpaceStep = Static<typeof SpaceStepSchema> & Record<string, unknown>;

export const SEARCH_STRATEGY_NAMES = ['staged', 'random'] as const;

export const SearchSchema = Type.Object(
  {
    budget: Type.Object(
      {
        minutes: Type.Number({ exclusiveMinimum: 0, maximum: 7 * 24 * 60, default: 20, description: 'Wall time for the whole search, final checks included (kept within 10%).' }),
        trials: Type.Integer({ minimum: 1, maximum: 10_000, default: 80, description: 'Candidates evaluated at most.' }),
      },
      { additionalProperties: false, default: {} },
    ),
    space: Type.Union([Type.Literal('auto'), Type.Array(SpaceStepSchema, { minItems: 1, maxItems: 16 })], {
      default: 'auto',
      description: '"auto": candidates built from the model (the passes that apply to its ops, in the order prune → factorize → quantize); or a list of step templates.',
    }),
    strategy: Type.Union(
      SEARCH_STRATEGY_NAMES.map((s) => Type.Literal(s)),
      { default: 'staged', description: 'staged: each knob bisected alone, then combinations scaled back together, then refined; random: uniform samples of the space (a baseline for comparison).' },
    ),
    heldOutFraction: Type.Number({ minimum: 0.1, maximum: 0.9, default: 0.4, description: 'Share of the evaluation samples held out: the goal is judged on them, never searched or calibrated on.' }),
    seed: Type.Integer({ default: 0, description: 'Seed of the search/held-out split and of random choices.' }),
    probeFraction: Type.Number({ exclusiveMinimum: 0, maximum: 1, default: 0.25, description: 'A candidate is first measured on this share of the search part and stopped there when it is clearly off the goal.' }),
    finalists: Type.Integer({ minimum: 1, maximum: 32, default: 4, description: 'Frontier candidates re-timed with more rounds and measured on the held-out part; when all of them miss there, the next frontier candidates are tried in turn while the budget lasts.' }),
    calibrateOnEvaluation: Type.Boolean({
      default: false,
      description: 'Allow calibration data identical to the evaluation data (refused otherwise); the report flags it.',
    }),
  },
  { additionalProperties: false },
);

export type Goal = Static<typeof GoalSchema>;
export type SearchSettings = Static<typeof SearchSchema>;

export type Knob = { kind: 'range'; lo: number; hi: number } | { kind: 'choices'; values: unknown[] };

/** A template value that is a knob (`{ "range": [lo, hi] }` or `{ "choices": [...] }`), else null (a fixed option). */
export function knobOf(value: unknown): Knob | null {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return null;
  const keys = Object.keys(value);
  if (keys.length !== 1) return null;
  const v = value as { range?: unknown; choices?: unknown };
  if (Array.isArray(v.range) && v.range.length === 2 && v.range.every((x) => typeof x === 'number' && Number.isFinite(x))) {
    const [a, b] = v.range as [number, number];
    return { kind: 'range', lo: Math.min(a, b), hi: Math.max(a, b) };
  }
  if (Array.isArray(v.choices) && v.choices.length > 0) return { kind: 'choices', values: v.choices };
  return null;
}

/** The knobs of a template, by option name (`pass` and `optional` are never knobs). */
export function knobsOf(template: SpaceStep): Map<string, Knob> {
  const out = new Map<string, Knob>();
  for (const [key, value] of Object.entries(template)) {
    if (key === 'pass' || key === 'optional') continue;
    const k = knobOf(value);
    if (k) out.set(key, k);
  }
  return out;
}

/** A concrete step from a template: each knob set from `picks` (missing picks take the knob's first value / low end). */
export function instantiateStep(template: SpaceStep, picks: Record<string, unknown> = {}): { pass: string; [key: string]: unknown } {
  const step: { pass: string; [key: string]: unknown } = { pass: template.pass };
  for (const [key, value] of Object.entries(template)) {
    if (key === 'pass' || key === 'optional') continue;
    const k = knobOf(value);
    step[key] = key in picks ? picks[key] : k ? (k.kind === 'range' ? k.lo : k.values[0]) : value;
  }
  return step;
}
