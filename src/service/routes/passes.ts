// GET /v1/passes: every pass's step schema (the JSON Schema the recipe validator uses, with options,
// defaults, allowed values and descriptions), its statistics schema and its data needs. Public: the
// schemas are the same for everyone, and a recipe editor needs them before sign-in.
import type { FastifyInstance } from 'fastify';
import { Value } from '@sinclair/typebox/value';
import { PASSES } from '../../passes/index.js';

const PassList = {
  type: 'object',
  required: ['passes'],
  properties: {
    passes: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name', 'summary', 'schema', 'stats'],
        properties: {
          name: { type: 'string' },
          summary: { type: 'string' },
          schema: { type: 'object', additionalProperties: true, description: 'JSON Schema of a recipe step using this pass' },
          stats: { type: 'object', additionalProperties: true, description: 'JSON Schema of the statistics its report step holds' },
          calibration: {
            type: 'string',
            enum: ['required', 'used', 'none'],
            description: 'With the default options: required = refuses to run without calibration data (or evaluation data, which it then calibrates on); used = reads it, runs on synthetic inputs with a warning; none = reads no inputs',
          },
        },
      },
    },
  },
} as const;

export function passList() {
  return {
    passes: Object.values(PASSES).map((def) => ({
      name: def.name,
      summary: def.summary,
      schema: def.schema,
      stats: def.stats,
      calibration: def.calibration?.(Value.Default(def.schema, { pass: def.name }) as never) ?? 'none',
    })),
  };
}

export default async function passRoutes(app: FastifyInstance) {
  const body = passList(); // the same for every request
  app.get('/passes', { schema: { summary: 'Every pass a recipe step can use: its options (JSON Schema), statistics and data needs', tags: ['passes'], response: { 200: PassList } } }, async (_req, reply) => {
    reply.header('Cache-Control', 'public, max-age=300');
    return body;
  });
}
