// `modelpress submit`: the service's client. Uploads a model, its data and a recipe (streamed, with a
// progress bar), follows the job with its progress and the time left, downloads the artifact and the
// reports, and exits like `compress`: 0 succeeded, 2 the job or request was refused for a reason the
// user can fix, 1 anything else. Ctrl-C asks whether to cancel the job on the server.
import { createReadStream, createWriteStream, mkdirSync, renameSync, statSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ERROR_CODES, InvalidInputError, ModelpressError, type ErrorCode } from '../errors.js';
import { formatBytes } from '../format.js';

export interface SubmitOptions {
  /** Upload these and create a job, or follow an existing job (`job`). */
  model?: string;
  recipe?: string;
  job?: string;
  server: string;
  key: string;
  calibration?: string;
  data?: string;
  labels?: string;
  timeoutMs?: number;
  wait: boolean;
  out?: string;
  report?: string;
  reportHtml?: string;
  quiet: boolean;
  /** Seconds between status requests while waiting. */
  pollSeconds: number;
  /** With `job`: delete it on the server (a job still running is canceled first). */
  delete?: boolean;
}

interface JobView {
  id: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed' | 'canceled';
  startedAt: string | null;
  progress: { percent: number; step: number | null; steps: number | null; stepName: string | null; message: string | null; search?: { trial?: number; maxTrials?: number; remainingMs?: number } | null };
  error: { code: string; message: string } | null;
  links: Record<string, string>;
}

interface Problem {
  code?: string;
  detail?: string;
  errors?: { path: string; message: string }[];
}

/** A refusal or failure from the server, with the code it gave (its exit code follows from the code). */
class RemoteError extends ModelpressError {}

const say = (quiet: boolean, line: string) => {
  if (!quiet) process.stderr.write(`${line}\n`);
};

function bar(fraction: number, width = 24): string {
  const n = Math.round(Math.max(0, Math.min(1, fraction)) * width);
  return `[${'#'.repeat(n)}${'.'.repeat(width - n)}]`;
}

