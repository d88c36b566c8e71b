// The one place that talks to onnxruntime-node.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { InvalidInputError, InvalidModelError, MemoryLimitError, OUT_OF_MEMORY_TEXT, UnsupportedModelError } from '../errors.js';
import { float16ArrayToFloat32 } from '../onnx/float16.js';
import { DataType as DT, ORT_TYPE_OF, dtypeName } from '../onnx/dtypes.js';
import { Model, type Value } from '../onnx/ir.js';
import { float32ToFloat16Bits } from '../onnx/float16.js';
import { decodeModel, decodeModelWithFiles, encodeModelProto, exportModel, exportModelForValues, exportModelWithOutputs } from '../onnx/model-io.js';
import { needsExternalData, tensorPayloadBytes, writeModelWithExternalData } from '../onnx/external-write.js';
import { embeddedSha256, embeddedSize } from '../onnx/embedded-encoding.js';
import { HINTS, assertTensorFits, maxTensorBytes } from '../onnx/budget.js';
import { dimRole, firstSize } from './dim-roles.js';

export { ort };
export type Feeds = Record<string, ort.Tensor>;

/** Samples a batch holds: the leading dim of its first input (1 when that input is a scalar). */
export const rowsOf = (feeds: Feeds): number => Object.values(feeds)[0]?.dims[0] ?? 1;
/** Samples a list of batches holds. */
export const itemsOf = (batches: readonly Feeds[]): number => batches.reduce((s, f) => s + rowsOf(f), 0);

/** Load failures that say the model is valid but this onnxruntime has no kernel or support for it. */
const MISSING_KERNEL_TEXT = /Could not find an implementation|NOT_IMPLEMENTED|not (yet )?supported|Unsupported (model IR version|ONNX opset|data type)|opset .* is (under development|not supported)/i;

export interface SessionOptions {
  intraOpNumThreads?: number;
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  enableProfiling?: boolean;
  profileFilePrefix?: string;
}

/**
 * What a session is made from: encoded bytes, or a model. A model that keeps its large tensors in
 * their data files (read lazily, Model.externalDataRoot) goes to onnxruntime as its small proto part
 * plus that directory, checked when the model was opened: onnxruntime maps the data file itself
 * instead of taking a copy of the weights as bytes. A model too large for one protobuf (2 GB) is
 * written with external data into a private temp dir — we wrote its locations, so onnxruntime
 * reading them is safe — and the session is created from that path; the dir is removed as soon as
 * onnxruntime has loaded it. Anything else is encoded to bytes.
 */
export type ModelSource = Uint8Array | Model;
type ModelProto = ReturnType<typeof exportModel>;

export const modelOf = (source: ModelSource): Model => (source instanceof Model ? source : decodeModel(source));
/** Bytes of the model's embedded encoding (a model is measured without encoding it). */
export const sizeOf = (source: ModelSource): number => (source instanceof Model ? embeddedSize(source) : source.length);
export const sha256Of = (source: ModelSource): string => (source instanceof Model ? embeddedSha256(source) : createHash('sha256').update(source).digest('hex'));

/** What runs the model in onnxruntime: its bytes, or the model itself when its tensors are in their data files or it is too large to encode as one protobuf. */
export function runtimeSource(model: Model): ModelSource {
  if (model.externalDataRoot !== undefined) return model;
  const proto = exportModel(model);
  return needsExternalData(proto) ? model : encodeModelProto(proto);
}

/**
 * Sessions created so far, by what onnxruntime was given, and `tempWrites`: models written to a
 * private temp dir (for one session, or pinned for many). Tests read it to see which route a model took.
 */
export const sessionRoutes = { bytes: 0, largestBytes: 0, tempDir: 0, dataDir: 0, tempWrites: 0 };

/** A source for many sessions, and what removes anything written for them. */
export interface PinnedSource {
  source: ModelSource;
  dispose(): void;
}

/**
 * `source` ready for many sessions. A model that createSession would write to a private temp dir for
 * every session (past 2 GB with its weights in memory: 2.2 GB written and read back per session) is
 * written there once and reopened with its tensors left in that file, so each session takes the
 * data-dir route (onnxruntime reads the file; nothing is encoded but the small proto part).
 * `dispose` removes the dir; call it when the last of those sessions is created. Anything else is
 * returned as it is.
 */
