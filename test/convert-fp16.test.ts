import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readFileSync } from 'node:fs';
import { Value as TBValue } from '@sinclair/typebox/value';
import { decodeModel, encodeModel } from '../src/onnx/model-io.js';
import { verifyModel } from '../src/onnx/verify.js';
import { convertFp16Pass } from '../src/passes/convert-fp16.js';
import type { PassContext, StatsOf } from '../src/pipeline/pass.js';
import { DataType as DT } from '../src/onnx/dtypes.js';
import { getConstant } from '../src/onnx/constants.js';
import { fidelity } from '../src/metrics/fidelity.js';
import { argmaxRows } from '../src/metrics/task.js';
import { createSession, runOnce, tensorToFloat32, type Feeds } from '../src/runtime/ort.js';
import { parseNpy, parseNpz } from '../src/data/npy.js';
import { batchesFromArrays } from '../src/data/samples.js';
import { FMNIST, MODELS, REAL_MODELS, feedsFor, passContext, readModel } from './helpers.js';

function ctxFor(feeds: Feeds[]): PassContext<StatsOf<typeof convertFp16Pass>> {
  return passContext(feeds);
}

async function convert(path: string, feeds: Feeds, overrides: Record<string, unknown> = {}) {
  const bytes = readModel(path);
  const config = TBValue.Default(convertFp16Pass.schema, { pass: 'convert.fp16', ...overrides }) as never;
  const ctx = ctxFor([feeds]);
  const model = await convertFp16Pass.run(decodeModel(bytes), config, ctx);
  verifyModel(model);
  return { bytes, model, out: encodeModel(model), changes: ctx.changes };
}

describe('convert.fp16 on every real model', () => {
  for (const [name, path] of REAL_MODELS) {
    it(`${name}: runs in onnxruntime, ≈0.5× size, float32 I/O kept, outputs close`, async () => {
      const feeds = feedsFor(name, decodeModel(readModel(path)));
      const { bytes, model, out, changes } = await convert(path, feeds);
      const ratio = out.length / bytes.length;
      assert.ok(ratio > 0.45 && ratio < 0.65, `size ratio ${ratio.toFixed(3)}`);
      for (const v of [...model.graph.inputs, ...model.graph.outputs]) {
        if (v.elemType !== undefined) assert.notEqual(v.elemType, DT.FLOAT16, `${v.name} keeps its type`);
      }
      const ref = await runOnce(bytes, feeds);
      const got = await runOnce(out, feeds);
      assert.deepEqual(Object.keys(got).sort(), Object.keys(ref).sort(), 'same output names');
      for (const k of Object.keys(ref)) {
        assert.equal(got[k]!.type, ref[k]!.type);
        const f = fidelity(tensorToFloat32(ref[k]!), tensorToFloat32(got[k]!));
        // det's probability map is ~1e-7 on noise input, so SQNR is meaningless there: bound the error
        assert.ok(f.maxAbsError < 0.02, `${k}: max abs error ${f.maxAbsError}`);
        if (name !== 'ppocrDet') assert.ok(f.sqnrDb > 30, `${k}: SQNR ${f.sqnrDb.toFixed(1)} dB`);
      }
      assert.ok(Number(changes.stats.convertedTensors) > 0);
    });
  }
});

