// Forward and backward passes of a whole network over one chunk of samples.
//
// This is the work a worker thread (or the coordinator itself, at one thread) does for one chunk
// of a minibatch: gather the chunk's samples from the shared dataset, run the layers forward,
// compute the loss and the output δ, and propagate δ back, adding the chunk's gradient sum into
// one gradient slot. `sampleGradientNaive` does the same for a single sample with the tutorial's
// equations written out, and is the reference the block path is tested against.

import { Act, Layout, ParamViews } from './layout.js';
import {
  activate, activateDerivative, activationBackward, activationForward, countCorrect,
  denseBackward, denseBackwardNaive, denseBackwardWeightsRows, denseForward, denseForwardNaive, denseForwardRows,
  lossForwardBackward, nonZeroRows,
} from './kernels.js';
import { LossCode } from './layout.js';

/** Scratch memory for blocks of up to `cap` samples. One per thread; reused for every chunk. */
export interface Workspace {
  readonly cap: number;
  /** acts[k] is n(k) for the block, (n_k × cap) feature-major; acts[0] holds the gathered inputs. */
  readonly acts: Float64Array[];
  /** Output pre-activation z(L), (n_L × cap): the stable losses need z, not only f(z). */
  readonly zOut: Float64Array;
  /** Gathered targets, (n_L × cap). */
  readonly y: Float64Array;
  /** Two ping-pong buffers for δ(k) and Wᵀδ, (max n_k × cap). */
  readonly d0: Float64Array;
  readonly d1: Float64Array;
  /** The input rows of the current block that are not all zero, when few enough of them are to
   *  take the sparse first-layer kernels (nRows < 0). */
  readonly rows: Int32Array;
  nRows: number;
}

/** Below this fraction of non-zero input rows, the first layer skips the zero rows. */
const SPARSE_BELOW = 0.85;

export function makeWorkspace(layout: Layout, cap: number): Workspace {
  const { sizes } = layout.spec;
  const L = layout.depth;
  const maxN = Math.max(...sizes.slice(1));
  return {
    cap,
    acts: sizes.map((n) => new Float64Array(n * cap)),
    zOut: new Float64Array(sizes[L] * cap),
    y: new Float64Array(sizes[L] * cap),
    d0: new Float64Array(maxN * cap),
    d1: new Float64Array(maxN * cap),
    rows: new Int32Array(sizes[0]),
    nRows: -1,
  };
}

/**
 * Copies samples order[start .. start+S) from the sample-major X (N × n0) and Y (N × m) into the
 * workspace, transposed to feature-major blocks. With order = null, takes rows start..start+S.
 */
export function gatherBlock(
  ws: Workspace, X: Float64Array, Y: Float64Array | null, order: Int32Array | null,
  start: number, S: number, n0: number, m: number,
): void {
  const A0 = ws.acts[0];
  const Yb = ws.y;
  for (let s = 0; s < S; s++) {
    const r = order === null ? start + s : order[start + s];
    const xo = r * n0;
    for (let j = 0, a = s; j < n0; j++, a += S) A0[a] = X[xo + j];
    if (Y !== null) {
      const yo = r * m;
      for (let j = 0, a = s; j < m; j++, a += S) Yb[a] = Y[yo + j];
    }
  }
}

/** Runs the network forward over the S gathered samples: acts[L] holds the outputs after. */
export function forwardBlock(layout: Layout, P: ParamViews, ws: Workspace, S: number): void {
  const { sizes } = layout.spec;
  const L = layout.depth;
  const nRows = nonZeroRows(ws.rows, ws.acts[0], sizes[0], S);
  ws.nRows = nRows < SPARSE_BELOW * sizes[0] ? nRows : -1;
  for (let k = 1; k <= L; k++) {
    const Z = k === L ? ws.zOut : ws.acts[k];
    if (k === 1 && ws.nRows >= 0) denseForwardRows(Z, ws.acts[0], P.W[0], P.b[0], sizes[1], sizes[0], S, ws.rows, ws.nRows);
    else denseForward(Z, ws.acts[k - 1], P.W[k - 1], P.b[k - 1], sizes[k], sizes[k - 1], S);
    activationForward(layout.act[k - 1], ws.acts[k], Z, sizes[k], S);
  }
}

/**
 * After forwardBlock: computes the loss sum and the output δ, then back-propagates, adding the
 * block's gradient sum into G (dW += δ(k) n(k-1)ᵀ, db += δ(k), summed over the block).
 * Returns the summed per-sample loss.
 */
export function backwardBlock(layout: Layout, P: ParamViews, G: ParamViews, ws: Workspace, S: number, accumulate = true): number {
  const { sizes } = layout.spec;
  const L = layout.depth;
  let delta = ws.d0;
  let other = ws.d1;
  const loss = lossForwardBackward(layout.lossCode, layout.act[L - 1], delta, ws.zOut, ws.acts[L], ws.y, sizes[L], S);
  for (let k = L; k >= 1; k--) {
    const dPrev = k > 1 ? other : null;
    if (k === 1 && ws.nRows >= 0) denseBackwardWeightsRows(G.W[0], G.b[0], delta, ws.acts[0], sizes[1], sizes[0], S, ws.rows, ws.nRows, accumulate);
    else denseBackward(dPrev, G.W[k - 1], G.b[k - 1], delta, ws.acts[k - 1], P.W[k - 1], sizes[k], sizes[k - 1], S, accumulate);
    if (dPrev !== null) {
      // δ(k-1) = f'(z(k-1)) ⊙ W(k)ᵀ δ(k), in place in the other buffer, which becomes δ.
      activationBackward(layout.act[k - 2], dPrev, dPrev, ws.acts[k - 1], sizes[k - 1] * S);
      other = delta;
      delta = dPrev;
    }
  }
  return loss;
}

