// Model inputs from user data: arrays keyed by input name, sliced into batches along axis 0.
import { closeSync, existsSync, fstatSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fromBinary } from '@bufbuild/protobuf';
import { TensorProtoSchema } from 'onnx-buf';
import { readTensor } from '../onnx/tensor-data.js';
import { InvalidInputError, UnsupportedModelError } from '../errors.js';
import { HINTS, assertTensorFits } from '../onnx/budget.js';
import { DataType as DT, ORT_TYPE_OF, dtypeFromOrtType, dtypeName } from '../onnx/dtypes.js';
import type { Model } from '../onnx/ir.js';
import { ort, type Feeds } from '../runtime/ort.js';
import { isNpy, parseNpy, parseNpyHeader, parseNpz, type NpyArray } from './npy.js';

const NPY_TO_ONNX: Record<string, DT> = {
  float32: DT.FLOAT,
  float64: DT.DOUBLE,
  float16: DT.FLOAT16,
  int8: DT.INT8,
  uint8: DT.UINT8,
  int16: DT.INT16,
  uint16: DT.UINT16,
  int32: DT.INT32,
  uint32: DT.UINT32,
  int64: DT.INT64,
  uint64: DT.UINT64,
  bool: DT.BOOL,
};

const ONNX_TO_NPY = Object.fromEntries(Object.entries(NPY_TO_ONNX).map(([k, v]) => [v, k])) as Record<number, NpyArray['dtype']>;

/** The test_data_set_* directories of an ONNX test-data directory, or the directory itself when it is one set. */
function pbSetDirs(dir: string): string[] {
  const sets = readdirSync(dir)
    .filter((f) => f.startsWith('test_data_set_'))
    .sort((a, b) => Number(a.slice(14)) - Number(b.slice(14)))
    .map((f) => join(dir, f));
  return sets.length > 0 ? sets : [dir];
}

/**
 * One test_data_set: its input_<i>.pb TensorProtos by model input name, as tensors. A set is one
 * complete feed, not a batch: its inputs may have any leading dimensions (a Gemm's A and C, a
 * sequence and its lengths), and string tensors are fed as they are.
 */
function readPbSet(d: string, model?: Model): Map<string, ort.Tensor> {
  const inputs = model ? modelInputs(model) : [];
  const files = readdirSync(d)
    .filter((f) => /^input_\d+\.pb$/.test(f))
    .sort((a, b) => Number(a.match(/\d+/)![0]) - Number(b.match(/\d+/)![0]));
  if (files.length === 0 && (!model || inputs.length > 0)) throw new InvalidInputError(`'${d}' has no input_<i>.pb files`);
  const set = new Map<string, ort.Tensor>();
  for (const f of files) {
    const i = Number(f.match(/\d+/)![0]);
    const input = inputs[i]; // the ONNX test layout feeds by position
    if (input && input.type?.value.case !== 'tensorType') {
      throw new UnsupportedModelError(`model input '${input.name}' is a ${String(input.type?.value.case ?? 'untyped value').replace(/Type$/, '')}, not a tensor: only tensor inputs can be fed (onnxruntime-node takes no sequences, maps or optionals)`);
    }
    let t;
    try {
      t = fromBinary(TensorProtoSchema, readFileSync(join(d, f)));
    } catch (err) {
      throw new InvalidInputError(`'${join(d, f)}' is not a TensorProto: ${(err as Error).message}`);
    }
    const name = t.name && inputs.some((v) => v.name === t.name) ? t.name : input?.name || t.name || `input_${i}`;
    if (t.dataType === DT.STRING) {
      const text = new TextDecoder();
      set.set(name, new ort.Tensor('string', t.stringData.map((b) => text.decode(b)), t.dims.map(Number)));
      continue;
    }
    const { dtype, dims, data } = readTensor(t);
    const type = ORT_TYPE_OF[dtype];
    if (!type) throw new InvalidInputError(`'${join(d, f)}': unsupported element type ${dtypeName(dtype)}`);
    set.set(name, new ort.Tensor(type as 'float32', data as Float32Array, dims));
  }
  return set;
}

