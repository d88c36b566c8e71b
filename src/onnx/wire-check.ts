// Is this file an ONNX ModelProto at all? A check of its top-level protobuf framing only: every
// field's tag and length, reading a few bytes per field and skipping the payloads (a graph of 2 GB is
// one field), so an upload can be refused before it is accepted without reading or holding it whole.
// The full decode (src/onnx/model-io.ts) still judges everything inside.
import { InvalidModelError } from '../errors.js';

/** Reads up to `length` bytes at `position` (fewer at the end of the file). */
export type ReadAt = (position: number, length: number) => Promise<Uint8Array>;

/** Top-level fields of onnx.ModelProto (onnx.proto3) with their wire types: 0 varint, 2 length-delimited (1 and 5: fixed 64/32 bits). */
const MODEL_FIELDS: Record<number, { name: string; wire: number }> = {
  1: { name: 'ir_version', wire: 0 },
  2: { name: 'producer_name', wire: 2 },
  3: { name: 'producer_version', wire: 2 },
  4: { name: 'domain', wire: 2 },
  5: { name: 'model_version', wire: 0 },
  6: { name: 'doc_string', wire: 2 },
  7: { name: 'graph', wire: 2 },
  8: { name: 'opset_import', wire: 2 },
  14: { name: 'metadata_props', wire: 2 },
  20: { name: 'training_info', wire: 2 },
  25: { name: 'functions', wire: 2 },
};

/** A varint at `at` in `buf`: its value and length, or null when it runs past the buffer or 10 bytes. */
function varint(buf: Uint8Array, at: number): { value: number; length: number } | null {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10 && at + i < buf.length; i++) {
    const b = buf[at + i]!;
    value += (b & 0x7f) * scale;
    scale *= 128;
    if ((b & 0x80) === 0) return { value, length: i + 1 };
  }
  return null;
}

/**
 * Throws InvalidModelError unless the file is a sequence of ModelProto fields that ends exactly at its
 * end and holds a graph and an ir_version. Returns the number of top-level fields.
 */
export async function checkModelFraming(readAt: ReadAt, size: number, what = 'the model'): Promise<number> {
  const notOnnx = (why: string) =>
    new InvalidModelError(`${what} is not an ONNX model (${why}); send the .onnx file exported by your framework, or a .zip/.tar/.tar.gz bundle of one .onnx and its data files`);
  if (size === 0) throw notOnnx('the file is empty');
  const seen = new Set<number>();
  let pos = 0;
  let fields = 0;
  while (pos < size) {
    const head = await readAt(pos, 20); // a tag and a length varint fit in 20 bytes
    const tag = varint(head, 0);
    if (!tag) throw notOnnx(`no protobuf field at byte ${pos}`);
    const field = Math.floor(tag.value / 8);
    const wire = tag.value % 8;
    // fields a newer ONNX may add are skipped, as protobuf readers (and onnxruntime) do
    const known = MODEL_FIELDS[field] ?? { name: `field ${field}`, wire };
    if (field === 0 || wire === 3 || wire === 4 || wire > 5) throw notOnnx(`no protobuf field at byte ${pos}`);
    if (wire !== known.wire) throw notOnnx(`${known.name} at byte ${pos} has wire type ${wire}, not ${known.wire}`);
    if (wire === 1 || wire === 5) {
      pos += tag.length + (wire === 1 ? 8 : 4);
      if (pos > size) throw notOnnx(`${known.name} is cut off at the end of the file`);
    } else if (wire === 0) {
      const v = varint(head, tag.length);
      if (!v) throw notOnnx(`${known.name} at byte ${pos} is cut off`);
      pos += tag.length + v.length;
    } else {
      const len = varint(head, tag.length);
      if (!len) throw notOnnx(`${known.name} at byte ${pos} is cut off`);
      const end = pos + tag.length + len.length + len.value;
      if (end > size) throw notOnnx(`${known.name} at byte ${pos} claims ${len.value} bytes, past the end of the ${size}-byte file (truncated upload?)`);
      pos = end;
    }
    seen.add(field);
    fields++;
  }
  if (!seen.has(7)) throw notOnnx('it has no graph');
  if (!seen.has(1)) throw notOnnx('it has no ir_version');
  return fields;
}
