// The rules for entries of an untrusted archive: every entry must be a plain relative path to a
// regular file or a directory, each name once, and the total stays under a cap checked while the
// bytes are written (a header may lie about its size). Nothing else is ever created: no links, no
// devices, no FIFOs, so the directory holds only what the external-data resolver may read.
import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { InvalidInputError } from '../errors.js';

export interface UnpackLimits {
  /** The most bytes all entries may unpack to together. */
  maxTotalBytes: number;
  maxEntries: number;
}

export const refuse = (message: string) => new InvalidInputError(`bundle: ${message}`);

/** The refusal for a bundle past maxTotalBytes, with the setting that raises the limit. */
export const overLimit = (limit: number, bytes?: number) =>
  refuse(`unpacks to ${bytes === undefined ? 'more than' : `${bytes} bytes, more than`} ${limit} bytes, the limit for a bundle (MAX_UNPACKED_BYTES raises it)`);

/** The entry's path, normalized, or a refusal: relative, no `..`, `.` or empty segments, no backslash, no NUL. */
export function entryPath(raw: string): string {
  let name = raw;
  while (name.startsWith('./')) name = name.slice(2);
  if (name.endsWith('/')) name = name.slice(0, -1);
  const shown = JSON.stringify(raw.length > 120 ? `${raw.slice(0, 120)}…` : raw);
  if (name.includes('\0')) throw refuse(`entry ${shown} has a NUL in its name`);
  if (name.startsWith('/') || /^[A-Za-z]:/.test(name)) throw refuse(`entry ${shown} is an absolute path; a bundle holds relative paths only`);
  if (name.includes('\\')) throw refuse(`entry ${shown} has a backslash in its name; use / between folders`);
  const segments = name.split('/');
  if (segments.includes('..')) throw refuse(`entry ${shown} contains '..'; a bundle may not point outside itself`);
  if (name !== '' && segments.some((s) => s === '' || s === '.')) throw refuse(`entry ${shown} is not a normalized path`);
  return name;
}

/** Writes entries into `root`, enforcing the rules above; `files` lists the regular files written. */
export class BundleWriter {
  readonly files: string[] = [];
  private readonly seen = new Set<string>();
  private total = 0;

  constructor(
    readonly root: string,
    private readonly limits: UnpackLimits,
  ) {}

  private claim(name: string): void {
    if (this.seen.has(name)) throw refuse(`entry '${name}' appears twice`);
    this.seen.add(name);
    if (this.seen.size > this.limits.maxEntries) throw refuse(`more than ${this.limits.maxEntries} entries`);
  }

  async directory(raw: string): Promise<void> {
    const name = entryPath(raw);
    if (name === '') return; // the archive's own top folder ('./')
    this.claim(name);
    await mkdir(join(this.root, name), { recursive: true });
  }

  /** Declared size first (refused before a byte is written if it cannot fit), then counted for real. */
  async file(raw: string, declaredBytes: number, content: AsyncIterable<Buffer>): Promise<void> {
    const name = entryPath(raw);
    if (name === '') throw refuse('an entry without a name');
    this.claim(name);
    const over = () => overLimit(this.limits.maxTotalBytes);
    if (this.total + declaredBytes > this.limits.maxTotalBytes) throw over();
    const path = join(this.root, name);
    await mkdir(dirname(path), { recursive: true });
    let fh: FileHandle;
    try {
      fh = await open(path, 'wx'); // never through an existing name
    } catch (err) {
      throw refuse(`entry '${name}' clashes with another entry (${(err as NodeJS.ErrnoException).code})`);
    }
    let written = 0;
    try {
      for await (const chunk of content) {
        written += chunk.length;
        if (written > declaredBytes) throw refuse(`entry '${name}' holds more bytes than its header says (${declaredBytes})`);
        if (this.total + written > this.limits.maxTotalBytes) throw over();
        await fh.write(chunk);
      }
    } finally {
      await fh.close();
    }
    if (written !== declaredBytes) throw refuse(`entry '${name}' is truncated (${written} of ${declaredBytes} bytes)`);
    this.total += written;
    this.files.push(name);
  }
}

