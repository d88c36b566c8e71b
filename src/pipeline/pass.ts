// What a pass is: a named function (model, config, ctx) → model with a closed, typed config schema, and
// the closed, typed schema of the statistics it reports.
import {
  Type,
  type SchemaOptions,
  type Static,
  type TIntersect,
  type TLiteral,
  type TObject,
  type TPartial,
  type TProperties,
  type TSchema,
  type TUnion,
} from '@sinclair/typebox';
import type { Model, Node } from '../onnx/ir.js';
import { alreadyQuantizedReason } from '../onnx/quantized-forms.js';
import type { NodeChange, NodeSkip, StatFields, StepChanges } from '../report/schema.js';
import type { Feeds } from '../runtime/ort.js';

/** The statistics of a log that takes none: what helpers that only rewrite, skip and warn are given. */
export type NoStats = Record<never, never>;

/** The numeric fields of `S`: those `count` may add to. */
type CountKeys<S> = { [K in keyof S]-?: Exclude<S[K], undefined> extends number ? K : never }[keyof S] & string;

/**
 * The statistic names a log accepts, as a type parameter of its own so that TypeScript compares them: a
 * log typed for a pass's statistics fits only where a subset of them is expected (a helper cannot record
 * what the pass does not declare). A log that declares none records none itself and fits anywhere.
 */
type AcceptedKeys<S> = [keyof S] extends [never] ? any : keyof S;

/** What a pass did, in a form the report shows as is. `S`: the statistics the pass declares. */
export class ChangeLog<S extends StatFields = NoStats, Keys = AcceptedKeys<S>> {
  readonly rewritten: NodeChange[] = [];
  readonly skipped: NodeSkip[] = [];
  readonly added: NodeChange[] = [];
  readonly stats: Partial<S> = {};
  readonly warnings: string[] = [];
  declare private readonly accepts?: (key: Keys) => void;

  rewrite(node: Node, detail?: string): void {
    this.rewritten.push({ node: describeNode(node), opType: node.opType, ...(detail ? { detail } : {}) });
  }
  skip(node: Node, reason: string): void {
    this.skipped.push({ node: describeNode(node), opType: node.opType, reason });
  }
  add(node: Node, detail?: string): void {
    this.added.push({ node: describeNode(node), opType: node.opType, ...(detail ? { detail } : {}) });
  }
  /** Records a declared statistic, with its declared type. */
  stat<K extends keyof S & string>(key: K, value: Exclude<S[K], undefined>): void {
    (this.stats as StatFields)[key] = value;
  }
  /** Adds `by` to a declared numeric statistic (absent counts as 0). */
  count<K extends CountKeys<S>>(key: K, by = 1): void {
    const stats = this.stats as StatFields;
    stats[key] = (Number(stats[key]) || 0) + by;
  }
  warn(message: string): void {
    this.warnings.push(message);
  }

  toJSON(): StepChanges<Partial<S>> {
    return {
      rewritten: this.rewritten.length,
      skipped: this.skipped,
      added: this.added.length,
      stats: this.stats,
      warnings: this.warnings,
      rewrittenNodes: this.rewritten,
    };
  }
}

/** A node's name, or for unnamed nodes its op and first output, so a user can find it. */
export function describeNode(node: Node): string {
  if (node.name) return node.name;
  const out = node.outputs.find((v) => v)?.name;
  return out ? `${node.opType}→${out}` : node.opType;
}

export interface PassContext<S extends StatFields = NoStats> {
  signal?: AbortSignal;
  /** Progress within the pass, 0..1. */
  progress(fraction: number, message?: string): void;
  changes: ChangeLog<S>;
  /**
   * Representative model inputs: the user's calibration data when given, else the evaluation
   * data, else synthetic inputs (and then `samplesAreSynthetic` is true, which reports must say).
   * Passes that calibrate (quantization ranges, pruning importance, least-squares recovery) use these.
   */
  sampleInputs(): Promise<Feeds[]>;
  samplesAreSynthetic: boolean;
  /** True when `sampleInputs()` is the user's dedicated calibration set (not the evaluation data). */
  samplesAreCalibration: boolean;
  /** The evaluation data (or synthetic inputs), as the pipeline measures every step with. */
  evaluationInputs(): Promise<Feeds[]>;
  /** Labels for the evaluation inputs, one per item, when the user gave them. */
  labels?: ArrayLike<number | bigint>;
  /** The output the labels refer to. */
  labelOutput?: string;
}

/**
 * A context over fixed, in-memory data, for running a pass outside the pipeline (library use,
 * benchmark scripts, tests): `samples` are what the pass calibrates on, `evaluation` what it may
 * measure on (default: the samples).
 */
