// A small graph IR in the spirit of onnx-graphsurgeon: Model → Graph → Node, with Values as edges.
// Identity is by object: a Node holds the Value objects it reads and writes, never their names.
// Every IR object keeps the proto it came from, so fields we don't model survive export untouched.
import { create } from '@bufbuild/protobuf';
import { cloneSharingBytes as cloneMessage } from './proto-clone.js';
import {
  AttributeProtoSchema,
  GraphProtoSchema,
  ModelProtoSchema,
  NodeProtoSchema,
  TensorProtoSchema,
  ValueInfoProtoSchema,
  type AttributeProto,
  type GraphProto,
  type ModelProto,
  type NodeProto,
  type TensorProto,
  type TypeProto,
  type ValueInfoProto,
} from 'onnx-buf';
import { InvalidModelError } from '../errors.js';
import { AttrType, attributeProto, attributeValue, type AttrKind, type PlainAttrValue } from './attributes.js';
import { NameTable } from './names.js';
import { tensorElemType, tensorShape, tensorTypeProto, type Dim } from './tensor-type.js';
import { stableTopologicalOrder } from './toposort.js';

// the pieces split off this file stay importable from here
export { AttrType, type Dim };
export { KNOWN_DOMAINS } from './domains.js';

export class Value {
  name: string;
  /** The scope that defines this value (a subgraph may read values of enclosing graphs). */
  graph: Graph;
  producer: Node | null = null;
  /** One entry per use: a node reading this value twice appears twice. Includes subgraph nodes. */
  readonly consumers: Node[] = [];
  /** Set when the value is a graph initializer (a constant weight). */
  initializer: TensorProto | undefined;
  /** The ValueInfoProto (type, doc string) declared for this value, if any. */
  info: ValueInfoProto | undefined;

  constructor(graph: Graph, name: string) {
    this.graph = graph;
    this.name = name;
  }

  get type(): TypeProto | undefined {
    return this.info?.type;
  }

  /** Element type if this is a tensor with a declared type, else undefined. */
  get elemType(): number | undefined {
    return tensorElemType(this.info?.type);
  }

  /** Declared shape: numbers for fixed dims, strings for symbolic ones, null for unknown; undefined if no shape. */
  get shape(): Dim[] | undefined {
    return tensorShape(this.info?.type);
  }

  /** Declares (or replaces) this value's tensor type. */
  setTensorType(elemType: number, shape?: readonly Dim[]): void {
    const type = tensorTypeProto(elemType, shape);
    if (this.info) this.info.type = type;
    else this.info = create(ValueInfoProtoSchema, { name: this.name, type });
  }

  /** Changes only the element type, keeping the declared shape. No-op when the type is not declared. */
  setElemType(elemType: number): void {
    const t = this.info?.type;
    if (t?.value.case === 'tensorType') t.value.value.elemType = elemType;
  }

  get isConstant(): boolean {
    return this.initializer !== undefined || this.producer?.opType === 'Constant';
  }
}

export interface Attribute {
  proto: AttributeProto;
  /** Subgraph IR for GRAPH / GRAPHS attributes (the proto's g/graphs are rebuilt from these on export). */
  graph?: Graph;
  graphs?: Graph[];
}

export type AttrValue = number | bigint | string | number[] | bigint[] | string[] | TensorProto | Graph | Graph[];

export class Node {
  opType: string;
  domain: string;
  name: string;
  graph: Graph;
  private _inputs: (Value | null)[] = [];
  private _outputs: (Value | null)[] = [];
  readonly attributes: Attribute[] = [];
  /** The NodeProto this node was imported from (doc string, metadata, unknown fields). */
  proto: NodeProto | undefined;

  constructor(graph: Graph, opType: string, domain = '', name = '') {
    this.graph = graph;
    this.opType = opType;
    this.domain = domain;
    this.name = name;
  }

  get inputs(): readonly (Value | null)[] {
    return this._inputs;
  }
  get outputs(): readonly (Value | null)[] {
    return this._outputs;
  }

  setInput(index: number, value: Value | null): void {
    const old = this._inputs[index];
    if (old) removeOne(old.consumers, this);
    while (this._inputs.length <= index) this._inputs.push(null);
    this._inputs[index] = value;
    if (value) value.consumers.push(this);
  }

  setInputs(values: readonly (Value | null)[]): void {
    for (const old of this._inputs) if (old) removeOne(old.consumers, this);
    this._inputs = [...values];
    for (const v of this._inputs) if (v) v.consumers.push(this);
  }

  setOutput(index: number, value: Value | null): void {
    const old = this._outputs[index];
    if (old && old.producer === this) old.producer = null;
    while (this._outputs.length <= index) this._outputs.push(null);
    if (value) {
      if (value.producer && value.producer !== this) {
        throw new InvalidModelError(`value '${value.name}' already has a producer`);
      }
      value.producer = this;
    }
    this._outputs[index] = value;
  }

