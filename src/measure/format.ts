// Terminal tables for benchmark results. The quantities are written by src/report/format.ts, as in the report.
import { formatBytes, formatCount, formatFixed, formatMacs, formatMs, formatSpread, formatThreads, formatTiming } from '../format.js';
import type { BenchmarkResult, Comparison } from '../report/schema.js';

export function formatBenchmark(path: string, r: BenchmarkResult): string {
  const lines = [
    `${path}: ${formatBytes(r.sizeBytes)}, ${formatCount(r.params)} params, ${formatMacs(r.macs)} at batch 1, ` +
      `intra-op threads ${formatThreads(r.intraOpThreads)}${r.fixedBatch !== null ? `, fixed batch ${r.fixedBatch}` : ''}`,
    `  inputs: ${r.inputs.map((i) => `${i.name} ${i.dtype}[${i.shape.join(',')}]`).join(', ')} (batch 1 shown)`,
    '  batch    p50 ms    p90 ms    p99 ms   mean ms    min ms    items/s',
  ];
  for (const l of r.latency) {
    const times = [l.p50Ms, l.p90Ms, l.p99Ms, l.meanMs, l.minMs].map((t) => formatMs(t).padStart(9)).join(' ');
    lines.push(`  ${String(l.batch).padStart(5)} ${times} ${formatFixed(l.throughput, 1).padStart(10)}`);
  }
  lines.push(`  (${r.latency[0]?.warmup ?? 0} warmup + ${r.latency[0]?.runs ?? 0} timed runs per batch size; ${r.timing.note})`);
  return lines.join('\n');
}

export function formatComparison(a: string, b: string, c: Comparison): string {
  const lines = [
    `side by side, b = ${b} vs a = ${a} (rounds alternate a/b, one session alive at a time; ratio = median of per-round ratios)`,
    '  batch   a p50 ms   b p50 ms   b/a ratio   spread (p10–p90)   verdict',
  ];
  for (const r of c.ratios) {
    lines.push(
      `  ${String(r.batch).padStart(5)} ${formatMs(r.a.p50Ms).padStart(10)} ${formatMs(r.b.p50Ms).padStart(10)} ${formatFixed(r.ratio, 3).padStart(11)}   ${formatSpread(r.low, r.high, 3).padStart(16)}   ${r.verdict === 'no gain' ? 'no gain (spread includes 1)' : r.verdict}`,
    );
  }
  lines.push(`  (${formatTiming(c.timing)})`);
  return lines.join('\n');
}
