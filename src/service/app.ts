// The HTTP API. `buildApp` returns the Fastify instance (tests use app.inject); `serve` listens.
import Fastify, { type FastifyInstance } from 'fastify';
import multipart from '@fastify/multipart';
import rateLimit from '@fastify/rate-limit';
import swagger, { type SwaggerTransformObject } from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { Registry } from 'prom-client';
import type { ServiceConfig } from './config.js';
import infra, { type Infra } from './plugins/infra.js';
import problems from './plugins/problems.js';
import metrics from './plugins/metrics.js';
import auth from './plugins/auth.js';
import { rateLimitOptions } from './plugins/rate-limit.js';
import services from './plugins/services.js';
import healthRoutes from './routes/health.js';
import metricsRoutes from './routes/metrics.js';
import passRoutes from './routes/passes.js';
import recipeRoutes from './routes/recipes.js';
import eventRoutes from './routes/events.js';
import webRoutes from './routes/web.js';
import { ServiceError } from '../errors.js';
import { jsonTextDepth, MAX_JSON_DEPTH } from '../pipeline/recipe.js';
import jobRoutes, { JOB_MULTIPART_BODY } from './routes/jobs.js';
import modelRoutes, { MODEL_MULTIPART_BODY } from './routes/models.js';
import trialRoutes from './routes/trials.js';

type OpenApiDocument = { paths?: Record<string, { post?: { requestBody?: { content?: Record<string, unknown> } } }> };

/** Adds a multipart/form-data request body to the POST of each path. */
function withMultipartBodies(doc: OpenApiDocument, bodies: Record<string, object>): OpenApiDocument {
  for (const [path, schema] of Object.entries(bodies)) {
    const post = doc.paths?.[path]?.post;
    if (!post) continue;
    post.requestBody = { ...post.requestBody, content: { ...post.requestBody?.content, 'multipart/form-data': { schema } } };
  }
  return doc;
}

export interface BuildOptions {
  config: ServiceConfig;
  /** Database, Redis, queue and storage to use instead of those the config names (the caller closes them). */
  infra?: Infra;
  logger?: boolean | object;
  /** The registry /metrics serves (default: a new one with the process metrics; never prom-client's global one). */
  metricsRegistry?: Registry;
  /** Destroy open connections on close (tests); the default closes idle ones and drains the rest. */
  forceCloseConnections?: boolean;
}

export async function buildApp(opts: BuildOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: opts.logger ?? false,
    bodyLimit: Math.max(opts.config.maxRecipeBytes + 4096, 1024 * 1024),
    return503OnClosing: true,
    // a stalled upload is cut after idleTimeoutMs of silence; no request may take longer than requestTimeoutMs
    connectionTimeout: opts.config.idleTimeoutMs,
    requestTimeout: opts.config.requestTimeoutMs,
    ...(opts.forceCloseConnections ? { forceCloseConnections: true } : {}),
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array' } },
  });
  await app.register(problems);
  await app.register(metrics, { registry: opts.metricsRegistry }); // before any route: it times them all
  // JSON bodies are checked for depth before they are parsed: nothing downstream may recurse 100k deep
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    if (jsonTextDepth(body as string) > MAX_JSON_DEPTH) {
      return done(new ServiceError('invalid_input', `the JSON body is nested deeper than ${MAX_JSON_DEPTH} levels`), undefined);
    }
    parseJson(req, body as string, done);
  });
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'modelpress', version: '0.1.0', description: 'Compress ONNX models: POST a model and a recipe, poll the job, download the result and its report.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'API key from `modelpress keys create <name>`' } } },
    },
    // uploads are streamed, not parsed into a body Fastify could validate: their form is documented here
    transformObject: (doc) => {
      const openapi = (doc as { openapiObject: OpenApiDocument }).openapiObject;
      return withMultipartBodies(openapi, { '/v1/jobs': JOB_MULTIPART_BODY, '/v1/models': MODEL_MULTIPART_BODY }) as ReturnType<SwaggerTransformObject>;
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  await app.register(infra, { config: opts.config, infra: opts.infra });
  await app.register(services);
  await app.register(multipart, { limits: { fileSize: opts.config.maxUploadBytes } });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  await app.register(healthRoutes);
  await app.register(metricsRoutes);
  // public: outside the authenticated scope below
  await app.register(passRoutes, { prefix: '/v1' });
  await app.register(recipeRoutes, { prefix: '/v1' });
  await app.register(webRoutes);
  await app.register(
    async (v1) => {
      await v1.register(auth);
      await v1.register(rateLimit, rateLimitOptions(app.redis)); // limits are per owner: after auth
      await v1.register(modelRoutes);
      await v1.register(jobRoutes);
      await v1.register(trialRoutes);
      await v1.register(eventRoutes);
    },
    { prefix: '/v1' },
  );
  return app;
}

/** Runs the API until SIGTERM/SIGINT, then drains in-flight requests (bounded). */
export async function serve(config: ServiceConfig): Promise<FastifyInstance> {
  const app = await buildApp({ config, logger: { level: process.env.LOG_LEVEL ?? 'info' } });
  await app.listen({ host: config.host, port: config.port });
  const stop = (signal: string) => {
    app.log.info(`${signal}: shutting down`);
    // uploads still running when the drain time is up are cut: their temp files go first
    const discard = () => Promise.race([app.storage.discardInFlight().catch(() => {}), new Promise((r) => setTimeout(r, 5000).unref())]);
    const force = setTimeout(() => void discard().then(() => process.exit(1)), config.shutdownTimeoutMs).unref();
    app.close().then(async () => {
      clearTimeout(force);
      await discard();
      process.exit(0);
    });
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  return app;
}