  setOutputs(values: readonly (Value | null)[]): void {
    for (const old of this._outputs) if (old && old.producer === this) old.producer = null;
    this._outputs = [];
    values.forEach((v, i) => this.setOutput(i, v));
  }

  /** Disconnects from all inputs and outputs (used when the node is removed). */
  detach(): void {
    this.setInputs([]);
    this.setOutputs([]);
  }

  attr(name: string): Attribute | undefined {
    return this.attributes.find((a) => a.proto.name === name);
  }

  /** Decoded attribute value, or `fallback` when absent. */
  getAttr<T extends AttrValue | undefined>(name: string, fallback?: T): AttrValue | T {
    const a = this.attr(name);
    if (!a) return fallback as T;
    if (a.proto.type === AttrType.GRAPH) return a.graph!;
    if (a.proto.type === AttrType.GRAPHS) return a.graphs!;
    return attributeValue(a.proto) ?? (fallback as T);
  }

  getInt(name: string, fallback: number): number {
    const v = this.getAttr(name);
    return typeof v === 'number' ? v : fallback;
  }

  getInts(name: string, fallback: number[]): number[] {
    const v = this.getAttr(name);
    return Array.isArray(v) ? (v as number[]) : fallback;
  }

  getString(name: string, fallback: string): string {
    const v = this.getAttr(name);
    return typeof v === 'string' ? v : fallback;
  }

  /** Sets a scalar/list/tensor attribute; the attribute type follows the JS value. */
  setAttr(name: string, value: PlainAttrValue, kind?: AttrKind): void {
    const proto = attributeProto(name, value, kind);
    const existing = this.attr(name);
    if (existing) {
      existing.proto = proto;
      delete existing.graph;
      delete existing.graphs;
    } else this.attributes.push({ proto });
  }

  removeAttr(name: string): void {
    const i = this.attributes.findIndex((a) => a.proto.name === name);
    if (i >= 0) this.attributes.splice(i, 1);
  }

  /** Subgraphs held by this node's attributes (If branches, Loop/Scan bodies). */
  subgraphs(): Graph[] {
    const out: Graph[] = [];
    for (const a of this.attributes) {
      if (a.graph) out.push(a.graph);
      if (a.graphs) out.push(...a.graphs);
    }
    return out;
  }

  /** Values of enclosing scopes that this node's subgraphs read (its implicit inputs). */
  implicitInputs(): Value[] {
    const subs = this.subgraphs();
    if (subs.length === 0) return [];
    const seen = new Set<Value>();
    const visit = (g: Graph): void => {
      for (const n of g.nodes) {
        for (const v of n.inputs) if (v && !isWithin(v.graph, this)) seen.add(v);
        for (const s of n.subgraphs()) visit(s);
      }
      for (const v of g.outputs) if (!isWithin(v.graph, this)) seen.add(v);
    };
    subs.forEach(visit);
    return [...seen];
  }

  toString(): string {
    return `${this.opType}${this.name ? ` '${this.name}'` : ''}`;
  }
}

/** True when graph `g` is one of `node`'s subgraphs or nested inside them. */
function isWithin(g: Graph, node: Node): boolean {
  for (let cur: Graph | null = g; cur; cur = cur.ownerNode?.graph ?? null) {
    if (cur.ownerNode === node) return true;
  }
  return false;
}

function removeOne<T>(arr: T[], item: T): void {
  const i = arr.indexOf(item);
  if (i >= 0) arr.splice(i, 1);
}

export class Graph {
  name: string;
  readonly model: Model;
  /** The node whose attribute holds this graph (null for the main graph). */
  ownerNode: Node | null;
  nodes: Node[] = [];
  inputs: Value[] = [];
  outputs: Value[] = [];
  /** Values holding initializers, in file order. */
  initializers: Value[] = [];
  /** Values with a value_info entry, in file order. */
  valueInfo: Value[] = [];
  /**
   * Second declarations of a value, by slot (`output:i`, `valueInfo:i`), kept only so that an
   * unmodified model re-encodes byte for byte; slots shift when lists are edited, and then
   * export falls back to the value's own info (the name check in export guards that).
   */
  declaredInfo = new Map<string, ValueInfoProto>();
  /** Everything of the GraphProto we do not model (doc string, sparse initializers, annotations…). */
  proto: GraphProto | undefined;

  constructor(model: Model, name: string, ownerNode: Node | null = null) {
    this.model = model;
    this.name = name;
    this.ownerNode = ownerNode;
  }

  get parent(): Graph | null {
    return this.ownerNode?.graph ?? null;
  }

