// 4-bit block-wise weight quantization packed as onnxruntime's MatMulNBits (com.microsoft) expects:
// B [K, N] is stored transposed, per column n: ceil(K / block) blocks of `block` values, two 4-bit
// values per byte (even k in the low nibble); scales [N · blocks]; zero points packed two per byte
// per column ([N · ceil(blocks / 2)]), or absent for symmetric (then onnxruntime uses 8).

export interface NBitsPacked {
  packed: Uint8Array; // [N, blocks, block / 2]
  scales: Float32Array; // [N * blocks]
  zeroPoints: Uint8Array | null; // [N * ceil(blocks / 2)]
  blocks: number;
}

/** `w` is row-major [K, N] float weights. */
export function packMatMulNBits(w: Float32Array, K: number, N: number, block: number, symmetric: boolean): NBitsPacked {
  const blocks = Math.ceil(K / block);
  const blob = block / 2;
  const packed = new Uint8Array(N * blocks * blob);
  const scales = new Float32Array(N * blocks);
  const zpPerCol = Math.ceil(blocks / 2);
  const zeroPoints = symmetric ? null : new Uint8Array(N * zpPerCol);
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < blocks; b++) {
      const k0 = b * block;
      const k1 = Math.min(K, k0 + block);
      let lo = 0;
      let hi = 0;
      let amax = 0;
      for (let k = k0; k < k1; k++) {
        const x = w[k * N + n]!;
        lo = Math.min(lo, x);
        hi = Math.max(hi, x);
        amax = Math.max(amax, Math.abs(x));
      }
      let scale: number;
      let zp: number;
      if (symmetric) {
        scale = amax > 0 ? amax / 7 : 1; // [-7, 7] around the implicit zero point 8
        zp = 8;
      } else {
        scale = hi > lo ? (hi - lo) / 15 : 1;
        zp = Math.max(0, Math.min(15, Math.round(-lo / scale)));
      }
      scales[n * blocks + b] = scale;
      if (zeroPoints) zeroPoints[n * zpPerCol + (b >> 1)]! |= zp << ((b & 1) * 4);
      for (let k = k0; k < k0 + block; k++) {
        const q = k < k1 ? Math.max(0, Math.min(15, Math.round(w[k * N + n]! / scale) + zp)) : zp;
        const i = (n * blocks + b) * blob + ((k - k0) >> 1);
        packed[i]! |= q << (((k - k0) & 1) * 4);
      }
    }
  }
  return { packed, scales, zeroPoints, blocks };
}

/** What MatMulNBits computes with: the packed weights back as row-major [K, N] float. */
export function unpackMatMulNBits(p: NBitsPacked, K: number, N: number, block: number): Float32Array {
  const blob = block / 2;
  const zpPerCol = Math.ceil(p.blocks / 2);
  const w = new Float32Array(K * N);
  for (let n = 0; n < N; n++) {
    for (let b = 0; b < p.blocks; b++) {
      const scale = p.scales[n * p.blocks + b]!;
      const zp = p.zeroPoints ? (p.zeroPoints[n * zpPerCol + (b >> 1)]! >> ((b & 1) * 4)) & 15 : 8;
      for (let k = b * block; k < Math.min(K, (b + 1) * block); k++) {
        const i = (n * p.blocks + b) * blob + ((k - b * block) >> 1);
        const q = (p.packed[i]! >> (((k - b * block) & 1) * 4)) & 15;
        w[k * N + n] = (q - zp) * scale;
      }
    }
  }
  return w;
}
