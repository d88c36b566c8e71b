// What `modelpress inspect` prints: a model's interface, ops, parameters and weight bytes.
import { allConstants, countParameters, isParameterType } from './constants.js';
import { dtypeName } from './dtypes.js';
import type { Dim, Model, Value } from './ir.js';
import { QUANTIZED_FORM_NAMES, summarizeQuantization, type QuantizationSummary, type QuantizedForm } from './quantized-forms.js';
import { tensorByteSize } from './tensor-data.js';
import { formatBytes, formatCount } from '../format.js';

export interface ValueSummary {
  name: string;
  dtype: string;
  shape: Dim[] | null;
}

export interface ModelSummary {
  irVersion: number;
  opsets: Record<string, number>;
  producer: string;
  graphName: string;
  sizeBytes: number;
  inputs: ValueSummary[];
  outputs: ValueSummary[];
  nodes: number;
  subgraphs: number;
  opTypes: Record<string, number>;
  params: number;
  weights: {
    initializers: number;
    constantNodes: number;
    bytesByDtype: Record<string, number>;
    parameterBytes: number;
  };
  /** Already quantized: which forms, how many layers each; null when nothing is quantized. */
  quantization: QuantizationSummary | null;
}

function describeValue(v: Value): ValueSummary {
  const t = v.type;
  let dtype = 'unknown';
  if (t?.value.case === 'tensorType') dtype = dtypeName(t.value.value.elemType);
  else if (t?.value.case) dtype = t.value.case.replace(/Type$/, '');
  return { name: v.name, dtype, shape: v.shape ?? null };
}

export function summarizeModel(model: Model, sizeBytes: number): ModelSummary {
  const opTypes: Record<string, number> = {};
  let nodes = 0;
  let subgraphs = -1; // the main graph is not a subgraph
  for (const g of model.allGraphs()) {
    subgraphs++;
    for (const n of g.nodes) {
      nodes++;
      const key = n.domain && n.domain !== 'ai.onnx' ? `${n.domain}::${n.opType}` : n.opType;
      opTypes[key] = (opTypes[key] ?? 0) + 1;
    }
  }
  const consts = allConstants(model);
  const bytesByDtype: Record<string, number> = {};
  let parameterBytes = 0;
  for (const c of consts) {
    const name = dtypeName(c.tensor.dataType);
    const bytes = tensorByteSize(c.tensor);
    bytesByDtype[name] = (bytesByDtype[name] ?? 0) + bytes;
    if (isParameterType(c.tensor.dataType)) parameterBytes += bytes;
  }
  const inits = new Set(model.graph.initializers);
  const opsets: Record<string, number> = {};
  for (const o of model.proto.opsetImport) opsets[o.domain || 'ai.onnx'] = Number(o.version);
  return {
    irVersion: Number(model.proto.irVersion),
    opsets,
    producer: [model.proto.producerName, model.proto.producerVersion].filter(Boolean).join(' '),
    graphName: model.graph.name,
    sizeBytes,
    inputs: model.graph.inputs.filter((v) => !inits.has(v)).map(describeValue),
    outputs: model.graph.outputs.map(describeValue),
    nodes,
    subgraphs,
    opTypes: Object.fromEntries(Object.entries(opTypes).sort((a, b) => b[1] - a[1])),
    params: countParameters(model),
    weights: {
      initializers: consts.filter((c) => c.storage === 'initializer').length,
      constantNodes: consts.filter((c) => c.storage === 'constant-node').length,
      bytesByDtype,
      parameterBytes,
    },
    quantization: summarizeQuantization(model),
  };
}

const fmtDim = (d: Dim) => (d === null ? '?' : String(d));

export function formatSummary(s: ModelSummary): string {
  const lines: string[] = [];
  const io = (v: ValueSummary) => `  ${v.name}: ${v.dtype}${v.shape ? `[${v.shape.map(fmtDim).join(', ')}]` : ''}`;
  lines.push(`IR version ${s.irVersion}, opsets ${Object.entries(s.opsets).map(([d, v]) => `${d} ${v}`).join(', ')}${s.producer ? `, produced by ${s.producer}` : ''}`);
  lines.push(`size ${formatBytes(s.sizeBytes)}, ${s.nodes} nodes${s.subgraphs ? ` (${s.subgraphs} subgraphs)` : ''}, ${formatCount(s.params)} parameters`);
  lines.push('inputs:', ...s.inputs.map(io));
  lines.push('outputs:', ...s.outputs.map(io));
  lines.push(
    `weights: ${s.weights.initializers} initializers, ${s.weights.constantNodes} Constant nodes; ` +
      Object.entries(s.weights.bytesByDtype)
        .map(([d, b]) => `${d} ${formatBytes(b)}`)
        .join(', '),
  );
  const q = s.quantization;
  if (q) {
    const forms = Object.entries(q.layers).map(([f, n]) => `${QUANTIZED_FORM_NAMES[f as QuantizedForm]}: ${n} layer${n === 1 ? '' : 's'}`);
    lines.push(`already quantized: ${forms.length ? forms.join('; ') : 'no quantized layers'}; ${q.quantizeLinear} QuantizeLinear, ${q.dequantizeLinear} DequantizeLinear`);
  }
  lines.push('op types:');
  for (const [op, n] of Object.entries(s.opTypes)) lines.push(`  ${op.padEnd(28)} ${n}`);
  return lines.join('\n');
}
