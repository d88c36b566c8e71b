// The CLI takes a model bundle (.tar, .tar.gz, .zip of one .onnx and its external data) like the API:
// unpacked by the same readers into a private dir under TMPDIR that is gone afterwards — on success,
// on a refusal and on Ctrl-C — and never anything written outside it. Archives are made by python's
// tarfile/zipfile from a model python onnx saved with external data.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { batchesFromArrays, readArraysFile } from '../src/data/samples.js';
import { decodeModel } from '../src/onnx/model-io.js';
import { createSession, type ort } from '../src/runtime/ort.js';
import { FMNIST, MODELS, ROOT } from './helpers.js';

const CLI = join(ROOT, 'dist/src/cli/main.js');

const MAKE_BUNDLES = String.raw`
import io, os, sys, tarfile, zipfile, onnx
src, out = sys.argv[1], sys.argv[2]
model_dir = os.path.join(out, 'model')
os.makedirs(model_dir)
onnx.save_model(onnx.load(src), os.path.join(model_dir, 'cnn.onnx'), save_as_external_data=True, all_tensors_to_one_file=True, location='w.data', size_threshold=0)
files = [(n, open(os.path.join(model_dir, n), 'rb').read()) for n in ('cnn.onnx', 'w.data')]

def reg(name, data):
    i = tarfile.TarInfo(name); i.size = len(data); return i, io.BytesIO(data)

for name, mode, extra in (('good.tar', 'w', []), ('good.tar.gz', 'w:gz', []), ('dotdot.tar', 'w', [('../evil.txt', b'x')])):
    with tarfile.open(os.path.join(out, name), mode, format=tarfile.PAX_FORMAT) as t:
        for n, d in files + extra:
            t.addfile(*reg(n, d))
for name, extra in (('good.zip', []), ('dotdot.zip', [('../evil.txt', b'x')])):
    with zipfile.ZipFile(os.path.join(out, name), 'w', zipfile.ZIP_DEFLATED) as z:
        for n, d in files + extra:
            z.writestr(n, d)

# the model, then 512 MiB of zeros as a hole: unpacking takes long enough to be interrupted, on disk it is small
with open(os.path.join(out, 'slow.tar'), 'wb') as f:
    body = io.BytesIO()
    t = tarfile.open(fileobj=body, mode='w', format=tarfile.PAX_FORMAT)
    for n, d in files:
        t.addfile(*reg(n, d))
    end = t.offset  # past the last entry, before the end-of-archive blocks
    t.close()
    f.write(body.getvalue()[:end])
    big = tarfile.TarInfo('big.bin'); big.size = 512 * 2**20
    f.write(big.tobuf(tarfile.PAX_FORMAT))
    f.truncate(f.tell() + big.size + 1024)
`;

let tmp: string;
/** A fresh TMPDIR and working directory per run, checked afterwards. */
function sandbox(name: string): { tmpdir: string; cwd: string } {
  const tmpdir = join(tmp, name, 'tmp');
  const cwd = join(tmp, name, 'cwd');
  mkdirSync(tmpdir, { recursive: true });
  mkdirSync(cwd, { recursive: true });
  return { tmpdir, cwd };
}

