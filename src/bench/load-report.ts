// bench/service.md: what `npm run load` measured, against its targets.
import { environment } from '../report/environment.js';

const MiB = 1024 * 1024;

export interface PollResult {
  requests: number;
  rps: number;
  p50: number;
  p99: number;
  max: number;
  non2xx: number;
  s4xx: number;
  s5xx: number;
  errors: number;
  timeouts: number;
  durationSec: number;
}

export interface UploadRound {
  round: number;
  bytesEach: number;
  statuses: Record<string, number>;
  failures: string[];
  totalMs: number;
  slowestMs: number;
  rssBefore: number | null;
  rssPeak: number | null;
  rssLow: number | null;
  /** The largest rise from a low to a later sample during the round (≥ peak − before when nothing was collected). */
  rssRise: number | null;
  rssAfter: number | null;
}

export interface LoadReport {
  startedAt: Date;
  finishedAt?: Date;
  loadBefore: number[];
  loadAfter?: number[];
  apiRssStart: number | null;
  apiRssAfterPoll?: number | null;
  poll?: PollResult;
  uploads: UploadRound[];
  jobStatusAfterPoll?: string;
  jobStatusAfterUploads?: string;
  jobCanceled?: boolean;
  failures: string[];
}

export const fmtMB = (b: number | null) => (b === null ? '—' : `${(b / MiB).toFixed(1)} MB`);
const fmtDelta = (b: number | null) => (b === null ? '—' : `${b >= 0 ? '+' : ''}${(b / MiB).toFixed(1)} MB`);
interface Row {
  what: string;
  measured: string;
  target: string;
  ok: boolean | null;
}

function rows(rep: LoadReport, SETTINGS: LoadSettings, TARGETS: LoadTargets): Row[] {
  const out: Row[] = [];
  const p = rep.poll;
  if (p) {
    out.push({ what: `GET /v1/jobs/<id>, ${SETTINGS.pollConnections} connections, ${p.durationSec.toFixed(0)} s`, measured: `${p.rps.toFixed(0)} polls/s (${p.requests} requests)`, target: `≥ ${TARGETS.pollRps} polls/s`, ok: p.rps >= TARGETS.pollRps });
    out.push({ what: 'poll latency p50 / p99 (max)', measured: `${p.p50.toFixed(1)} ms / ${p.p99.toFixed(1)} ms (${p.max.toFixed(0)} ms)`, target: `p99 ≤ ${TARGETS.pollP99Ms} ms`, ok: p.p99 <= TARGETS.pollP99Ms });
    out.push({ what: 'API RSS when ready → after polling', measured: `${fmtMB(rep.apiRssStart)} → ${fmtMB(rep.apiRssAfterPoll ?? null)}`, target: '', ok: null });
    out.push({ what: 'poll non-2xx / errors', measured: `${p.non2xx} non-2xx (${p.s4xx} 4xx, ${p.s5xx} 5xx) / ${p.errors} errors (${p.timeouts} timeouts)`, target: '0 / 0', ok: p.non2xx === 0 && p.errors === 0 });
  } else out.push({ what: 'GET /v1/jobs/<id> polling', measured: 'not measured', target: `≥ ${TARGETS.pollRps} polls/s, p99 ≤ ${TARGETS.pollP99Ms} ms`, ok: false });
  for (const u of rep.uploads) {
    const codes = Object.entries(u.statuses).map(([k, v]) => `${v}× ${k}`).join(', ');
    const ok2xx = Object.entries(u.statuses).every(([k]) => /^2\d\d$/.test(k));
    out.push({ what: `upload round ${u.round}: ${SETTINGS.uploadsPerRound} concurrent POST /v1/models (${fmtMB(u.bytesEach)} each)`, measured: `${codes} in ${(u.totalMs / 1000).toFixed(2)} s (slowest ${(u.slowestMs / 1000).toFixed(2)} s)`, target: 'all 2xx', ok: ok2xx });
    const after = u.rssAfter !== null && u.rssBefore !== null ? u.rssAfter - u.rssBefore : null;
    const low = u.rssLow !== null && u.rssBefore !== null && u.rssLow < u.rssBefore ? ` (low ${fmtMB(u.rssLow)})` : '';
    out.push({ what: `upload round ${u.round}: API RSS before → peak → after ${SETTINGS.settleMs / 1000} s`, measured: `${fmtMB(u.rssBefore)} → ${fmtMB(u.rssPeak)}${low} → ${fmtMB(u.rssAfter)}`, target: '', ok: null });
    out.push({ what: `upload round ${u.round}: API RSS growth during the round (largest rise to a peak)`, measured: fmtDelta(u.rssRise), target: `≤ ${TARGETS.rssGrowthMB} MB`, ok: u.rssRise === null ? false : u.rssRise <= TARGETS.rssGrowthMB * MiB });
    out.push({ what: `upload round ${u.round}: API RSS growth kept after settling`, measured: fmtDelta(after), target: `≤ ${TARGETS.rssGrowthMB} MB`, ok: after === null ? false : after <= TARGETS.rssGrowthMB * MiB });
  }
  if (rep.uploads.length < SETTINGS.uploadRounds) out.push({ what: 'upload rounds', measured: `${rep.uploads.length} of ${SETTINGS.uploadRounds} done`, target: `${SETTINGS.uploadRounds}`, ok: false });
  const busy = rep.jobStatusAfterPoll === 'running' && rep.jobStatusAfterUploads === 'running';
  out.push({ what: 'the slow job kept the worker busy (status after polling / after uploads)', measured: `${rep.jobStatusAfterPoll ?? '—'} / ${rep.jobStatusAfterUploads ?? '—'}`, target: 'running / running', ok: busy });
  out.push({ what: 'the slow job canceled at the end', measured: rep.jobCanceled === undefined ? '—' : rep.jobCanceled ? 'canceled' : 'not canceled', target: 'canceled', ok: rep.jobCanceled === true });
  return out;
}

