// The web app: a static bundle (built by scripts/build-web.mjs into dist/web) served at `/`. It talks
// to the same /v1 API with the key the person pastes in; nothing here is authenticated, nothing is
// loaded from elsewhere (the CSP allows this origin only), and the HTML reports it shows are
// sandboxed in frames without scripts.
import { readFileSync, existsSync } from 'node:fs';
import { extname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';

export const WEB_DIR = fileURLToPath(new URL('../../../web/', import.meta.url));

const TYPES: Record<string, string> = { '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8', '.html': 'text/html; charset=utf-8', '.svg': 'image/svg+xml', '.png': 'image/png' };
const CSP = "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; frame-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'";

export default async function webRoutes(app: FastifyInstance) {
  if (!existsSync(join(WEB_DIR, 'index.html'))) {
    app.get('/', { schema: { hide: true } }, async (_req, reply) =>
      reply.code(503).type('text/plain; charset=utf-8').send('the web app is not built: run `npm run build` (it bundles web/ into dist/web)'),
    );
    return;
  }
  // read once: the bundle is a few files
  const files = new Map<string, Buffer>();
  const read = (name: string) => {
    let b = files.get(name);
    if (!b) {
      b = readFileSync(join(WEB_DIR, name));
      files.set(name, b);
    }
    return b;
  };
  app.get('/', { schema: { hide: true } }, async (_req, reply) => reply.header('content-security-policy', CSP).header('cache-control', 'no-cache').type(TYPES['.html']!).send(read('index.html')));
  app.get('/app/*', { schema: { hide: true } }, async (req, reply) => {
    const name = normalize((req.params as { '*': string })['*']).replace(/^(\.\.(\/|$))+/, '');
    const type = TYPES[extname(name)];
    if (!type || name.includes('..') || !existsSync(join(WEB_DIR, name))) return reply.code(404).type('text/plain').send('not found');
    return reply.header('cache-control', 'no-cache').header('x-content-type-options', 'nosniff').type(type).send(read(name));
  });
}
