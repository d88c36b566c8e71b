// A model is untrusted input: no path inside it may make us (or onnxruntime) open a host file, and
// no shape it declares may make us allocate without limit.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { deflateRawSync } from 'node:zlib';
import { create } from '@bufbuild/protobuf';
import {
  AttributeProto_AttributeType as AT,
  FunctionProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  StringStringEntryProtoSchema,
  TensorProto_DataLocation,
  TrainingInfoProtoSchema,
  type ModelProto,
} from 'onnx-buf';
import { ModelpressError } from '../src/errors.js';
import { DataType as DT } from '../src/onnx/dtypes.js';
import { decodeModel, decodeModelProto, encodeModelProto } from '../src/onnx/model-io.js';
import { assertNoExternalData } from '../src/onnx/safety.js';
import { MAX_TENSOR_ENV, assertModelFitsBudget, assertTensorFits, maxTensorBytes } from '../src/onnx/budget.js';
import { syntheticInputs } from '../src/runtime/ort.js';
import { runPipeline } from '../src/pipeline/pipeline.js';
import { parseRecipe } from '../src/pipeline/recipe.js';
import { encodeNpy, parseNpy, parseNpz } from '../src/data/npy.js';
import { openDataset, readArraysFile } from '../src/data/samples.js';
import { benchmarkModel } from '../src/measure/benchmark.js';
import { FMNIST, MODELS, ROOT, readModel } from './helpers.js';
import { attr, bigInputModel, bytesOf, constantOfShapeBomb, externalTensor, floatTensor, graph, int64Tensor, makeCanary, modelProto, node, sparse, sparseConstantModel, valueConstantModel, valueInfo } from './crafted-models.js';

// ---------------------------------------------------------------- building models by hand

const CLI = join(ROOT, 'dist/src/cli/main.js');
const FP16 = join(ROOT, 'recipes/fp16.json');

function expectRefused(bytes: Uint8Array, pattern: RegExp): void {
  for (const decode of [() => decodeModel(bytes), () => decodeModelProto(bytes)]) {
    assert.throws(decode, (err: unknown) => {
      assert.ok(err instanceof ModelpressError, `a ModelpressError, got ${String(err)}`);
      assert.equal(err.code, 'unsupported_model');
      assert.match(err.message, /the model came without its files — give the path to the \.onnx with its data files beside it/);
      assert.match(err.message, pattern);
      return true;
    });
  }
}

// ---------------------------------------------------------------- canary: did anything read this file?

let tmp: string;

before(() => {
  tmp = mkdtempSync(join(os.tmpdir(), 'modelpress-safety-'));
});
after(() => {
  rmSync(tmp, { recursive: true, force: true });
});

function runCli(args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; peakRss?: boolean } = {}) {
  // the preload reports the process's peak resident set (VmHWM) on its way out
  const preload = join(tmp, 'report-peak-rss.mjs');
  if (opts.peakRss) {
    writeFileSync(
      preload,
      "import { readFileSync, writeSync } from 'node:fs';\n" +
        "process.on('exit', () => writeSync(2, `\\nVmHWM-kB ${/VmHWM:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]}\\n`));\n",
    );
  }
  const r = spawnSync(process.execPath, [...(opts.peakRss ? ['--import', preload] : []), CLI, ...args], {
    encoding: 'utf8',
    timeout: 120_000,
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, ...opts.env },
  });
  const peak = /VmHWM-kB (\d+)/.exec(r.stderr)?.[1];
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, peakRssMB: peak ? Number(peak) / 1024 : undefined };
}

// ================================================================ Task 1: external data

