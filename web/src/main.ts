// The modelpress web app: sign in with an API key, watch jobs live, start jobs, download results.
// Preact + htm (no JSX step), bundled by esbuild; every request goes to this server's /v1 API.
import { h, render } from 'preact';
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import htm from 'htm';
import { ApiError, api, clearKey, download, getKey, setKey, uploadForm, watchJobs, type Job, type StoredModel, type Trial } from './api.js';

const html = htm.bind(h);

// ---------------------------------------------------------------- small helpers

const STATUSES = ['queued', 'running', 'succeeded', 'failed', 'canceled'] as const;
const FINISHED: ReadonlySet<string> = new Set(['succeeded', 'failed', 'canceled']);
const finished = (j: Job) => FINISHED.has(j.status);

function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function bytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

const when = (iso: string | null) => (iso ? new Date(iso).toLocaleString() : '—');

function jobDuration(j: Job): string {
  if (!j.startedAt) return '—';
  return duration((j.finishedAt ? Date.parse(j.finishedAt) : Date.now()) - Date.parse(j.startedAt));
}

/** Time left: the search's own budget, else extrapolated from the progress so far. */
function timeLeft(j: Job): string | null {
  if (finished(j) || !j.startedAt) return null;
  const s = j.progress.search;
  if (s?.remainingMs !== undefined) return `${duration(s.remainingMs)} of the search budget left`;
  const p = j.progress.percent;
  if (p < 2 || p >= 100) return null;
  const elapsed = Date.now() - Date.parse(j.startedAt);
  return `about ${duration((elapsed * (100 - p)) / p)} left`;
}

function errorText(err: unknown): string {
  if (err instanceof ApiError) return `${err.problem.detail}${err.problem.errors?.length ? ` (${err.problem.errors.map((e) => `${e.path}: ${e.message}`).join('; ')})` : ''}`;
  return (err as Error).message;
}

function navigate(hash: string): void {
  location.hash = hash;
}

