// BatchNormalization folded into the Conv before it: W' = W·γ/σ per output channel,
// b' = (b − μ)·γ/σ + β with σ = sqrt(var + ε). Exact in real arithmetic; done before quantization so
// that the int8 Conv carries the scale (a float BN between Conv and its Q/DQ would block fusion).
import { DataType as DT } from '../onnx/dtypes.js';
import type { Model, Node } from '../onnx/ir.js';
import { addConstant, getConstant } from '../onnx/constants.js';
import { makeTensor, readFloat32, tensorDims } from '../onnx/tensor-data.js';
import { weightLayerOf } from '../onnx/weight-layers.js';

/** Folds every Conv → BatchNormalization pair it can; returns the Conv nodes that absorbed a BN. */
export function foldBatchNorms(model: Model): { folded: Node[]; kept: { node: Node; reason: string }[] } {
  const folded: Node[] = [];
  const kept: { node: Node; reason: string }[] = [];
  const g = model.graph;
  for (const bn of [...g.nodes]) {
    if (bn.opType !== 'BatchNormalization' || bn.domain !== '') continue;
    const x = bn.inputs[0];
    const conv = x?.producer;
    const reason = foldBlocker(bn);
    if (reason || !conv || !x) {
      kept.push({ node: bn, reason: reason ?? 'not after a Conv' });
      continue;
    }
    const layer = weightLayerOf(conv)!;
    const w = getConstant(layer.weight)!;
    const wDims = tensorDims(w);
    const cout = wDims[layer.outAxis!]!;
    const wData = readFloat32(w);
    const [gamma, beta, mean, variance] = [1, 2, 3, 4].map((i) => readFloat32(getConstant(bn.inputs[i])!));
    const eps = Number(bn.getAttr('epsilon', 1e-5));
    const bias = layer.bias ? readFloat32(getConstant(layer.bias)!) : new Float32Array(cout);
    // the Conv weight is [Cout, …]: each output channel's weights are contiguous
    const perChannel = wData.length / cout;
    const newW = new Float32Array(wData.length);
    const newB = new Float32Array(cout);
    for (let c = 0; c < cout; c++) {
      const k = gamma[c]! / Math.sqrt(variance[c]! + eps);
      for (let i = 0; i < perChannel; i++) newW[c * perChannel + i] = wData[c * perChannel + i]! * k;
      newB[c] = (bias[c]! - mean[c]!) * k + beta[c]!;
    }
    const base = conv.name || x.name;
    conv.setInput(layer.weightInput, addConstant(g, `${base}_weight_bnfolded`, makeTensor('', DT.FLOAT, wDims, newW)));
    conv.setInput(layer.biasInput!, addConstant(g, `${base}_bias_bnfolded`, makeTensor('', DT.FLOAT, [cout], newB)));
    const y = bn.outputs[0]!;
    g.removeNode(bn);
    conv.setOutput(0, y);
    folded.push(conv);
  }
  g.toposort(false);
  g.cleanup(false);
  return { folded, kept };
}

function foldBlocker(bn: Node): string | undefined {
  const x = bn.inputs[0];
  const conv = x?.producer;
  if (!conv || conv.opType !== 'Conv' || conv.domain !== '') return 'not after a Conv';
  if (x!.consumers.length !== 1 || bn.graph.isOutput(x!)) return 'the Conv output has other uses';
  if (bn.outputs.filter((v) => v).length !== 1) return 'training-mode BatchNormalization (extra outputs)';
  if (bn.getInt('training_mode', 0) !== 0) return 'training-mode BatchNormalization';
  if (bn.getInt('spatial', 1) !== 1) return 'non-spatial BatchNormalization';
  const layer = weightLayerOf(conv)!;
  const w = getConstant(layer.weight);
  if (!w || w.dataType !== DT.FLOAT) return 'Conv weight is not a float32 constant';
  if (layer.bias && getConstant(layer.bias)?.dataType !== DT.FLOAT) return 'Conv bias is not a float32 constant';
  const cout = tensorDims(w)[layer.outAxis!]!;
  for (let i = 1; i <= 4; i++) {
    const t = getConstant(bn.inputs[i]);
    if (!t || t.dataType !== DT.FLOAT || readFloat32(t).length !== cout) return 'BatchNormalization parameters are not per-channel float32 constants';
  }
  return undefined;
}
