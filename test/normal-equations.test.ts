import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { accumulateCross, accumulateGram, mirrorUpper } from '../src/linalg/index.js';
import { NormalEquations } from '../src/runtime/normal-equations.js';
import { seededRandom } from '../src/runtime/ort.js';

describe('normal equations by onnxruntime', () => {
  it('sums XᵀX and XᵀY over blocks as the sample-by-sample sums do', async () => {
    const d = 37;
    const m = 5;
    const rand = seededRandom(3);
    const G = new Float64Array(d * d);
    const C = new Float64Array(d * m);
    const normal = await NormalEquations.open(d, m);
    try {
      for (const rows of [11, 1, 64]) {
        // ReLU-like features: a third of them zero
        const x = Float64Array.from({ length: rows * d }, () => (rand() < 0.33 ? 0 : rand() * 4 - 1));
        const y = Float64Array.from({ length: rows * m }, () => rand() * 2 - 1);
        for (let r = 0; r < rows; r++) {
          accumulateGram(G, x.subarray(r * d, (r + 1) * d), d);
          accumulateCross(C, x.subarray(r * d, (r + 1) * d), y.subarray(r * m, (r + 1) * m), d, m);
        }
        await normal.add(x, y, rows);
      }
      mirrorUpper(G, d);
      for (let i = 0; i < G.length; i++) assert.ok(Math.abs(normal.G[i]! - G[i]!) <= 1e-12 * Math.max(1, Math.abs(G[i]!)), `G[${i}]: ${normal.G[i]} vs ${G[i]}`);
      for (let i = 0; i < C.length; i++) assert.ok(Math.abs(normal.C[i]! - C[i]!) <= 1e-12 * Math.max(1, Math.abs(C[i]!)), `C[${i}]: ${normal.C[i]} vs ${C[i]}`);
      assert.ok(G.some((v) => v !== 0));
    } finally {
      await normal.release();
    }
  });
});
