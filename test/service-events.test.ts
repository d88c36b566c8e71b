// GET /v1/jobs/events (server-sent events) on a real port, with a worker process, Postgres and Redis:
// the owner's stream follows a job from creation to succeeded, each event the job as GET /v1/jobs/{id}
// shows it; another owner's stream never sees it; Last-Event-ID and ?since= resume; a change committed
// after a newer one is still sent; a closed stream stops polling; no key → 401. Every wait is bounded, so a missing event fails the test, never hangs it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import { buildApp } from '../src/service/app.js';
import { MODELS } from './helpers.js';
import { BUSY_RECIPE, client, expectProblem, FAST_RECIPE, finished, jobApi, jobForm, type JobBody, startWorkerProcess, testService, waitFor, type TestService, type WorkerProcess } from './service-helpers.js';

let svc: TestService;
let app: FastifyInstance;
let worker: WorkerProcess;
let base: string;
let keyA: string;
let keyB: string;
const model = readFileSync(MODELS.fmnist);
const streams = new Set<EventStream>();

before(async () => {
  svc = await testService();
  app = await buildApp({ config: svc.config, forceCloseConnections: true });
  await app.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  keyA = await svc.newKey('a');
  keyB = await svc.newKey('b');
  worker = await startWorkerProcess(svc.env);
});

after(async () => {
  for (const s of streams) s.close();
  await worker?.stop();
  await app.queue.obliterate({ force: true }).catch(() => {});
  await app.close();
  await svc.close();
});

interface SseEvent {
  event: string;
  id: string | undefined;
  data: string;
}

/** An open event stream: its parsed events as they arrive, its comment lines and `retry:` field. */
interface EventStream {
  res: Response;
  events: SseEvent[];
  comments: string[];
  retry: number | null;
  /** Jobs of the `job` events, in order. */
  jobs(): JobBody[];
  /** The first `job` event at or after `from` whose job matches; fails after `timeoutMs`. */
  next(what: string, pred: (j: JobBody) => boolean, timeoutMs?: number, from?: number): Promise<JobBody>;
  close(): void;
}

/** Opens GET /v1/jobs/events and parses it in the background (the SSE format: blocks split by a blank line). */
async function openStream(key: string | undefined, opts: { query?: string; headers?: Record<string, string> } = {}): Promise<EventStream> {
  const controller = new AbortController();
  const res = await fetch(`${base}/v1/jobs/events${opts.query ?? ''}`, {
    headers: { accept: 'text/event-stream', ...(key ? { authorization: `Bearer ${key}` } : {}), ...opts.headers },
    signal: controller.signal,
  });
  const stream: EventStream = {
    res,
    events: [],
    comments: [],
    retry: null,
    jobs: () => stream.events.filter((e) => e.event === 'job').map((e) => JSON.parse(e.data) as JobBody),
    next: (what, pred, timeoutMs = 15_000, from = 0) =>
      waitFor(what, async () => stream.events.slice(from).filter((e) => e.event === 'job').map((e) => JSON.parse(e.data) as JobBody).find(pred), timeoutMs, 50),
    close: () => {
      controller.abort();
      streams.delete(stream);
    },
  };
  if (!res.ok || !res.body) return stream;
  streams.add(stream);
  void (async () => {
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += value;
        let cut: number;
        while ((cut = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const e: SseEvent = { event: 'message', id: undefined, data: '' };
          let hasData = false;
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) stream.comments.push(line.slice(1).trim());
            else if (line.startsWith('retry: ')) stream.retry = Number(line.slice(7));
            else if (line.startsWith('event: ')) e.event = line.slice(7);
            else if (line.startsWith('id: ')) e.id = line.slice(4);
            else if (line.startsWith('data: ')) {
              e.data += (hasData ? '\n' : '') + line.slice(6);
              hasData = true;
            }
          }
          if (hasData) stream.events.push(e);
        }
      }
    } catch {
      /* aborted */
    }
  })();
  return stream;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const RANK: Record<string, number> = { queued: 0, running: 1, succeeded: 2, failed: 2, canceled: 2 };

