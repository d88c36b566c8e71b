// Stored models: uploaded once, compressed with many recipes. Identical bytes are one row per owner
// and one blob for everyone; the owner's count and byte quotas hold under concurrent uploads.
import { ServiceError } from '../../errors.js';
import type { ServiceConfig } from '../config.js';
import type { Db, StoredModel } from '../db/client.js';
import { storeModel, withOwnerLock, type UploadedModel } from '../db/owners.js';
import { UUID_RE } from '../ids.js';
import type { Storage } from '../storage/storage.js';
import { assertModelUpload } from './check.js';
import { readFile } from 'node:fs/promises';
import { sniffHead } from '../../bundles/unpack.js';
import { decodeModel } from '../../onnx/model-io.js';
import { summarizeModel, type ModelSummary } from '../../onnx/inspect.js';

/** The owner's model; other owners' models look exactly like missing ones. */
export async function ownModel(db: Db, ownerId: string, id: string): Promise<StoredModel> {
  const model = UUID_RE.test(id) ? await db.storedModel.findFirst({ where: { id, ownerId } }) : null;
  if (!model) throw new ServiceError('not_found', `no model ${id}`);
  return model;
}

/** Larger models are not read into the API process for a summary. */
export const SUMMARY_MAX_BYTES = 512 * 1024 * 1024;

export class ModelService {
  private readonly summaries = new Map<string, ModelSummary>();

  constructor(private readonly deps: { db: Db; storage: Storage; config: ServiceConfig }) {}

  /** Stores an upload (a temporary object) for its owner; `created` is false for bytes the owner stored before. */
  async upload(ownerId: string, upload: UploadedModel): Promise<{ model: StoredModel; created: boolean }> {
    const { db, storage, config } = this.deps;
    await assertModelUpload(storage, upload);
    return withOwnerLock(db, ownerId, (tx) => storeModel(tx, storage, config, ownerId, upload));
  }

  /** The owner's models, newest first. */
  list(ownerId: string, limit: number): Promise<StoredModel[]> {
    return this.deps.db.storedModel.findMany({ where: { ownerId }, orderBy: [{ createdAt: 'desc' }, { id: 'desc' }], take: limit });
  }

  get(ownerId: string, id: string): Promise<StoredModel> {
    return ownModel(this.deps.db, ownerId, id);
  }

  /**
   * What `modelpress inspect --json` says of the owner's model: its interface, ops and parameters.
   * Content-addressed, so computed once per model. A bundle is unpacked only by a worker, and a
   * model past SUMMARY_MAX_BYTES is not read into the API: both get an answer that says so.
   */
  async summary(ownerId: string, id: string): Promise<ModelSummary> {
    const m = await this.get(ownerId, id);
    if (m.expiredAt) throw new ServiceError('model_expired', `model ${id} was not used for UPLOAD_TTL_DAYS and its bytes were deleted (${m.expiredAt.toISOString()}); upload it again`);
    const cached = this.summaries.get(m.sha256);
    if (cached) return cached;
    if (Number(m.sizeBytes) > SUMMARY_MAX_BYTES) {
      throw new ServiceError('conflict', `the model is ${m.sizeBytes} bytes: the API summarizes models up to ${SUMMARY_MAX_BYTES} bytes; a job's report describes larger ones`);
    }
    const summary = await this.deps.storage.withLocalCopy(m.storageKey, async (path) => {
      const bytes = await readFile(path);
      if (sniffHead(bytes.subarray(0, 512)) !== 'onnx') throw new ServiceError('conflict', 'the model is a bundle (model + external data): it is unpacked by a worker, so its summary is in a job\'s report');
      return summarizeModel(decodeModel(bytes), bytes.length);
    });
    if (this.summaries.size >= 256) this.summaries.delete(this.summaries.keys().next().value!);
    this.summaries.set(m.sha256, summary);
    return summary;
  }
}
