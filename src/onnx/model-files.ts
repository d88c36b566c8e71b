// A model that came with its files (a path on the command line, an unpacked bundle): decoded with
// its external data checked inside its directory, and in the form onnxruntime will take.
import { needsExternalData } from './external-write.js';
import type { Model } from './ir.js';
import { decodeModel, decodeModelWithFiles, encodeModelProto, exportModel } from './model-io.js';

export interface LoadedModel {
  model: Model;
  /**
   * What runs it: encoded bytes, or the model itself — when it keeps its large tensors in their
   * data files (onnxruntime reads them there), or is too large for one protobuf.
   */
  source: Uint8Array | Model;
  /** The .onnx file plus its external data. */
  sizeBytes: number;
  externalBytes: number;
}

/**
 * `bytes` of a .onnx file whose external data files (if any) sit inside `root`. Large tensors stay
 * in their files (checked, not read): onnxruntime maps them from there rather than taking a copy of
 * the model as bytes, and a pass reads them when it runs (withWeights), so a model is never held
 * twice. Small ones are read, for the analyses that need their values.
 */
export function loadModelWithFiles(bytes: Uint8Array, root: string, opts: { readAll?: boolean } = {}): LoadedModel {
  // readAll: the directory goes away after loading (an unpacked bundle), so nothing may stay in it
  const { model, externalBytes } = decodeModelWithFiles(bytes, root, { readExternalData: opts.readAll ? 'all' : 'small' });
  if (externalBytes === 0) return { model, source: bytes, sizeBytes: bytes.length, externalBytes };
  const sizeBytes = bytes.length + externalBytes;
  const proto = exportModel(model);
  if (model.externalDataRoot !== undefined || needsExternalData(proto)) return { model, source: model, sizeBytes, externalBytes };
  // Only small tensors were external: encoded once for onnxruntime, and decoded again as views
  // into those bytes, so the weights are held once, not twice.
  const encoded = encodeModelProto(proto);
  return { model: decodeModel(encoded), source: encoded, sizeBytes, externalBytes };
}

/** Shapes, types and sizes only (for `inspect`): external data is checked (locations, bounds) but not read. */
export function loadModelMetadata(bytes: Uint8Array, root: string): { model: Model; sizeBytes: number } {
  const { model, externalBytes } = decodeModelWithFiles(bytes, root, { readExternalData: 'none' });
  return { model, sizeBytes: bytes.length + externalBytes };
}
