// One zoo model through every step, in process: inspect, round trip, the original in onnxruntime on its
// own reference inputs, modelpress's reading of those inputs, fp16, and one quantization. Each step ends
// as ok, a refusal (a ModelpressError that is not `internal`), an internal error, or an output mismatch;
// whether a refusal is acceptable is decided by `judge` once the original's run is known.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromBinary } from '@bufbuild/protobuf';
import { TensorProtoSchema } from 'onnx-buf';
import { toModelpressError } from '../errors.js';
import { DataType as DT, ORT_TYPE_OF, dtypeName } from '../onnx/dtypes.js';
import type { Model } from '../onnx/ir.js';
import { summarizeModel } from '../onnx/inspect.js';
import { decodeModel, encodeModel } from '../onnx/model-io.js';
import { readTensor } from '../onnx/tensor-data.js';
import { verifyModel } from '../onnx/verify.js';
import { openDataset } from '../data/samples.js';
import { parseRecipe } from '../pipeline/recipe.js';
import { runPipeline } from '../pipeline/pipeline.js';
import { createSession, ort, syntheticInputs, tensorToFloat32, type Feeds } from '../runtime/ort.js';
import type { ZooModel } from './zoo-models.js';

export const STEPS = ['inspect', 'roundtrip', 'reference', 'data', 'fp16', 'quant'] as const;
export type StepName = (typeof STEPS)[number];

/**
 * ok; refused = a clear refusal where onnxruntime cannot run the original either; wrong-refusal = a
 * refusal of a model onnxruntime runs; internal = a bug (an `internal` error, a crash, a hang);
 * mismatch = outputs differ beyond the step's tolerance; ort-failed = onnxruntime cannot run the
 * original on its inputs (the reference step only).
 */
export type Outcome = 'ok' | 'refused' | 'wrong-refusal' | 'internal' | 'mismatch' | 'ort-failed';

export interface StepResult {
  step: StepName;
  outcome: Outcome;
  code?: string;
  reason?: string;
  ms: number;
}

/** Relative tolerance of a float output, as a fraction of the reference's largest |value|, per step. */
const TOLERANCE: Record<'reference' | 'fp16' | 'quant', { rel: number; abs: number }> = {
  reference: { rel: 1e-3, abs: 1e-5 }, // the ONNX backend tests' own rtol; onnxruntime vs the recorded outputs
  fp16: { rel: 2e-2, abs: 1e-3 }, // float16 keeps ~3 decimal digits; a few ops in a row lose one more
  quant: { rel: 0.25, abs: 1e-2 }, // int8 on random test inputs: only a gross error counts
};

const oneLine = (s: string) => s.replace(/\s+/g, ' ').trim().slice(0, 300);

type Outputs = Record<string, ort.Tensor>;

/** Compares candidate outputs with reference outputs; a reason when they differ, else null. */
export function compareOutputs(ref: Outputs, cand: Outputs, tol: { rel: number; abs: number }): string | null {
  for (const [name, r] of Object.entries(ref)) {
    const c = cand[name];
    if (!c) return `output '${name}' missing`;
    if (r.dims.join(',') !== c.dims.join(',')) return `output '${name}' has shape [${c.dims}] instead of [${r.dims}]`;
    if (r.type === 'string' || c.type === 'string') {
      const a = r.data as string[];
      const b = c.data as string[];
      if (a.some((x, i) => x !== b[i])) return `output '${name}': strings differ`;
      continue;
    }
    const rv = tensorToFloat32(r);
    const cv = tensorToFloat32(c);
    if (!r.type.startsWith('float')) {
      let diff = 0;
      for (let i = 0; i < rv.length; i++) if (rv[i] !== cv[i]) diff++;
      if (diff > 0) return `output '${name}' (${r.type}): ${diff} of ${rv.length} values differ`;
      continue;
    }
    let scale = 0;
    for (const x of rv) if (Number.isFinite(x)) scale = Math.max(scale, Math.abs(x));
    let worst = 0;
    for (let i = 0; i < rv.length; i++) {
      const a = rv[i]!;
      const b = cv[i]!;
      if (Number.isNaN(a) !== Number.isNaN(b) || (!Number.isFinite(a) && !Number.isNaN(a) && a !== b)) {
        return `output '${name}': value ${i} is ${b} instead of ${a}`;
      }
      if (Number.isFinite(a)) worst = Math.max(worst, Number.isFinite(b) ? Math.abs(a - b) : Infinity);
    }
    if (worst > tol.rel * scale + tol.abs) return `output '${name}': max abs error ${worst.toExponential(2)} (largest |value| ${scale.toExponential(2)})`;
  }
  return null;
}

