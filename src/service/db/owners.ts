// Per-owner limits that must hold under concurrency: checked and written while holding the owner's
// row lock, so fifty simultaneous requests cannot all see "one below the limit".
import { ServiceError } from '../../errors.js';
import type { Db, Prisma, StoredModel } from './client.js';
import type { ServiceConfig } from '../config.js';
import type { Storage } from '../storage/storage.js';
import { lockBlobs } from './blobs.js';

export type Tx = Prisma.TransactionClient;

/** Runs `fn` in a transaction that holds the owner's row lock (SELECT … FOR UPDATE). */
export function withOwnerLock<T>(db: Db, ownerId: string, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return db.$transaction(
    async (tx) => {
      await tx.$queryRaw`SELECT id FROM owners WHERE id = ${ownerId}::uuid FOR UPDATE`;
      return fn(tx);
    },
    { timeout: 60_000, maxWait: 10_000 },
  );
}

export async function assertActiveJobsBelowLimit(db: Db | Tx, ownerId: string, config: ServiceConfig): Promise<void> {
  const active = await db.job.count({ where: { ownerId, status: { in: ['queued', 'running'] } } });
  if (active >= config.maxActiveJobsPerOwner) {
    throw new ServiceError('rate_limited', `you have ${active} unfinished jobs; the limit is ${config.maxActiveJobsPerOwner}`, { retryAfterSec: 10 });
  }
}

/** Refuses a new model of `sizeBytes` that would take the owner past the count or byte quota. */
async function assertModelQuota(db: Db | Tx, ownerId: string, sizeBytes: number, config: ServiceConfig): Promise<void> {
  // an expired model holds no bytes
  const agg = await db.storedModel.aggregate({ where: { ownerId, expiredAt: null }, _count: { _all: true }, _sum: { sizeBytes: true } });
  const count = agg._count._all;
  const bytes = Number(agg._sum.sizeBytes ?? 0n);
  if (count + 1 > config.maxModelsPerOwner) {
    throw new ServiceError('quota_exceeded', `you have ${count} stored models; the quota is ${config.maxModelsPerOwner} (MAX_MODELS_PER_OWNER)`);
  }
  if (bytes + sizeBytes > config.maxModelBytesPerOwner) {
    throw new ServiceError('quota_exceeded', `your stored models take ${bytes} bytes; this one (${sizeBytes} bytes) would pass the quota of ${config.maxModelBytesPerOwner} bytes (MAX_MODEL_BYTES_PER_OWNER)`);
  }
}

export interface UploadedModel {
  key: string;
  sha256: string;
  sizeBytes: number;
  filename: string;
}

/**
 * Stores an uploaded model for its owner (call under `withOwnerLock`): identical bytes are one row
 * per owner and one blob (`models/<sha256>.onnx`) for everyone. A new model must fit the quota. The
 * same bytes again count as a use (UPLOAD_TTL_DAYS starts over), and revive a model whose bytes expired.
 */
export async function storeModel(tx: Tx, storage: Storage, config: ServiceConfig, ownerId: string, upload: UploadedModel): Promise<{ model: StoredModel; created: boolean }> {
  const existing = await tx.storedModel.findUnique({ where: { ownerId_sha256: { ownerId, sha256: upload.sha256 } } });
  // a row whose bytes left the store (removed outside modelpress, or a store switched under the database) takes these
  const intact = existing !== null && (await storage.size(existing.storageKey)) !== null;
  if (existing && intact && (await touchModel(tx, existing.id))) {
    await storage.delete(upload.key);
    return { model: await tx.storedModel.findUniqueOrThrow({ where: { id: existing.id } }), created: false };
  }
  if (!existing || existing.expiredAt) await assertModelQuota(tx, ownerId, upload.sizeBytes, config);
  const key = `models/${upload.sha256}.onnx`;
  // the blob exists before any row refers to it; a release of the same key waits for this row, or ends first (db/blobs.ts)
  await lockBlobs(tx, [key]);
  await storage.promote(upload.key, key);
  if (existing) return { model: await tx.storedModel.update({ where: { id: existing.id }, data: { expiredAt: null, lastUsedAt: new Date(), storageKey: key } }), created: false };
  const filename = upload.filename ? upload.filename.replace(/[^\w.\- ]+/g, '_').slice(0, 200) : null;
  const model = await tx.storedModel.create({ data: { ownerId, sha256: upload.sha256, sizeBytes: BigInt(upload.sizeBytes), storageKey: key, filename } });
  return { model, created: true };
}

/**
 * Records a use of a model whose bytes are still stored (a job on it, a re-upload): false when they
 * expired. A real row update, so a concurrent expiry waits and then re-checks `last_used_at`.
 */
export async function touchModel(tx: Tx, modelId: string): Promise<boolean> {
  const n = await tx.storedModel.updateMany({ where: { id: modelId, expiredAt: null }, data: { lastUsedAt: new Date() } });
  return n.count === 1;
}
