// The benchmark's large fixtures at CI size: the same export scripts (scripts/fixtures/large/) with
// --size small, then one pass family each through the CLI, with fidelity against the original. The
// decoder comes with external data, so loading it from its directory is exercised end to end.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT, cli } from './helpers.js';

const PYTHON = '/usr/bin/python3';

interface Case {
  script: string;
  name: string;
  recipe: object;
  data: 'eval' | 'calib+eval';
  /** Least SQNR (dB) of the first output, about 10 dB under what was measured (40, 60 and 18 dB; int4 with random weights is the noisiest). */
  minSqnrDb: number;
}

const CASES: Case[] = [
  { script: 'resnet50.py', name: 'resnet50-small', recipe: { steps: [{ pass: 'quantize.static' }] }, data: 'calib+eval', minSqnrDb: 30 },
  { script: 'bert.py', name: 'bert-small', recipe: { steps: [{ pass: 'quantize.dynamic' }] }, data: 'eval', minSqnrDb: 40 },
  { script: 'decoder.py', name: 'decoder-small', recipe: { steps: [{ pass: 'quantize.weights', bits: 4, blockSize: 32 }] }, data: 'eval', minSqnrDb: 12 },
];

describe('large fixtures at CI size', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(os.tmpdir(), 'modelpress-large-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const c of CASES) {
    it(`${c.name}: exported by scripts/fixtures/large/${c.script}, ${(c.recipe as { steps: { pass: string }[] }).steps[0]!.pass} runs and stays close to the original`, () => {
      const gen = spawnSync(PYTHON, [join(ROOT, 'scripts/fixtures/large', c.script), '--size', 'small', '--out', dir, '--samples', '8'], { encoding: 'utf8' });
      assert.equal(gen.status, 0, `${c.script} failed (it needs python3-torch and python3-onnx; run scripts/setup.sh): ${gen.stderr}`);
      const model = join(dir, `${c.name}.onnx`);
      if (c.name.startsWith('decoder')) assert.ok(existsSync(`${model}.data`), 'the decoder is saved with external data');
      const recipe = join(dir, `${c.name}.recipe.json`);
      writeFileSync(recipe, JSON.stringify({ ...c.recipe, benchmark: { enabled: false } }));
      const out = join(dir, `${c.name}.out.onnx`);
      const report = join(dir, `${c.name}.report.json`);
      const data = c.data === 'calib+eval' ? ['--calibration', join(dir, `${c.name}-calib-8.npz`)] : [];
      const r = cli('compress', model, '--recipe', recipe, '--out', out, '--report', report, '--data', join(dir, `${c.name}-eval-8.npz`), ...data, '--quiet');
      assert.equal(r.code, 0, r.stderr);
      const rep = JSON.parse(readFileSync(report, 'utf8')) as { steps: { changes: { rewritten?: number }; fidelity: Record<string, { sqnrDb: number }> }[] };
      const fidelity = Object.values(rep.steps[0]!.fidelity)[0]!;
      assert.ok(fidelity.sqnrDb > c.minSqnrDb, `${c.name}: SQNR ${fidelity.sqnrDb} dB`);
    });
  }
});