/** As arrays (labels, and data for models whose sets are batches): every set's arrays stacked along axis 0. */
function readPbDirectory(dir: string, model?: Model): Map<string, NpyArray> {
  const parts = new Map<string, NpyArray[]>();
  for (const d of pbSetDirs(dir)) {
    for (const [name, t] of readPbSet(d, model)) {
      if (t.type === 'string') throw new InvalidInputError(`'${d}': '${name}' holds strings, which cannot be read as an array`);
      if (!parts.has(name)) parts.set(name, []);
      parts.get(name)!.push({ dtype: t.type as NpyArray['dtype'], shape: [...t.dims], data: t.data as NpyArray['data'] });
    }
  }
  return new Map([...parts].map(([name, arrs]) => [name, concatAxis0(arrs, name)]));
}

function concatAxis0(arrs: NpyArray[], name: string): NpyArray {
  if (arrs.length === 1) return arrs[0]!;
  const first = arrs[0]!;
  const tail = JSON.stringify(first.shape.slice(1));
  if (arrs.some((a) => a.dtype !== first.dtype || JSON.stringify(a.shape.slice(1)) !== tail)) {
    throw new InvalidInputError(`input '${name}': test data sets differ in dtype or shape beyond axis 0`);
  }
  const total = arrs.reduce((s, a) => s + a.data.length, 0);
  const shape = [arrs.reduce((s, a) => s + (a.shape[0] ?? 1), 0), ...first.shape.slice(1)];
  assertTensorFits(`input '${name}'`, first.dtype, shape, undefined, HINTS.data);
  const data = new (first.data.constructor as new (n: number) => NpyArray['data'])(total);
  let off = 0;
  for (const a of arrs) {
    (data as Float32Array).set(a.data as Float32Array, off);
    off += a.data.length;
  }
  return { dtype: first.dtype, shape, data };
}

/** JSON: `{ "<name>": nested arrays | {dtype, shape, data} }`; bare nested arrays default to float32. */
function readJsonArrays(text: string, path: string): Map<string, NpyArray> {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new InvalidInputError(`'${path}' is not valid JSON: ${(err as Error).message}`);
  }
  if (Array.isArray(doc)) doc = { labels: doc };
  if (!doc || typeof doc !== 'object') throw new InvalidInputError(`'${path}': expected an object of arrays`);
  const out = new Map<string, NpyArray>();
  for (const [name, v] of Object.entries(doc as Record<string, unknown>)) {
    const spec: { dtype?: string; shape?: number[]; data?: unknown[] } = Array.isArray(v) ? { dtype: 'float32', data: v } : (v as object);
    const flat = (spec.data ?? []).flat(Infinity) as number[];
    const shape = spec.shape ?? shapeOfNested(spec.data ?? []);
    const dtype = (spec.dtype ?? 'float32') as NpyArray['dtype'];
    const onnx = NPY_TO_ONNX[dtype];
    const Ctor = onnx !== undefined ? ARRAY_OF[dtype] : undefined;
    if (!Ctor) throw new InvalidInputError(`'${path}': '${name}' has unsupported dtype '${dtype}'`);
    if (flat.length !== shape.reduce((a, b) => a * b, 1)) throw new InvalidInputError(`'${path}': '${name}' has ${flat.length} values for shape [${shape.join(',')}]`);
    const data = Ctor === BigInt64Array ? BigInt64Array.from(flat, (x) => BigInt(x)) : (Ctor as Float32ArrayConstructor).from(flat as number[]);
    out.set(name, { dtype, shape, data });
  }
  return out;
}

const ARRAY_OF: Partial<Record<NpyArray['dtype'], unknown>> = {
  float32: Float32Array,
  float64: Float64Array,
  int8: Int8Array,
  uint8: Uint8Array,
  int32: Int32Array,
  int64: BigInt64Array,
  bool: Uint8Array,
};

function shapeOfNested(v: unknown): number[] {
  const shape: number[] = [];
  let cur = v;
  while (Array.isArray(cur)) {
    shape.push(cur.length);
    cur = cur[0];
  }
  return shape;
}

