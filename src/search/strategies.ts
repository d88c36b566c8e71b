// How a search walks its space: strategies are generators that propose a point, receive what the
// trial measured, and propose the next; the engine owns the budget, the cache and the data.
import type { Goal, SEARCH_STRATEGY_NAMES } from '../pipeline/goal.js';
import { knobsOf, type Knob } from '../pipeline/goal.js';
import type { Strategy } from '../pipeline/pass.js';
import { seededRandom } from '../runtime/ort.js';
import { AGGRESSIVE_DIRECTION, knobAt, type Point, type Space } from './space.js';

export interface TrialOutcome {
  /** The accuracy goal held on the search part. */
  meets: boolean;
  /** The objective (lower is better) when it was measured, else Infinity. */
  score: number;
}

export interface StrategyContext {
  space: Space;
  goal: Goal;
  seed: number;
}

export interface SearchStrategy extends Strategy {
  propose(ctx: StrategyContext): Generator<Point, void, TrialOutcome>;
}

type RangeKnob = Extract<Knob, { kind: 'range' }>;

/** Each range knob of the single-alternative slots: the knobs bisected alone and scaled together. */
interface Axis {
  slot: number;
  key: string;
  knob: RangeKnob;
  pass: string;
}

function axesOf(space: Space): Axis[] {
  const out: Axis[] = [];
  space.slots.forEach((s, slot) => {
    if (s.alternatives.length !== 1) return;
    for (const [key, knob] of knobsOf(s.alternatives[0]!)) {
      if (knob.kind === 'range' && AGGRESSIVE_DIRECTION[s.alternatives[0]!.pass]?.[key]) out.push({ slot, key, knob, pass: s.alternatives[0]!.pass });
    }
  });
  return out;
}

/** Every concrete choice of a slot: each alternative × each value of its choice knobs (range knobs at their mildest). */
function variantsOf(space: Space, slot: number): { alternative: number; picks: Record<string, unknown> }[] {
  const out: { alternative: number; picks: Record<string, unknown> }[] = [];
  space.slots[slot]!.alternatives.forEach((t, alternative) => {
    let combos: Record<string, unknown>[] = [{}];
    for (const [key, knob] of knobsOf(t)) {
      if (knob.kind === 'choices') combos = combos.flatMap((c) => knob.values.map((v) => ({ ...c, [key]: v })));
      else if (!AGGRESSIVE_DIRECTION[t.pass]?.[key]) combos = combos.map((c) => ({ ...c, [key]: knob.lo }));
    }
    for (const picks of combos) out.push({ alternative, picks });
  });
  return out;
}

/** The point with every slot left out except the given ones (non-optional slots take their first variant). */
function pointWith(space: Space, set: Map<number, { alternative: number; picks: Record<string, unknown> }>): Point {
  return space.slots.map((s, i) => set.get(i) ?? (s.optional ? null : variantsOf(space, i)[0]!));
}

/** Bisection steps per knob alone; each halves the interval of aggressiveness. */
const BISECT_STEPS = 4;
/** Steps of the joint scale-back of a combination. */
const SCALE_STEPS = 3;
/** Variants of a multi-alternative slot (quantization) carried into combinations: the best two, and more that tie with the best. */
const CARRIED_VARIANTS = 2;
const MAX_CARRIED_VARIANTS = 3;
/** Scores within this relative distance of the best are a tie (side-by-side timing varies by ~2%; equal sizes tie exactly). */
const SCORE_TIE = 0.02;

/**
 * staged: (1) every variant of the multi-alternative slots alone (the quantization variants);
 * (2) each monotone knob alone, bisected to the most aggressive value that meets the goal;
 * (3) combinations in slot order: each subset of those knobs with each of the best variants, every
 * knob scaled back together by one factor that is bisected; (4) from the best point, each knob
 * bisected further on its own. A probe subset stops hopeless candidates early (the engine).
 */
