// Serving a registry: the optional bearer token (METRICS_TOKEN) every /metrics endpoint checks, and the
// worker's own small HTTP server on METRICS_PORT (the API serves its registry as a Fastify route).
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { BEARER_CHALLENGE, problemOf, type Problem } from '../plugins/problems.js';

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Why a request may not read the metrics (the 401's detail), or null when it may. Without a token, everyone may. */
export function metricsAuthProblem(authorization: string | undefined, token: string | null): string | null {
  if (token === null) return null;
  if (!authorization) return 'missing metrics token: send Authorization: Bearer <METRICS_TOKEN>';
  const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  if (!m) return 'malformed Authorization header: expected Bearer <METRICS_TOKEN>';
  // compared as digests: constant time, whatever the lengths
  return timingSafeEqual(digest(m[1]!), digest(token)) ? null : 'invalid metrics token';
}

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/** GET /metrics on host:port (port 0: any free one); everything else is a 404 problem. */
export async function serveMetrics(registry: Registry, opts: { host: string; port: number; token: string | null }): Promise<MetricsServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const problem = (p: Problem, headers: Record<string, string> = {}) => {
      res.writeHead(p.status, { 'content-type': 'application/problem+json', ...headers }).end(JSON.stringify(p));
    };
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) return problem(problemOf('not_found', `no route ${req.method} ${path}`, path));
    const denied = metricsAuthProblem(req.headers.authorization, opts.token);
    if (denied) return problem(problemOf('unauthorized', denied, path), { 'www-authenticate': BEARER_CHALLENGE });
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(req.method === 'HEAD' ? undefined : text),
      (err: Error) => problem(problemOf('internal', `metrics could not be collected: ${err.message}`, path)),
    );
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
