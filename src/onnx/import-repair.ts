// What import fixes in a model onnxruntime loads as it is but our passes would not: graphs whose nodes are
// not in topological order (the usual float16 converter appends its Cast nodes after the rest). Each fix
// is returned as a typed note for the report.
import type { Graph, Model } from './ir.js';

/** A graph's nodes were reordered on import (stable: nodes already in a valid order keep it). */
export interface ToposortedNote {
  kind: 'toposorted';
  /** Graphs (the main graph and subgraphs) that were out of order. */
  graphs: number;
  /** Nodes that read a value before its producer had run, in the order as given. */
  nodesOutOfOrder: number;
  message: string;
}

/** Something import changed in the model, as the report shows it. */
export type ImportNote = ToposortedNote;

/** Nodes of `g` (not its subgraphs) that read a value produced by a node listed after them. */
function nodesOutOfOrder(g: Graph): number {
  const seen = new Set<unknown>();
  const own = new Set(g.nodes);
  let late = 0;
  for (const n of g.nodes) {
    const reads = [...n.inputs, ...n.implicitInputs()];
    if (reads.some((v) => v?.producer && own.has(v.producer) && !seen.has(v.producer))) late++;
    seen.add(n);
  }
  return late;
}

/** Sorts every graph that is out of order, in place; returns the notes (empty when nothing changed). */
export function repairOnImport(model: Model): ImportNote[] {
  let graphs = 0;
  let late = 0;
  for (const g of [...model.allGraphs()]) {
    const n = nodesOutOfOrder(g);
    if (n === 0) continue;
    graphs++;
    late += n;
    g.toposort(false);
  }
  if (graphs === 0) return [];
  return [
    {
      kind: 'toposorted',
      graphs,
      nodesOutOfOrder: late,
      message: `the model's nodes were not in topological order (${late} node${late === 1 ? '' : 's'} in ${graphs} graph${graphs === 1 ? '' : 's'} read a value produced later, as the usual float16 converter writes them); they were sorted on import, keeping the given order wherever it was valid`,
    },
  ];
}
