// Bearer API keys, checked in onRequest: before any body (upload) is read.
import fp from 'fastify-plugin';
import type { FastifyInstance } from 'fastify';
import { ServiceError } from '../../errors.js';
import { verifyApiKey } from '../db/keys.js';

declare module 'fastify' {
  interface FastifyRequest {
    ownerId: string;
  }
}

export default fp(
  async function auth(app: FastifyInstance) {
    app.decorateRequest('ownerId', '');
    app.addHook('onRequest', async (req) => {
      const header = req.headers.authorization;
      if (!header) throw new ServiceError('unauthorized', 'missing API key: send Authorization: Bearer <key>');
      const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
      if (!m) throw new ServiceError('unauthorized', 'malformed Authorization header: expected Bearer <key>');
      let owner: string | null;
      try {
        owner = await verifyApiKey(app.db, m[1]!);
      } catch (err) {
        throw new ServiceError('unavailable', 'cannot check the API key: the database is unreachable', { cause: err, retryAfterSec: 5 });
      }
      if (!owner) throw new ServiceError('unauthorized', 'invalid or revoked API key');
      req.ownerId = owner;
    });
  },
  { name: 'auth', dependencies: ['infra'] },
);
