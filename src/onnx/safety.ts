// A model is untrusted input. onnxruntime resolves a tensor's external_data `location` against the
// model's directory (the process cwd when it is given bytes) and reads that file, so a model could
// make us read — and hand back as a Constant's value — any file on the host. We refuse every tensor
// that points outside the model, wherever the ONNX schema lets a tensor live.
import type { AttributeProto, GraphProto, ModelProto, NodeProto, SparseTensorProto, TensorProto } from 'onnx-buf';
import { UnsupportedModelError } from '../errors.js';
import { isExternal } from './tensor-data.js';

/** Where a graph (or a function body) sits, kept as a parent chain so text is only built on refusal. */
interface Scope {
  label: string;
  parent: Scope | null;
}

function scopePath(scope: Scope): string {
  const parts: string[] = [];
  for (let s: Scope | null = scope; s; s = s.parent) parts.push(s.label);
  return parts.join(' in ');
}

function nodeLabel(n: NodeProto): string {
  return `node ${n.name ? `'${n.name}' ` : ''}(${n.domain ? `${n.domain}::` : ''}${n.opType})`;
}

// The location is the model's own text: shown quoted and cut short so it cannot flood a log line.
function locationOf(t: TensorProto): string | undefined {
  const loc = t.externalData.find((e) => e.key === 'location')?.value;
  if (loc === undefined) return undefined;
  return JSON.stringify(loc.length > 120 ? `${loc.slice(0, 120)}…` : loc);
}

function refuse(t: TensorProto, where: () => string): never {
  const place = where();
  const loc = locationOf(t);
  throw new UnsupportedModelError(
    `tensor '${t.name || '(unnamed)'}' (${place}) stores its data in an external file${loc ? ` (location ${loc})` : ''}; ` +
      'external data is not supported yet — re-save the model with all tensors embedded',
    { details: { tensor: t.name, where: place } },
  );
}

/**
 * Throws UnsupportedModelError for the first tensor whose data lives outside the model: graph
 * initializers and sparse initializers, every tensor-valued node attribute (t, tensors,
 * sparse_tensor, sparse_tensors), function bodies and attribute defaults, training-info graphs, and
 * all their subgraphs. One pass over the proto; nothing is read from disk.
 */
export function assertNoExternalData(proto: ModelProto): void {
  // An explicit stack: nesting depth comes from the file, not from our call stack.
  const stack: { graph: GraphProto; scope: Scope }[] = [];

  const checkTensor = (t: TensorProto | undefined, where: () => string) => {
    if (t && isExternal(t)) refuse(t, where);
  };
  const checkSparse = (s: SparseTensorProto | undefined, where: () => string) => {
    if (!s) return;
    checkTensor(s.values, () => `values of ${where()}`);
    checkTensor(s.indices, () => `indices of ${where()}`);
  };
  /** `owner` names the node (or function) holding the attribute; `scope` is where that owner sits. */
  const checkAttribute = (a: AttributeProto, owner: () => string, scope: Scope) => {
    const at = () => `attribute '${a.name}' of ${owner()} in ${scopePath(scope)}`;
    checkTensor(a.t, at);
    a.tensors.forEach((t, k) => checkTensor(t, () => `${at()}, item ${k}`));
    checkSparse(a.sparseTensor, () => `sparse ${at()}`);
    a.sparseTensors.forEach((s, k) => checkSparse(s, () => `sparse ${at()}, item ${k}`));
    // Subgraph labels are built eagerly (one short string per subgraph); tensor texts stay lazy.
    if (a.g) stack.push({ graph: a.g, scope: { label: `subgraph '${a.g.name}' (attribute '${a.name}' of ${owner()})`, parent: scope } });
    a.graphs.forEach((g, k) => stack.push({ graph: g, scope: { label: `subgraph '${g.name}' (attribute '${a.name}', item ${k}, of ${owner()})`, parent: scope } }));
  };
  const checkNodes = (nodes: readonly NodeProto[], scope: Scope) => {
    for (const n of nodes) {
      for (const a of n.attribute) checkAttribute(a, () => nodeLabel(n), scope);
    }
  };

  if (proto.graph) stack.push({ graph: proto.graph, scope: { label: `graph '${proto.graph.name}'`, parent: null } });
  proto.trainingInfo.forEach((ti, k) => {
    if (ti.initialization) stack.push({ graph: ti.initialization, scope: { label: `training_info[${k}].initialization graph`, parent: null } });
    if (ti.algorithm) stack.push({ graph: ti.algorithm, scope: { label: `training_info[${k}].algorithm graph`, parent: null } });
  });
  for (const f of proto.functions) {
    const scope: Scope = { label: `function '${f.domain ? `${f.domain}::` : ''}${f.name}'`, parent: null };
    for (const a of f.attributeProto) checkAttribute(a, () => 'the attribute defaults', scope);
    checkNodes(f.node, scope);
  }

  for (let item = stack.pop(); item; item = stack.pop()) {
    const { graph, scope } = item;
    for (const t of graph.initializer) checkTensor(t, () => `initializer of ${scopePath(scope)}`);
    for (const s of graph.sparseInitializer) checkSparse(s, () => `sparse initializer of ${scopePath(scope)}`);
    checkNodes(graph.node, scope);
  }
}
