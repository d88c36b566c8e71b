// One error hierarchy for the whole product. The `code` is stable (clients match on it);
// it decides the HTTP status and the CLI's exit code.

export type ErrorCode =
  | 'invalid_model' // not ONNX, truncated, inconsistent graph
  | 'unsupported_model' // valid ONNX we refuse on purpose (external data, unknown op domain)
  | 'invalid_recipe' // recipe fails its schema
  | 'invalid_input' // bad CLI usage, bad data file, bad argument
  | 'pass_failed' // a pass could not rewrite this model as configured
  | 'canceled'
  | 'timeout'
  | 'memory_limit' // the job needs more memory than its limit (a tensor over the budget, or the process limit hit)
  | 'internal'
  // service (HTTP API) codes
  | 'unauthorized' // missing, malformed, unknown or revoked API key
  | 'not_found' // no such resource for this owner (other owners' resources look absent too)
  | 'conflict' // the resource is not in a state that allows this (e.g. artifact of an unfinished job)
  | 'idempotency_mismatch' // Idempotency-Key reused with a different request
  | 'rate_limited'
  | 'quota_exceeded' // the owner's stored models are at their count or byte quota
  | 'payload_too_large'
  | 'model_in_use' // a model jobs still refer to cannot be deleted (queued/running ones; finished ones without ?cascade=jobs)
  | 'model_expired' // the model's bytes were deleted after UPLOAD_TTL_DAYS without use: upload it again
  | 'artifact_expired' // the job's result was deleted after ARTIFACT_TTL_DAYS (its report and metrics stay)
  | 'stored_object_missing' // a row names a blob the store does not have (deleted outside modelpress, or the store was switched under the database): upload it again
  | 'unavailable'; // a dependency (Postgres, Redis, the object store) is unreachable

interface CodeInfo {
  httpStatus: number;
  /** The CLI's exit code: 2 for anything the user can fix (input, model, recipe, limits), 1 for our bugs. */
  exitCode: 1 | 2;
}

export const ERROR_CODES: Record<ErrorCode, CodeInfo> = {
  invalid_model: { httpStatus: 422, exitCode: 2 },
  unsupported_model: { httpStatus: 422, exitCode: 2 },
  invalid_recipe: { httpStatus: 400, exitCode: 2 },
  invalid_input: { httpStatus: 400, exitCode: 2 },
  pass_failed: { httpStatus: 422, exitCode: 2 },
  canceled: { httpStatus: 409, exitCode: 2 },
  timeout: { httpStatus: 504, exitCode: 2 },
  memory_limit: { httpStatus: 422, exitCode: 2 },
  internal: { httpStatus: 500, exitCode: 1 },
  unauthorized: { httpStatus: 401, exitCode: 2 },
  not_found: { httpStatus: 404, exitCode: 2 },
  conflict: { httpStatus: 409, exitCode: 2 },
  idempotency_mismatch: { httpStatus: 422, exitCode: 2 },
  rate_limited: { httpStatus: 429, exitCode: 2 },
  quota_exceeded: { httpStatus: 409, exitCode: 2 },
  payload_too_large: { httpStatus: 413, exitCode: 2 },
  model_in_use: { httpStatus: 409, exitCode: 2 },
  model_expired: { httpStatus: 410, exitCode: 2 },
  artifact_expired: { httpStatus: 410, exitCode: 2 },
  stored_object_missing: { httpStatus: 410, exitCode: 2 },
  unavailable: { httpStatus: 503, exitCode: 2 },
};

export class ModelpressError extends Error {
  readonly code: ErrorCode;
  /** Structured detail safe to show a user (e.g. JSON paths of recipe problems). */
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, options: { details?: unknown; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ModelpressError';
    this.code = code;
    this.details = options.details;
  }

  get httpStatus(): number {
    return ERROR_CODES[this.code].httpStatus;
  }

  get exitCode(): 1 | 2 {
    return ERROR_CODES[this.code].exitCode;
  }
}

export class InvalidModelError extends ModelpressError {
  constructor(message: string, options: { details?: unknown; cause?: unknown } = {}) {
    super('invalid_model', message, options);
    this.name = 'InvalidModelError';
  }
}

export class UnsupportedModelError extends ModelpressError {
  constructor(message: string, options: { details?: unknown; cause?: unknown } = {}) {
    super('unsupported_model', message, options);
    this.name = 'UnsupportedModelError';
  }
}

export interface RecipeProblem {
  /** JSON pointer into the recipe, e.g. `/steps/0/opBlockList/2`. */
  path: string;
  message: string;
}

export class InvalidRecipeError extends ModelpressError {
  readonly problems: RecipeProblem[];
  constructor(problems: RecipeProblem[]) {
    const head = problems
      .slice(0, 5)
      .map((p) => `${p.path || '/'}: ${p.message}`)
      .join('; ');
    super('invalid_recipe', `invalid recipe: ${head}${problems.length > 5 ? ` (+${problems.length - 5} more)` : ''}`, {
      details: problems,
    });
    this.name = 'InvalidRecipeError';
    this.problems = problems;
  }
}

export class InvalidInputError extends ModelpressError {
  constructor(message: string, options: { details?: unknown; cause?: unknown } = {}) {
    super('invalid_input', message, options);
    this.name = 'InvalidInputError';
  }
}

export class PassFailedError extends ModelpressError {
  constructor(passName: string, message: string, options: { details?: unknown; cause?: unknown } = {}) {
    super('pass_failed', `${passName}: ${message}`, options);
    this.name = 'PassFailedError';
  }
}

export class MemoryLimitError extends ModelpressError {
  constructor(message: string, options: { details?: unknown; cause?: unknown } = {}) {
    super('memory_limit', message, options);
    this.name = 'MemoryLimitError';
  }
}

export class CanceledError extends ModelpressError {
  constructor(message = 'canceled') {
    super('canceled', message);
    this.name = 'CanceledError';
  }
}

/** Service errors: one class, the code decides the HTTP status; `retryAfterSec` becomes Retry-After. */
export class ServiceError extends ModelpressError {
  readonly retryAfterSec: number | undefined;
  constructor(code: ErrorCode, message: string, options: { details?: unknown; cause?: unknown; retryAfterSec?: number } = {}) {
    super(code, message, options);
    this.name = 'ServiceError';
    this.retryAfterSec = options.retryAfterSec;
  }
}

/** How running out of memory reads: onnxruntime's arena, V8's heap and array buffers, the C++ runtime. */
export const OUT_OF_MEMORY_TEXT = /heap out of memory|Reached heap limit|Fatal process out of memory|Fatal process OOM|std::bad_alloc|Failed to allocate memory|Array buffer allocation failed|Cannot allocate memory/i;

/** Wraps anything thrown into a ModelpressError; unknown errors become `internal`, allocation failures `memory_limit`. */
export function toModelpressError(err: unknown): ModelpressError {
  if (err instanceof ModelpressError) return err;
  if (err instanceof Error && err.name === 'AbortError') return new CanceledError();
  const message = err instanceof Error ? err.message : String(err);
  if (OUT_OF_MEMORY_TEXT.test(message)) return new MemoryLimitError(`ran out of memory: ${message}`, { cause: err });
  return new ModelpressError('internal', message, { cause: err });
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new CanceledError();
}
