// Unpacking a model bundle (.tar, .tar.gz, .zip: one .onnx plus its external data files), uploaded
// to the service or given to the CLI, into a private directory: what the file is (by its magic
// bytes), the zip reader, and the check that exactly one model sits at the top. The entry rules are
// in entries.ts, the tar reader in tar.ts.
import { closeSync, createReadStream, openSync, readSync, fstatSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createGunzip, createInflateRaw, crc32 } from 'node:zlib';
import { BundleWriter, overLimit, refuse, type UnpackLimits } from './entries.js';
import { parseTar } from './tar.js';

export type { UnpackLimits };

export type UploadKind = 'onnx' | 'tar' | 'tar.gz' | 'zip';

/** Entries a bundle may hold: a model and its data files, with room for folders. */
export const MAX_BUNDLE_ENTRIES = 10_000;
/**
 * A bundle's weights barely compress, so it may unpack to 4× its packed size (the service's upload
 * limit, the CLI's bundle file) and no more: zip bombs stop there. MAX_UNPACKED_BYTES overrides it.
 */
export const UNPACKED_PER_PACKED_BYTE = 4;

/** What the bytes are, by their magic numbers (never by a file name). */
export function sniffUpload(path: string): UploadKind {
  const fd = openSync(path, 'r');
  try {
    const head = Buffer.alloc(512);
    return sniffHead(head.subarray(0, readSync(fd, head, 0, 512, 0)));
  } finally {
    closeSync(fd);
  }
}

/** The same, from a file's first (up to) 512 bytes. */
export function sniffHead(head: Buffer): UploadKind {
  const n = head.length;
  if (n >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'tar.gz';
  if (n >= 4 && head.readUInt32LE(0) === 0x04034b50) return 'zip';
  if (n >= 22 && head.readUInt32LE(0) === 0x06054b50) return 'zip'; // an empty zip
  if (n === 512 && head.toString('latin1', 257, 262) === 'ustar') return 'tar';
  return 'onnx';
}

// ---------------------------------------------------------------- zip

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const MAX_CENTRAL_DIRECTORY = 64 * 1024 * 1024;

interface ZipEntry {
  name: string;
  method: number;
  flags: number;
  crc: number;
  compressed: number;
  size: number;
  localOffset: number;
  /** unix file type bits (0 when the archive was not made on unix) */
  unixType: number;
}

function readAt(fd: number, position: number, length: number): Buffer {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = readSync(fd, buf, done, length - done, position + done);
    if (n === 0) throw refuse('the zip file is truncated');
    done += n;
  }
  return buf;
}

function centralDirectory(fd: number, fileSize: number): { offset: number; size: number; count: number } {
  const tailLength = Math.min(fileSize, 22 + 0xffff);
  const tail = readAt(fd, fileSize - tailLength, tailLength);
  let at = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD) {
      at = i;
      break;
    }
  }
  if (at < 0) throw refuse('not a zip file (no end of central directory)');
  let count = tail.readUInt16LE(at + 10);
  let size = tail.readUInt32LE(at + 12);
  let offset = tail.readUInt32LE(at + 16);
  const eocdPosition = fileSize - tailLength + at;
  if ((count === 0xffff || size === 0xffffffff || offset === 0xffffffff) && eocdPosition >= 20) {
    const locator = readAt(fd, eocdPosition - 20, 20);
    if (locator.readUInt32LE(0) === ZIP64_LOCATOR) {
      const z = readAt(fd, Number(locator.readBigUInt64LE(8)), 56);
      if (z.readUInt32LE(0) !== ZIP64_EOCD) throw refuse('broken zip64 end of central directory');
      count = Number(z.readBigUInt64LE(32));
      size = Number(z.readBigUInt64LE(40));
      offset = Number(z.readBigUInt64LE(48));
    }
  }
  if (size > MAX_CENTRAL_DIRECTORY || offset + size > fileSize) throw refuse('the zip central directory is too large or out of bounds');
  return { offset, size, count };
}

function zipEntries(fd: number, fileSize: number, maxEntries: number): ZipEntry[] {
  const cd = centralDirectory(fd, fileSize);
  if (cd.count > maxEntries) throw refuse(`more than ${maxEntries} entries`);
  const buf = readAt(fd, cd.offset, cd.size);
  const out: ZipEntry[] = [];
  let p = 0;
  for (let i = 0; i < cd.count; i++) {
    if (p + 46 > buf.length || buf.readUInt32LE(p) !== CENTRAL) throw refuse('broken zip central directory');
    const madeBy = buf.readUInt16LE(p + 4);
    const nameLength = buf.readUInt16LE(p + 28);
    const extraLength = buf.readUInt16LE(p + 30);
    const commentLength = buf.readUInt16LE(p + 32);
    const entry: ZipEntry = {
      name: buf.toString('utf8', p + 46, p + 46 + nameLength),
      flags: buf.readUInt16LE(p + 8),
      method: buf.readUInt16LE(p + 10),
      crc: buf.readUInt32LE(p + 16),
      compressed: buf.readUInt32LE(p + 20),
      size: buf.readUInt32LE(p + 24),
      localOffset: buf.readUInt32LE(p + 42),
      unixType: madeBy >> 8 === 3 ? (buf.readUInt32LE(p + 38) >>> 16) & 0o170000 : 0,
    };
    // zip64: the 8-byte values of the fields that read 0xffffffff, in this order
    const extra = buf.subarray(p + 46 + nameLength, p + 46 + nameLength + extraLength);
    for (let e = 0; e + 4 <= extra.length; ) {
      const id = extra.readUInt16LE(e);
      const len = extra.readUInt16LE(e + 2);
      if (id === 0x0001) {
        let q = e + 4;
        const next = () => {
          if (q + 8 > e + 4 + len) throw refuse('broken zip64 extra field');
          const v = Number(extra.readBigUInt64LE(q));
          q += 8;
          return v;
        };
        if (entry.size === 0xffffffff) entry.size = next();
        if (entry.compressed === 0xffffffff) entry.compressed = next();
        if (entry.localOffset === 0xffffffff) entry.localOffset = next();
      }
      e += 4 + len;
    }
    out.push(entry);
    p += 46 + nameLength + extraLength + commentLength;
  }
  return out;
}

