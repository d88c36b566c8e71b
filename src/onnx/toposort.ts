// Stable topological order (Kahn): items keep their current order wherever it is already valid.

/**
 * `depsOf(item)` lists what must come before it; dependencies outside `items`, and an item on
 * itself, are ignored. `stuck` holds the items on or behind a cycle (in their current order).
 */
export function stableTopologicalOrder<T>(items: readonly T[], depsOf: (item: T) => Iterable<T>): { order: T[]; stuck: T[] } {
  const index = new Map<T, number>();
  items.forEach((x, i) => index.set(x, i));
  const users = new Map<T, T[]>();
  const remaining = new Map<T, number>();
  for (const x of items) {
    const ds = new Set<T>();
    for (const d of depsOf(x)) if (d !== x && index.has(d)) ds.add(d);
    remaining.set(x, ds.size);
    for (const d of ds) {
      if (!users.has(d)) users.set(d, []);
      users.get(d)!.push(x);
    }
  }
  // min-heap by original index would be ideal; a sorted ready list is fine at these sizes
  const ready: T[] = items.filter((x) => remaining.get(x) === 0);
  const order: T[] = [];
  while (ready.length > 0) {
    ready.sort((a, b) => index.get(a)! - index.get(b)!);
    const x = ready.shift()!;
    order.push(x);
    for (const u of users.get(x) ?? []) {
      const r = remaining.get(u)! - 1;
      remaining.set(u, r);
      if (r === 0) ready.push(u);
    }
  }
  const placed = new Set(order);
  return { order, stuck: order.length === items.length ? [] : items.filter((x) => !placed.has(x)) };
}