  /** Creates a new value in this graph's scope with a model-wide unique name based on `base`. */
  createValue(base: string): Value {
    return new Value(this, this.model.uniqueName(base));
  }

  /** Adds a node; `at` is the index to insert at (default: the end). */
  addNode(
    opType: string,
    inputs: readonly (Value | null)[],
    outputs: readonly (Value | null)[] | number,
    opts: { name?: string; domain?: string; at?: number } = {},
  ): Node {
    const node = new Node(this, opType, opts.domain ?? '', opts.name ? this.model.uniqueNodeName(opts.name) : '');
    node.setInputs(inputs);
    const outs =
      typeof outputs === 'number'
        ? Array.from({ length: outputs }, (_, i) => this.createValue(`${opts.name || opType}_out${i}`))
        : outputs;
    node.setOutputs(outs);
    if (opts.at === undefined) this.nodes.push(node);
    else this.nodes.splice(opts.at, 0, node);
    return node;
  }

  removeNode(node: Node): void {
    const i = this.nodes.indexOf(node);
    if (i < 0) throw new InvalidModelError(`node ${node} is not in graph '${this.name}'`);
    this.nodes.splice(i, 1);
    node.detach();
  }

  /** Adds a constant initializer value. */
  addInitializer(base: string, tensor: TensorProto): Value {
    const v = this.createValue(base);
    tensor.name = v.name;
    v.initializer = tensor;
    this.initializers.push(v);
    return v;
  }

  /** Every use of `oldValue` (node inputs, in any scope, and this graph's outputs) now reads `newValue`. */
  replaceAllUses(oldValue: Value, newValue: Value, except?: Node): void {
    for (const consumer of [...oldValue.consumers]) {
      if (consumer === except) continue;
      consumer.inputs.forEach((v, i) => {
        if (v === oldValue) consumer.setInput(i, newValue);
      });
    }
    // graph outputs in any scope (a subgraph may output an outer value directly)
    for (const g of this.model.allGraphs()) g.outputs = g.outputs.map((v) => (v === oldValue ? newValue : v));
  }

  /** True when `v` is a graph output of this graph. */
  isOutput(v: Value): boolean {
    return this.outputs.includes(v);
  }

  /** All values defined in this scope: inputs, initializers, node outputs. */
  definedValues(): Value[] {
    const out = new Set<Value>([...this.inputs, ...this.initializers]);
    for (const n of this.nodes) for (const v of n.outputs) if (v) out.add(v);
    return [...out];
  }

  /** Visits this graph's nodes and, depth first, every subgraph's nodes. */
  *walkNodes(): Generator<Node> {
    for (const n of this.nodes) {
      yield n;
      for (const s of n.subgraphs()) yield* s.walkNodes();
    }
  }

  /** Stable topological sort (Kahn); keeps the current order wherever it is already valid. */
  toposort(recursive = true): void {
    const producers = (n: Node) => [...n.inputs, ...n.implicitInputs()].flatMap((v) => (v?.producer ? [v.producer] : []));
    const { order, stuck } = stableTopologicalOrder(this.nodes, producers);
    if (stuck.length > 0) {
      throw new InvalidModelError(`graph '${this.name}' has a cycle through ${stuck.slice(0, 5).map(String).join(', ')}`);
    }
    this.nodes = order;
    if (recursive) for (const n of this.nodes) for (const s of n.subgraphs()) s.toposort(true);
  }

  /**
   * Removes nodes whose outputs nobody reads (recursively), unused initializers and value_info of
   * values that no longer exist. Graph outputs are the roots. Returns how many nodes were removed.
   */
  cleanup(recursive = true): number {
    let removed = 0;
    if (recursive) for (const n of this.nodes) for (const s of n.subgraphs()) removed += s.cleanup(true);
    const outputs = new Set(this.outputs);
    for (let i = this.nodes.length - 1; i >= 0; i--) {
      const n = this.nodes[i]!;
      const live = n.outputs.some((v) => v && (v.consumers.length > 0 || outputs.has(v)));
      if (!live) {
        this.nodes.splice(i, 1);
        n.detach();
        removed++;
      }
    }
    const inputs = new Set(this.inputs);
    this.initializers = this.initializers.filter((v) => v.consumers.length > 0 || outputs.has(v) || inputs.has(v));
    const defined = new Set(this.definedValues());
    this.valueInfo = this.valueInfo.filter((v) => defined.has(v));
    return removed;
  }
}

/** A model's copy with the maps from the original's graphs, nodes and values to the copy's. */
export interface ModelClone {
  model: Model;
  graphs: Map<Graph, Graph>;
  nodes: Map<Node, Node>;
  values: Map<Value, Value>;
}

