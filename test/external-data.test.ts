// External data: models whose tensors live in files beside the .onnx. Reading is confined to the
// model's directory (every path attack is refused with a code naming the tensor and the location),
// writing puts large tensors in one aligned data file, and both round-trip through onnxruntime.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { AttributeProto_AttributeType as AT, StringStringEntryProtoSchema, TensorProtoSchema, TensorProto_DataLocation } from 'onnx-buf';
import { ModelpressError } from '../src/errors.js';
import { DataType as DT } from '../src/onnx/dtypes.js';
import { EXTERNAL_DATA_OVER_ENV, encodeProtoPart, writeModelWithExternalData } from '../src/onnx/external-write.js';
import { locationProblem } from '../src/onnx/external-data.js';
import { Model } from '../src/onnx/ir.js';
import { decodeModel, decodeModelProto, decodeModelWithFiles, encodeModel, exportModel } from '../src/onnx/model-io.js';
import { loadModelWithFiles } from '../src/onnx/model-files.js';
import { isExternal } from '../src/onnx/tensor-data.js';
import { batchesFromArrays, readArraysFile } from '../src/data/samples.js';
import { forEachTensor } from '../src/onnx/safety.js';
import { createSession, ort, runOnce, sessionRoutes } from '../src/runtime/ort.js';
import { runPipeline } from '../src/pipeline/pipeline.js';
import { parseRecipe } from '../src/pipeline/recipe.js';
import { attr, bytesOf, graph, makeCanary, modelProto, node, valueInfo } from './crafted-models.js';
import { FMNIST, ROOT, cli } from './helpers.js';

const FMNIST_CNN = join(ROOT, 'test/fixtures/fmnist/fmnist-cnn.onnx');
const PYTHON = '/usr/bin/python3';

