// The Storage contract, one test body run against both stores: the local directory and S3 (s3rver, a
// real S3-protocol server on a free port). Then what only S3 has: multipart uploads past one part,
// presigned URLs, a key prefix, an outage, and choosing the store from the environment.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { loadConfig } from '../src/service/config.js';
import { createStorage } from '../src/service/storage/create.js';
import { LocalStorage } from '../src/service/storage/local.js';
import { PRESIGN_SECONDS, S3Storage } from '../src/service/storage/s3.js';
import type { Storage } from '../src/service/storage/storage.js';
import { ModelpressError } from '../src/errors.js';
import { startS3, type TestS3 } from './s3-helpers.js';

let s3: TestS3;
let localRoot: string;
/** The test process's TMPDIR: local copies must leave nothing here. */
let tmp: string;
const realTmp = tmpdir();

before(async () => {
  s3 = await startS3();
  localRoot = mkdtempSync(join(realTmp, 'mp-local-store-'));
  tmp = mkdtempSync(join(realTmp, 'mp-storage-tmp-'));
  process.env.TMPDIR = tmp;
});

after(async () => {
  await s3.close();
  rmSync(localRoot, { recursive: true, force: true });
  rmSync(tmp, { recursive: true, force: true });
});

async function bytesOf(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const keys = async (store: Storage, prefix: string) => (await store.list(prefix)).map((o) => o.key).sort();

/** A stream of `bytes` in chunks of at most 64 KiB, as a request body arrives. */
function streamOf(bytes: Buffer): Readable {
  let at = 0;
  return new Readable({
    read() {
      if (at >= bytes.length) return this.push(null);
      this.push(bytes.subarray(at, at + 65536));
      at += 65536;
    },
  });
}

const STORES: [string, () => Storage][] = [
  ['local', () => new LocalStorage(localRoot)],
  ['s3', () => s3.store()],
];

for (const [name, make] of STORES) {
  test(`${name}: putStream hashes on the way into tmp/; promote stores once per content; read whole and by range; size`, async () => {
    const store = make();
    const bytes = randomBytes(300_000);
    const up = await store.putStream(streamOf(bytes));
    assert.match(up.key, /^tmp\/[0-9a-f-]{36}$/);
    assert.equal(up.sha256, sha(bytes));
    assert.equal(up.sizeBytes, bytes.length);
    assert.deepEqual(await bytesOf(await store.read(up.key)), bytes);

    const key = `models/${up.sha256}.onnx`;
    await store.promote(up.key, key);
    assert.equal(await store.size(up.key), null, 'the temporary object is gone');
    assert.equal(await store.size(key), bytes.length);
    // the same content again: the second temporary object is dropped, the stored one stays
    const again = await store.putStream(streamOf(bytes));
    await store.promote(again.key, key);
    assert.equal(await store.size(again.key), null);
    assert.deepEqual(await bytesOf(await store.read(key)), bytes);

    assert.deepEqual(await bytesOf(await store.read(key, { start: 10, end: 109 })), bytes.subarray(10, 110));
    assert.deepEqual(await bytesOf(await store.read(key, { start: bytes.length - 1, end: bytes.length - 1 })), bytes.subarray(bytes.length - 1));
    assert.equal(await store.size('models/absent.onnx'), null);
    await assert.rejects(store.read('models/absent.onnx'), (err: ModelpressError) => err.code === 'stored_object_missing' && /missing/.test(err.message));
    await assert.rejects(store.read('../outside'), /invalid storage key/);
    await store.delete(key);
    assert.equal(await store.size(key), null);
    await store.delete(key); // deleting what is gone is no error
  });

  test(`${name}: list is by folder (best/job1 is not best/job10), with modification times; delete`, async () => {
    const store = make();
    const file = join(tmp, 'x.bin');
    for (const k of ['best/job1/a.onnx', 'best/job1/b.onnx', 'best/job10/c.onnx', 'bestx/d.onnx']) {
      writeFileSync(file, k);
      await store.putFile(k, file);
    }
    assert.deepEqual(await keys(store, 'best/job1'), ['best/job1/a.onnx', 'best/job1/b.onnx']);
    assert.deepEqual(await keys(store, 'best'), ['best/job1/a.onnx', 'best/job1/b.onnx', 'best/job10/c.onnx']);
    assert.deepEqual(await keys(store, 'nothing-here'), []);
    for (const o of await store.list('best')) assert.ok(Math.abs(o.modifiedAt.getTime() - Date.now()) < 120_000, `${o.key}: ${o.modifiedAt.toISOString()}`);
    for (const k of ['best/job1/a.onnx', 'best/job1/b.onnx', 'best/job10/c.onnx', 'bestx/d.onnx']) await store.delete(k);
    assert.deepEqual(await keys(store, 'best'), []);
    rmSync(file, { force: true });
  });

  test(`${name}: putFile stores a file under its key, and leaves an existing key alone`, async () => {
    const store = make();
    const dir = mkdtempSync(join(tmp, 'put-'));
    const first = randomBytes(70_000);
    writeFileSync(join(dir, 'a.onnx'), first);
    await store.putFile(`artifacts/${sha(first)}.onnx`, join(dir, 'a.onnx'));
    assert.deepEqual(await bytesOf(await store.read(`artifacts/${sha(first)}.onnx`)), first);
    // a unique key holds its bytes already: a second put writes nothing (here: other bytes, to see it)
    writeFileSync(join(dir, 'b.onnx'), randomBytes(10));
    await store.putFile(`artifacts/${sha(first)}.onnx`, join(dir, 'b.onnx'));
    assert.deepEqual(await bytesOf(await store.read(`artifacts/${sha(first)}.onnx`)), first);
    await store.delete(`artifacts/${sha(first)}.onnx`);
    rmSync(dir, { recursive: true, force: true });
  });

  test(`${name}: withLocalCopy gives a readable file with the key's extension and leaves nothing in TMPDIR, also when fn throws`, async () => {
    const store = make();
    const bytes = randomBytes(50_000);
    const src = join(tmp, 'in.npz');
    writeFileSync(src, bytes);
    await store.putFile('data/sample.npz', src);
    rmSync(src, { force: true }); // the local store moved it in
    const before = readdirSync(tmp);
    let seen = '';
    const n = await store.withLocalCopy('data/sample.npz', async (path) => {
      seen = path;
      assert.match(path, /\.npz$/);
      assert.deepEqual(readFileSync(path), bytes);
      return 7;
    });
    assert.equal(n, 7);
    await assert.rejects(store.withLocalCopy('data/sample.npz', async () => Promise.reject(new Error('boom'))), /boom/);
    assert.deepEqual(readdirSync(tmp), before, 'no temp folder left behind');
    // the local store hands out its own file; a remote store's copy is gone
    assert.equal(existsSync(seen), store instanceof LocalStorage);
    assert.deepEqual(await bytesOf(await store.read('data/sample.npz')), bytes, 'the stored object is untouched');
    await store.delete('data/sample.npz');
  });

  test(`${name}: a source that fails half way, and a shutdown during an upload, leave no temporary object`, async () => {
    const store = make();
    const before = await keys(store, 'tmp');
    const broken = new PassThrough();
    const put = store.putStream(broken);
    broken.write(randomBytes(100_000));
    setTimeout(() => broken.destroy(new Error('client went away')), 50);
    await assert.rejects(put, /client went away/);

    const endless = new PassThrough();
    const cut = assert.rejects(store.putStream(endless));
    endless.write(randomBytes(100_000));
    await new Promise((r) => setTimeout(r, 100));
    await store.discardInFlight();
    await cut;
    assert.deepEqual(await keys(store, 'tmp'), before);
  });

  test(`${name}: check() passes on a reachable store; describe() names it without secrets`, async () => {
    const store = make();
    await store.check();
    if (store instanceof LocalStorage) assert.equal(store.describe(), `local:${localRoot}`);
    else assert.equal(store.describe(), `s3://${s3.bucket} @ ${s3.endpoint}`);
    assert.doesNotMatch(store.describe(), /S3RVER/);
  });
}

test('s3: an upload larger than one part goes up as a multipart upload (5 MiB parts), its sha256 computed on the way', async () => {
  const store = s3.store('', 2 * 1024 ** 3); // MAX_UPLOAD_BYTES 2 GiB: S3's minimum part size
  const bytes = randomBytes(12 * 1024 * 1024);
  const from = s3.requests.length;
  const up = await store.putStream(streamOf(bytes));
  assert.equal(up.sha256, sha(bytes));
  assert.equal(up.sizeBytes, bytes.length);
  const served = s3.requests.slice(from);
  const parts = served.filter((r) => r.startsWith('PUT ') && /[?&]partNumber=\d+/.test(r) && /[?&]uploadId=/.test(r));
  assert.equal(parts.length, 3, `12 MiB in 5 MiB parts: ${served.join('\n')}`);
  assert.ok(served.some((r) => r.startsWith('POST ') && /[?&]uploads/.test(r)), 'a multipart upload was created');
  assert.ok(served.some((r) => r.startsWith('POST ') && /[?&]uploadId=/.test(r)), 'and completed');
  const back = await bytesOf(await store.read(up.key));
  assert.equal(sha(back), up.sha256);
  assert.deepEqual(await bytesOf(await store.read(up.key, { start: 5 * 1024 * 1024 - 3, end: 5 * 1024 * 1024 + 2 })), bytes.subarray(5 * 1024 * 1024 - 3, 5 * 1024 * 1024 + 3), 'a range across a part boundary');
  await store.delete(up.key);
});

test('s3: the prefix from the URL is the store\'s own: keys never carry it, the bucket holds <prefix>/<key>', async () => {
  const inner = s3.store('team-a/modelpress');
  const whole = s3.store();
  const file = join(tmp, 'p.onnx');
  writeFileSync(file, 'prefixed');
  await inner.putFile('models/p.onnx', file);
  rmSync(file, { force: true });
  assert.deepEqual(await keys(inner, 'models'), ['models/p.onnx']);
  assert.deepEqual(await keys(whole, 'team-a'), ['team-a/modelpress/models/p.onnx']);
  assert.equal(await whole.size('models/p.onnx'), null);
  assert.equal(inner.describe(), `s3://${s3.bucket}/team-a/modelpress @ ${s3.endpoint}`);
  await inner.delete('models/p.onnx');
  assert.deepEqual(await keys(whole, 'team-a'), []);
});

test('s3: a presigned URL serves the object (and ranges of it) to a client without credentials, for a few minutes, as a download', async () => {
  const store = s3.store();
  const bytes = randomBytes(40_000);
  const file = join(tmp, 'a.onnx');
  writeFileSync(file, bytes);
  await store.putFile('artifacts/presign.onnx', file);
  rmSync(file, { force: true });
  const url = await store.presignedUrl('artifacts/presign.onnx', 'model.compressed.onnx');
  assert.ok(url);
  const u = new URL(url);
  assert.equal(u.origin, s3.endpoint);
  assert.equal(u.searchParams.get('X-Amz-Expires'), String(PRESIGN_SECONDS));
  assert.equal(PRESIGN_SECONDS, 300);
  const res = await fetch(url);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-disposition') ?? '', /attachment; filename="model\.compressed\.onnx"/);
  assert.deepEqual(Buffer.from(await res.arrayBuffer()), bytes);
  const part = await fetch(url, { headers: { range: 'bytes=100-199' } });
  assert.equal(part.status, 206);
  assert.deepEqual(Buffer.from(await part.arrayBuffer()), bytes.subarray(100, 200));
  assert.equal(await new LocalStorage(localRoot).presignedUrl('artifacts/presign.onnx', 'x.onnx'), null, 'the local store has no URLs');
  await store.delete('artifacts/presign.onnx');
});

test('s3: while the store is down every call fails as `unavailable` (a 503 for the API, not a stack), readiness says why; after it is back, nothing half-written is there', async () => {
  const store = s3.store();
  const before = await keys(store, 'tmp');
  await s3.stop();
  try {
    const failure = (err: ModelpressError) => err.code === 'unavailable' && /object store/.test(err.message) && !/S3RVER|127\.0\.0\.1/.test(err.message);
    await assert.rejects(store.putStream(streamOf(randomBytes(200_000))), failure);
    await assert.rejects(store.putStream(streamOf(randomBytes(6 * 1024 * 1024))), failure);
    await assert.rejects(store.read('models/x.onnx'), failure);
    await assert.rejects(store.size('models/x.onnx'), failure);
    await assert.rejects(store.list('tmp'), failure);
    await assert.rejects(store.check(), /bucket 'modelpress-test'/);
  } finally {
    await s3.start();
  }
  await store.check();
  assert.deepEqual(await keys(store, 'tmp'), before);
});

test('the store comes from the environment: local by default, S3 from MODELPRESS_STORAGE_URL; a malformed URL is a start-up error naming the variable', async () => {
  const local = loadConfig({ MODELPRESS_DATA_DIR: localRoot });
  assert.deepEqual(local.storage, { kind: 'local', dir: localRoot });
  assert.equal(local.presignDownloads, false);
  assert.equal((await createStorage(local)).describe(), `local:${localRoot}`);

  const saved = { ...process.env };
  Object.assign(process.env, s3.env()); // the SDK reads the credentials from the environment, as in production
  try {
    const config = loadConfig({ ...s3.env('some/prefix'), MODELPRESS_PRESIGN: '1' });
    assert.deepEqual(config.storage, { kind: 's3', bucket: s3.bucket, prefix: 'some/prefix', endpoint: s3.endpoint, forcePathStyle: true, region: 'us-east-1' });
    assert.equal(config.presignDownloads, true);
    const store = await createStorage(config);
    assert.ok(store instanceof S3Storage);
    assert.equal(store.describe(), `s3://${s3.bucket}/some/prefix @ ${s3.endpoint}`);
    await store.check();
    const up = await store.putStream(streamOf(Buffer.from('from the environment')));
    assert.equal(up.sha256, sha(Buffer.from('from the environment')));
    await store.delete(up.key);
    (store as S3Storage).close();
  } finally {
    for (const k of Object.keys(s3.env())) if (saved[k] === undefined) delete process.env[k];
    Object.assign(process.env, saved);
  }

  const refused = (env: Record<string, string>, pattern: RegExp) => assert.throws(() => loadConfig(env), (err: ModelpressError) => err.code === 'invalid_input' && pattern.test(err.message), JSON.stringify(env));
  refused({ MODELPRESS_STORAGE_URL: 'http://bucket/x' }, /MODELPRESS_STORAGE_URL.*expected s3:\/\/bucket/);
  refused({ MODELPRESS_STORAGE_URL: 's3://' }, /MODELPRESS_STORAGE_URL/);
  refused({ MODELPRESS_STORAGE_URL: 's3://Bad_Bucket/x' }, /MODELPRESS_STORAGE_URL: 'Bad_Bucket' is not a valid bucket name/);
  refused({ MODELPRESS_STORAGE_URL: 's3://bucket/../x' }, /MODELPRESS_STORAGE_URL: the prefix/);
  refused({ MODELPRESS_STORAGE_URL: 's3://bucket/a b' }, /MODELPRESS_STORAGE_URL: the prefix/);
  refused({ MODELPRESS_STORAGE_URL: 's3://bucket', S3_ENDPOINT: 'minio:9000' }, /S3_ENDPOINT/);
  refused({ MODELPRESS_STORAGE_URL: 's3://bucket', S3_FORCE_PATH_STYLE: 'maybe' }, /S3_FORCE_PATH_STYLE/);
  refused({ MODELPRESS_PRESIGN: 'yes please' }, /MODELPRESS_PRESIGN/);
  refused({ S3_ENDPOINT: 'http://minio:9000' }, /S3_ENDPOINT is set but MODELPRESS_STORAGE_URL is not/);
  assert.throws(() => loadConfig({ MODELPRESS_STORAGE_URL: 's3://AKIA:secret@bucket/x' }), (err: Error) => /credentials do not belong in the URL/.test(err.message) && !/secret/.test(err.message));
  assert.throws(() => loadConfig({ MODELPRESS_STORAGE_URL: 's3://AKIA:secret@bucket?x' }), (err: Error) => !/secret/.test(err.message));
});