/** Reads an .npz (name → array), an .npy (one-input models), a .json, or an ONNX .pb test-data directory. */
export function readArraysFile(path: string, model?: Model): Map<string, NpyArray> {
  if (existsSync(path) && statSync(path).isDirectory()) return readPbDirectory(path, model);
  let buf: Uint8Array;
  try {
    buf = readFileSync(path);
  } catch (err) {
    throw new InvalidInputError(`cannot read data file '${path}': ${(err as Error).message}`);
  }
  if (path.endsWith('.json')) return readJsonArrays(new TextDecoder().decode(buf), path);
  if (path.endsWith('.pb')) {
    const { dtype, dims, data } = readTensor(fromBinary(TensorProtoSchema, buf));
    return new Map([['labels', { dtype: ONNX_TO_NPY[dtype]!, shape: dims, data }]]);
  }
  if (isNpy(buf)) {
    const inputs = model ? modelInputs(model) : [];
    if (inputs.length !== 1) throw new InvalidInputError(`'${path}' is a single .npy array; the model has ${inputs.length} inputs — use an .npz keyed by input name`);
    return new Map([[inputs[0]!.name, parseNpy(buf, path)]]);
  }
  return parseNpz(buf, path);
}

function modelInputs(model: Model) {
  const inits = new Set(model.graph.initializers);
  return model.graph.inputs.filter((v) => !inits.has(v));
}

export interface BatchOptions {
  batchSize: number;
  maxSamples?: number;
}

/** Number of samples (axis-0 length) common to all arrays, checked against the model's inputs. */
export function checkArraysForModel(model: Model, arrays: Map<string, NpyArray>, label: string): number {
  checkInputsPresent(model, arrays, label);
  let samples: number | undefined;
  for (const v of modelInputs(model)) {
    const n = arrays.get(v.name)!.shape[0] ?? 1;
    if (samples !== undefined && n !== samples) throw new InvalidInputError(`${label}: inputs disagree on the number of samples (${samples} vs ${n})`);
    samples = n;
  }
  return samples ?? 0;
}

/** Every model input has an array of its dtype, rank and fixed dims (beyond the batch axis). */
function checkInputsPresent(model: Model, arrays: ReadonlyMap<string, { dtype: string; shape: readonly number[] }>, label: string): void {
  for (const v of modelInputs(model)) {
    const arr = arrays.get(v.name);
    if (!arr) throw new InvalidInputError(`${label}: no array for model input '${v.name}' (found: ${[...arrays.keys()].join(', ') || 'none'})`);
    const want = v.elemType;
    if (want !== undefined && dtypeFromOrtType(arr.dtype) !== want) {
      throw new InvalidInputError(`${label}: input '${v.name}' is ${arr.dtype} in the data but ${dtypeName(want)} in the model`);
    }
    const shape = v.shape;
    if (shape) {
      if (arr.shape.length !== shape.length) {
        throw new InvalidInputError(`${label}: input '${v.name}' has shape [${arr.shape.join(',')}] but the model expects rank ${shape.length} [${shape.map((d) => d ?? '?').join(',')}]`);
      }
      shape.forEach((d, i) => {
        if (i > 0 && typeof d === 'number' && d > 0 && arr.shape[i] !== d) {
          throw new InvalidInputError(`${label}: input '${v.name}' dim ${i} is ${arr.shape[i]} but the model fixes it to ${d}`);
        }
      });
    }
  }
}

/** Yields feeds of up to `batchSize` samples; tensors are views, so memory stays bounded by the file. */
export function* batchesFromArrays(model: Model, arrays: Map<string, NpyArray>, opts: BatchOptions, label = 'data'): Generator<Feeds> {
  const total = Math.min(checkArraysForModel(model, arrays, label), opts.maxSamples ?? Infinity);
  for (let start = 0; start < total; start += opts.batchSize) {
    const end = Math.min(total, start + opts.batchSize);
    const feeds: Feeds = {};
    for (const v of modelInputs(model)) feeds[v.name] = sliceAxis0(arrays.get(v.name)!, start, end);
    yield feeds;
  }
}

export function sliceAxis0(arr: NpyArray, start: number, end: number): ort.Tensor {
  const row = arr.shape.slice(1).reduce((a, b) => a * b, 1);
  return arrayToTensor({ ...arr, shape: [end - start, ...arr.shape.slice(1)], data: arr.data.subarray(start * row, end * row) });
}

/** The array as an onnxruntime tensor of its own shape (a view, no copy). */
function arrayToTensor(arr: NpyArray): ort.Tensor {
  const type = arr.dtype === 'float16' ? 'float16' : ORT_TYPE_OF[NPY_TO_ONNX[arr.dtype]!]!;
  return new ort.Tensor(type as 'float32', arr.data as Float32Array, arr.shape);
}

