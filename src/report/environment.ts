// Where a measurement was taken: reports carry it so numbers can be compared honestly.
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import os from 'node:os';

const require = createRequire(import.meta.url);

export interface Environment {
  cpuModel: string;
  cores: number;
  totalMemoryBytes: number;
  platform: string;
  /** The int8 dot-product instructions onnxruntime's kernels can use here (they decide whether 8-bit weights can saturate). */
  int8Dot: string;
  node: string;
  onnxruntime: string;
  modelpress: string;
}

function packageVersion(name: string): string {
  try {
    return (require(`${name}/package.json`) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

export function environment(): Environment {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    totalMemoryBytes: os.totalmem(),
    platform: `${os.platform()}-${os.arch()}`,
    int8Dot: int8DotInstructions(),
    node: process.version,
    onnxruntime: packageVersion('onnxruntime-node'),
    modelpress: modelpressVersion(),
  };
}

/** 'AVX-512 VNNI', 'AVX-VNNI', 'AVX2 without VNNI' (x86 Linux, from /proc/cpuinfo), or 'unknown'. */
export function int8DotInstructions(): string {
  let flags: Set<string>;
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags'));
    if (!line) return 'unknown';
    flags = new Set(line.split(':')[1]!.trim().split(/\s+/));
  } catch {
    return 'unknown';
  }
  if (flags.has('avx512_vnni')) return 'AVX-512 VNNI';
  if (flags.has('avx_vnni')) return 'AVX-VNNI';
  if (flags.has('avx2')) return 'AVX2 without VNNI';
  return 'unknown';
}

export function modelpressVersion(): string {
  for (const rel of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = require(rel) as { name?: string; version: string };
      if (pkg.name === 'modelpress') return pkg.version;
    } catch {
      // try the next layout (src vs dist)
    }
  }
  return 'unknown';
}

/** JSON.stringify that keeps non-finite numbers readable (SQNR of identical outputs is Infinity). */
export function toJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v), 2);
}
