// Bytes ⇄ ModelProto ⇄ IR. Decoding an unmodified model and encoding it again gives the same bytes:
// every IR object keeps its proto, and we only rebuild the fields the IR owns.
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import {
  AttributeProtoSchema,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  ValueInfoProtoSchema,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type ValueInfoProto,
} from 'onnx-buf';
import { InvalidModelError, UnsupportedModelError } from '../errors.js';
import { KNOWN_DOMAINS } from './domains.js';
import { Graph, Model, Node, Value } from './ir.js';
import { loadExternalData, type ExternalRead } from './external-data.js';
import { assertNoExternalData } from './safety.js';

export interface DecodeOptions {
  /** Accept nodes in domains onnxruntime does not know (default false: reject with a clear error). */
  allowUnknownDomains?: boolean;
}

/**
 * Parses ONNX bytes that came alone into a ModelProto, turning protobuf failures into clear errors.
 * With no directory to read from, a tensor that points at a file is refused: no path from a model
 * reaches onnxruntime or our readers (a model with its files goes through decodeModelWithFiles).
 */
export function decodeModelProto(bytes: Uint8Array): ModelProto {
  const proto = parseModelProto(bytes);
  assertNoExternalData(proto);
  return proto;
}

/**
 * A model file's bytes with their external data from files inside `root` (all of it read unless
 * `readExternalData` says otherwise; see loadExternalData); says how many bytes are there. A model
 * that keeps tensors in their files records the root (Model.externalDataRoot).
 */
export function decodeModelWithFiles(
  bytes: Uint8Array,
  root: string,
  opts: DecodeOptions & { readExternalData?: ExternalRead } = {},
): { model: Model; externalBytes: number } {
  const proto = parseModelProto(bytes);
  const loaded = loadExternalData(proto, root, { read: opts.readExternalData ?? 'all' });
  const model = importModel(proto, opts);
  if (loaded.kept > 0) model.externalDataRoot = loaded.root;
  return { model, externalBytes: loaded.bytes };
}

/**
 * The model with every tensor in memory: a lazily loaded one (Model.externalDataRoot) is copied and
 * the copy's tensors are read from their files, checked again; the lazy model stays as it was. Any
 * other model is returned as it is.
 */
export function withWeights(model: Model): Model {
  const root = model.externalDataRoot;
  if (root === undefined) return model;
  const { model: copy } = model.clone(); // new tensor messages: reading into them leaves the original's alone
  loadExternalData(exportModel(copy), root);
  copy.externalDataRoot = undefined;
  return copy;
}

function parseModelProto(bytes: Uint8Array): ModelProto {
  if (bytes.length === 0) throw new InvalidModelError('not an ONNX model: the file is empty');
  let proto: ModelProto;
  try {
    proto = fromBinary(ModelProtoSchema, bytes);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    const truncated = /premature|EOF|out of range|invalid (wire type|tag)|unexpected end/i.test(why);
    throw new InvalidModelError(
      truncated
        ? `not a valid ONNX model: the protobuf is truncated or corrupt (${why})`
        : `not an ONNX model: the bytes do not parse as an ONNX ModelProto (${why})`,
      { cause: err },
    );
  }
  // Random bytes sometimes parse as a protobuf with unknown fields only; a model has a graph and an IR version.
  if (!proto.graph || proto.irVersion === 0n) {
    throw new InvalidModelError('not an ONNX model: no graph or IR version found in the file');
  }
  return proto;
}

export function encodeModelProto(proto: ModelProto): Uint8Array {
  return toBinary(ModelProtoSchema, proto);
}

export function decodeModel(bytes: Uint8Array, opts: DecodeOptions = {}): Model {
  return importModel(decodeModelProto(bytes), opts);
}

export function encodeModel(model: Model): Uint8Array {
  // bytes keep no directory: a location in them would be resolved against the cwd
  if (model.externalDataRoot !== undefined) throw new Error('encodeModel: the model keeps tensors in its data files; read them first (withWeights)');
  return encodeModelProto(exportModel(model));
}

/** The exported proto with `extra` main-graph values listed as graph outputs after its own. */
export function exportModelWithOutputs(model: Model, extra: readonly Value[]): ModelProto {
  const mp = exportModel(model);
  mp.graph!.output = [...mp.graph!.output, ...extra.map((v) => valueInfoFor(v, undefined))];
  return mp;
}

