// Jobs over HTTP: parse the request, call the job service, shape the reply. Create (multipart upload
// or JSON with a modelId), get, list, cancel, artifact (Range, ETag) and report (JSON, HTML).
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ServiceError } from '../../errors.js';
import { parseRecipe } from '../../pipeline/recipe.js';
import { renderReportHtml } from '../../report/html.js';
import type { Job, JobStatus } from '../db/client.js';
import type { ServiceConfig } from '../config.js';
import { artifactExpiresAt } from '../retention/service.js';
import { DATA_FILES, type CreateJobRequest } from '../jobs/service.js';
import { perMinute } from '../plugins/rate-limit.js';
import { IdParams, UUID_PATTERN } from '../ids.js';
import { DOWNLOAD_RESPONSES, sendDownload } from './downloads.js';
import { dataExtension, readMultipart, type MultipartBody } from './uploads.js';

const STATUSES = ['queued', 'running', 'succeeded', 'failed', 'canceled'] as const;

const SearchProgressSchema = {
  type: ['object', 'null'],
  description: "A goal job's search (null for a recipe job): trial i of at most maxTrials, time spent and left of its budget, and the best so far on the search part.",
  properties: {
    phase: { type: 'string', enum: ['preparing', 'searching', 'finalists', 'report'] },
    trial: { type: 'integer' },
    maxTrials: { type: 'integer' },
    elapsedMs: { type: 'number' },
    remainingMs: { type: 'number' },
    percent: { type: 'number', description: 'Of the time budget.' },
    best: {
      type: 'object',
      properties: {
        trial: { type: 'integer' },
        value: { type: 'number', description: "The goal's metric on the search part." },
        loss: { type: 'number', description: "Against the original, in the metric's units." },
        latencyRatio: { type: 'number', description: 'Candidate / original latency at the goal’s batch size and threads.' },
        sizeRatio: { type: 'number' },
      },
    },
    message: { type: 'string' },
  },
} as const;

const JobSchema = {
  $id: 'Job',
  type: 'object',
  properties: {
    id: { type: 'string', format: 'uuid' },
    status: { type: 'string', enum: STATUSES },
    modelId: { type: 'string' },
    modelFilename: { type: ['string', 'null'], description: 'The uploaded model’s file name (in lists and single-job views).' },
    recipeName: { type: ['string', 'null'], description: 'The recipe’s `name`, if it has one.' },
    progress: {
      type: 'object',
      properties: {
        percent: { type: 'number' },
        step: { type: 'integer' },
        steps: { type: 'integer' },
        stepName: { type: ['string', 'null'] },
        message: { type: ['string', 'null'] },
        search: SearchProgressSchema,
      },
    },
    bestSoFar: {
      type: ['object', 'null'],
      description: "A goal job's best model so far, downloadable at links.artifact until the final one replaces it (null otherwise).",
      properties: { trial: { type: 'integer' }, attempt: { type: 'integer' }, sha256: { type: 'string' }, sizeBytes: { type: 'integer' } },
    },
    attempt: { type: 'integer' },
    createdAt: { type: 'string', format: 'date-time' },
    startedAt: { type: ['string', 'null'], format: 'date-time' },
    finishedAt: { type: ['string', 'null'], format: 'date-time' },
    cancelRequested: { type: 'boolean' },
    error: { type: ['object', 'null'], properties: { code: { type: 'string' }, message: { type: 'string' } } },
    metrics: { type: ['object', 'null'], additionalProperties: true },
    retention: {
      type: 'object',
      description: 'What the retention sweeper did or will do (ARTIFACT_TTL_DAYS, UPLOAD_TTL_DAYS). The report and metrics are kept until the job is deleted.',
      properties: {
        artifactExpiresAt: { type: ['string', 'null'], format: 'date-time', description: 'When the artifact, best so far and frontier models will be deleted (null: not finished, kept until the job is deleted, or deleted already).' },
        artifactExpiredAt: { type: ['string', 'null'], format: 'date-time', description: 'When they were deleted: downloads then answer 410 artifact_expired.' },
        dataExpiredAt: { type: ['string', 'null'], format: 'date-time', description: 'When the calibration, evaluation and labels files were deleted.' },
      },
    },
    links: { type: 'object', additionalProperties: { type: 'string' } },
  },
  required: ['id', 'status', 'progress', 'createdAt', 'links'],
} as const;

