// From importance scores to a pruning plan: which channels every group keeps.
import type { ChannelGroup } from './layout.js';

export interface PlanOptions {
  ratio: number;
  scope: 'local' | 'global';
  roundTo: number;
  /** Largest fraction of one group's channels that may go. */
  maxGroupRatio: number;
  /** Per-group caps on the removed fraction (keyed by group). */
  caps: Map<ChannelGroup, number>;
}

export interface GroupPlan {
  group: ChannelGroup;
  keep: number[];
}

/** Rounds a channel count to a multiple of `roundTo`, never below `roundTo` nor above `channels`. */
export function roundChannels(count: number, channels: number, roundTo: number): number {
  if (roundTo <= 1) return Math.max(1, Math.min(channels, Math.round(count)));
  const r = Math.round(count / roundTo) * roundTo;
  return Math.max(Math.min(roundTo, channels), Math.min(channels, r));
}

function topK(scores: Float64Array, k: number): number[] {
  const idx = Array.from(scores.keys()).sort((a, b) => scores[b]! - scores[a]! || a - b);
  return idx.slice(0, k).sort((a, b) => a - b);
}

export function planPruning(groups: ChannelGroup[], scores: Map<ChannelGroup, Float64Array>, opts: PlanOptions): GroupPlan[] {
  const capOf = (g: ChannelGroup) => Math.min(opts.maxGroupRatio, opts.caps.get(g) ?? 1);
  const removeCount = new Map<ChannelGroup, number>();
  if (opts.scope === 'local') {
    for (const g of groups) removeCount.set(g, Math.min(opts.ratio, capOf(g)) * g.channels);
  } else {
    // global: the lowest-scoring channels across all groups, scores normalized by the group mean
    const all: { g: ChannelGroup; s: number }[] = [];
    for (const g of groups) {
      const sc = scores.get(g)!;
      let mean = 0;
      for (const x of sc) mean += x;
      mean /= sc.length;
      for (const x of sc) all.push({ g, s: mean > 0 ? x / mean : 0 });
    }
    all.sort((a, b) => a.s - b.s);
    const total = groups.reduce((s, g) => s + g.channels, 0);
    let budget = Math.round(opts.ratio * total);
    for (const { g } of all) {
      if (budget <= 0) break;
      const cur = removeCount.get(g) ?? 0;
      if (cur + 1 > Math.floor(capOf(g) * g.channels)) continue;
      removeCount.set(g, cur + 1);
      budget--;
    }
  }
  // Round every group's width to a multiple of roundTo, then fix the rounding drift so the total
  // removed stays as close to the budget as the caps allow (otherwise nearest-rounding of many
  // groups can silently keep far more than asked).
  const exact = groups.map((g) => g.channels - (removeCount.get(g) ?? 0));
  const minKeep = groups.map((g) => Math.min(g.channels, Math.ceil((g.channels * (1 - capOf(g)) - 1e-9) / opts.roundTo) * opts.roundTo || g.channels));
  const keepCount = groups.map((g, i) => Math.max(minKeep[i]!, roundChannels(exact[i]!, g.channels, opts.roundTo)));
  const wanted = exact.reduce((a, b) => a + b, 0);
  const step = Math.max(1, opts.roundTo);
  for (;;) {
    const total = keepCount.reduce((a, b) => a + b, 0);
    if (total - wanted < step / 2) break;
    // the group whose rounded width is furthest above its exact width, that may still shrink
    let best = -1;
    for (let i = 0; i < groups.length; i++) {
      const down = keepCount[i]! - step;
      if (down < minKeep[i]! || down < Math.min(step, groups[i]!.channels)) continue;
      if (best < 0 || keepCount[i]! - exact[i]! > keepCount[best]! - exact[best]!) best = i;
    }
    if (best < 0 || keepCount[best]! - exact[best]! <= 0) break;
    keepCount[best] = keepCount[best]! - step;
  }
  return groups.map((g, i) => ({ group: g, keep: topK(scores.get(g)!, keepCount[i]!) }));
}