describe('every tensor that points outside the model is refused at decode', () => {
  const loc = 'README.md';
  const cases: [string, () => ModelProto, RegExp][] = [
    [
      'Constant sparse_value',
      () => modelProto(graph('main', { node: [node('Constant', 'c1', [], ['y'], [attr('sparse_value', { type: AT.SPARSE_TENSOR, sparseTensor: sparse(externalTensor('sv', loc, 2)) })])], output: [valueInfo('y')] })),
      /tensor 'sv' \(values of sparse attribute 'sparse_value' of node 'c1' \(Constant\) in graph 'main'\)/,
    ],
    [
      'sparse indices',
      () => modelProto(graph('main', { node: [node('Constant', 'c1', [], ['y'], [attr('sparse_value', { type: AT.SPARSE_TENSOR, sparseTensor: sparse(floatTensor('v', [1, 2]), externalTensor('ix', loc, 2)) })])], output: [valueInfo('y')] })),
      /tensor 'ix' \(indices of sparse attribute 'sparse_value' of node 'c1'/,
    ],
    [
      'Constant value',
      () => modelProto(graph('main', { node: [node('Constant', 'c2', [], ['y'], [attr('value', { type: AT.TENSOR, t: externalTensor('tv', loc) })])], output: [valueInfo('y')] })),
      /tensor 'tv' \(attribute 'value' of node 'c2' \(Constant\) in graph 'main'\)/,
    ],
    [
      'an attribute list of tensors',
      () => modelProto(graph('main', { input: [valueInfo('x')], node: [node('Identity', 'id', ['x'], ['y'], [attr('extra', { type: AT.TENSORS, tensors: [floatTensor('ok', [1]), externalTensor('t1', loc)] })])], output: [valueInfo('y')] })),
      /tensor 't1' \(attribute 'extra' of node 'id' \(Identity\) in graph 'main', item 1\)/,
    ],
    [
      'sparse_tensors',
      () => modelProto(graph('main', { input: [valueInfo('x')], node: [node('Identity', 'id', ['x'], ['y'], [attr('extra', { type: AT.SPARSE_TENSORS, sparseTensors: [sparse(externalTensor('st', loc, 2))] })])], output: [valueInfo('y')] })),
      /tensor 'st' \(values of sparse attribute 'extra' of node 'id' \(Identity\) in graph 'main', item 0\)/,
    ],
    [
      'a graph sparse_initializer',
      () => modelProto(graph('main', { input: [valueInfo('x')], sparseInitializer: [sparse(externalTensor('si', loc, 2))], node: [node('Identity', 'id', ['x'], ['y'])], output: [valueInfo('y')] })),
      /tensor 'si' \(values of sparse initializer of graph 'main'\)/,
    ],
    [
      'an initializer in an If branch',
      () => {
        const thenBranch = graph('then', { initializer: [externalTensor('w_then', loc)], output: [valueInfo('w_then')] });
        const elseBranch = graph('else', { node: [node('Constant', 'k', [], ['k_out'], [attr('value', { type: AT.TENSOR, t: floatTensor('', [0, 0, 0, 0]) })])], output: [valueInfo('k_out')] });
        const ifNode = node('If', 'branch', ['cond'], ['y'], [attr('then_branch', { type: AT.GRAPH, g: thenBranch }), attr('else_branch', { type: AT.GRAPH, g: elseBranch })]);
        return modelProto(graph('main', { input: [valueInfo('cond', DT.BOOL, [])], node: [ifNode], output: [valueInfo('y')] }));
      },
      /tensor 'w_then' \(initializer of subgraph 'then' \(attribute 'then_branch' of node 'branch' \(If\)\) in graph 'main'\)/,
    ],
    [
      'a Constant two subgraphs deep (Loop body inside an If)',
      () => {
        const body = graph('body', { node: [node('Constant', 'deep', [], ['d'], [attr('value', { type: AT.TENSOR, t: externalTensor('w_deep', loc) })])] });
        const loop = node('Loop', 'loop', ['', ''], ['z'], [attr('body', { type: AT.GRAPH, g: body })]);
        const thenBranch = graph('then', { node: [loop], output: [valueInfo('z')] });
        const ifNode = node('If', 'branch', ['cond'], ['y'], [attr('then_branch', { type: AT.GRAPH, g: thenBranch }), attr('else_branch', { type: AT.GRAPH, g: graph('else', {}) })]);
        return modelProto(graph('main', { input: [valueInfo('cond', DT.BOOL, [])], node: [ifNode], output: [valueInfo('y')] }));
      },
      /tensor 'w_deep' \(attribute 'value' of node 'deep' \(Constant\) in subgraph 'body' \(attribute 'body' of node 'loop' \(Loop\)\) in subgraph 'then' \(attribute 'then_branch' of node 'branch' \(If\)\) in graph 'main'\)/,
    ],
    [
      'a function body',
      () => {
        const fn = create(FunctionProtoSchema, {
          name: 'leaky',
          domain: 'custom.fn',
          input: ['a'],
          output: ['b'],
          node: [node('Constant', 'fc', [], ['b'], [attr('value', { type: AT.TENSOR, t: externalTensor('f_w', loc) })])],
          opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 13n })],
        });
        const call = create(NodeProtoSchema, { opType: 'leaky', domain: 'custom.fn', name: 'call', input: ['x'], output: ['y'] });
        return modelProto(graph('main', { input: [valueInfo('x')], node: [call], output: [valueInfo('y')] }), {
          functions: [fn],
          opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 13n }), create(OperatorSetIdProtoSchema, { domain: 'custom.fn', version: 1n })],
        });
      },
      /tensor 'f_w' \(attribute 'value' of node 'fc' \(Constant\) in function 'custom\.fn::leaky'\)/,
    ],
    [
      "a function's attribute defaults",
      () => {
        const fn = create(FunctionProtoSchema, { name: 'fd', domain: 'custom.fn', attributeProto: [attr('w', { type: AT.TENSOR, t: externalTensor('default_w', loc) })] });
        return modelProto(graph('main', { input: [valueInfo('x')], node: [node('Identity', 'id', ['x'], ['y'])], output: [valueInfo('y')] }), { functions: [fn] });
      },
      /tensor 'default_w' \(attribute 'w' of the attribute defaults in function 'custom\.fn::fd'\)/,
    ],
    [
      'a training_info graph',
      () => {
        const init = graph('init', { initializer: [externalTensor('train_w', loc)] });
        return modelProto(graph('main', { input: [valueInfo('x')], node: [node('Identity', 'id', ['x'], ['y'])], output: [valueInfo('y')] }), {
          trainingInfo: [create(TrainingInfoProtoSchema, { initialization: init })],
        });
      },
      /tensor 'train_w' \(initializer of training_info\[0\]\.initialization graph\)/,
    ],
    [
      'a location with ..',
      () => modelProto(graph('main', { node: [node('Constant', 'c3', [], ['y'], [attr('value', { type: AT.TENSOR, t: externalTensor('up', '../../../etc/passwd') })])], output: [valueInfo('y')] })),
      /tensor 'up' .*location "\.\.\/\.\.\/\.\.\/etc\/passwd"/,
    ],
    [
      'an absolute location',
      () => modelProto(graph('main', { node: [node('Constant', 'c4', [], ['y'], [attr('value', { type: AT.TENSOR, t: externalTensor('abs', '/etc/passwd') })])], output: [valueInfo('y')] })),
      /tensor 'abs' .*location "\/etc\/passwd"/,
    ],
    [
      'external_data entries without the EXTERNAL flag',
      () => {
        const t = externalTensor('half', loc);
        t.dataLocation = TensorProto_DataLocation.DEFAULT;
        return modelProto(graph('main', { node: [node('Constant', 'c5', [], ['y'], [attr('value', { type: AT.TENSOR, t })])], output: [valueInfo('y')] }));
      },
      /tensor 'half'/,
    ],
    [
      'the EXTERNAL flag without a location',
      () => {
        const t = externalTensor('flag', loc);
        t.externalData = [];
        return modelProto(graph('main', { input: [valueInfo('x')], initializer: [t], node: [node('Identity', 'id', ['x'], ['y'])], output: [valueInfo('y')] }));
      },
      /tensor 'flag' \(initializer of graph 'main'\) stores its data in an external file;/,
    ],
  ];
  for (const [name, build, pattern] of cases) {
    it(name, () => expectRefused(bytesOf(build()), pattern));
  }

  it('a real model with If subgraphs passes, and is refused once one Constant deep inside a branch points outside', () => {
    const bytes = readModel(MODELS.sileroV5);
    assert.doesNotThrow(() => decodeModel(bytes));
    const proto = decodeModelProto(bytes);
    const ifNode = proto.graph!.node.find((n) => n.opType === 'If')!;
    const branch = ifNode.attribute.find((a) => a.g && a.g.node.some((n) => n.opType === 'Constant'))!;
    const constant = branch.g!.node.find((n) => n.opType === 'Constant' && n.attribute[0]?.t)!;
    const t = constant.attribute[0]!.t!;
    constant.name = 'planted_node';
    t.name = 'planted';
    t.rawData = new Uint8Array(0) as Uint8Array<ArrayBuffer>;
    t.dataLocation = TensorProto_DataLocation.EXTERNAL;
    t.externalData = [create(StringStringEntryProtoSchema, { key: 'location', value: 'weights.bin' })];
    expectRefused(encodeModelProto(proto), new RegExp(`tensor 'planted' \\(attribute 'value' of node '${constant.name}' \\(Constant\\) in subgraph '${branch.g!.name}' \\(attribute '${branch.name}' of node '${ifNode.name}' \\(If\\)\\)`));
  });

  it('walks a large model in a few milliseconds per MB (one linear pass)', () => {
    const proto = decodeModelProto(readModel(MODELS.ppocrRec));
    const t0 = performance.now();
    for (let i = 0; i < 20; i++) assertNoExternalData(proto);
    const perWalk = (performance.now() - t0) / 20;
    assert.ok(perWalk < 50, `one walk took ${perWalk.toFixed(1)} ms`);
  });
});

