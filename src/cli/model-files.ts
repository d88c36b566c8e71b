// Model files on the command line: a .onnx with its external data files beside it, and outputs
// written with external data when asked or when protobuf cannot hold them (2 GB).
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { InvalidInputError } from '../errors.js';
import { writeModelFile, type WrittenModel } from '../onnx/external-write.js';
import type { Model } from '../onnx/ir.js';
import { loadModelMetadata, loadModelWithFiles, type LoadedModel } from '../onnx/model-files.js';
import type { ModelSource } from '../runtime/ort.js';

export function readBytes(path: string, what: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new InvalidInputError(`cannot read ${what} '${path}': ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message}`);
  }
}

export type ModelFile = LoadedModel;

/**
 * Reads a model file; tensors stored as external data are read from files in the model's
 * directory only (see src/onnx/external-data.ts for what is refused).
 */
export function loadModelFile(path: string, what = 'model'): ModelFile {
  return loadModelWithFiles(readBytes(path, what), dirname(resolve(path)));
}

/** For `inspect`: the model's structure and sizes, external data checked but not read. */
export function loadModelFileMetadata(path: string, what = 'model'): { model: Model; sizeBytes: number } {
  return loadModelMetadata(readBytes(path, what), dirname(resolve(path)));
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
