import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { create, toBinary } from '@bufbuild/protobuf';
import { ModelProtoSchema, NodeProtoSchema, TensorProto_DataLocation } from 'onnx-buf';
import { decodeModel, decodeModelProto, encodeModel, encodeModelProto, exportModel } from '../src/onnx/model-io.js';
import { verifyModel, findGraphIssues } from '../src/onnx/verify.js';
import { countParameters, getConstant } from '../src/onnx/constants.js';
import { DataType as DT } from '../src/onnx/dtypes.js';
import { makeTensor, readFloat32 } from '../src/onnx/tensor-data.js';
import { summarizeModel } from '../src/onnx/inspect.js';
import { inferElemTypes } from '../src/onnx/elem-types.js';
import { ModelpressError } from '../src/errors.js';
import { discoverValues } from '../src/runtime/capture.js';
import { ort, runOnce, syntheticInputs } from '../src/runtime/ort.js';
import { MODELS, REAL_MODELS, readModel, wireParameterCount } from './helpers.js';
import { readFileSync } from 'node:fs';
import { FMNIST } from './helpers.js';

function same(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(Buffer.from(a), Buffer.from(b)) === 0;
}

describe('lossless round trip on every real model', () => {
  for (const [name, path] of REAL_MODELS) {
    it(`${name}: bytes → IR → bytes is byte-identical, also after toposort; cleanup drops only dead parts`, () => {
      const bytes = readModel(path);
      assert.ok(same(encodeModelProto(decodeModelProto(bytes)), bytes), 'protobuf level');
      const model = decodeModel(bytes);
      verifyModel(model);
      assert.ok(same(encodeModel(model), bytes), 'through the IR');
      for (const g of model.allGraphs()) g.toposort(false);
      assert.ok(same(encodeModel(model), bytes), 'toposort of a sorted graph changes nothing');
      const inits = [...model.allGraphs()].flatMap((g) => g.initializers);
      const removed = model.graph.cleanup();
      assert.equal(removed, 0, 'a valid model has no dead nodes to remove');
      const kept = new Set([...model.allGraphs()].flatMap((g) => g.initializers));
      for (const v of inits) if (!kept.has(v)) assert.equal(v.consumers.length, 0, `only unused initializers go (${v.name})`);
      if (kept.size === inits.length) assert.ok(same(encodeModel(model), bytes), 'cleanup of a live graph changes nothing');
      verifyModel(model);
    });
  }
});

