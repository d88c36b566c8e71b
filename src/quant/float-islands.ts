// float16 and bfloat16 models in the quantization passes. onnxruntime's integer kernels (QDQ fusion to
// QLinearConv/QLinearMatMul, DynamicQuantizeMatMul, MatMulInteger, MatMulNBits' float side) take float32
// activations, so every half-precision weight layer becomes a float32 island before the pass: its data
// inputs are Cast to float32, its weights widened (exactly: every half value is a float32), its output Cast
// back. The pass then quantizes the island as it would any float32 layer, from the very same weight values.
// Islands the pass left float (excluded, too small, not a candidate) are narrowed back afterwards, so a
// skipped layer keeps its own weights and type.
import { addConstant, getConstant, setConstant } from '../onnx/constants.js';
import { DataType as DT } from '../onnx/dtypes.js';
import { inferElemTypes } from '../onnx/elem-types.js';
import { isWeightFloatType, makeFloatTensor, type WeightFloatType } from '../onnx/float-weights.js';
import type { Model, Node } from '../onnx/ir.js';
import { readFloat32, tensorDims } from '../onnx/tensor-data.js';
import { weightLayerOf } from '../onnx/weight-layers.js';
import type { ChangeLog } from '../pipeline/pass.js';

/** Marks the Casts of an island in their node names (the pass's clone keeps names, not our objects). */
const ISLAND_IN = '_f32island_in';
const ISLAND_OUT = '_f32island_out';

function halfWeightType(n: Node): WeightFloatType | null {
  if (n.domain !== '') return null;
  const dt = getConstant(weightLayerOf(n)?.weight)?.dataType;
  return dt === DT.FLOAT16 || dt === DT.BFLOAT16 ? dt : null;
}

/**
 * `input` itself when no weight layer of the main graph holds float16/bfloat16 weights; otherwise a copy in
 * which each such layer computes in float32 between Casts. `islands`: how many layers were widened.
 */
export function widenHalfLayers(input: Model): { model: Model; islands: number } {
  if (!input.graph.nodes.some((n) => halfWeightType(n) !== null)) return { model: input, islands: 0 };
  const { model } = input.clone();
  const g = model.graph;
  const types = inferElemTypes(model);
  let islands = 0;
  for (const n of [...g.nodes]) {
    const dtype = halfWeightType(n);
    const y = n.outputs[0];
    if (dtype === null || !y || n.outputs.length !== 1) continue;
    const base = n.name || y.name;
    n.inputs.forEach((v, i) => {
      if (!v) return;
      const t = getConstant(v);
      if (t) {
        if (t.dataType === dtype) n.setInput(i, addConstant(g, `${v.name}_f32`, makeFloatTensor('', DT.FLOAT, tensorDims(t), readFloat32(t))));
        return;
      }
      if (types.get(v) !== dtype) return;
      const cast = g.addNode('Cast', [v], 1, { name: `${base}${ISLAND_IN}${i}`, at: g.nodes.indexOf(n) });
      cast.setAttr('to', DT.FLOAT, 'int');
      cast.outputs[0]!.setTensorType(DT.FLOAT, v.shape);
      n.setInput(i, cast.outputs[0]!);
    });
    const y32 = g.createValue(`${y.name}_f32`);
    y32.setTensorType(DT.FLOAT, y.shape);
    n.setOutput(0, y32);
    g.addNode('Cast', [y32], [y], { name: `${base}${ISLAND_OUT}`, at: g.nodes.indexOf(n) + 1 }).setAttr('to', dtype, 'int');
    islands++;
  }
  return { model, islands };
}

/**
 * Narrows back, in place, every island whose layer the pass left float: its float32 constants are written in
 * the island's type again and its Casts removed. Islands with anything else around them (a DequantizeLinear
 * weight, a QuantizeLinear reading the output, a replaced node) stay as they are. Returns how many remain.
 */
export function narrowUntouchedIslands(model: Model): number {
  const g = model.graph;
  let remaining = 0;
  for (const out of [...g.nodes]) {
    if (out.opType !== 'Cast' || !out.name.includes(ISLAND_OUT)) continue;
    const y32 = out.inputs[0];
    const layer = y32?.producer;
    const dtype = out.getInt('to', DT.FLOAT);
    const ownInput = (i: number): 'constant' | 'cast' | null => {
      const v = layer!.inputs[i];
      if (!v) return 'constant'; // optional input absent: nothing to narrow
      if (v.consumers.length !== 1 || g.isOutput(v)) return null;
      if (getConstant(v)?.dataType === DT.FLOAT) return 'constant';
      const p = v.producer;
      return p?.opType === 'Cast' && p.name.includes(ISLAND_IN) ? 'cast' : null;
    };
    const untouched =
      !!layer && !!y32 && isWeightFloatType(dtype) && y32.consumers.length === 1 && !g.isOutput(y32) && layer.outputs.length === 1 &&
      halfWeightType(layer) === null && weightLayerOf(layer) !== null && layer.domain === '' && layer.inputs.every((_, i) => ownInput(i) !== null);
    if (!untouched) {
      remaining++;
      continue;
    }
    layer!.inputs.forEach((v, i) => {
      if (!v) return;
      if (ownInput(i) === 'cast') {
        const cast = v.producer!;
        layer!.setInput(i, cast.inputs[0]!);
        g.removeNode(cast);
      } else {
        const t = getConstant(v)!;
        setConstant(v, makeFloatTensor(v.name, dtype as WeightFloatType, tensorDims(t), readFloat32(t)));
      }
    });
    const y = out.outputs[0]!;
    g.removeNode(out);
    layer!.setOutput(0, y);
  }
  return remaining;
}

/** Says in the pass's log what happened to a half-precision model's layers. */
export function noteIslands(log: ChangeLog, widened: number, remaining: number): void {
  if (widened === 0) return;
  log.warn(
    `float16/bfloat16 model: ${remaining} of ${widened} half-precision weight layer(s) were quantized from their own weights and now run ` +
      'as int8 between Casts to and from float32 (onnxruntime\'s integer kernels take float32); the others keep their weights and type',
  );
}
