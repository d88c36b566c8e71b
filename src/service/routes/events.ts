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
      try {
        while (!closed) {
          let wrote = false;
          // both reads start where the stream stood before this poll moved it
          const pollFrom = new Date(Math.max(floor, since.getTime() - LOOKBACK_MS));
          // a full page is read on from its last change, so changes sent already cannot fill every page
          for (let from = pollFrom; ; ) {
            const changed = await jobs.changedSince(req.ownerId, from, PAGE);
            for (const job of changed) {
              const at = job.updatedAt.getTime();
              if ((sent.get(job.id) ?? -Infinity) >= at) continue;
              res.write(`event: job\nid: ${job.updatedAt.toISOString()}\ndata: ${JSON.stringify(jobView(job, app.config))}\n\n`);
              sent.set(job.id, at);
              if (at > since.getTime()) since = job.updatedAt;
              wrote = true;
            }
            if (changed.length < PAGE || closed) break;
            from = changed[changed.length - 1]!.updatedAt;
          }
          // deleted jobs: an event a live view drops the job on (sent once each, like job changes)
          for (let from = pollFrom; ; ) {
            const gone = await jobs.deletedSince(req.ownerId, from, PAGE);
            for (const d of gone) {
              const key = `deleted:${d.jobId}`;
              if (sent.has(key)) continue;
              res.write(`event: deleted\nid: ${d.deletedAt.toISOString()}\ndata: ${JSON.stringify({ id: d.jobId })}\n\n`);
              sent.set(key, d.deletedAt.getTime());
              if (d.deletedAt.getTime() > since.getTime()) since = d.deletedAt;
              wrote = true;
            }
            if (gone.length < PAGE || closed) break;
            from = gone[gone.length - 1]!.deletedAt;
          }
          for (const [id, at] of sent) if (at < since.getTime() - LOOKBACK_MS) sent.delete(id);
          quietFor = wrote ? 0 : quietFor + POLL_MS;
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
