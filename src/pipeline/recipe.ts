// A recipe: `{ steps: [{ pass, ...config }], benchmark?, evaluate? }`. Validated whole, with the JSON
// path of every problem, before any work starts.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { InvalidRecipeError, type RecipeProblem } from '../errors.js';
import { PASSES } from '../passes/index.js';

export const BenchmarkSchema = Type.Object(
  {
    enabled: Type.Boolean({ default: true, description: 'Measure latency of every step against the original, side by side.' }),
    // no defaults for the four settings below: unset, they are scaled to budgetSeconds (src/measure/timing-plan.ts)
    batchSizes: Type.Optional(
      Type.Array(Type.Integer({ minimum: 1, maximum: 4096 }), { minItems: 1, maxItems: 16, description: 'Default 1, 8, 16; the largest are dropped when they do not fit the budget.' }),
    ),
    warmup: Type.Optional(Type.Integer({ minimum: 0, maximum: 10000, description: 'Default 10, fewer when the model is slow.' })),
    runs: Type.Optional(Type.Integer({ minimum: 1, maximum: 100000, description: 'Default 32, fewer when the model is slow.' })),
    intraOpThreads: Type.Integer({ minimum: 0, maximum: 256, default: 0, description: '0 = onnxruntime default' }),
    rounds: Type.Optional(Type.Integer({ minimum: 2, maximum: 100, description: 'A/B rounds per batch size in side-by-side timing. Default 6, fewer when the model is slow.' })),
    budgetSeconds: Type.Number({
      exclusiveMinimum: 0,
      maximum: 86400,
      default: 60,
      description: 'Timing per step when warmup, runs and rounds are not given: they are scaled from one measured run to fit it (never below 2 rounds of 1 warmup + 1 run).',
    }),
    profile: Type.Boolean({ default: false, description: 'Profile the original and final model per node, op type and block.' }),
    profileDepth: Type.Integer({ minimum: 1, maximum: 16, default: 2, description: 'Node-name prefix depth that defines a block.' }),
  },
  { additionalProperties: false },
);

export const EvaluateSchema = Type.Object(
  {
    maxSamples: Type.Integer({ minimum: 1, maximum: 100_000, default: 256, description: 'Samples used for fidelity after each step.' }),
    batchSize: Type.Integer({ minimum: 1, maximum: 4096, default: 8 }),
    budgetSeconds: Type.Number({
      exclusiveMinimum: 0,
      maximum: 86400,
      default: 30,
      description: 'Fidelity: batches are added while the original model has run for less than this; every step is measured on the same batches.',
    }),
    calibrationBudgetSeconds: Type.Number({
      exclusiveMinimum: 0,
      maximum: 86400,
      default: 60,
      description: 'Calibration data is cut to the batches the original model runs in this time (measured on the fidelity samples).',
    }),
  },
  { additionalProperties: false },
);

export const OutputSchema = Type.Object(
  {
    externalData: Type.Boolean({
      default: false,
      description: 'Write the result with its large tensors in one data file beside the .onnx (ONNX external data); the API then delivers a .tar bundle. Models over 2 GB are always written this way.',
    }),
  },
  { additionalProperties: false },
);

const StepEnvelope = Type.Object({ pass: Type.String({ minLength: 1 }) }, { additionalProperties: true });

export const RecipeEnvelopeSchema = Type.Object(
  {
    name: Type.Optional(Type.String({ maxLength: 200 })),
    description: Type.Optional(Type.String({ maxLength: 4000 })),
    steps: Type.Array(StepEnvelope, { minItems: 1, maxItems: 64 }),
    benchmark: Type.Optional(BenchmarkSchema),
    evaluate: Type.Optional(EvaluateSchema),
    output: Type.Optional(OutputSchema),
  },
  { additionalProperties: false },
);

export interface RecipeStep {
  pass: string;
  [key: string]: unknown;
}

export interface Recipe {
  name?: string;
  description?: string;
  steps: RecipeStep[];
  benchmark: Static<typeof BenchmarkSchema>;
  evaluate: Static<typeof EvaluateSchema>;
  /** How the result is written (absent: embedded, unless over 2 GB). */
  output?: Static<typeof OutputSchema>;
}

function problemsOf(schema: TSchema, value: unknown, prefix: string): RecipeProblem[] {
  const seen = new Set<string>();
  const out: RecipeProblem[] = [];
  for (const e of Value.Errors(schema, value)) {
    const key = `${e.path}|${e.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ path: `${prefix}${e.path}`, message: e.message });
  }
  return out;
}

/** Deeper than any real recipe (they nest 4 levels); deep enough to reject before anything recurses. */
export const MAX_JSON_DEPTH = 32;

/** The nesting depth of JSON text, by a scan that cannot overflow the stack (the text need not be valid). */
export function jsonTextDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \\ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 || c === 91 /* { [ */) max = Math.max(max, ++depth);
    else if (c === 125 || c === 93 /* } ] */) depth--;
  }
  return max;
}

/** The nesting depth of a parsed value, iteratively (stops counting past `limit`). */
export function jsonValueDepth(value: unknown, limit = MAX_JSON_DEPTH): number {
  let max = 0;
  const stack: [unknown, number][] = [[value, 1]];
  while (stack.length > 0) {
    const [v, d] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    max = Math.max(max, d);
    if (max > limit) return max;
    for (const child of Object.values(v)) stack.push([child, d + 1]);
  }
  return max;
}

/** Parses JSON text into a validated recipe with defaults filled in; throws InvalidRecipeError. */
export function parseRecipe(input: string | unknown): Recipe {
  let raw: unknown = input;
  const depth = typeof input === 'string' ? jsonTextDepth(input) : jsonValueDepth(input);
  if (depth > MAX_JSON_DEPTH) throw new InvalidRecipeError([{ path: '', message: `nested deeper than ${MAX_JSON_DEPTH} levels; a recipe is a few levels deep` }]);
  if (typeof input === 'string') {
    try {
      raw = JSON.parse(input);
    } catch (err) {
      throw new InvalidRecipeError([{ path: '', message: `not valid JSON: ${(err as Error).message}` }]);
    }
  }
  const doc = Value.Default(RecipeEnvelopeSchema, structuredClone(raw)) as Record<string, unknown>;
  const top = problemsOf(RecipeEnvelopeSchema, doc, '');
  if (top.length > 0) throw new InvalidRecipeError(top);
  const steps = doc.steps as RecipeStep[];
  const problems: RecipeProblem[] = [];
  const validated: RecipeStep[] = steps.map((step, i) => {
    const def = PASSES[step.pass];
    if (!def) {
      problems.push({ path: `/steps/${i}/pass`, message: `unknown pass '${step.pass}'; available: ${Object.keys(PASSES).join(', ')}` });
      return step;
    }
    const withDefaults = Value.Default(def.schema, structuredClone(step)) as RecipeStep;
    problems.push(...problemsOf(def.schema, withDefaults, `/steps/${i}`));
    return withDefaults;
  });
  if (problems.length > 0) throw new InvalidRecipeError(problems);
  return {
    ...(doc.name !== undefined ? { name: doc.name as string } : {}),
    ...(doc.description !== undefined ? { description: doc.description as string } : {}),
    steps: validated,
    benchmark: Value.Default(BenchmarkSchema, structuredClone(doc.benchmark ?? {})) as Recipe['benchmark'],
    evaluate: Value.Default(EvaluateSchema, structuredClone(doc.evaluate ?? {})) as Recipe['evaluate'],
    ...(doc.output !== undefined ? { output: Value.Default(OutputSchema, structuredClone(doc.output)) as Recipe['output'] } : {}),
  };
}
