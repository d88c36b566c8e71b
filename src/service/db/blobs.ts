// Which rows hold storage keys, and deleting a blob only when none does. Blobs are content-addressed,
// so one key can be named by many rows (two owners' identical models, two jobs with the same result);
// a row that lets go of a key (deleted, or its blob expired) records the key as an orphan in the same
// transaction, and `releaseBlobs` then deletes each orphan that no live row names any more.
//
// Races: every write that makes a row name a key it stores (a model upload, a job's artifact, best so
// far and frontier models) holds that key's lock (`lockBlobs`, a Postgres advisory lock for the
// transaction) from storing the blob until the row is committed; the release checks the references and
// deletes the blob under the same lock. So a new upload of the same bytes either waits for the delete
// and stores the blob again, or commits its row first and the release keeps the blob.
import type { Storage } from '../storage/storage.js';
import type { Db, Prisma } from './client.js';

type Tx = Prisma.TransactionClient;

/**
 * Every column that holds a storage key: the one list to change when a new column stores a key. `of`
 * says whose bytes they are and so when the row stops needing them: a model's until it expires; a
 * job's data files and its models (final artifact, best so far, frontier) until their expiry marks
 * (`jobs.data_expired_at`, `jobs.artifact_expired_at`) or the job's deletion. `job` is the column
 * naming the job, for rows of other tables.
 */
export const BLOB_COLUMNS: readonly BlobColumn[] = [
  { table: 'models', column: 'storage_key', of: 'model' },
  { table: 'jobs', column: 'calibration_key', of: 'job-data' },
  { table: 'jobs', column: 'evaluation_key', of: 'job-data' },
  { table: 'jobs', column: 'labels_key', of: 'job-data' },
  { table: 'jobs', column: 'best_storage_key', of: 'job-artifact' },
  { table: 'artifacts', column: 'storage_key', of: 'job-artifact', job: 'job_id' },
  { table: 'job_trials', column: 'artifact_key', of: 'job-artifact', job: 'job_id' },
];

export interface BlobColumn {
  table: 'models' | 'jobs' | 'artifacts' | 'job_trials';
  column: string;
  of: 'model' | 'job-data' | 'job-artifact';
  job?: string;
}

const EXPIRY_MARK = { 'job-data': 'data_expired_at', 'job-artifact': 'artifact_expired_at' } as const;

/** Whether a live row names `$1`. */
function liveReference(c: BlobColumn): string {
  if (c.of === 'model') return `SELECT 1 FROM models WHERE ${c.column} = $1 AND expired_at IS NULL`;
  if (c.table === 'jobs') return `SELECT 1 FROM jobs WHERE ${c.column} = $1 AND ${EXPIRY_MARK[c.of]} IS NULL`;
  return `SELECT 1 FROM ${c.table} x JOIN jobs j ON j.id = x.${c.job} WHERE x.${c.column} = $1 AND j.${EXPIRY_MARK[c.of]} IS NULL`;
}

const REFERENCED_SQL = `SELECT EXISTS (${BLOB_COLUMNS.map(liveReference).join(' UNION ALL ')}) AS referenced`;

/** The keys the jobs' rows name, of the given kinds (`job-data`: uploads; `job-artifact`: models it made). */
export async function jobBlobKeys(tx: Tx | Db, jobIds: string[], kinds: readonly ('job-data' | 'job-artifact')[]): Promise<string[]> {
  const parts = BLOB_COLUMNS.filter((c) => c.of !== 'model' && kinds.includes(c.of)).map(
    (c) => `SELECT ${c.column} AS key FROM ${c.table} WHERE ${c.table === 'jobs' ? 'id' : c.job} = ANY($1::uuid[]) AND ${c.column} IS NOT NULL`,
  );
  if (jobIds.length === 0 || parts.length === 0) return [];
  const rows = await tx.$queryRawUnsafe<{ key: string }[]>(parts.join(' UNION '), jobIds);
  return rows.map((r) => r.key);
}

/** The advisory lock namespace of storage keys (the two-integer form: apart from every single-bigint lock). */
const BLOB_LOCK_NS = 0x6d70626c; // 'mpbl'

/** Holds each key's lock until the transaction ends (in one order, so two writers never deadlock). */
export async function lockBlobs(tx: Tx, keys: (string | null | undefined)[]): Promise<void> {
  for (const key of [...new Set(keys.filter((k): k is string => !!k))].sort()) {
    await tx.$executeRawUnsafe('SELECT pg_advisory_xact_lock($1::integer, hashtext($2))', BLOB_LOCK_NS, key);
  }
}

/** Records keys whose rows let go of them (call in the transaction that deletes or expires those rows). */
export async function recordOrphans(tx: Tx | Db, keys: (string | null | undefined)[]): Promise<string[]> {
  const unique = [...new Set(keys.filter((k): k is string => !!k))];
  if (unique.length) await tx.$executeRawUnsafe('INSERT INTO orphan_blobs (key) SELECT unnest($1::text[]) ON CONFLICT (key) DO NOTHING', unique);
  return unique;
}

export interface ReleaseResult {
  deleted: string[];
  /** Still named by a live row (shared content): the bytes stay. */
  kept: string[];
  /** The store failed: the orphan stays recorded and the next sweep tries again. */
  failed: string[];
}

/**
 * Deletes each recorded orphan (all of them, or those in `keys`) that no live row names, under the
 * key's lock; the orphan record goes in the same transaction, so a failed delete is retried later.
 */
export async function releaseBlobs(db: Db, storage: Storage, keys?: string[], log: (msg: string) => void = () => {}): Promise<ReleaseResult> {
  const todo = keys ?? (await db.orphanBlob.findMany({ select: { key: true }, orderBy: { createdAt: 'asc' }, take: 1000 })).map((o) => o.key);
  const out: ReleaseResult = { deleted: [], kept: [], failed: [] };
  for (const key of [...new Set(todo)]) {
    try {
      const verdict = await db.$transaction(
        async (tx) => {
          await lockBlobs(tx, [key]);
          const gone = await tx.$executeRawUnsafe('DELETE FROM orphan_blobs WHERE key = $1', key);
          if (gone === 0) return null; // another process released it
          const [{ referenced }] = await tx.$queryRawUnsafe<{ referenced: boolean }[]>(REFERENCED_SQL, key) as [{ referenced: boolean }];
          if (referenced) return 'kept' as const;
          await storage.delete(key); // under the lock: nobody stores this key until the delete is done
          return 'deleted' as const;
        },
        { timeout: 120_000, maxWait: 10_000 },
      );
      if (verdict) out[verdict].push(key);
    } catch (err) {
      out.failed.push(key);
      log(`retention: could not delete ${key} (${(err as Error).message}); the next sweep tries again`);
    }
  }
  return out;
}
