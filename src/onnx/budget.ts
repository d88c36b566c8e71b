// A per-tensor memory budget, checked before anything is allocated. A 100-byte model can declare a
// [1,1,60000,60000] input or a ConstantOfShape of that size; filling it would grow the job until the
// kernel kills it. Every place that sizes a buffer from a shape it did not measure asks here first.
import os from 'node:os';
import { InvalidInputError, MemoryLimitError } from '../errors.js';
import { getConstant } from './constants.js';
import { DTYPES, DataType as DT, dtypeName } from './dtypes.js';
import type { Model, Value } from './ir.js';
import { elementCount, readNumbers, tensorDims } from './tensor-data.js';

export const MAX_TENSOR_ENV = 'MODELPRESS_MAX_TENSOR_MB';

const MB = 1e6;
const GiB = 1024 ** 3;

export const HINTS = {
  shapes: 'give smaller shapes with --shape, or raise the limit',
  batches: 'give smaller shapes with --shape or smaller batch sizes with --batch, or raise the limit',
  data: 'give a smaller data file, or raise the limit',
  model: 'the model itself fixes this size; run it where that much memory is available, with a raised limit',
} as const;

/**
 * The per-tensor byte limit: MODELPRESS_MAX_TENSOR_MB (decimal megabytes) when set, otherwise a
 * quarter of the machine's memory, at most 16 GiB. Read on every call, so the environment decides.
 */
export function maxTensorBytes(): number {
  const raw = process.env[MAX_TENSOR_ENV];
  if (raw !== undefined && raw.trim() !== '') {
    const mb = Number(raw);
    if (!Number.isFinite(mb) || mb <= 0) throw new InvalidInputError(`${MAX_TENSOR_ENV} must be a positive number of megabytes, got '${raw}'`);
    return Math.floor(mb * MB);
  }
  return Math.min(Math.floor(os.totalmem() / 4), 16 * GiB);
}

/** ONNX element type, or a dtype name shared by numpy and onnxruntime ('float32', 'int64', 'bool', …). */
export type DTypeLike = number | string;

function dtypeInfo(dtype: DTypeLike): { name: string; bytes: number | undefined } {
  if (typeof dtype === 'number') {
    const info = DTYPES[dtype as DT];
    return { name: dtypeName(dtype), bytes: info?.bytes };
  }
  const info = Object.values(DTYPES).find((d) => d?.name === dtype);
  return { name: dtype, bytes: info?.bytes };
}

/** Bytes a dense tensor of this type and shape needs (float arithmetic: never overflows). */
export function tensorBytes(dtype: DTypeLike, dims: readonly number[]): number {
  let count = 1;
  for (const d of dims) count *= d;
  const { bytes } = dtypeInfo(dtype);
  if (bytes === 0.5) return Math.ceil(count / 2);
  // strings: onnxruntime holds each element as a std::string (32 bytes); unknown types: at least a byte
  if (bytes === 0) return count * 32;
  return count * (bytes ?? 1);
}

export function formatSize(bytes: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let v = bytes;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return u === 0 ? `${v} B` : `${Number(v.toPrecision(3))} ${units[u]}`;
}

/**
 * Throws MemoryLimitError when a tensor of `dtype[dims]` would be larger than the limit. `what` names
 * it for the user (e.g. "input 'x'"); `hint` says what they can do about it.
 */
export function assertTensorFits(what: string, dtype: DTypeLike, dims: readonly number[], limitBytes: number = maxTensorBytes(), hint: string = HINTS.shapes): void {
  const bytes = tensorBytes(dtype, dims);
  if (!(bytes > limitBytes)) return;
  const { name } = dtypeInfo(dtype);
  throw new MemoryLimitError(
    `${what} would take ${formatSize(bytes)} (${name}[${dims.join(',')}]) — over the per-tensor limit of ${formatSize(limitBytes)} (${MAX_TENSOR_ENV}); ${hint}`,
    { details: { tensor: what, dtype: name, dims: [...dims], bytes, limitBytes } },
  );
}

// ---------------------------------------------------------------- what a model fixes statically