function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m` : s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}

/** The multipart body as a stream of known length, counting the bytes sent (for the progress bar). */
function multipartBody(fields: Record<string, string>, files: Record<string, string>, onBytes: (sent: number, total: number) => void): { body: Readable; type: string; length: number } {
  const boundary = `----modelpress${Math.random().toString(16).slice(2)}`;
  const parts: (Buffer | { path: string; size: number })[] = [];
  for (const [name, value] of Object.entries(fields)) {
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`));
  }
  for (const [name, path] of Object.entries(files)) {
    const filename = basename(path).replace(/["\r\n]/g, '_');
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"; filename="${filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`));
    parts.push({ path, size: statSync(path).size });
    parts.push(Buffer.from('\r\n'));
  }
  parts.push(Buffer.from(`--${boundary}--\r\n`));
  const length = parts.reduce((n, p) => n + (Buffer.isBuffer(p) ? p.length : p.size), 0);
  let sent = 0;
  async function* chunks(): AsyncGenerator<Buffer> {
    for (const p of parts) {
      if (Buffer.isBuffer(p)) {
        sent += p.length;
        yield p;
      } else {
        for await (const c of createReadStream(p.path, { highWaterMark: 1 << 20 })) {
          sent += (c as Buffer).length;
          onBytes(sent, length);
          yield c as Buffer;
        }
      }
    }
    onBytes(sent, length);
  }
  return { body: Readable.from(chunks()), type: `multipart/form-data; boundary=${boundary}`, length };
}

/** A code the server sent, as ours (an unknown one is treated as internal). */
const knownCode = (code: string | undefined): ErrorCode | undefined => (code && code in ERROR_CODES ? (code as ErrorCode) : undefined);

/** The exit code `compress` gives for the same error code: 2 for what the user can fix, else 1. */
const exitCodeOf = (code: string | undefined): 1 | 2 => ERROR_CODES[knownCode(code) ?? 'internal'].exitCode;

function remoteError(status: number, problem: Problem, fallback: string): RemoteError {
  const code = knownCode(problem.code) ?? (status === 401 ? 'unauthorized' : status >= 500 ? 'internal' : 'invalid_input');
  const where = problem.errors?.length ? ` (${problem.errors.map((e) => `${e.path}: ${e.message}`).join('; ')})` : '';
  return new RemoteError(code, `${problem.detail ?? fallback}${where}`);
}

class Client {
  constructor(
    readonly server: string,
    readonly key: string,
  ) {}

  async request(path: string, init: RequestInit & { duplex?: 'half' } = {}): Promise<Response> {
    let res: Response;
    try {
      res = await fetch(new URL(path, this.server), { ...init, headers: { authorization: `Bearer ${this.key}`, ...(init.headers as Record<string, string> | undefined) } });
    } catch (err) {
      throw new InvalidInputError(`cannot reach the server at ${this.server} (${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}); check --server or MODELPRESS_SERVER`);
    }
    if (!res.ok) {
      const problem = ((await res.json().catch(() => ({}))) ?? {}) as Problem;
      throw remoteError(res.status, problem, `${init.method ?? 'GET'} ${path}: HTTP ${res.status}`);
    }
    return res;
  }

  async job(id: string): Promise<JobView> {
    return (await (await this.request(`/v1/jobs/${id}`)).json()) as JobView;
  }

  /** Downloads to `path` through a temp file, so a cut download never leaves a partial file at `path`. */
  async download(path: string, target: string): Promise<number> {
    const res = await this.request(path);
    mkdirSync(dirname(resolve(target)), { recursive: true });
    const tmp = `${target}.part`;
    await pipeline(Readable.fromWeb(res.body as import('node:stream/web').ReadableStream), createWriteStream(tmp));
    renameSync(tmp, target);
    return statSync(target).size;
  }
}

function progressLine(job: JobView): string {
  const p = job.progress;
  const pct = Math.max(0, Math.min(100, p.percent ?? 0));
  const step = p.steps ? `step ${p.step ?? 0}/${p.steps}${p.stepName ? ` ${p.stepName}` : ''}` : (p.stepName ?? '');
  let left = '';
  if (p.search?.remainingMs !== undefined) left = `, ${duration(p.search.remainingMs)} of the search budget left`;
  else if (job.startedAt && pct >= 2 && pct < 100) {
    const elapsed = Date.now() - Date.parse(job.startedAt);
    left = `, about ${duration((elapsed * (100 - pct)) / pct)} left`;
  }
  const trial = p.search?.trial !== undefined ? `, trial ${p.search.trial}${p.search.maxTrials ? ` of at most ${p.search.maxTrials}` : ''}` : '';
  return `${job.status} ${bar(pct / 100)} ${pct.toFixed(0)}% ${step}${p.message ? ` — ${p.message}` : ''}${trial}${left}`;
}

/** Asks on the terminal; without one (a pipe, CI) the answer is no: the job keeps running. */
async function ask(question: string): Promise<boolean> {
  if (!process.stdin.isTTY) return false;
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await new Promise<string>((r) => rl.question(question, r));
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

export async function submit(o: SubmitOptions): Promise<number> {
  const client = new Client(o.server, o.key);
  if (o.delete && o.job) {
    await client.request(`/v1/jobs/${o.job}`, { method: 'DELETE' });
    say(o.quiet, `job ${o.job} deleted, with its models and reports`);
    return 0;
  }
  const created = o.job ? await client.job(o.job) : await create(client, o);
  if (!o.job) say(o.quiet, `job ${created.id} queued: ${new URL(created.links.self!, o.server).href}`);
  if (!o.wait) {
    process.stdout.write(`${created.id}\n`);
    return 0;
  }
  return follow(client, created, o);
}

async function create(client: Client, o: SubmitOptions): Promise<JobView> {
  const files: Record<string, string> = { model: o.model! };
  if (o.calibration) files.calibration = o.calibration;
  if (o.data) files.evaluation = o.data;
  if (o.labels) files.labels = o.labels;
  for (const [field, path] of Object.entries(files)) {
    try {
      if (!statSync(path).isFile()) throw new Error('not a file');
    } catch {
      throw new InvalidInputError(`${field === 'model' ? 'model' : `--${field === 'evaluation' ? 'data' : field}`}: no such file '${path}'`);
    }
  }
  const fields: Record<string, string> = { recipe: o.recipe! };
  if (o.timeoutMs !== undefined) fields.timeoutMs = String(o.timeoutMs);
  let lastDraw = 0;
  const upload = multipartBody(fields, files, (sent, total) => {
    const now = Date.now();
    if (o.quiet || (now - lastDraw < 200 && sent < total)) return;
    lastDraw = now;
    process.stderr.write(`\ruploading ${bar(sent / total)} ${formatBytes(sent)} of ${formatBytes(total)}${sent >= total ? '\n' : ''}`);
  });
  return (await (
    await client.request('/v1/jobs', { method: 'POST', body: upload.body as unknown as RequestInit['body'], duplex: 'half', headers: { 'content-type': upload.type, 'content-length': String(upload.length) } })
  ).json()) as JobView;
}

/** Follows a job to its end (Ctrl-C offers to cancel it on the server), then fetches what it made. */
async function follow(client: Client, created: JobView, o: SubmitOptions): Promise<number> {
  let interrupted = 0;
  let leave = false;
  const onSigint = () => {
    interrupted++;
    if (interrupted > 1) {
      say(false, `\nleaving; job ${created.id} keeps running on the server`);
      process.exit(130);
    }
    void ask(`\ncancel job ${created.id} on the server? [y/N] `).then(async (yes) => {
      if (yes) {
        await client.request(`/v1/jobs/${created.id}/cancel`, { method: 'POST' }).catch(() => {});
        say(false, 'cancel requested; waiting for the job to stop');
      } else {
        say(false, `job ${created.id} keeps running; follow it again with: modelpress submit --job ${created.id} --wait --out …`);
        leave = true;
      }
      interrupted = 0;
    });
  };
  process.on('SIGINT', onSigint);
  let job = created;
  let lastLine = '';
  try {
    while (!['succeeded', 'failed', 'canceled'].includes(job.status)) {
      if (leave) return 130;
      await new Promise((r) => setTimeout(r, o.pollSeconds * 1000));
      job = await client.job(created.id);
      const line = progressLine(job);
      if (line !== lastLine) say(o.quiet, line);
      lastLine = line;
    }
  } finally {
    process.off('SIGINT', onSigint);
  }

  // ---- the outcome
  if (job.status === 'failed') {
    const code = job.error?.code ?? 'internal';
    say(false, `job ${job.id} failed [${code}]: ${job.error?.message ?? ''}`);
    return exitCodeOf(code);
  }
  if (job.status === 'canceled') {
    say(false, `job ${job.id} was canceled`);
    return 1;
  }
  if (o.out) say(o.quiet, `wrote ${o.out} (${formatBytes(await client.download(job.links.artifact!, o.out))})`);
  if (o.report) say(o.quiet, `wrote ${o.report} (${formatBytes(await client.download(job.links.report!, o.report))})`);
  if (o.reportHtml) say(o.quiet, `wrote ${o.reportHtml} (${formatBytes(await client.download(job.links.reportHtml!, o.reportHtml))})`);
  const summary = (await (await client.request(job.links.report!)).json()) as { final?: { sizeRatio?: number; latency?: { batch: number; ratio: number; verdict: string }[] }; warnings?: string[] };
  const lat = (summary.final?.latency ?? []).map((l) => `batch ${l.batch} ${l.ratio.toFixed(3)}× (${l.verdict})`).join(', ');
  process.stdout.write(`job ${job.id} succeeded: size ${summary.final?.sizeRatio?.toFixed(3) ?? '?'}× the original${lat ? `, latency ${lat}` : ''}\n`);
  for (const w of summary.warnings ?? []) process.stdout.write(`  warning: ${w}\n`);
  return 0;
}
