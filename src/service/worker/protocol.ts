// Messages between a worker and its per-job child process (IPC, JSON).
import type { PipelineProgress } from '../../pipeline/pipeline.js';
import type { ErrorCode } from '../../errors.js';
import type { SearchTrialReport } from '../../report/search.js';
import type { SearchProgress } from '../../search/state.js';
import type { ArtifactFormat } from '../jobs/service.js';
import type { WrittenModel } from '../jobs/trials.js';

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
  /** Where a goal job writes its best-so-far and frontier models, one new file each (the worker stores and moves them). */
  modelsDir: string;
  /** The job process's own empty working directory (an uploaded bundle is unpacked here). */
  workDir: string;
  /** The most an uploaded bundle may unpack to. */
  maxUnpackedBytes: number;
  /** The job process's memory limit (MB; 0 = none), for the error message when it is hit. */
  memoryLimitMb: number;
}

export type ChildMessage =
  | { type: 'progress'; progress: PipelineProgress; search?: SearchProgress }
  /** A recipe step's pass finished (for the worker's pass_duration_seconds, whatever becomes of the job). */
  | { type: 'pass'; pass: string; durationMs: number }
  /** A goal job's search: a trial finished; a new best so far (with the search report as it stands); a frontier model at the end. */
  | { type: 'trial'; trial: SearchTrialReport }
  | { type: 'best'; trial: number; model: WrittenModel; report: unknown }
  | { type: 'frontier'; trial: number; model: WrittenModel }
  | { type: 'done'; sha256: string; sizeBytes: number; format: ArtifactFormat; report: unknown }
  | { type: 'error'; code: ErrorCode; message: string };