describe('no file named by a model is opened (canary)', () => {
  it('the canary works: onnxruntime given the crafted bytes reads the file (relative to its cwd)', () => {
    const dir = mkdtempSync(join(tmp, 'ort-'));
    const canary = makeCanary(dir);
    for (const [kind, bytes] of [
      ['sparse_value', sparseConstantModel('canary.bin')],
      ['value', valueConstantModel('canary.bin')],
    ] as const) {
      const modelPath = join(dir, `${kind}.onnx`);
      writeFileSync(modelPath, bytes);
      canary.reset();
      const before = canary.atime();
      // straight to onnxruntime, as we did before the check: our own createSession wrapper
      const script =
        `import { readFileSync } from 'node:fs';\n` +
        `import { createSession } from ${JSON.stringify(join(ROOT, 'dist/src/runtime/ort.js'))};\n` +
        `try { const s = await createSession(readFileSync(process.env.MODEL)); const out = await s.run({}); console.log('ran', JSON.stringify(Array.from(out.y.data))); }\n` +
        `catch (e) { console.log('error', e.message); }\n`;
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: dir, encoding: 'utf8', env: { ...process.env, MODEL: modelPath }, timeout: 60_000 });
      assert.equal(r.status, 0, r.stderr);
      assert.notEqual(canary.atime(), before, `${kind}: onnxruntime read the canary (stdout: ${r.stdout.trim()})`);
      // the value variant even returns the file's bytes as the model's output: 0x41414141 as float32
      if (kind === 'value') assert.equal(r.stdout.trim(), `ran ${JSON.stringify(Array.from(new Float32Array(new Uint8Array(16).fill(0x41).buffer)))}`);
    }
  });

  it('the CLI reads data files only inside the model directory: outside, absolute and symlinked locations are refused without touching the canary', () => {
    const dir = mkdtempSync(join(tmp, 'cli-'));
    const canary = makeCanary(dir);
    const models = join(dir, 'models');
    mkdirSync(models);
    // a symlink beside the model that points at the canary outside: lstat sees the link, never the target
    symlinkSync(canary.path, join(models, 'linked.bin'));
    const variants: [string, Uint8Array, RegExp][] = [
      ['sparse-parent', sparseConstantModel('../canary.bin'), /'\.\.' segment/],
      ['value-parent', valueConstantModel('../canary.bin'), /'\.\.' segment/],
      ['sparse-absolute', sparseConstantModel(canary.path), /absolute path/],
      ['value-absolute', valueConstantModel(canary.path), /absolute path/],
      ['value-symlink', valueConstantModel('linked.bin'), /symbolic link/],
    ];
    for (const [name, bytes, reason] of variants) {
      const modelPath = join(models, `${name}.onnx`);
      writeFileSync(modelPath, bytes);
      canary.reset();
      const before = canary.atime();
      for (const args of [
        ['compress', modelPath, '--recipe', FP16, '--out', join(dir, `${name}.out.onnx`)],
        ['bench', modelPath, '--runs', '1', '--warmup', '0'],
      ]) {
        const r = runCli(args, { cwd: models });
        assert.equal(r.code, 2, `${name} ${args[0]}: ${r.stderr}`);
        assert.match(r.stderr, /error \[unsupported_model\]: tensor 'secret' \(.*node 'leak' \(Constant\) in graph 'main'\), external data location /);
        assert.match(r.stderr, reason);
      }
      assert.equal(canary.atime(), before, `${name}: the canary was not read`);
    }
  });
});