/** A declared shape whose every dim is a known number, else undefined. */
function staticShape(v: Value): number[] | undefined {
  const shape = v.shape;
  if (!shape) return undefined;
  const dims: number[] = [];
  for (const d of shape) {
    if (typeof d !== 'number' || d < 0) return undefined;
    dims.push(d);
  }
  return dims;
}

/** Shape of a value known without running: a constant's dims, or an all-static declared shape. */
function knownDims(v: Value | null | undefined): number[] | undefined {
  if (!v) return undefined;
  const c = getConstant(v);
  return c ? tensorDims(c) : staticShape(v);
}

function knownElemType(v: Value | null | undefined): number | undefined {
  if (!v) return undefined;
  return getConstant(v)?.dataType || v.elemType;
}

/** The values of a small constant integer tensor (a shape or repeats), or undefined. */
function constantInts(v: Value | null | undefined): number[] | undefined {
  const c = getConstant(v);
  // a shape has one entry per axis; anything longer is not a shape we can reason about
  if (!c || tensorDims(c).length !== 1 || elementCount(tensorDims(c)) > 64) return undefined;
  if (c.dataType !== DT.INT64 && c.dataType !== DT.INT32) return undefined;
  let values: number[];
  try {
    values = readNumbers(c);
  } catch {
    return undefined; // a malformed constant is verifyModel's or onnxruntime's to report, not the budget's
  }
  return values.every((x) => Number.isFinite(x) && x >= 0) ? values : undefined;
}

/** numpy-style broadcast of two shapes, aligned on the right. */
function broadcast(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1;
    const y = b[b.length - n + i] ?? 1;
    out.push(x === 1 ? y : y === 1 ? x : Math.max(x, y));
  }
  return out;
}

/** Output shape of a shape-making node whose shape/repeats input is a constant (input dims not known count as 1: a lower bound). */
function nodeOutputDims(op: string, inputs: readonly (Value | null)[]): number[] | undefined {
  switch (op) {
    case 'ConstantOfShape':
      return constantInts(inputs[0]);
    case 'Expand': {
      const shape = constantInts(inputs[1]);
      if (!shape) return undefined;
      return broadcast(knownDims(inputs[0]) ?? [], shape);
    }
    case 'Tile': {
      const repeats = constantInts(inputs[1]);
      if (!repeats) return undefined;
      const dims = knownDims(inputs[0]);
      return repeats.map((r, i) => (dims && dims.length === repeats.length ? dims[i]! : 1) * r);
    }
    default:
      return undefined;
  }
}

/**
 * Refuses a model whose declared tensors are too big before anything runs: graph inputs, outputs
 * and value_info with all-static shapes, and ConstantOfShape / Expand / Tile outputs whose shape or
 * repeats input is a constant — in every graph and subgraph. Linear in the model's size.
 */
export function assertModelFitsBudget(model: Model, limitBytes: number = maxTensorBytes()): void {
  for (const g of model.allGraphs()) {
    const where = g.ownerNode ? ` (in a subgraph of ${g.ownerNode})` : '';
    const check = (kind: string, v: Value) => {
      if (v.initializer) return; // already in memory: the model file holds it
      const dims = staticShape(v);
      if (!dims) return;
      assertTensorFits(`${kind} '${v.name}'${where}`, v.elemType ?? 0, dims, limitBytes, kind === 'input' ? HINTS.shapes : HINTS.model);
    };
    for (const v of g.inputs) check('input', v);
    for (const v of g.outputs) check('output', v);
    for (const v of g.valueInfo) check('value', v);
    for (const n of g.nodes) {
      if (n.domain !== '' && n.domain !== 'ai.onnx') continue;
      const dims = nodeOutputDims(n.opType, n.inputs);
      if (!dims) continue;
      const out = n.outputs[0];
      let dtype: number | undefined;
      if (n.opType === 'ConstantOfShape') dtype = n.attr('value')?.proto.t?.dataType || DT.FLOAT;
      else dtype = knownElemType(n.inputs[0]) ?? out?.elemType;
      assertTensorFits(`${n.opType} ${n.name ? `'${n.name}' ` : ''}output '${out?.name ?? ''}'${where}`, dtype ?? 0, dims, limitBytes, HINTS.model);
    }
  }
}