export function jobView(job: Job & { model?: { filename: string | null } }, config: Pick<ServiceConfig, 'artifactTtlDays'>) {
  const self = `/v1/jobs/${job.id}`;
  return {
    id: job.id,
    status: job.status,
    modelId: job.modelId,
    modelFilename: job.model?.filename ?? null,
    recipeName: ((job.recipe as { name?: unknown } | null)?.name as string | undefined) ?? null,
    progress: {
      percent: job.progressPercent,
      step: job.progressStep,
      steps: job.progressSteps,
      stepName: job.progressStepName,
      message: job.progressMessage,
      search: (job.progressSearch as Record<string, unknown> | null) ?? null,
    },
    bestSoFar:
      job.bestStorageKey && job.bestSha256 && job.bestSizeBytes !== null
        ? { trial: job.bestTrial, attempt: job.bestAttempt, sha256: job.bestSha256, sizeBytes: Number(job.bestSizeBytes) }
        : null,
    attempt: job.attempt,
    createdAt: job.createdAt.toISOString(),
    startedAt: job.startedAt?.toISOString() ?? null,
    finishedAt: job.finishedAt?.toISOString() ?? null,
    cancelRequested: job.cancelRequestedAt !== null,
    error: job.errorCode ? { code: job.errorCode, message: job.errorMessage ?? '' } : null,
    metrics: (job.metrics as Record<string, unknown> | null) ?? null,
    retention: {
      artifactExpiresAt: artifactExpiresAt(job, config)?.toISOString() ?? null,
      artifactExpiredAt: job.artifactExpiredAt?.toISOString() ?? null,
      dataExpiredAt: job.dataExpiredAt?.toISOString() ?? null,
    },
    links: { self, cancel: `${self}/cancel`, artifact: `${self}/artifact`, report: `${self}/report`, reportHtml: `${self}/report.html`, trials: `${self}/trials` },
  };
}

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

const file = (description: string) => ({ type: 'string', format: 'binary', description });
/**
 * The multipart form of POST /v1/jobs, for the OpenAPI document only (so "Try it out" can upload a
 * model): the parts are streamed and checked in the handler, not validated as a parsed body.
 */
export const JOB_MULTIPART_BODY = {
  type: 'object',
  required: ['recipe', 'model'],
  properties: {
    recipe: { type: 'string', contentMediaType: 'application/json', description: 'The recipe as JSON text (steps, or a goal with search settings); GET /v1/passes lists the passes and their options', example: '{"steps":[{"pass":"quantize.dynamic"}]}' },
    model: file('The .onnx to compress, or a .zip/.tar/.tar.gz bundle of one .onnx and its external data files'),
    calibration: file('Optional calibration inputs (.npz keyed by input name, .npy for one-input models, .json) for data-driven passes'),
    evaluation: file('Optional evaluation inputs (same formats): fidelity and task metrics after each step; a goal splits them into a search part and a held-out part'),
    labels: file('Optional labels for the evaluation inputs (.npy or .json), one per sample'),
    timeoutMs: { type: 'integer', minimum: 1, description: 'Optional time limit for this job (at most the server\'s JOB_TIMEOUT_MS)' },
  },
} as const;

/** What a create request asks for, parsed and checked before anything is stored. */
type JobContent = Omit<CreateJobRequest, 'ownerId' | 'idempotencyKey'>;

const idempotencyKeyOf = (req: FastifyRequest) => (req.headers['idempotency-key'] as string | undefined)?.trim() || null;

