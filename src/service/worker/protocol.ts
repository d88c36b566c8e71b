// Messages between a worker and its per-job child process (IPC, JSON).
import type { PipelineProgress } from '../../pipeline/pipeline.js';
import type { ErrorCode } from '../../errors.js';
import type { ArtifactFormat } from '../jobs/service.js';

/** Inputs are local copies the store owns (read only); the output goes to the worker's temp folder. */
export interface RunMessage {
  type: 'run';
  jobId: string;
  modelPath: string;
  inputName?: string;
  /** As stored: parsed, with its defaults filled in, when the job was created. */
  recipe: unknown;
  calibrationPath?: string;
  evaluationPath?: string;
  labelsPath?: string;
  /** Where the job process writes the result: a .onnx, or a .tar bundle when it has external data (see `done`). */
  outPath: string;
  /** The job process's own empty working directory (an uploaded bundle is unpacked here). */
  workDir: string;
  /** The most an uploaded bundle may unpack to. */
  maxUnpackedBytes: number;
  /** The job process's memory limit (MB; 0 = none), for the error message when it is hit. */
  memoryLimitMb: number;
}

export type ChildMessage =
  | { type: 'progress'; progress: PipelineProgress }
  | { type: 'done'; sha256: string; sizeBytes: number; format: ArtifactFormat; report: unknown }
  | { type: 'error'; code: ErrorCode; message: string };