/** Loss sum and correct count of the S gathered samples, forward only. */
export function evaluateBlock(layout: Layout, P: ParamViews, ws: Workspace, S: number): { loss: number; correct: number } {
  forwardBlock(layout, P, ws, S);
  const L = layout.depth;
  const m = layout.spec.sizes[L];
  const loss = lossForwardBackward(layout.lossCode, layout.act[L - 1], null, ws.zOut, ws.acts[L], ws.y, m, S);
  return { loss, correct: countCorrect(layout.act[L - 1], ws.acts[L], ws.y, m, S) };
}

/** Gradient of one chunk: gather, forward, backward. Adds the chunk's gradient sum into G, or with
 *  accumulate = false writes it there (same bits as zeroing G first). */
export function chunkGradient(
  layout: Layout, P: ParamViews, G: ParamViews, ws: Workspace,
  X: Float64Array, Y: Float64Array, order: Int32Array | null, start: number, S: number, accumulate = true,
): { loss: number; correct: number } {
  const { sizes } = layout.spec;
  const L = layout.depth;
  gatherBlock(ws, X, Y, order, start, S, sizes[0], sizes[L]);
  forwardBlock(layout, P, ws, S);
  const correct = countCorrect(layout.act[L - 1], ws.acts[L], ws.y, sizes[L], S);
  const loss = backwardBlock(layout, P, G, ws, S, accumulate);
  return { loss, correct };
}

// ---------------------------------------------------------------------------------------------
// The reference: one sample, the tutorial's equations, z kept for every layer.

/**
 * Adds the gradient of one sample's loss ℓ into G and returns ℓ:
 *   z(k) = W(k) n(k-1) + b(k),  n(k) = f_k(z(k))
 *   δ(L) = ∂ℓ/∂z(L),  δ(k) = f'_k(z(k)) ⊙ W(k+1)ᵀ δ(k+1)
 *   ∂ℓ/∂W(k) = δ(k) n(k-1)ᵀ,  ∂ℓ/∂b(k) = δ(k)
 */
export function sampleGradientNaive(layout: Layout, P: ParamViews, G: ParamViews | null, x: ArrayLike<number>, y: ArrayLike<number>): number {
  const { sizes } = layout.spec;
  const L = layout.depth;
  const n: Float64Array[] = [Float64Array.from(x)];
  const z: Float64Array[] = [new Float64Array(0)];
  for (let k = 1; k <= L; k++) {
    z.push(new Float64Array(sizes[k]));
    n.push(new Float64Array(sizes[k]));
    denseForwardNaive(z[k], n[k - 1], P.W[k - 1], P.b[k - 1], sizes[k], sizes[k - 1]);
    if (layout.act[k - 1] === Act.Softmax) {
      let max = -Infinity;
      for (const v of z[k]) max = Math.max(max, v);
      let sum = 0;
      for (let m = 0; m < sizes[k]; m++) sum += Math.exp(z[k][m] - max);
      for (let m = 0; m < sizes[k]; m++) n[k][m] = Math.exp(z[k][m] - max) / sum;
    } else {
      for (let m = 0; m < sizes[k]; m++) n[k][m] = activate(layout.act[k - 1], z[k][m]);
    }
  }
  const m = sizes[L];
  const zL = z[L], a = n[L];
  const delta = new Float64Array(m);
  let loss = 0;
  switch (layout.lossCode) {
    case LossCode.Mse:
      for (let j = 0; j < m; j++) {
        loss += (a[j] - y[j]) ** 2 / m;
        delta[j] = activateDerivative(layout.act[L - 1], zL[j]) * 2 * (a[j] - y[j]) / m;
      }
      break;
    case LossCode.Bce:
      for (let j = 0; j < m; j++) {
        loss += (Math.max(zL[j], 0) - zL[j] * y[j] + Math.log1p(Math.exp(-Math.abs(zL[j])))) / m;
        delta[j] = (a[j] - y[j]) / m;
      }
      break;
    case LossCode.CrossEntropy: {
      let ySum = 0;
      for (let j = 0; j < m; j++) {
        loss -= y[j] === 0 ? 0 : y[j] * Math.log(a[j]);
        ySum += y[j];
      }
      for (let j = 0; j < m; j++) delta[j] = a[j] * ySum - y[j];
      break;
    }
  }
  if (G === null) return loss;
  let d = delta;
  for (let k = L; k >= 1; k--) {
    const dn = k > 1 ? new Float64Array(sizes[k - 1]) : null;
    denseBackwardNaive(dn, G.W[k - 1], G.b[k - 1], d, n[k - 1], P.W[k - 1], sizes[k], sizes[k - 1]);
    if (dn !== null) {
      for (let j = 0; j < sizes[k - 1]; j++) dn[j] *= activateDerivative(layout.act[k - 2], z[k - 1][j]);
      d = dn;
    }
  }
  return loss;
}