export interface LoadSettings {
  pollConnections: number;
  pollDurationSec: number;
  uploadsPerRound: number;
  uploadRounds: number;
  rssSampleMs: number;
  settleMs: number;
  apiLogLevel: string;
  slowRecipe: unknown;
  limits: Record<string, string>;
}

export interface LoadTargets {
  pollRps: number;
  pollP99Ms: number;
  rssGrowthMB: number;
}

export function renderLoadReport(rep: LoadReport, SETTINGS: LoadSettings, TARGETS: LoadTargets, failed: boolean): string {
  const verdict = (r: Row) => (r.ok === null ? '' : r.ok ? 'PASS' : 'FAIL');
  const table = rows(rep, SETTINGS, TARGETS)
    .map((r) => `| ${r.what} | ${r.measured} | ${r.target} | ${verdict(r)} |`)
    .join('\n');
  const machine = environment();
  const la = (l?: number[]) => (l ? l.map((x) => x.toFixed(2)).join(' ') : '—');
  const env = Object.entries(SETTINGS.limits).map(([k, v]) => `${k}=${v}`).join(', ');
  const lines = [
    '# modelpress service load test',
    '',
    `Measured ${rep.startedAt.toISOString().replace(/\.\d+Z$/, 'Z')} by \`npm run load\` (src/bench/load.ts) on ${machine.cpuModel} (${machine.cores} cores, ${machine.int8Dot}), Node ${machine.node}.`,
    `Load average (1/5/15 min) before: ${la(rep.loadBefore)}; after: ${la(rep.loadAfter)}. Run took ${rep.finishedAt ? ((rep.finishedAt.getTime() - rep.startedAt.getTime()) / 1000).toFixed(0) : '—'} s.`,
    '',
    'Setup: the API (`modelpress serve`) and one worker (`modelpress worker`) as separate processes on this machine, with a',
    'throwaway Postgres database, a private BullMQ queue and a temporary data dir; all traffic to 127.0.0.1. The worker is kept',
    `busy for the whole measurement by one job compressing test/fixtures/fmnist/fmnist-cnn.onnx with \`${JSON.stringify(SETTINGS.slowRecipe)}\``,
    'so the API shares the CPU with real compression work, as it would in production.',
    '',
    'Settings:',
    `- polling: autocannon, ${SETTINGS.pollConnections} connections, ${SETTINGS.pollDurationSec} s, GET /v1/jobs/<id> with a bearer key (every request checks the key and reads the job in Postgres)`,
    `- uploads: ${SETTINGS.uploadRounds} rounds of ${SETTINGS.uploadsPerRound} concurrent POST /v1/models (multipart, fetch + FormData), each the fmnist model plus 64 distinct random bytes (no deduplication)`,
    `- API RSS from /proc/<pid>/status VmRSS: before a round (after ${SETTINGS.settleMs / 1000} s idle), sampled every ${SETTINGS.rssSampleMs} ms during it, after ${SETTINGS.settleMs / 1000} s of settling.`,
    '  "Growth during the round" is the largest rise from the lowest sample so far to a later one (= peak − before unless V8 collected',
    '  older garbage, e.g. from the polling phase, during the round; then RSS can also end below where it started).',
    '  A leak shows as growth kept after round 2 too.',
    `- service env: LOG_LEVEL=${SETTINGS.apiLogLevel}, ${env}; everything else at its default`,
    '',
    '| measurement | measured | target | result |',
    '|---|---|---|---|',
    table,
    '',
  ];
  if (rep.failures.length > 0 || failed) {
    lines.push('**The service failed during this run:**', '', ...rep.failures.map((f) => `- ${f.split('\n')[0]}`), '');
  }
  lines.push(
    'Note: the API, the worker (and its compression job), Postgres, Redis and the load generator all share this machine\'s cores.',
    'Numbers measured on a machine that is also doing other work (see the load average above) are not representative;',
    'compare runs only from a quiet machine of the same kind.',
    '',
  );
  return lines.join('\n');
}