function useHash(): string {
  const [hash, setHash] = useState(location.hash || '#/jobs');
  useEffect(() => {
    const on = () => setHash(location.hash || '#/jobs');
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash;
}

const Status = ({ status }: { status: Job['status'] }) => html`<span class=${`status s-${status}`} data-status=${status}>${status}</span>`;

const Bar = ({ percent, label }: { percent: number; label?: string }) =>
  html`<div class="bar" role="progressbar" aria-valuenow=${Math.round(percent)} aria-valuemin="0" aria-valuemax="100" aria-label=${label ?? 'progress'}><div style=${`width:${Math.max(0, Math.min(100, percent))}%`}></div></div>`;

// ---------------------------------------------------------------- sign-in

function SignIn({ onSignedIn }: { onSignedIn: () => void }) {
  const [key, setValue] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setKey(key.trim());
    try {
      await api('/v1/jobs?limit=1');
      onSignedIn();
    } catch (err) {
      clearKey();
      setError(err instanceof ApiError && err.status === 401 ? 'That key was not accepted: check it, or create one with `modelpress keys create <name>` on the server.' : errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return html`<main class="signin">
    <h1>modelpress</h1>
    <p class="muted">Compress ONNX models: quantize, prune, factorize — with a report that proves it.</p>
    <form onSubmit=${submit}>
      <label for="key">API key</label>
      <input id="key" name="key" type="password" autocomplete="off" placeholder="mp_…" value=${key} onInput=${(e: Event) => setValue((e.target as HTMLInputElement).value)} required />
      <p class="muted small">Kept in this tab only (session storage), sent as a Bearer header, never put in a URL.</p>
      <button type="submit" disabled=${busy || !key.trim()}>Sign in</button>
      ${error && html`<p class="error" role="alert">${error}</p>`}
    </form>
  </main>`;
}

// ---------------------------------------------------------------- jobs list

function JobsPage() {
  const [jobs, setJobs] = useState<Job[]>([]);
  const [status, setStatus] = useState<string>('');
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [next, setNext] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const page = cursors.length - 1;
  const load = async () => {
    const q = new URLSearchParams({ limit: '20' });
    if (status) q.set('status', status);
    const cursor = cursors[cursors.length - 1];
    if (cursor) q.set('cursor', cursor);
    const r = await api<{ items: Job[]; nextCursor: string | null }>(`/v1/jobs?${q}`);
    setJobs(r.items);
    setNext(r.nextCursor);
  };
  useEffect(() => {
    load().catch((e) => setError(errorText(e)));
  }, [status, cursors]);
  useEffect(
    () =>
      watchJobs(
        (job) =>
          setJobs((list) => {
            const i = list.findIndex((j) => j.id === job.id);
            if (i >= 0) return list.map((j) => (j.id === job.id ? job : j));
            // a new job belongs on the first page when it passes the filter
            return page === 0 && (!status || job.status === status) && !list.some((j) => Date.parse(j.createdAt) > Date.parse(job.createdAt)) ? [job, ...list] : list;
          }),
        load,
        (id) => setJobs((list) => list.filter((j) => j.id !== id)),
      ),
    [status, page],
  );
  return html`<section>
    <div class="toolbar">
      <h2>Jobs</h2>
      <label>status <select value=${status} onChange=${(e: Event) => { setStatus((e.target as HTMLSelectElement).value); setCursors([null]); }}>
        <option value="">all</option>
        ${STATUSES.map((s) => html`<option value=${s}>${s}</option>`)}
      </select></label>
      <a class="button" href="#/new">New job</a>
    </div>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    <table class="jobs">
      <thead><tr><th>status</th><th>progress</th><th>model</th><th>recipe</th><th>created</th><th>duration</th></tr></thead>
      <tbody>
        ${jobs.map(
          (j) => html`<tr key=${j.id} data-job=${j.id} onClick=${() => navigate(`#/jobs/${j.id}`)}>
            <td><${Status} status=${j.status} /></td>
            <td class="progress"><${Bar} percent=${j.status === 'succeeded' ? 100 : j.progress.percent} /> <span class="small">${j.status === 'running' ? `${Math.round(j.progress.percent)}% ${j.progress.stepName ?? ''}` : ''}</span></td>
            <td><a href=${`#/jobs/${j.id}`}>${j.modelFilename ?? j.modelId.slice(0, 8)}</a></td>
            <td>${j.recipeName ?? html`<span class="muted">unnamed</span>`}</td>
            <td class="small">${when(j.createdAt)}</td>
            <td class="small">${jobDuration(j)}</td>
          </tr>`,
        )}
        ${jobs.length === 0 && html`<tr><td colspan="6" class="muted">No jobs${status ? ` with status ${status}` : ''} yet. <a href="#/new">Start one</a>.</td></tr>`}
      </tbody>
    </table>
    <div class="pager">
      <button disabled=${page === 0} onClick=${() => setCursors(cursors.slice(0, -1))}>Newer</button>
      <span class="muted small">page ${page + 1}</span>
      <button disabled=${!next} onClick=${() => setCursors([...cursors, next])}>Older</button>
    </div>
  </section>`;
}

// ---------------------------------------------------------------- one job

function Timeline({ job }: { job: Job }) {
  const steps: [string, string | null, boolean][] = [
    ['created', job.createdAt, true],
    ['started', job.startedAt, !!job.startedAt],
    [job.status === 'failed' ? 'failed' : job.status === 'canceled' ? 'canceled' : 'finished', job.finishedAt, !!job.finishedAt],
  ];
  return html`<ol class="timeline">${steps.map(([name, at, done]) => html`<li class=${done ? 'done' : ''}><b>${name}</b> <span class="small muted">${done ? when(at) : '…'}</span></li>`)}</ol>`;
}

/** Trials of a goal search as a scatter: latency ratio (x) against the metric's loss (y); frontier points filled. */
function Frontier({ trials, frontier }: { trials: Trial[]; frontier: Set<number> }) {
  const pts = trials.filter((t) => t.latencyRatio != null && t.loss != null);
  if (pts.length === 0) return html`<p class="muted small">No timed trial yet: the chart fills in as trials that meet the goal are timed.</p>`;
  const W = 520, H = 260, m = { l: 52, r: 12, t: 12, b: 36 };
  const xs = pts.map((t) => t.latencyRatio!), ys = pts.map((t) => t.loss!);
  const [x0, x1] = [Math.min(0, ...xs), Math.max(1.05, ...xs)];
  const [y0, y1] = [Math.min(0, ...ys), Math.max(1e-3, ...ys) * 1.1];
  const X = (v: number) => m.l + ((v - x0) / (x1 - x0)) * (W - m.l - m.r);
  const Y = (v: number) => H - m.b - ((v - y0) / (y1 - y0)) * (H - m.t - m.b);
  return html`<svg class="frontier" data-chart="frontier" viewBox=${`0 0 ${W} ${H}`} role="img" aria-label="trials: latency against loss">
    <line class="axis" x1=${m.l} y1=${H - m.b} x2=${W - m.r} y2=${H - m.b} /><line class="axis" x1=${m.l} y1=${m.t} x2=${m.l} y2=${H - m.b} />
    <line class="ref" x1=${X(1)} y1=${m.t} x2=${X(1)} y2=${H - m.b} />
    <text x=${(W + m.l) / 2} y=${H - 6} text-anchor="middle">latency vs original (×)</text>
    <text x="12" y=${(H - m.b) / 2} transform=${`rotate(-90 12 ${(H - m.b) / 2})`} text-anchor="middle">loss</text>
    <text x=${X(1)} y=${H - m.b + 14} text-anchor="middle" class="small">1×</text>
    ${pts.map((t) => html`<circle cx=${X(t.latencyRatio!)} cy=${Y(t.loss!)} r=${frontier.has(t.n) ? 6 : 4} class=${frontier.has(t.n) ? 'pt frontier' : 'pt'}><title>trial ${t.n}: ${t.latencyRatio!.toFixed(3)}×, loss ${t.loss!.toFixed(4)}</title></circle>`)}
  </svg>`;
}

function SearchView({ job }: { job: Job }) {
  const [trials, setTrials] = useState<Trial[]>([]);
  const [frontier, setFrontier] = useState<Set<number>>(new Set());
  useEffect(() => {
    let alive = true;
    const load = async () => {
      const all: Trial[] = [];
      let cursor: string | null = null;
      do {
        const r: { items: Trial[]; nextCursor: string | null } = await api(`/v1/jobs/${job.id}/trials?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
        all.push(...r.items);
        cursor = r.nextCursor;
      } while (cursor);
      if (!alive) return;
      setTrials(all);
      // while running, the frontier so far: timed trials that meet the goal and no other beats on both loss and latency
      const final = all.filter((t) => t.frontier).map((t) => t.n);
      const timed = all.filter((t) => t.status === 'meets' && t.latencyRatio != null && t.loss != null);
      const sofar = timed.filter((a) => !timed.some((b) => b !== a && b.latencyRatio! <= a.latencyRatio! && b.loss! <= a.loss! && (b.latencyRatio! < a.latencyRatio! || b.loss! < a.loss!))).map((t) => t.n);
      setFrontier(new Set(final.length ? final : sofar));
    };
    load().catch(() => {});
    const t = finished(job) ? null : setInterval(() => void load().catch(() => {}), 3000);
    return () => {
      alive = false;
      if (t) clearInterval(t);
    };
  }, [job.id, job.status]);
  const s = job.progress.search;
  return html`<section class="search">
    <h3>Goal search</h3>
    ${s && html`<p class="small">${s.phase ?? ''} ${s.trial !== undefined ? `· trial ${s.trial}${s.maxTrials ? ` of at most ${s.maxTrials}` : ''}` : ''} ${s.best ? `· best so far: trial ${s.best.trial}, loss ${s.best.loss?.toFixed(4) ?? '—'}, latency ${s.best.latencyRatio?.toFixed(3) ?? '—'}×` : ''}</p>`}
    <${Frontier} trials=${trials} frontier=${frontier} />
    <table class="trials"><thead><tr><th>trial</th><th>steps</th><th>status</th><th>loss</th><th>latency</th><th>size</th></tr></thead>
      <tbody>${trials.map((t) => html`<tr data-trial=${t.n} class=${frontier.has(t.n) ? 'frontier' : ''}><td>${t.n}</td><td class="mono">${t.steps.map((x) => x.pass).join(' → ') || '(original)'}</td><td>${t.status}${t.reason ? html`<div class="small muted">${t.reason}</div>` : ''}</td><td>${t.loss?.toFixed(4) ?? '—'}</td><td>${t.latencyRatio != null ? `${t.latencyRatio.toFixed(3)}×` : '—'}</td><td>${t.sizeRatio != null ? `${t.sizeRatio.toFixed(3)}×` : '—'}</td></tr>`)}</tbody>
    </table>
  </section>`;
}

/** The HTML report, fetched with the key and shown in a frame that runs no scripts. */
function ReportFrame({ job }: { job: Job }) {
  const [text, setText] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api<string>(`/v1/jobs/${job.id}/report.html`).then(setText).catch((e) => setError(errorText(e)));
  }, [job.id]);
  if (error) return html`<p class="error">${error}</p>`;
  return text !== null ? html`<iframe class="report" title="compression report" sandbox="" srcdoc=${text}></iframe>` : html`<p class="muted">loading the report…</p>`;
}

function JobPage({ id }: { id: string }) {
  const [job, setJob] = useState<Job | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [log, setLog] = useState<{ at: number; text: string }[]>([]);
  const [isGoal, setIsGoal] = useState(false);
  const [deleted, setDeleted] = useState(false);
  const lastLine = useRef('');
  const seen = (j: Job) => {
    setJob(j);
    if (j.progress.search) setIsGoal(true);
    const text = `${j.status}${j.progress.stepName ? ` · ${j.progress.step ?? ''}/${j.progress.steps ?? ''} ${j.progress.stepName}` : ''}${j.progress.message ? ` — ${j.progress.message}` : ''}`;
    if (text !== lastLine.current) {
      lastLine.current = text;
      setLog((l) => [...l.slice(-199), { at: Date.now(), text }]);
    }
  };
  const load = async () => seen(await api<Job>(`/v1/jobs/${id}`));
  useEffect(() => {
    load().catch((e) => setError(errorText(e)));
    api<{ kind?: string }>(`/v1/jobs/${id}/report`).then((r) => setIsGoal((g) => g || r.kind === 'search-in-progress' || 'search' in r)).catch(() => {});
    return watchJobs((j) => j.id === id && seen(j), load, (gone) => gone === id && setDeleted(true));
  }, [id]);
  if (deleted) return html`<p class="error deleted" role="alert">This job was deleted. <a href="#/jobs">Back to the jobs</a>.</p>`;
  if (error) return html`<p class="error" role="alert">${error}</p>`;
  if (!job) return html`<p class="muted">loading…</p>`;
  const left = timeLeft(job);
  const cancel = async () => {
    if (!confirm('Cancel this job?')) return;
    try {
      seen(await api<Job>(`/v1/jobs/${id}/cancel`, { method: 'POST' }));
    } catch (e) {
      setError(errorText(e));
    }
  };
  const remove = async () => {
    if (!confirm(finished(job) ? 'Delete this job, its model outputs and its report?' : 'Cancel this job and delete it with everything it made so far?')) return;
    try {
      await api(`/v1/jobs/${id}`, { method: 'DELETE' });
      navigate('#/jobs');
    } catch (e) {
      setError(errorText(e));
    }
  };
  const canDownload = job.status === 'succeeded' || !!job.bestSoFar;
  return html`<section class="job" data-job=${job.id}>
    <div class="toolbar"><h2>Job <span class="mono small">${job.id}</span></h2> <${Status} status=${job.status} /></div>
    <dl class="meta">
      <dt>model</dt><dd>${job.modelFilename ?? job.modelId}</dd>
      <dt>recipe</dt><dd>${job.recipeName ?? '—'}</dd>
      <dt>attempt</dt><dd>${job.attempt}</dd>
      <dt>duration</dt><dd>${jobDuration(job)}</dd>
    </dl>
    <${Timeline} job=${job} />
    ${!finished(job) && html`<div class="live">
      <${Bar} percent=${job.progress.percent} label="job progress" />
      <p><b class="percent">${Math.round(job.progress.percent)}%</b> ${job.progress.stepName ? `step ${job.progress.step}/${job.progress.steps}: ${job.progress.stepName}` : ''} ${job.progress.message ? `— ${job.progress.message}` : ''} ${left ? html`<span class="muted">(${left})</span>` : ''}</p>
      <button class="danger" onClick=${cancel} disabled=${job.cancelRequested}>${job.cancelRequested ? 'Cancel requested…' : 'Cancel job'}</button>
    </div>`}
    ${job.error && html`<div class="error" role="alert"><b>${job.error.code}</b>: ${job.error.message}</div>`}
    ${(job.metrics?.warningMessages ?? []).length > 0 && html`<ul class="warn warnings">${job.metrics!.warningMessages!.map((w) => html`<li>${w}</li>`)}</ul>`}
    <div class="downloads">
      <button disabled=${!canDownload} onClick=${() => download(job.links.artifact!, 'model.onnx').catch((e) => setError(errorText(e)))}>Download ${job.status === 'succeeded' ? 'model' : 'best so far'}</button>
      <button disabled=${!canDownload} onClick=${() => download(job.links.report!, `${job.id}.report.json`).catch((e) => setError(errorText(e)))}>Download JSON report</button>
      <button disabled=${job.status !== 'succeeded'} onClick=${() => download(job.links.reportHtml!, `${job.id}.report.html`).catch((e) => setError(errorText(e)))}>Download HTML report</button>
      <button class="danger delete" onClick=${remove}>Delete job</button>
    </div>
    <details open=${!finished(job)}><summary>Log (${log.length} lines)</summary><pre class="log">${log.map((l) => `${new Date(l.at).toLocaleTimeString()}  ${l.text}`).join('\n')}</pre></details>
    ${isGoal && html`<${SearchView} job=${job} />`}
    ${job.status === 'succeeded' && html`<h3>Report</h3><${ReportFrame} job=${job} />`}
  </section>`;
}

// ---------------------------------------------------------------- new job

interface Validation {
  valid: boolean;
  problems: { path: string; message: string }[];
  steps: { pass: string; calibration: 'required' | 'used' | 'none' }[];
  goal: boolean;
  needsLabels: boolean;
}

const FILE_FIELDS = [
  ['model', 'Model', '.onnx, or a .zip/.tar/.tar.gz bundle with its external data'],
  ['calibration', 'Calibration data', '.npz/.npy/.json keyed by input name: what data-driven passes tune on'],
  ['evaluation', 'Evaluation data', 'judges each step (and a goal); never used for tuning when calibration data is given'],
  ['labels', 'Labels', '.npy/.json, one per evaluation sample: task metrics (top-1…)'],
] as const;

function DropZone({ field, label, hint, file, onFile }: { field: string; label: string; hint: string; file: File | null; onFile: (f: File | null) => void }) {
  const [over, setOver] = useState(false);
  return html`<label class=${`drop${over ? ' over' : ''}${file ? ' has' : ''}`} data-field=${field}
      onDragOver=${(e: DragEvent) => { e.preventDefault(); setOver(true); }}
      onDragLeave=${() => setOver(false)}
      onDrop=${(e: DragEvent) => { e.preventDefault(); setOver(false); onFile(e.dataTransfer?.files?.[0] ?? null); }}>
    <b>${label}</b> <span class="small muted">${hint}</span>
    <div>${file ? html`<span class="mono">${file.name}</span> <span class="small">(${bytes(file.size)})</span>` : html`<span class="muted">drop a file here, or click to choose</span>`}</div>
    <input type="file" name=${field} onChange=${(e: Event) => onFile((e.target as HTMLInputElement).files?.[0] ?? null)} />
  </label>`;
}

function NewJob({ modelId }: { modelId: string | null }) {
  const [templates, setTemplates] = useState<{ file: string; name: string; recipe: unknown }[]>([]);
  const [text, setText] = useState('');
  const [files, setFiles] = useState<Record<string, File | null>>({});
  const [check, setCheck] = useState<Validation | null>(null);
  const [sent, setSent] = useState<{ loaded: number; total: number } | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api<{ items: { file: string; name: string; recipe: unknown }[] }>('/v1/recipes').then((r) => {
      setTemplates(r.items);
      const first = r.items.find((t) => t.file === 'int8-dynamic.json') ?? r.items[0];
      if (first && !text) setText(JSON.stringify(first.recipe, null, 2));
    });
  }, []);
  // live validation, by the API's own recipe parser
  useEffect(() => {
    const t = setTimeout(() => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text || '{}');
      } catch (e) {
        setCheck({ valid: false, problems: [{ path: '', message: `not valid JSON: ${(e as Error).message}` }], steps: [], goal: false, needsLabels: false });
        return;
      }
      api<Validation>('/v1/recipes/validate', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ recipe: parsed }) })
        .then(setCheck)
        .catch((e) => setCheck({ valid: false, problems: [{ path: '', message: errorText(e) }], steps: [], goal: false, needsLabels: false }));
    }, 250);
    return () => clearTimeout(t);
  }, [text]);
  // what the data must include, before anything is sent
  const dataProblems = useMemo(() => {
    const out: string[] = [];
    if (!check?.valid) return out;
    const hasCalib = !!files.calibration || !!files.evaluation;
    check.steps.forEach((s, i) => {
      if (s.calibration === 'required' && !hasCalib) out.push(`step ${i + 1} (${s.pass}) needs calibration data: add a calibration file (or set allowSynthetic: true in the step)`);
    });
    if (check.goal && !files.evaluation) out.push('a goal is judged on data: add evaluation data');
    if (check.needsLabels && !files.labels) out.push("the goal's metric is measured against labels: add labels");
    if (!modelId && !files.model) out.push('choose a model');
    return out;
  }, [check, files, modelId]);
  const warnings = useMemo(() => (check?.valid && !files.calibration && files.evaluation && check.steps.some((s) => s.calibration !== 'none') ? ['no calibration data: the data-driven steps will tune on the evaluation data, and the report will say their accuracy is measured on data they were tuned on'] : []), [check, files]);
  const submit = async () => {
    setError(null);
    try {
      let job: Job;
      if (modelId && !files.model) {
        job = await api<Job>('/v1/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ modelId, recipe: JSON.parse(text) }) });
      } else {
        const form = new FormData();
        form.append('recipe', text);
        for (const [k, f] of Object.entries(files)) if (f) form.append(k, f, f.name);
        setSent({ loaded: 0, total: 1 });
        job = await uploadForm<Job>('/v1/jobs', form, (loaded, total) => setSent({ loaded, total }));
      }
      navigate(`#/jobs/${job.id}`);
    } catch (e) {
      setSent(null);
      setError(errorText(e));
    }
  };
  const byPath = new Map<string, string[]>();
  for (const p of check?.problems ?? []) byPath.set(p.path, [...(byPath.get(p.path) ?? []), p.message]);
  return html`<section class="newjob">
    <h2>New job</h2>
    ${modelId && html`<p>Model <span class="mono">${modelId}</span> (stored). Drop another model below to use that instead.</p>`}
    <div class="drops">${FILE_FIELDS.map(([field, label, hint]) => html`<${DropZone} field=${field} label=${label} hint=${hint} file=${files[field] ?? null} onFile=${(f: File | null) => setFiles({ ...files, [field]: f })} />`)}</div>
    <div class="recipe">
      <div class="toolbar"><h3>Recipe</h3>
        <label>start from <select onChange=${(e: Event) => { const t = templates.find((x) => x.file === (e.target as HTMLSelectElement).value); if (t) setText(JSON.stringify(t.recipe, null, 2)); }}>
          ${templates.map((t) => html`<option value=${t.file} selected=${t.file === 'int8-dynamic.json'}>${t.name}</option>`)}
        </select></label>
        <a href="/docs" target="_blank" class="small">API docs</a>
      </div>
      <textarea class="mono" rows="16" spellcheck="false" aria-label="recipe JSON" value=${text} onInput=${(e: Event) => setText((e.target as HTMLTextAreaElement).value)}></textarea>
      <div class="check" aria-live="polite">
        ${check?.valid && html`<p class="ok">Recipe is valid: ${check.steps.map((s) => s.pass).join(' → ') || 'goal search'}</p>`}
        ${check && !check.valid && html`<ul class="problems">${[...byPath].map(([path, msgs]) => html`<li data-path=${path}><code>${path || '/'}</code> ${msgs.join('; ')}</li>`)}</ul>`}
      </div>
    </div>
    ${dataProblems.length > 0 && html`<ul class="problems data">${dataProblems.map((p) => html`<li>${p}</li>`)}</ul>`}
    ${warnings.map((w) => html`<p class="warn">${w}</p>`)}
    ${sent && html`<div class="upload"><${Bar} percent=${(100 * sent.loaded) / Math.max(1, sent.total)} label="upload" /> <span class="small">uploading ${bytes(sent.loaded)} of ${bytes(sent.total)}</span></div>`}
    ${error && html`<p class="error" role="alert">${error}</p>`}
    <button class="primary" disabled=${!check?.valid || dataProblems.length > 0 || !!sent} onClick=${submit}>Start job</button>
  </section>`;
}

// ---------------------------------------------------------------- models

interface ModelSummary {
  params: number;
  nodes: number;
  producer: string;
  opsets: Record<string, number>;
  inputs: { name: string; dtype: string; shape: (number | string)[] | null }[];
  outputs: { name: string; dtype: string; shape: (number | string)[] | null }[];
  opTypes: Record<string, number>;
  quantization: unknown;
}

const io = (vs: ModelSummary['inputs']) => vs.map((v) => `${v.name}: ${v.dtype}[${(v.shape ?? []).join(', ')}]`).join('; ');

/** The model's inspect summary, fetched when opened. */
function Summary({ id }: { id: string }) {
  const [s, setS] = useState<ModelSummary | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api<ModelSummary>(`/v1/models/${id}/summary`).then(setS).catch((e) => setError(errorText(e)));
  }, [id]);
  if (error) return html`<p class="muted small">${error}</p>`;
  if (!s) return html`<p class="muted small">reading the model…</p>`;
  const ops = Object.entries(s.opTypes).sort((a, b) => b[1] - a[1]);
  return html`<dl class="meta summary">
    <dt>inputs</dt><dd class="mono">${io(s.inputs)}</dd>
    <dt>outputs</dt><dd class="mono">${io(s.outputs)}</dd>
    <dt>parameters</dt><dd>${s.params.toLocaleString()}</dd>
    <dt>nodes</dt><dd>${s.nodes} (${ops.slice(0, 8).map(([k, n]) => `${k} ${n}`).join(', ')}${ops.length > 8 ? ', …' : ''})</dd>
    <dt>opsets</dt><dd>${Object.entries(s.opsets).map(([d, v]) => `${d || 'ai.onnx'} ${v}`).join(', ')}</dd>
    <dt>producer</dt><dd>${s.producer || '—'}</dd>
    <dt>quantized</dt><dd>${s.quantization ? 'already (some layers)' : 'no'}</dd>
  </dl>`;
}

function ModelsPage() {
  const [models, setModels] = useState<StoredModel[]>([]);
  const [open, setOpen] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api<{ items: StoredModel[] }>('/v1/models').then((r) => setModels(r.items)).catch((e) => setError(errorText(e)));
  }, []);
  const remove = async (m: StoredModel) => {
    if (!confirm(`Delete ${m.filename ?? 'this model'}?`)) return;
    setError(null);
    const gone = () => setModels((list) => list.filter((x) => x.id !== m.id));
    try {
      await api(`/v1/models/${m.id}`, { method: 'DELETE' });
      gone();
    } catch (e) {
      // finished jobs refer to it: deleting them too is the user's call; unfinished ones must end first
      const jobs = e instanceof ApiError && e.problem.code === 'model_in_use' ? e.problem.errors ?? [] : [];
      const onlyFinished = jobs.length > 0 && jobs.every((j) => FINISHED.has(j.message));
      if (!onlyFinished) return setError(errorText(e));
      if (!confirm(`${jobs.length} finished job${jobs.length > 1 ? 's use' : ' uses'} this model. Delete the model with ${jobs.length > 1 ? 'those jobs and their' : 'that job and its'} results?`)) return;
      try {
        await api(`/v1/models/${m.id}?cascade=jobs`, { method: 'DELETE' });
        gone();
      } catch (again) {
        setError(errorText(again));
      }
    }
  };
  return html`<section>
    <h2>Models</h2>
    <p class="muted small">Every model you uploaded, once per content (identical uploads are one model).</p>
    ${error && html`<p class="error">${error}</p>`}
    <table class="models"><thead><tr><th>file</th><th>size</th><th>sha256</th><th>uploaded</th><th></th></tr></thead>
      <tbody>${models.map((m) => html`<tr data-model=${m.id}><td><button class="link" onClick=${() => setOpen(open === m.id ? null : m.id)}>${m.filename ?? '(unnamed)'}</button>${open === m.id && html`<${Summary} id=${m.id} />`}</td><td>${bytes(m.sizeBytes)}</td><td class="mono small">${m.sha256.slice(0, 16)}…</td><td class="small">${when(m.createdAt)}</td><td><a class="button" href=${`#/new?model=${m.id}`}>New job from this model</a> <button class="danger delete" onClick=${() => remove(m)}>Delete</button></td></tr>`)}
      ${models.length === 0 && html`<tr><td colspan="5" class="muted">No models yet: they are stored when you start a job.</td></tr>`}</tbody>
    </table>
  </section>`;
}

// ---------------------------------------------------------------- the app

function App() {
  const [signedIn, setSignedIn] = useState(!!getKey());
  const hash = useHash();
  if (!signedIn) return html`<${SignIn} onSignedIn=${() => setSignedIn(true)} />`;
  const [path, query] = hash.slice(1).split('?');
  const params = new URLSearchParams(query ?? '');
  let page;
  const job = /^\/jobs\/([0-9a-f-]{36})$/.exec(path ?? '');
  if (job) page = html`<${JobPage} id=${job[1]} key=${job[1]} />`;
  else if (path === '/new') page = html`<${NewJob} modelId=${params.get('model')} />`;
  else if (path === '/models') page = html`<${ModelsPage} />`;
  else page = html`<${JobsPage} />`;
  return html`<div>
    <header class="top"><a href="#/jobs" class="brand">modelpress</a>
      <nav><a href="#/jobs">Jobs</a><a href="#/new">New job</a><a href="#/models">Models</a><a href="/docs" target="_blank">API</a></nav>
      <button class="link" onClick=${() => { clearKey(); setSignedIn(false); }}>Sign out</button></header>
    <main>${page}</main>
  </div>`;
}

render(html`<${App} />`, document.getElementById('app')!);
