// Jobs: create (multipart upload or JSON with a modelId), get, list, cancel, artifact, report.
import { createHash, randomUUID } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ServiceError } from '../../errors.js';
import { parseRecipe } from '../../pipeline/recipe.js';
import { renderReportHtml } from '../../report/html.js';
import type { CompressionReport } from '../../report/schema.js';
import { jobView, type JobStatusName } from '../db/jobs.js';
import type { Job } from '../db/client.js';
import { CANCEL_CHANNEL, enqueue, withDeadline } from '../queue.js';
import { assertActiveJobsBelowLimit, storeModel, withOwnerLock } from '../db/owners.js';
import { rateLimit } from '../rate-limit.js';
import { IdParams, UUID_PATTERN, UUID_RE } from '../ids.js';
import { dataExtension, readMultipart, type MultipartBody, type UploadedFile } from './uploads.js';

const STATUSES = ['queued', 'running', 'succeeded', 'failed', 'canceled'] as const;
const DATA_FILES = ['calibration', 'evaluation', 'labels'] as const;

const JobSchema = {
  $id: 'Job',
  type: 'object',
  properties: {
    id: { type: 'string', format: 'uuid' },
    status: { type: 'string', enum: STATUSES },
    modelId: { type: 'string' },
    progress: {
      type: 'object',
      properties: {
        percent: { type: 'number' },
        step: { type: 'integer' },
        steps: { type: 'integer' },
        stepName: { type: ['string', 'null'] },
        message: { type: ['string', 'null'] },
      },
    },
    attempt: { type: 'integer' },
    createdAt: { type: 'string', format: 'date-time' },
    startedAt: { type: ['string', 'null'], format: 'date-time' },
    finishedAt: { type: ['string', 'null'], format: 'date-time' },
    cancelRequested: { type: 'boolean' },
    error: { type: ['object', 'null'], properties: { code: { type: 'string' }, message: { type: 'string' } } },
    metrics: { type: ['object', 'null'], additionalProperties: true },
    links: { type: 'object', additionalProperties: { type: 'string' } },
  },
  required: ['id', 'status', 'progress', 'createdAt', 'links'],
} as const;


const JsonCreateBody = {
  type: 'object',
  additionalProperties: false,
  required: ['modelId', 'recipe'],
  properties: {
    modelId: { type: 'string', pattern: UUID_PATTERN },
    recipe: { description: 'The recipe: an object, or its JSON text', anyOf: [{ type: 'object' }, { type: 'string' }] },
    timeoutMs: { type: 'integer', minimum: 1 },
  },
} as const;

const common = { security: [{ bearer: [] }], tags: ['jobs'] };

/** A list cursor is (createdAt, id) of the last item; anything else, or a date Postgres cannot hold, is null. */
function decodeCursor(cursor: string): { createdAt: Date; id: string } | null {
  try {
    const v = JSON.parse(Buffer.from(cursor, 'base64url').toString()) as unknown;
    if (!Array.isArray(v) || v.length !== 2 || typeof v[0] !== 'string' || typeof v[1] !== 'string') return null;
    const createdAt = new Date(v[0]);
    const year = createdAt.getUTCFullYear();
    if (Number.isNaN(createdAt.getTime()) || year < 2000 || year > 9999 || !UUID_RE.test(v[1])) return null;
    return { createdAt, id: v[1] };
  } catch {
    return null;
  }
}

function notFinished(job: Job): boolean {
  return job.status === 'queued' || job.status === 'running';
}

