// A model is untrusted input. onnxruntime resolves a tensor's external_data `location` against the
// model's directory (the process cwd when it is given bytes) and reads that file, so a model could
// make us read — and hand back as a Constant's value — any file on the host. Bytes that arrive
// alone may not point outside themselves at all; a model that comes with its files (a path on the
// command line, an uploaded bundle) goes through external-data.ts, which reads only inside its root,
// and onnxruntime is given that root only for locations it has checked. Both find the tensors with
// the one walk below.
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

/** The model's own text, quoted and cut short so it cannot flood a log line. */
export function quoteModelText(text: string): string {
  return JSON.stringify(text.length > 120 ? `${text.slice(0, 120)}…` : text);
}

function locationOf(t: TensorProto): string | undefined {
  const loc = t.externalData.find((e) => e.key === 'location')?.value;
  return loc === undefined ? undefined : quoteModelText(loc);
}

/** Called for every tensor; `where` builds the text that places it (only call it to explain a refusal). */
export type TensorVisitor = (t: TensorProto, where: () => string) => void;

/**
 * Visits every tensor a model holds: graph initializers and sparse initializers, every
 * tensor-valued node attribute (t, tensors, sparse_tensor, sparse_tensors), function bodies and
 * attribute defaults, training-info graphs, and all their subgraphs. Reads nothing from disk.
 */
export function forEachTensor(proto: ModelProto, visit: TensorVisitor): void {
  // An explicit stack: nesting depth comes from the file, not from our call stack.
  const stack: { graph: GraphProto; scope: Scope }[] = [];

  const visitTensor = (t: TensorProto | undefined, where: () => string) => {
    if (t) visit(t, where);
  };
  const visitSparse = (s: SparseTensorProto | undefined, where: () => string) => {
    if (!s) return;
    visitTensor(s.values, () => `values of ${where()}`);
    visitTensor(s.indices, () => `indices of ${where()}`);
  };
  /** `owner` names the node (or function) holding the attribute; `scope` is where that owner sits. */
  const visitAttribute = (a: AttributeProto, owner: () => string, scope: Scope) => {
    const at = () => `attribute '${a.name}' of ${owner()} in ${scopePath(scope)}`;
    visitTensor(a.t, at);
    a.tensors.forEach((t, k) => visitTensor(t, () => `${at()}, item ${k}`));
    visitSparse(a.sparseTensor, () => `sparse ${at()}`);
    a.sparseTensors.forEach((s, k) => visitSparse(s, () => `sparse ${at()}, item ${k}`));
    // Subgraph labels are built eagerly (one short string per subgraph); tensor texts stay lazy.
    if (a.g) stack.push({ graph: a.g, scope: { label: `subgraph '${a.g.name}' (attribute '${a.name}' of ${owner()})`, parent: scope } });
    a.graphs.forEach((g, k) => stack.push({ graph: g, scope: { label: `subgraph '${g.name}' (attribute '${a.name}', item ${k}, of ${owner()})`, parent: scope } }));
  };
  const visitNodes = (nodes: readonly NodeProto[], scope: Scope) => {
    for (const n of nodes) {
      for (const a of n.attribute) visitAttribute(a, () => nodeLabel(n), scope);
    }
  };

  if (proto.graph) stack.push({ graph: proto.graph, scope: { label: `graph '${proto.graph.name}'`, parent: null } });
  proto.trainingInfo.forEach((ti, k) => {
    if (ti.initialization) stack.push({ graph: ti.initialization, scope: { label: `training_info[${k}].initialization graph`, parent: null } });
    if (ti.algorithm) stack.push({ graph: ti.algorithm, scope: { label: `training_info[${k}].algorithm graph`, parent: null } });
  });
  for (const f of proto.functions) {
    const scope: Scope = { label: `function '${f.domain ? `${f.domain}::` : ''}${f.name}'`, parent: null };
    for (const a of f.attributeProto) visitAttribute(a, () => 'the attribute defaults', scope);
    visitNodes(f.node, scope);
  }

  for (let item = stack.pop(); item; item = stack.pop()) {
    const { graph, scope } = item;
    for (const t of graph.initializer) visitTensor(t, () => `initializer of ${scopePath(scope)}`);
    for (const s of graph.sparseInitializer) visitSparse(s, () => `sparse initializer of ${scopePath(scope)}`);
    visitNodes(graph.node, scope);
  }
}

/** Throws UnsupportedModelError for the first tensor whose data lives outside the model. */
export function assertNoExternalData(proto: ModelProto): void {
  forEachTensor(proto, (t, where) => {
    if (!isExternal(t)) return;
    const place = where();
    const loc = locationOf(t);
    throw new UnsupportedModelError(
      `tensor '${t.name || '(unnamed)'}' (${place}) stores its data in an external file${loc ? ` (location ${loc})` : ''}; ` +
        'the model came without its files — give the path to the .onnx with its data files beside it (CLI), ' +
        'upload it as a .zip or .tar(.gz) bundle (API), or re-save the model with all tensors embedded',
      { details: { tensor: t.name, where: place } },
    );
  });
}
