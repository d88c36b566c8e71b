// Stored models: uploaded once, compressed with many recipes. Identical bytes are one row per owner
// and one blob for everyone; the owner's count and byte quotas hold under concurrent uploads.
import { ServiceError } from '../../errors.js';
import type { ServiceConfig } from '../config.js';
import type { Db, StoredModel } from '../db/client.js';
import { storeModel, withOwnerLock, type UploadedModel } from '../db/owners.js';
import { UUID_RE } from '../ids.js';
import type { Storage } from '../storage/storage.js';
import { assertModelUpload } from './check.js';

/** The owner's model; other owners' models look exactly like missing ones. */
export async function ownModel(db: Db, ownerId: string, id: string): Promise<StoredModel> {
  const model = UUID_RE.test(id) ? await db.storedModel.findFirst({ where: { id, ownerId } }) : null;
  if (!model) throw new ServiceError('not_found', `no model ${id}`);
  return model;
}

export class ModelService {
  constructor(private readonly deps: { db: Db; storage: Storage; config: ServiceConfig }) {}

  /** Stores an upload (a temporary object) for its owner; `created` is false for bytes the owner stored before. */
  async upload(ownerId: string, upload: UploadedModel): Promise<{ model: StoredModel; created: boolean }> {
    const { db, storage, config } = this.deps;
    await assertModelUpload(storage, upload);
    return withOwnerLock(db, ownerId, (tx) => storeModel(tx, storage, config, ownerId, upload));
  }

  get(ownerId: string, id: string): Promise<StoredModel> {
    return ownModel(this.deps.db, ownerId, id);
  }
}