test('without a key, with a wrong one or a malformed ?since= → a problem+json, not a stream', async () => {
  let res = await fetch(`${base}/v1/jobs/events`, { headers: { accept: 'text/event-stream' } });
  await expectProblem(res, 401, 'unauthorized');
  assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer/);
  res = await fetch(`${base}/v1/jobs/events`, { headers: { authorization: `Bearer mp_0000000000000000_${'x'.repeat(43)}` } });
  await expectProblem(res, 401, 'unauthorized');
  res = await fetch(`${base}/v1/jobs/events?since=yesterday`, { headers: { authorization: `Bearer ${keyA}` } });
  await expectProblem(res, 400, 'invalid_input');
  res = await fetch(`${base}/v1/jobs/events?limit=5`, { headers: { authorization: `Bearer ${keyA}` } });
  await expectProblem(res, 400, 'invalid_input');
});

let jobA: string;
let eventsOfA: SseEvent[] = [];

test("the owner's stream follows a job from creation to succeeded; another owner's stream never sees it, and its own job not in the first", async () => {
  const sA = await openStream(keyA);
  const sB = await openStream(keyB);
  for (const s of [sA, sB]) {
    assert.equal(s.res.status, 200);
    assert.match(s.res.headers.get('content-type') ?? '', /^text\/event-stream/);
    assert.match(s.res.headers.get('cache-control') ?? '', /no-cache/);
  }
  await waitFor('the retry field', async () => sA.retry !== null && sB.retry !== null, 5000, 50);
  assert.equal(sA.retry, 3000);

  const apiA = jobApi(client(base, keyA));
  const apiB = jobApi(client(base, keyB));
  // A's job runs for several seconds (a benchmark): long enough to be seen running
  jobA = await apiA.create(jobForm(model, { ...BUSY_RECIPE, name: 'events-a' }));
  const first = (await sA.next("A's job, created", (j) => j.id === jobA, 10_000)) as JobBody & { recipeName: string | null; modelFilename: string | null };
  assert.ok(['queued', 'running'].includes(first.status), first.status);
  assert.equal(first.recipeName, 'events-a');
  assert.equal(first.modelFilename, 'model.onnx');
  // B's job: created behind A's and canceled at once
  const jobB = await apiB.create(jobForm(model, { ...BUSY_RECIPE, name: 'events-b' }));
  const canceled = await client(base, keyB).post(`/v1/jobs/${jobB}/cancel`);
  assert.ok([200, 202].includes(canceled.status), await canceled.clone().text()); // queued: canceled; running: requested

  await sA.next("A's job running", (j) => j.id === jobA && j.status === 'running', 60_000);
  const done = await sA.next("A's job finished", (j) => j.id === jobA && !['queued', 'running'].includes(j.status), 180_000);
  assert.equal(done.status, 'succeeded', JSON.stringify(done.error));
  assert.equal(done.progress.percent, 100);
  assert.ok(done.metrics && typeof done.metrics.sizeRatio === 'number', JSON.stringify(done.metrics));
  const endB = await sB.next("B's job canceled", (j) => j.id === jobB && j.status === 'canceled', 60_000);
  assert.equal(endB.cancelRequested, true);
  await sleep(2500); // two more polls: anything else that would come has come

  // each stream carries its owner's job only
  assert.deepEqual([...new Set(sA.jobs().map((j) => j.id))], [jobA]);
  assert.deepEqual([...new Set(sB.jobs().map((j) => j.id))], [jobB]);
  assert.ok(sA.events.every((e) => e.event === 'job'));

  // A's job, in order: statuses never go back, progress never drops, and the event ids (change times) never decrease
  const seen = sA.jobs();
  for (let i = 1; i < seen.length; i++) {
    assert.ok(RANK[seen[i]!.status]! >= RANK[seen[i - 1]!.status]!, seen.map((j) => j.status).join(' → '));
    assert.ok(seen[i]!.progress.percent >= seen[i - 1]!.progress.percent, seen.map((j) => j.progress.percent).join(' → '));
  }
  const statuses = [...new Set(seen.map((j) => j.status))];
  assert.ok(statuses.includes('running') && statuses.at(-1) === 'succeeded', statuses.join(' → '));
  assert.ok(seen.some((j) => j.status === 'running' && j.progress.percent > 0 && j.progress.percent < 100), 'progress while running');
  const times = sA.events.map((e) => Date.parse(e.id!));
  assert.ok(times.every((t) => Number.isFinite(t)), 'event ids are times');
  for (let i = 1; i < times.length; i++) assert.ok(times[i]! >= times[i - 1]!, sA.events.map((e) => e.id).join(', '));
  assert.equal(sA.jobs().filter((j) => j.status === 'succeeded').length, 1, 'a finished job is sent once');

  // the last event is the job as GET /v1/jobs/{id} shows it
  assert.deepEqual(seen.at(-1), await apiA.job(jobA));
  assert.deepEqual(sB.jobs().at(-1), await apiB.job(jobB));
  eventsOfA = [...sA.events];
  sA.close();
  sB.close();
});

