// A job's model in and its result out. The upload is a plain .onnx or a bundle (.tar, .tar.gz,
// .zip — told apart by magic bytes) unpacked into the job's private directory, and its external
// data is read from there only. A result with external data (asked for by the recipe, or past
// 2 GB) leaves as one .tar of the .onnx and its data file.
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { decodeModel } from '../../onnx/model-io.js';
import { writeModelFile } from '../../onnx/external-write.js';
import { loadModelWithFiles, type LoadedModel } from '../../onnx/model-files.js';
import { Model } from '../../onnx/ir.js';
import type { ModelSource } from '../../runtime/ort.js';
import { MAX_BUNDLE_ENTRIES, sniffUpload, unpackBundle } from '../../bundles/unpack.js';
import { writeTar } from '../../bundles/tar.js';
import type { WrittenModel } from '../jobs/trials.js';
import type { RunMessage } from './protocol.js';

export async function openJobModel(msg: RunMessage): Promise<LoadedModel> {
  const kind = sniffUpload(msg.modelPath);
  if (kind === 'onnx') {
    // bytes alone: a tensor that points at a file is refused (there is no directory to read from)
    const bytes = readFileSync(msg.modelPath);
    return { model: decodeModel(bytes), source: bytes, sizeBytes: bytes.length, externalBytes: 0 };
  }
  const root = join(msg.workDir, 'bundle');
  mkdirSync(root);
  const { modelFile } = await unpackBundle(msg.modelPath, kind, root, { maxTotalBytes: msg.maxUnpackedBytes, maxEntries: MAX_BUNDLE_ENTRIES });
  return loadModelWithFiles(readFileSync(modelFile), root);
}

/** The name the result gets inside a bundle: the input's name, as a plain .onnx file name. */
function resultName(inputName: string | undefined): string {
  const stem = basename(inputName ?? 'model').replace(/\.(onnx|zip|tar|tar\.gz|tgz)$/i, '').replace(/[^\w.-]+/g, '_').slice(0, 80);
  return `${stem && !stem.startsWith('.') ? stem : 'model'}.onnx`;
}

/**
 * Writes a model for the worker to store at `outPath`: its bytes as one .onnx, or (with external
 * data, asked for or past 2 GB) one .tar of the .onnx and its data file.
 */
export async function writeJobModel(model: Model, output: ModelSource, outPath: string, msg: RunMessage, externalData: boolean): Promise<WrittenModel> {
  if (!externalData && !(output instanceof Model)) {
    writeFileSync(outPath, output);
    return { path: outPath, sha256: createHash('sha256').update(output).digest('hex'), sizeBytes: output.length, format: 'onnx' };
  }
  // a scratch folder per model: a search writes several
  const dir = mkdtempSync(join(msg.workDir, 'result-'));
  try {
    const name = resultName(msg.inputName);
    const written = writeModelFile(model, join(dir, name), { externalData: true });
    const files = [{ name, path: written.modelPath }, ...(written.dataPath ? [{ name: basename(written.dataPath), path: written.dataPath }] : [])];
    return { path: outPath, ...(await writeTar(outPath, files)), format: 'tar' };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
