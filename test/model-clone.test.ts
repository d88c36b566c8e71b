// Model.clone(): the copy encodes to the same bytes, rewriting it never touches the original, and the
// maps carry every node and value across — on every real model (subgraphs, Constant weights, fp16).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { decodeModel, encodeModel } from '../src/onnx/model-io.js';
import type { Model } from '../src/onnx/ir.js';
import { join } from 'node:path';
import { REAL_MODELS, ROOT } from './helpers.js';

const FIXTURES: [string, string][] = [
  ...REAL_MODELS,
  ['fmnist-vit', join(ROOT, 'test/fixtures/fmnist-vit/fmnist-vit.onnx')],
  ['video3d', join(ROOT, 'test/fixtures/video3d/video3d-cnn.onnx')],
];

function everyNode(model: Model) {
  return [...model.allGraphs()].flatMap((g) => g.nodes);
}

for (const [name, path] of FIXTURES) {
  test(`clone of ${name}: same bytes, its own objects, maps that agree with its edges`, () => {
    const bytes = new Uint8Array(readFileSync(path));
    const original = decodeModel(bytes);
    const { model: copy, graphs, nodes, values } = original.clone();
    assert.deepEqual(encodeModel(copy), bytes, 'the copy encodes to the original bytes');

    for (const g of original.allGraphs()) {
      const c = graphs.get(g)!;
      assert.ok(c && c !== g && c.model === copy);
      assert.equal(c.ownerNode, g.ownerNode ? nodes.get(g.ownerNode) : null, 'a subgraph copy belongs to the copied node');
    }

    for (const n of everyNode(original)) {
      const m = nodes.get(n)!;
      assert.ok(m && m !== n && m.opType === n.opType && m.name === n.name);
      assert.equal(m.graph.nodes.includes(m), true, 'the copied node sits in the copied graph');
      n.inputs.forEach((v, i) => assert.equal(m.inputs[i], v ? values.get(v) : null));
      n.outputs.forEach((v, i) => assert.equal(m.outputs[i], v ? values.get(v) : null));
      for (const v of m.outputs) if (v) assert.equal(v.producer, m);
    }
    for (const [v, c] of values) {
      assert.notEqual(v, c);
      assert.equal(c.name, v.name);
      assert.equal(c.consumers.length, v.consumers.length);
      if (v.initializer) assert.notEqual(c.initializer, v.initializer, 'initializer protos are copied');
    }

    // rewrite the copy hard: the original still encodes to its bytes
    for (const g of copy.allGraphs()) {
      for (const v of g.initializers) {
        const t = v.initializer!;
        if (t.rawData.length > 0) t.rawData.fill(0);
        t.floatData.fill(0);
        copy.renameValue(v, `${v.name}_renamed`);
      }
      for (const n of g.nodes) {
        n.name = `${n.name}_renamed`;
        if (n.opType === 'Conv') n.setAttr('group', 1, 'int');
      }
      g.cleanup(false);
    }
    copy.proto.producerName = 'someone else';
    assert.deepEqual(encodeModel(original), bytes, 'the original is untouched');
  });
}