let tmp: string;
before(() => {
  tmp = mkdtempSync(join(os.tmpdir(), 'modelpress-external-'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

function withEnv<T>(name: string, value: string, fn: () => Promise<T>): Promise<T> {
  const old = process.env[name];
  process.env[name] = value;
  return fn().finally(() => {
    if (old === undefined) delete process.env[name];
    else process.env[name] = old;
  });
}

/** A model whose output y is a Constant of 4 floats stored as external data with these entries. */
function constantAt(entries: Record<string, string>, n = 4): Uint8Array {
  const t = create(TensorProtoSchema, {
    name: 'w',
    dataType: DT.FLOAT,
    dims: [BigInt(n)],
    dataLocation: TensorProto_DataLocation.EXTERNAL,
    externalData: Object.entries(entries).map(([key, value]) => create(StringStringEntryProtoSchema, { key, value })),
  });
  const c = node('Constant', 'k', [], ['y'], [attr('value', { type: AT.TENSOR, t })]);
  return bytesOf(modelProto(graph('main', { node: [c], output: [valueInfo('y', DT.FLOAT, [n])] })));
}

function expectCode(fn: () => unknown, code: string, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ModelpressError, `a ModelpressError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.match(err.message, /tensor 'w' \(attribute 'value' of node 'k' \(Constant\) in graph 'main'\)/);
    assert.match(err.message, pattern);
    return true;
  });
}

/** fmnist-cnn's outputs on a fixed input, from a session made of bytes or a path. */
async function logits(model: Uint8Array | string, dtype: 'float32' = 'float32'): Promise<Float32Array> {
  const x = new ort.Tensor(dtype, Float32Array.from({ length: 2 * 784 }, (_, i) => ((i * 37) % 101) / 101), [2, 1, 28, 28]);
  const session = typeof model === 'string' ? await ort.InferenceSession.create(model) : await createSession(model);
  try {
    const out = await session.run({ input: x });
    return Object.values(out)[0]!.data as Float32Array;
  } finally {
    await session.release();
  }
}

/** A shipped recipe with its benchmark off: these tests are about files, not speed. */
function quickRecipe(name: string): string {
  const path = join(tmp, `${name}.quick.json`);
  writeFileSync(path, JSON.stringify({ ...JSON.parse(readFileSync(join(ROOT, `recipes/${name}.json`), 'utf8')), benchmark: { enabled: false } }));
  return path;
}

const maxAbsDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

describe('locations are confined to the model directory', () => {
  let dir: string;
  let canary: ReturnType<typeof makeCanary>;
  before(() => {
    dir = mkdtempSync(join(tmp, 'attacks-'));
    canary = makeCanary(tmp, 'outside.bin');
    writeFileSync(join(dir, 'w.bin'), Buffer.from(new Float32Array([1, 2, 3, 4]).buffer));
    mkdirSync(join(dir, 'sub'));
    symlinkSync(canary.path, join(dir, 'escape.bin'));
    symlinkSync('/dev/zero', join(dir, 'zero.bin'));
    symlinkSync(tmp, join(dir, 'up')); // a directory link: what counts is where the file really is
  });

  it('the plain-path rule refuses every absolute, Windows, parent and unnormalized form', () => {
    for (const bad of ['', '/etc/passwd', '../w.bin', 'sub/../../w.bin', 'C:\\w.bin', 'c:w.bin', '\\\\server\\share\\w.bin', 'sub\\w.bin', './w.bin', 'sub//w.bin', 'sub/', 'a\0b']) {
      assert.ok(locationProblem(bad), `refused: ${JSON.stringify(bad)}`);
    }
    for (const good of ['w.bin', 'sub/w.bin', 'model.onnx.data', '..data']) assert.equal(locationProblem(good), undefined, good);
  });

  const cases: [string, Record<string, string>, string, RegExp][] = [
    ['a parent segment', { location: '../outside.bin' }, 'unsupported_model', /"\.\.\/outside\.bin".*'\.\.' segment/],
    ['an absolute path', { location: '/dev/zero' }, 'unsupported_model', /"\/dev\/zero".*absolute path/],
    ['a Windows drive path', { location: 'C:\\outside.bin' }, 'unsupported_model', /absolute path/],
    ['a symlink pointing outside', { location: 'escape.bin' }, 'unsupported_model', /"escape\.bin".*symbolic link/],
    ['a symlink to /dev/zero', { location: 'zero.bin' }, 'unsupported_model', /symbolic link/],
    ['a directory symlink leading outside', { location: 'up/outside.bin' }, 'unsupported_model', /resolves outside the model's directory/],
    ['a directory', { location: 'sub' }, 'invalid_model', /"sub".*is a directory/],
    ['a missing file', { location: 'nope.bin' }, 'invalid_model', /no such file beside the model/],
    ['an offset past the end', { location: 'w.bin', offset: '17', length: '16' }, 'invalid_model', /offset 17 is past the end of the file \(16 bytes\)/],
    ['a length past the end', { location: 'w.bin', offset: '4', length: '16' }, 'invalid_model', /offset 4 \+ length 16 is past the end/],
    ['a length that does not fit the shape', { location: 'w.bin', length: '12' }, 'invalid_model', /12 bytes of data for a tensor of shape \[4\] that needs 16/],
    ['a negative offset', { location: 'w.bin', offset: '-4' }, 'invalid_model', /offset "-4" is not a non-negative integer/],
    ['no location', { offset: '0' }, 'invalid_model', /external_data has no location/],
  ];
  for (const [name, entries, code, pattern] of cases) {
    it(`refuses ${name}`, () => {
      canary.reset();
      const before = canary.atime();
      const bytes = constantAt(entries);
      expectCode(() => decodeModelWithFiles(bytes, dir), code, pattern);
      expectCode(() => decodeModelWithFiles(bytes, dir, { readExternalData: 'none' }), code, pattern); // inspect's route checks the same
      assert.equal(canary.atime(), before, 'the file outside was not read');
    });
  }

  it('a file inside loads into raw_data (no path left), with offset and default length', async () => {
    const { model, externalBytes } = decodeModelWithFiles(constantAt({ location: 'w.bin', offset: '0' }), dir);
    assert.equal(externalBytes, 16);
    forEachTensor(decodeModelProto(encodeModel(model)), (t) => assert.equal(t.externalData.length, 0));
    const out = await runOnce(encodeModel(model), {});
    assert.deepEqual(Array.from(out.y!.data as Float32Array), [1, 2, 3, 4]);
    writeFileSync(join(dir, 'w2.bin'), Buffer.from(new Float32Array([9, 9, 5, 6, 7, 8]).buffer));
    const shifted = decodeModelWithFiles(constantAt({ location: 'w2.bin', offset: '8' }), dir).model;
    assert.deepEqual(Array.from((await runOnce(encodeModel(shifted), {})).y!.data as Float32Array), [5, 6, 7, 8]);
  });

  it('bytes that arrive without their files are still refused', () => {
    expectCode(() => decodeModel(constantAt({ location: 'w.bin' })), 'unsupported_model', /the model came without its files/);
  });
});

describe('models saved with external data', () => {
  let pyDir: string;
  before(() => {
    pyDir = mkdtempSync(join(tmp, 'py-'));
    const script =
      'import onnx, sys\n' +
      'm = onnx.load(sys.argv[1])\n' +
      "onnx.save_model(m, sys.argv[2], save_as_external_data=True, all_tensors_to_one_file=True, location='w.data', size_threshold=0)\n";
    const r = spawnSync(PYTHON, ['-c', script, FMNIST_CNN, join(pyDir, 'cnn.onnx')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  });

  it('python onnx external data loads with the same tensors as the embedded original', async () => {
    const original = decodeModelProto(readFileSync(FMNIST_CNN));
    const { model, externalBytes } = decodeModelWithFiles(readFileSync(join(pyDir, 'cnn.onnx')), pyDir);
    assert.ok(externalBytes > 1_000_000);
    const raw = new Map<string, Uint8Array>();
    forEachTensor(original, (t) => raw.set(t.name, t.rawData));
    let compared = 0;
    forEachTensor(decodeModelProto(encodeModel(model)), (t) => {
      if (t.rawData.length === 0) return;
      assert.deepEqual(Buffer.from(t.rawData), Buffer.from(raw.get(t.name)!), t.name);
      compared++;
    });
    assert.ok(compared > 5);
    assert.deepEqual(await logits(encodeModel(model)), await logits(readFileSync(FMNIST_CNN)));
  });

  it('inspect reads no weights: the same summary as the embedded original, and a data file cut short is still refused', () => {
    const external = cli('inspect', join(pyDir, 'cnn.onnx'), '--json');
    const embedded = cli('inspect', FMNIST_CNN, '--json');
    assert.equal(external.code, 0, external.stderr);
    // the same model but for its file size (the data file is laid out differently)
    const { sizeBytes: externalSize, ...externalRest } = JSON.parse(external.stdout) as { sizeBytes: number };
    const { sizeBytes: embeddedSize, ...embeddedRest } = JSON.parse(embedded.stdout) as { sizeBytes: number };
    assert.deepEqual(externalRest, embeddedRest);
    assert.ok(Math.abs(externalSize - embeddedSize) < 0.01 * embeddedSize, `${externalSize} vs ${embeddedSize}`);
    const cut = mkdtempSync(join(tmp, 'cut-'));
    copyFileSync(join(pyDir, 'cnn.onnx'), join(cut, 'cnn.onnx'));
    writeFileSync(join(cut, 'w.data'), readFileSync(join(pyDir, 'w.data')).subarray(0, 1000));
    const r = cli('inspect', join(cut, 'cnn.onnx'));
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /past the end of the file/);
  });

  it('a model from its files keeps its weights there: onnxruntime reads them from its directory, a pass from a copy, and the report is the embedded one\'s', async () => {
    const loaded = loadModelWithFiles(readFileSync(join(pyDir, 'cnn.onnx')), pyDir);
    const lazy = () => {
      let n = 0;
      forEachTensor(exportModel(loaded.model), (t) => void (isExternal(t) && n++));
      return n;
    };
    assert.equal(loaded.source, loaded.model, 'the model itself runs, not bytes');
    assert.equal(loaded.model.externalDataRoot, realpathSync(pyDir));
    const kept = lazy();
    assert.ok(kept >= 3, `${kept} large tensors left in w.data`);
    assert.throws(() => encodeModel(loaded.model), /keeps tensors in its data files/, 'no bytes with a location in them');
    const bytes = readFileSync(FMNIST_CNN);
    const model = decodeModel(bytes);
    const samples = [...batchesFromArrays(model, readArraysFile(FMNIST.inputs, model), { batchSize: 20, maxSamples: 40 })];
    const recipe = parseRecipe({ steps: [{ pass: 'quantize.weights' }], benchmark: { batchSizes: [1], warmup: 1, runs: 1, rounds: 2 } });
    Object.assign(sessionRoutes, { bytes: 0, largestBytes: 0, tempDir: 0, dataDir: 0, tempWrites: 0 });
    const viaFiles = await runPipeline(loaded.source, { recipe, samples });
    // the baseline's fidelity, its MACs and the original's side of both benchmark rounds
    assert.ok(sessionRoutes.dataDir >= 4, `${sessionRoutes.dataDir} sessions from the model's directory`);
    assert.ok(sessionRoutes.largestBytes < bytes.length / 2, `the original never went to onnxruntime as bytes (largest ${sessionRoutes.largestBytes})`);
    assert.equal(lazy(), kept, 'the pass read the weights into a copy: the loaded model still keeps them in their file');
    const viaBytes = await runPipeline(bytes, { recipe, samples });
    const same = (r: typeof viaFiles.report) => [r.input.sha256, r.baseline.sizeBytes, r.baseline.macs, r.baseline.fidelity, r.steps[0]!.fidelity, r.final.sha256, r.final.sizeBytes];
    assert.deepEqual(same(viaFiles.report), same(viaBytes.report));
    assert.equal(viaFiles.report.input.sha256, createHash('sha256').update(bytes).digest('hex'), 'streamed from the files, the sha256 of the embedded encoding');
  });

  for (const recipe of ['int8-dynamic', 'fp16']) {
    it(`compress ${recipe} from the python-saved model, written with --external-data, runs in onnxruntime from its path`, async () => {
      const out = join(pyDir, `${recipe}.onnx`);
      const r = cli('compress', join(pyDir, 'cnn.onnx'), '--recipe', quickRecipe(recipe), '--out', out, '--external-data', '--quiet');
      assert.equal(r.code, 0, r.stderr);
      assert.ok(statSync(`${out}.data`).size > 100_000, 'the weights went to the data file');
      assert.ok(statSync(out).size < 50_000, 'the proto part is small');
      const got = await logits(out); // onnxruntime resolves the location relative to the file
      const want = await logits(readFileSync(FMNIST_CNN));
      const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      assert.ok(maxAbsDiff(got, want) < 0.05 * scale, `${recipe}: max |diff| ${maxAbsDiff(got, want)} vs scale ${scale}`);
      // and our own reader takes our own output back
      const back = decodeModelWithFiles(readFileSync(out), pyDir).model;
      assert.deepEqual(await logits(encodeModel(back)), got);
    });
  }
});

describe('our writer', () => {
  it('round-trips: same tensors, byte-identical proto part on re-encode, aligned offsets, same outputs in onnxruntime', async () => {
    const dir = mkdtempSync(join(tmp, 'write-'));
    const bytes = readFileSync(FMNIST_CNN);
    const model = decodeModel(bytes);
    const written = writeModelWithExternalData(model, join(dir, 'm.onnx'), { alignment: 64 });
    assert.ok(written.dataPath && written.externalTensors > 3);
    assert.deepEqual(encodeModel(model), new Uint8Array(bytes), 'writing left the model as it was');
    assert.throws(() => decodeModelProto(readFileSync(written.modelPath)), /came without its files/);
    const { model: back, externalBytes } = decodeModelWithFiles(readFileSync(written.modelPath), dir);
    assert.ok(externalBytes > 0);
    assert.deepEqual(encodeModel(back), new Uint8Array(bytes), 'same tensors: the embedded encoding is the original');
    assert.deepEqual(encodeProtoPart(back, 'm.onnx.data', { alignment: 64 }).proto, new Uint8Array(readFileSync(written.modelPath)), 'byte-identical proto part');
    assert.deepEqual(await logits(written.modelPath), await logits(bytes));
  });
});

describe('past 2 GB (the threshold lowered to force the path)', () => {
  it('compress writes external data on its own and says why', async () => {
    const dir = mkdtempSync(join(tmp, 'auto-'));
    const out = join(dir, 'out.onnx');
    const r = spawnSync(process.execPath, [join(ROOT, 'dist/src/cli/main.js'), 'compress', FMNIST_CNN, '--recipe', quickRecipe('fp16'), '--out', out], {
      encoding: 'utf8',
      env: { ...process.env, [EXTERNAL_DATA_OVER_ENV]: '100000' },
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /as external data to .*out\.onnx\.data: .*past what one protobuf can encode \(2 GB\)/);
    const want = await logits(readFileSync(FMNIST_CNN));
    assert.ok(maxAbsDiff(await logits(out), want) < 0.05);
  });

  it('sessions and the pipeline take the model itself: created from a private temp dir, same outputs', async () => {
    const bytes = readFileSync(FMNIST_CNN);
    await withEnv(EXTERNAL_DATA_OVER_ENV, '100000', async () => {
      const model = decodeModel(bytes);
      const viaPath = await createSession(model);
      const x = new ort.Tensor('float32', new Float32Array(784).fill(0.5), [1, 1, 28, 28]);
      const a = (await viaPath.run({ input: x }))[viaPath.outputNames[0]!]!.data as Float32Array;
      await viaPath.release();
      const b = (await runOnce(bytes, { input: x }))[viaPath.outputNames[0]!]!.data as Float32Array;
      assert.deepEqual(a, b);
      const recipe = parseRecipe(JSON.stringify({ steps: [{ pass: 'convert.fp16' }], benchmark: { enabled: false } }));
      const result = await runPipeline(model, { recipe });
      assert.ok(result.output instanceof Model, 'the result stays a model');
      assert.throws(() => result.bytes, /too large for one protobuf/);
      assert.ok(result.report.final.sizeRatio < 0.6 && result.report.final.sizeRatio > 0.4);
    });
  });

  it('a result past 2 GB is written once for its fidelity and all its benchmark sessions, not once per session', async () => {
    // the input from its files (as the CLI opens it), the pruned result in memory and past the lowered threshold
    const pinned = () => readdirSync(os.tmpdir()).filter((f) => f.startsWith('modelpress-pinned-')).length;
    const pinnedBefore = pinned();
    const dir = mkdtempSync(join(tmp, 'pinned-'));
    writeModelWithExternalData(decodeModel(readFileSync(FMNIST_CNN)), join(dir, 'cnn.onnx'));
    const loaded = loadModelWithFiles(readFileSync(join(dir, 'cnn.onnx')), dir);
    await withEnv(EXTERNAL_DATA_OVER_ENV, '100000', async () => {
      const recipe = parseRecipe({ steps: [{ pass: 'prune.magnitude', sparsity: 0.3 }], benchmark: { batchSizes: [1, 2], warmup: 1, runs: 2, rounds: 2 } });
      Object.assign(sessionRoutes, { bytes: 0, largestBytes: 0, tempDir: 0, dataDir: 0, tempWrites: 0 });
      const result = await runPipeline(loaded.source, { recipe });
      assert.ok(result.output instanceof Model, 'the result is past the threshold');
      assert.equal(sessionRoutes.tempWrites, 1, 'written once');
      assert.equal(sessionRoutes.tempDir, 0, 'no session wrote its own copy');
      // fidelity, and 2 rounds × 2 batch sizes of the result's side of the benchmark, from that one copy
      assert.ok(sessionRoutes.dataDir >= 1 + 4, `${sessionRoutes.dataDir} sessions from a directory`);
      const lat = result.report.steps[0]!.latency!;
      assert.deepEqual(lat.map((r) => [r.batch, r.rounds, r.b.runs]), [[1, 2, 2], [2, 2, 2]]);
      assert.ok(Object.values(result.report.steps[0]!.fidelity).every((f) => Number.isFinite((f as { sqnrDb: number }).sqnrDb)), 'fidelity measured on the copy');
    });
    assert.equal(pinned(), pinnedBefore, 'the copy is removed');
  });

  it('every session a pass makes takes the same route: calibration capture, per-layer sensitivity, factor refits, the profile', async () => {
    const bytes = readFileSync(FMNIST_CNN);
    const calibration = Array.from({ length: 2 }, (_, b) => ({
      input: new ort.Tensor('float32', Float32Array.from({ length: 8 * 784 }, (_, i) => ((i * 7919 + b * 104729) % 1000) / 1000), [8, 1, 28, 28]),
    }));
    await withEnv(EXTERNAL_DATA_OVER_ENV, '100000', async () => {
      const recipe = parseRecipe(
        JSON.stringify({
          steps: [
            { pass: 'factorize.tucker', rank: 0.5, refine: true },
            { pass: 'quantize.static', sensitivity: { minSqnrDb: 60 } },
          ],
          benchmark: { enabled: false, profile: true },
        }),
      );
      const result = await runPipeline(decodeModel(bytes), { recipe, calibration, samples: calibration });
      assert.ok(result.output instanceof Model);
      const [tucker, int8] = result.report.steps;
      assert.ok((tucker!.changes as { stats?: { layersRefitted?: number } }).stats?.layersRefitted! > 0, 'factors were refitted');
      assert.ok(tucker!.fidelity && int8!.fidelity, 'both steps measured');
      for (const step of result.report.steps) {
        for (const [name, f] of Object.entries(step.fidelity)) assert.ok((f as { sqnrDb: number }).sqnrDb > 10, `${step.pass} ${name}`);
      }
    });
  });
});
