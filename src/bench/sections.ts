// A bench file that several scripts write: each owns one section, between `<!-- begin: id -->` and
// `<!-- end: id -->`, and rewrites only that (bench/service.md: `npm run load` and `npm run bench:service`).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

const marks = (id: string) => [`<!-- begin: ${id} -->`, `<!-- end: ${id} -->`] as const;

/** Replaces section `id` of `file` with `md` (appended when the file has no such section yet). */
export function writeSection(file: string, id: string, md: string): void {
  const [begin, end] = marks(id);
  const block = `${begin}\n${md.trimEnd()}\n${end}\n`;
  const old = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const a = old.indexOf(begin);
  const b = old.indexOf(end, a);
  let next: string;
  if (a >= 0 && b > a) next = old.slice(0, a) + block + old.slice(b + end.length).replace(/^\n/, '');
  else next = old ? `${old.trimEnd()}\n\n${block}` : block;
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, next);
}

/** Section `id` of `file`, without its marks (null when absent). */
export function readSection(file: string, id: string): string | null {
  if (!existsSync(file)) return null;
  const [begin, end] = marks(id);
  const text = readFileSync(file, 'utf8');
  const a = text.indexOf(begin);
  const b = text.indexOf(end, a);
  return a >= 0 && b > a ? `${text.slice(a + begin.length, b).trim()}\n` : null;
}
