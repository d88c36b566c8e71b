// Empirical variational Bayes matrix factorization, analytic solution (Nakajima, Sugiyama, Babacan
// & Tomioka, "Global analytic solution of fully-observed variational Bayesian matrix factorization",
// JMLR 2013). Given the singular values of an L×M matrix (L ≤ M), the noise variance σ² is found by
// minimising the free energy in one dimension; components whose singular value exceeds the
// threshold √(Mσ²(1+τ̄)(1+α/τ̄)) survive. The number of survivors is the rank.

export interface VbmfResult {
  rank: number;
  noiseVariance: number;
  threshold: number;
}

/**
 * @param singularValues all singular values, largest first (length H ≤ L)
 * @param L the smaller dimension, M the larger one
 * @param totalSquares ‖Y‖²_F (so that singular values not passed in count as residual)
 */
export function evbmfRank(singularValues: ArrayLike<number>, L: number, M: number, totalSquares?: number): VbmfResult {
  if (L > M) [L, M] = [M, L];
  const s = Array.from(singularValues).filter((x) => x > 0);
  const H = s.length;
  if (H === 0) return { rank: 0, noiseVariance: 0, threshold: 0 };
  const alpha = L / M;
  const tauBar = 2.5129 * Math.sqrt(alpha); // root of the threshold equation (paper, eq. 22 area)
  const xBar = (1 + tauBar) * (1 + alpha / tauBar);
  const s2 = s.map((x) => x * x);
  const sumS2 = s2.reduce((a, b) => a + b, 0);
  const residual = Math.max(0, (totalSquares ?? sumS2) - sumS2);
  // bounds of σ² (the paper's Theorem / the reference implementation's search interval)
  const eHub = Math.min(Math.ceil(L / (1 + alpha)), H) - 1;
  const upper = (sumS2 + residual) / (L * M);
  const tail = s2.slice(eHub + 1);
  let lower = tail.length > 0 ? Math.max(s2[eHub + 1]! / (M * xBar), tail.reduce((a, b) => a + b, 0) / tail.length / M) : upper * 1e-6;
  if (!(lower < upper)) lower = upper * 1e-6;
  const objective = (sigma2: number): number => {
    let value = residual / (M * sigma2) + (L - H) * Math.log(sigma2);
    for (const v of s2) {
      const x = v / (M * sigma2);
      if (x > xBar) {
        const tau = 0.5 * (x - (1 + alpha) + Math.sqrt((x - (1 + alpha)) ** 2 - 4 * alpha));
        value += x - tau + Math.log((tau + 1) / x) + alpha * Math.log(tau / alpha + 1);
      } else {
        value += x - Math.log(x);
      }
    }
    return value;
  };
  const sigma2 = goldenSectionMinimum(objective, lower, upper);
  const threshold = Math.sqrt(M * sigma2 * (1 + tauBar) * (1 + alpha / tauBar));
  const rank = s.filter((x) => x > threshold).length;
  return { rank, noiseVariance: sigma2, threshold };
}

/** Minimum of a unimodal-enough function on [a, b] (golden section; the objective is cheap). */
function goldenSectionMinimum(f: (x: number) => number, a: number, b: number): number {
  const g = (Math.sqrt(5) - 1) / 2;
  let c = b - g * (b - a);
  let d = a + g * (b - a);
  let fc = f(c);
  let fd = f(d);
  for (let i = 0; i < 200 && Math.abs(b - a) > 1e-12 * Math.abs(b); i++) {
    if (fc < fd) {
      b = d;
      d = c;
      fd = fc;
      c = b - g * (b - a);
      fc = f(c);
    } else {
      a = c;
      c = d;
      fc = fd;
      d = a + g * (b - a);
      fd = f(d);
    }
  }
  return (a + b) / 2;
}