describe('convert.fp16 details', () => {
  it('converts Constant-node weights inside If subgraphs (Silero v5)', async () => {
    const model0 = decodeModel(readModel(MODELS.sileroV5));
    const { model } = await convert(MODELS.sileroV5, feedsFor('sileroV5', model0));
    const subConvs = [...model.graph.walkNodes()].filter((n) => n.opType === 'Conv' && n.graph !== model.graph);
    assert.ok(subConvs.length > 0);
    for (const c of subConvs) assert.equal(getConstant(c.inputs[1])!.dataType, DT.FLOAT16);
  });

  it('keeps blocked op types in float32 with Casts around them, and says so', async () => {
    const model0 = decodeModel(readModel(MODELS.ppocrCls));
    const feeds = feedsFor('ppocrCls', model0);
    const { model, out, changes } = await convert(MODELS.ppocrCls, feeds, { extraBlockedOps: ['Conv'] });
    const convs = model.graph.nodes.filter((n) => n.opType === 'Conv');
    for (const c of convs) assert.equal(getConstant(c.inputs[1])!.dataType, DT.FLOAT, 'Conv weights stay float32');
    assert.equal(changes.skipped.filter((s) => s.opType === 'Conv').length, convs.length);
    assert.ok(Number(changes.stats.castsInserted) > 10);
    const ref = await runOnce(readModel(MODELS.ppocrCls), feeds);
    const got = await runOnce(out, feeds);
    const f = fidelity(tensorToFloat32(ref['softmax_0.tmp_0']!), tensorToFloat32(got['softmax_0.tmp_0']!));
    assert.ok(f.sqnrDb > 30);
  });

  it('keeps nodes in float32 when their weights or activations overflow float16 (PP-OCR det)', async () => {
    const model0 = decodeModel(readModel(MODELS.ppocrDet));
    const { changes, model } = await convert(MODELS.ppocrDet, feedsFor('ppocrDet', model0));
    const overflow = changes.skipped.filter((s) => /float16 range|reaches/.test(s.reason));
    assert.ok(overflow.length >= 1, 'the BatchNormalization with variance ~1e8 stays float32');
    assert.equal(changes.stats.valuesClampedToFloat16Max, 0, 'nothing had to be clamped');
    const bn = model.graph.nodes.find((n) => n.opType === 'BatchNormalization' && overflow.some((s) => s.node.includes(n.outputs[0]!.name) || s.node === n.name))!;
    assert.equal(getConstant(bn.inputs[4])!.dataType, DT.FLOAT);
  });

  it('with keepIoTypes false, model inputs and outputs become float16', async () => {
    const model0 = decodeModel(readModel(MODELS.ppocrCls));
    const { model, out } = await convert(MODELS.ppocrCls, feedsFor('ppocrCls', model0), { keepIoTypes: false });
    assert.equal(model.graph.inputs[0]!.elemType, DT.FLOAT16);
    assert.equal(model.graph.outputs[0]!.elemType, DT.FLOAT16);
    const session = await createSession(out);
    try {
      const meta = session.inputMetadata[0]!;
      assert.ok(meta.isTensor && meta.type === 'float16');
    } finally {
      await session.release();
    }
  });

  it('fmnist CNN: accuracy drop ≤ 0.1 pt on the 2000 labelled test images', async () => {
    const bytes = readModel(MODELS.fmnist);
    const model = decodeModel(bytes);
    const arrays = parseNpz(readFileSync(FMNIST.inputs));
    const labels = parseNpy(readFileSync(FMNIST.labels)).data as BigInt64Array;
    const batches = [...batchesFromArrays(model, arrays, { batchSize: 250 })];
    const config = TBValue.Default(convertFp16Pass.schema, { pass: 'convert.fp16' }) as never;
    const converted = await convertFp16Pass.run(model, config, { ...ctxFor(batches.slice(0, 2)), samplesAreSynthetic: false });
    verifyModel(converted);
    const fp16 = encodeModel(converted);
    const accuracy = async (m: Uint8Array) => {
      const s = await createSession(m);
      let correct = 0;
      let i = 0;
      try {
        for (const feeds of batches) {
          const logits = tensorToFloat32((await s.run(feeds)).logits!);
          for (const p of argmaxRows(logits, 10)) if (BigInt(p) === labels[i++]) correct++;
        }
      } finally {
        await s.release();
      }
      return correct / labels.length;
    };
    const meta = JSON.parse(readFileSync(FMNIST.meta, 'utf8')) as { subsetAccuracy2000: number };
    const base = await accuracy(bytes);
    const half = await accuracy(fp16);
    assert.ok(Math.abs(base - meta.subsetAccuracy2000) < 0.0006, `onnxruntime reproduces the recorded accuracy (${base} vs ${meta.subsetAccuracy2000})`);
    assert.ok(base - half <= 0.001, `accuracy ${base} → ${half}`);
    assert.ok(fp16.length / bytes.length < 0.55);
  });
});