// ================================================================ Task 2: memory budget

function withEnv<T>(value: string | undefined, fn: () => T): T {
  const old = process.env[MAX_TENSOR_ENV];
  if (value === undefined) delete process.env[MAX_TENSOR_ENV];
  else process.env[MAX_TENSOR_ENV] = value;
  try {
    return fn();
  } finally {
    if (old === undefined) delete process.env[MAX_TENSOR_ENV];
    else process.env[MAX_TENSOR_ENV] = old;
  }
}

async function withEnvAsync<T>(value: string | undefined, fn: () => Promise<T>): Promise<T> {
  const old = process.env[MAX_TENSOR_ENV];
  if (value === undefined) delete process.env[MAX_TENSOR_ENV];
  else process.env[MAX_TENSOR_ENV] = value;
  try {
    return await fn();
  } finally {
    if (old === undefined) delete process.env[MAX_TENSOR_ENV];
    else process.env[MAX_TENSOR_ENV] = old;
  }
}

function kB(field: 'VmRSS' | 'VmHWM'): number {
  return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(readFileSync('/proc/self/status', 'utf8'))![1]);
}

const noBench = parseRecipe(JSON.stringify({ steps: [{ pass: 'convert.fp16' }], benchmark: { enabled: false }, evaluate: { maxSamples: 4, batchSize: 1 } }));