export default async function jobRoutes(app: FastifyInstance) {
  app.addSchema(JobSchema);
  const { jobs, config } = app;

  function sendJob(reply: FastifyReply, job: Job, status = 200) {
    if (job.status === 'queued' || job.status === 'running') reply.header('Retry-After', job.status === 'queued' ? '2' : '1');
    return reply.code(status).send(jobView(job, config));
  }

  function parseTimeout(text: string): number {
    const v = Number(text);
    if (!Number.isInteger(v) || v < 1) throw new ServiceError('invalid_input', '`timeoutMs` must be a positive integer', { details: [{ path: '/timeoutMs', message: 'positive integer' }] });
    if (v > config.jobTimeoutMs) throw new ServiceError('invalid_input', `\`timeoutMs\` may be at most ${config.jobTimeoutMs}`, { details: [{ path: '/timeoutMs', message: `≤ ${config.jobTimeoutMs}` }] });
    return v;
  }

  function fromMultipart(body: MultipartBody): JobContent {
    const recipeText = body.fields.get('recipe');
    if (recipeText === undefined) throw new ServiceError('invalid_input', 'missing field `recipe` (the recipe as JSON text)');
    const model = body.files.get('model');
    if (!model) throw new ServiceError('invalid_input', 'missing file `model` (the .onnx to compress, or a .zip/.tar/.tar.gz bundle with its data files)');
    const timeoutMs = body.fields.has('timeoutMs') ? parseTimeout(body.fields.get('timeoutMs')!) : null;
    const recipe = parseRecipe(recipeText);
    const data: JobContent['data'] = {};
    for (const f of DATA_FILES) {
      const file = body.files.get(f);
      if (file) data[f] = { ...file, ext: dataExtension(file.filename, f) };
    }
    return { recipe, timeoutMs, model: { upload: model }, data };
  }

  /** A JSON body (its shape is checked by JsonCreateBody): a stored model and a recipe. */
  function fromJson(body: unknown): JobContent {
    if (!body || typeof body !== 'object') throw new ServiceError('invalid_input', 'send multipart/form-data, or JSON {"modelId", "recipe"}');
    const json = body as { modelId: string; recipe: unknown; timeoutMs?: number };
    const timeoutMs = json.timeoutMs !== undefined ? parseTimeout(String(json.timeoutMs)) : null;
    const recipe = parseRecipe(json.recipe);
    if (JSON.stringify(json.recipe).length > config.maxRecipeBytes) throw new ServiceError('payload_too_large', `the recipe is larger than ${config.maxRecipeBytes} bytes`);
    return { recipe, timeoutMs, model: { id: json.modelId }, data: {} };
  }

  app.post(
    '/jobs',
    {
      // a replay of an accepted request is not a new job: not counted
      config: { rateLimit: perMinute(config.rateLimitJobsPerMinute, 'jobs', (req) => jobs.isReplay(req.ownerId, idempotencyKeyOf(req))) },
      schema: {
        ...common,
        summary: 'Create a compression job: multipart (recipe + model [+ calibration, evaluation, labels]) or JSON {modelId, recipe}',
        description:
          'multipart/form-data fields: `recipe` (JSON text), `timeoutMs` (optional); files: `model` (.onnx, or a .zip/.tar/.tar.gz bundle of one .onnx and its external data files; the artifact is then a .tar when the result has external data), optional `calibration`, `evaluation` (.npz/.npy/.json keyed by input name) and `labels`. Honours Idempotency-Key.',
        consumes: ['multipart/form-data', 'application/json'],
        headers: { type: 'object', properties: { 'idempotency-key': { type: 'string', minLength: 1, maxLength: 200 } } },
        // multipart bodies are streamed and checked in the handler; JSON bodies are validated here
        body: { content: { 'application/json': { schema: JsonCreateBody } } },
        response: { 200: { $ref: 'Job#' }, 202: { $ref: 'Job#' }, '4xx': { $ref: 'Problem#' }, '5xx': { $ref: 'Problem#' } },
      },
    },
    async (req, reply) => {
      const ownerId = req.ownerId;
      const idempotencyKey = idempotencyKeyOf(req);
      await jobs.admit(ownerId, idempotencyKey); // before the upload is read
      let body: MultipartBody | null = null;
      try {
        if (req.isMultipart()) {
          body = await readMultipart(req, app.storage, {
            files: ['model', ...DATA_FILES],
            fields: ['recipe', 'timeoutMs'],
            maxFileBytes: config.maxUploadBytes,
            maxFieldBytes: config.maxRecipeBytes,
          });
        }
        const { job } = await jobs.createJob({ ownerId, idempotencyKey, ...(body ? fromMultipart(body) : fromJson(req.body)) });
        reply.header('Location', `/v1/jobs/${job.id}`);
        return sendJob(reply, job, 202);
      } finally {
        await body?.discard();
      }
    },
  );

  const idOf = (req: FastifyRequest) => (req.params as { id: string }).id;

  app.get('/jobs/:id', { schema: { ...common, summary: 'A job: status, progress, error, metrics summary, links', params: IdParams, response: { 200: { $ref: 'Job#' }, '4xx': { $ref: 'Problem#' } } } }, async (req, reply) =>
    sendJob(reply, await jobs.get(req.ownerId, idOf(req))),
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
      const { items, nextCursor } = await jobs.list(req.ownerId, req.query as { limit: number; cursor?: string; status?: JobStatus });
      return { items: items.map((j) => jobView(j, config)), nextCursor };
    },
  );

  app.post(
    '/jobs/:id/cancel',
    { schema: { ...common, summary: 'Cancel a queued or running job (idempotent; 409 once it finished otherwise)', params: IdParams, response: { 200: { $ref: 'Job#' }, 202: { $ref: 'Job#' }, '4xx': { $ref: 'Problem#' } } } },
    async (req, reply) => {
      const job = await jobs.cancel(req.ownerId, idOf(req));
      return sendJob(reply, job, job.status === 'canceled' ? 200 : 202); // 202: its worker stops it within seconds
    },
  );

  app.delete(
    '/jobs/:id',
    {
      schema: {
        ...common,
        summary: 'Delete a job: its record, trials, report and the stored files only it refers to (a queued or running job is canceled first)',
        description: 'Owner only (another owner gets 404, as for GET). The compressed model, best so far, frontier models and the uploaded calibration, evaluation and labels files are deleted unless another job or model refers to the same content. 204; a second DELETE is 404.',
        params: IdParams,
        response: { 204: { type: 'null', description: 'Deleted' }, '4xx': { $ref: 'Problem#' }, '5xx': { $ref: 'Problem#' } },
      },
    },
    async (req, reply) => {
      await app.retention.deleteJob(req.ownerId, idOf(req));
      return reply.code(204).send();
    },
  );

  app.get(
    '/jobs/:id/artifact',
    {
      schema: {
        ...common,
        summary: 'Download the compressed model (Range supported; ETag is its sha256)',
        description:
          'The final model once the job succeeded. A goal job serves its best model so far before that — while it runs, and after a cancel or failure — from its first measured trial on. The header X-Modelpress-Artifact says which: `final` or `best-so-far`. 410 `artifact_expired` once the retention sweeper deleted it (ARTIFACT_TTL_DAYS after the job ended).',
        params: IdParams,
        produces: ['application/octet-stream'],
        response: DOWNLOAD_RESPONSES,
      },
    },
    async (req, reply) => {
      const artifact = await jobs.artifact(req.ownerId, idOf(req));
      reply.header('X-Modelpress-Artifact', artifact.kind ?? 'final');
      return sendDownload(req, reply, artifact);
    },
  );

  app.get(
    '/jobs/:id/report',
    {
      schema: {
        ...common,
        summary: 'The compression report (JSON)',
        description: "Once the job succeeded. Before that, a goal job's report as it stood at its best so far ({kind: 'search-in-progress', search}); X-Modelpress-Report says `final` or `best-so-far`.",
        params: IdParams,
        response: { 200: { type: 'object', additionalProperties: true }, '4xx': { $ref: 'Problem#' } },
      },
    },
    async (req, reply) => {
      const { kind, report } = await jobs.report(req.ownerId, idOf(req), { bestSoFar: true });
      reply.header('X-Modelpress-Report', kind);
      return report;
    },
  );
  app.get(
    '/jobs/:id/report.html',
    { schema: { ...common, summary: 'The compression report (HTML)', params: IdParams, produces: ['text/html'], response: { '4xx': { $ref: 'Problem#' } } } },
    async (req, reply) => {
      const { report } = await jobs.report(req.ownerId, idOf(req));
      return reply.type('text/html; charset=utf-8').send(renderReportHtml(report, { title: `modelpress job ${idOf(req)}` }));
    },
  );
}
