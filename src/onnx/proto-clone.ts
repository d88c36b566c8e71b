// A deep copy of a protobuf message that shares its bytes fields instead of copying them. Tensor
// bytes (raw_data) are the weights: copying them on every model.clone() held one more copy of the
// model per pass. Sharing is safe because nothing writes into a bytes field in place — a pass
// replaces raw_data with a new array (writeTensor), and readers copy out.
import type { DescMessage, MessageShape } from '@bufbuild/protobuf';
import { isReflectMessage, reflect, type ReflectMessage } from '@bufbuild/protobuf/reflect';

/** Messages are copied; bytes are shared (see above); every other scalar is immutable anyway. */
function copyValue(value: unknown): unknown {
  return isReflectMessage(value) ? copyReflect(value) : value;
}

function copyReflect(src: ReflectMessage): ReflectMessage {
  const out = reflect(src.desc);
  for (const f of src.fields) {
    if (!src.isSet(f)) continue;
    if (f.fieldKind === 'list') {
      const list = out.get(f);
      for (const item of src.get(f)) list.add(copyValue(item));
    } else if (f.fieldKind === 'map') {
      const map = out.get(f);
      for (const [k, v] of src.get(f).entries()) map.set(k, copyValue(v));
    } else {
      out.set(f, copyValue(src.get(f)) as never);
    }
  }
  const unknown = src.getUnknown();
  if (unknown && unknown.length > 0) out.setUnknown([...unknown]);
  return out;
}

export function cloneSharingBytes<Desc extends DescMessage>(schema: Desc, message: MessageShape<Desc>): MessageShape<Desc> {
  return copyReflect(reflect(schema, message)).message as MessageShape<Desc>;
}
