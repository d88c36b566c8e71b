// Child processes for the benchmarks: each in its own process group (what it forks is stopped with
// it), its output's tail kept for diagnostics, SIGTERM then SIGKILL of the whole group on stop, and
// nothing left running when this process exits.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface Proc {
  name: string;
  child: ChildProcess;
  pid: number;
  /** The last lines of stdout+stderr (for diagnostics). */
  tail: string[];
  /** pino lines at level error/fatal. */
  errorLines: number;
  exit: { code: number | null; signal: string | null } | null;
  exited: Promise<void>;
  /** Set while we stop it on purpose: an exit then is not a failure. */
  stopping: boolean;
}

/** Everything started here, for stopAll and the exit hook. */
const procs: Proc[] = [];

/** Runs `node <cli> ...args` detached, with `env` over this process's environment. */
export function startProc(cli: string, name: string, args: string[], env: Record<string, string>): Proc {
  // detached: its own process group, so the job runner the worker forks is stopped with it
  const child = spawn(process.execPath, [cli, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  if (!child.pid) throw new Error(`could not start ${name}`);
  let resolveExit!: () => void;
  const p: Proc = { name, child, pid: child.pid, tail: [], errorLines: 0, exit: null, exited: new Promise((r) => (resolveExit = r)), stopping: false };
  let partial = '';
  const onData = (d: Buffer) => {
    const lines = (partial + d.toString('utf8')).split('\n');
    partial = lines.pop()!;
    for (const line of lines) {
      if (/"level":(50|60)\b/.test(line)) p.errorLines++;
      // per-request info lines would push everything useful out of the tail
      if (/"msg":"(incoming request|request completed)"/.test(line) && !/"statusCode":5\d\d/.test(line)) continue;
      p.tail.push(line.length > 2000 ? `${line.slice(0, 2000)}…` : line);
    }
    if (p.tail.length > 200) p.tail.splice(0, p.tail.length - 200);
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  child.once('exit', (code, signal) => {
    p.exit = { code, signal };
    resolveExit();
  });
  procs.push(p);
  return p;
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    /* gone */
  }
}

/** SIGTERM to the process, then SIGKILL to its whole group after `graceMs` (and to any leftover in it). */
export async function stopProc(p: Proc, graceMs: number, log: (m: string) => void = () => {}): Promise<void> {
  p.stopping = true;
  if (!p.exit) {
    try {
      process.kill(p.pid, 'SIGTERM');
    } catch {
      /* gone */
    }
    await Promise.race([p.exited, sleep(graceMs)]);
  }
  if (!p.exit || groupAlive(p.pid)) {
    if (!p.exit) log(`${p.name} did not stop within ${graceMs} ms; killing it`);
    killGroup(p.pid, 'SIGKILL');
    await Promise.race([p.exited, sleep(5000)]);
  }
}

// last resort (uncaught errors, process.exit): nothing we started outlives us
process.on('exit', () => {
  for (const p of procs) killGroup(p.pid, 'SIGKILL');
});

/** Resident memory of a process (VmRSS), or null when it is gone. */
export function rssBytes(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Stops every process started here that is still running. */
export async function stopAll(graceMs: number, log?: (m: string) => void): Promise<void> {
  await Promise.all(procs.map((p) => stopProc(p, graceMs, log)));
}
