// The one place where passes meet a weight's element type: float32, float16 and bfloat16 weights are read
// as float32 (exact: every half and bfloat16 value is a float32), computed on in float32, and written back
// in the weight's own type (rounded to nearest even). Passes never branch on the dtype themselves.
import type { TensorProto } from 'onnx-buf';
import { DataType as DT, dtypeName } from './dtypes.js';
import { float32ArrayToBfloat16, float32ArrayToFloat16 } from './float16.js';
import { getConstant } from './constants.js';
import type { Model } from './ir.js';
import { makeTensor, readFloat32, tensorDims } from './tensor-data.js';
import { weightLayerOf } from './weight-layers.js';

/** The element types of weights the passes compute on. */
export const WEIGHT_FLOAT_TYPES: readonly DT[] = [DT.FLOAT, DT.FLOAT16, DT.BFLOAT16];

export type WeightFloatType = DT.FLOAT | DT.FLOAT16 | DT.BFLOAT16;

export function isWeightFloatType(dt: number | undefined): dt is WeightFloatType {
  return dt !== undefined && (WEIGHT_FLOAT_TYPES as readonly number[]).includes(dt);
}

/** A float weight as float32 values, and the type it is stored in. */
export interface FloatWeight {
  dtype: WeightFloatType;
  dims: number[];
  data: Float32Array;
}

/** Why a constant cannot be worked on as a float weight, or null when it can. */
export function floatWeightProblem(t: TensorProto | undefined): string | null {
  if (!t) return 'weight is not a constant';
  if (!isWeightFloatType(t.dataType)) return `weight is ${dtypeName(t.dataType)}, not float32/float16/bfloat16`;
  return null;
}

/** The weight's values as float32 (a fresh array); throws for element types other than WEIGHT_FLOAT_TYPES. */
export function readFloatWeight(t: TensorProto): FloatWeight {
  const problem = floatWeightProblem(t);
  if (problem) throw new Error(`tensor '${t.name}': ${problem}`);
  return { dtype: t.dataType as WeightFloatType, dims: tensorDims(t), data: readFloat32(t) };
}

/** float32 values stored as `dtype`. */
export function makeFloatTensor(name: string, dtype: WeightFloatType, dims: readonly number[], data: Float32Array): TensorProto {
  if (dtype === DT.FLOAT16) return makeTensor(name, dtype, dims, float32ArrayToFloat16(data));
  if (dtype === DT.BFLOAT16) return makeTensor(name, dtype, dims, float32ArrayToBfloat16(data));
  return makeTensor(name, DT.FLOAT, dims, data);
}

/** How many weight layers (in every graph) hold constant weights of each float type, by dtype name. */
export function weightLayerTypes(model: Model): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const n of model.graph.walkNodes()) {
    const t = getConstant(weightLayerOf(n)?.weight);
    if (t && isWeightFloatType(t.dataType)) counts[dtypeName(t.dataType)] = (counts[dtypeName(t.dataType)] ?? 0) + 1;
  }
  return counts;
}
