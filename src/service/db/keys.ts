// API keys: `mp_<prefix>_<secret>`. The prefix finds the row; only sha256(secret) is stored (the
// secret is 256 random bits, so a fast hash is enough); comparison is constant-time.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Db } from './client.js';

const KEY_RE = /^mp_([a-f0-9]{16})_([A-Za-z0-9_-]{43})$/;

const hashSecret = (secret: string) => createHash('sha256').update(secret).digest('hex');

export interface CreatedKey {
  key: string;
  ownerId: string;
  keyId: string;
}

/** Creates an owner (unless `ownerId` is given) and a key for it; the key is shown once. */
export async function createApiKey(db: Db, name: string, ownerId?: string): Promise<CreatedKey> {
  const prefix = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  const owner = ownerId ? { id: ownerId } : await db.owner.create({ data: { name } });
  const row = await db.apiKey.create({ data: { ownerId: owner.id, name, prefix, keyHash: hashSecret(secret) } });
  return { key: `mp_${prefix}_${secret}`, ownerId: owner.id, keyId: row.id };
}

/** The owner id of a valid, unrevoked key; null otherwise. */
export async function verifyApiKey(db: Db, key: string): Promise<string | null> {
  const m = KEY_RE.exec(key);
  if (!m) return null;
  const row = await db.apiKey.findUnique({ where: { prefix: m[1]! } });
  if (!row || row.revokedAt) return null;
  const a = Buffer.from(row.keyHash, 'hex');
  const b = Buffer.from(hashSecret(m[2]!), 'hex');
  if (a.length !== b.length || !timingSafeEqual(a, b)) return null;
  // last use, for `keys list`: written at most once a minute per key; a failed write never fails the request
  const now = Date.now();
  if (!row.lastUsedAt || now - row.lastUsedAt.getTime() > 60_000) {
    await db.apiKey.update({ where: { id: row.id }, data: { lastUsedAt: new Date(now) } }).catch(() => {});
  }
  return row.ownerId;
}

export interface KeyInfo {
  prefix: string;
  name: string;
  ownerId: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

/** Every key (never its secret), newest first. */
export async function listApiKeys(db: Db): Promise<KeyInfo[]> {
  const rows = await db.apiKey.findMany({ orderBy: { createdAt: 'desc' } });
  return rows.map((r) => ({ prefix: r.prefix, name: r.name, ownerId: r.ownerId, createdAt: r.createdAt, lastUsedAt: r.lastUsedAt, revokedAt: r.revokedAt }));
}

/**
 * Revokes a key given as its prefix or as the whole key; returns false when no such key exists.
 * Revoking twice keeps the first revocation time.
 */
export async function revokeApiKey(db: Db, keyOrPrefix: string): Promise<boolean> {
  const prefix = KEY_RE.exec(keyOrPrefix)?.[1] ?? (/^[a-f0-9]{16}$/.test(keyOrPrefix) ? keyOrPrefix : null);
  if (!prefix) return false;
  const res = await db.apiKey.updateMany({ where: { prefix, revokedAt: null }, data: { revokedAt: new Date() } });
  if (res.count > 0) return true;
  return (await db.apiKey.findUnique({ where: { prefix } })) !== null;
}