/** Labels: one array (npy, one-entry npz, .pb, or JSON `{"labels": [...]}` / a bare array), one per sample. */
export function readLabelsFile(path: string): ArrayLike<number | bigint> {
  let arrays: Map<string, NpyArray>;
  if (path.endsWith('.npy')) {
    let buf: Uint8Array;
    try {
      buf = readFileSync(path);
    } catch (err) {
      throw new InvalidInputError(`cannot read labels '${path}': ${(err as Error).message}`);
    }
    arrays = new Map([['labels', parseNpy(buf, path)]]);
  } else arrays = readArraysFile(path);
  if (arrays.size !== 1) throw new InvalidInputError(`'${path}': expected one labels array, found ${arrays.size} (${[...arrays.keys()].join(', ')})`);
  const arr = [...arrays.values()][0]!;
  return arr.data as ArrayLike<number | bigint>;
}

/** A dataset read batch by batch. */
export interface Dataset {
  samples: number;
  batches(opts: BatchOptions): Generator<Feeds>;
}

/**
 * Opens user data for streaming. A one-input model's .npy is read with positional reads, so memory
 * is bounded by the batch, not the file; other formats are read whole (npz entries, .pb, JSON).
 */
export function openDataset(path: string, model: Model): Dataset {
  const inputs = modelInputs(model);
  if (path.endsWith('.npy') && inputs.length === 1) {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (err) {
      throw new InvalidInputError(`cannot read data file '${path}': ${(err as Error).message}`);
    }
    const head = new Uint8Array(Math.min(65536, fstatSync(fd).size));
    readSync(fd, head, 0, head.length, 0);
    const h = parseNpyHeader(head, path);
    const input = inputs[0]!;
    const probe: NpyArray = { dtype: h.dtype, shape: h.shape, data: new h.ctor(new ArrayBuffer(0), 0, 0) };
    const samples = checkArraysForModel(model, new Map([[input.name, probe]]), path);
    const row = h.shape.slice(1).reduce((a, b) => a * b, 1);
    const rowBytes = row * h.ctor.BYTES_PER_ELEMENT;
    if (fstatSync(fd).size < h.dataOffset + samples * rowBytes) throw new InvalidInputError(`${path}: truncated .npy file`);
    return {
      samples,
      *batches(opts: BatchOptions) {
        const total = Math.min(samples, opts.maxSamples ?? Infinity);
        try {
          // one batch is all this path ever holds: that is what must fit
          assertTensorFits(`input '${input.name}' (a batch of ${path})`, h.dtype, [Math.min(opts.batchSize, total), ...h.shape.slice(1)], undefined, 'give a smaller --batch, or raise the limit');
          for (let start = 0; start < total; start += opts.batchSize) {
            const n = Math.min(opts.batchSize, total - start);
            const buf = new ArrayBuffer(n * rowBytes);
            readSync(fd, new Uint8Array(buf), 0, n * rowBytes, h.dataOffset + start * rowBytes);
            yield { [input.name]: sliceAxis0({ dtype: h.dtype, shape: [n, ...h.shape.slice(1)], data: new h.ctor(buf, 0, n * row) }, 0, n) };
          }
        } finally {
          closeSync(fd);
        }
      },
    };
  }
  if (existsSync(path) && statSync(path).isDirectory()) {
    // each test_data_set_* is one complete feed, its inputs as they are: never split, never stacked
    const sets = pbSetDirs(path).map((d) => readPbSet(d, model));
    for (const set of sets) checkInputsPresent(model, new Map([...set].map(([name, t]) => [name, { dtype: t.type, shape: t.dims }])), path);
    return {
      samples: sets.length,
      *batches(opts: BatchOptions) {
        const total = Math.min(sets.length, opts.maxSamples ?? Infinity);
        for (let i = 0; i < total; i++) {
          const set = sets[i]!;
          yield Object.fromEntries(inputs.map((v) => [v.name, set.get(v.name)!]));
        }
      },
    };
  }
  const arrays = readArraysFile(path, model);
  return {
    samples: checkArraysForModel(model, arrays, path),
    batches: (opts: BatchOptions) => batchesFromArrays(model, arrays, opts, path),
  };
}
