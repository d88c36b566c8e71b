// GET /v1/jobs/events: the owner's job changes as server-sent events, for live views (the web app's
// jobs list and job page). Each `job` event is the job as GET /v1/jobs/{id} shows it; the event id
// is its change time, so a client reconnecting with Last-Event-ID misses nothing. A `deleted` event
// ({ id }) names a job deleted (its tombstone is kept a day). Polling the
// database once a second per stream keeps workers and API decoupled (no pub/sub to keep in step).
import type { FastifyInstance } from 'fastify';
import { jobView } from './jobs.js';

const POLL_MS = 1000;
const HEARTBEAT_MS = 15_000;
/**
 * Each poll reads changes again this far back from the newest one sent: a change stamped before
 * another but committed after it (a transaction stamps its row, then commits; a process's clock a
 * little behind the database's) would otherwise be older than the stream's position when it becomes
 * visible, and never sent. What was sent already (the same job at the same change time) is not sent twice.
 */
const LOOKBACK_MS = 5000;
const PAGE = 100;

export default async function eventRoutes(app: FastifyInstance) {
  const { jobs } = app;
  const open = new Set<() => void>();
  // streams never end by themselves: close them when the server closes
  app.addHook('preClose', async () => {
    for (const end of open) end();
  });
  app.get(
    '/jobs/events',
    {
      schema: {
        summary: 'Your job changes as server-sent events (event `job`: the job as GET /v1/jobs/{id} shows it; event `deleted`: {"id"} of a job deleted)',
        description: 'Send `Last-Event-ID` (or `?since=` an ISO time) to resume; without it the stream starts with changes from the last second. Comment lines keep idle connections open.',
        tags: ['jobs'],
        security: [{ bearer: [] }],
        produces: ['text/event-stream'],
        querystring: { type: 'object', additionalProperties: false, properties: { since: { type: 'string', format: 'date-time' } } },
      },
    },
    async (req, reply) => {
      const resume = (req.headers['last-event-id'] as string | undefined) ?? (req.query as { since?: string }).since;
      let since = resume && !Number.isNaN(Date.parse(resume)) ? new Date(resume) : new Date(Date.now() - POLL_MS);
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache, no-transform', connection: 'keep-alive', 'x-accel-buffering': 'no' });
      res.write('retry: 3000\n\n');
      let closed = false;
      let wake: (() => void) | null = null;
      const end = () => {
        closed = true;
        wake?.();
      };
      open.add(end);
      req.raw.once('close', end);
      let quietFor = 0;
      // never before where the client asked to start; the change time last sent of each job in the lookback
      const floor = since.getTime();
      const sent = new Map<string, number>();
      /**
       * Sends what `read` returns from `start` on, page after page (a full page is read on from
       * its last stamp, so items sent already cannot fill every page); an item is sent again only
       * when its stamp moved (a job's change; a deletion's stamp never moves). Whether it sent anything.
       */
      const sendPages = async <T>(start: Date, read: (from: Date) => Promise<T[]>, stampOf: (item: T) => Date, keyOf: (item: T) => string, event: (item: T) => { name: string; data: unknown }): Promise<boolean> => {
        let wrote = false;
        for (let from = start; ; ) {
          const page = await read(from);
          for (const item of page) {
            const stamp = stampOf(item);
            const at = stamp.getTime();
            if ((sent.get(keyOf(item)) ?? -Infinity) >= at) continue;
            const { name, data } = event(item);
            res.write(`event: ${name}\nid: ${stamp.toISOString()}\ndata: ${JSON.stringify(data)}\n\n`);
            sent.set(keyOf(item), at);
            if (at > since.getTime()) since = stamp;
            wrote = true;
          }
          if (page.length < PAGE || closed) break;
          from = stampOf(page[page.length - 1]!);
        }
        return wrote;
      };
      try {
        while (!closed) {
          // both reads start where the stream stood before this poll moved it
          const pollFrom = new Date(Math.max(floor, since.getTime() - LOOKBACK_MS));
          const changes = await sendPages(pollFrom, (from) => jobs.changedSince(req.ownerId, from, PAGE), (job) => job.updatedAt, (job) => job.id, (job) => ({ name: 'job', data: jobView(job, app.config) }));
          // deleted jobs: an event a live view drops the job on
          const deletions = await sendPages(pollFrom, (from) => jobs.deletedSince(req.ownerId, from, PAGE), (d) => d.deletedAt, (d) => `deleted:${d.jobId}`, (d) => ({ name: 'deleted', data: { id: d.jobId } }));
          for (const [id, at] of sent) if (at < since.getTime() - LOOKBACK_MS) sent.delete(id);
          quietFor = changes || deletions ? 0 : quietFor + POLL_MS;
          if (quietFor >= HEARTBEAT_MS) {
            res.write(': still here\n\n');
            quietFor = 0;
          }
          await new Promise<void>((r) => {
            wake = r;
            setTimeout(r, POLL_MS).unref();
          });
        }
      } catch (err) {
        req.log.warn({ err }, 'job event stream ended by an error');
      } finally {
        open.delete(end);
        res.end();
      }
    },
  );
}