async function* checkedCrc(source: AsyncIterable<Buffer>, expected: number, name: string): AsyncGenerator<Buffer> {
  let crc = 0;
  for await (const chunk of source) {
    crc = crc32(chunk, crc);
    yield chunk;
  }
  if (crc >>> 0 !== expected >>> 0) throw refuse(`entry '${name}' fails its CRC check (corrupt archive)`);
}

async function unpackZip(path: string, out: BundleWriter, limits: UnpackLimits): Promise<void> {
  const fd = openSync(path, 'r');
  let entries: ZipEntry[];
  const starts: number[] = [];
  try {
    const fileSize = fstatSync(fd).size;
    entries = zipEntries(fd, fileSize, limits.maxEntries);
    for (const e of entries) {
      if (e.unixType === 0o120000) throw refuse(`entry '${e.name}' is a symbolic link; a bundle holds regular files only`);
      if (e.unixType !== 0 && e.unixType !== 0o100000 && e.unixType !== 0o040000) throw refuse(`entry '${e.name}' is a device, FIFO or socket; a bundle holds regular files only`);
      if (e.flags & 1) throw refuse(`entry '${e.name}' is encrypted`);
      if (e.method !== 0 && e.method !== 8) throw refuse(`entry '${e.name}' uses compression method ${e.method}; only stored and deflate are supported`);
      const local = readAt(fd, e.localOffset, 30);
      if (local.readUInt32LE(0) !== LOCAL) throw refuse(`entry '${e.name}': broken local header`);
      const start = e.localOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
      if (start + e.compressed > fileSize) throw refuse(`entry '${e.name}' runs past the end of the file`);
      starts.push(start);
    }
  } finally {
    closeSync(fd);
  }
  const declared = entries.reduce((s, e) => s + e.size, 0);
  if (declared > limits.maxTotalBytes) throw overLimit(limits.maxTotalBytes, declared);
  for (const [i, e] of entries.entries()) {
    if (e.name.endsWith('/')) {
      await out.directory(e.name);
      continue;
    }
    const raw: Readable = e.compressed === 0 ? Readable.from([]) : createReadStream(path, { start: starts[i]!, end: starts[i]! + e.compressed - 1 });
    if (e.method === 0 && e.compressed !== e.size) throw refuse(`entry '${e.name}' is stored with ${e.compressed} bytes but says ${e.size}`);
    const content = e.method === 8 ? raw.pipe(createInflateRaw()) : raw;
    await out.file(e.name, e.size, checkedCrc(content, e.crc, e.name));
  }
}

// ---------------------------------------------------------------- all kinds

/**
 * Unpacks the bundle at `path` into `root` (an empty private directory) and returns the one .onnx
 * at its top level.
 */
export async function unpackBundle(path: string, kind: Exclude<UploadKind, 'onnx'>, root: string, limits: UnpackLimits): Promise<{ modelFile: string; files: string[] }> {
  const out = new BundleWriter(root, limits);
  if (kind === 'zip') await unpackZip(path, out, limits);
  else {
    const source: Readable = kind === 'tar.gz' ? createReadStream(path).pipe(createGunzip()) : createReadStream(path);
    try {
      await parseTar(source, out);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'Z_DATA_ERROR' || (err as NodeJS.ErrnoException).code === 'Z_BUF_ERROR') throw refuse(`the gzip stream is corrupt (${(err as Error).message})`);
      throw err;
    } finally {
      source.destroy();
    }
  }
  const models = out.files.filter((f) => !f.includes('/') && f.toLowerCase().endsWith('.onnx'));
  if (models.length !== 1) {
    const anywhere = out.files.filter((f) => f.toLowerCase().endsWith('.onnx'));
    throw refuse(
      models.length === 0
        ? `no .onnx file at the top level of the bundle${anywhere.length > 0 ? ` (found ${anywhere.map((f) => `'${f}'`).join(', ')} in folders: put the model at the top)` : ''}`
        : `more than one .onnx at the top level (${models.map((f) => `'${f}'`).join(', ')}); a bundle holds one model`,
    );
  }
  return { modelFile: join(root, models[0]!), files: out.files };
}
