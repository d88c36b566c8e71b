// Half-precision versions of the fixture models, made the way the usual float16 converter
// (onnxconverter-common's convert_float_to_float16 with keep_io_types) makes them, independently of
// modelpress's own convert.fp16: every float32 initializer, Constant, value type and Cast target becomes
// float16 (or bfloat16), the float32 inputs and outputs are kept with a Cast each, and those Casts are
// appended AFTER the rest of the nodes, so the graph is not toposorted.
import { DataType as DT } from '../src/onnx/dtypes.js';
import { allConstants, setConstant } from '../src/onnx/constants.js';
import { makeFloatTensor, type WeightFloatType } from '../src/onnx/float-weights.js';
import type { Model, Node } from '../src/onnx/ir.js';
import { decodeModel } from '../src/onnx/model-io.js';
import { readFloat32, tensorDims } from '../src/onnx/tensor-data.js';
import { readModel } from './helpers.js';

export function converterStyleHalf(path: string, dtype: WeightFloatType = DT.FLOAT16): Model {
  const model = decodeModel(readModel(path));
  const g = model.graph;
  for (const c of allConstants(model)) {
    if (c.tensor.dataType === DT.FLOAT) setConstant(c.value, makeFloatTensor(c.value.name, dtype, tensorDims(c.tensor), readFloat32(c.tensor)));
  }
  for (const sub of model.allGraphs()) {
    for (const n of sub.nodes) {
      if (n.opType === 'Cast' && n.getInt('to', 0) === DT.FLOAT) n.setAttr('to', dtype, 'int');
      for (const v of n.outputs) if (v?.elemType === DT.FLOAT) v.setElemType(dtype);
    }
    for (const v of sub.valueInfo) if (v.elemType === DT.FLOAT) v.setElemType(dtype);
  }
  const casts: Node[] = [];
  for (const x of g.inputs.filter((v) => v.elemType === DT.FLOAT && !v.initializer)) {
    const half = g.createValue(`${x.name}_half`);
    half.setTensorType(dtype, x.shape);
    g.replaceAllUses(x, half);
    const cast = g.addNode('Cast', [x], [half], { name: `${x.name}_cast_in` });
    cast.setAttr('to', dtype, 'int');
    casts.push(cast);
  }
  g.outputs = g.outputs.map((y) => {
    if (y.elemType !== dtype) return y;
    const name = y.name;
    model.renameValue(y, `${name}_half`);
    const out = g.createValue(name);
    out.setTensorType(DT.FLOAT, y.shape);
    casts.push(g.addNode('Cast', [y], [out], { name: `${name}_cast_out` }));
    casts[casts.length - 1]!.setAttr('to', DT.FLOAT, 'int');
    return out;
  });
  // addNode appended every Cast: the input Casts come after the nodes that read their outputs
  if (casts.length === 0 || g.nodes.indexOf(casts[0]!) < g.nodes.length - casts.length) throw new Error('Casts not at the end');
  return model;
}
