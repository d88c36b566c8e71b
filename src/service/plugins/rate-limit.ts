// Per-owner request rates: @fastify/rate-limit with its Redis store, so every API instance counts
// against the same window (one minute from an owner's first request). Registered in the authenticated
// scope; its hook runs in preHandler: after auth (the owner is the key) and after a JSON body passed
// its schema (a rejected request is not counted), before the handler reads any upload. Routes opt in
// with `config: { rateLimit: perMinute(…) }`. Without Redis the store throws: the problems plugin makes that a 503.
import type { FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import type { RateLimitOptions, RateLimitPluginOptions } from '@fastify/rate-limit';
import { ServiceError } from '../../errors.js';

export function rateLimitOptions(redis: Redis): RateLimitPluginOptions {
  return {
    global: false,
    redis,
    nameSpace: 'modelpress:ratelimit:',
    hook: 'preHandler',
    keyGenerator: (req) => req.ownerId,
  };
}

/** At most `max` requests to a route per owner per minute; `exempt` requests are not counted. */
export function perMinute(max: number, what: string, exempt?: (req: FastifyRequest) => Promise<boolean>): RateLimitOptions {
  return {
    max,
    timeWindow: 60_000,
    ...(exempt ? { allowList: (req: FastifyRequest) => exempt(req) } : {}),
    errorResponseBuilder: (_req, ctx) => new ServiceError('rate_limited', `at most ${max} ${what} per minute per owner`, { retryAfterSec: ctx.ttl / 1000 }),
  };
}