/** An analysis keyed by the original's objects, re-keyed onto the copy's through one of the clone's maps. */
export function carryAcross<K, V>(analysis: ReadonlyMap<K, V>, across: ReadonlyMap<K, K>): Map<K, V> {
  return new Map([...analysis].map(([k, v]) => [across.get(k)!, v]));
}

export class Model {
  graph!: Graph;
  /** The ModelProto minus its graph: ir_version, opset_import, metadata, functions, unknown fields. */
  proto: ModelProto;
  private names = new NameTable();
  private nodeNames = new NameTable();

  /** externalDataRoot: set while large tensors still sit in their data files, the checked directory they are read from (withWeights, onnxruntime). */
  constructor(proto: ModelProto, public externalDataRoot?: string) {
    this.proto = proto;
  }

  /** Opset version of a domain ('' = the default ONNX domain), or undefined if not imported. */
  opset(domain = ''): number | undefined {
    const d = domain === 'ai.onnx' ? '' : domain;
    const entry = this.proto.opsetImport.find((o) => (o.domain === 'ai.onnx' ? '' : o.domain) === d);
    return entry ? Number(entry.version) : undefined;
  }

  *allGraphs(): Generator<Graph> {
    function* visit(g: Graph): Generator<Graph> {
      yield g;
      for (const n of g.nodes) for (const s of n.subgraphs()) yield* visit(s);
    }
    yield* visit(this.graph);
  }

  /** Registers a name as taken (used by the importer). */
  reserveName(name: string): void {
    this.names.reserve(name);
  }

  reserveNodeName(name: string): void {
    if (name) this.nodeNames.reserve(name);
  }

  uniqueName(base: string): string {
    return this.names.unique(base || 'value');
  }

  uniqueNodeName(base: string): string {
    return this.nodeNames.unique(base || 'node');
  }

  /**
   * A deep copy: every graph, node, value and proto is new, so rewriting the copy never touches
   * this model, and the copy encodes to the same bytes. The maps carry identity across the copy
   * (an analysis of this model points into the copy without looking anything up by name).
   */
  clone(): ModelClone {
    const model = new Model(cloneMessage(ModelProtoSchema, this.proto), this.externalDataRoot);
    model.names = this.names.copy();
    model.nodeNames = this.nodeNames.copy();
    const nodes = new Map<Node, Node>();
    const values = new Map<Value, Value>();
    const graphs = new Map<Graph, Graph>();
    // values are copied on first sight: a subgraph may read an outer value its graph defines later
    const valueOf = (v: Value): Value => {
      let c = values.get(v);
      if (!c) {
        c = new Value(graphs.get(v.graph)!, v.name);
        if (v.initializer) c.initializer = cloneMessage(TensorProtoSchema, v.initializer);
        if (v.info) c.info = cloneMessage(ValueInfoProtoSchema, v.info);
        values.set(v, c);
      }
      return c;
    };
    const maybe = (v: Value | null) => (v ? valueOf(v) : null);
    const copyGraph = (g: Graph, owner: Node | null): Graph => {
      const c = new Graph(model, g.name, owner);
      graphs.set(g, c);
      if (g.proto) c.proto = cloneMessage(GraphProtoSchema, g.proto);
      for (const [slot, vi] of g.declaredInfo) c.declaredInfo.set(slot, cloneMessage(ValueInfoProtoSchema, vi));
      c.inputs = g.inputs.map(valueOf);
      c.initializers = g.initializers.map(valueOf);
      for (const n of g.nodes) {
        const m = new Node(c, n.opType, n.domain, n.name);
        nodes.set(n, m);
        if (n.proto) m.proto = cloneMessage(NodeProtoSchema, n.proto);
        m.setInputs(n.inputs.map(maybe));
        for (const a of n.attributes) {
          // a graph attribute's proto is only a shell on export (g/graphs are rebuilt from the IR): shared, never copied
          if (a.graph || a.graphs) {
            m.attributes.push({ proto: a.proto, ...(a.graph ? { graph: copyGraph(a.graph, m) } : {}), ...(a.graphs ? { graphs: a.graphs.map((s) => copyGraph(s, m)) } : {}) });
          } else m.attributes.push({ proto: cloneMessage(AttributeProtoSchema, a.proto) });
        }
        m.setOutputs(n.outputs.map(maybe));
        c.nodes.push(m);
      }
      c.outputs = g.outputs.map(valueOf);
      c.valueInfo = g.valueInfo.map(valueOf);
      return c;
    };
    model.graph = copyGraph(this.graph, null);
    return { model, graphs, nodes, values };
  }

  /** Renames a value, suffixing if the name is taken. Returns the name it got. */
  renameValue(v: Value, name: string): string {
    if (v.name === name) return name;
    this.names.release(v.name);
    v.name = this.uniqueName(name);
    if (v.initializer) v.initializer.name = v.name;
    if (v.info) v.info.name = v.name;
    return v.name;
  }
}