function expectMemoryLimit(pattern: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof ModelpressError, `a ModelpressError, got ${String(err)}`);
    assert.equal(err.code, 'memory_limit', err.message);
    assert.match(err.message, pattern);
    return true;
  };
}

describe('the per-tensor budget', () => {
  it(`reads ${MAX_TENSOR_ENV} (decimal MB), defaults to a quarter of the machine's memory capped at 16 GiB, and rejects nonsense`, () => {
    withEnv(undefined, () => assert.equal(maxTensorBytes(), Math.min(Math.floor(os.totalmem() / 4), 16 * 1024 ** 3)));
    withEnv('512', () => assert.equal(maxTensorBytes(), 512e6));
    withEnv('0.5', () => assert.equal(maxTensorBytes(), 500_000));
    for (const bad of ['0', '-3', 'lots']) {
      withEnv(bad, () => assert.throws(() => maxTensorBytes(), (e: unknown) => e instanceof ModelpressError && e.code === 'invalid_input' && e.message.includes(MAX_TENSOR_ENV)));
    }
  });

  it('says how big, what, the limit and what to do', () => {
    assert.throws(
      () => assertTensorFits("input 'x'", DT.FLOAT, [1, 1, 60000, 60000], 512e6),
      expectMemoryLimit(/^input 'x' would take 14\.4 GB \(float32\[1,1,60000,60000\]\) — over the per-tensor limit of 512 MB \(MODELPRESS_MAX_TENSOR_MB\); give smaller shapes with --shape, or raise the limit$/),
    );
    assert.doesNotThrow(() => assertTensorFits("input 'x'", 'float32', [1000, 1000], 4e6));
    assert.throws(() => assertTensorFits("input 'x'", 'float32', [1000, 1001], 4e6), expectMemoryLimit(/4 MB/));
    assert.throws(() => assertTensorFits('t', DT.INT64, [1e6], 7.9e6), expectMemoryLimit(/int64\[1000000\]/));
    assert.doesNotThrow(() => assertTensorFits('t', DT.INT4, [1e6], 5e5), '4-bit: two per byte');
  });

  it('refuses statically known giants: static inputs/outputs/value_info, ConstantOfShape, Expand, Tile (also in subgraphs)', () => {
    const limit = 512e6;
    const check = (bytes: Uint8Array) => () => assertModelFitsBudget(decodeModel(bytes), limit);
    assert.throws(check(bigInputModel([1, 1, 60000, 60000])), expectMemoryLimit(/^input 'x' would take 14\.4 GB/));
    const outputOnly = modelProto(graph('g', { input: [valueInfo('x', DT.FLOAT, ['n'])], node: [node('Relu', 'r', ['x'], ['y'])], output: [valueInfo('y', DT.FLOAT, [60000, 60000])] }));
    assert.throws(check(bytesOf(outputOnly)), expectMemoryLimit(/^output 'y' would take 14\.4 GB .*the model itself fixes this size/));
    assert.throws(check(constantOfShapeBomb()), expectMemoryLimit(/^ConstantOfShape 'fill' output 'big' would take 14\.4 GB \(float32\[60000,60000\]\)/));

    // Expand and Tile of a small input, with the shape/repeats in an initializer
    const x = valueInfo('x', DT.FLOAT, [1, 4]);
    const expand = modelProto(graph('g', { input: [x], initializer: [int64Tensor('shape', [60000, 4])], node: [node('Expand', 'ex', ['x', 'shape'], ['y'])], output: [valueInfo('y')] }));
    assert.doesNotThrow(check(bytesOf(expand)), '60000×4 floats is small');
    const expandBig = modelProto(graph('g', { input: [x], initializer: [int64Tensor('shape', [60000, 1])], node: [node('Expand', 'ex', ['x', 'shape'], ['y'])], output: [valueInfo('y')] }));
    (expandBig.graph!.initializer[0]!.int64Data as bigint[])[1] = 60000n;
    assert.throws(check(bytesOf(expandBig)), expectMemoryLimit(/^Expand 'ex' output 'y' would take 14\.4 GB \(float32\[60000,60000\]\)/));
    const tile = modelProto(graph('g', { input: [x], initializer: [int64Tensor('reps', [60000, 15000])], node: [node('Tile', 'tl', ['x', 'reps'], ['y'])], output: [valueInfo('y')] }));
    assert.throws(check(bytesOf(tile)), expectMemoryLimit(/^Tile 'tl' output 'y' would take 14\.4 GB \(float32\[60000,60000\]\)/));

    // the same ConstantOfShape inside an If branch
    const shape = node('Constant', 'shape', [], ['s'], [attr('value', { type: AT.TENSOR, t: int64Tensor('', [60000, 60000]) })]);
    const fill = node('ConstantOfShape', 'fill', ['s'], ['big'], []);
    const thenBranch = graph('then', { node: [shape, fill], output: [valueInfo('big')] });
    const elseBranch = graph('else', { node: [node('Constant', 'z', [], ['zz'], [attr('value', { type: AT.TENSOR, t: floatTensor('', [0]) })])], output: [valueInfo('zz')] });
    const nested = modelProto(graph('g', { input: [valueInfo('cond', DT.BOOL, [])], node: [node('If', 'branch', ['cond'], ['y'], [attr('then_branch', { type: AT.GRAPH, g: thenBranch }), attr('else_branch', { type: AT.GRAPH, g: elseBranch })])], output: [valueInfo('y')] }));
    assert.throws(check(bytesOf(nested)), expectMemoryLimit(/^ConstantOfShape 'fill' output 'big' \(in a subgraph of .*branch.*\) would take 14\.4 GB/));
  });

  it('lets the ordinary fixtures through', () => {
    for (const path of [MODELS.fmnist, MODELS.sileroV5, MODELS.ppocrRec]) assert.doesNotThrow(() => assertModelFitsBudget(decodeModel(readModel(path)), 512e6), path);
  });
});