function modelInputs(model: Model) {
  const inits = new Set(model.graph.initializers);
  return model.graph.inputs.filter((v) => !inits.has(v));
}

/** The test directory's tensors as onnxruntime tensors, read directly (not through modelpress's data loader). */
function readPbTensors(dir: string, prefix: 'input' | 'output', names: string[], kinds: (string | undefined)[]): Outputs {
  const files = readdirSync(dir).filter((f) => new RegExp(`^${prefix}_\\d+\\.pb$`).test(f));
  const out: Outputs = {};
  for (const f of files) {
    const i = Number(f.match(/\d+/)![0]);
    const name = names[i] ?? `${prefix}_${i}`;
    if (kinds[i] && kinds[i] !== 'tensorType') throw new OrtLimit(`${prefix} '${name}' is a ${kinds[i]!.replace(/Type$/, '')}, which onnxruntime-node cannot ${prefix === 'input' ? 'take' : 'return'}`);
    const t = fromBinary(TensorProtoSchema, readFileSync(join(dir, f)));
    if (t.dataType === DT.STRING) {
      const dec = new TextDecoder();
      out[name] = new ort.Tensor('string', t.stringData.map((b) => dec.decode(b)), t.dims.map(Number));
      continue;
    }
    const type = ORT_TYPE_OF[t.dataType as DT];
    if (!type) throw new OrtLimit(`${prefix} '${name}' is ${dtypeName(t.dataType)}, which onnxruntime-node cannot ${prefix === 'input' ? 'take' : 'return'}`);
    const { dims, data } = readTensor(t);
    out[name] = new ort.Tensor(type as 'float32', data as Float32Array, dims);
  }
  return out;
}

/** A limit of onnxruntime-node itself (not of modelpress): the original cannot run either. */
class OrtLimit extends Error {}

const recipeOf = (step: object) => parseRecipe({ steps: [step], benchmark: { enabled: false } });
export const FP16_RECIPE = JSON.parse(readFileSync(new URL('../../../recipes/fp16.json', import.meta.url), 'utf8')) as object;

/**
 * The quantization the zoo runs, whichever applies: static int8 calibrated on the model's own test
 * inputs where QuantizeLinear exists (opset ≥ 10), else dynamic int8 (DynamicQuantizeMatMul, any opset).
 */
export function quantStep(m: ZooModel, model: Model): object {
  return m.dataDir && (model.opset('') ?? 0) >= 10 ? { pass: 'quantize.static', calibrationMethod: 'minmax' } : { pass: 'quantize.dynamic' };
}

export interface ZooContext {
  bytes: Uint8Array;
  model?: Model;
  feeds?: Feeds;
  original?: Outputs;
}

