// The shape of src, checked: which folders may import which (lower layers never import higher
// ones), no import cycles between files, and no file over about 500 lines unless it is one table.
// This table is the architecture; the README describes it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root (this file runs from dist/test/). */
let root = dirname(fileURLToPath(import.meta.url));
while (!existsSync(join(root, 'package.json'))) root = dirname(root);
const SRC = join(root, 'src');

/**
 * Bottom to top. A module may import its own folder and the folders listed for it. `pipeline/pass`
 * (the pass interface) sits below the pass families; the rest of `pipeline` (recipes, the runner)
 * sits above `passes`, which registers them all.
 */
const MAY_IMPORT: Record<string, string[]> = {
  '(root)': [],
  linalg: ['(root)'],
  bundles: ['(root)'],
  onnx: ['(root)', 'linalg'],
  runtime: ['(root)', 'onnx'],
  metrics: ['(root)', 'linalg', 'onnx'],
  data: ['(root)', 'onnx', 'runtime'],
  report: ['(root)', 'metrics', 'onnx'],
  measure: ['(root)', 'linalg', 'onnx', 'runtime', 'metrics', 'report'],
  eval: ['(root)', 'onnx', 'runtime', 'metrics', 'report', 'measure', 'data'],
  'pipeline/pass': ['(root)', 'onnx', 'runtime', 'report'],
  quant: ['(root)', 'linalg', 'onnx', 'runtime', 'metrics', 'data', 'measure', 'eval', 'pipeline/pass'],
  prune: ['(root)', 'linalg', 'onnx', 'runtime', 'metrics', 'data', 'measure', 'eval', 'pipeline/pass'],
  factorize: ['(root)', 'linalg', 'onnx', 'runtime', 'metrics', 'data', 'measure', 'eval', 'pipeline/pass'],
  passes: ['(root)', 'linalg', 'onnx', 'runtime', 'metrics', 'data', 'measure', 'eval', 'pipeline/pass', 'quant', 'prune', 'factorize'],
  pipeline: ['(root)', 'onnx', 'runtime', 'metrics', 'data', 'measure', 'eval', 'report', 'pipeline/pass', 'passes'],
  search: ['(root)', 'onnx', 'runtime', 'metrics', 'data', 'measure', 'eval', 'report', 'pipeline/pass', 'passes', 'pipeline'],
  service: ['(root)', 'bundles', 'onnx', 'runtime', 'metrics', 'data', 'measure', 'eval', 'report', 'pipeline/pass', 'passes', 'pipeline', 'search'],
  cli: ['(root)', 'linalg', 'bundles', 'onnx', 'runtime', 'metrics', 'data', 'measure', 'eval', 'report', 'pipeline/pass', 'passes', 'pipeline', 'search', 'service'],
  bench: ['(root)', 'linalg', 'bundles', 'onnx', 'runtime', 'metrics', 'data', 'measure', 'eval', 'report', 'pipeline/pass', 'passes', 'pipeline', 'quant', 'prune', 'factorize', 'search', 'service', 'cli'],
};

/** Files allowed past the size limit: each is one cohesive table. */
const TABLES = new Set<string>([]);
const MAX_LINES = 500;

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return e.name === 'generated' ? [] : sources(p);
    return e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

/** 'quant', 'pipeline/pass', '(root)' … for a file under src. */
function layerOf(file: string): string {
  const rel = relative(SRC, file).replace(/\.[jt]s$/, '');
  if (!rel.includes('/')) return '(root)';
  return rel === 'pipeline/pass' ? rel : rel.split('/')[0]!;
}

const files = sources(SRC);
const imports = new Map<string, string[]>(
  files.map((f) => {
    const text = readFileSync(f, 'utf8');
    const specs = [...text.matchAll(/(?:from\s+|import\s*\(\s*)'(\.{1,2}\/[^']+)'/g)].map((m) => m[1]!);
    return [f, specs.map((s) => join(dirname(f), s).replace(/\.js$/, '.ts'))];
  }),
);

test('folders import only the layers below them', () => {
  const wrong: string[] = [];
  for (const [file, targets] of imports) {
    const from = layerOf(file);
    assert.ok(MAY_IMPORT[from], `src/${relative(SRC, file)}: folder '${from}' is not in the architecture table`);
    for (const t of targets) {
      const to = layerOf(t);
      if (to !== from && !MAY_IMPORT[from]!.includes(to)) wrong.push(`src/${relative(SRC, file)} → src/${relative(SRC, t)} (${from} may not import ${to})`);
    }
  }
  assert.deepEqual(wrong, []);
});

test('no import cycles between files in src', () => {
  const state = new Map<string, 'open' | 'done'>();
  const cycles: string[] = [];
  const visit = (f: string, path: string[]) => {
    if (state.get(f) === 'done') return;
    if (state.get(f) === 'open') {
      cycles.push([...path.slice(path.indexOf(f)), f].map((p) => relative(SRC, p)).join(' → '));
      return;
    }
    state.set(f, 'open');
    for (const t of imports.get(f) ?? []) if (imports.has(t)) visit(t, [...path, f]);
    state.set(f, 'done');
  };
  for (const f of files) visit(f, []);
  assert.deepEqual(cycles, []);
});

test(`no file in src over ${MAX_LINES} lines unless it is one table`, () => {
  const long = files
    .map((f) => ({ file: relative(SRC, f), lines: readFileSync(f, 'utf8').split('\n').length }))
    .filter((x) => x.lines > MAX_LINES && !TABLES.has(x.file))
    .map((x) => `${x.file}: ${x.lines} lines`);
  assert.deepEqual(long, []);
});
