// Starting and stopping a job's child process. The child runs under a real memory limit
// (RLIMIT_AS via prlimit: the V8 heap flag alone does not bound onnxruntime's native memory), in an
// empty working directory (a relative path inside a model resolves to nothing), and its stderr is
// kept so that an out-of-memory death can be told apart from other crashes.
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { OUT_OF_MEMORY_TEXT } from '../../errors.js';

const RUNNER = fileURLToPath(new URL('./runner.js', import.meta.url));
const PRLIMIT = ['/usr/bin/prlimit', '/bin/prlimit'].find((p) => existsSync(p));
const KILL_GRACE_MS = 3000;
const STDERR_TAIL = 8192;

/**
 * Address space that node + onnxruntime reserve without using it (V8's code range, shared
 * libraries, thread stacks and malloc arenas): measured at about 1.2 GiB before any model is
 * loaded, so RLIMIT_AS = the job's memory limit + this.
 */
export const RUNTIME_ADDRESS_SPACE_MB = 1536;

export interface JobChild {
  process: ChildProcess;
  /** The last few KB the child wrote to stderr (it is also passed through to the worker's). */
  stderrTail(): string;
  /** Whether the child's death was our doing (stop after an outcome, cancel, timeout). */
  killedByUs(): boolean;
  /** SIGTERM, then SIGKILL after a grace period; resolves when the child is gone. */
  stop(): Promise<void>;
}

export interface ChildLimits {
  /** Memory limit of the job process in MB (0: none). */
  memoryMb: number;
  /** Per-tensor allocation budget handed to the pipeline (MODELPRESS_MAX_TENSOR_MB; 0: its default). */
  maxTensorMb: number;
}

export function memoryLimitEnforced(): boolean {
  return PRLIMIT !== undefined;
}

/** Starts the runner for one attempt in `cwd`, an empty directory the worker owns. */
export function startJobChild(jobId: string, cwd: string, limits: ChildLimits): JobChild {
  const nodeFlags = limits.memoryMb > 0 ? [`--max-old-space-size=${limits.memoryMb}`] : [];
  const limited = limits.memoryMb > 0 && PRLIMIT !== undefined;
  // fork() runs `execPath ...execArgv runner args`: with prlimit as execPath, prlimit sets the limit on
  // itself and execs node in the same process, so the IPC channel and the pid are the child's own
  const child = fork(RUNNER, [`--job=${jobId}`], {
    cwd,
    ...(limited ? { execPath: PRLIMIT, execArgv: [`--as=${(limits.memoryMb + RUNTIME_ADDRESS_SPACE_MB) * 1024 * 1024}`, '--', process.execPath, ...nodeFlags] } : { execArgv: nodeFlags }),
    env: {
      ...process.env,
      ...(limits.maxTensorMb > 0 && !process.env.MODELPRESS_MAX_TENSOR_MB ? { MODELPRESS_MAX_TENSOR_MB: String(limits.maxTensorMb) } : {}),
      // glibc makes an arena per thread (64 MB of address space each); onnxruntime's pools would eat the limit
      MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? '2',
    },
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
  });
  let tail = '';
  child.stderr!.on('data', (chunk: Buffer) => {
    process.stderr.write(chunk);
    tail = (tail + chunk.toString('utf8')).slice(-STDERR_TAIL);
  });
  let ours = false;
  return {
    process: child,
    stderrTail: () => tail,
    killedByUs: () => ours,
    stop() {
      ours = true;
      if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
      return new Promise((resolve) => {
        const hard = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
        child.once('exit', () => {
          clearTimeout(hard);
          resolve();
        });
        child.kill('SIGTERM');
      });
    },
  };
}

export type CrashKind = 'out_of_memory' | 'killed' | 'crashed';

/** What a child's unexpected death most likely was, from its exit and its last stderr. */
export function classifyCrash(code: number | null, signal: NodeJS.Signals | null, stderrTail: string): { kind: CrashKind; detail: string } {
  if (OUT_OF_MEMORY_TEXT.test(stderrTail)) return { kind: 'out_of_memory', detail: `it ran out of memory (${OUT_OF_MEMORY_TEXT.exec(stderrTail)![0]})` };
  if (signal === 'SIGKILL') return { kind: 'killed', detail: 'it was killed by SIGKILL from outside modelpress, most likely by the kernel\'s out-of-memory killer' };
  return { kind: 'crashed', detail: signal ? `it died of ${signal}` : `it exited with code ${code} without a result` };
}
