// POST /v1/models: upload once, compress with several recipes. Identical bytes are stored once.
import type { FastifyInstance } from 'fastify';
import { ServiceError } from '../../errors.js';
import type { StoredModel } from '../db/client.js';
import type { ServiceConfig } from '../config.js';
import { modelExpiresAt } from '../retention/service.js';
import { perMinute } from '../plugins/rate-limit.js';
import { IdParams } from '../ids.js';
import { readMultipart } from './uploads.js';

const ModelSchema = {
  $id: 'Model',
  type: 'object',
  properties: {
    id: { type: 'string', format: 'uuid' },
    sha256: { type: 'string' },
    sizeBytes: { type: 'integer' },
    filename: { type: ['string', 'null'] },
    createdAt: { type: 'string', format: 'date-time' },
    lastUsedAt: { type: 'string', format: 'date-time', description: 'Its upload, a re-upload of the same bytes, or the latest job created on it.' },
    expiresAt: { type: ['string', 'null'], format: 'date-time', description: 'When its bytes will be deleted unless it is used before (UPLOAD_TTL_DAYS after lastUsedAt; null: kept).' },
    expiredAt: { type: ['string', 'null'], format: 'date-time', description: 'When its bytes were deleted: new jobs on it answer 410 model_expired; uploading the same bytes again revives it.' },
  },
  required: ['id', 'sha256', 'sizeBytes', 'createdAt'],
} as const;

function modelView(m: StoredModel, config: Pick<ServiceConfig, 'uploadTtlDays'>) {
  return {
    id: m.id,
    sha256: m.sha256,
    sizeBytes: Number(m.sizeBytes),
    filename: m.filename,
    createdAt: m.createdAt.toISOString(),
    lastUsedAt: m.lastUsedAt.toISOString(),
    expiresAt: modelExpiresAt(m, config)?.toISOString() ?? null,
    expiredAt: m.expiredAt?.toISOString() ?? null,
  };
}

/** The multipart form of POST /v1/models, for the OpenAPI document (streamed in the handler). */
export const MODEL_MULTIPART_BODY = {
  type: 'object',
  required: ['model'],
  properties: { model: { type: 'string', format: 'binary', description: 'A .onnx, or a .zip/.tar/.tar.gz bundle of one .onnx and its external data files' } },
} as const;

export default async function modelRoutes(app: FastifyInstance) {
  app.addSchema(ModelSchema);
  const { models, config } = app;
  app.post(
    '/models',
    {
      config: { rateLimit: perMinute(config.rateLimitUploadsPerMinute, 'model uploads') },
      schema: {
        summary: 'Upload a model (multipart file `model`: a .onnx, or a .zip/.tar/.tar.gz bundle of one .onnx and its external data files); identical uploads return the same model',
        tags: ['models'],
        consumes: ['multipart/form-data'],
        security: [{ bearer: [] }],
        response: { 200: { $ref: 'Model#' }, 201: { $ref: 'Model#' }, '4xx': { $ref: 'Problem#' } },
      },
    },
    async (req, reply) => {
      if (!req.isMultipart()) throw new ServiceError('invalid_input', 'POST /v1/models takes multipart/form-data with a file field `model`');
      const body = await readMultipart(req, app.storage, { files: ['model'], fields: [], maxFileBytes: config.maxUploadBytes, maxFieldBytes: 1024 });
      try {
        const upload = body.files.get('model');
        if (!upload) throw new ServiceError('invalid_input', 'missing file field `model`');
        const { model, created } = await models.upload(req.ownerId, upload);
        reply.header('Location', `/v1/models/${model.id}`);
        return reply.code(created ? 201 : 200).send(modelView(model, config));
      } finally {
        await body.discard();
      }
    },
  );
  app.get(
    '/models',
    {
      schema: {
        summary: 'Your models, newest first',
        tags: ['models'],
        security: [{ bearer: [] }],
        querystring: { type: 'object', additionalProperties: false, properties: { limit: { type: 'integer', minimum: 1, maximum: 100, default: 50 } } },
        response: { 200: { type: 'object', properties: { items: { type: 'array', items: { $ref: 'Model#' } } } }, '4xx': { $ref: 'Problem#' } },
      },
    },
    async (req) => ({ items: (await models.list(req.ownerId, (req.query as { limit: number }).limit)).map((m) => modelView(m, config)) }),
  );
  app.get(
    '/models/:id/summary',
    {
      schema: {
        summary: 'What `modelpress inspect --json` says of a model you uploaded: inputs, outputs, ops, parameters',
        tags: ['models'],
        security: [{ bearer: [] }],
        params: IdParams,
        response: { 200: { type: 'object', additionalProperties: true }, '4xx': { $ref: 'Problem#' } },
      },
    },
    async (req) => models.summary(req.ownerId, (req.params as { id: string }).id),
  );
  app.get(
    '/models/:id',
    {
      schema: {
        summary: 'A model you uploaded',
        tags: ['models'],
        security: [{ bearer: [] }],
        params: IdParams,
        response: { 200: { $ref: 'Model#' }, '4xx': { $ref: 'Problem#' } },
      },
    },
    async (req) => modelView(await models.get(req.ownerId, (req.params as { id: string }).id), config),
  );
  app.delete(
    '/models/:id',
    {
      schema: {
        summary: 'Delete a model you uploaded and its bytes (unless another owner uploaded the same bytes)',
        description:
          '409 `model_in_use` while a queued or running job uses it (the problem lists them under `errors`). Finished jobs refer to their model too: they are listed in a 409 `model_in_use` as well, unless `?cascade=jobs`, which deletes them (and their results) with the model. 204; a second DELETE is 404.',
        tags: ['models'],
        security: [{ bearer: [] }],
        params: IdParams,
        querystring: { type: 'object', additionalProperties: false, properties: { cascade: { type: 'string', enum: ['jobs'], description: '`jobs`: delete the finished jobs on this model too' } } },
        response: { 204: { type: 'null', description: 'Deleted' }, '4xx': { $ref: 'Problem#' }, '5xx': { $ref: 'Problem#' } },
      },
    },
    async (req, reply) => {
      const { cascade } = req.query as { cascade?: 'jobs' };
      await app.retention.deleteModel(req.ownerId, (req.params as { id: string }).id, { cascadeJobs: cascade === 'jobs' });
      return reply.code(204).send();
    },
  );
}
