// Every step's output, content-addressed: the key is the input model's key, the pass, its canonical
// config and the hash of the data it may read. Chains that share a prefix share its models, and no
// model is built twice. Models stay in memory up to a byte budget (least recently used go first);
// the encoded bytes can also go to a directory so a long search keeps everything it built.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Model } from '../onnx/ir.js';
import { embeddedSize } from '../onnx/embedded-encoding.js';
import { decodeModel } from '../onnx/model-io.js';
import { runtimeSource } from '../runtime/ort.js';

/** JSON with object keys sorted: equal configs give equal text whatever order they were written in. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

export function stepKey(inputKey: string, step: object, dataKey: string): string {
  return createHash('sha256').update(`${inputKey}\n${canonicalJson(step)}\n${dataKey}`).digest('hex');
}

export interface CachedStep {
  model: Model;
  /** What the pass reported (statistics, warnings), kept with the model. */
  changes: unknown;
  durationMs: number;
}

export interface CacheStats {
  hits: number;
  misses: number;
  /** Hits served from the directory after the model left memory. */
  diskHits: number;
}

export class StepCache {
  private readonly memory = new Map<string, CachedStep & { bytes: number }>();
  private memoryBytes = 0;
  readonly stats: CacheStats = { hits: 0, misses: 0, diskHits: 0 };

  constructor(private readonly opts: { maxMemoryBytes?: number; dir?: string } = {}) {
    if (opts.dir) mkdirSync(opts.dir, { recursive: true });
  }

  private get maxBytes(): number {
    return this.opts.maxMemoryBytes ?? 2 * 2 ** 30;
  }

  /** The step's output, building it with `build` only when neither memory nor the directory has it. */
  async get(key: string, build: () => Promise<CachedStep>): Promise<CachedStep & { cached: boolean }> {
    const hit = this.memory.get(key);
    if (hit) {
      this.stats.hits++;
      this.memory.delete(key); // re-insert: Map order is recency
      this.memory.set(key, hit);
      return { ...hit, cached: true };
    }
    const file = this.opts.dir ? join(this.opts.dir, `${key}.onnx`) : null;
    if (file && existsSync(file) && existsSync(`${file}.json`)) {
      this.stats.hits++;
      this.stats.diskHits++;
      const meta = JSON.parse(readFileSync(`${file}.json`, 'utf8')) as { changes: unknown; durationMs: number };
      const entry = { model: decodeModel(readFileSync(file)), ...meta };
      this.remember(key, entry);
      return { ...entry, cached: true };
    }
    const built = await build();
    this.stats.misses++; // counted once built: a build cut short leaves nothing in the cache
    this.remember(key, built);
    if (file) {
      const source = runtimeSource(built.model);
      // models past 2 GB are not kept on disk here: they are rebuilt instead
      if (source instanceof Uint8Array) {
        writeFileSync(`${file}.tmp`, source);
        renameSync(`${file}.tmp`, file);
        writeFileSync(`${file}.json`, JSON.stringify({ changes: built.changes, durationMs: built.durationMs }));
      }
    }
    return { ...built, cached: false };
  }

  private remember(key: string, entry: CachedStep): void {
    const bytes = embeddedSize(entry.model);
    this.memory.set(key, { ...entry, bytes });
    this.memoryBytes += bytes;
    for (const [k, v] of this.memory) {
      if (this.memoryBytes <= this.maxBytes || this.memory.size <= 1) break;
      this.memory.delete(k);
      this.memoryBytes -= v.bytes;
    }
  }
}