describe('memory bombs fail fast with memory_limit, and nothing big is allocated', () => {
  it('runPipeline: a static [1,1,60000,60000] input, a dynamic one given that shape, and a ConstantOfShape bomb', async () => {
    const hwm0 = kB('VmHWM');
    await withEnvAsync('512', async () => {
      for (const [bytes, synthetic, pattern] of [
        [bigInputModel([1, 1, 60000, 60000]), undefined, /^input 'x' would take 14\.4 GB/],
        [bigInputModel(['n', 1, 'h', 'w']), { shapes: { x: [1, 1, 60000, 60000] } }, /^input 'x' would take 14\.4 GB \(float32\[1,1,60000,60000\]\).*--shape/],
        [constantOfShapeBomb(), undefined, /^ConstantOfShape 'fill' output 'big' would take 14\.4 GB/],
      ] as const) {
        const t0 = Date.now();
        await assert.rejects(runPipeline(bytes, { recipe: noBench, ...(synthetic ? { synthetic: synthetic as never } : {}) }), expectMemoryLimit(pattern));
        assert.ok(Date.now() - t0 < 5000, `refused in ${Date.now() - t0} ms`);
      }
    });
    assert.ok(kB('VmRSS') < 500 * 1024, `RSS ${kB('VmRSS')} kB`);
    assert.ok(kB('VmHWM') - hwm0 < 200 * 1024, `peak RSS grew by ${kB('VmHWM') - hwm0} kB`);
  });

  it('the CLI exits 2 with memory_limit, its peak RSS stays small (default limit and a 512 MB one)', () => {
    const dir = mkdtempSync(join(tmp, 'bomb-'));
    const inputBomb = join(dir, 'input-bomb.onnx');
    // 4×60000×60000 floats: 57.6 GB, over the default limit on any machine (it is capped at 16 GiB)
    writeFileSync(inputBomb, bigInputModel([4, 1, 60000, 60000]));
    const cosBomb = join(dir, 'cos-bomb.onnx');
    writeFileSync(cosBomb, constantOfShapeBomb());
    const dynamic = join(dir, 'dynamic.onnx');
    writeFileSync(dynamic, bigInputModel(['n', 1, 'h', 'w']));
    const runs: [string[], NodeJS.ProcessEnv, RegExp][] = [
      [['compress', inputBomb, '--recipe', FP16, '--out', join(dir, 'o.onnx')], {}, /\[memory_limit\]: input 'x' would take 57\.6 GB \(float32\[4,1,60000,60000\]\)/],
      [['bench', inputBomb, '--runs', '1', '--warmup', '0'], {}, /\[memory_limit\]: input 'x' would take 57\.6 GB/],
      [['bench', inputBomb, '--profile', '--runs', '1', '--warmup', '0'], {}, /\[memory_limit\]: input 'x' would take 57\.6 GB/],
      [['eval', inputBomb, inputBomb, '--data', FMNIST.inputs], {}, /\[memory_limit\]: input 'x' would take 57\.6 GB/],
      [['compress', cosBomb, '--recipe', FP16, '--out', join(dir, 'o.onnx')], { [MAX_TENSOR_ENV]: '512' }, /\[memory_limit\]: ConstantOfShape 'fill' output 'big' would take 14\.4 GB .* 512 MB/],
      [['compress', dynamic, '--recipe', FP16, '--out', join(dir, 'o.onnx'), '--shape', 'x=1,1,60000,60000'], { [MAX_TENSOR_ENV]: '512' }, /\[memory_limit\]: input 'x' would take 14\.4 GB/],
      [['bench', dynamic, '--shape', 'x=B,1,60000,60000', '--batch', '1', '--runs', '1', '--warmup', '0'], { [MAX_TENSOR_ENV]: '512' }, /\[memory_limit\]: input 'x' at batch 1 would take 14\.4 GB.*--batch/],
    ];
    for (const [args, env, pattern] of runs) {
      const t0 = Date.now();
      const r = runCli(args, { env, peakRss: true });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, pattern);
      assert.ok(r.peakRssMB !== undefined && r.peakRssMB < 500, `peak RSS ${r.peakRssMB} MB`);
      assert.ok(Date.now() - t0 < 30_000, `took ${Date.now() - t0} ms`);
    }
  });

  it(`${MAX_TENSOR_ENV} lowers the limit: the fmnist CNN at batch 1000 (3.14 MB) is refused under 1 MB, runs normally otherwise`, async () => {
    const bytes = readModel(MODELS.fmnist);
    const model = decodeModel(bytes);
    withEnv('1', () => {
      assert.throws(() => syntheticInputs(model, { batch: 1000 }), expectMemoryLimit(/^input 'input' would take 3\.14 MB \(float32\[1000,1,28,28\]\) — over the per-tensor limit of 1 MB/));
      assert.doesNotThrow(() => syntheticInputs(model, { batch: 100 }));
    });
    await withEnvAsync('1', () =>
      assert.rejects(benchmarkModel(bytes, { batchSizes: [1, 1000], warmup: 0, runs: 1 }), expectMemoryLimit(/input 'input' at batch 1000 would take 3\.14 MB/)),
    );
    const r = runCli(['bench', MODELS.fmnist, '--batch', '1,1000', '--runs', '1', '--warmup', '0'], { env: { [MAX_TENSOR_ENV]: '1' } });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /\[memory_limit\]: input 'input' at batch 1000 would take 3\.14 MB .*over the per-tensor limit of 1 MB \(MODELPRESS_MAX_TENSOR_MB\)/);
    assert.doesNotMatch(r.stderr, /batch 1: 0 warmup/, 'refused before timing batch 1');
    // the same model, the default limit: the pipeline runs it
    const result = await runPipeline(bytes, { recipe: noBench });
    assert.ok(result.bytes.length < bytes.length * 0.6, 'fp16 halves the weights');
  });

  it('data readers check the array header before allocating', () => {
    // a .npy header that claims 14.4 GB, followed by no data
    const dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 60000, 60000), }";
    const liar = Buffer.concat([Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, dict.length + 1, 0]), Buffer.from(`${dict}\n`, 'latin1')]);
    withEnv('512', () => assert.throws(() => parseNpy(liar, 'liar.npy'), expectMemoryLimit(/^array 'liar\.npy' would take 14\.4 GB \(float32\[1,1,60000,60000\]\).*smaller data file/)));

    // a deflate bomb: 32 MB of zeros is a few kB in the zip
    const zeros = encodeNpy({ dtype: 'float32', shape: [8_000_000], data: new Float32Array(8_000_000) });
    const zip = oneEntryZip('x.npy', zeros);
    assert.ok(zip.length < 100_000);
    withEnv('1', () => assert.throws(() => parseNpz(zip, 'bomb.npz'), expectMemoryLimit(/^array 'bomb\.npz:x\.npy' inflates to more than 1\.07 MB — over the per-tensor limit of 1 MB/)));
    withEnv(undefined, () => assert.equal(parseNpz(zip).get('x')!.data.length, 8_000_000));

    // streaming .npy: what must fit is one batch
    const dir = mkdtempSync(join(tmp, 'data-'));
    const model = decodeModel(readModel(MODELS.fmnist));
    const images = readArraysFile(FMNIST.inputs, model).get('input')!;
    const npyPath = join(dir, 'images.npy');
    writeFileSync(npyPath, encodeNpy(images));
    withEnv('1', () => {
      const dataset = openDataset(npyPath, model);
      assert.throws(() => dataset.batches({ batchSize: 2000 }).next(), expectMemoryLimit(/^input 'input' \(a batch of .*images\.npy\) would take 6\.27 MB.*--batch/));
      const first = openDataset(npyPath, model).batches({ batchSize: 64 }).next();
      assert.deepEqual(first.value!.input!.dims, [64, 1, 28, 28]);
    });
  });
});

/** A one-entry deflated zip (the npz container), written by hand. */
function oneEntryZip(name: string, content: Uint8Array): Uint8Array {
  const data = deflateRawSync(content, { level: 9 });
  const nameBytes = new TextEncoder().encode(name);
  const local = Buffer.alloc(30 + nameBytes.length);
  local.writeUInt32LE(0x04034b50, 0);
  local.writeUInt16LE(8, 8);
  local.writeUInt32LE(data.length, 18);
  local.writeUInt32LE(content.length, 22);
  local.writeUInt16LE(nameBytes.length, 26);
  local.set(nameBytes, 30);
  const central = Buffer.alloc(46 + nameBytes.length);
  central.writeUInt32LE(0x02014b50, 0);
  central.writeUInt16LE(8, 10);
  central.writeUInt32LE(data.length, 20);
  central.writeUInt32LE(content.length, 24);
  central.writeUInt16LE(nameBytes.length, 28);
  central.writeUInt32LE(0, 42);
  central.set(nameBytes, 46);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(1, 8);
  end.writeUInt16LE(1, 10);
  end.writeUInt32LE(central.length, 12);
  end.writeUInt32LE(local.length + data.length, 16);
  return Buffer.concat([local, data, central, end]);
}
