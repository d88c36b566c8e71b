// POST /v1/models: upload once, compress with several recipes. Identical bytes are stored once.
import type { FastifyInstance } from 'fastify';
import { ServiceError } from '../../errors.js';
import type { StoredModel } from '../db/client.js';
import type { Storage } from '../storage/storage.js';
import type { Db } from '../db/client.js';
import { readMultipart, type UploadedFile } from './uploads.js';

export const ModelSchema = {
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

export function modelView(m: StoredModel) {
  return { id: m.id, sha256: m.sha256, sizeBytes: Number(m.sizeBytes), filename: m.filename, createdAt: m.createdAt.toISOString() };
}

/** Content-addressed: `models/<sha256>.onnx`; one row per (owner, sha256). */
export async function storeModel(db: Db, storage: Storage, ownerId: string, upload: UploadedFile): Promise<{ model: StoredModel; created: boolean }> {
  const key = `models/${upload.sha256}.onnx`;
  await storage.promote(upload.key, key);
  const filename = upload.filename ? upload.filename.replace(/[^\w.\- ]+/g, '_').slice(0, 200) : null;
  const existing = await db.storedModel.findUnique({ where: { ownerId_sha256: { ownerId, sha256: upload.sha256 } } });
  if (existing) return { model: existing, created: false };
  try {
    const model = await db.storedModel.create({ data: { ownerId, sha256: upload.sha256, sizeBytes: BigInt(upload.sizeBytes), storageKey: key, filename } });
    return { model, created: true };
  } catch (err) {
    if ((err as { code?: string }).code === 'P2002') {
      const model = await db.storedModel.findUniqueOrThrow({ where: { ownerId_sha256: { ownerId, sha256: upload.sha256 } } });
      return { model, created: false };
    }
    throw err;
  }
}

export default async function modelRoutes(app: FastifyInstance) {
  app.addSchema(ModelSchema);
  app.post(
    '/models',
    {
      schema: {
        summary: 'Upload a model (multipart file `model`); identical uploads return the same model',
        tags: ['models'],
        consumes: ['multipart/form-data'],
        security: [{ bearer: [] }],
        response: { 200: { $ref: 'Model#' }, 201: { $ref: 'Model#' }, '4xx': { $ref: 'Problem#' } },
      },
    },
    async (req, reply) => {
      if (!req.isMultipart()) throw new ServiceError('invalid_input', 'POST /v1/models takes multipart/form-data with a file field `model`');
      const body = await readMultipart(req, app.storage, { files: ['model'], fields: [], maxFileBytes: app.config.maxUploadBytes, maxFieldBytes: 1024 });
      try {
        const upload = body.files.get('model');
        if (!upload) throw new ServiceError('invalid_input', 'missing file field `model`');
        const { model, created } = await storeModel(app.db, app.storage, req.ownerId, upload);
        reply.header('Location', `/v1/models/${model.id}`);
        return reply.code(created ? 201 : 200).send(modelView(model));
      } finally {
        await body.discard();
      }
    },
  );
  app.get(
    '/models/:id',
    {
      schema: {
        summary: 'A model you uploaded',
        tags: ['models'],
        security: [{ bearer: [] }],
        params: { type: 'object', properties: { id: { type: 'string', format: 'uuid' } }, required: ['id'] },
        response: { 200: { $ref: 'Model#' }, '4xx': { $ref: 'Problem#' } },
      },
    },
    async (req) => {
      const { id } = req.params as { id: string };
      const model = await app.db.storedModel.findFirst({ where: { id, ownerId: req.ownerId } });
      if (!model) throw new ServiceError('not_found', `no model ${id}`);
      return modelView(model);
    },
  );
}
