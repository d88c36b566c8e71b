// Which ops onnxruntime's CPU provider cannot run in float16: every single-op ONNX backend test model
// (libonnx-testdata node/*, `_expanded` variants left out) is converted with convert.fp16 blocking
// nothing, and onnxruntime is asked to load the result and run it on the test's own inputs (some
// kernels refuse float16 only for some attributes, at run time). The ops it refuses, with its reason, are
// printed; FP16_OP_RULES in src/passes/convert-fp16.ts keeps them float32. Run after an onnxruntime
// upgrade: `node dist/src/bench/fp16-kernels.js`.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { decodeModel, encodeModel } from '../onnx/model-io.js';
import { convertFp16Pass } from '../passes/convert-fp16.js';
import { ChangeLog } from '../pipeline/pass.js';
import { parseRecipe } from '../pipeline/recipe.js';
import { createSession, type Feeds } from '../runtime/ort.js';
import { openDataset } from '../data/samples.js';
import { backendModels } from './zoo-models.js';

export async function opsWithoutFloat16Kernels(): Promise<Map<string, string>> {
  const step = parseRecipe({ steps: [{ pass: 'convert.fp16', opBlockList: [], rangeCheck: false }] }).steps[0]!;
  const refused = new Map<string, string>();
  for (const m of backendModels().filter((x) => x.id.startsWith('node/') && !x.id.endsWith('_expanded'))) {
    let model;
    try {
      model = decodeModel(readFileSync(m.path));
    } catch {
      continue;
    }
    const ops = new Set(model.graph.nodes.map((n) => n.opType));
    if (ops.size !== 1) continue;
    const op = [...ops][0]!;
    let bytes: Uint8Array;
    try {
      const out = await convertFp16Pass.run(model, step as never, {
        changes: new ChangeLog(),
        progress: () => {},
        sampleInputs: async () => [],
        samplesAreSynthetic: true,
        samplesAreCalibration: false,
        evaluationInputs: async () => [],
      });
      bytes = encodeModel(out);
    } catch {
      continue;
    }
    let feeds: Feeds = {};
    try {
      feeds = m.dataDir ? (openDataset(m.dataDir, model).batches({ batchSize: 1 }).next().value ?? {}) : {};
    } catch {
      // inputs modelpress cannot read: the model is only loaded
    }
    const loadAndRun = async (b: Uint8Array) => {
      const s = await createSession(b);
      try {
        if (Object.keys(feeds).length > 0) await s.run(feeds);
      } finally {
        await s.release();
      }
    };
    try {
      await loadAndRun(bytes);
    } catch (err) {
      // the float32 original must load and run, or the op is not onnxruntime's at this opset at all
      try {
        await loadAndRun(readFileSync(m.path));
      } catch {
        continue;
      }
      if (!refused.has(op)) refused.set(op, `${m.id}: ${(err as Error).message.replace(/\s+/g, ' ').slice(0, 200)}`);
    }
  }
  return refused;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const refused = await opsWithoutFloat16Kernels();
  for (const [op, why] of [...refused].sort()) process.stdout.write(`${op}\t${why}\n`);
}
