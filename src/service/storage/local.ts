// The local-directory store (the default): objects are files under one root, MODELPRESS_DATA_DIR,
// which the API and every worker must share.
import { constants, createWriteStream } from 'node:fs';
import { access, copyFile, mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ModelpressError } from '../../errors.js';
import { checkKey, hashingTap, newTempKey, type Storage, type StoredObject } from './storage.js';

export class LocalStorage implements Storage {
  /** Temporary uploads being written now, and how to stop each: what a shutdown must not leave behind. */
  private readonly inFlight = new Map<string, AbortController>();

  constructor(private readonly root: string) {}

  private pathOf(key: string): string {
    return join(this.root, checkKey(key));
  }

  describe(): string {
    return `local:${this.root}`;
  }

  async check(): Promise<void> {
    await mkdir(this.root, { recursive: true });
    await access(this.root, constants.W_OK);
  }

  async putStream(source: Readable): Promise<StoredObject> {
    const key = newTempKey();
    const path = this.pathOf(key);
    await mkdir(dirname(path), { recursive: true });
    const stop = new AbortController();
    this.inFlight.set(path, stop);
    const hashing = hashingTap();
    try {
      await pipeline(source, hashing.tap, createWriteStream(path), { signal: stop.signal });
    } catch (err) {
      await rm(path, { force: true });
      throw err;
    } finally {
      this.inFlight.delete(path);
    }
    return { key, ...hashing.digest() };
  }

  async promote(from: string, to: string): Promise<void> {
    const dst = this.pathOf(to);
    await mkdir(dirname(dst), { recursive: true });
    if ((await this.size(to)) !== null) {
      await this.delete(from); // identical content already stored
      return;
    }
    await rename(this.pathOf(from), dst);
  }

  async putFile(key: string, path: string): Promise<void> {
    if ((await this.size(key)) !== null) return;
    const dst = this.pathOf(key);
    await mkdir(dirname(dst), { recursive: true });
    try {
      await rename(path, dst);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
    }
    // another file system: copy beside the target first, so the key never shows a partial file
    const tmp = this.pathOf(newTempKey());
    await mkdir(dirname(tmp), { recursive: true });
    try {
      await copyFile(path, tmp);
      await rename(tmp, dst);
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /** The stored file itself: the runner only reads it. */
  async withLocalCopy<T>(key: string, fn: (path: string) => Promise<T>): Promise<T> {
    const path = this.pathOf(key);
    // as S3's copy would: a missing object is said before fn sees a path to nothing
    if ((await this.size(key)) === null) throw new ModelpressError('stored_object_missing', `stored object '${key}' is missing from the store`);
    return fn(path);
  }

  async list(prefix: string): Promise<{ key: string; modifiedAt: Date }[]> {
    const dir = this.pathOf(prefix);
    let entries: string[];
    try {
      entries = await readdir(dir, { recursive: true });
    } catch {
      return [];
    }
    const out: { key: string; modifiedAt: Date }[] = [];
    for (const e of entries) {
      const path = join(dir, e);
      const st = await stat(path).catch(() => null);
      if (st?.isFile()) out.push({ key: relative(this.root, path), modifiedAt: st.mtime });
    }
    return out;
  }

  async discardInFlight(): Promise<void> {
    const running = [...this.inFlight];
    this.inFlight.clear();
    for (const [, stop] of running) stop.abort();
    await Promise.all(running.map(([path]) => rm(path, { force: true })));
  }

  async read(key: string, range?: { start: number; end: number }): Promise<Readable> {
    let file;
    try {
      file = await open(this.pathOf(key));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new ModelpressError('stored_object_missing', `stored object '${key}' is missing from the store`, { cause: err });
      throw err;
    }
    return file.createReadStream(range ? { start: range.start, end: range.end } : {});
  }

  async size(key: string): Promise<number | null> {
    try {
      return (await stat(this.pathOf(key))).size;
    } catch {
      return null;
    }
  }

  async delete(key: string): Promise<void> {
    await rm(this.pathOf(key), { force: true });
  }

  /** Files are served by the API: there is no URL to hand out. */
  async presignedUrl(_key: string, _filename: string): Promise<string | null> {
    return null;
  }
}
