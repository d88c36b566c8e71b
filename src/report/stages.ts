// Reading a compression report for display: its stages in order and the figures derived from them,
// shared by the page's tables and the charts. Reports may come from older versions: fields can be missing.
import { num } from '../format.js';
import type { CompressionReport, StageMetrics, StepReport } from './schema.js';

export interface Stage {
  label: string;
  kind: 'baseline' | 'step' | 'final';
  m: StageMetrics;
  step?: StepReport;
}

/** Baseline, then each step, then the final model (the same bytes as the last step, measured side by side). */
export function stagesOf(r: CompressionReport): Stage[] {
  const out: Stage[] = [{ label: 'baseline', kind: 'baseline', m: r.baseline }];
  for (const s of r.steps ?? []) out.push({ label: `${s.index}. ${s.pass}`, kind: 'step', m: s, step: s });
  if (r.final) out.push({ label: 'final', kind: 'final', m: r.final });
  return out;
}

export const sizeRatio = (r: CompressionReport, m: StageMetrics): number => num(m.sizeBytes) / num(r.baseline.sizeBytes);
export const paramsRatio = (r: CompressionReport, m: StageMetrics): number => (num(r.baseline.params) ? num(m.params) / num(r.baseline.params) : 1);

/** The recipe's benchmark settings as recorded (any shape: the recipe is stored as given). */
export function benchmarkSettings(r: CompressionReport): Record<string, unknown> | undefined {
  return (r.recipe as { benchmark?: Record<string, unknown> } | null)?.benchmark;
}
