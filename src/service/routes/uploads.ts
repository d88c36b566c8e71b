// Reads a multipart request part by part: files stream to storage (constant memory, sha256 on the way),
// fields are kept as text. Any over-limit part → 413 and every file written so far is deleted.
import type { FastifyRequest } from 'fastify';
import type { FastifyMultipartBaseOptions } from '@fastify/multipart';
import { ServiceError } from '../../errors.js';
import type { Storage, StoredObject } from '../storage/storage.js';

export interface UploadedFile extends StoredObject {
  field: string;
  filename: string;
}

export interface MultipartBody {
  files: Map<string, UploadedFile>;
  fields: Map<string, string>;
  /** Deletes every temporary file of this request (call in finally; promoted files are gone already). */
  discard(): Promise<void>;
}

export async function readMultipart(
  req: FastifyRequest,
  storage: Storage,
  spec: { files: string[]; fields: string[]; maxFileBytes: number; maxFieldBytes: number },
): Promise<MultipartBody> {
  const files = new Map<string, UploadedFile>();
  const fields = new Map<string, string>();
  const written: string[] = [];
  const discard = async () => {
    await Promise.all(written.map((k) => storage.delete(k).catch(() => {})));
  };
  let problem: ServiceError | null = null;
  try {
    const parts = req.parts({
      limits: { fileSize: spec.maxFileBytes, fieldSize: spec.maxFieldBytes, files: spec.files.length + spec.fields.length, fields: spec.fields.length + 4, parts: spec.files.length + spec.fields.length + 4 },
      throwFileSizeLimit: false,
    } as FastifyMultipartBaseOptions);
    for await (const part of parts) {
      if (part.type === 'file' && spec.fields.includes(part.fieldname) && !problem) {
        // a text field sent as a file (curl -F recipe=@recipe.json): read it, bounded
        const chunks: Buffer[] = [];
        let size = 0;
        for await (const chunk of part.file as AsyncIterable<Buffer>) {
          size += chunk.length;
          if (size <= spec.maxFieldBytes) chunks.push(chunk);
        }
        if (size > spec.maxFieldBytes) problem = new ServiceError('payload_too_large', `field '${part.fieldname}' is larger than the limit of ${spec.maxFieldBytes} bytes`);
        else fields.set(part.fieldname, Buffer.concat(chunks).toString('utf8'));
        continue;
      }
      if (part.type === 'file') {
        if (problem || !spec.files.includes(part.fieldname) || files.has(part.fieldname)) {
          part.file.resume(); // always consume
          await new Promise((r) => part.file.once('end', r).once('close', r));
          problem ??= new ServiceError('invalid_input', files.has(part.fieldname) ? `file '${part.fieldname}' sent twice` : `unexpected file field '${part.fieldname}'; expected ${spec.files.join(', ')}`);
          continue;
        }
        const stored = await storage.putStream(part.file);
        written.push(stored.key);
        if (part.file.truncated) {
          problem = new ServiceError('payload_too_large', `file '${part.fieldname}' is larger than the limit of ${spec.maxFileBytes} bytes`);
          continue;
        }
        files.set(part.fieldname, { ...stored, field: part.fieldname, filename: part.filename });
      } else {
        if (part.valueTruncated) {
          problem ??= new ServiceError('payload_too_large', `field '${part.fieldname}' is larger than the limit of ${spec.maxFieldBytes} bytes`);
          continue;
        }
        if (!spec.fields.includes(part.fieldname)) {
          problem ??= new ServiceError('invalid_input', `unexpected field '${part.fieldname}'; expected ${spec.fields.join(', ')} and files ${spec.files.join(', ')}`);
          continue;
        }
        fields.set(part.fieldname, String(part.value));
      }
    }
  } catch (err) {
    await discard();
    const e = err as { code?: string; message?: string };
    if (e.code === 'FST_FILES_LIMIT' || e.code === 'FST_PARTS_LIMIT' || e.code === 'FST_FIELDS_LIMIT') {
      throw new ServiceError('payload_too_large', e.message ?? 'too many parts');
    }
    throw err;
  }
  if (problem) {
    await discard();
    throw problem;
  }
  return { files, fields, discard };
}

/** Data files keep their (checked) extension: the readers pick the format by it. */
export function dataExtension(filename: string, field: string): string {
  const m = /\.(npz|npy|json)$/i.exec(filename);
  if (!m) throw new ServiceError('invalid_input', `file '${field}' must be .npz, .npy or .json (got '${filename}')`);
  return m[1]!.toLowerCase();
}
