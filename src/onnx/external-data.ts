// Loading a model whose tensors keep their bytes in files beside it (ONNX external data), reading
// only regular files inside one root directory. Read whole, every tensor holds its bytes in raw_data
// and nothing downstream ever sees a path. Read lazily, the large tensors keep their checked
// locations and the model records its root: onnxruntime is told that directory (and maps the data
// file instead of taking a copy as bytes), and the weights are read when a pass needs them (withWeights).
import { closeSync, constants as fsConstants, fstatSync, lstatSync, openSync, readSync, realpathSync, type Stats } from 'node:fs';
import { isAbsolute, join, posix, sep, win32 } from 'node:path';
import { TensorProto_DataLocation, type ModelProto, type TensorProto } from 'onnx-buf';
import { InvalidModelError, UnsupportedModelError } from '../errors.js';
import { DTYPES, type DataType as DT } from './dtypes.js';
import { forEachTensor, quoteModelText } from './safety.js';
import { elementCount, isExternal, tensorDims } from './tensor-data.js';

/** Reads at most this much per read call (readSync's length is an int32). */
const READ_CHUNK = 1 << 30;

interface Placement {
  location: string;
  offset: number;
  /** undefined: the rest of the file */
  length: number | undefined;
}

function refusal(kind: 'invalid' | 'unsupported', t: TensorProto, where: () => string, location: string | undefined, why: string): Error {
  const place = where();
  const message = `tensor '${t.name || '(unnamed)'}' (${place})${location !== undefined ? `, external data location ${quoteModelText(location)}` : ''}: ${why}`;
  const options = { details: { tensor: t.name, where: place, ...(location !== undefined ? { location } : {}) } };
  return kind === 'invalid' ? new InvalidModelError(message, options) : new UnsupportedModelError(message, options);
}