/**
 * The model cut down to what computes `values` (main-graph values): they are its outputs, and only
 * the nodes and initializers they depend on are left. onnxruntime runs every node of a graph whatever
 * a run asks for, so a capture of early values this way runs only the front of the network. The
 * inputs stay as they are, so the same feeds fit.
 */
export function exportModelForValues(model: Model, values: readonly Value[]): ModelProto {
  const g = model.graph;
  const needed = new Set<Node>();
  const used = new Set<Value>();
  const stack = [...values];
  while (stack.length > 0) {
    const v = stack.pop()!;
    if (used.has(v)) continue;
    used.add(v);
    const n = v.producer;
    if (!n || n.graph !== g || needed.has(n)) continue;
    needed.add(n);
    for (const i of [...n.inputs, ...n.implicitInputs()]) if (i) stack.push(i);
  }
  const mp = exportModel(model);
  const gp = mp.graph!;
  const declared = new Map(g.outputs.map((v, i) => [v, gp.output[i]!]));
  gp.node = gp.node.filter((_, i) => needed.has(g.nodes[i]!));
  gp.initializer = gp.initializer.filter((_, i) => used.has(g.initializers[i]!));
  gp.valueInfo = gp.valueInfo.filter((_, i) => used.has(g.valueInfo[i]!));
  gp.output = values.map((v) => declared.get(v) ?? valueInfoFor(v, undefined));
  return mp;
}

/** Shallow copy that keeps proto2 field presence (unset fields stay on the prototype). */
function copyMessage<T extends object>(schema: Parameters<typeof create>[0], msg: T): T {
  return Object.assign(create(schema) as object, msg) as T;
}

// ---------------------------------------------------------------- import

type Scope = { values: Map<string, Value>; parent: Scope | null; graph: Graph };

function lookup(scope: Scope, name: string): Value | undefined {
  for (let s: Scope | null = scope; s; s = s.parent) {
    const v = s.values.get(name);
    if (v) return v;
  }
  return undefined;
}

export function importModel(proto: ModelProto, opts: DecodeOptions = {}): Model {
  const { graph: graphProto, ...rest } = proto;
  const modelRest = copyMessage(ModelProtoSchema, rest as ModelProto);
  const model = new Model(modelRest);
  const knownDomains = new Set(KNOWN_DOMAINS);
  for (const f of proto.functions) knownDomains.add(f.domain);
  const unknownDomainNodes: string[] = [];
  const dangling: string[] = [];

  const importGraph = (gp: GraphProto, parentScope: Scope | null, owner: Node | null): Graph => {
    const graph = new Graph(model, gp.name, owner);
    const { node: _n, initializer: _i, input: _in, output: _out, valueInfo: _vi, ...graphRest } = gp;
    graph.proto = copyMessage(GraphProtoSchema, graphRest as GraphProto);
    const scope: Scope = { values: new Map(), parent: parentScope, graph };
    // Values referenced before they are produced (unsorted graphs) are created on first sight.
    const pending = new Map<string, Value>();
    const define = (name: string): Value => {
      let v = scope.values.get(name);
      if (v) return v;
      v = pending.get(name);
      if (v) pending.delete(name);
      else v = new Value(graph, name);
      scope.values.set(name, v);
      model.reserveName(name);
      return v;
    };
    const use = (name: string): Value => {
      const found = lookup(scope, name) ?? pending.get(name);
      if (found) return found;
      const v = new Value(graph, name);
      pending.set(name, v);
      return v;
    };

    for (const vi of gp.input) {
      const v = define(vi.name);
      v.info = vi;
      graph.inputs.push(v);
    }
    for (const t of gp.initializer) {
      const v = scope.values.get(t.name) ?? define(t.name);
      v.initializer = t;
      graph.initializers.push(v);
    }
    for (const np of gp.node) {
      const node = new Node(graph, np.opType, np.domain, np.name);
      model.reserveNodeName(np.name);
      const { input, output, attribute, ...nodeRest } = np;
      node.proto = copyMessage(NodeProtoSchema, nodeRest as NodeProto);
      if (!knownDomains.has(np.domain)) unknownDomainNodes.push(`${np.domain}::${np.opType}${np.name ? ` '${np.name}'` : ''}`);
      node.setInputs(input.map((name) => (name === '' ? null : use(name))));
      for (const a of attribute) {
        const attr: { proto: typeof a; graph?: Graph; graphs?: Graph[] } = { proto: a };
        if (a.g) attr.graph = importGraph(a.g, scope, node);
        if (a.graphs.length > 0) attr.graphs = a.graphs.map((g) => importGraph(g, scope, node));
        node.attributes.push(attr);
      }
      node.setOutputs(output.map((name) => (name === '' ? null : define(name))));
      graph.nodes.push(node);
    }
    for (const vi of gp.output) {
      const v = lookup(scope, vi.name) ?? use(vi.name);
      if (!v.info) v.info = vi;
      else if (v.info !== vi) graph.declaredInfo.set(`output:${graph.outputs.length}`, vi);
      graph.outputs.push(v);
    }
    for (const vi of gp.valueInfo) {
      const v = lookup(scope, vi.name) ?? define(vi.name);
      if (!v.info) v.info = vi;
      else if (v.info !== vi) graph.declaredInfo.set(`valueInfo:${graph.valueInfo.length}`, vi);
      graph.valueInfo.push(v);
    }
    for (const name of pending.keys()) dangling.push(`'${name}'${graph.ownerNode ? ` (in a subgraph of ${graph.ownerNode})` : ''}`);
    return graph;
  };

  model.graph = importGraph(graphProto!, null, null);

  if (dangling.length > 0) {
    throw new InvalidModelError(`invalid model: node inputs or graph outputs that nothing defines: ${dangling.slice(0, 10).join(', ')}`);
  }
  if (unknownDomainNodes.length > 0 && !opts.allowUnknownDomains) {
    throw new UnsupportedModelError(
      `model uses operators from domains onnxruntime does not provide: ${[...new Set(unknownDomainNodes)].slice(0, 10).join(', ')}`,
      { details: { nodes: unknownDomainNodes } },
    );
  }
  return model;
}

