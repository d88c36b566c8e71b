// The worker's own temporary folders, one per attempt: the job process's empty working directory
// and the result it writes, which the job service then stores by key. A worker killed outright
// leaves its folders behind; a worker on the same machine sweeps them once no attempt can be alive.
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PREFIX = 'modelpress-attempt-';

export interface AttemptDir {
  /** Empty: the job process's working directory. */
  cwd: string;
  /** Where the job process writes the compressed model. */
  result: string;
  /** Where a goal job writes its best-so-far and frontier models for the worker to store. */
  models: string;
  remove(): Promise<void>;
}

export async function attemptDir(jobId: string, attempt: number): Promise<AttemptDir> {
  const dir = await mkdtemp(join(tmpdir(), `${PREFIX}${jobId}-${attempt}-`));
  const cwd = join(dir, 'work');
  const models = join(dir, 'models');
  await mkdir(cwd);
  await mkdir(models);
  return { cwd, result: join(dir, 'result.onnx'), models, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** Removes attempt folders last changed more than `maxAgeMs` ago; returns their names. */
export async function sweepAttemptDirs(maxAgeMs: number): Promise<string[]> {
  const removed: string[] = [];
  for (const name of await readdir(tmpdir())) {
    if (!name.startsWith(PREFIX)) continue;
    const path = join(tmpdir(), name);
    const st = await stat(path).catch(() => null);
    if (!st || st.mtimeMs > Date.now() - maxAgeMs) continue;
    await rm(path, { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}
