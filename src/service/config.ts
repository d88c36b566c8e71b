// Service configuration from the environment, validated once at start with every problem listed.
import { existsSync } from 'node:fs';
import { totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { UNPACKED_PER_PACKED_BYTE } from '../bundles/unpack.js';
import { InvalidInputError } from '../errors.js';

export interface ServiceConfig {
  databaseUrl: string;
  redisUrl: string;
  host: string;
  port: number;
  /** Where uploads and artifacts are stored: a local directory (the default) or an S3-compatible bucket. */
  storage: StorageConfig;
  /** Downloads answer with a 302 to a short-lived presigned URL instead of streaming (S3 only). */
  presignDownloads: boolean;
  maxUploadBytes: number;
  /** The most an uploaded bundle (.tar, .tar.gz, .zip) may unpack to (zip bombs stop here). */
  maxUnpackedBytes: number;
  maxRecipeBytes: number;
  /** Default (and maximum) wall time of one job. */
  jobTimeoutMs: number;
  workerConcurrency: number;
  /** Job creations per owner per minute. */
  rateLimitJobsPerMinute: number;
  /** Queued + running jobs per owner. */
  maxActiveJobsPerOwner: number;
  /** Model uploads (POST /v1/models) per owner per minute. */
  rateLimitUploadsPerMinute: number;
  /** Stored models per owner, and their total bytes. */
  maxModelsPerOwner: number;
  maxModelBytesPerOwner: number;
  /** The longest a request (an upload) may take; temp files older than this are swept at start. */
  requestTimeoutMs: number;
  /** A connection that sends nothing for this long is closed (a stalled upload). */
  idleTimeoutMs: number;
  /** A worker serves its Prometheus metrics on this port (null: it serves none; the API serves /metrics on `port`). */
  metricsPort: number | null;
  /** When set, every /metrics endpoint (API and workers) requires `Authorization: Bearer <token>`. */
  metricsToken: string | null;
  /** How many times a job may be started before it is failed (worker crashes, stalls). */
  maxJobStarts: number;
  /** How long a stalled (worker died) job keeps its lock before another worker takes it over. */
  jobLockMs: number;
  /** Bounded wait for in-flight work on SIGTERM. */
  shutdownTimeoutMs: number;
  /** Memory limit of a job's child process (MB; RLIMIT_AS + V8 heap); 0 = none. */
  jobMemoryMb: number;
  queueName: string;
  /** A finished job's artifact, best so far and frontier models are deleted this many days after it ended (0: kept until deleted). */
  artifactTtlDays: number;
  /** A model not used for this many days, and a finished job's data files this many days after it was created, are deleted (0: kept). */
  uploadTtlDays: number;
}

/**
 * The store, from MODELPRESS_STORAGE_URL (`s3://bucket/prefix`; unset: the local directory
 * MODELPRESS_DATA_DIR), S3_ENDPOINT, S3_FORCE_PATH_STYLE and AWS_REGION. Credentials are never part of
 * the config: the AWS SDK reads them (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile, an instance role).
 */
export type StorageConfig =
  | { kind: 'local'; dir: string }
  | { kind: 's3'; bucket: string; prefix: string; endpoint: string | null; forcePathStyle: boolean; region: string | null };

const GiB = 1024 ** 3;

type Env = Record<string, string | undefined>;

function intVar(env: Env, name: string, fallback: number, min: number, max: number, problems: string[]): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min || v > max) {
    problems.push(`${name}=${JSON.stringify(raw)}: expected an integer in [${min}, ${max}]`);
    return fallback;
  }
  return v;
}

function urlVar(env: Env, name: string, fallback: string, protocols: string[], problems: string[]): string {
  const raw = env[name] || fallback;
  try {
    const u = new URL(raw);
    if (!protocols.includes(u.protocol)) problems.push(`${name}: expected a ${protocols.join(' or ')} URL, got '${u.protocol}'`);
  } catch {
    problems.push(`${name}: not a URL`);
  }
  return raw;
}

function flagVar(env: Env, name: string, problems: string[]): boolean {
  const raw = (env[name] ?? '').trim().toLowerCase();
  if (['', '0', 'false', 'no', 'off'].includes(raw)) return false;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  problems.push(`${name}=${JSON.stringify(env[name])}: expected 1 or 0 (true or false)`);
  return false;
}

const BUCKET_RE = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const PREFIX_SEGMENT_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

