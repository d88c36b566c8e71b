// POST /v1/models: upload once, compress with several recipes. Identical bytes are stored once.
import type { FastifyInstance } from 'fastify';
import { ServiceError } from '../../errors.js';
import type { StoredModel } from '../db/client.js';
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
  },
  required: ['id', 'sha256', 'sizeBytes', 'createdAt'],
} as const;

function modelView(m: StoredModel) {
  return { id: m.id, sha256: m.sha256, sizeBytes: Number(m.sizeBytes), filename: m.filename, createdAt: m.createdAt.toISOString() };
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
        return reply.code(created ? 201 : 200).send(modelView(model));
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
    async (req) => ({ items: (await models.list(req.ownerId, (req.query as { limit: number }).limit)).map(modelView) }),
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
    async (req) => modelView(await models.get(req.ownerId, (req.params as { id: string }).id)),
  );
}
