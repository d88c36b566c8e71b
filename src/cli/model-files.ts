// Model files on the command line: a .onnx with its external data files beside it, or a bundle
// (.zip, .tar, .tar.gz of one .onnx and its data files) unpacked by the API's readers (src/bundles/)
// into a private temp dir that is gone once the model is loaded; and outputs written with external data
// when asked or when protobuf cannot hold them (2 GB).
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { MAX_BUNDLE_ENTRIES, sniffUpload, unpackBundle, UNPACKED_PER_PACKED_BYTE, type UploadKind } from '../bundles/unpack.js';
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

/** Small bundles of graph-heavy models compress well; below this, the 4× rule would refuse real ones. */
const MIN_UNPACK_LIMIT = 2 ** 30;
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** MAX_UNPACKED_BYTES, as for the service, or what the service allows an upload of this size. */
function unpackLimit(bundleBytes: number): number {
  const raw = process.env.MAX_UNPACKED_BYTES;
  if (raw === undefined || raw === '') return Math.max(UNPACKED_PER_PACKED_BYTE * bundleBytes, MIN_UNPACK_LIMIT);
  const v = Number(raw);
  if (!Number.isSafeInteger(v) || v < 1) throw new InvalidInputError(`MAX_UNPACKED_BYTES=${JSON.stringify(raw)}: expected a positive whole number of bytes`);
  return v;
}

/**
 * `load` on the bundle at `path` unpacked into a private temp dir, which is removed when `load`
 * returns or throws, or on Ctrl-C/SIGTERM during the unpack (the model is in memory by then: nothing
 * reads the directory afterwards).
 */
async function withUnpackedBundle<T>(path: string, kind: Exclude<UploadKind, 'onnx'>, what: string, load: (bytes: Uint8Array, root: string) => T): Promise<T> {
  const root = mkdtempSync(join(tmpdir(), 'modelpress-bundle-'));
  const remove = () => rmSync(root, { recursive: true, force: true });
  const onSignal = (signal: NodeJS.Signals) => {
    remove();
    for (const s of SIGNALS) process.off(s, onSignal);
    // the signal's default action (exit) unless the command listens for it itself
    if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
  };
  for (const s of SIGNALS) process.on(s, onSignal);
  try {
    const { modelFile } = await unpackBundle(path, kind, root, { maxTotalBytes: unpackLimit(statSync(path).size), maxEntries: MAX_BUNDLE_ENTRIES });
    return load(readBytes(modelFile, what), root);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOSPC') throw new InvalidInputError(`no space left in ${tmpdir()} to unpack the bundle '${path}': point TMPDIR at a disk with room for it`);
    throw err;
  } finally {
    for (const s of SIGNALS) process.off(s, onSignal);
    remove();
  }
}

/** A .onnx read from its directory, or a bundle (told apart by its bytes, as the API does) unpacked first. */
function withModelFiles<T>(path: string, what: string, load: (bytes: Uint8Array, root: string) => T, loadUnpacked = load): Promise<T> {
  // only a regular file is sniffed: a pipe (`<(cat m.onnx)`) would lose the bytes read
  const regular = (() => {
    try {
      return statSync(path).isFile();
    } catch {
      return false; // readBytes says why
    }
  })();
  const kind = regular ? sniffUpload(path) : 'onnx';
  if (kind === 'onnx') return Promise.resolve(load(readBytes(path, what), dirname(resolve(path))));
  return withUnpackedBundle(path, kind, what, loadUnpacked);
}

/**
 * Reads a model file; tensors stored as external data are read from files in the model's
 * directory (or the bundle) only (see src/onnx/external-data.ts for what is refused).
 */
export function loadModelFile(path: string, what = 'model'): Promise<ModelFile> {
  // a bundle's directory is removed once the model is read: its tensors are read whole
  return withModelFiles(path, what, loadModelWithFiles, (bytes, root) => loadModelWithFiles(bytes, root, { readAll: true }));
}

/** For `inspect`: the model's structure and sizes, external data checked but not read. */
export function loadModelFileMetadata(path: string, what = 'model'): Promise<{ model: Model; sizeBytes: number }> {
  return withModelFiles(path, what, loadModelMetadata);
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
