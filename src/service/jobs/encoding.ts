// What the job service encodes: list cursors, and the hash that tells an idempotent replay from a
// different request under the same Idempotency-Key.
import { createHash } from 'node:crypto';
import { UUID_RE } from '../ids.js';

/** A list cursor is (createdAt, id) of the last item of a page. */
export function encodeCursor(job: { createdAt: Date; id: string }): string {
  return Buffer.from(JSON.stringify([job.createdAt.toISOString(), job.id])).toString('base64url');
}

/** Null for anything that is not a cursor of ours, or holds a date Postgres cannot hold. */
export function decodeCursor(cursor: string): { createdAt: Date; id: string } | null {
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString()) as unknown;
    if (!Array.isArray(v) || v.length !== 2 || typeof v[0] !== 'string' || typeof v[1] !== 'string') return null;
    const createdAt = new Date(v[0]);
    const year = createdAt.getUTCFullYear();
    if (Number.isNaN(createdAt.getTime()) || year < 2000 || year > 9999 || !UUID_RE.test(v[1])) return null;
    return { createdAt, id: v[1] };
  } catch {
    return null;
  }
}

/** JSON with every object's keys sorted: the same recipe hashes the same whatever order its keys came in. */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o).filter((k) => o[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/** The request's content: the model's and data files' hashes, the normalized recipe, the time limit. */
export function requestHash(r: { modelSha256: string; data: Record<string, string>; recipe: unknown; timeoutMs: number | null }): string {
  const digest = createHash('sha256').update(`model:${r.modelSha256}\n`);
  for (const [field, sha256] of Object.entries(r.data)) digest.update(`${field}:${sha256}\n`);
  return digest.update(`recipe:${canonicalJson(r.recipe)}\ntimeout:${r.timeoutMs}\n`).digest('hex');
}

/** A trials cursor is (attempt, n) of the last trial of a page: the pages stay on that attempt's trials. */
export function encodeTrialCursor(t: { attempt: number; n: number }): string {
  return Buffer.from(JSON.stringify(['t', t.attempt, t.n])).toString('base64url');
}

export function decodeTrialCursor(cursor: string): { attempt: number; n: number } | null {
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString()) as unknown;
    if (!Array.isArray(v) || v.length !== 3 || v[0] !== 't') return null;
    const [, attempt, n] = v as [string, unknown, unknown];
    const ok = (x: unknown): x is number => Number.isInteger(x) && (x as number) >= 0 && (x as number) < 2 ** 31;
    return ok(attempt) && ok(n) ? { attempt, n } : null;
  } catch {
    return null;
  }
}