// ---------------------------------------------------------------- export

function valueInfoFor(v: Value, original: ValueInfoProto | undefined): ValueInfoProto {
  // A second declaration of the same value (say, in value_info and as an output) is kept as it was,
  // as long as it still names this value.
  const base = original && original.name === v.name ? original : v.info;
  if (!base) return create(ValueInfoProtoSchema, { name: v.name });
  if (base.name === v.name) return base;
  const copy = copyMessage(ValueInfoProtoSchema, base);
  copy.name = v.name;
  return copy;
}

export function exportModel(model: Model): ModelProto {
  const exportGraph = (graph: Graph): GraphProto => {
    const gp = copyMessage(GraphProtoSchema, graph.proto ?? create(GraphProtoSchema));
    if (graph.name !== gp.name) gp.name = graph.name;
    gp.node = graph.nodes.map((n) => exportNode(n));
    gp.initializer = graph.initializers.map((v) => {
      const t = v.initializer!;
      if (t.name !== v.name) t.name = v.name;
      return t;
    });
    gp.input = graph.inputs.map((v) => valueInfoFor(v, undefined));
    gp.output = graph.outputs.map((v, i) => valueInfoFor(v, graph.declaredInfo.get(`output:${i}`)));
    gp.valueInfo = graph.valueInfo.map((v, i) => valueInfoFor(v, graph.declaredInfo.get(`valueInfo:${i}`)));
    return gp;
  };
  const exportNode = (n: Node): NodeProto => {
    const np = copyMessage(NodeProtoSchema, n.proto ?? create(NodeProtoSchema));
    if (np.opType !== n.opType) np.opType = n.opType;
    if (np.domain !== n.domain) np.domain = n.domain;
    if (np.name !== n.name) np.name = n.name;
    np.input = n.inputs.map((v) => v?.name ?? '');
    np.output = n.outputs.map((v) => v?.name ?? '');
    np.attribute = n.attributes.map((a) => {
      if (!a.graph && !a.graphs) return a.proto;
      const ap = copyMessage(AttributeProtoSchema, a.proto);
      if (a.graph) ap.g = exportGraph(a.graph);
      if (a.graphs) ap.graphs = a.graphs.map(exportGraph);
      return ap;
    });
    return np;
  };
  const mp = copyMessage(ModelProtoSchema, model.proto);
  mp.graph = exportGraph(model.graph);
  return mp;
}