function run(box: { tmpdir: string; cwd: string }, args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: box.cwd, env: { ...process.env, TMPDIR: box.tmpdir, ...env }, encoding: 'utf8', timeout: 180_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** What the CLI left in a TMPDIR (onnxruntime's environment may leave files of its own there). */
const leftInTmp = (dir: string) => readdirSync(dir).filter((n) => n.startsWith('modelpress-'));

/** Every file under dir, relative. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => !e.isDirectory())
    .map((e) => join(e.parentPath ?? e.path, e.name).slice(dir.length + 1));
}

before(() => {
  tmp = mkdtempSync(join(os.tmpdir(), 'modelpress-cli-bundles-'));
  const r = spawnSync('/usr/bin/python3', ['-c', MAKE_BUNDLES, MODELS.fmnist, tmp], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.ok(readFileSync(join(tmp, 'slow.tar')).length > 512 * 2 ** 20);
});
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('CLI on model bundles', () => {
  for (const bundle of ['good.tar', 'good.zip']) {
    it(`inspect and compress ${bundle}: the external data is read from the bundle, the result runs like the original, the temp dir is gone`, async () => {
      const box = sandbox(`ok-${bundle}`);
      const path = join(tmp, bundle);
      const inspect = run(box, ['inspect', path, '--json']);
      assert.equal(inspect.code, 0, inspect.stderr);
      const summary = JSON.parse(inspect.stdout) as { params: number };
      const original = JSON.parse(run(box, ['inspect', MODELS.fmnist, '--json']).stdout) as { params: number };
      assert.equal(summary.params, original.params);

      const recipe = join(box.cwd, 'fp16.json');
      writeFileSync(recipe, JSON.stringify({ steps: [{ pass: 'convert.fp16' }], benchmark: { enabled: false } }));
      const out = join(box.cwd, 'out.onnx');
      const c = run(box, ['compress', path, '--recipe', recipe, '--out', out, '--report', join(box.cwd, 'r.json'), '--data', FMNIST.inputs, '--max-samples', '64', '--quiet']);
      assert.equal(c.code, 0, c.stderr);
      // the fp16 result against the original, in onnxruntime, on real images
      const model = decodeModel(readFileSync(MODELS.fmnist));
      const x = batchesFromArrays(model, readArraysFile(FMNIST.inputs, model), { batchSize: 64 }).next().value!;
      const outputs: Float32Array[] = [];
      for (const bytes of [readFileSync(MODELS.fmnist), readFileSync(out)]) {
        const s = await createSession(bytes);
        outputs.push((Object.values(await s.run(x))[0] as ort.Tensor).data as Float32Array);
        await s.release();
      }
      let maxErr = 0;
      for (let i = 0; i < outputs[0]!.length; i++) maxErr = Math.max(maxErr, Math.abs(outputs[0]![i]! - outputs[1]![i]!));
      assert.ok(maxErr < 0.05, `fp16 of the bundled model vs the original: max |err| ${maxErr}`);

      const ev = run(box, ['eval', MODELS.fmnist, path, '--data', FMNIST.inputs, '--max-samples', '64', '--json', '--quiet']);
      assert.equal(ev.code, 0, ev.stderr);
      const fid = Object.values((JSON.parse(ev.stdout) as { fidelity: Record<string, { maxAbsError: number }> }).fidelity)[0]!;
      assert.equal(fid.maxAbsError, 0, 'the bundled model is the original, bit for bit');

      const bench = run(box, ['bench', path, '--batch', '1', '--warmup', '0', '--runs', '1', '--rounds', '2', '--quiet']);
      assert.equal(bench.code, 0, bench.stderr);
      assert.deepEqual(leftInTmp(box.tmpdir), [], 'every temp dir is removed');
    });
  }

  it('a .tar.gz is told apart by its bytes, whatever its name', () => {
    const box = sandbox('gz');
    const renamed = join(box.cwd, 'model.onnx');
    writeFileSync(renamed, readFileSync(join(tmp, 'good.tar.gz')));
    const r = run(box, ['inspect', renamed]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /parameters/);
    assert.deepEqual(leftInTmp(box.tmpdir), []);
  });

  for (const bundle of ['dotdot.tar', 'dotdot.zip']) {
    it(`a hostile bundle (${bundle}: '../evil.txt') exits 2 with invalid_input, and nothing is left or written outside`, () => {
      const box = sandbox(`hostile-${bundle}`);
      const before = filesUnder(tmp).filter((f) => !f.startsWith(`hostile-${bundle}/`));
      const r = run(box, ['inspect', join(tmp, bundle)]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(r.stderr, /error \[invalid_input\]: bundle: entry "\.\.\/evil\.txt" contains '\.\.'; a bundle may not point outside itself/);
      assert.deepEqual(readdirSync(box.tmpdir), [], 'the temp dir is removed after the refusal');
      assert.deepEqual(filesUnder(join(tmp, `hostile-${bundle}`)), [], 'nothing in the sandbox');
      assert.deepEqual(filesUnder(tmp).filter((f) => !f.startsWith(`hostile-${bundle}/`)), before, 'nothing new next to it');
      assert.ok(!existsSync(join(os.tmpdir(), 'evil.txt')) && !existsSync('/tmp/evil.txt'));
    });
  }

  it('MAX_UNPACKED_BYTES caps a bundle (exit 2 naming the setting); a bad value is refused', () => {
    const box = sandbox('limit');
    const r = run(box, ['inspect', join(tmp, 'good.tar')], { MAX_UNPACKED_BYTES: '1000' });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /\[invalid_input\]: bundle: unpacks to more than 1000 bytes, the limit for a bundle \(MAX_UNPACKED_BYTES raises it\)/);
    const bad = run(box, ['inspect', join(tmp, 'good.tar')], { MAX_UNPACKED_BYTES: 'lots' });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /MAX_UNPACKED_BYTES="lots": expected a positive whole number of bytes/);
    assert.deepEqual(leftInTmp(box.tmpdir), []);
  });

  it('Ctrl-C while a bundle unpacks removes the temp dir and exits by the signal', async () => {
    const box = sandbox('sigint');
    const child = spawn(process.execPath, [CLI, 'inspect', join(tmp, 'slow.tar')], { cwd: box.cwd, env: { ...process.env, TMPDIR: box.tmpdir }, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    // interrupt once the large entry is being written
    let seen = false;
    for (let i = 0; i < 6000 && !seen && child.exitCode === null; i++) {
      seen = readdirSync(box.tmpdir).some((d) => existsSync(join(box.tmpdir, d, 'big.bin')));
      if (!seen) await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.ok(seen, 'the unpack reached the large entry');
    child.kill('SIGINT');
    const { code, signal } = await exited;
    assert.equal(signal, 'SIGINT', `exit by the signal (code ${code})`);
    assert.deepEqual(leftInTmp(box.tmpdir), [], 'the temp dir is removed');
  });
});
