// What a pass is: a named function (model, config, ctx) → model with a closed, typed config schema.
import { Type, type SchemaOptions, type Static, type TLiteral, type TObject, type TUnion } from '@sinclair/typebox';
import type { Model, Node } from '../onnx/ir.js';
import type { Feeds } from '../runtime/ort.js';

export interface NodeChange {
  node: string;
  opType: string;
  detail?: string;
}

export interface NodeSkip {
  node: string;
  opType: string;
  reason: string;
}

/** What a pass did, in a form the report shows as is. */
export class ChangeLog {
  readonly rewritten: NodeChange[] = [];
  readonly skipped: NodeSkip[] = [];
  readonly added: NodeChange[] = [];
  readonly stats: Record<string, number | string | boolean> = {};
  readonly warnings: string[] = [];

  rewrite(node: Node, detail?: string): void {
    this.rewritten.push({ node: describeNode(node), opType: node.opType, ...(detail ? { detail } : {}) });
  }
  skip(node: Node, reason: string): void {
    this.skipped.push({ node: describeNode(node), opType: node.opType, reason });
  }
  add(node: Node, detail?: string): void {
    this.added.push({ node: describeNode(node), opType: node.opType, ...(detail ? { detail } : {}) });
  }
  stat(key: string, value: number | string | boolean): void {
    this.stats[key] = value;
  }
  count(key: string, by = 1): void {
    this.stats[key] = (Number(this.stats[key]) || 0) + by;
  }
  warn(message: string): void {
    this.warnings.push(message);
  }

  toJSON(): object {
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

export interface PassContext {
  signal?: AbortSignal;
  /** Progress within the pass, 0..1. */
  progress(fraction: number, message?: string): void;
  changes: ChangeLog;
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
export function fixedPassContext(opts: {
  samples: Feeds[];
  evaluation?: Feeds[];
  labels?: ArrayLike<number | bigint>;
  synthetic?: boolean;
  calibration?: boolean;
  changes?: ChangeLog;
}): PassContext {
  const synthetic = opts.synthetic ?? false;
  return {
    changes: opts.changes ?? new ChangeLog(),
    progress: () => {},
    sampleInputs: async () => opts.samples,
    evaluationInputs: async () => opts.evaluation ?? opts.samples,
    samplesAreSynthetic: synthetic,
    samplesAreCalibration: opts.calibration ?? !synthetic,
    ...(opts.labels ? { labels: opts.labels } : {}),
  };
}

export interface PassDefinition<S extends TObject = TObject> {
  name: string;
  summary: string;
  /** Closed schema of the step object, `pass` key included. */
  schema: S;
  run(model: Model, config: Static<S>, ctx: PassContext): Promise<Model> | Model;
}

export function definePass<S extends TObject>(def: PassDefinition<S>): PassDefinition<S> {
  return def;
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
