// Shapes for synthetic inputs when the model leaves dimensions open. The rule (README, "Inputs for
// dynamic dimensions"): a dim named like a batch gets 1, like a sequence a length, like an image
// side a size; when the original model does not run with that first choice, other sizes are probed
// on one session (the open non-batch dims grow 32, 64 … within the tensor budget) and the first
// choice that runs is used by everything after it: baseline, calibration, fidelity, benchmarks.
import { InvalidInputError, MemoryLimitError, throwIfAborted, toModelpressError } from '../errors.js';
import { dtypeName } from '../onnx/dtypes.js';
import type { Model, Value } from '../onnx/ir.js';
import { dimRole, firstSize, type DimRole } from './dim-roles.js';
import { assertInputsFit, createSession, syntheticInputSpecs, syntheticInputs, type ModelSource, type SyntheticInputOptions } from './ort.js';

/** Sizes probed for the open non-batch dims, in order, when the first choice does not run. */
export const PROBE_SIZES: readonly number[] = [32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384];

/** Probing stops after this long (plus the run under way): a slow model is not retried for minutes. */
export const PROBE_BUDGET_MS = 60_000;

/** An open dimension: a dim_param shared by every input that names it, or one unnamed axis. */
interface OpenDim {
  key: string;
  role: DimRole;
  /** Unnamed and not in the first input: may be the batch of a state tensor (Silero's [2, ?, 128]). */
  unnamedElsewhere: boolean;
}

interface InputDims {
  value: Value;
  /** Per axis: a fixed size, or the open dim it takes. */
  axes: (number | OpenDim)[];
}

function openInputs(model: Model, opts: SyntheticInputOptions): InputDims[] {
  const inits = new Set(model.graph.initializers);
  const inputs = model.graph.inputs.filter((v) => !inits.has(v) && !opts.shapes?.[v.name] && v.shape);
  const named = new Map<string, OpenDim>();
  return inputs.map((value, k) => {
    const shape = value.shape!;
    const axes = shape.map((d, axis): number | OpenDim => {
      if (typeof d === 'number' && d > 0) return d;
      const name = typeof d === 'string' && d ? d : undefined;
      if (name && opts.dims?.[name] !== undefined) return opts.dims[name]!;
      const role = dimRole(name, axis);
      if (!name) return { key: `${value.name}#${axis}`, role, unnamedElsewhere: k > 0 && role !== 'batch' };
      let dim = named.get(name);
      if (!dim) named.set(name, (dim = { key: name, role, unnamedElsewhere: false }));
      return dim;
    });
    return { value, axes };
  });
}

/** One candidate: a size per open dim; NaN marks the batch (1 here, the batch size in benchmarks). */
type Assignment = (dim: OpenDim) => number;

function firstChoice(dim: OpenDim, other?: number): number {
  return dim.role === 'batch' ? NaN : firstSize(dim.role, other);
}

/** First choice, then for each probe size: every open non-batch dim at that size; then the same with the unnamed dims of later inputs taken as batch. */
function candidates(other?: number): Assignment[] {
  const out: Assignment[] = [(d) => firstChoice(d, other)];
  for (const size of PROBE_SIZES) {
    out.push((d) => (d.role === 'batch' ? NaN : size));
    out.push((d) => (d.role === 'batch' || d.unnamedElsewhere ? NaN : size));
  }
  return out;
}

function shapesOf(inputs: InputDims[], assign: Assignment): Record<string, number[]> {
  const open = inputs.filter(({ axes }) => axes.some((a) => typeof a !== 'number'));
  return Object.fromEntries(open.map(({ value, axes }) => [value.name, axes.map((a) => (typeof a === 'number' ? a : assign(a)))]));
}

const formatShape = (dims: readonly number[]) => `[${dims.map((d) => (Number.isNaN(d) ? 1 : d)).join(',')}]`;

export interface ShapeProbe {
  /** Options with a shape for every input that has open dims (batch dims NaN), user choices kept. */
  synthetic: SyntheticInputOptions;
  /** Candidates run until one worked (1: the first choice ran; 0: no open dims, nothing run). */
  attempts: number;
  /** The probed shapes, for the report (batch dims as 1). */
  shapes: Record<string, number[]>;
  /** Whether a dim other than the batch was open (its size is a guess worth reporting). */
  guessed: boolean;
}

