// An uploaded model is checked before the request is accepted: a bundle by its magic bytes (the worker
// unpacks and checks its entries), a plain .onnx by its top-level protobuf framing, read in a few
// small ranges from storage so a large upload is never held in the API's memory.
import { sniffHead } from '../../bundles/unpack.js';
import { checkModelFraming } from '../../onnx/wire-check.js';
import type { Storage, StoredObject } from '../storage/storage.js';

async function readRange(storage: Storage, key: string, position: number, length: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await storage.read(key, { start: position, end: position + length - 1 })) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Throws InvalidModelError (422 invalid_model) when the upload cannot be an ONNX model or bundle. */
export async function assertModelUpload(storage: Storage, upload: StoredObject): Promise<void> {
  const head = await readRange(storage, upload.key, 0, Math.min(512, Math.max(1, upload.sizeBytes)));
  if (upload.sizeBytes > 0 && sniffHead(head) !== 'onnx') return;
  await checkModelFraming((position, length) => readRange(storage, upload.key, position, Math.min(length, upload.sizeBytes - position)), upload.sizeBytes, 'the uploaded `model`');
}
