import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FMNIST, MODELS, ROOT, cli, wireParameterCount } from './helpers.js';
import { runOnce, ort } from '../src/runtime/ort.js';
import { PASSES } from '../src/passes/index.js';

describe('modelpress CLI', () => {
  const dir = mkdtempSync(join(tmpdir(), 'modelpress-cli-'));

  it('inspect --json reports interface, ops and parameters', () => {
    const r = cli('inspect', MODELS.ppocrRec, '--json');
    assert.equal(r.code, 0, r.stderr);
    const s = JSON.parse(r.stdout);
    assert.equal(s.inputs[0].name, 'x');
    assert.deepEqual(s.inputs[0].shape.slice(1, 3), [3, 48]);
    assert.equal(s.opsets['ai.onnx'], 9);
    assert.equal(s.params, wireParameterCount(readFileSync(MODELS.ppocrRec)));
    assert.ok(s.opTypes.Conv > 10);
    assert.ok(s.weights.constantNodes > 100);
    assert.ok(s.weights.bytesByDtype.float32 > 10_000_000);
  });

  it('inspect prints a readable summary', () => {
    const r = cli('inspect', MODELS.sileroV5);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /subgraphs/);
    assert.match(r.stdout, /sr: int64/);
  });

  it('compress writes a model that runs, and a report with per-step metrics', async () => {
    const out = join(dir, 'fmnist.fp16.onnx');
    const report = join(dir, 'report.json');
    const html = join(dir, 'report.html');
    const r = cli('compress', MODELS.fmnist, '--recipe', join(ROOT, 'recipes/fp16.json'), '--out', out, '--report', report, '--report-html', html, '--data', FMNIST.inputs, '--labels', FMNIST.labels, '--max-samples', '64');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /\[1\/1\] convert\.fp16/);
    assert.match(r.stdout, /0\.5\d\d×/);
    const rep = JSON.parse(readFileSync(report, 'utf8'));
    assert.equal(rep.samples.source, 'data');
    assert.equal(rep.samples.items, 64);
    assert.equal(rep.samples.labels, true);
    assert.ok(rep.baseline.task.top1 > 0.8 && rep.steps[0].task.top1 > 0.8, 'accuracy before and after the step');
    assert.match(r.stdout, /task: top1 0\.\d{4} → 0\.\d{4}/);
    // where the reports are, and what to do next
    assert.ok(r.stdout.includes(`report: ${html} (open it in a browser)`) && r.stdout.includes(`report (JSON): ${report}`), r.stdout);
    assert.ok(r.stdout.includes(`InferenceSession.create('${out}')`) && r.stdout.includes('{ "input": tensor }'), 'how to run the result, with its input names');
    assert.equal(rep.steps[0].pass, 'convert.fp16');
    for (const k of ['sizeBytes', 'params', 'durationMs', 'changes', 'fidelity']) assert.ok(k in rep.steps[0], k);
    assert.ok(rep.steps[0].fidelity.logits.sqnrDb > 30);
    assert.ok(rep.environment.onnxruntime);
    assert.deepEqual(rep.steps[0].latency.map((l: { batch: number }) => l.batch), [1, 8, 16], 'latency after the step at batch 1/8/16');
    const page = readFileSync(html, 'utf8');
    for (const chart of ['size', 'latency', 'latency-absolute']) assert.match(page, new RegExp(`data-chart="${chart}"`));
    const res = await runOnce(readFileSync(out), { input: new ort.Tensor('float32', new Float32Array(784), [1, 1, 28, 28]) });
    assert.deepEqual(res.logits!.dims, [1, 10]);
  });

  it('exits 2 with a clear message on bad input', () => {
    const bad = join(dir, 'bad.onnx');
    writeFileSync(bad, 'definitely not a model');
    let r = cli('inspect', bad);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /\[invalid_model\].*not (an|a valid) ONNX/);
    r = cli('inspect', join(dir, 'missing.onnx'));
    assert.equal(r.code, 2);
    assert.match(r.stderr, /no such file/);
    const recipe = join(dir, 'bad-recipe.json');
    writeFileSync(recipe, JSON.stringify({ steps: [{ pass: 'convert.fp16', keepIOTypes: false }] }));
    r = cli('compress', MODELS.fmnist, '--recipe', recipe, '--out', join(dir, 'x.onnx'));
    assert.equal(r.code, 2);
    assert.match(r.stderr, /\[invalid_recipe\].*\/steps\/0\/keepIOTypes/);
    r = cli('compress', MODELS.fmnist, '--out', join(dir, 'x.onnx'));
    assert.equal(r.code, 2);
    assert.match(r.stderr, /needs --recipe/);
    r = cli('frobnicate');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown command/);
    r = cli('compress', MODELS.fmnist, '--recipe', join(ROOT, 'recipes/fp16.json'), '--out', join(dir, 'x.onnx'), '--shape', 'input=1,a');
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--shape/);
  });

  it('every command answers --help with its own usage, exit 0 and no side effects', () => {
    // the service commands point at a database and Redis that do not exist: a command that went on
    // (listened, migrated, created a key named --help) would fail or never exit
    const env = { ...process.env, DATABASE_URL: 'postgresql://nobody@127.0.0.1:1/none', REDIS_URL: 'redis://127.0.0.1:1', PORT: '1' };
    const run = (...args: string[]) => spawnSync(process.execPath, [join(ROOT, 'dist/src/cli/main.js'), ...args], { encoding: 'utf8', timeout: 30_000, env });
    for (const args of [['inspect'], ['compress', MODELS.fmnist], ['bench'], ['eval'], ['passes'], ['submit'], ['serve'], ['worker'], ['migrate'], ['keys', 'create'], ['keys', 'revoke']]) {
      for (const flag of ['--help', '-h']) {
        const r = run(...args, flag);
        assert.equal(r.status, 0, `${args.join(' ')} ${flag}: ${r.stderr}`);
        assert.match(r.stdout, new RegExp(`^usage:\\n  modelpress ${args[0]} `), `${args.join(' ')} ${flag} prints its own usage`);
        assert.equal(r.stderr, '');
      }
    }
    const keys = run('keys', 'create', '--help').stdout;
    assert.match(keys, /keys list/);
    assert.match(keys, /keys revoke <prefix>/);
    assert.doesNotMatch(run('inspect', '--help').stdout, /--calibration/, 'only the options the command takes');
    // after `--` a --help is an argument, not a request for help
    const r = run('inspect', '--', '--help');
    assert.equal(r.status, 2);
  });

  it('passes <name> prints every option of the pass with what it accepts and its default', () => {
    for (const def of Object.values(PASSES)) {
      const r = cli('passes', def.name);
      assert.equal(r.code, 0, r.stderr);
      const keys = Object.keys((def.schema as { properties: Record<string, unknown> }).properties).filter((k) => k !== 'pass');
      for (const k of keys) assert.match(r.stdout, new RegExp(`^  ${k}: `, 'm'), `${def.name} lists ${k}`);
    }
    const q = cli('passes', 'quantize.static').stdout;
    assert.match(q, /^  calibrationMethod: "minmax" \| "percentile" \| "entropy" \| "mse"  \(default "percentile"\)$/m);
    assert.match(q, /^  percentile: number ≥ 90, ≤ 100  \(default 99\.99\)$/m);
    const wrong = cli('passes', 'factorize.tuker');
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /did you mean 'factorize\.tucker'/);
  });

  it('data that does not fit the model is rejected with the reason', () => {
    const r = cli('compress', MODELS.ppocrCls, '--recipe', join(ROOT, 'recipes/fp16.json'), '--out', join(dir, 'y.onnx'), '--data', FMNIST.inputs);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /no array for model input 'x'/);
  });
});
