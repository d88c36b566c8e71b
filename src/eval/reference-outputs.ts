// The original model's outputs on the fidelity batches, kept so every step compares against them
// without running the original again — and so without a session of the original alive beside the
// candidate's. Held in memory up to a budget; past it, written to a private temp file and read back
// one batch at a time (a large model's logits over a few dozen samples are hundreds of MB).
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { ort, type Feeds } from '../runtime/ort.js';

type Numeric = Exclude<ort.Tensor['data'], string[]>;
type NumericCtor = new (buffer: ArrayBuffer) => Numeric;

/** A batch on disk: where each numeric tensor's bytes are; any other tensor stays as it is. */
interface Spilled {
  tensors: { name: string; type: ort.Tensor['type']; dims: readonly number[]; ctor: NumericCtor; offset: number; bytes: number }[];
  kept: Feeds;
}

const outputBytes = (feeds: Feeds): number => Object.values(feeds).reduce((s, t) => s + (ArrayBuffer.isView(t.data) ? t.data.byteLength : 0), 0);

export class ReferenceOutputs {
  private readonly batches: ({ feeds: Feeds } | Spilled)[] = [];
  private memory = 0;
  private disk = 0;
  private dir: string | null = null;
  private fd: number | null = null;

  /** `memoryBytes` in memory, then up to `diskBytes` in the temp file. */
  constructor(
    private readonly memoryBytes: number,
    private readonly diskBytes: number,
  ) {}

  get length(): number {
    return this.batches.length;
  }

  /** Keeps one more batch; false (and keeps nothing more) once both budgets are spent. */
  add(feeds: Feeds): boolean {
    const bytes = outputBytes(feeds);
    if (this.fd === null && this.memory + bytes <= this.memoryBytes) {
      this.memory += bytes;
      this.batches.push({ feeds });
      return true;
    }
    if (this.disk + bytes > this.diskBytes) return false;
    if (this.fd === null) {
      this.dir = mkdtempSync(join(os.tmpdir(), 'modelpress-reference-'));
      this.fd = openSync(join(this.dir, 'outputs.bin'), 'w+', 0o600);
    }
    const spilled: Spilled = { tensors: [], kept: {} };
    for (const [name, t] of Object.entries(feeds)) {
      if (!ArrayBuffer.isView(t.data)) {
        spilled.kept[name] = t;
        continue;
      }
      const data = t.data as Numeric;
      const view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      for (let done = 0; done < view.length; ) done += writeSync(this.fd, view, done, view.length - done, this.disk + done);
      spilled.tensors.push({ name, type: t.type, dims: t.dims, ctor: data.constructor as NumericCtor, offset: this.disk, bytes: view.length });
      this.disk += view.length;
    }
    this.batches.push(spilled);
    return true;
  }

  get(i: number): Feeds {
    const b = this.batches[i];
    if (!b) throw new Error(`reference outputs kept for ${this.batches.length} batches, asked for batch ${i}`);
    if ('feeds' in b) return b.feeds;
    const out: Feeds = { ...b.kept };
    for (const t of b.tensors) {
      const buffer = new ArrayBuffer(t.bytes);
      const view = new Uint8Array(buffer);
      for (let done = 0; done < t.bytes; ) {
        const n = readSync(this.fd!, view, done, t.bytes - done, t.offset + done);
        if (n === 0) throw new Error('the reference outputs file ended early');
        done += n;
      }
      out[t.name] = new ort.Tensor(t.type as 'float32', new t.ctor(buffer) as Float32Array, t.dims);
    }
    return out;
  }

  /** Removes the temp file; the outputs cannot be read after this. */
  dispose(): void {
    if (this.fd !== null) closeSync(this.fd);
    if (this.dir !== null) rmSync(this.dir, { recursive: true, force: true });
    this.fd = null;
    this.dir = null;
    this.batches.length = 0;
  }
}
