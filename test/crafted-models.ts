// Hostile models built by hand (shared by the safety tests and the service's fault tests): tensors
// said to live in external files, shapes that would take gigabytes, and a canary file that shows
// whether anything read it.
import { statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { create, toBinary, type MessageInitShape } from '@bufbuild/protobuf';
import {
  AttributeProtoSchema,
  AttributeProto_AttributeType as AT,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  OperatorSetIdProtoSchema,
  SparseTensorProtoSchema,
  StringStringEntryProtoSchema,
  TensorProtoSchema,
  TensorProto_DataLocation,
  TensorShapeProtoSchema,
  TensorShapeProto_DimensionSchema,
  TypeProtoSchema,
  TypeProto_TensorSchema,
  ValueInfoProtoSchema,
  type AttributeProto,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
} from 'onnx-buf';
import { DataType as DT } from '../src/onnx/dtypes.js';

export function valueInfo(name: string, elemType = DT.FLOAT, dims?: (number | string)[]) {
  const tensor = create(TypeProto_TensorSchema, { elemType });
  if (dims) {
    tensor.shape = create(TensorShapeProtoSchema, {
      dim: dims.map((d) =>
        create(TensorShapeProto_DimensionSchema, { value: typeof d === 'number' ? { case: 'dimValue', value: BigInt(d) } : { case: 'dimParam', value: d } }),
      ),
    });
  }
  return create(ValueInfoProtoSchema, { name, type: create(TypeProtoSchema, { value: { case: 'tensorType', value: tensor } }) });
}

/** A float tensor of `n` values whose bytes are said to be at offset 0 of `location`. */
export function externalTensor(name: string, location: string, n = 4): TensorProto {
  return create(TensorProtoSchema, {
    name,
    dataType: DT.FLOAT,
    dims: [BigInt(n)],
    dataLocation: TensorProto_DataLocation.EXTERNAL,
    externalData: [
      create(StringStringEntryProtoSchema, { key: 'location', value: location }),
      create(StringStringEntryProtoSchema, { key: 'offset', value: '0' }),
      create(StringStringEntryProtoSchema, { key: 'length', value: String(n * 4) }),
    ],
  });
}

export function floatTensor(name: string, values: number[]): TensorProto {
  return create(TensorProtoSchema, { name, dataType: DT.FLOAT, dims: [BigInt(values.length)], floatData: values });
}

export function int64Tensor(name: string, values: number[]): TensorProto {
  return create(TensorProtoSchema, { name, dataType: DT.INT64, dims: [BigInt(values.length)], int64Data: values.map(BigInt) });
}

export function sparse(values: TensorProto, indices = int64Tensor('idx', [0, 3])) {
  return create(SparseTensorProtoSchema, { values, indices, dims: [4n] });
}

export function attr(name: string, fields: MessageInitShape<typeof AttributeProtoSchema>): AttributeProto {
  return create(AttributeProtoSchema, { name, ...fields });
}

export function node(opType: string, name: string, input: string[], output: string[], attribute: AttributeProto[] = []): NodeProto {
  return create(NodeProtoSchema, { opType, name, input, output, attribute });
}

export function graph(name: string, fields: MessageInitShape<typeof GraphProtoSchema>): GraphProto {
  return create(GraphProtoSchema, { name, ...fields });
}

export function modelProto(g: GraphProto, extra: MessageInitShape<typeof ModelProtoSchema> = {}): ModelProto {
  return create(ModelProtoSchema, {
    irVersion: 8n,
    opsetImport: [create(OperatorSetIdProtoSchema, { domain: '', version: 13n })],
    graph: g,
    ...extra,
  });
}

export const bytesOf = (m: ModelProto) => toBinary(ModelProtoSchema, m);

/** y = Constant(sparse_value: values at `location`): onnxruntime densifies it while loading. */
export function sparseConstantModel(location: string): Uint8Array {
  const c = node('Constant', 'leak', [], ['y'], [attr('sparse_value', { type: AT.SPARSE_TENSOR, sparseTensor: sparse(externalTensor('secret', location, 2)) })]);
  return bytesOf(modelProto(graph('main', { node: [c], output: [valueInfo('y', DT.FLOAT, [4])] })));
}

/** y = Constant(value: 4 floats at `location`): onnxruntime hands the file's bytes back as y. */
export function valueConstantModel(location: string): Uint8Array {
  const c = node('Constant', 'leak', [], ['y'], [attr('value', { type: AT.TENSOR, t: externalTensor('secret', location) })]);
  return bytesOf(modelProto(graph('main', { node: [c], output: [valueInfo('y', DT.FLOAT, [4])] })));
}

/**
 * A file whose atime is an hour older than its mtime. The root fs is mounted relatime, which updates
 * atime on a read whenever atime ≤ mtime: any read of this file moves its atime.
 */
export function makeCanary(dir: string, name = 'canary.bin'): { path: string; atime: () => number; reset: () => void } {
  const path = join(dir, name);
  writeFileSync(path, Buffer.alloc(4096, 0x41));
  const reset = () => utimesSync(path, new Date(Date.now() - 3600_000), new Date());
  reset();
  return { path, atime: () => statSync(path).atimeMs, reset };
}

/** y = Relu(x), x declared float32[dims]: about 100 bytes. */
export function bigInputModel(dims: (number | string)[]): Uint8Array {
  return bytesOf(modelProto(graph('bomb', { input: [valueInfo('x', DT.FLOAT, dims)], node: [node('Relu', 'relu', ['x'], ['y'])], output: [valueInfo('y', DT.FLOAT)] })));
}

/** y = x + ConstantOfShape([60000, 60000]): a tiny model, a 14.4 GB intermediate, shapes declared nowhere. */
export function constantOfShapeBomb(): Uint8Array {
  const shape = node('Constant', 'shape', [], ['s'], [attr('value', { type: AT.TENSOR, t: int64Tensor('', [60000, 60000]) })]);
  const fill = node('ConstantOfShape', 'fill', ['s'], ['big'], [attr('value', { type: AT.TENSOR, t: floatTensor('', [1]) })]);
  const add = node('Add', 'add', ['x', 'big'], ['y']);
  return bytesOf(modelProto(graph('bomb', { input: [valueInfo('x', DT.FLOAT, [1])], node: [shape, fill, add], output: [valueInfo('y', DT.FLOAT)] })));
}


/**
 * y = ReduceSum(ConstantOfShape(Shape(x) × [1, 200, 64, 16])): with x float32[1,1,64,64], a 3.4 GB
 * intermediate whose shape is computed at run time, so no check before running can see it; only a
 * real memory limit on the process stops it.
 */
export function computedShapeBomb(): Uint8Array {
  const factors = node('Constant', 'factors', [], ['f'], [attr('value', { type: AT.TENSOR, t: int64Tensor('', [1, 200, 64, 16]) })]);
  const shape = node('Shape', 'shape', ['x'], ['s']);
  const grown = node('Mul', 'grow', ['s', 'f'], ['big_shape']);
  const fill = node('ConstantOfShape', 'fill', ['big_shape'], ['big'], [attr('value', { type: AT.TENSOR, t: floatTensor('', [1]) })]);
  const sum = node('ReduceSum', 'sum', ['big'], ['y'], [attr('keepdims', { type: AT.INT, i: 0n })]);
  return bytesOf(modelProto(graph('bomb', { input: [valueInfo('x', DT.FLOAT, [1, 1, 64, 64])], node: [factors, shape, grown, fill, sum], output: [valueInfo('y', DT.FLOAT, [])] })));
}
