// Command-line argument parsing shared by the CLI's commands: usage errors (exit 2 with the usage), numbers and lists.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { InvalidInputError } from '../errors.js';

export class UsageError extends InvalidInputError {}

export function parse(argv: string[], options: ParseArgsConfig['options']) {
  try {
    return parseArgs({ args: argv, options: options ?? {}, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

const BATCH_TOKEN = /^[BN]$/;

/** `name=1,2,3` lists. With allowBatch, a `B` entry marks the batch dim and travels as NaN. */
export function parseKeyList(items: string[] | undefined, flag: string, allowBatch = false): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const item of items ?? []) {
    const m = /^([^=]+)=(.+)$/.exec(item);
    const parts = m ? m[2]!.split(',').map((x) => x.trim()) : [];
    const ok = parts.length > 0 && parts.every((x) => (allowBatch && BATCH_TOKEN.test(x)) || (x !== '' && Number.isFinite(Number(x))));
    if (!m || !ok) throw new UsageError(`${flag} expects name=value[,value…], got '${item}'`);
    out[m[1]!] = parts.map((x) => (BATCH_TOKEN.test(x) ? NaN : Number(x)));
  }
  return out;
}

export function positiveInt(v: unknown, flag: string, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${flag} expects a positive integer, got '${String(v)}'`);
  return n;
}

export function parseBatchList(v: unknown): number[] | undefined {
  if (v === undefined) return undefined;
  const sizes = String(v)
    .split(',')
    .map((x) => Number(x.trim()));
  if (sizes.length === 0 || sizes.some((x) => !Number.isInteger(x) || x < 1)) throw new UsageError(`--batch expects positive integers like 1,8,16, got '${String(v)}'`);
  return sizes;
}

export function nonNegativeInt(v: unknown, flag: string, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new UsageError(`${flag} expects a whole number ≥ 0, got '${String(v)}'`);
  return n;
}
