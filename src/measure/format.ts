// Terminal tables for benchmark results.
import { formatBytes } from '../onnx/inspect.js';
import type { BenchmarkResult, Comparison } from '../report/schema.js';

const ms = (x: number) => x.toFixed(x < 10 ? 3 : 1);

export function formatMacs(macs: number | null): string {
  if (macs === null) return 'MACs unknown';
  if (macs >= 1e9) return `${(macs / 1e9).toFixed(2)} G MACs`;
  if (macs >= 1e6) return `${(macs / 1e6).toFixed(1)} M MACs`;
  return `${macs} MACs`;
}

export function formatBenchmark(path: string, r: BenchmarkResult): string {
  const lines = [
    `${path}: ${formatBytes(r.sizeBytes)}, ${r.params.toLocaleString('en-US')} params, ${formatMacs(r.macs)} at batch 1, ` +
      `intra-op threads ${r.intraOpThreads || 'default'}${r.fixedBatch !== null ? `, fixed batch ${r.fixedBatch}` : ''}`,
    `  inputs: ${r.inputs.map((i) => `${i.name} ${i.dtype}[${i.shape.join(',')}]`).join(', ')} (batch 1 shown)`,
    '  batch    p50 ms    p90 ms    p99 ms   mean ms    min ms    items/s',
  ];
  for (const l of r.latency) {
    lines.push(
      `  ${String(l.batch).padStart(5)} ${ms(l.p50Ms).padStart(9)} ${ms(l.p90Ms).padStart(9)} ${ms(l.p99Ms).padStart(9)} ${ms(l.meanMs).padStart(9)} ${ms(l.minMs).padStart(9)} ${l.throughput.toFixed(1).padStart(10)}`,
    );
  }
  lines.push(`  (${r.latency[0]?.warmup ?? 0} warmup + ${r.latency[0]?.runs ?? 0} timed runs per batch size)`);
  return lines.join('\n');
}

export function formatComparison(a: string, b: string, c: Comparison): string {
  const lines = [
    `side by side, b = ${b} vs a = ${a} (rounds alternate a/b, one session alive at a time; ratio = median of per-round ratios)`,
    '  batch   a p50 ms   b p50 ms   b/a ratio   spread (p10–p90)   verdict',
  ];
  for (const r of c.ratios) {
    lines.push(
      `  ${String(r.batch).padStart(5)} ${ms(r.a.p50Ms).padStart(10)} ${ms(r.b.p50Ms).padStart(10)} ${r.ratio.toFixed(3).padStart(11)}   ${`${r.low.toFixed(3)}–${r.high.toFixed(3)}`.padStart(16)}   ${r.verdict === 'no gain' ? 'no gain (spread includes 1)' : r.verdict}`,
    );
  }
  return lines.join('\n');
}
