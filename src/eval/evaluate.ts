// Candidate vs reference on the same inputs, batch by batch: fidelity on every output, top-1 and
// CTC-sequence agreement where outputs look like classes or sequences, task metrics against labels.
import { performance } from 'node:perf_hooks';
import { InvalidInputError, throwIfAborted, toModelpressError } from '../errors.js';
import { FidelityAccumulator } from '../metrics/fidelity.js';
import { AgreementAccumulator, METRIC_NAMES, TaskAccumulator, type MetricName } from '../metrics/task.js';
import type { EvaluationResult } from '../report/schema.js';
import { createSession, itemsOf, rowsOf, tensorToFloat32, type Feeds, type ModelSource } from '../runtime/ort.js';
import { ReferenceOutputs } from './reference-outputs.js';

export interface EvaluateOptions {
  /** One label per sample, in sample order (integer classes or float targets). */
  labels?: ArrayLike<number | bigint>;
  /** Default: top1, top5 for integer labels; mae, rmse for float labels. */
  metrics?: MetricName[];
  /** The output the labels refer to (default: the first). */
  labelOutput?: string;
  /** Blank index for greedy CTC decoding of [N, T, C] outputs. */
  ctcBlank?: number;
  source?: 'data' | 'synthetic';
  /** What the user can do when the reference model does not run on the inputs (appended to the error). */
  referenceHint?: string;
  /** Samples the batches hold, for progress (counted from the batches when they are an array). */
  total?: number;
  /** Stop adding batches once this much time is spent (at least one batch runs); the result says where it stopped. */
  budgetMs?: number;
  /** The reference's outputs on these batches, from an earlier evaluation (keepReference): it need not run again. */
  referenceOutputs?: ReferenceOutputs;
  /** Keep the reference's outputs (result.referenceOutputs, the caller disposes it): this much in memory, the rest in a temp file up to `diskBytes`. */
  keepReference?: { memoryBytes: number; diskBytes: number };
  signal?: AbortSignal;
  onProgress?: (done: number, total: number) => void;
}

function defaultMetrics(labels: ArrayLike<number | bigint>): MetricName[] {
  const ints = labels instanceof BigInt64Array || labels instanceof Int32Array || Array.from(labels as ArrayLike<number>).slice(0, 100).every((x) => Number.isInteger(Number(x)));
  return ints ? ['top1', 'top5'] : ['mae', 'rmse'];
}

export async function evaluateModels(
  reference: ModelSource,
  candidate: ModelSource,
  batches: Iterable<Feeds>,
  opts: EvaluateOptions = {},
): Promise<EvaluationResult & { referenceOutputs?: ReferenceOutputs }> {
  const metrics = opts.metrics ?? (opts.labels ? defaultMetrics(opts.labels) : []);
  for (const m of metrics) if (!METRIC_NAMES.includes(m)) throw new InvalidInputError(`unknown metric '${m}'; known: ${METRIC_NAMES.join(', ')}`);
  const total = opts.total ?? (Array.isArray(batches) ? itemsOf(batches as Feeds[]) : NaN);
  if (opts.labels && opts.labels.length < total) {
    throw new InvalidInputError(`${opts.labels.length} labels for ${total} samples`);
  }
  // the model against itself (a baseline) runs once; cached reference outputs spare the reference's runs
  const same = reference === candidate;
  const cachedRef = opts.referenceOutputs;
  const refSession = cachedRef && !same ? null : await createSession(reference);
  const candSession = same ? refSession! : await createSession(candidate);
  let kept = opts.keepReference && !cachedRef ? new ReferenceOutputs(opts.keepReference.memoryBytes, opts.keepReference.diskBytes) : null;
  const started = performance.now();
  let batchCount = 0;
  let stoppedByBudget = false;
  const fidelity = new Map<string, FidelityAccumulator>();
  const top1 = new Map<string, AgreementAccumulator>();
  const seq = new Map<string, AgreementAccumulator>();
  const taskRef = new TaskAccumulator(metrics);
  const taskCand = new TaskAccumulator(metrics);
  let labelOutput = opts.labelOutput;
  let done = 0;
  try {
    for (const feeds of batches) {
      throwIfAborted(opts.signal);
      if (opts.budgetMs !== undefined && batchCount > 0 && performance.now() - started > opts.budgetMs) {
        stoppedByBudget = true;
        break;
      }
      const ref = cachedRef ? cachedRef.get(batchCount) : await runOn(refSession!, feeds, 'reference', opts.referenceHint);
      const cand = same ? ref : await runOn(candSession, feeds, 'candidate');
      batchCount++;
      if (kept && !kept.add(ref)) {
        kept.dispose(); // over both budgets: the reference runs again when needed
        kept = null;
      }
      const rows = rowsOf(feeds);
      for (const [name, r] of Object.entries(ref)) {
        const c = cand[name];
        if (!c || r.type === 'string') continue; // fidelity is numeric; a compression never rewrites strings
        const rv = tensorToFloat32(r);
        const cv = tensorToFloat32(c);
        if (!fidelity.has(name)) fidelity.set(name, new FidelityAccumulator());
        fidelity.get(name)!.add(rv, cv);
        const isFloat = r.type.startsWith('float');
        if (isFloat && r.dims.length === 2 && r.dims[1]! > 1) {
          if (!top1.has(name)) top1.set(name, new AgreementAccumulator());
          top1.get(name)!.addTop1(rv, cv, r.dims[0]!);
        }
        if (isFloat && r.dims.length === 3 && r.dims[2]! > 1) {
          if (!seq.has(name)) seq.set(name, new AgreementAccumulator());
          seq.get(name)!.addSequences(rv, cv, r.dims, opts.ctcBlank ?? 0);
        }
      }
      if (opts.labels && metrics.length > 0) {
        labelOutput ??= Object.keys(ref)[0]!;
        const r = ref[labelOutput];
        const c = cand[labelOutput];
        if (!r || !c) throw new InvalidInputError(`no output '${labelOutput}' to compare with the labels`);
        if (opts.labels.length < done + rows) throw new InvalidInputError(`${opts.labels.length} labels for more samples than that`);
        const labels = sliceLabels(opts.labels, done, done + rows);
        taskRef.add(tensorToFloat32(r), r.dims, labels);
        taskCand.add(tensorToFloat32(c), c.dims, labels);
      }
      done += rows;
      opts.onProgress?.(done, total);
    }
  } catch (err) {
    kept?.dispose();
    throw err;
  } finally {
    await refSession?.release();
    if (!same) await candSession.release();
  }
  const result: EvaluationResult & { referenceOutputs?: ReferenceOutputs } = {
    samples: done,
    batches: batchCount,
    elapsedMs: performance.now() - started,
    ...(stoppedByBudget ? { stoppedByBudget } : {}),
    ...(kept ? { referenceOutputs: kept } : {}),
    source: opts.source ?? 'data',
    fidelity: Object.fromEntries(
      [...fidelity].map(([name, acc]) => [
        name,
        {
          ...acc.result(),
          ...(top1.has(name) ? { top1Agreement: top1.get(name)!.result() } : {}),
          ...(seq.has(name) ? { sequenceAgreement: seq.get(name)!.result() } : {}),
        },
      ]),
    ),
  };
  if (opts.labels && metrics.length > 0) {
    result.task = { candidate: taskCand.result(), reference: taskRef.result(), output: labelOutput! };
  }
  return result;
}

