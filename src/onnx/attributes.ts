// Scalar, list and tensor attributes ⇄ AttributeProto: which proto field and type a JS value maps to.
// Graph attributes are IR objects (If branches, Loop bodies) and are handled by Node in ir.ts.
import { create } from '@bufbuild/protobuf';
import { AttributeProtoSchema, AttributeProto_AttributeType as AttrType, type AttributeProto, type TensorProto } from 'onnx-buf';

export { AttrType };

/** What a non-graph attribute holds. */
export type PlainAttrValue = number | string | number[] | string[] | TensorProto;

/** Forces a number (list) to an int or float attribute; without it, the values decide. */
export type AttrKind = 'int' | 'float' | 'ints' | 'floats';

/** The value of a scalar, list or tensor attribute; undefined for graph attributes and unknown types. */
export function attributeValue(p: AttributeProto): PlainAttrValue | undefined {
  switch (p.type) {
    case AttrType.FLOAT:
      return p.f;
    case AttrType.INT:
      return Number(p.i);
    case AttrType.STRING:
      return new TextDecoder().decode(p.s);
    case AttrType.TENSOR:
      return p.t!;
    case AttrType.FLOATS:
      return [...p.floats];
    case AttrType.INTS:
      return p.ints.map((x) => Number(x));
    case AttrType.STRINGS:
      return p.strings.map((s) => new TextDecoder().decode(s));
    default:
      return undefined;
  }
}

/** A new attribute named `name` holding `value`. */
export function attributeProto(name: string, value: PlainAttrValue, kind?: AttrKind): AttributeProto {
  const proto = create(AttributeProtoSchema, { name });
  if (typeof value === 'number') {
    if (kind === 'float' || (!kind && !Number.isInteger(value))) {
      proto.type = AttrType.FLOAT;
      proto.f = value;
    } else {
      proto.type = AttrType.INT;
      proto.i = BigInt(value);
    }
  } else if (typeof value === 'string') {
    proto.type = AttrType.STRING;
    proto.s = new TextEncoder().encode(value) as Uint8Array<ArrayBuffer>;
  } else if (Array.isArray(value)) {
    if (value.length > 0 && typeof value[0] === 'string') {
      proto.type = AttrType.STRINGS;
      proto.strings = (value as string[]).map((s) => new TextEncoder().encode(s) as Uint8Array<ArrayBuffer>);
    } else if (kind === 'floats' || (!kind && (value as number[]).some((x) => !Number.isInteger(x)))) {
      proto.type = AttrType.FLOATS;
      proto.floats = [...(value as number[])];
    } else {
      proto.type = AttrType.INTS;
      proto.ints = (value as number[]).map((x) => BigInt(x));
    }
  } else {
    proto.type = AttrType.TENSOR;
    proto.t = value;
  }
  return proto;
}