const staged: SearchStrategy = {
  name: 'staged',
  description: 'variants alone, each knob bisected alone, combinations scaled back together, then refined.',
  *propose({ space }) {
    const axes = axesOf(space);
    const axisSlots = new Set(axes.map((a) => a.slot));
    const variantSlots = space.slots.map((_, i) => i).filter((i) => !axisSlots.has(i));
    // (1) variants alone
    const goodVariants = new Map<number, { v: { alternative: number; picks: Record<string, unknown> }; score: number }[]>();
    for (const slot of variantSlots) {
      const good: { v: { alternative: number; picks: Record<string, unknown> }; score: number }[] = [];
      for (const v of variantsOf(space, slot)) {
        const r = yield pointWith(space, new Map([[slot, v]]));
        if (r.meets) good.push({ v, score: r.score });
      }
      good.sort((a, b) => a.score - b.score);
      // variants whose scores differ by no more than timing noise are equals: all of them go on
      const carried = good.filter((g, i) => i < CARRIED_VARIANTS || (i < MAX_CARRIED_VARIANTS && g.score <= good[0]!.score * (1 + SCORE_TIE)));
      goodVariants.set(slot, carried);
    }
    // (2) each knob alone: the most aggressive value that meets the goal
    const limit = new Map<Axis, number>();
    const at = (axis: Axis, a: number) => ({ alternative: 0, picks: { [axis.key]: knobAt(axis.pass, axis.key, axis.knob, a) } });
    for (const axis of axes) {
      let lo = 0;
      let hi = 1;
      let found = -1;
      const top = yield pointWith(space, new Map([[axis.slot, at(axis, 1)]]));
      if (top.meets) found = 1;
      else {
        for (let s = 0; s < BISECT_STEPS; s++) {
          const mid = (lo + hi) / 2;
          const r = yield pointWith(space, new Map([[axis.slot, at(axis, mid)]]));
          if (r.meets) {
            found = mid;
            lo = mid;
          } else hi = mid;
        }
        if (found < 0 && lo === 0) {
          const r = yield pointWith(space, new Map([[axis.slot, at(axis, 0)]]));
          if (r.meets) found = 0;
        }
      }
      if (found >= 0) limit.set(axis, found);
    }
    // (3) combinations, scaled back together
    const usable = axes.filter((a) => limit.has(a));
    const subsets: Axis[][] = [];
    for (let mask = 1; mask < 1 << usable.length; mask++) subsets.push(usable.filter((_, i) => mask & (1 << i)));
    subsets.sort((a, b) => b.length - a.length); // the fullest chains first: they are the fastest when they hold
    const variantChoices: Map<number, { alternative: number; picks: Record<string, unknown> }>[] = [new Map()];
    for (const slot of variantSlots) {
      const opts = goodVariants.get(slot) ?? [];
      const next: typeof variantChoices = [];
      for (const base of variantChoices) for (const o of opts) next.push(new Map([...base, [slot, o.v]]));
      variantChoices.splice(0, variantChoices.length, ...(next.length ? next : variantChoices));
    }
    let best: { point: Map<number, { alternative: number; picks: Record<string, unknown> }>; axes: Map<Axis, number>; score: number } | null = null;
    for (const subset of subsets) {
      for (const variants of variantChoices) {
        if (subset.length === 1 && variants.size === 0) continue; // measured alone in (2)
        const build = (scale: number) => {
          const set = new Map(variants);
          const aggr = new Map<Axis, number>();
          for (const axis of subset) {
            aggr.set(axis, limit.get(axis)! * scale);
            set.set(axis.slot, at(axis, limit.get(axis)! * scale));
          }
          return { set, aggr };
        };
        let lo = 0;
        let hi = 1;
        for (let s = 0; s <= SCALE_STEPS; s++) {
          const scale = s === 0 ? 1 : (lo + hi) / 2;
          const { set, aggr } = build(scale);
          const r = yield pointWith(space, set);
          if (r.meets) {
            if (!best || r.score < best.score) best = { point: set, axes: aggr, score: r.score };
            if (s === 0) break;
            lo = scale;
          } else hi = scale;
        }
      }
    }
    // (4) refine the best combination: push each knob further on its own
    if (best) {
      for (const [axis, a] of best.axes) {
        let lo = a;
        let hi = 1;
        for (let s = 0; s < 2 && hi - lo > 0.02; s++) {
          const mid = (lo + hi) / 2;
          const set: Map<number, { alternative: number; picks: Record<string, unknown> }> = new Map(best.point);
          set.set(axis.slot, at(axis, mid));
          const r = yield pointWith(space, set);
          if (r.meets) {
            lo = mid;
            if (r.score < best.score) best = { point: set, axes: new Map([...best.axes, [axis, mid]]), score: r.score };
          } else hi = mid;
        }
      }
    }
  },
};

/** random: each optional slot in or out with even odds, a uniform alternative, uniform knob values. The bench's baseline. */
const random: SearchStrategy = {
  name: 'random',
  description: 'uniform random points of the space (a baseline to compare the staged search with).',
  *propose({ space, seed }) {
    const rand = seededRandom(seed + 7919);
    for (;;) {
      const point: Point = space.slots.map((s) => {
        if (s.optional && rand() < 0.5) return null;
        const alternative = Math.floor(rand() * s.alternatives.length);
        const picks: Record<string, unknown> = {};
        for (const [key, knob] of knobsOf(s.alternatives[alternative]!)) {
          picks[key] = knob.kind === 'range' ? Math.round((knob.lo + rand() * (knob.hi - knob.lo)) * 1000) / 1000 : knob.values[Math.floor(rand() * knob.values.length)];
        }
        return { alternative, picks };
      });
      yield point;
    }
  },
};

export const SEARCH_STRATEGIES = { staged, random } satisfies Record<(typeof SEARCH_STRATEGY_NAMES)[number], SearchStrategy>;
