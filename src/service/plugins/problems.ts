// RFC 9457 problem+json for every error: the stable `code` from src/errors.ts decides the status;
// no stack traces leave the process.
import fp from 'fastify-plugin';
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import { ERROR_CODES, InvalidRecipeError, ModelpressError, ServiceError, type ErrorCode } from '../../errors.js';

export interface Problem {
  type: string;
  title: string;
  status: number;
  code: string;
  detail: string;
  instance?: string;
  errors?: unknown;
}

export const ProblemSchema = {
  $id: 'Problem',
  type: 'object',
  description: 'RFC 9457 problem details; `code` is stable for clients to match on.',
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    code: { type: 'string' },
    detail: { type: 'string' },
    instance: { type: 'string' },
    errors: {},
  },
  required: ['type', 'title', 'status', 'code', 'detail'],
} as const;

const TITLES: Partial<Record<ErrorCode, string>> = {
  unauthorized: 'Unauthorized',
  not_found: 'Not found',
  conflict: 'Conflict',
  rate_limited: 'Too many requests',
  quota_exceeded: 'Quota exceeded',
  payload_too_large: 'Payload too large',
  model_in_use: 'Model in use',
  model_expired: 'Model expired',
  artifact_expired: 'Artifact expired',
  stored_object_missing: 'Stored object missing',
  invalid_recipe: 'Invalid recipe',
  invalid_input: 'Invalid input',
  idempotency_mismatch: 'Idempotency-Key reused with a different request',
  unavailable: 'Service unavailable',
  internal: 'Internal error',
};

/** The problem document for a code (also sent by the worker's metrics server, which has no Fastify). */
export function problemOf(code: ErrorCode, detail: string, instance?: string, errors?: unknown): Problem {
  return {
    type: `https://modelpress.dev/problems/${code.replace(/_/g, '-')}`,
    title: TITLES[code] ?? code,
    status: ERROR_CODES[code].httpStatus,
    code,
    detail,
    ...(instance !== undefined ? { instance } : {}),
    ...(errors !== undefined ? { errors } : {}),
  };
}

/** The WWW-Authenticate header every 401 carries. */
export const BEARER_CHALLENGE = 'Bearer realm="modelpress"';

export function sendProblem(reply: FastifyReply, code: ErrorCode, detail: string, extra: { errors?: unknown; retryAfterSec?: number } = {}): FastifyReply {
  const problem = problemOf(code, detail, reply.request.url, extra.errors);
  if (code === 'unauthorized') reply.header('WWW-Authenticate', BEARER_CHALLENGE);
  if (extra.retryAfterSec !== undefined) reply.header('Retry-After', String(Math.max(1, Math.ceil(extra.retryAfterSec))));
  return reply.code(problem.status).type('application/problem+json').send(JSON.stringify(problem));
}

function fromFastifyError(err: FastifyError): { code: ErrorCode; detail: string; errors?: unknown } | null {
  if (err.validation) {
    return {
      code: 'invalid_input',
      detail: `request ${err.validationContext ?? ''} is invalid: ${err.message}`,
      errors: err.validation.map((v) => ({ path: v.instancePath || '/', message: v.message ?? 'invalid' })),
    };
  }
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || err.code === 'FST_REQ_FILE_TOO_LARGE' || err.code === 'FST_FILES_LIMIT' || err.code === 'FST_PARTS_LIMIT') {
    return { code: 'payload_too_large', detail: err.message };
  }
  if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') return { code: 'invalid_input', detail: `unsupported content type: ${err.message}` };
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) return { code: 'invalid_input', detail: err.message };
  return null;
}

const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', '57P01', '57P02', '57P03', '08000', '08001', '08003', '08004', '08006', 'P1001', 'P1002', 'P1017', 'P2024']);
const UNREACHABLE_TEXT = /Connection terminated|connection timeout|timeout exceeded when trying to connect|Can't reach database|server closed the connection|terminating connection due to administrator command|the database system is (starting up|shutting down)|DatabaseNotReachable|ConnectionClosed/i;

/** Whether an error (or any error in its cause chain) says Postgres is unreachable: 503, not 500. */
export function isDatabaseUnreachable(err: unknown): boolean {
  for (let e = err as Record<string, unknown> | undefined, i = 0; e && typeof e === 'object' && i < 8; e = e.cause as Record<string, unknown> | undefined, i++) {
    for (const k of ['code', 'kind', 'originalCode']) if (typeof e[k] === 'string' && UNREACHABLE_CODES.has(e[k] as string)) return true;
    if (typeof e.kind === 'string' && UNREACHABLE_TEXT.test(e.kind)) return true;
    if (typeof e.message === 'string' && UNREACHABLE_TEXT.test(e.message)) return true;
  }
  return false;
}

/** ioredis's errors for a command it could not send (request-path connections fail fast, never queue). */
const REDIS_UNREACHABLE_TEXT = /enableOfflineQueue options is false|Connection is closed|max retries per request/i;

function isRedisUnreachable(err: unknown): boolean {
  const e = err as { name?: unknown; message?: unknown } | null;
  return !!e && (e.name === 'MaxRetriesPerRequestError' || (typeof e.message === 'string' && REDIS_UNREACHABLE_TEXT.test(e.message)));
}

export default fp(
  async function problems(app: FastifyInstance) {
    app.addSchema(ProblemSchema);
    app.setErrorHandler((err: FastifyError, req, reply) => {
      if (err instanceof ServiceError) {
        // a dependency's failure: the client gets the short reason, the operator the whole story
        if (err.code === 'unavailable' && err.cause) req.log.warn({ err: err.cause }, err.message);
        return sendProblem(reply, err.code, err.message, { ...(err.details !== undefined ? { errors: err.details } : {}), ...(err.retryAfterSec !== undefined ? { retryAfterSec: err.retryAfterSec } : {}) });
      }
      if (err instanceof InvalidRecipeError) return sendProblem(reply, 'invalid_recipe', err.message, { errors: err.problems });
      if (err instanceof ModelpressError && err.code !== 'internal') {
        return sendProblem(reply, err.code, err.message, err.details !== undefined ? { errors: err.details } : {});
      }
      if (isDatabaseUnreachable(err)) return sendProblem(reply, 'unavailable', 'the database is unreachable; try again shortly', { retryAfterSec: 5 });
      if (isRedisUnreachable(err)) return sendProblem(reply, 'unavailable', 'Redis is unreachable; try again shortly', { retryAfterSec: 5 });
      const known = fromFastifyError(err);
      if (known) return sendProblem(reply, known.code, known.detail, known.errors !== undefined ? { errors: known.errors } : {});
      req.log.error({ err }, 'unhandled error');
      return sendProblem(reply, 'internal', 'internal error; see the server log');
    });
    app.setNotFoundHandler((req, reply) => sendProblem(reply, 'not_found', `no route ${req.method} ${req.url.split('?')[0]}`));
  },
  { name: 'problems' },
);
