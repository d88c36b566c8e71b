// A streaming tar reader (ustar, pax and GNU long names) and a tar writer for result bundles. The
// reader hands regular files and directories to a BundleWriter and refuses every other entry type.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable, Writable } from 'node:stream';
import { refuse, type BundleWriter } from './entries.js';

const BLOCK = 512;

/** Pulls exact byte counts out of a stream of chunks. */
class ChunkReader {
  private buffered: Buffer[] = [];
  private length = 0;
  private ended = false;
  private readonly it: AsyncIterator<Buffer>;

  constructor(source: AsyncIterable<Buffer>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async fill(n: number): Promise<void> {
    while (this.length < n && !this.ended) {
      const { value, done } = await this.it.next();
      if (done) this.ended = true;
      else if (value.length > 0) {
        this.buffered.push(value);
        this.length += value.length;
      }
    }
  }

  /** Exactly n bytes, or null at the end of the stream. */
  async exactly(n: number): Promise<Buffer | null> {
    await this.fill(n);
    if (this.length < n) return null;
    const all = this.buffered.length === 1 ? this.buffered[0]! : Buffer.concat(this.buffered);
    this.buffered = all.length > n ? [all.subarray(n)] : [];
    this.length -= n;
    return all.subarray(0, n);
  }

  /** The next n bytes as chunks, without holding them all. */
  async *take(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      await this.fill(1);
      if (this.length === 0) throw refuse('the tar archive ends in the middle of an entry');
      const head = this.buffered.shift()!;
      const part = head.length > left ? head.subarray(0, left) : head;
      if (head.length > left) this.buffered.unshift(head.subarray(left));
      this.length -= part.length;
      left -= part.length;
      yield part;
    }
  }

  async skip(n: number): Promise<void> {
    for await (const _ of this.take(n));
  }
}

const text = (b: Buffer, start: number, length: number) => {
  const raw = b.subarray(start, start + length);
  const end = raw.indexOf(0);
  return raw.toString('utf8', 0, end < 0 ? raw.length : end);
};

/** A size field: octal digits, or GNU base-256 (high bit set) for sizes past 8 GiB. */
function sizeField(b: Buffer): number {
  const f = b.subarray(124, 136);
  if (f[0]! & 0x80) {
    let n = 0;
    for (let i = 1; i < f.length; i++) n = n * 256 + f[i]!;
    return n;
  }
  const digits = f.toString('latin1').replace(/[\0 ]+$/, '').trim();
  if (!/^[0-7]*$/.test(digits)) throw refuse('a tar header has an invalid size');
  return digits === '' ? 0 : parseInt(digits, 8);
}

function checksumOk(b: Buffer): boolean {
  const stored = parseInt(b.toString('latin1', 148, 156).replace(/[\0 ]+$/, '').trim(), 8);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : b[i]!;
  return stored === sum;
}

/** pax records: "<length> <key>=<value>\n" */
function paxRecords(data: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let p = 0;
  while (p < data.length) {
    const space = data.indexOf(0x20, p);
    const length = parseInt(data.toString('latin1', p, space), 10);
    if (space < 0 || !Number.isFinite(length) || length <= 0 || p + length > data.length) throw refuse('a tar pax header is malformed');
    const record = data.toString('utf8', space + 1, p + length - 1);
    const eq = record.indexOf('=');
    if (eq > 0) out.set(record.slice(0, eq), record.slice(eq + 1));
    p += length;
  }
  return out;
}

const padding = (size: number) => (BLOCK - (size % BLOCK)) % BLOCK;
const MAX_META = 1024 * 1024;

const TYPE_NAMES: Record<string, string> = { '1': 'a hard link', '2': 'a symbolic link', '3': 'a character device', '4': 'a block device', '6': 'a FIFO' };