test('resume: Last-Event-ID or ?since= replays what changed after it; a fresh stream starts from now', async () => {
  assert.ok(jobA && eventsOfA.length >= 2, 'the test before ran');
  const last = eventsOfA.at(-1)!;
  await sleep(1200); // the job's last change is more than a second old
  const fresh = await openStream(keyA);
  const beforeEnd = await openStream(keyA, { headers: { 'last-event-id': eventsOfA.at(-2)!.id! } });
  const since = await openStream(keyA, { query: `?since=${encodeURIComponent(new Date(Date.parse(eventsOfA[0]!.id!) - 1).toISOString())}` });
  const atEnd = await openStream(keyA, { headers: { 'last-event-id': last.id! } });
  for (const s of [beforeEnd, since]) {
    const j = await s.next('the job, replayed', (x) => x.id === jobA, 5000);
    assert.equal(j.status, 'succeeded');
    assert.equal(s.events[0]!.id, last.id, 'the change as it is now, with its time');
  }
  await sleep(2500);
  assert.deepEqual(fresh.jobs(), [], 'nothing older than a second on a fresh stream');
  assert.deepEqual(atEnd.jobs(), [], 'nothing after the last event seen');
  assert.equal(beforeEnd.jobs().length, 1);
  for (const s of [fresh, beforeEnd, since, atEnd]) s.close();
});

test('a stream closed by its client stops reading the database; one left open keeps polling', async () => {
  const key = await svc.newKey('closer');
  const owner = (await svc.dbh.db.apiKey.findFirstOrThrow({ where: { prefix: key.split('_')[1]! } })).ownerId;
  const calls: string[] = [];
  const changedSince = app.jobs.changedSince.bind(app.jobs);
  app.jobs.changedSince = (ownerId, since, limit) => {
    calls.push(ownerId);
    return changedSince(ownerId, since, limit);
  };
  try {
    const s = await openStream(key);
    await waitFor('two polls', async () => calls.filter((o) => o === owner).length >= 2, 5000, 50);
    s.close();
    await sleep(300);
    const atClose = calls.filter((o) => o === owner).length;
    await sleep(2500);
    assert.equal(calls.filter((o) => o === owner).length, atClose, 'no poll after the client went away');
  } finally {
    app.jobs.changedSince = changedSince;
  }
});

