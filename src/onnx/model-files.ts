// A model that came with its files (a path on the command line, an unpacked bundle): decoded with
// its external data read from inside its directory, and in the form onnxruntime will take.
import { needsExternalData } from './external-write.js';
import type { Model } from './ir.js';
import { decodeModel, decodeModelWithFiles, encodeModelProto, exportModel } from './model-io.js';

export interface LoadedModel {
  model: Model;
  /** What runs it: encoded bytes, or the model itself when it is too large for one protobuf. */
  source: Uint8Array | Model;
  /** The .onnx file plus the external data read for it. */
  sizeBytes: number;
  externalBytes: number;
}

/** `bytes` of a .onnx file whose external data files (if any) sit inside `root`. */
export function loadModelWithFiles(bytes: Uint8Array, root: string): LoadedModel {
  const { model, externalBytes } = decodeModelWithFiles(bytes, root);
  if (externalBytes === 0) return { model, source: bytes, sizeBytes: bytes.length, externalBytes };
  const sizeBytes = bytes.length + externalBytes;
  const proto = exportModel(model);
  if (needsExternalData(proto)) return { model, source: model, sizeBytes, externalBytes };
  // Encoded once for onnxruntime; the model is decoded again as views into those bytes, so the
  // weights are held once, not twice.
  const encoded = encodeModelProto(proto);
  return { model: decodeModel(encoded), source: encoded, sizeBytes, externalBytes };
}

/** Shapes, types and sizes only: external data is checked (locations, bounds) but not read, so the model cannot be run. */
export function loadModelMetadata(bytes: Uint8Array, root: string): { model: Model; sizeBytes: number } {
  const { model, externalBytes } = decodeModelWithFiles(bytes, root, { readExternalData: false });
  return { model, sizeBytes: bytes.length + externalBytes };
}