describe('graph IR', () => {
  it('keeps If subgraphs and their reads of outer values by object (Silero v5)', () => {
    const model = decodeModel(readModel(MODELS.sileroV5));
    const ifs = [...model.graph.walkNodes()].filter((n) => n.opType === 'If');
    assert.ok(ifs.length >= 2);
    const outer = ifs.find((n) => n.graph === model.graph)!;
    const implicit = outer.implicitInputs();
    assert.ok(implicit.length > 0, 'the If branches read outer values');
    for (const v of implicit) {
      assert.ok(v.consumers.some((c) => c.graph !== model.graph), 'the consumer list includes subgraph nodes');
    }
    // weights sit in Constant nodes inside the branches
    const subConstants = [...model.graph.walkNodes()].filter((n) => n.opType === 'Constant' && n.graph !== model.graph);
    assert.ok(subConstants.length > 100);
  });

  it('producers and consumers are the node objects that write and read a value', () => {
    const model = decodeModel(readModel(MODELS.ppocrCls));
    for (const n of model.graph.nodes) {
      for (const v of n.outputs) if (v) assert.equal(v.producer, n);
      for (const v of n.inputs) if (v) assert.ok(v.consumers.includes(n));
    }
  });

  it('toposort restores order after shuffling, cleanup removes dead chains', () => {
    const model = decodeModel(readModel(MODELS.ppocrCls));
    const original = model.graph.nodes.slice();
    model.graph.nodes.reverse();
    assert.ok(findGraphIssues(model).some((i) => /not toposorted/.test(i.message)));
    model.graph.toposort();
    verifyModel(model);
    // a dead chain: two nodes reading a live value, nobody reading them
    const live = original[10]!.outputs[0]!;
    const a = model.graph.addNode('Relu', [live], 1);
    model.graph.addNode('Neg', [a.outputs[0]!], 1);
    const before = model.graph.nodes.length;
    assert.equal(model.graph.cleanup(), 2);
    assert.equal(model.graph.nodes.length, before - 2);
    assert.ok(!live.consumers.includes(a), 'removed nodes are detached from their inputs');
    verifyModel(model);
  });

  it('new names never collide with existing ones', () => {
    const model = decodeModel(readModel(MODELS.ppocrCls));
    const existing = model.graph.nodes[0]!.outputs[0]!.name;
    const v = model.graph.createValue(existing);
    assert.notEqual(v.name, existing);
    const w = model.graph.createValue(existing);
    assert.notEqual(w.name, v.name);
    const target = model.graph.nodes[5]!.outputs[0]!;
    const got = model.renameValue(target, existing);
    assert.notEqual(got, existing);
    assert.equal(target.name, got);
  });

  it('replaceAllUses rewires consumers and graph outputs; the result still runs', async () => {
    const bytes = readModel(MODELS.ppocrCls);
    const model = decodeModel(bytes);
    const out = model.graph.outputs[0]!;
    // insert an Identity behind the output: consumers move to the new value
    const twin = model.graph.createValue(`${out.name}_pre`);
    const producer = out.producer!;
    producer.setOutput(producer.outputs.indexOf(out), twin);
    model.graph.addNode('Identity', [twin], [out]);
    verifyModel(model);
    const feeds = syntheticInputs(model, { shapes: { x: [1, 3, 48, 192] } });
    const [a, b] = [await runOnce(bytes, feeds), await runOnce(encodeModel(model), feeds)];
    assert.deepEqual(Array.from(b[out.name]!.data as Float32Array), Array.from(a[out.name]!.data as Float32Array));
  });

  it('constants are found in initializers and in Constant nodes alike', () => {
    const cls = decodeModel(readModel(MODELS.ppocrCls));
    const conv = cls.graph.nodes.find((n) => n.opType === 'Conv')!;
    const w = getConstant(conv.inputs[1]);
    assert.ok(w, 'PP-OCR weights come from Constant nodes');
    assert.equal(cls.graph.initializers.length, 0);
    const ifless = decodeModel(readModel(MODELS.sileroIfless));
    const conv2 = [...ifless.graph.walkNodes()].find((n) => n.opType === 'Conv')!;
    assert.ok(getConstant(conv2.inputs[1])?.name, 'initializer weights');
  });

  it('element types are inferred for values the model does not declare', () => {
    const model = decodeModel(readModel(MODELS.ppocrRec));
    const types = inferElemTypes(model);
    for (const n of model.graph.nodes) {
      if (n.opType === 'Shape') assert.equal(types.get(n.outputs[0]!), DT.INT64);
      if (n.opType === 'Conv') assert.equal(types.get(n.outputs[0]!), DT.FLOAT);
    }
  });

  it('onnxruntime tells real shapes and dtypes of intermediate values', async () => {
    const model = decodeModel(readModel(MODELS.ppocrCls));
    const found = await discoverValues(model, syntheticInputs(model, { shapes: { x: [2, 3, 48, 192] } }));
    const conv = model.graph.nodes.find((n) => n.opType === 'Conv')!;
    const info = found.get(conv.outputs[0]!)!;
    assert.equal(info.dtype, DT.FLOAT);
    assert.equal(info.dims[0], 2);
    assert.equal(info.dims.length, 4);
    assert.ok(Number.isFinite(info.maxAbs));
    // the graph input is described too (a stem layer reads it: the Tucker speed check needs its shape)
    assert.deepEqual(found.get(conv.inputs[0]!)?.dims, [2, 3, 48, 192]);
    const types = inferElemTypes(model);
    for (const [v, d] of found) if (d.dtype !== undefined && types.has(v)) assert.equal(types.get(v), d.dtype, `type of ${v.name}`);
  });
});

describe('parameter counts', () => {
  for (const [name, path] of REAL_MODELS) {
    it(`${name}: inspect agrees with an independent count from the protobuf wire format`, () => {
      const bytes = readModel(path);
      const summary = summarizeModel(decodeModel(bytes), bytes.length);
      const independent = wireParameterCount(bytes);
      assert.ok(independent > 1000, 'the counter found the weights');
      assert.equal(summary.params, independent);
    });
  }

  it('fmnist CNN: equals the PyTorch state-dict element count recorded at training time', () => {
    const meta = JSON.parse(readFileSync(FMNIST.meta, 'utf8')) as { stateDictFloatElements?: number; params: number };
    const model = decodeModel(readModel(MODELS.fmnist));
    assert.equal(countParameters(model), meta.stateDictFloatElements ?? meta.params);
  });
});

