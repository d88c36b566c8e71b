// Model bundles (.tar, .tar.gz, .zip: one .onnx plus its external data files): our own readers
// unpack them under rules an untrusted archive cannot get around, and the service runs a job on a
// bundle and hands back a .tar bundle when the result has external data. Archives are made by
// python's tarfile/zipfile and GNU tar, not by our writer, so the readers meet what users send.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { ModelpressError } from '../src/errors.js';
import { loadModelWithFiles } from '../src/onnx/model-files.js';
import { createSession, ort, type ModelSource } from '../src/runtime/ort.js';
import { buildApp } from '../src/service/app.js';
import { sniffUpload, unpackBundle, type UploadKind } from '../src/bundles/unpack.js';
import { writeTar } from '../src/bundles/tar.js';
import { ROOT } from './helpers.js';
import { client, finished, jobApi, startWorkerProcess, testService, type TestService, type WorkerProcess } from './service-helpers.js';

const FMNIST_CNN = join(ROOT, 'test/fixtures/fmnist/fmnist-cnn.onnx');
const LIMITS = { maxTotalBytes: 64 * 1024 * 1024, maxEntries: 100 };

let tmp: string;
/** name → path of every archive the python script made */
const archives: Record<string, string> = {};

// One python run makes the external-data model and every archive, good and hostile.
const MAKE_ARCHIVES = String.raw`
import io, os, sys, tarfile, zipfile, onnx
src, out = sys.argv[1], sys.argv[2]
model_dir = os.path.join(out, 'model')
os.makedirs(model_dir)
onnx.save_model(onnx.load(src), os.path.join(model_dir, 'cnn.onnx'), save_as_external_data=True, all_tensors_to_one_file=True, location='w.data', size_threshold=0)
files = {n: open(os.path.join(model_dir, n), 'rb').read() for n in ('cnn.onnx', 'w.data')}

def tar(name, entries, mode='w'):
    with tarfile.open(os.path.join(out, name), mode, format=tarfile.PAX_FORMAT) as t:
        for info, data in entries:
            t.addfile(info, io.BytesIO(data) if data is not None else None)

def reg(name, data):
    i = tarfile.TarInfo(name); i.size = len(data); return (i, data)

def special(name, kind, target=''):
    i = tarfile.TarInfo(name); i.type = kind; i.linkname = target
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE): i.devmajor, i.devminor = 1, 5
    return (i, None)

good = [reg(n, d) for n, d in files.items()]
tar('good.tar.gz', good, 'w:gz')
tar('good.tar', [special('model/', tarfile.DIRTYPE)][:0] + good)
tar('dotdot.tar', good + [reg('../evil.txt', b'x')])
tar('absolute.tar', good + [reg('/tmp/evil.txt', b'x')])
tar('symlink.tar', good + [special('link.data', tarfile.SYMTYPE, '/etc/passwd')])
tar('hardlink.tar', good + [special('hard.data', tarfile.LNKTYPE, 'w.data')])
tar('device.tar', good + [special('zero.data', tarfile.CHRTYPE)])
tar('fifo.tar', good + [special('pipe.data', tarfile.FIFOTYPE)])
tar('duplicate.tar', good + [reg('w.data', files['w.data'])])
tar('two-models.tar', good + [reg('other.onnx', files['cnn.onnx'])])
tar('nested-model.tar', [reg('sub/cnn.onnx', files['cnn.onnx']), reg('sub/w.data', files['w.data'])])
tar('long-name.tar', [reg('cnn.onnx', files['cnn.onnx']), reg('w.data', files['w.data']), reg('d/' + 'x' * 150, b'long')])

def zipped(name, entries):
    with zipfile.ZipFile(os.path.join(out, name), 'w', zipfile.ZIP_DEFLATED) as z:
        for info, data in entries:
            z.writestr(info, data)

zipped('good.zip', list(files.items()))
link = zipfile.ZipInfo('link.data'); link.create_system = 3; link.external_attr = 0o120777 << 16
zipped('symlink.zip', list(files.items()) + [(link, '/etc/passwd')])
zipped('dotdot.zip', list(files.items()) + [('../evil.txt', b'x')])
zipped('bomb.zip', [('cnn.onnx', files['cnn.onnx']), ('w.data', b'\0' * (80 * 1024 * 1024))])
`;