function storageVar(env: Env, problems: string[]): StorageConfig {
  const raw = env.MODELPRESS_STORAGE_URL?.trim();
  if (!raw) {
    for (const name of ['S3_ENDPOINT', 'S3_FORCE_PATH_STYLE']) {
      if (env[name]) problems.push(`${name} is set but MODELPRESS_STORAGE_URL is not: set MODELPRESS_STORAGE_URL=s3://bucket/prefix to use S3 (without it, the store is the local directory MODELPRESS_DATA_DIR)`);
    }
    return { kind: 'local', dir: resolve(env.MODELPRESS_DATA_DIR || 'data') };
  }
  const m = /^s3:\/\/([^/?#]+)(?:\/([^?#]*))?$/.exec(raw);
  const bucket = m?.[1] ?? '';
  const segments = (m?.[2] ?? '').split('/').filter((x) => x !== '');
  if (!m) problems.push(`MODELPRESS_STORAGE_URL=${JSON.stringify(raw.replace(/\/\/[^/]*@/, '//…@'))}: expected s3://bucket or s3://bucket/prefix`);
  else if (bucket.includes('@')) problems.push('MODELPRESS_STORAGE_URL: credentials do not belong in the URL; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY');
  else if (!BUCKET_RE.test(bucket) || bucket.includes('..')) problems.push(`MODELPRESS_STORAGE_URL: '${bucket}' is not a valid bucket name (3-63 lowercase letters, digits, dots and hyphens)`);
  else if (segments.some((x) => !PREFIX_SEGMENT_RE.test(x) || x.includes('..'))) problems.push(`MODELPRESS_STORAGE_URL: the prefix '${m[2]}' may hold only letters, digits, '.', '_', '-' and '/'`);
  let endpoint: string | null = null;
  if (env.S3_ENDPOINT) {
    endpoint = urlVar(env, 'S3_ENDPOINT', '', ['http:', 'https:'], problems).replace(/\/+$/, '');
  }
  return { kind: 's3', bucket, prefix: segments.join('/'), endpoint, forcePathStyle: flagVar(env, 'S3_FORCE_PATH_STYLE', problems), region: env.AWS_REGION || env.AWS_DEFAULT_REGION || null };
}

export function loadConfig(env: Env = process.env): ServiceConfig {
  const problems: string[] = [];
  const config: ServiceConfig = {
    databaseUrl: urlVar(env, 'DATABASE_URL', 'postgresql://postgres@127.0.0.1:5432/modelpress', ['postgres:', 'postgresql:'], problems),
    redisUrl: urlVar(env, 'REDIS_URL', 'redis://127.0.0.1:6379', ['redis:', 'rediss:'], problems),
    host: env.HOST || '0.0.0.0',
    port: intVar(env, 'PORT', 8080, 0, 65535, problems),
    storage: storageVar(env, problems),
    presignDownloads: flagVar(env, 'MODELPRESS_PRESIGN', problems),
    maxUploadBytes: intVar(env, 'MAX_UPLOAD_BYTES', 2 * GiB, 1, Number.MAX_SAFE_INTEGER, problems),
    maxUnpackedBytes: 0,
    maxRecipeBytes: intVar(env, 'MAX_RECIPE_BYTES', 256 * 1024, 64, 64 * 1024 * 1024, problems),
    jobTimeoutMs: intVar(env, 'JOB_TIMEOUT_MS', 30 * 60 * 1000, 100, 7 * 24 * 3600 * 1000, problems),
    workerConcurrency: intVar(env, 'WORKER_CONCURRENCY', 1, 1, 256, problems),
    rateLimitJobsPerMinute: intVar(env, 'RATE_LIMIT_JOBS_PER_MINUTE', 60, 1, 1_000_000, problems),
    maxActiveJobsPerOwner: intVar(env, 'MAX_ACTIVE_JOBS_PER_OWNER', 20, 1, 1_000_000, problems),
    rateLimitUploadsPerMinute: intVar(env, 'RATE_LIMIT_UPLOADS_PER_MINUTE', 30, 1, 1_000_000, problems),
    maxModelsPerOwner: intVar(env, 'MAX_MODELS_PER_OWNER', 200, 1, 10_000_000, problems),
    maxModelBytesPerOwner: intVar(env, 'MAX_MODEL_BYTES_PER_OWNER', 50 * GiB, 1, Number.MAX_SAFE_INTEGER, problems),
    requestTimeoutMs: intVar(env, 'REQUEST_TIMEOUT_MS', 3600_000, 1000, 7 * 24 * 3600_000, problems),
    idleTimeoutMs: intVar(env, 'IDLE_TIMEOUT_MS', 30_000, 100, 3600_000, problems),
    metricsPort: env.METRICS_PORT ? intVar(env, 'METRICS_PORT', 0, 0, 65535, problems) : null,
    metricsToken: env.METRICS_TOKEN || null,
    maxJobStarts: intVar(env, 'MAX_JOB_STARTS', 3, 1, 100, problems),
    jobLockMs: intVar(env, 'JOB_LOCK_MS', 30_000, 1000, 3600_000, problems),
    shutdownTimeoutMs: intVar(env, 'SHUTDOWN_TIMEOUT_MS', 10_000, 0, 3600_000, problems),
    jobMemoryMb: 0,
    queueName: env.MODELPRESS_QUEUE || 'modelpress-jobs',
    artifactTtlDays: intVar(env, 'ARTIFACT_TTL_DAYS', 0, 0, 36_500, problems),
    uploadTtlDays: intVar(env, 'UPLOAD_TTL_DAYS', 0, 0, 36_500, problems),
  };
  // default: three quarters of this machine's memory, shared by the jobs one worker runs at once
  const defaultJobMemoryMb = Math.floor((0.75 * totalmem()) / 2 ** 20 / config.workerConcurrency);
  config.jobMemoryMb = intVar(env, 'JOB_MEMORY_MB', defaultJobMemoryMb, 0, 1024 * 1024, problems);
  config.maxUnpackedBytes = intVar(env, 'MAX_UNPACKED_BYTES', UNPACKED_PER_PACKED_BYTE * config.maxUploadBytes, 1, Number.MAX_SAFE_INTEGER, problems);
  if (!/^[A-Za-z0-9_-]{1,100}$/.test(config.queueName)) problems.push('MODELPRESS_QUEUE: letters, digits, _ and - only');
  if (problems.length > 0) throw new InvalidInputError(`invalid service configuration:\n  ${problems.join('\n  ')}`, { details: problems });
  return config;
}

/** The repository/package root (holds prisma/migrations), found from this module's location. */
export function packageRoot(): string {
  // dist/src/service/config.js or src/service/config.ts → three levels up, then up to package.json
  let dir = new URL('.', import.meta.url).pathname;
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'prisma'))) return dir;
    dir = dirname(dir);
  }
  return process.cwd();
}
