// Model inputs from user data: arrays keyed by input name, sliced into batches along axis 0.
import { readFileSync } from 'node:fs';
import { InvalidInputError } from '../errors.js';
import { DataType as DT, ORT_TYPE_OF, dtypeName } from '../onnx/dtypes.js';
import type { Model } from '../onnx/ir.js';
import { ort, type Feeds } from '../runtime/ort.js';
import { isNpy, parseNpy, parseNpz, type NpyArray } from './npy.js';

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

/** Reads an .npz (name → array) or, for single-input models, an .npy file. */
export function readArraysFile(path: string, model?: Model): Map<string, NpyArray> {
  let buf: Uint8Array;
  try {
    buf = readFileSync(path);
  } catch (err) {
    throw new InvalidInputError(`cannot read data file '${path}': ${(err as Error).message}`);
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
  let samples: number | undefined;
  for (const v of modelInputs(model)) {
    const arr = arrays.get(v.name);
    if (!arr) throw new InvalidInputError(`${label}: no array for model input '${v.name}' (found: ${[...arrays.keys()].join(', ') || 'none'})`);
    const want = v.elemType;
    if (want !== undefined && NPY_TO_ONNX[arr.dtype] !== want) {
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
    const n = arr.shape[0] ?? 1;
    if (samples !== undefined && n !== samples) throw new InvalidInputError(`${label}: inputs disagree on the number of samples (${samples} vs ${n})`);
    samples = n;
  }
  return samples ?? 0;
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
  const data = arr.data.subarray(start * row, end * row);
  const type = arr.dtype === 'float16' ? 'float16' : ORT_TYPE_OF[NPY_TO_ONNX[arr.dtype]!]!;
  return new ort.Tensor(type as 'float32', data as Float32Array, [end - start, ...arr.shape.slice(1)]);
}
