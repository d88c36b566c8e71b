import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FMNIST, MODELS, ROOT, cli, feedsFor } from './helpers.js';
import { decodeModel } from '../src/onnx/model-io.js';
import { getConstant } from '../src/onnx/constants.js';
import { readFloat32, tensorDims } from '../src/onnx/tensor-data.js';
import { DEFAULT_PRUNE_OPS } from '../src/prune/weights.js';
import { weightLayerOf } from '../src/onnx/weight-layers.js';
import { runOnce } from '../src/runtime/ort.js';
import { axisView, nmViolations } from '../src/prune/sparsity.js';

describe('modelpress compress: the pruning family', () => {
  const dir = mkdtempSync(join(tmpdir(), 'modelpress-cli-prune-'));

  it('prune.structured on fmnist with --calibration: a smaller, faster model and recovery in the report', async () => {
    const out = join(dir, 'fmnist.pruned.onnx');
    const report = join(dir, 'pruned.report.json');
    const r = cli('compress', MODELS.fmnist, '--recipe', join(ROOT, 'recipes/prune-structured-30.json'), '--out', out, '--report', report, '--calibration', FMNIST.calibration, '--data', FMNIST.inputs, '--labels', FMNIST.labels, '--max-samples', '256');
    assert.equal(r.code, 0, r.stderr);
    const rep = JSON.parse(readFileSync(report, 'utf8'));
    const step = rep.steps[0];
    assert.equal(step.pass, 'prune.structured');
    assert.ok(step.params / rep.baseline.params <= 0.55, `params ${step.params} / ${rep.baseline.params}`);
    assert.match(step.changes.stats.beforeRecovery, /top-1/);
    assert.match(step.changes.stats.afterRecovery, /top-1/);
    assert.ok(rep.baseline.task.top1 - step.task.top1 <= 0.03, `top-1 ${rep.baseline.task.top1} → ${step.task.top1}`);
    assert.equal(rep.samples.calibration.items, 256);
    const res = await runOnce(readFileSync(out), feedsFor('fmnist', decodeModel(readFileSync(out))));
    assert.deepEqual(res.logits!.dims, [1, 10]);
  });

  it('prune.magnitude then prune.nm on the PP-OCR classifier: exact sparsity and the 2:4 pattern in the written model', async () => {
    const recipe = join(dir, 'sparse.json');
    writeFileSync(recipe, JSON.stringify({ steps: [{ pass: 'prune.magnitude', sparsity: 0.5, scope: 'global' }, { pass: 'prune.nm' }], benchmark: { enabled: false } }));
    const out = join(dir, 'cls.sparse.onnx');
    const report = join(dir, 'sparse.report.json');
    const r = cli('compress', MODELS.ppocrCls, '--recipe', recipe, '--out', out, '--report', report, '--shape', 'x=1,3,48,192');
    assert.equal(r.code, 0, r.stderr);
    const rep = JSON.parse(readFileSync(report, 'utf8'));
    assert.equal(rep.steps[0].changes.stats.sparsity, 0.5);
    assert.ok(rep.steps[1].changes.rewrittenNodes.length > 10);
    assert.ok(rep.steps.every((s: { changes: { warnings: string[] } }) => s.changes.warnings.some((w) => /nor faster/.test(w))), 'honest about dense kernels');
    const model = decodeModel(readFileSync(out));
    let checked = 0;
    const rewritten = new Set(rep.steps[1].changes.rewrittenNodes.map((x: { node: string }) => x.node));
    for (const n of model.graph.nodes) {
      const layer = DEFAULT_PRUNE_OPS.includes(n.opType) ? weightLayerOf(n) : null;
      const t = getConstant(layer?.weight);
      if (!layer || !t || !rewritten.has(n.name)) continue;
      const dims = tensorDims(t);
      assert.equal(nmViolations(readFloat32(t), axisView(dims, layer.inAxis!), 2, 4), 0, `${n.name}: 2:4 pattern`);
      checked++;
    }
    assert.ok(checked > 5, `${checked} layers checked`);
    const res = await runOnce(readFileSync(out), feedsFor('ppocrCls', model));
    assert.ok(Object.values(res).every((t) => (t.data as Float32Array).every(Number.isFinite)));
  });
});
