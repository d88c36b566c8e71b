// Where a measurement was taken: reports carry it so numbers can be compared honestly.
import { createRequire } from 'node:module';
import os from 'node:os';

const require = createRequire(import.meta.url);

export interface Environment {
  cpuModel: string;
  cores: number;
  totalMemoryBytes: number;
  platform: string;
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
    node: process.version,
    onnxruntime: packageVersion('onnxruntime-node'),
    modelpress: modelpressVersion(),
  };
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