test('a change stamped before another but committed after it is still sent, once (a transaction stamps its row, then commits)', async () => {
  const key = await svc.newKey('late');
  const c = client(base, key);
  const api = jobApi(c);
  const a = await api.create(jobForm(model, { ...FAST_RECIPE, name: 'late-a' }));
  const b = await api.create(jobForm(model, { ...FAST_RECIPE, name: 'late-b' }));
  for (const id of [a, b]) assert.ok([200, 202].includes((await c.post(`/v1/jobs/${id}/cancel`)).status), 'canceled, or its cancel requested');
  // finished, so no worker writes them any more: the only changes are the two below
  for (const id of [a, b]) await api.until(id, finished, `job ${id} to finish`, 60_000);
  await sleep(1200);
  const s = await openStream(key);
  await waitFor('the stream to open', async () => s.retry !== null, 5000, 50);
  const message = (j: JobBody) => (j.progress as { message?: string | null }).message;
  const late = new pg.Client({ connectionString: svc.database.url });
  const other = new pg.Client({ connectionString: svc.database.url });
  await late.connect();
  await other.connect();
  try {
    // A is stamped first, in a transaction still open; B is stamped and committed after it, and sent
    await late.query('BEGIN');
    await late.query(`UPDATE jobs SET progress_message = 'late write', updated_at = clock_timestamp() WHERE id = $1`, [a]);
    await sleep(50);
    await other.query(`UPDATE jobs SET progress_message = 'early write', updated_at = clock_timestamp() WHERE id = $1`, [b]);
    await s.next("B's change", (j) => j.id === b && message(j) === 'early write', 5000);
    await sleep(1200); // a poll after B's: the stream's position is past A's stamp
    await late.query('COMMIT');
    const j = await s.next("A's change, committed after B's", (x) => x.id === a && message(x) === 'late write', 5000);
    assert.equal(j.status, (await api.job(a)).status);
  } finally {
    await late.end();
    await other.end();
  }
  await sleep(2500); // more polls read both changes again: neither is sent twice
  assert.deepEqual(s.jobs().map((j) => [j.id, message(j)]), [[b, 'early write'], [a, 'late write']]);
  s.close();
});

test('a deleted job is announced once as a `deleted` event to its owner only, and replayed to a stream resuming from before it', async () => {
  const key = await svc.newKey('deleting');
  const other = await svc.newKey('bystander');
  const c = client(base, key);
  const api = jobApi(c);
  const id = await api.create(jobForm(model, { ...FAST_RECIPE, name: 'to-delete' }));
  await api.until(id, finished, 'the job to finish', 60_000);
  const s = await openStream(key);
  const bystander = await openStream(other);
  await waitFor('the streams to open', async () => s.retry !== null && bystander.retry !== null, 5000, 50);
  const before = new Date(Date.now() - 10).toISOString();
  assert.equal((await c.delete(`/v1/jobs/${id}`)).status, 204);
  const deleted = () => s.events.filter((e) => e.event === 'deleted');
  await waitFor('the deleted event', async () => deleted().length > 0, 5000, 50);
  assert.deepEqual(JSON.parse(deleted()[0]!.data), { id });
  assert.ok(Number.isFinite(Date.parse(deleted()[0]!.id!)), 'its id is the deletion time');
  await sleep(2500); // more polls read the tombstone again: it is not sent twice
  assert.equal(deleted().length, 1);
  assert.deepEqual(bystander.events.filter((e) => e.event === 'deleted'), []);
  // a job changing well after the deletion: a stream resuming from before both replays the two
  await sleep(5500);
  const later = await api.create(jobForm(model, { ...FAST_RECIPE, name: 'after-the-deletion' }));
  await api.until(later, finished, 'the later job to finish', 60_000);
  const resumed = await openStream(key, { query: `?since=${encodeURIComponent(before)}` });
  await waitFor('the later job, replayed', async () => resumed.jobs().some((j) => j.id === later && finished(j)), 5000, 50);
  await waitFor('the deletion, replayed', async () => resumed.events.some((e) => e.event === 'deleted' && JSON.parse(e.data).id === id), 5000, 50);
  for (const x of [s, bystander, resumed]) x.close();
});
