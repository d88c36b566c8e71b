// What the quantization bench's families share: where the repository is, and a row of the targets table.
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!dir.endsWith('dist') && dir !== '/') dir = dirname(dir);
  return dirname(dir);
})();

export interface Row {
  target: string;
  measured: string;
  pass: boolean | null;
}