export default async function jobRoutes(app: FastifyInstance) {
  app.addSchema(JobSchema);
  const { db, storage, config } = app;

  async function ownJob(req: FastifyRequest): Promise<Job> {
    const { id } = req.params as { id: string };
    // other owners' jobs look exactly like missing ones
    const job = await db.job.findFirst({ where: { id, ownerId: req.ownerId } });
    if (!job) throw new ServiceError('not_found', `no job ${id}`);
    return job;
  }

  function sendJob(reply: FastifyReply, job: Job, status = 200) {
    if (notFinished(job)) reply.header('Retry-After', job.status === 'queued' ? '2' : '1');
    return reply.code(status).send(jobView(job));
  }

  app.post(
    '/jobs',
    {
      schema: {
        ...common,
        summary: 'Create a compression job: multipart (recipe + model [+ calibration, evaluation, labels]) or JSON {modelId, recipe}',
        description:
          'multipart/form-data fields: `recipe` (JSON text), `timeoutMs` (optional); files: `model` (.onnx), optional `calibration`, `evaluation` (.npz/.npy/.json keyed by input name) and `labels`. Honours Idempotency-Key.',
        consumes: ['multipart/form-data', 'application/json'],
        headers: { type: 'object', properties: { 'idempotency-key': { type: 'string', minLength: 1, maxLength: 200 } } },
        // multipart bodies are streamed and checked in the handler; JSON bodies are validated here
        body: { content: { 'application/json': { schema: JsonCreateBody } } },
        response: { 200: { $ref: 'Job#' }, 202: { $ref: 'Job#' }, '4xx': { $ref: 'Problem#' }, '5xx': { $ref: 'Problem#' } },
      },
    },
    async (req, reply) => {
      const idempotencyKey = (req.headers['idempotency-key'] as string | undefined)?.trim() || null;
      const ownerId = req.ownerId;
      // a replay of an accepted request is not a new job: no limits. The cheap checks run before the
      // upload is read; the active-jobs limit is checked again, atomically, when the job is written.
      const replay = idempotencyKey ? await db.job.count({ where: { ownerId, idempotencyKey } }) : 0;
      if (!replay) {
        await rateLimit(app.redis, 'jobs', ownerId, config.rateLimitJobsPerMinute);
        await assertActiveJobsBelowLimit(db, ownerId, config);
      }
      let body: MultipartBody | null = null;
      const dataKeys: Partial<Record<(typeof DATA_FILES)[number], string>> = {};
      try {
        let recipeInput: unknown;
        let modelRef: { id: string } | { upload: UploadedFile };
        let timeoutMs: number | null = null;
        const digest = createHash('sha256');
        if (req.isMultipart()) {
          body = await readMultipart(req, storage, {
            files: ['model', ...DATA_FILES],
            fields: ['recipe', 'timeoutMs'],
            maxFileBytes: config.maxUploadBytes,
            maxFieldBytes: config.maxRecipeBytes,
          });
          const recipeText = body.fields.get('recipe');
          if (recipeText === undefined) throw new ServiceError('invalid_input', 'missing field `recipe` (the recipe as JSON text)');
          recipeInput = recipeText;
          const model = body.files.get('model');
          if (!model) throw new ServiceError('invalid_input', 'missing file `model` (the .onnx to compress)');
          if (body.fields.has('timeoutMs')) timeoutMs = parseTimeout(body.fields.get('timeoutMs')!);
          // validate everything before storing anything
          parseRecipe(recipeText);
          for (const f of DATA_FILES) if (body.files.has(f)) dataExtension(body.files.get(f)!.filename, f);
          modelRef = { upload: model };
          digest.update(`model:${model.sha256}\n`);
          for (const f of DATA_FILES) {
            const file = body.files.get(f);
            if (file) digest.update(`${f}:${file.sha256}\n`);
          }
        } else {
          const json = req.body as { modelId?: unknown; recipe?: unknown; timeoutMs?: unknown } | undefined;
          if (!json || typeof json !== 'object') throw new ServiceError('invalid_input', 'send multipart/form-data, or JSON {"modelId", "recipe"}');
          const extra = Object.keys(json).filter((k) => !['modelId', 'recipe', 'timeoutMs'].includes(k));
          if (extra.length) throw new ServiceError('invalid_input', `unknown field(s): ${extra.join(', ')}`, { details: extra.map((k) => ({ path: `/${k}`, message: 'unknown field' })) });
          if (typeof json.modelId !== 'string') throw new ServiceError('invalid_input', '`modelId` (string) is required', { details: [{ path: '/modelId', message: 'required' }] });
          if (json.recipe === undefined) throw new ServiceError('invalid_input', '`recipe` is required', { details: [{ path: '/recipe', message: 'required' }] });
          if (json.timeoutMs !== undefined) timeoutMs = parseTimeout(String(json.timeoutMs));
          recipeInput = json.recipe;
          parseRecipe(recipeInput);
          if (JSON.stringify(recipeInput).length > config.maxRecipeBytes) throw new ServiceError('payload_too_large', `the recipe is larger than ${config.maxRecipeBytes} bytes`);
          const model = UUID_RE.test(json.modelId) ? await db.storedModel.findFirst({ where: { id: json.modelId, ownerId } }) : null;
          if (!model) throw new ServiceError('not_found', `no model ${json.modelId}`);
          modelRef = { id: model.id };
          digest.update(`model:${model.sha256}\n`);
        }
        const recipe = typeof recipeInput === 'string' ? JSON.parse(recipeInput) : recipeInput;
        digest.update(`recipe:${JSON.stringify(recipe)}\ntimeout:${timeoutMs}\n`);
        const requestHash = digest.digest('hex');

        // one transaction under the owner's lock: the idempotency lookup, the active-jobs limit, the
        // model quota and the insert cannot interleave with another request of the same owner
        const { job, replayed } = await withOwnerLock(db, ownerId, async (tx) => {
          if (idempotencyKey) {
            const prior = await tx.job.findUnique({ where: { ownerId_idempotencyKey: { ownerId, idempotencyKey } } });
            if (prior) {
              if (prior.requestHash !== requestHash) throw new ServiceError('idempotency_mismatch', 'this Idempotency-Key was used with a different request');
              return { job: prior, replayed: true };
            }
          }
          await assertActiveJobsBelowLimit(tx, ownerId, config);
          const modelId = 'id' in modelRef ? modelRef.id : (await storeModel(tx, storage, config, ownerId, modelRef.upload)).model.id;
          for (const f of DATA_FILES) {
            const file = body?.files.get(f);
            if (!file) continue;
            const key = `uploads/${randomUUID()}.${dataExtension(file.filename, f)}`;
            await storage.promote(file.key, key);
            dataKeys[f] = key;
          }
          const created = await tx.job.create({
            data: {
              ownerId,
              modelId,
              recipe: recipe as never,
              timeoutMs,
              idempotencyKey,
              requestHash,
              calibrationKey: dataKeys.calibration ?? null,
              evaluationKey: dataKeys.evaluation ?? null,
              labelsKey: dataKeys.labels ?? null,
            },
          });
          return { job: created, replayed: false };
        }).catch(async (err) => {
          await dropDataFiles(dataKeys); // unique keys: nothing else refers to them
          throw err;
        });
        if (!replayed) {
          try {
            await withDeadline(enqueue(app.queue, job.id), 3000, 'enqueue');
          } catch (err) {
            // the job is recorded; a worker's reconciler enqueues it once Redis is back
            req.log.warn({ err }, `job ${job.id}: enqueue failed; it stays queued`);
          }
        }
        reply.header('Location', `/v1/jobs/${job.id}`);
        return sendJob(reply, job, 202);
      } finally {
        await body?.discard();
      }
    },
  );

  async function dropDataFiles(keys: Partial<Record<string, string>>) {
    await Promise.all(Object.values(keys).map((k) => (k ? storage.delete(k) : undefined)));
  }

  function parseTimeout(text: string): number {
    const v = Number(text);
    if (!Number.isInteger(v) || v < 1) throw new ServiceError('invalid_input', '`timeoutMs` must be a positive integer', { details: [{ path: '/timeoutMs', message: 'positive integer' }] });
    if (v > config.jobTimeoutMs) throw new ServiceError('invalid_input', `\`timeoutMs\` may be at most ${config.jobTimeoutMs}`, { details: [{ path: '/timeoutMs', message: `≤ ${config.jobTimeoutMs}` }] });
    return v;
  }

  app.get('/jobs/:id', { schema: { ...common, summary: 'A job: status, progress, error, metrics summary, links', params: IdParams, response: { 200: { $ref: 'Job#' }, '4xx': { $ref: 'Problem#' } } } }, async (req, reply) =>
    sendJob(reply, await ownJob(req)),
  );

  app.get(
    '/jobs',
    {
      schema: {
        ...common,
        summary: 'Your jobs, newest first (cursor pagination)',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            limit: { type: 'integer', minimum: 1, maximum: 100, default: 20 },
            cursor: { type: 'string', maxLength: 200 },
            status: { type: 'string', enum: STATUSES },
          },
        },
        response: {
          200: { type: 'object', properties: { items: { type: 'array', items: { $ref: 'Job#' } }, nextCursor: { type: ['string', 'null'] } } },
          '4xx': { $ref: 'Problem#' },
        },
      },
    },
    async (req) => {
      const q = req.query as { limit: number; cursor?: string; status?: JobStatusName };
      let after: { createdAt: Date; id: string } | null = null;
      if (q.cursor) {
        after = decodeCursor(q.cursor);
        if (!after) throw new ServiceError('invalid_input', 'invalid cursor', { details: [{ path: '/cursor', message: 'not a cursor from this API' }] });
      }
      const rows = await db.job.findMany({
        where: {
          ownerId: req.ownerId,
          ...(q.status ? { status: q.status } : {}),
          ...(after ? { OR: [{ createdAt: { lt: after.createdAt } }, { createdAt: after.createdAt, id: { lt: after.id } }] } : {}),
        },
        orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
        take: q.limit + 1,
      });
      const page = rows.slice(0, q.limit);
      const last = page[page.length - 1];
      const nextCursor = rows.length > q.limit && last ? Buffer.from(JSON.stringify([last.createdAt.toISOString(), last.id])).toString('base64url') : null;
      return { items: page.map((j) => jobView(j)), nextCursor };
    },
  );

  app.post(
    '/jobs/:id/cancel',
    { schema: { ...common, summary: 'Cancel a queued or running job (idempotent; 409 once it finished otherwise)', params: IdParams, response: { 200: { $ref: 'Job#' }, 202: { $ref: 'Job#' }, '4xx': { $ref: 'Problem#' } } } },
    async (req, reply) => {
      const job = await ownJob(req);
      if (job.status === 'canceled') return sendJob(reply, job);
      if (!notFinished(job)) throw new ServiceError('conflict', `the job already ${job.status}`);
      await db.job.updateMany({ where: { id: job.id, status: { in: ['queued', 'running'] }, cancelRequestedAt: null }, data: { cancelRequestedAt: new Date() } });
      // a queued job is canceled right here; a running one by its worker, within seconds
      const now = await db.job.updateMany({ where: { id: job.id, status: 'queued' }, data: { status: 'canceled', finishedAt: new Date() } });
      if (now.count === 1) {
        await withDeadline(app.queue.remove(job.id), 3000, 'dequeue').catch(() => {});
      } else {
        await app.redis.publish(CANCEL_CHANNEL, job.id).catch(() => {}); // the worker also polls the database
      }
      const fresh = await db.job.findUniqueOrThrow({ where: { id: job.id } });
      if (fresh.status === 'canceled') return sendJob(reply, fresh);
      if (!notFinished(fresh)) throw new ServiceError('conflict', `the job already ${fresh.status}`);
      return sendJob(reply, fresh, 202);
    },
  );

  async function artifactOf(req: FastifyRequest) {
    const job = await ownJob(req);
    if (job.status !== 'succeeded') throw new ServiceError('conflict', `the job is ${job.status}; the artifact exists once it succeeded`, { retryAfterSec: notFinished(job) ? 2 : undefined } as never);
    const artifact = await db.artifact.findUnique({ where: { jobId: job.id } });
    if (!artifact) throw new ServiceError('internal', 'the job succeeded but its artifact record is missing');
    return { job, artifact };
  }

  app.get(
    '/jobs/:id/artifact',
    {
      schema: {
        ...common,
        summary: 'Download the compressed model (Range supported; ETag is its sha256)',
        params: IdParams,
        produces: ['application/octet-stream'],
        response: { 200: { type: 'string', format: 'binary' }, 206: { type: 'string', format: 'binary' }, '4xx': { $ref: 'Problem#' } },
      },
    },
    async (req, reply) => {
      const { job, artifact } = await artifactOf(req);
      const size = Number(artifact.sizeBytes);
      const etag = `"${artifact.sha256}"`;
      const filename = `${(await db.storedModel.findUnique({ where: { id: job.modelId } }))?.filename?.replace(/\.onnx$/i, '') || 'model'}.compressed.onnx`.replace(/[^\w.\-]+/g, '_');
      reply.header('ETag', etag).header('Accept-Ranges', 'bytes').header('Content-Disposition', `attachment; filename="${filename}"`).type('application/octet-stream');
      if (req.headers['if-none-match'] === etag) return reply.code(304).send();
      const range = req.headers.range;
      if (range && (!req.headers['if-range'] || req.headers['if-range'] === etag)) {
        const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
        let start = m?.[1] ? Number(m[1]) : NaN;
        let end = m?.[2] ? Number(m[2]) : NaN;
        if (m && !m[1] && m[2]) {
          start = Math.max(0, size - Number(m[2]));
          end = size - 1;
        } else if (m && m[1] && !m[2]) end = size - 1;
        if (!m || Number.isNaN(start) || Number.isNaN(end) || start > end || start >= size) {
          reply.header('Content-Range', `bytes */${size}`);
          return reply.code(416).type('application/problem+json').send(JSON.stringify({ type: 'https://modelpress.dev/problems/invalid-input', title: 'Range not satisfiable', status: 416, code: 'invalid_input', detail: `range '${range}' is outside 0-${size - 1}` }));
        }
        end = Math.min(end, size - 1);
        reply.header('Content-Range', `bytes ${start}-${end}/${size}`).header('Content-Length', String(end - start + 1));
        return reply.code(206).send(storage.read(artifact.storageKey, { start, end }));
      }
      reply.header('Content-Length', String(size));
      return reply.code(200).send(storage.read(artifact.storageKey));
    },
  );

  async function reportOf(req: FastifyRequest): Promise<CompressionReport> {
    const job = await ownJob(req);
    if (!job.report) throw new ServiceError('conflict', `the job is ${job.status}; the report exists once it succeeded`);
    return job.report as unknown as CompressionReport;
  }

  app.get(
    '/jobs/:id/report',
    { schema: { ...common, summary: 'The compression report (JSON)', params: IdParams, response: { 200: { type: 'object', additionalProperties: true }, '4xx': { $ref: 'Problem#' } } } },
    async (req) => reportOf(req),
  );
  app.get(
    '/jobs/:id/report.html',
    { schema: { ...common, summary: 'The compression report (HTML)', params: IdParams, produces: ['text/html'], response: { '4xx': { $ref: 'Problem#' } } } },
    async (req, reply) => {
      const report = await reportOf(req);
      return reply.type('text/html; charset=utf-8').send(renderReportHtml(report, { title: `modelpress job ${(req.params as { id: string }).id}` }));
    },
  );
}
