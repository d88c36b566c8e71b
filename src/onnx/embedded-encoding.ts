// The bytes a model encodes to with every tensor embedded (what encodeModel returns), without
// building them: the size from the tensors' lengths, the sha256 streamed one tensor at a time. For a
// model too large for one buffer (past 2 GB), and one whose weights stay in their data files (read
// from there, checked, one tensor at a time). The proto part is encoded with a marker in place of
// each large tensor's bytes; the length prefixes of the messages around a marker are then rewritten
// for the real bytes, so the result is byte for byte the embedded encoding.
import { createHash, randomBytes } from 'node:crypto';
import type { TensorProto } from 'onnx-buf';
import { ExternalDataFiles } from './external-data.js';
import { encodeWithTensorsChanged } from './external-write.js';
import type { Model } from './ir.js';
import { exportModel } from './model-io.js';
import { forEachTensor } from './safety.js';
import { isExternal } from './tensor-data.js';

/** Embedded tensors from this size on are streamed rather than copied into the proto part. */
const STREAM_MIN_BYTES = 1 << 16;
/** A marker: 12 random bytes (the same for one encoding) and the tensor's index. */
const MARK_BYTES = 16;

interface Payload {
  tensor: TensorProto;
  where: () => string;
  length: number;
}
type Part = Uint8Array | Payload;

function varint(n: number): Uint8Array {
  const out: number[] = [];
  for (; n >= 0x80; n = Math.floor(n / 0x80)) out.push((n % 0x80) | 0x80);
  out.push(n);
  return Uint8Array.from(out);
}

/** The embedded encoding as runs of the proto part and the large tensors' bytes, in order; `files` reads tensors still in their files. */
function layout(model: Model, files: ExternalDataFiles | null): { parts: Part[]; size: number } {
  const proto = exportModel(model);
  const payloads: Payload[] = [];
  forEachTensor(proto, (t, where) => {
    if (isExternal(t)) {
      if (!files) throw new Error(`tensor '${t.name}' is in an external file but the model records no directory`);
      payloads.push({ tensor: t, where, length: files.locate(t, where).bytes });
    } else if (t.rawData.length >= STREAM_MIN_BYTES) payloads.push({ tensor: t, where, length: t.rawData.length });
  });
  const prefix = randomBytes(MARK_BYTES - 4);
  const marker = (i: number) => {
    const m = new Uint8Array(MARK_BYTES);
    m.set(prefix);
    new DataView(m.buffer).setUint32(MARK_BYTES - 4, i);
    return m;
  };
  // each tensor as it is embedded: its bytes in raw_data (here the marker), no external_data
  const part = Buffer.from(
    encodeWithTensorsChanged(proto, payloads.map((p) => p.tensor), (t, i) => {
      t.rawData = marker(i);
      t.externalData = [];
      delete (t as Partial<TensorProto>).dataLocation;
    }),
  );
  const marks = new Map<number, number>(); // position in the part → tensor index
  for (let at = part.indexOf(prefix); at >= 0; at = part.indexOf(prefix, at + 1)) marks.set(at, part.readUInt32BE(at + MARK_BYTES - 4));
  if (marks.size !== payloads.length) throw new Error(`embedded encoding: ${marks.size} markers for ${payloads.length} tensors`);
  const positions = [...marks.keys()].sort((a, b) => a - b);
  const anyMarkIn = (start: number, end: number) => {
    let lo = 0;
    let hi = positions.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (positions[mid]! < start) lo = mid + 1;
      else hi = mid;
    }
    return lo < positions.length && positions[lo]! < end;
  };
  const readVarint = (pos: number): [number, number] => {
    let n = 0;
    for (let shift = 1; ; shift *= 0x80) {
      const b = part[pos++]!;
      n += (b & 0x7f) * shift;
      if (b < 0x80) return [n, pos];
    }
  };
  // One message's fields: a length-delimited field that holds a marker is a message around a
  // tensor (its length grows) or the tensor's raw_data itself (replaced by the tensor's bytes).
  const message = (start: number, end: number): { parts: Part[]; size: number } => {
    const parts: Part[] = [];
    let size = 0;
    let copied = start;
    const add = (p: Part) => {
      parts.push(p);
      size += p.length;
    };
    for (let pos = start; pos < end; ) {
      const [tag, afterTag] = readVarint(pos);
      pos = afterTag;
      const wire = tag & 7;
      if (wire === 0) pos = readVarint(pos)[1];
      else if (wire === 1) pos += 8;
      else if (wire === 5) pos += 4;
      else if (wire === 2) {
        const [len, body] = readVarint(pos);
        const lenAt = pos;
        pos = body + len;
        if (!anyMarkIn(body, pos)) continue; // copied as it is
        add(part.subarray(copied, lenAt)); // up to and including the tag
        const index = len === MARK_BYTES ? marks.get(body) : undefined;
        if (index !== undefined) {
          add(varint(payloads[index]!.length));
          add(payloads[index]!);
        } else {
          const inner = message(body, pos);
          add(varint(inner.size));
          for (const p of inner.parts) add(p);
        }
        copied = pos;
      } else if (wire !== 3 && wire !== 4) throw new Error(`embedded encoding: wire type ${wire} at byte ${pos}`);
    }
    if (end > copied) add(part.subarray(copied, end));
    return { parts, size };
  };
  return message(0, part.length);
}

function withFiles<T>(model: Model, fn: (files: ExternalDataFiles | null) => T): T {
  const files = model.externalDataRoot !== undefined ? new ExternalDataFiles(model.externalDataRoot) : null;
  try {
    return fn(files);
  } finally {
    files?.close();
  }
}

/** The length of encodeModel(withWeights(model)), exactly, without reading a weight. */
export function embeddedSize(model: Model): number {
  return withFiles(model, (files) => layout(model, files).size);
}

/** sha256 of encodeModel(withWeights(model)), streamed: at most one tensor's bytes in memory at a time. */
export function embeddedSha256(model: Model): string {
  return withFiles(model, (files) => {
    const hash = createHash('sha256');
    for (const p of layout(model, files).parts) {
      if (p instanceof Uint8Array) hash.update(p);
      else hash.update(isExternal(p.tensor) ? files!.read(p.tensor, p.where) : p.tensor.rawData);
    }
    return hash.digest('hex');
  });
}