describe('clear errors for bad models', () => {
  const expectCode = (fn: () => unknown, code: string, pattern: RegExp) => {
    assert.throws(fn, (err: unknown) => err instanceof ModelpressError && err.code === code && pattern.test(err.message));
  };

  it('rejects a file that is not ONNX', () => {
    expectCode(() => decodeModel(new TextEncoder().encode('hello, this is a text file\n')), 'invalid_model', /not (an|a valid) ONNX/);
    const random = new Uint8Array(4096);
    let s = 7;
    for (let i = 0; i < random.length; i++) random[i] = s = (s * 1103515245 + 12345) & 0xff;
    expectCode(() => decodeModel(random), 'invalid_model', /ONNX/);
    expectCode(() => decodeModel(new Uint8Array(0)), 'invalid_model', /empty/);
  });

  it('rejects a truncated model', () => {
    const bytes = readModel(MODELS.ppocrCls);
    expectCode(() => decodeModel(bytes.subarray(0, Math.floor(bytes.length * 0.6))), 'invalid_model', /truncated|corrupt|not (an|a valid) ONNX/);
  });

  it('rejects external data without reading any path', () => {
    const proto = decodeModelProto(readModel(MODELS.sileroIfless));
    const t = proto.graph!.initializer[0]!;
    t.dataLocation = TensorProto_DataLocation.EXTERNAL;
    t.rawData = new Uint8Array(0) as Uint8Array<ArrayBuffer>;
    expectCode(() => decodeModel(toBinary(ModelProtoSchema, proto)), 'unsupported_model', /external/);
  });

  it('rejects operators from unknown domains, naming them', () => {
    const proto = decodeModelProto(readModel(MODELS.ppocrCls));
    proto.graph!.node.push(create(NodeProtoSchema, { opType: 'Frobnicate', domain: 'com.example', input: [proto.graph!.input[0]!.name], output: ['zz'] }));
    expectCode(() => decodeModel(toBinary(ModelProtoSchema, proto)), 'unsupported_model', /com\.example::Frobnicate/);
    const allowed = decodeModel(toBinary(ModelProtoSchema, proto), { allowUnknownDomains: true });
    assert.equal(allowed.graph.nodes.at(-1)!.domain, 'com.example');
  });

  it('rejects a graph whose nodes read values nothing defines', () => {
    const proto = decodeModelProto(readModel(MODELS.ppocrCls));
    proto.graph!.node[3]!.input[0] = 'no_such_value';
    expectCode(() => decodeModel(toBinary(ModelProtoSchema, proto)), 'invalid_model', /no_such_value/);
  });
});

describe('editing keeps models runnable', () => {
  it('a weight rewritten through setConstant changes the output the way it should', async () => {
    const bytes = readModel(MODELS.fmnist);
    const model = decodeModel(bytes);
    const gemm = model.graph.nodes.find((n) => n.opType === 'Gemm')!;
    const bias = getConstant(gemm.inputs[2])!;
    const b = readFloat32(bias);
    const shifted = Float32Array.from(b, (x) => x + 1);
    const { setConstant } = await import('../src/onnx/constants.js');
    setConstant(gemm.inputs[2]!, makeTensor('', DT.FLOAT, [b.length], shifted));
    verifyModel(model);
    const feeds = { input: new ort.Tensor('float32', new Float32Array(2 * 784).fill(0.5), [2, 1, 28, 28]) };
    const ref = (await runOnce(bytes, feeds)).logits!.data as Float32Array;
    const got = (await runOnce(encodeModel(model), feeds)).logits!.data as Float32Array;
    for (let i = 0; i < ref.length; i++) assert.ok(Math.abs(got[i]! - ref[i]! - 1) < 1e-4);
    // and exportModel does not disturb the decoded proto's other fields
    assert.equal(exportModel(model).producerName, decodeModelProto(bytes).producerName);
  });
});
