// A large, valid ONNX model for the storage benchmark, written without any ONNX library: a chain of
// MatMuls x[1, N] · W1 · W2 · … with random float32 weights of N×N each (4 MiB at N = 1024), encoded as
// protobuf by hand. Big enough to show whether a transfer is streamed or buffered; small graph.
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';

const MiB = 1024 * 1024;

function varint(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return Buffer.from(out);
}
const key = (field: number, wire: number) => varint((field << 3) | wire);
const len = (field: number, body: Buffer) => Buffer.concat([key(field, 2), varint(body.length), body]);
const str = (field: number, s: string) => len(field, Buffer.from(s, 'utf8'));
const int = (field: number, n: number) => Buffer.concat([key(field, 0), varint(n)]);

/** ValueInfoProto of a float tensor with a fixed shape. */
function floatValue(name: string, dims: number[]): Buffer {
  const shape = Buffer.concat(dims.map((d) => len(1, int(1, d))));
  const tensorType = Buffer.concat([int(1, 1), len(2, shape)]);
  return Buffer.concat([str(1, name), len(2, len(1, tensorType))]);
}

/** Deterministic small floats (xorshift32, ±1/√N): a model onnxruntime runs without overflow. */
function weights(count: number, seed: number, scale: number): Buffer {
  const f = new Float32Array(count);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < count; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    f[i] = (s / 0xffffffff - 0.5) * 2 * scale;
  }
  return Buffer.from(f.buffer);
}

export interface ChainModel {
  path: string;
  sizeBytes: number;
  layers: number;
  width: number;
}

/** Writes a MatMul chain of about `mb` MiB of weights (at least one 4 MiB layer) to `path`. */
export async function writeMatMulChain(path: string, mb: number, width = 1024): Promise<ChainModel> {
  const layerBytes = width * width * 4;
  const layers = Math.max(1, Math.round((mb * MiB) / layerBytes));
  const parts: Buffer[] = [];
  for (let i = 0; i < layers; i++) {
    const node = Buffer.concat([str(1, i === 0 ? 'x' : `h${i}`), str(1, `w${i + 1}`), str(2, i === layers - 1 ? 'y' : `h${i + 1}`), str(3, `matmul${i + 1}`), str(4, 'MatMul')]);
    parts.push(len(1, node));
  }
  parts.push(str(2, 'matmul-chain'));
  for (let i = 0; i < layers; i++) {
    const tensor = Buffer.concat([int(1, width), int(1, width), int(2, 1), str(8, `w${i + 1}`), len(9, weights(width * width, 0x9e3779b9 ^ (i + 1), 1 / Math.sqrt(width)))]);
    parts.push(len(5, tensor));
  }
  parts.push(len(11, floatValue('x', [1, width])), len(12, floatValue('y', [1, width])));
  const graph = Buffer.concat(parts);
  const head = Buffer.concat([int(1, 8), str(2, 'modelpress-bench'), key(7, 2), varint(graph.length)]);
  const tail = len(8, Buffer.concat([str(1, ''), int(2, 17)]));
  const out = createWriteStream(path);
  for (const b of [head, graph, tail]) if (!out.write(b)) await once(out, 'drain');
  out.end();
  await once(out, 'finish');
  return { path, sizeBytes: head.length + graph.length + tail.length, layers, width };
}

/**
 * Bytes that, appended to a model, add one `metadata_props` entry (ModelProto field 14): the same
 * model with other content, so a content-addressed store cannot deduplicate it.
 */
export function metadataTail(keyName: string, value: string): Buffer {
  return len(14, Buffer.concat([str(1, keyName), str(2, value)]));
}