export function pinForSessions(source: ModelSource): PinnedSource {
  const asIs = { source, dispose: () => {} };
  if (!(source instanceof Model) || source.externalDataRoot !== undefined) return asIs;
  const proto = exportModel(source);
  if (!needsExternalData(proto)) return asIs;
  const dir = mkdtempSync(join(os.tmpdir(), 'modelpress-pinned-'));
  const dispose = () => rmSync(dir, { recursive: true, force: true });
  try {
    const { modelPath } = writeModelWithExternalData(proto, join(dir, 'model.onnx'));
    sessionRoutes.tempWrites++;
    // we wrote these locations; the model was imported before, so its domains are known to be acceptable
    const { model } = decodeModelWithFiles(readFileSync(modelPath), dir, { readExternalData: 'small', allowUnknownDomains: true });
    return { source: model, dispose };
  } catch (err) {
    dispose();
    throw err;
  }
}

export async function createSession(source: ModelSource, opts: SessionOptions = {}): Promise<ort.InferenceSession> {
  if (!(source instanceof Model)) return createFrom(source, opts);
  return createFromProto(exportModel(source), opts, source.externalDataRoot);
}

/**
 * Weights held in memory above which a session is made through a temp data file rather than from
 * encoded bytes: bytes cost an encoded copy in JS and onnxruntime's parsed copy besides its tensors
 * (BERT-base, 440 MB: 1.98 GB peak at load from bytes, 0.85 GB through the file, and faster).
 */
export const SESSION_FILE_OVER_BYTES = 256 * 2 ** 20;

