// A value's declared tensor type ⇄ TypeProto: element type and shape (fixed, symbolic or unknown dims).
import { create } from '@bufbuild/protobuf';
import { TensorShapeProtoSchema, TensorShapeProto_DimensionSchema, TypeProtoSchema, TypeProto_TensorSchema, type TypeProto } from 'onnx-buf';

/** A dimension: a number when fixed, a string when symbolic, null when unknown. */
export type Dim = number | string | null;

/** Element type of a tensor type, undefined when `type` is not a tensor type or leaves it unset. */
export function tensorElemType(type: TypeProto | undefined): number | undefined {
  if (type?.value.case === 'tensorType') return type.value.value.elemType || undefined;
  return undefined;
}

/** Declared shape of a tensor type; undefined when it declares none. */
export function tensorShape(type: TypeProto | undefined): Dim[] | undefined {
  if (type?.value.case !== 'tensorType' || !type.value.value.shape) return undefined;
  return type.value.value.shape.dim.map((d) =>
    d.value.case === 'dimValue' ? Number(d.value.value) : d.value.case === 'dimParam' ? d.value.value : null,
  );
}

export function tensorTypeProto(elemType: number, shape?: readonly Dim[]): TypeProto {
  const tensor = create(TypeProto_TensorSchema, { elemType });
  if (shape) {
    tensor.shape = create(TensorShapeProtoSchema, {
      dim: shape.map((d) =>
        create(
          TensorShapeProto_DimensionSchema,
          typeof d === 'number'
            ? { value: { case: 'dimValue', value: BigInt(d) } }
            : typeof d === 'string'
              ? { value: { case: 'dimParam', value: d } }
              : {},
        ),
      ),
    });
  }
  return create(TypeProtoSchema, { value: { case: 'tensorType', value: tensor } });
}