/** A model failing on the inputs it is given is an input problem (a user's model or data), never ours. */
async function runOn(session: Awaited<ReturnType<typeof createSession>>, feeds: Feeds, which: string, hint?: string): Promise<Feeds> {
  try {
    return await session.run(feeds);
  } catch (err) {
    const e = toModelpressError(err);
    if (e.code !== 'internal') throw e;
    const given = Object.entries(feeds).map(([k, t]) => `${k} ${t.type}[${t.dims.join(',')}]`).join(', ');
    throw new InvalidInputError(`the ${which} model does not run on these inputs (${given}): ${e.message.trim()}${hint ? `; ${hint}` : ''}`, { cause: err });
  }
}

function sliceLabels(labels: ArrayLike<number | bigint>, start: number, end: number): ArrayLike<number | bigint> {
  const sub = (labels as { subarray?: (a: number, b: number) => ArrayLike<number | bigint> }).subarray;
  return sub ? sub.call(labels, start, end) : Array.from(labels).slice(start, end);
}

/** A candidate summarized against its reference: what the compression loops compare to their targets. */
export interface AgainstReference {
  /** The lowest SQNR (dB) over the model outputs. */
  sqnrDb: number;
  /** The lowest share of samples whose decision (top-1 class, greedy CTC sequence) is the reference's, if an output has decisions. */
  agreement?: number;
  /** Top-1 against the labels, when labels are given. */
  top1?: { reference: number; candidate: number };
}

export async function measureAgainstReference(
  reference: Uint8Array,
  candidate: Uint8Array,
  feeds: Iterable<Feeds>,
  labels?: { labels: ArrayLike<number | bigint>; output?: string },
): Promise<AgainstReference> {
  const ev = await evaluateModels(reference, candidate, feeds, labels ? { labels: labels.labels, metrics: ['top1'], ...(labels.output ? { labelOutput: labels.output } : {}) } : {});
  const outputs = Object.values(ev.fidelity);
  const agreements = outputs.map((f) => f.sequenceAgreement ?? f.top1Agreement).filter((a): a is number => a !== undefined);
  const ref = ev.task?.reference.top1;
  const cand = ev.task?.candidate.top1;
  return {
    sqnrDb: Math.min(...outputs.map((f) => f.sqnrDb)),
    ...(agreements.length ? { agreement: Math.min(...agreements) } : {}),
    ...(ref !== undefined && cand !== undefined ? { top1: { reference: ref, candidate: cand } } : {}),
  };
}