before(() => {
  tmp = mkdtempSync(join(os.tmpdir(), 'modelpress-bundles-'));
  const r = spawnSync('/usr/bin/python3', ['-c', MAKE_ARCHIVES, FMNIST_CNN, tmp], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  for (const f of readdirSync(tmp)) if (/\.(tar|tar\.gz|zip)$/.test(f)) archives[f] = join(tmp, f);
});
after(() => rmSync(tmp, { recursive: true, force: true }));

async function unpack(name: string) {
  const root = mkdtempSync(join(tmp, 'unpacked-'));
  const kind = sniffUpload(archives[name]!);
  assert.notEqual(kind, 'onnx', `${name} is recognized as an archive by its bytes`);
  return { root, ...(await unpackBundle(archives[name]!, kind as Exclude<UploadKind, 'onnx'>, root, LIMITS)) };
}

async function logits(model: ModelSource | string): Promise<Float32Array> {
  const session = typeof model === 'string' ? await ort.InferenceSession.create(model) : await createSession(model);
  try {
    const x = new ort.Tensor('float32', Float32Array.from({ length: 784 }, (_, i) => (i % 29) / 29), [1, 1, 28, 28]);
    return Object.values(await session.run({ input: x }))[0]!.data as Float32Array;
  } finally {
    await session.release();
  }
}

describe('bundle readers', () => {
  for (const name of ['good.tar.gz', 'good.tar', 'good.zip']) {
    it(`${name}: unpacks, and the model loads with its external data and runs like the original`, async () => {
      const { root, modelFile, files } = await unpack(name);
      assert.deepEqual(files.sort(), ['cnn.onnx', 'w.data']);
      const loaded = loadModelWithFiles(readFileSync(modelFile), root);
      assert.ok(loaded.externalBytes > 1_000_000);
      assert.equal(loaded.model.externalDataRoot, realpathSync(root), 'large tensors stay in the bundle, read from there');
      assert.deepEqual(await logits(loaded.source), await logits(readFileSync(FMNIST_CNN)));
    });
  }

  it('a file name is not what decides: a .onnx upload that is really a zip is unpacked as one', () => {
    assert.equal(sniffUpload(archives['good.zip']!), 'zip');
    assert.equal(sniffUpload(archives['good.tar.gz']!), 'tar.gz');
    assert.equal(sniffUpload(archives['good.tar']!), 'tar');
    assert.equal(sniffUpload(FMNIST_CNN), 'onnx');
  });

  it('pax long names are read', async () => {
    const { files } = await unpack('long-name.tar');
    assert.ok(files.includes(`d/${'x'.repeat(150)}`), files.join(','));
  });

  const refusals: [string, RegExp][] = [
    ['dotdot.tar', /entry "\.\.\/evil\.txt" contains '\.\.'/],
    ['absolute.tar', /entry "\/tmp\/evil\.txt" is an absolute path/],
    ['symlink.tar', /entry "link\.data" is a symbolic link/],
    ['hardlink.tar', /entry "hard\.data" is a hard link/],
    ['device.tar', /entry "zero\.data" is a character device/],
    ['fifo.tar', /entry "pipe\.data" is a FIFO/],
    ['duplicate.tar', /entry 'w\.data' appears twice/],
    ['two-models.tar', /more than one \.onnx at the top level \('cnn\.onnx', 'other\.onnx'\)/],
    ['nested-model.tar', /no \.onnx file at the top level of the bundle \(found 'sub\/cnn\.onnx' in folders/],
    ['symlink.zip', /entry 'link\.data' is a symbolic link/],
    ['dotdot.zip', /entry "\.\.\/evil\.txt" contains '\.\.'/],
    ['bomb.zip', /unpacks to \d+ bytes, more than 67108864 bytes, the limit for a bundle \(MAX_UNPACKED_BYTES raises it\)/],
  ];
  for (const [name, pattern] of refusals) {
    it(`refuses ${name}`, async () => {
      await assert.rejects(unpack(name), (err: unknown) => {
        assert.ok(err instanceof ModelpressError, String(err));
        assert.equal(err.code, 'invalid_input');
        assert.match(err.message, /^bundle: /);
        assert.match(err.message, pattern);
        return true;
      });
      assert.ok(!existsSync(join(tmp, 'evil.txt')) && !existsSync('/tmp/evil.txt'), 'nothing was written outside');
    });
  }

  it('our tar writer is read back by GNU tar, deterministic byte for byte', async () => {
    const dir = mkdtempSync(join(tmp, 'write-'));
    writeFileSync(join(dir, 'a.bin'), Buffer.alloc(1000, 7));
    writeFileSync(join(dir, 'b.bin'), Buffer.alloc(0));
    const first = await writeTar(join(dir, 'one.tar'), [{ name: 'a.bin', path: join(dir, 'a.bin') }, { name: 'b.bin', path: join(dir, 'b.bin') }]);
    const second = await writeTar(join(dir, 'two.tar'), [{ name: 'a.bin', path: join(dir, 'a.bin') }, { name: 'b.bin', path: join(dir, 'b.bin') }]);
    assert.equal(first.sha256, second.sha256);
    assert.equal(first.sha256, createHash('sha256').update(readFileSync(join(dir, 'one.tar'))).digest('hex'));
    const listed = spawnSync('tar', ['-tvf', join(dir, 'one.tar')], { encoding: 'utf8' });
    assert.equal(listed.status, 0, listed.stderr);
    assert.match(listed.stdout, /1000 .*a\.bin/);
  });
});

describe('the service takes bundles', () => {
  let svc: TestService;
  let app: FastifyInstance;
  let worker: WorkerProcess;
  let api: ReturnType<typeof client>;
  let jobs: ReturnType<typeof jobApi>;

  before(async () => {
    svc = await testService();
    app = await buildApp({ config: svc.config, forceCloseConnections: true });
    await app.listen({ port: 0, host: '127.0.0.1' });
    api = client(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, await svc.newKey('bundle-tests'));
    jobs = jobApi(api);
    worker = await startWorkerProcess(svc.env);
  });
  after(async () => {
    await worker?.stop();
    await app?.queue.obliterate({ force: true }).catch(() => {});
    await app?.close();
    await svc?.close();
  });

  /** The upload's file name says .onnx on purpose: the bytes decide. */
  function form(archive: string, recipe: object): FormData {
    const f = new FormData();
    f.append('recipe', JSON.stringify(recipe));
    f.append('model', new Blob([readFileSync(archives[archive]!)]), 'cnn.onnx');
    return f;
  }
  const recipe = { steps: [{ pass: 'convert.fp16' }], benchmark: { enabled: false }, evaluate: { maxSamples: 8 } };

  it('a .tar.gz bundle: the job succeeds and the artifact is a plain .onnx', async () => {
    const id = await jobs.create(form('good.tar.gz', recipe));
    const done = await jobs.until(id, finished, 'the bundle job', 60_000);
    assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
    const res = await api.get(`/v1/jobs/${id}/artifact`);
    assert.match(res.headers.get('content-disposition') ?? '', /filename="cnn\.compressed\.onnx"/);
    const want = await logits(readFileSync(FMNIST_CNN));
    const got = await logits(new Uint8Array(await res.arrayBuffer()));
    assert.ok(got.every((v, i) => Math.abs(v - want[i]!) < 0.05));
  });

  it('a .zip bundle with output.externalData: the artifact is a .tar (ETag = sha256, Range) that onnxruntime loads from its path', async () => {
    const id = await jobs.create(form('good.zip', { ...recipe, output: { externalData: true } }));
    const done = await jobs.until(id, finished, 'the bundle job', 60_000);
    assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
    const res = await api.get(`/v1/jobs/${id}/artifact`);
    assert.match(res.headers.get('content-disposition') ?? '', /filename="cnn\.compressed\.tar"/);
    const tar = new Uint8Array(await res.arrayBuffer());
    assert.equal(res.headers.get('etag'), `"${createHash('sha256').update(tar).digest('hex')}"`);
    const part = await api.get(`/v1/jobs/${id}/artifact`, { range: 'bytes=0-511' });
    assert.equal(part.status, 206);
    assert.deepEqual(new Uint8Array(await part.arrayBuffer()), tar.slice(0, 512));
    const dir = mkdtempSync(join(tmp, 'artifact-'));
    writeFileSync(join(dir, 'a.tar'), tar);
    mkdirSync(join(dir, 'x'));
    const untar = spawnSync('tar', ['-xf', join(dir, 'a.tar'), '-C', join(dir, 'x')], { encoding: 'utf8' });
    assert.equal(untar.status, 0, untar.stderr);
    assert.deepEqual(readdirSync(join(dir, 'x')).sort(), ['cnn.onnx', 'cnn.onnx.data']);
    const want = await logits(readFileSync(FMNIST_CNN));
    const got = await logits(join(dir, 'x', 'cnn.onnx'));
    assert.ok(got.every((v, i) => Math.abs(v - want[i]!) < 0.05));
  });

  for (const [archive, pattern] of [
    ['dotdot.tar', /contains '\.\.'/],
    ['symlink.tar', /is a symbolic link/],
  ] as const) {
    it(`${archive}: the job fails with invalid_input and says why`, async () => {
      const id = await jobs.create(form(archive, recipe));
      const done = await jobs.until(id, finished, 'the hostile bundle job', 60_000);
      assert.equal(done.status, 'failed');
      assert.equal(done.error?.code, 'invalid_input');
      assert.match(done.error?.message ?? '', pattern);
    });
  }
});
