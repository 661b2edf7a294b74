// Forward and backward passes of a whole network over one chunk of samples.
//
// This is the work done for one chunk of a minibatch: gather the chunk's samples from the shared
// dataset, run the layers forward, compute the loss and the output δ, propagate δ back, and form
// the chunk's gradient sum δ(k) n(k-1)ᵀ. On one thread all of it runs chunk after chunk
// (chunkGradient); a parallel step splits it into the δ pass per chunk and the gradient sums per
// block of weight rows (engine.ts). `sampleGradientNaive` does the same for a single sample with the tutorial's
// equations written out, and is the reference the block path is tested against.

import { Act, Layout, ParamViews } from './layout.js';
import {
  activate, activateDerivative, activationBackward, activationForward, countCorrect, outputAccuracy,
  denseBackwardInput, denseBackwardNaive, denseBackwardWeights, denseBackwardWeightsRows, denseForward, denseForwardNaive,
  denseForwardRows,
  lossForwardBackward, nonZeroRows,
} from './kernels.js';
import { LossCode } from './layout.js';

/** Memory for one block of up to `cap` samples: its activations and error terms. A thread's own
 *  workspace is reused for every chunk; in a parallel step each chunk has one in shared memory,
 *  so that the δ one thread computes can be read by the thread that owns the weight rows. */
export interface Workspace {
  readonly cap: number;
  /** acts[k] is n(k) for the block, (n_k × cap) feature-major; acts[0] holds the gathered inputs. */
  readonly acts: Float64Array[];
  /** Output pre-activation z(L), (n_L × cap): the stable losses need z, not only f(z). */
  readonly zOut: Float64Array;
  /** Gathered targets, (n_L × cap). */
  readonly y: Float64Array;
  /** deltas[k] is δ(k) = ∂L/∂z(k) for k = 1..L, (n_k × cap); deltas[0] is unused. */
  readonly deltas: Float64Array[];
  /** The input rows of the current block that are not all zero, ascending, when few enough of
   *  them are to take the sparse first-layer kernels; rows[n0] holds their count, or -1 for the
   *  dense kernels. */
  readonly rows: Int32Array;
}

/** Below this fraction of non-zero input rows, the first layer skips the zero rows. */
const SPARSE_BELOW = 0.85;

/** Doubles and int32s that one workspace of `cap` samples takes (see makeWorkspace). */
export function workspaceSize(layout: Layout, cap: number): { f64: number; i32: number } {
  const { sizes } = layout.spec;
  let n = 0;
  for (const size of sizes) n += size; // acts
  for (let k = 1; k < sizes.length; k++) n += sizes[k]; // deltas
  n += 2 * sizes[sizes.length - 1]; // zOut, y
  return { f64: n * cap, i32: sizes[0] + 1 };
}

/** A workspace for blocks of up to `cap` samples, fresh or over the given memory (at least
 *  workspaceSize doubles and int32s). */
export function makeWorkspace(layout: Layout, cap: number, f64?: Float64Array, i32?: Int32Array): Workspace {
  const { sizes } = layout.spec;
  const L = layout.depth;
  const size = workspaceSize(layout, cap);
  const mem = f64 ?? new Float64Array(size.f64);
  let off = 0;
  const take = (n: number): Float64Array => mem.subarray(off, (off += n * cap));
  const acts = sizes.map((n) => take(n));
  const deltas = [new Float64Array(0), ...sizes.slice(1).map((n) => take(n))];
  const zOut = take(sizes[L]);
  const y = take(sizes[L]);
  return { cap, acts, zOut, y, deltas, rows: (i32 ?? new Int32Array(size.i32)).subarray(0, size.i32) };
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
  const sparse = nRows < SPARSE_BELOW * sizes[0];
  ws.rows[sizes[0]] = sparse ? nRows : -1;
  for (let k = 1; k <= L; k++) {
    const Z = k === L ? ws.zOut : ws.acts[k];
    if (k === 1 && sparse) denseForwardRows(Z, ws.acts[0], P.W[0], P.b[0], sizes[1], sizes[0], S, ws.rows, nRows);
    else denseForward(Z, ws.acts[k - 1], P.W[k - 1], P.b[k - 1], sizes[k], sizes[k - 1], S);
    activationForward(layout.act[k - 1], ws.acts[k], Z, sizes[k], S);
  }
}

/**
 * After forwardBlock: computes the loss sum and the output δ(L), then propagates the error terms
 * back, δ(k-1) = f'(z(k-1)) ⊙ W(k)ᵀ δ(k), keeping every δ(k) in ws.deltas. Returns the summed
 * per-sample loss. The weight gradients are left to blockWeightGradient.
 */
