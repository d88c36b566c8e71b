// A recipe: `{ steps: [{ pass, ...config }], benchmark?, evaluate? }`. Validated whole, with the JSON
// path of every problem, before any work starts.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { InvalidRecipeError, type RecipeProblem } from '../errors.js';
import { PASSES } from '../passes/index.js';
import { describeSchemaError, nearestName } from './schema-errors.js';
import { FIDELITY_METRICS, GoalSchema, SearchSchema, instantiateStep, knobsOf, type Goal, type SearchSettings, type SpaceStep } from './goal.js';

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
    steps: Type.Optional(Type.Array(StepEnvelope, { maxItems: 64, description: 'Fixed steps, run in order (before the search when a goal is given).' })),
    goal: Type.Optional(GoalSchema),
    search: Type.Optional(SearchSchema),
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
  /** Present: search for the steps that meet it, after `steps` (src/search/). */
  goal?: Goal;
  /** The search's budget and space; filled with defaults whenever `goal` is given. */
  search?: SearchSettings;
  benchmark: Static<typeof BenchmarkSchema>;
  evaluate: Static<typeof EvaluateSchema>;
  /** How the result is written (absent: embedded, unless over 2 GB). */
  output?: Static<typeof OutputSchema>;
}

function problemsOf(schema: TSchema, value: unknown, prefix: string): RecipeProblem[] {
  const seen = new Set<string>();
  const out: RecipeProblem[] = [];
  for (const e of Value.Errors(schema, value)) {
    const message = describeSchemaError(e);
    const key = `${e.path}|${message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ path: `${prefix}${e.path}`, message });
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
  const steps = (doc.steps ?? []) as RecipeStep[];
  const problems: RecipeProblem[] = [];
  const goal = doc.goal as Goal | undefined;
  if (steps.length === 0 && !goal) problems.push({ path: '/steps', message: 'a recipe needs steps, a goal, or both' });
  if (doc.search !== undefined && !goal) problems.push({ path: '/search', message: 'search settings need a goal (/goal)' });
  const validated: RecipeStep[] = steps.map((step, i) => validateStep(step, `/steps/${i}`, problems));
  const search = goal ? (Value.Default(SearchSchema, structuredClone(doc.search ?? {})) as SearchSettings) : undefined;
  if (goal) problems.push(...goalProblems(goal));
  if (search && search.space !== 'auto') search.space.forEach((t, i) => validateTemplate(t, `/search/space/${i}`, problems));
  if (problems.length > 0) throw new InvalidRecipeError(problems);
  return {
    ...(doc.name !== undefined ? { name: doc.name as string } : {}),
    ...(doc.description !== undefined ? { description: doc.description as string } : {}),
    steps: validated,
    ...(goal ? { goal, search: search! } : {}),
    benchmark: Value.Default(BenchmarkSchema, structuredClone(doc.benchmark ?? {})) as Recipe['benchmark'],
    // a goal splits the evaluation data and judges on the held-out part: it reads every sample given unless told otherwise
    evaluate: Value.Default(EvaluateSchema, structuredClone({ ...(goal ? { maxSamples: 100_000 } : {}), ...((doc.evaluate as object) ?? {}) })) as Recipe['evaluate'],
    ...(doc.output !== undefined ? { output: Value.Default(OutputSchema, structuredClone(doc.output)) as Recipe['output'] } : {}),
  };
}

function didYouMeanPass(pass: string): string {
  const near = typeof pass === 'string' ? nearestName(pass, Object.keys(PASSES)) : undefined;
  return near ? ` (did you mean '${near}'?)` : '';
}

function unknownPass(pass: string, path: string): RecipeProblem {
  return { path, message: `unknown pass '${pass}'${didYouMeanPass(pass)}; available: ${Object.keys(PASSES).join(', ')}` };
}

/** A step with its pass's defaults filled in; its problems are added to `problems`. */
function validateStep(step: RecipeStep, path: string, problems: RecipeProblem[]): RecipeStep {
  const def = PASSES[step.pass];
  if (!def) {
    problems.push(unknownPass(step.pass, `${path}/pass`));
    return step;
  }
  const withDefaults = Value.Default(def.schema, structuredClone(step)) as RecipeStep;
  problems.push(...problemsOf(def.schema, withDefaults, path));
  return withDefaults;
}

/** A space template is valid when every value each knob can take makes a valid step (ranges: both ends). */
function validateTemplate(template: SpaceStep, path: string, problems: RecipeProblem[]): void {
  if (!PASSES[template.pass]) {
    problems.push(unknownPass(template.pass, `${path}/pass`));
    return;
  }
  const knobs = knobsOf(template);
  const probes: Record<string, unknown>[] = [{}];
  for (const [key, k] of knobs) {
    if (k.kind === 'range') probes.push({ [key]: k.lo }, { [key]: k.hi });
    else for (const v of k.values) probes.push({ [key]: v });
  }
  const seen = new Set<string>();
  for (const picks of probes) {
    for (const p of problemsOf(PASSES[template.pass]!.schema, Value.Default(PASSES[template.pass]!.schema, instantiateStep(template, picks)), path)) {
      const key = `${p.path}|${p.message}`;
      if (!seen.has(key)) problems.push(p);
      seen.add(key);
    }
  }
}

function goalProblems(goal: Goal): RecipeProblem[] {
  const out: RecipeProblem[] = [];
  const fidelity = (FIDELITY_METRICS as readonly string[]).includes(goal.metric);
  if (goal.maxDrop === undefined && goal.min === undefined) out.push({ path: '/goal', message: 'give maxDrop (the largest allowed loss) or min (an absolute floor)' });
  if (goal.maxDrop !== undefined && goal.min !== undefined) out.push({ path: '/goal/min', message: 'give maxDrop or min, not both' });
  if (goal.min !== undefined && !fidelity) out.push({ path: '/goal/min', message: `min is for the fidelity metrics (${FIDELITY_METRICS.join(', ')}); for '${goal.metric}' give maxDrop` });
  if (goal.metric === 'sqnr' && goal.maxDrop !== undefined) out.push({ path: '/goal/maxDrop', message: 'the original\'s SQNR against itself is infinite: give min (dB) for sqnr' });
  if (goal.metric === 'agreement' && goal.min !== undefined && (goal.min < 0 || goal.min > 1)) out.push({ path: '/goal/min', message: 'agreement is a share of samples: min must be in 0..1' });
  return out;
}
