// Model files on the command line: a .onnx with its external data files beside it, and outputs
// written with external data when asked or when protobuf cannot hold them (2 GB).
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { InvalidInputError } from '../errors.js';
import { needsExternalData, writeModelFile, type WrittenModel } from '../onnx/external-write.js';
import type { Model } from '../onnx/ir.js';
import { decodeModel, decodeModelWithFiles, encodeModel } from '../onnx/model-io.js';
import type { ModelSource } from '../runtime/ort.js';

export function readBytes(path: string, what: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new InvalidInputError(`cannot read ${what} '${path}': ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
}

export interface ModelFile {
  model: Model;
  /** What runs it: encoded bytes, or the model itself when it is too large for one protobuf. */
  source: ModelSource;
  /** The .onnx file plus the external data read for it. */
  sizeBytes: number;
  externalBytes: number;
}

/**
 * Reads a model file; tensors stored as external data are read from files in the model's
 * directory only (see src/onnx/external-data.ts for what is refused).
 */
export function loadModelFile(path: string, what = 'model'): ModelFile {
  const bytes = readBytes(path, what);
  const { model, externalBytes } = decodeModelWithFiles(bytes, dirname(resolve(path)));
  if (externalBytes === 0) return { model, source: bytes, sizeBytes: bytes.length, externalBytes };
  const sizeBytes = bytes.length + externalBytes;
  if (needsExternalData(model)) return { model, source: model, sizeBytes, externalBytes };
  // Encoded once for onnxruntime; the model is decoded again as views into those bytes, so the
  // weights are held once, not twice.
  const encoded = encodeModel(model);
  return { model: decodeModel(encoded), source: encoded, sizeBytes, externalBytes };
}

/**
 * Writes a result model: the encoded bytes as they are, or `<out>` plus `<out>.data` when external
 * data was asked for or the model is too large for one protobuf. Returns a line for the log, if any.
 */
export function writeModelOutput(model: Model, output: ModelSource, outPath: string, externalData: boolean): string | undefined {
  if (output instanceof Uint8Array && !externalData) {
    writeFileSync(outPath, output);
    return undefined;
  }
  const written: WrittenModel & { reason?: string } = writeModelFile(model, outPath, { externalData });
  if (!written.dataPath) return undefined;
  return `wrote ${written.externalTensors} tensors (${written.dataBytes} bytes) as external data to ${written.dataPath}: ${written.reason}`;
}