export function backwardDeltas(layout: Layout, P: ParamViews, ws: Workspace, S: number): number {
  const { sizes } = layout.spec;
  const L = layout.depth;
  const loss = lossForwardBackward(layout.lossCode, layout.act[L - 1], ws.deltas[L], ws.zOut, ws.acts[L], ws.y, sizes[L], S);
  for (let k = L; k >= 2; k--) {
    const dPrev = ws.deltas[k - 1];
    denseBackwardInput(dPrev, ws.deltas[k], P.W[k - 1], sizes[k], sizes[k - 1], S);
    activationBackward(layout.act[k - 2], dPrev, dPrev, ws.acts[k - 1], sizes[k - 1] * S);
  }
  return loss;
}

/**
 * The block's gradient sum of rows [o0, o1) of layer k (1-based), after backwardDeltas:
 * dW(k) rows += δ(k) n(k-1)ᵀ, db(k) rows += row sums of δ(k); or = with accumulate false. Each
 * entry is one sum over the block's samples in sample order, whichever rows are asked for, so
 * splitting a layer's rows between threads changes no bit.
 */
export function blockWeightGradient(
  layout: Layout, G: ParamViews, ws: Workspace, S: number, k: number, o0: number, o1: number, accumulate: boolean,
): void {
  const { sizes } = layout.spec;
  const nIn = sizes[k - 1];
  const dW = G.W[k - 1].subarray(o0 * nIn, o1 * nIn);
  const db = G.b[k - 1].subarray(o0, o1);
  const dZ = ws.deltas[k].subarray(o0 * S, o1 * S);
  const nRows = k === 1 ? ws.rows[sizes[0]] : -1;
  if (nRows >= 0) denseBackwardWeightsRows(dW, db, dZ, ws.acts[0], o1 - o0, nIn, S, ws.rows, nRows, accumulate);
  else denseBackwardWeights(dW, db, dZ, ws.acts[k - 1], o1 - o0, nIn, S, accumulate);
}

/**
 * After forwardBlock: the loss sum, the error terms, and the block's whole gradient sum added
 * into G (dW += δ(k) n(k-1)ᵀ, db += δ(k), summed over the block), or written there with
 * accumulate false. Returns the summed per-sample loss.
 */
export function backwardBlock(layout: Layout, P: ParamViews, G: ParamViews, ws: Workspace, S: number, accumulate = true): number {
  const loss = backwardDeltas(layout, P, ws, S);
  blockGradient(layout, G, ws, S, accumulate);
  return loss;
}

/** blockWeightGradient for every row of every layer. */
export function blockGradient(layout: Layout, G: ParamViews, ws: Workspace, S: number, accumulate: boolean): void {
  const { sizes } = layout.spec;
  for (let k = layout.depth; k >= 1; k--) blockWeightGradient(layout, G, ws, S, k, 0, sizes[k], accumulate);
}

/** Loss sum and correct count of the S gathered samples, forward only. */
export function evaluateBlock(layout: Layout, P: ParamViews, ws: Workspace, S: number, rule = outputAccuracy(layout.act[layout.depth - 1])): { loss: number; correct: number } {
  forwardBlock(layout, P, ws, S);
  const L = layout.depth;
  const m = layout.spec.sizes[L];
  const loss = lossForwardBackward(layout.lossCode, layout.act[L - 1], null, ws.zOut, ws.acts[L], ws.y, m, S);
  return { loss, correct: countCorrect(rule, ws.acts[L], ws.y, m, S) };
}

/** The first half of a chunk's gradient: gather, forward, loss and error terms (δ(k) in ws.deltas).
 *  Returns the chunk's loss sum and correct count. */
export function chunkDeltas(
  layout: Layout, P: ParamViews, ws: Workspace,
  X: Float64Array, Y: Float64Array, order: Int32Array | null, start: number, S: number, rule = outputAccuracy(layout.act[layout.depth - 1]),
): { loss: number; correct: number } {
  const { sizes } = layout.spec;
  const L = layout.depth;
  gatherBlock(ws, X, Y, order, start, S, sizes[0], sizes[L]);
  forwardBlock(layout, P, ws, S);
  const correct = countCorrect(rule, ws.acts[L], ws.y, sizes[L], S);
  const loss = backwardDeltas(layout, P, ws, S);
  return { loss, correct };
}

/** Gradient of one chunk: chunkDeltas, then the gradient sums of every layer, added into G, or
 *  with accumulate = false written there (same bits as zeroing G first). */
export function chunkGradient(
  layout: Layout, P: ParamViews, G: ParamViews, ws: Workspace,
  X: Float64Array, Y: Float64Array, order: Int32Array | null, start: number, S: number, accumulate = true, rule = outputAccuracy(layout.act[layout.depth - 1]),
): { loss: number; correct: number } {
  const r = chunkDeltas(layout, P, ws, X, Y, order, start, S, rule);
  blockGradient(layout, G, ws, S, accumulate);
  return r;
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