export function fixedPassContext<S extends StatFields = NoStats>(opts: {
  samples: Feeds[];
  evaluation?: Feeds[];
  labels?: ArrayLike<number | bigint>;
  synthetic?: boolean;
  calibration?: boolean;
  changes?: ChangeLog<S>;
}): PassContext<S> {
  const synthetic = opts.synthetic ?? false;
  return {
    changes: opts.changes ?? new ChangeLog<S>(),
    progress: () => {},
    sampleInputs: async () => opts.samples,
    evaluationInputs: async () => opts.evaluation ?? opts.samples,
    samplesAreSynthetic: synthetic,
    samplesAreCalibration: opts.calibration ?? !synthetic,
    ...(opts.labels ? { labels: opts.labels } : {}),
  };
}

/** A schema of statistics: its values are what a report's `stats` may hold. */
export type TStats = TSchema & { static: StatFields };

/** The statistics a pass reports, typed: `StatsOf<typeof pruneNMPass>`. */
export type StatsOf<P extends { stats: TStats }> = Static<P['stats']>;

export interface PassDefinition<C extends TObject = TObject, T extends TStats = TStats, N extends string = string> {
  name: N;
  summary: string;
  /** Closed schema of the step object, `pass` key included. */
  schema: C;
  /** Closed schema of the statistics the pass records (`statsSchema`): a description with the unit for every field. */
  stats: T;
  /**
   * Whether a step with this config reads representative inputs (`ctx.sampleInputs`), and what it does
   * without real ones: 'required' refuses synthetic inputs, 'used' runs on them with
   * a warning. The API refuses a job that a required step cannot run, and the pipeline warns when a step
   * calibrates on the evaluation data. Undefined: the step reads no inputs.
   */
  calibration?(config: Static<C>): CalibrationNeed | undefined;
  /** Returns a new model (a `model.clone()` it rewrote) and never changes `model`: test/pass-purity.test.ts runs every pass on a frozen one. */
  run(model: Model, config: Static<C>, ctx: PassContext<Static<T>>): Promise<Model> | Model;
}

export type CalibrationNeed = 'required' | 'used';

export function definePass<C extends TObject, T extends TStats, N extends string>(def: PassDefinition<C, T, N>): PassDefinition<C, T, N> {
  return def;
}

/** Fields named by a prefix and a node or rule name, e.g. `statFamily('sparsity:', …)` for `sparsity:<node>`. */
export function statFamily<P extends string, V extends TSchema>(prefix: P, value: V) {
  return Type.Record(Type.TemplateLiteral([Type.Literal(prefix), Type.String()]), value);
}

/**
 * A pass's statistics schema: `fields` and the `families`' fields, every one optional (a pass records what
 * applies to the model), no other key.
 */
export function statsSchema<F extends TProperties>(fields: F): TPartial<TObject<F>>;
export function statsSchema<F extends TProperties, R extends TSchema[]>(fields: F, ...families: R): TIntersect<[TPartial<TObject<F>>, ...R]>;
export function statsSchema(fields: TProperties, ...families: TSchema[]): TSchema {
  if (families.length === 0) return Type.Partial(Type.Object(fields, { additionalProperties: false }));
  // in an intersection the members stay open; unevaluatedProperties closes the whole
  return Type.Intersect([Type.Partial(Type.Object(fields)), ...families], { unevaluatedProperties: false });
}

/** One interchangeable way of doing a step (an importance criterion, a calibrator…), as a table entry. */
export interface Strategy {
  readonly name: string;
  /** One line, shown with the option that picks it. */
  readonly description: string;
}

/** The recipe option naming one strategy of `table`: exactly the table's keys, each with its description. */
export function strategyOption<K extends string>(table: Readonly<Record<K, Strategy>>, options: SchemaOptions = {}): TUnion<TLiteral<K>[]> {
  const names = Object.keys(table) as K[];
  const description = names.map((k) => `${k}: ${table[k].description}`).join(' ');
  return Type.Union(
    names.map((k) => Type.Literal(k, { description: table[k].description })),
    { description, ...options },
  );
}

/**
 * Every node of the main graph that is already quantized (QDQ, QOperator, integer ops, MatMulNBits), logged
 * as skipped with the reason: passes leave these alone and take their candidates from the other nodes.
 */
export function skipAlreadyQuantized(model: Model, log: ChangeLog): Set<Node> {
  const quantized = new Set<Node>();
  for (const n of model.graph.nodes) {
    const reason = alreadyQuantizedReason(n);
    if (!reason) continue;
    quantized.add(n);
    log.skip(n, reason);
  }
  return quantized;
}
