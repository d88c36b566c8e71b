// A goal job's search over HTTP: its trials as they finish (cursor pagination) and the frontier
// models. Parse, call the trial service, shape the reply.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { IdParams, UUID_PATTERN } from '../ids.js';
import { DOWNLOAD_RESPONSES, sendDownload } from './downloads.js';

const TrialSchema = {
  $id: 'Trial',
  type: 'object',
  description: 'One candidate the search measured (on the search part; the held-out verdict is in the report).',
  properties: {
    attempt: { type: 'integer', description: 'The job attempt that ran it.' },
    n: { type: 'integer', description: '0 is the start (the original, or the recipe’s fixed steps); candidates count from 1.' },
    steps: { type: 'array', items: { type: 'object', additionalProperties: true }, description: 'Its recipe.' },
    status: { type: 'string', enum: ['meets', 'misses', 'stopped-early', 'failed', 'out-of-bounds'] },
    reason: { type: ['string', 'null'] },
    value: { type: ['number', 'null'], description: "The goal's metric (on the probe when it stopped there)." },
    loss: { type: ['number', 'null'], description: "Against the original, in the metric's units." },
    latencyRatio: { type: ['number', 'null'] },
    sizeRatio: { type: ['number', 'null'] },
    built: { type: 'integer', description: 'Steps built for this trial.' },
    cached: { type: 'integer', description: 'Steps the step cache already had.' },
    durationMs: { type: 'integer' },
    template: { type: ['string', 'null'], description: 'The shipped recipe (GET /v1/recipes) this trial ran as written, after the strategy; null for the strategy’s own candidates.' },
    frontier: { type: 'boolean', description: 'On the final frontier: its model is kept (links.artifact).' },
    artifact: { type: ['object', 'null'], properties: { sha256: { type: 'string' }, sizeBytes: { type: 'integer' } } },
    links: { type: 'object', additionalProperties: { type: 'string' } },
  },
  required: ['attempt', 'n', 'steps', 'status', 'frontier', 'links'],
} as const;

const TrialParams = {
  type: 'object',
  properties: { id: { type: 'string', pattern: UUID_PATTERN }, n: { type: 'integer', minimum: 0, maximum: 2 ** 31 - 1 } },
  required: ['id', 'n'],
} as const;

const common = { security: [{ bearer: [] }], tags: ['jobs'] };

export default async function trialRoutes(app: FastifyInstance) {
  app.addSchema(TrialSchema);
  const { trials } = app;
  const idOf = (req: FastifyRequest) => (req.params as { id: string }).id;

  app.get(
    '/jobs/:id/trials',
    {
      schema: {
        ...common,
        summary: "A goal job's trials, in order, as they finish (cursor pagination; the latest attempt's)",
        params: IdParams,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { limit: { type: 'integer', minimum: 1, maximum: 100, default: 20 }, cursor: { type: 'string', maxLength: 200 } },
        },
        response: {
          200: { type: 'object', properties: { items: { type: 'array', items: { $ref: 'Trial#' } }, nextCursor: { type: ['string', 'null'] } } },
          '4xx': { $ref: 'Problem#' },
        },
      },
    },
    async (req) => {
      const id = idOf(req);
      const { items, nextCursor } = await trials.list(req.ownerId, id, req.query as { limit: number; cursor?: string });
      return { items: items.map((t) => ({ ...t, links: t.artifact ? { artifact: `/v1/jobs/${id}/trials/${t.n}/artifact` } : {} })), nextCursor };
    },
  );

  app.get(
    '/jobs/:id/trials/:n/artifact',
    {
      schema: {
        ...common,
        summary: "Download a frontier trial's model (Range supported; ETag is its sha256); 404 for trials off the frontier",
        params: TrialParams,
        produces: ['application/octet-stream'],
        response: DOWNLOAD_RESPONSES,
      },
    },
    async (req, reply) => {
      const { id, n } = req.params as { id: string; n: number };
      return sendDownload(req, reply, await trials.artifact(req.ownerId, id, n));
    },
  );
}