async function createFromProto(proto: ModelProto, opts: SessionOptions, dataDir: string | undefined): Promise<ort.InferenceSession> {
  if (dataDir !== undefined) return createFrom(encodeModelProto(proto), opts, dataDir);
  if (tensorPayloadBytes(proto) <= SESSION_FILE_OVER_BYTES) return createFrom(encodeModelProto(proto), opts);
  const dir = mkdtempSync(join(os.tmpdir(), 'modelpress-session-'));
  try {
    const { modelPath } = writeModelWithExternalData(proto, join(dir, 'model.onnx'));
    sessionRoutes.tempDir++;
    sessionRoutes.tempWrites++;
    return await createFrom(modelPath, opts);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

let feedObserver: ((feeds: Feeds) => void) | null = null;

/** Sees every feed any session runs from now on (null stops): tests prove which samples reached which step. */
export function observeFeeds(observer: ((feeds: Feeds) => void) | null): void {
  feedObserver = observer;
}

/** `dataDir`: where the external data of `model` (bytes) is, for onnxruntime to read it from there. */
async function createFrom(model: Uint8Array | string, opts: SessionOptions, dataDir?: string): Promise<ort.InferenceSession> {
  const session = await loadSession(model, opts, dataDir);
  const run = session.run.bind(session);
  session.run = ((feeds: Feeds, ...rest: unknown[]) => {
    feedObserver?.(feeds);
    return (run as (...args: unknown[]) => ReturnType<ort.InferenceSession['run']>)(feeds, ...rest);
  }) as ort.InferenceSession['run'];
  return session;
}

async function loadSession(model: Uint8Array | string, opts: SessionOptions, dataDir?: string): Promise<ort.InferenceSession> {
  const options: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: opts.intraOpNumThreads ?? 0,
    interOpNumThreads: 1,
    graphOptimizationLevel: opts.graphOptimizationLevel ?? 'all',
    executionMode: 'sequential',
    enableProfiling: opts.enableProfiling ?? false,
    ...(opts.profileFilePrefix ? { profileFilePrefix: opts.profileFilePrefix } : {}),
    ...(dataDir !== undefined ? { extra: { session: { model_external_initializers_file_folder_path: dataDir } } } : {}),
    // fatal only: every error onnxruntime raises reaches us and is reported once, with a code
    logSeverityLevel: 4,
  };
  if (dataDir !== undefined) sessionRoutes.dataDir++;
  else if (typeof model !== 'string') {
    sessionRoutes.bytes++;
    sessionRoutes.largestBytes = Math.max(sessionRoutes.largestBytes, model.length);
  }
  try {
    return await (typeof model === 'string' ? ort.InferenceSession.create(model, options) : ort.InferenceSession.create(model, options));
  } catch (err) {
    const message = (err as Error).message;
    if (OUT_OF_MEMORY_TEXT.test(message)) throw new MemoryLimitError(`onnxruntime ran out of memory loading the model: ${message}`, { cause: err });
    if (MISSING_KERNEL_TEXT.test(message)) throw new UnsupportedModelError(`onnxruntime cannot run the model: ${message}`, { cause: err });
    throw new InvalidModelError(`onnxruntime cannot load the model: ${message}`, { cause: err });
  }
}

/** Loads, runs once, releases. For tests and one-off checks; benchmarks keep their session. */
export async function runOnce(model: ModelSource, feeds: Feeds, opts: SessionOptions = {}): Promise<Record<string, ort.Tensor>> {
  const session = await createSession(model, opts);
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

/**
 * Runs the session fetching only its tensor outputs: onnxruntime-node cannot return sequences, maps or
 * optionals, and values exposed for analysis (runtime/capture.ts) may be any of those.
 */
export async function runTensorOutputs(session: ort.InferenceSession, feeds: Feeds): Promise<Record<string, ort.Tensor>> {
  const names = session.outputMetadata.filter((m) => m.isTensor).map((m) => m.name);
  // a session whose outputs are all sequences or maps has no tensor to give (onnxruntime refuses empty fetches)
  if (names.length === 0) return {};
  return names.length === session.outputNames.length ? session.run(feeds) : session.run(feeds, names);
}

/** Deterministic PRNG (mulberry32) so synthetic inputs are the same on every run. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface SyntheticInputOptions {
  /** Exact shapes per input name; wins over everything else. */
  shapes?: Record<string, number[]>;
  /** Values for symbolic dims by name (e.g. { batch: 8 }). */
  dims?: Record<string, number>;
  /** Size of batch dims (src/runtime/dim-roles.ts). Default 1. */
  batch?: number;
  /** Size of open dims whose name tells nothing. Default 32. */
  dynamicDim?: number;
  /** Fixed values for scalar/integer inputs by name (e.g. { sr: 16000 }). */
  values?: Record<string, number>;
  seed?: number;
}

export interface InputSpec {
  name: string;
  dtype: DT;
  dims: number[];
}

/** The dtype and shape syntheticInputs would give every model input, without allocating anything. */
export function syntheticInputSpecs(model: Model, opts: SyntheticInputOptions = {}): InputSpec[] {
  const initializers = new Set(model.graph.initializers);
  return model.graph.inputs
    .filter((v) => !initializers.has(v)) // IR<4 style default values
    .map((v) => ({ name: v.name, dtype: (v.elemType ?? DT.FLOAT) as DT, dims: resolveShape(v, opts) }));
}

/** Throws MemoryLimitError if any of these inputs is over the per-tensor budget. */
export function assertInputsFit(specs: readonly InputSpec[], hint: string = HINTS.shapes, context = ''): void {
  const limit = maxTensorBytes();
  for (const s of specs) assertTensorFits(`input '${s.name}'${context}`, s.dtype, s.dims, limit, hint);
}

/** Inputs that respect the model's declared dtypes and shapes. Floats ~ U[0,1), ints small. */
export function syntheticInputs(model: Model, opts: SyntheticInputOptions = {}): Feeds {
  const rand = seededRandom(opts.seed ?? 1234);
  const specs = syntheticInputSpecs(model, opts);
  // all of them before the first allocation: declared shapes come from the model, not from us
  assertInputsFit(specs);
  const feeds: Feeds = {};
  for (const { name, dtype, dims } of specs) {
    feeds[name] = fillTensor(dtype, dims, rand, opts.values?.[name] ?? sensibleValue(name, dtype, dims), name);
  }
  return feeds;
}

/** Scalar integer inputs with a well-known meaning get a realistic value instead of noise. */
function sensibleValue(name: string, dtype: number, dims: number[]): number | undefined {
  const scalar = dims.reduce((a, b) => a * b, 1) === 1;
  if (!scalar || (dtype !== DT.INT64 && dtype !== DT.INT32)) return undefined;
  if (/^(sr|sample_?rate|sampling_?rate)$/i.test(name)) return 16000;
  return undefined;
}

function resolveShape(v: Value, opts: SyntheticInputOptions): number[] {
  const fixed = opts.shapes?.[v.name];
  if (fixed) return fixed.map((d) => (Number.isNaN(d) ? (opts.batch ?? 1) : d)); // NaN = the batch dim
  const shape = v.shape;
  if (!shape) throw new InvalidInputError(`input '${v.name}' has no declared shape; give one explicitly (e.g. --shape ${v.name}=1,3,224,224)`);
  return shape.map((d, i) => {
    if (typeof d === 'number' && d > 0) return d;
    const name = typeof d === 'string' && d ? d : undefined;
    if (name && opts.dims?.[name] !== undefined) return opts.dims[name]!;
    const role = dimRole(name, i);
    return role === 'batch' ? (opts.batch ?? 1) : firstSize(role, opts.dynamicDim);
  });
}

function fillTensor(dtype: number, dims: number[], rand: () => number, fixed: number | undefined, name: string): ort.Tensor {
  const n = dims.reduce((a, b) => a * b, 1);
  const type = ORT_TYPE_OF[dtype as DT];
  switch (dtype) {
    case DT.FLOAT:
      return new ort.Tensor('float32', Float32Array.from({ length: n }, () => fixed ?? rand()), dims);
    case DT.FLOAT16:
      return new ort.Tensor('float16', Uint16Array.from({ length: n }, () => float32ToFloat16Bits(fixed ?? rand())), dims);
    case DT.DOUBLE:
      return new ort.Tensor('float64', Float64Array.from({ length: n }, () => fixed ?? rand()), dims);
    case DT.INT64:
      return new ort.Tensor('int64', BigInt64Array.from({ length: n }, () => BigInt(fixed ?? Math.floor(rand() * 4))), dims);
    case DT.INT32:
      return new ort.Tensor('int32', Int32Array.from({ length: n }, () => fixed ?? Math.floor(rand() * 4)), dims);
    case DT.UINT8:
      return new ort.Tensor('uint8', Uint8Array.from({ length: n }, () => fixed ?? Math.floor(rand() * 256)), dims);
    case DT.INT8:
      return new ort.Tensor('int8', Int8Array.from({ length: n }, () => fixed ?? Math.floor(rand() * 256) - 128), dims);
    case DT.BOOL:
      return new ort.Tensor('bool', Uint8Array.from({ length: n }, () => (fixed !== undefined ? (fixed ? 1 : 0) : rand() < 0.5 ? 1 : 0)), dims);
    default:
      throw new InvalidInputError(`cannot synthesize input '${name}' of type ${type ?? dtypeName(dtype)}; provide data`);
  }
}

/** A session of `model` with `extra` main-graph values exposed as outputs, made by the same routes as createSession. */
export async function createSessionWithOutputs(model: Model, extra: readonly Value[], opts: SessionOptions = {}): Promise<ort.InferenceSession> {
  return createFromProto(exportModelWithOutputs(model, extra), opts, model.externalDataRoot);
}

/** A session that computes only `values` (its outputs) and runs only the nodes they need. */
export async function createSessionForValues(model: Model, values: readonly Value[], opts: SessionOptions = {}): Promise<ort.InferenceSession> {
  return createFromProto(exportModelForValues(model, values), opts, model.externalDataRoot);
}

export function tensorToFloat32(t: ort.Tensor): Float32Array {
  if (t.type === 'float32') return t.data as Float32Array;
  if (t.type === 'float64' || t.type.startsWith('int') || t.type.startsWith('uint')) {
    return Float32Array.from(t.data as ArrayLike<number | bigint>, (x) => Number(x));
  }
  if (t.type === 'bool') return Float32Array.from(t.data as Uint8Array);
  if (t.type === 'float16') {
    const d = t.data as unknown as { buffer: ArrayBuffer; byteOffset: number; length: number };
    return float16ArrayToFloat32(new Uint16Array(d.buffer, d.byteOffset, d.length));
  }
  throw new InvalidInputError(`cannot compare outputs of type ${t.type}`);
}
