// Writing a model with its large tensors in one data file beside it (ONNX external data). Protobuf
// cannot encode a message over 2 GB, so past that size this is the only way to save a model; below
// it, it is a choice. The data file is written tensor by tensor with positioned writes, so no
// buffer ever holds all the weights at once, and the proto part stays small.
import { closeSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { basename } from 'node:path';
import { create } from '@bufbuild/protobuf';
import { StringStringEntryProtoSchema, TensorProto_DataLocation, type ModelProto, type TensorProto } from 'onnx-buf';
import { InvalidInputError } from '../errors.js';
import { Model } from './ir.js';
import { encodeModelProto, exportModel, withWeights } from './model-io.js';
import { forEachTensor } from './safety.js';
import { isExternal } from './tensor-data.js';

/** The largest message protobuf (and so onnxruntime given bytes) accepts. */
export const PROTOBUF_LIMIT = 2 ** 31 - 1;
/** Encoded sizes above this are written with external data automatically (tests lower it to force that path). */
export const EXTERNAL_DATA_OVER_ENV = 'MODELPRESS_EXTERNAL_DATA_OVER_BYTES';
/** Room for everything but tensor bytes (names, graph, metadata) when deciding from the tensor bytes alone. */
const PROTO_MARGIN = 64 * 1024 * 1024;

export interface ExternalDataOptions {
  /** Tensors with at least this many raw bytes go to the data file (default 1 KiB). */
  minTensorBytes?: number;
  /** Each tensor starts at a multiple of this (default 4 KiB: page-aligned, so onnxruntime can map it). */
  alignment?: number;
}

export interface WrittenModel {
  modelPath: string;
  /** The data file, when any tensor went there. */
  dataPath?: string;
  /** Bytes of the .onnx file. */
  protoBytes: number;
  /** Bytes of the data file (0 without one). */
  dataBytes: number;
  externalTensors: number;
}

/** The size above which a model is written with external data: the env override or protobuf's limit. */
export function externalDataThreshold(): number {
  const raw = process.env[EXTERNAL_DATA_OVER_ENV];
  if (raw === undefined || raw.trim() === '') return PROTOBUF_LIMIT - PROTO_MARGIN;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new InvalidInputError(`${EXTERNAL_DATA_OVER_ENV} must be a whole number of bytes, got '${raw}'`);
  return n;
}

const protoOf = (model: Model | ModelProto): ModelProto => (model instanceof Model ? exportModel(model) : model);

/** Bytes the model's tensors hold in raw_data: all but a small part of its encoded size. */
export function tensorPayloadBytes(model: Model | ModelProto): number {
  let total = 0;
  forEachTensor(protoOf(model), (t) => {
    total += t.rawData.length;
  });
  return total;
}

/** Whether this model must (or, by the threshold, should) be written with external data. */
export function needsExternalData(model: Model | ModelProto): boolean {
  return tensorPayloadBytes(model) > externalDataThreshold();
}

interface Placed {
  tensor: TensorProto;
  offset: number;
}

/**
 * Encodes the proto part with large tensors pointing into `location`, and says where each tensor's
 * bytes go. The tensors are changed only for the duration of the (synchronous) encode, so the model
 * is the same afterwards.
 */
export function encodeProtoPart(model: Model | ModelProto, location: string, opts: ExternalDataOptions = {}): { proto: Uint8Array; placed: Placed[]; dataBytes: number } {
  const minBytes = opts.minTensorBytes ?? 1024;
  const alignment = opts.alignment ?? 4096;
  const proto = protoOf(model);
  const placed: Placed[] = [];
  let end = 0;
  forEachTensor(proto, (t) => {
    if (isExternal(t) || t.rawData.length === 0 || t.rawData.length < minBytes) return;
    const offset = Math.ceil(end / alignment) * alignment;
    placed.push({ tensor: t, offset });
    end = offset + t.rawData.length;
  });
  const part = encodeWithTensorsChanged(proto, placed.map((p) => p.tensor), (t, i) => {
    const entry = (key: string, value: string) => create(StringStringEntryProtoSchema, { key, value });
    t.externalData = [entry('location', location), entry('offset', String(placed[i]!.offset)), entry('length', String(t.rawData.length))];
    t.dataLocation = TensorProto_DataLocation.EXTERNAL;
    delete (t as Partial<TensorProto>).rawData; // unset: no raw_data field in the proto part
  });
  return { proto: part, placed, dataBytes: end };
}

/**
 * Encodes `proto` with each of `tensors` changed by `change` for the duration of the (synchronous)
 * encode only: their raw_data, external_data and data_location are put back as they were after it.
 */
export function encodeWithTensorsChanged(proto: ModelProto, tensors: readonly TensorProto[], change: (t: TensorProto, i: number) => void): Uint8Array {
  const own = (t: TensorProto, key: keyof TensorProto) => Object.prototype.hasOwnProperty.call(t, key);
  const saved = tensors.map((t) => ({ raw: own(t, 'rawData') ? t.rawData : undefined, loc: own(t, 'dataLocation') ? t.dataLocation : undefined, ext: t.externalData }));
  try {
    tensors.forEach(change);
    return encodeModelProto(proto);
  } finally {
    for (const [i, t] of tensors.entries()) {
      const s = saved[i]!;
      t.externalData = s.ext;
      if (s.raw !== undefined) t.rawData = s.raw;
      else delete (t as Partial<TensorProto>).rawData;
      if (s.loc !== undefined) t.dataLocation = s.loc;
      else delete (t as Partial<TensorProto>).dataLocation;
    }
  }
}

const WRITE_CHUNK = 1 << 30;

/** Writes `outPath` and `<outPath>.data` beside it (location = its base name). */
export function writeModelWithExternalData(model: Model | ModelProto, outPath: string, opts: ExternalDataOptions = {}): WrittenModel {
  const dataPath = `${outPath}.data`;
  const { proto, placed, dataBytes } = encodeProtoPart(model, basename(dataPath), opts);
  if (placed.length > 0) {
    const fd = openSync(dataPath, 'w');
    try {
      for (const { tensor, offset } of placed) {
        const raw = tensor.rawData;
        for (let done = 0; done < raw.length; ) done += writeSync(fd, raw, done, Math.min(WRITE_CHUNK, raw.length - done), offset + done);
      }
    } finally {
      closeSync(fd);
    }
  }
  writeFileSync(outPath, proto);
  return { modelPath: outPath, ...(placed.length > 0 ? { dataPath } : {}), protoBytes: proto.length, dataBytes, externalTensors: placed.length };
}

/**
 * Writes the model to `outPath`: embedded when it fits and external data was not asked for,
 * otherwise with external data (`reason` says why, for the log).
 */
export function writeModelFile(model: Model, outPath: string, opts: { externalData?: boolean } & ExternalDataOptions = {}): WrittenModel & { reason?: string } {
  const proto = exportModel(withWeights(model)); // tensors still in the input's data files are written into ours
  const over = needsExternalData(proto);
  if (!opts.externalData && !over) {
    const bytes = encodeModelProto(proto);
    writeFileSync(outPath, bytes);
    return { modelPath: outPath, protoBytes: bytes.length, dataBytes: 0, externalTensors: 0 };
  }
  const reason = over ? `its tensors hold more than ${externalDataThreshold()} bytes, past what one protobuf can encode (2 GB)` : 'external data was asked for';
  return { ...writeModelWithExternalData(proto, outPath, opts), reason };
}