/**
 * Picks the shapes synthetic inputs get for `modelBytes` (decoded as `model`) and checks that the
 * model runs on them. Shapes and dims the user gave are kept as they are. Throws InvalidInputError
 * naming every input, the shapes tried, onnxruntime's last message and the --shape flags to give.
 */
export async function probeInputShapes(model: Model, modelBytes: ModelSource, opts: SyntheticInputOptions = {}, signal?: AbortSignal): Promise<ShapeProbe> {
  const inputs = openInputs(model, opts);
  if (!inputs.some((i) => i.axes.some((a) => typeof a !== 'number'))) return { synthetic: opts, attempts: 0, shapes: {}, guessed: false };
  const guessed = inputs.some((i) => i.axes.some((a) => typeof a !== 'number' && a.role !== 'batch'));
  const seed = (opts.seed ?? 0) + 1; // the pipeline's first synthetic sample
  const session = await createSession(modelBytes);
  const tried: Record<string, number[]>[] = [];
  const seen = new Set<string>();
  let lastError = '';
  const started = Date.now();
  try {
    for (const assign of candidates(opts.dynamicDim)) {
      throwIfAborted(signal);
      const shapes = shapesOf(inputs, assign);
      const key = JSON.stringify(Object.values(shapes).map(formatShape));
      if (seen.has(key)) continue;
      seen.add(key);
      const synthetic = { ...opts, shapes: { ...opts.shapes, ...shapes } };
      try {
        assertInputsFit(syntheticInputSpecs(model, synthetic));
      } catch (err) {
        if (err instanceof MemoryLimitError && tried.length > 0) break; // larger sizes only grow
        throw err;
      }
      tried.push(shapes);
      try {
        await session.run(syntheticInputs(model, { ...synthetic, seed }));
        return { synthetic, attempts: tried.length, shapes: Object.fromEntries(Object.entries(shapes).map(([k, d]) => [k, d.map((x) => (Number.isNaN(x) ? 1 : x))])), guessed };
      } catch (err) {
        const e = toModelpressError(err);
        if (e.code !== 'internal') throw e; // canceled, out of memory, …: not a shape problem
        lastError = e.message;
      }
      if (Date.now() - started > PROBE_BUDGET_MS) break;
    }
  } finally {
    await session.release();
  }
  throw shapeError(model, inputs, tried, lastError.trim(), opts, Date.now() - started > PROBE_BUDGET_MS);
}

function shapeError(model: Model, inputs: InputDims[], tried: Record<string, number[]>[], lastError: string, opts: SyntheticInputOptions, outOfTime: boolean): InvalidInputError {
  const inits = new Set(model.graph.initializers);
  const lines: string[] = [];
  const flags: string[] = [];
  for (const v of model.graph.inputs.filter((x) => !inits.has(x))) {
    const declared = `${dtypeName(v.elemType ?? 0)}[${(v.shape ?? []).map((d) => (typeof d === 'number' && d > 0 ? d : d || '?')).join(', ')}]`;
    const given = opts.shapes?.[v.name];
    const shapes = [...new Set(tried.map((t) => t[v.name]).filter((s): s is number[] => !!s).map(formatShape))];
    lines.push(`  input '${v.name}' ${declared}: ${given ? `given ${formatShape(given)}` : shapes.length ? `tried ${shapes.join(', ')}` : 'fixed'}`);
    const open = inputs.find((i) => i.value === v);
    if (open && open.axes.some((a) => typeof a !== 'number')) {
      flags.push(`--shape ${v.name}=${open.axes.map((a, axis) => (typeof a === 'number' ? a : a.role === 'batch' ? 'B' : `<${typeof v.shape?.[axis] === 'string' && v.shape[axis] ? v.shape[axis] : `axis ${axis}`}>`)).join(',')}`);
    }
  }
  const why = outOfTime ? ` (probing stopped after ${PROBE_BUDGET_MS / 1000} s)` : '';
  const fix = flags.length ? `give the shapes it expects: ${flags.join(' ')} (B: the batch)` : 'give inputs it runs on with --data, or other shapes with --shape name=d0,d1,…';
  return new InvalidInputError(
    `the model does not run on synthetic inputs of any shape tried${why}:\n${lines.join('\n')}\nonnxruntime: ${lastError}\n${fix}`,
    { details: { tried: tried.map((t) => Object.fromEntries(Object.entries(t).map(([k, s]) => [k, s.map((d) => (Number.isNaN(d) ? 1 : d))]))), onnxruntime: lastError } },
  );
}
