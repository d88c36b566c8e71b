// How modelpress writes a quantity as text: one formatter per quantity, shared by the HTML report, the
// CLI's benchmark tables and `inspect`, so a size or a latency reads the same everywhere.
// Every formatter takes `unknown` because reports read back from disk carry non-finite numbers as
// strings and older reports may lack a field: a missing value prints as '—', a non-finite one as NaN/∞.
// No imports: low-level modules (src/onnx, src/measure) can depend on this one.

/** Reports are written with a replacer that turns non-finite numbers into strings; accept both. */
export function num(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') {
    const s = v.trim();
    if (s === 'Infinity' || s === '+Infinity') return Infinity;
    if (s === '-Infinity') return -Infinity;
    if (s === '' || s === 'NaN') return NaN;
    return Number(s);
  }
  return NaN;
}

export const isMissing = (v: unknown): v is null | undefined => v === undefined || v === null;

const MISSING = '—';

function nonFinite(x: number): string | null {
  if (Number.isNaN(x)) return 'NaN';
  if (x === Infinity) return '∞';
  if (x === -Infinity) return '−∞';
  return null;
}

/** A typographic minus: in proportional fonts '-' is a hyphen and reads shorter than '+'. */
const minus = (s: string): string => s.replace(/^-/, '−');

// ---------------------------------------------------------------- plain numbers

export function formatFixed(v: unknown, digits: number): string {
  if (isMissing(v)) return MISSING;
  const x = num(v);
  return nonFinite(x) ?? minus(x.toFixed(digits));
}

/** Three significant digits; exponent form for very small or large magnitudes (errors, arbitrary stats). */
export function formatSignificant(v: unknown): string {
  if (isMissing(v)) return MISSING;
  const x = num(v);
  const nf = nonFinite(x);
  if (nf) return nf;
  if (x === 0) return '0';
  const a = Math.abs(x);
  return minus(a < 1e-3 || a >= 1e6 ? x.toExponential(2) : String(Number(x.toPrecision(3))));
}

/** Whole things (parameters, nodes, items) with thousands separators. */
export function formatCount(v: unknown): string {
  if (isMissing(v)) return MISSING;
  const x = num(v);
  return nonFinite(x) ?? Math.round(x).toLocaleString('en-US');
}

// ---------------------------------------------------------------- quantities

/** Binary units, as file sizes are usually shown. */
export function formatBytes(v: unknown): string {
  const n = num(v);
  if (isMissing(v) || !Number.isFinite(n)) return MISSING;
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(2)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

/** Multiply-accumulates at batch 1; null means the count could not be made from the shapes. */
export function formatMacs(v: unknown): string {
  if (isMissing(v)) return 'MACs unknown';
  const n = num(v);
  const nf = nonFinite(n);
  if (nf) return `${nf} MACs`;
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} G MACs`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} M MACs`;
  return `${n} MACs`;
}

/** A latency in milliseconds, without the unit (tables and chart labels carry it). */
export function formatMs(v: unknown): string {
  if (isMissing(v)) return MISSING;
  const x = num(v);
  return nonFinite(x) ?? x.toFixed(x < 10 ? 3 : 1);
}

/** How long a run or a step took, given in milliseconds, shown in seconds. */
export function formatSeconds(ms: unknown): string {
  if (isMissing(ms)) return MISSING;
  const s = num(ms) / 1000;
  return `${nonFinite(s) ?? s.toFixed(s < 1 ? 3 : s < 100 ? 2 : 0)} s`;
}

/** A ratio against the baseline (size, params, latency). */
export const formatRatio = (v: unknown, digits = 2): string => (isMissing(v) ? MISSING : `${formatFixed(v, digits)}×`);

/** The p10–p90 spread of a ratio measured over rounds. */
export const formatSpread = (low: unknown, high: unknown, digits = 2): string => `${formatFixed(low, digits)}–${formatFixed(high, digits)}`;

/** A fraction in [0, 1] shown as a percentage. */
export function formatPercent(v: unknown, digits = 1): string {
  if (isMissing(v)) return MISSING;
  const x = num(v);
  return nonFinite(x) ?? `${(x * 100).toFixed(digits)}%`;
}

/** Signal-to-noise in decibels; ∞ (identical outputs) goes without the unit. */
export function formatDb(v: unknown, digits = 1): string {
  if (isMissing(v)) return MISSING;
  const x = num(v);
  return nonFinite(x) ?? `${minus(x.toFixed(digits))} dB`;
}

/** Task metrics: accuracies differ in the 4th decimal, so keep it (3 significant digits would hide it). */
export function formatMetric(v: unknown): string {
  if (isMissing(v)) return MISSING;
  const x = num(v);
  const nf = nonFinite(x);
  if (nf) return nf;
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-4 || a >= 1e6)) return minus(x.toExponential(3));
  return minus(String(Number(x.toFixed(a < 10 ? 4 : a < 1000 ? 2 : 0))));
}

/** The change of a task metric against its reference, always signed. */
export function formatMetricDelta(x: number): string {
  const nf = nonFinite(x);
  if (nf) return nf;
  if (Math.abs(x) < 5e-7) return '±0';
  return `${x > 0 ? '+' : '−'}${formatMetric(Math.abs(x))}`;
}

/** onnxruntime's intra-op thread count; 0 lets onnxruntime choose. */
export function formatThreads(v: unknown): string {
  if (isMissing(v)) return 'not recorded';
  return num(v) === 0 ? 'default' : String(num(v));
}

/** What a benchmark's timing ran with (a report's `timing`), in one line. */
export function formatTiming(p: {
  batchSizes: number[];
  rounds: number;
  warmupPerRound: number;
  runsPerRound: number;
  warmup: number;
  runs: number;
  note: string;
  sessionPerRound?: boolean;
  loadMs?: number | null;
  loadAverage?: number;
}): string {
  // the note states the measured load when the plan was scaled from it
  const load = p.loadMs !== undefined && p.loadMs !== null && !/a session loads in/.test(p.note) ? ` (a load takes ${formatSeconds(p.loadMs)})` : '';
  const sessions = p.sessionPerRound ? `one session per model and round times every batch size${load}; ` : '';
  return (
    `batch sizes ${p.batchSizes.join(', ')}; ${p.rounds} side-by-side rounds of ${p.warmupPerRound} warmup + ${p.runsPerRound} runs per model ` +
    `(one model alone: ${p.warmup} warmup + ${p.runs} runs); ${sessions}${p.note}` +
    (p.loadAverage !== undefined ? `; load average ${p.loadAverage.toFixed(1)} when measured` : '')
  );
}