async function runBytes(bytes: Uint8Array, feeds: Feeds): Promise<Outputs> {
  const session = await createSession(bytes);
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

/** Runs one step; throws what the step threw (the caller classifies), returns a mismatch reason or null. */
export async function runStep(m: ZooModel, step: StepName, ctx: ZooContext): Promise<string | null> {
  switch (step) {
    case 'inspect': {
      const model = decodeModel(ctx.bytes);
      verifyModel(model, 'model');
      summarizeModel(model, ctx.bytes.length);
      ctx.model = model;
      return null;
    }
    case 'roundtrip': {
      const again = encodeModel(decodeModel(ctx.bytes));
      if (again.length !== ctx.bytes.length || again.some((b, i) => b !== ctx.bytes[i])) return `re-encoded model differs (${again.length} vs ${ctx.bytes.length} bytes)`;
      return null;
    }
    case 'reference': {
      const model = ctx.model ?? decodeModel(ctx.bytes);
      const ins = modelInputs(model);
      let expected: Outputs | undefined;
      try {
        ctx.feeds = m.dataDir
          ? readPbTensors(m.dataDir, 'input', ins.map((v) => v.name), ins.map((v) => v.type?.value.case))
          : syntheticInputs(model, m.synthetic ?? {});
        if (m.dataDir) expected = readPbTensors(m.dataDir, 'output', model.graph.outputs.map((v) => v.name), model.graph.outputs.map((v) => v.type?.value.case));
        ctx.original = await runBytes(ctx.bytes, ctx.feeds);
      } catch (err) {
        throw new OrtLimit(oneLine((err as Error).message));
      }
      return expected ? compareOutputs(expected, ctx.original, TOLERANCE.reference) : null;
    }
    case 'data': {
      const model = ctx.model ?? decodeModel(ctx.bytes);
      const batches = [...openDataset(m.dataDir!, model).batches({ batchSize: 1 })];
      if (batches.length !== 1) return `read ${batches.length} feeds from one test-data set`;
      if (ctx.feeds) {
        const why = compareOutputs(ctx.feeds, batches[0]!, { rel: 0, abs: 0 });
        if (why) return `read differently: ${why.replace('output', 'input')}`;
      }
      ctx.feeds = batches[0]!;
      return null;
    }
    case 'fp16':
    case 'quant': {
      const recipe = recipeOf(step === 'fp16' ? (FP16_RECIPE as { steps: object[] }).steps[0]! : quantStep(m, ctx.model ?? decodeModel(ctx.bytes)));
      const samples = m.dataDir && ctx.feeds ? { samples: [ctx.feeds] } : {};
      const result = await runPipeline(ctx.bytes, { recipe, inputName: m.id, ...samples, ...(m.synthetic ? { synthetic: m.synthetic } : {}) });
      if (!ctx.feeds || !ctx.original) return null;
      return compareOutputs(ctx.original, await runBytes(result.bytes, ctx.feeds), TOLERANCE[step]);
    }
  }
}

/** Every step of one model, in order; `steps` picks which (reference runs whenever fp16, quant or data does). */
export async function runZooModel(m: ZooModel, steps: readonly StepName[], onStep?: (s: StepName) => void): Promise<StepResult[]> {
  const ctx: ZooContext = { bytes: new Uint8Array(readFileSync(m.path)) };
  const results: StepResult[] = [];
  for (const step of STEPS) {
    if (!steps.includes(step)) continue;
    if (step === 'data' && !m.dataDir) continue;
    onStep?.(step);
    const t0 = Date.now();
    let r: StepResult;
    try {
      const mismatch = await runStep(m, step, ctx);
      r = { step, outcome: mismatch ? 'mismatch' : 'ok', ...(mismatch ? { reason: mismatch } : {}), ms: 0 };
    } catch (err) {
      if (err instanceof OrtLimit) r = { step, outcome: 'ort-failed', reason: err.message, ms: 0 };
      else {
        const e = toModelpressError(err);
        r = { step, outcome: e.code === 'internal' ? 'internal' : 'refused', code: e.code, reason: oneLine(e.message), ms: 0 };
      }
    }
    r.ms = Date.now() - t0;
    results.push(r);
  }
  return judge(results);
}

/** A refusal is acceptable only where onnxruntime cannot run the original on the same inputs. */
export function judge(results: StepResult[]): StepResult[] {
  const ortFailed = results.some((r) => r.step === 'reference' && r.outcome === 'ort-failed');
  return results.map((r) => (r.outcome === 'refused' && !ortFailed ? { ...r, outcome: 'wrong-refusal' } : r));
}
