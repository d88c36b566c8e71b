// Structural checks run after every pass: edges consistent, names unique, nodes toposorted.
import { InvalidModelError } from '../errors.js';
import type { Graph, Model, Value } from './ir.js';

export interface VerifyIssue {
  graph: string;
  message: string;
}

/** Returns the problems found (empty when the model is well formed). */
export function findGraphIssues(model: Model): VerifyIssue[] {
  const issues: VerifyIssue[] = [];
  const names = new Map<string, Value>();
  const nodeNames = new Set<string>();

  const checkGraph = (g: Graph, visible: Set<Value>): void => {
    const where = g.parent ? `subgraph '${g.name}' of ${g.ownerNode}` : `graph '${g.name}'`;
    const add = (msg: string): void => {
      issues.push({ graph: where, message: msg });
    };
    const claim = (v: Value): void => {
      const other = names.get(v.name);
      if (other && other !== v) add(`two different values are named '${v.name}'`);
      names.set(v.name, v);
    };
    const available = new Set(visible);
    for (const v of g.inputs) {
      if (v.graph !== g) add(`input '${v.name}' belongs to another scope`);
      claim(v);
      available.add(v);
    }
    for (const v of g.initializers) {
      if (!v.initializer) add(`initializer list holds '${v.name}' without tensor`);
      else if (v.initializer.name !== v.name) add(`initializer tensor named '${v.initializer.name}' for value '${v.name}'`);
      if (v.producer) add(`initializer '${v.name}' is also produced by ${v.producer}`);
      claim(v);
      available.add(v);
    }
    for (const n of g.nodes) {
      if (n.graph !== g) add(`${n} is listed in this graph but belongs to another`);
      if (n.name) {
        if (nodeNames.has(n.name)) add(`node name '${n.name}' is used twice`);
        nodeNames.add(n.name);
      }
      n.inputs.forEach((v, i) => {
        if (!v) return;
        if (!available.has(v)) {
          add(
            v.producer && v.producer.graph === g
              ? `${n} reads '${v.name}' before ${v.producer} produces it (not toposorted)`
              : `${n} input ${i} '${v.name}' is not defined in scope`,
          );
        }
        const uses = v.consumers.filter((c) => c === n).length;
        const expected = n.inputs.filter((x) => x === v).length;
        if (uses !== expected) add(`consumer list of '${v.name}' is out of sync with ${n}`);
      });
      // subgraphs see everything defined so far
      for (const s of n.subgraphs()) {
        if (s.ownerNode !== n) add(`subgraph '${s.name}' does not point back to ${n}`);
        checkGraph(s, available);
      }
      for (const v of n.outputs) {
        if (!v) continue;
        if (v.producer !== n) add(`'${v.name}' is an output of ${n} but its producer is ${v.producer}`);
        if (v.graph !== g) add(`output '${v.name}' of ${n} belongs to another scope`);
        if (available.has(v)) add(`'${v.name}' is defined twice`);
        claim(v);
        available.add(v);
      }
    }
    for (const v of g.outputs) if (!available.has(v)) add(`graph output '${v.name}' is not defined`);
    for (const v of g.valueInfo) if (!available.has(v)) add(`value_info for '${v.name}', which does not exist`);
  };
  checkGraph(model.graph, new Set());
  return issues;
}

export function verifyModel(model: Model, context = 'model'): void {
  const issues = findGraphIssues(model);
  if (issues.length > 0) {
    const text = issues
      .slice(0, 8)
      .map((i) => `${i.graph}: ${i.message}`)
      .join('; ');
    throw new InvalidModelError(`${context} is not a consistent graph: ${text}${issues.length > 8 ? ` (+${issues.length - 8} more)` : ''}`, {
      details: issues,
    });
  }
}