/** A byte count from the model's text: decimal digits only, a safe integer. */
function parseCount(text: string): number | undefined {
  if (!/^\d{1,16}$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

/**
 * Why a location may not be opened, or undefined if it is a plain relative path: no absolute or
 * drive or UNC form, no backslash, no `.` / `..` / empty segments, no NUL.
 */
export function locationProblem(location: string): string | undefined {
  if (location === '') return 'the location is empty';
  if (location.includes('\0')) return 'the location contains a NUL character';
  if (isAbsolute(location) || win32.isAbsolute(location) || /^[A-Za-z]:/.test(location)) return 'the location is an absolute path; only paths relative to the model are allowed';
  if (location.includes('\\')) return 'the location contains a backslash; only plain relative paths with / are allowed';
  const segments = location.split('/');
  if (segments.includes('..')) return "the location contains a '..' segment; data files must sit inside the model's directory";
  if (segments.some((s) => s === '' || s === '.') || posix.normalize(location) !== location) return 'the location is not a normalized relative path';
  return undefined;
}

function placementOf(t: TensorProto, where: () => string): Placement {
  if (t.dataLocation !== TensorProto_DataLocation.EXTERNAL) {
    throw refusal('unsupported', t, where, undefined, `unknown data_location ${t.dataLocation}`);
  }
  const entries = new Map<string, string>();
  for (const e of t.externalData) {
    if (entries.has(e.key)) throw refusal('invalid', t, where, undefined, `external_data has key '${e.key}' twice`);
    entries.set(e.key, e.value);
  }
  const location = entries.get('location');
  if (location === undefined) throw refusal('invalid', t, where, undefined, 'external_data has no location');
  const problem = locationProblem(location);
  if (problem) throw refusal('unsupported', t, where, location, problem);
  const count = (key: string): number | undefined => {
    const text = entries.get(key);
    if (text === undefined) return undefined;
    const n = parseCount(text);
    if (n === undefined) throw refusal('invalid', t, where, location, `${key} ${quoteModelText(text)} is not a non-negative integer`);
    return n;
  };
  return { location, offset: count('offset') ?? 0, length: count('length') };
}

/** The bytes a tensor's dims and fixed-size dtype call for, or undefined (strings, unknown types). */
function expectedBytes(t: TensorProto): number | undefined {
  const info = DTYPES[t.dataType as DT];
  if (!info || info.bytes === 0 || !info.array) return undefined;
  const n = elementCount(tensorDims(t));
  return info.bytes === 0.5 ? Math.ceil(n / 2) : n * info.bytes;
}

interface OpenFile {
  fd: number;
  size: number;
}

/** How much of the external data a load reads: all of it, only tensors under LAZY_MIN_BYTES, or none. */
export type ExternalRead = 'all' | 'small' | 'none';

/**
 * Tensors a `small` load leaves in their files: fixed-size types of at least this many bytes.
 * Smaller ones (shapes, axes, norms' scales) are read, for the analyses that need their values.
 */
export const LAZY_MIN_BYTES = 64 * 1024;

/**
 * Opens and reads the data files of external tensors inside one root directory, with every check:
 * refuses, with a code and a message naming the tensor and its location, absolute or
 * non-normalized locations, `..`, anything that resolves outside the root, symlinks, devices,
 * FIFOs, directories, missing files, and offsets or lengths outside the file or not matching the
 * tensor's shape. `close()` when done.
 */
export class ExternalDataFiles {
  /** The root as a real path: what a model that keeps tensors in their files records (Model.externalDataRoot). */
  readonly root: string;
  private readonly files = new Map<string, OpenFile>();

  constructor(root: string) {
    try {
      this.root = realpathSync(root);
    } catch (err) {
      throw new InvalidModelError(`the model's directory '${root}' cannot be read: ${(err as Error).message}`, { cause: err });
    }
  }

  /** Checks where `t`'s bytes are and returns where to read them. */
  locate(t: TensorProto, where: () => string): { file: OpenFile; location: string; offset: number; bytes: number } {
    const { location, offset, length } = placementOf(t, where);
    const file = this.open(t, where, location);
    if (offset > file.size) throw refusal('invalid', t, where, location, `offset ${offset} is past the end of the file (${file.size} bytes)`);
    const bytes = length ?? file.size - offset;
    if (offset + bytes > file.size) throw refusal('invalid', t, where, location, `offset ${offset} + length ${bytes} is past the end of the file (${file.size} bytes)`);
    const expected = expectedBytes(t);
    if (expected !== undefined && expected !== bytes) {
      throw refusal('invalid', t, where, location, `${bytes} bytes of data for a tensor of shape [${tensorDims(t).join(',')}] that needs ${expected}`);
    }
    return { file, location, offset, bytes };
  }

  /** `t`'s bytes, read from its file after every check. */
  read(t: TensorProto, where: () => string): Uint8Array<ArrayBuffer> {
    const { file, location, offset, bytes } = this.locate(t, where);
    const data = new Uint8Array(bytes);
    for (let done = 0; done < bytes; ) {
      const n = readSync(file.fd, data, done, Math.min(READ_CHUNK, bytes - done), offset + done);
      if (n === 0) throw refusal('invalid', t, where, location, 'the file ended early (it was truncated while being read)');
      done += n;
    }
    return data;
  }

  close(): void {
    for (const f of this.files.values()) closeSync(f.fd);
    this.files.clear();
  }

  private open(t: TensorProto, where: () => string, location: string): OpenFile {
    const known = this.files.get(location);
    if (known) return known;
    const path = join(this.root, location);
    let st: Stats;
    try {
      st = lstatSync(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw refusal('invalid', t, where, location, code === 'ENOENT' ? "no such file beside the model; put the data files in the model's directory" : `cannot read the file (${code ?? (err as Error).message})`);
    }
    if (st.isSymbolicLink()) throw refusal('unsupported', t, where, location, 'the file is a symbolic link; data files must be regular files');
    if (st.isDirectory()) throw refusal('invalid', t, where, location, 'the location is a directory, not a data file');
    if (!st.isFile()) throw refusal('unsupported', t, where, location, 'the location is a device, FIFO or socket, not a regular file');
    // A directory on the way may be a symlink: what counts is where the file really is.
    const real = realpathSync(path);
    if (!real.startsWith(this.root + sep)) throw refusal('unsupported', t, where, location, "the file resolves outside the model's directory");
    // O_NOFOLLOW, and the same inode as checked: a swap between the checks and the open is refused.
    const fd = openSync(real, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
    const fst = fstatSync(fd);
    if (!fst.isFile() || fst.ino !== st.ino || fst.dev !== st.dev) {
      closeSync(fd);
      throw refusal('unsupported', t, where, location, 'the file changed while it was being opened');
    }
    const file = { fd, size: fst.size };
    this.files.set(location, file);
    return file;
  }
}

/** Whether a `small` load leaves this tensor (`bytes` long) in its file. */
const staysInFile = (t: TensorProto, bytes: number) => bytes >= LAZY_MIN_BYTES && expectedBytes(t) !== undefined;

/**
 * Resolves the external tensors of `proto` (in place: the proto was just decoded and is ours) from
 * files inside `root`, with every check of ExternalDataFiles. `read` says which are read into
 * raw_data; the others keep pointing at their files, checked: `none` is enough for `inspect`
 * (shapes and sizes, in memory independent of the model's size), `small` for running the model in
 * onnxruntime from its files and for the analyses, with the weights read only when a pass needs them.
 * Returns the bytes of external data, how many tensors stay in their files, and the real root.
 */
export function loadExternalData(proto: ModelProto, root: string, opts: { read?: ExternalRead } = {}): { bytes: number; kept: number; root: string } {
  const files = new ExternalDataFiles(root);
  const read = opts.read ?? 'all';
  let total = 0;
  let kept = 0;
  try {
    forEachTensor(proto, (t, where) => {
      if (!isExternal(t)) return;
      const { bytes } = files.locate(t, where);
      total += bytes;
      if (read === 'none' || (read === 'small' && staysInFile(t, bytes))) {
        kept++;
        return;
      }
      t.rawData = files.read(t, where);
      t.externalData = [];
      delete (t as Partial<TensorProto>).dataLocation; // unset, as in a model saved with embedded data
    });
  } finally {
    files.close();
  }
  return { bytes: total, kept, root: files.root };
}