export async function parseTar(source: AsyncIterable<Buffer>, out: BundleWriter): Promise<void> {
  const r = new ChunkReader(source);
  let pending: { path?: string; size?: number } = {};
  for (;;) {
    const header = await r.exactly(BLOCK);
    if (!header || header.every((x) => x === 0)) return; // end-of-archive blocks (or a bare end)
    if (!checksumOk(header)) throw refuse('not a valid tar archive (a header checksum does not match)');
    const type = String.fromCharCode(header[156]!) === '\0' ? '0' : String.fromCharCode(header[156]!);
    const size = pending.size ?? sizeField(header);
    const ustar = header.toString('latin1', 257, 262) === 'ustar';
    const prefix = ustar ? text(header, 345, 155) : '';
    const name = pending.path ?? (prefix ? `${prefix}/${text(header, 0, 100)}` : text(header, 0, 100));
    if (type === 'x' || type === 'g' || type === 'L' || type === 'K') {
      if (size > MAX_META) throw refuse('a tar metadata entry is too large');
      const data = (await r.exactly(size + padding(size))) ?? Buffer.alloc(0);
      if (data.length < size) throw refuse('the tar archive ends in the middle of an entry');
      // a per-entry pax header or GNU long name applies to the next entry; global headers change nothing we use
      if (type === 'x') {
        const rec = paxRecords(data.subarray(0, size));
        pending = {
          ...(rec.has('path') ? { path: rec.get('path')! } : {}),
          ...(rec.has('size') ? { size: Number(rec.get('size')) } : {}),
        };
        if (pending.size !== undefined && !Number.isSafeInteger(pending.size)) throw refuse('a tar pax header has an invalid size');
      } else if (type === 'L') pending = { ...pending, path: text(data, 0, size) };
      continue;
    }
    pending = {};
    if (type === '5') {
      await out.directory(name);
      await r.skip(size + padding(size));
    } else if (type === '0' || type === '7') {
      await out.file(name, size, r.take(size));
      await r.skip(padding(size));
    } else {
      throw refuse(`entry ${JSON.stringify(name)} is ${TYPE_NAMES[type] ?? `of tar type '${type}'`}; a bundle holds regular files and folders only`);
    }
  }
}

// ---------------------------------------------------------------- writing

function header(name: string, size: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  if (Buffer.byteLength(name) > 100) throw new Error(`tar entry name too long: ${name}`);
  h.write(name, 0, 'utf8');
  h.write('0000644\0', 100, 'latin1');
  h.write('0000000\0', 108, 'latin1');
  h.write('0000000\0', 116, 'latin1');
  if (size < 8 ** 11) h.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
  else {
    h[124] = 0x80; // base-256, as GNU tar writes sizes past 8 GiB
    for (let i = 135, v = size; i > 124; i--, v = Math.floor(v / 256)) h[i] = v % 256;
  }
  h.write('00000000000\0', 136, 'latin1'); // mtime 0: the same files give the same bundle, byte for byte
  h[156] = 0x30; // '0': a regular file
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return h;
}

async function put(out: Writable, hash: ReturnType<typeof createHash>, data: Buffer): Promise<void> {
  hash.update(data);
  if (!out.write(data)) await new Promise((resolve) => out.once('drain', resolve));
}

/** Writes a tar of these files (name in the archive → local path), streaming; returns its sha256 and size. */
export async function writeTar(outPath: string, files: { name: string; path: string }[]): Promise<{ sha256: string; sizeBytes: number }> {
  const out = createWriteStream(outPath);
  const done = new Promise<void>((resolve, reject) => out.once('finish', resolve).once('error', reject));
  const hash = createHash('sha256');
  let sizeBytes = 0;
  for (const f of files) {
    const size = (await stat(f.path)).size;
    await put(out, hash, header(f.name, size));
    for await (const chunk of createReadStream(f.path) as Readable) await put(out, hash, chunk as Buffer);
    await put(out, hash, Buffer.alloc(padding(size)));
    sizeBytes += BLOCK + size + padding(size);
  }
  await put(out, hash, Buffer.alloc(2 * BLOCK));
  sizeBytes += 2 * BLOCK;
  out.end();
  await done;
  return { sha256: hash.digest('hex'), sizeBytes };
}
