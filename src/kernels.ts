// Compute kernels: dense layers, activations and losses, as forward/backward pairs.
//
// Fast kernels work on a block of S samples at once, stored feature-major: an activation block
// A is (n × S) row-major, so column s is the tutorial's column vector n(k) for sample s. This
// layout lets all three matrix products of a dense layer run as 4×4 register-blocked loops over
// contiguous rows (16 multiply-adds per 8 loads); per-sample matrix-vector kernels are 2–4× slower
// in V8. The naive per-sample kernels at the bottom are the readable reference the fast ones are
// tested against.
//
// Every output element is computed by the same sequence of floating-point operations whether it
// falls in a 4×4 block or in a remainder loop, so a sample's numbers do not depend on where it
// sits in a block. Determinism across thread counts relies on that.

import { Act, LEAKY_SLOPE, LossCode } from './layout.js';

// ---------------------------------------------------------------------------------------------
// Dense layer, block form.

/** Z (nOut × S) = W (nOut × nIn) · A (nIn × S) + b (broadcast over columns). */
export function denseForward(
  Z: Float64Array, A: Float64Array, W: Float64Array, b: Float64Array,
  nOut: number, nIn: number, S: number,
): void {
  const o4 = nOut & ~3;
  const s4 = S & ~3;
  let o = 0;
  for (; o < o4; o += 4) {
    const w0 = o * nIn, w1 = w0 + nIn, w2 = w1 + nIn, w3 = w2 + nIn;
    const b0 = b[o], b1 = b[o + 1], b2 = b[o + 2], b3 = b[o + 3];
    let s = 0;
    for (; s < s4; s += 4) {
      let c00 = b0, c01 = b0, c02 = b0, c03 = b0;
      let c10 = b1, c11 = b1, c12 = b1, c13 = b1;
      let c20 = b2, c21 = b2, c22 = b2, c23 = b2;
      let c30 = b3, c31 = b3, c32 = b3, c33 = b3;
      for (let i = 0, a = s; i < nIn; i++, a += S) {
        const a0 = A[a], a1 = A[a + 1], a2 = A[a + 2], a3 = A[a + 3];
        const x0 = W[w0 + i], x1 = W[w1 + i], x2 = W[w2 + i], x3 = W[w3 + i];
        c00 += x0 * a0; c01 += x0 * a1; c02 += x0 * a2; c03 += x0 * a3;
        c10 += x1 * a0; c11 += x1 * a1; c12 += x1 * a2; c13 += x1 * a3;
        c20 += x2 * a0; c21 += x2 * a1; c22 += x2 * a2; c23 += x2 * a3;
        c30 += x3 * a0; c31 += x3 * a1; c32 += x3 * a2; c33 += x3 * a3;
      }
      let z = o * S + s;
      Z[z] = c00; Z[z + 1] = c01; Z[z + 2] = c02; Z[z + 3] = c03; z += S;
      Z[z] = c10; Z[z + 1] = c11; Z[z + 2] = c12; Z[z + 3] = c13; z += S;
      Z[z] = c20; Z[z + 1] = c21; Z[z + 2] = c22; Z[z + 3] = c23; z += S;
      Z[z] = c30; Z[z + 1] = c31; Z[z + 2] = c32; Z[z + 3] = c33;
    }
    for (; s < S; s++) {
      let c0 = b0, c1 = b1, c2 = b2, c3 = b3;
      for (let i = 0, a = s; i < nIn; i++, a += S) {
        const av = A[a];
        c0 += W[w0 + i] * av; c1 += W[w1 + i] * av; c2 += W[w2 + i] * av; c3 += W[w3 + i] * av;
      }
      Z[o * S + s] = c0; Z[(o + 1) * S + s] = c1; Z[(o + 2) * S + s] = c2; Z[(o + 3) * S + s] = c3;
    }
  }
  for (; o < nOut; o++) {
    const w0 = o * nIn;
    for (let s = 0; s < S; s++) {
      let c = b[o];
      for (let i = 0, a = s; i < nIn; i++, a += S) c += W[w0 + i] * A[a];
      Z[o * S + s] = c;
    }
  }
}

/**
 * Backward through Z = W·A + b, given dZ (nOut × S):
 *   dW (nOut × nIn) += dZ · Aᵀ,   db (nOut) += row sums of dZ,   dA (nIn × S) = Wᵀ · dZ.
 * dW and db accumulate (+=); with accumulate = false they are overwritten instead (=), which
 * gives the same bits as zeroing first, without a pass over memory: each block sum starts at +0,
 * so it is never -0, and 0 + c = c. dA is overwritten. Pass dA = null for the first layer, whose
 * input gradient nobody needs.
 */
export function denseBackward(
  dA: Float64Array | null, dW: Float64Array, db: Float64Array,
  dZ: Float64Array, A: Float64Array, W: Float64Array,
  nOut: number, nIn: number, S: number, accumulate = true,
): void {
  denseBackwardWeights(dW, db, dZ, A, nOut, nIn, S, accumulate);
  if (dA !== null) denseBackwardInput(dA, dZ, W, nOut, nIn, S);
}

/** The dW, db half of denseBackward. */
export function denseBackwardWeights(
  dW: Float64Array, db: Float64Array, dZ: Float64Array, A: Float64Array,
  nOut: number, nIn: number, S: number, accumulate: boolean,
): void {
  for (let o = 0; o < nOut; o++) {
    let c = 0;
    for (let s = 0, d = o * S; s < S; s++) c += dZ[d + s];
    db[o] = accumulate ? db[o] + c : c;
  }
  const o4 = nOut & ~3;
  const i4 = nIn & ~3;
  let o = 0;
  for (; o < o4; o += 4) {
    const d0 = o * S, d1 = d0 + S, d2 = d1 + S, d3 = d2 + S;
    let i = 0;
    for (; i < i4; i += 4) {
      const a0 = i * S, a1 = a0 + S, a2 = a1 + S, a3 = a2 + S;
      let c00 = 0, c01 = 0, c02 = 0, c03 = 0;
      let c10 = 0, c11 = 0, c12 = 0, c13 = 0;
      let c20 = 0, c21 = 0, c22 = 0, c23 = 0;
      let c30 = 0, c31 = 0, c32 = 0, c33 = 0;
      for (let s = 0; s < S; s++) {
        const x0 = dZ[d0 + s], x1 = dZ[d1 + s], x2 = dZ[d2 + s], x3 = dZ[d3 + s];
        const y0 = A[a0 + s], y1 = A[a1 + s], y2 = A[a2 + s], y3 = A[a3 + s];
        c00 += x0 * y0; c01 += x0 * y1; c02 += x0 * y2; c03 += x0 * y3;
        c10 += x1 * y0; c11 += x1 * y1; c12 += x1 * y2; c13 += x1 * y3;
        c20 += x2 * y0; c21 += x2 * y1; c22 += x2 * y2; c23 += x2 * y3;
        c30 += x3 * y0; c31 += x3 * y1; c32 += x3 * y2; c33 += x3 * y3;
      }
      let w = o * nIn + i;
      if (accumulate) {
        dW[w] += c00; dW[w + 1] += c01; dW[w + 2] += c02; dW[w + 3] += c03; w += nIn;
        dW[w] += c10; dW[w + 1] += c11; dW[w + 2] += c12; dW[w + 3] += c13; w += nIn;
        dW[w] += c20; dW[w + 1] += c21; dW[w + 2] += c22; dW[w + 3] += c23; w += nIn;
        dW[w] += c30; dW[w + 1] += c31; dW[w + 2] += c32; dW[w + 3] += c33;
      } else {
        dW[w] = c00; dW[w + 1] = c01; dW[w + 2] = c02; dW[w + 3] = c03; w += nIn;
        dW[w] = c10; dW[w + 1] = c11; dW[w + 2] = c12; dW[w + 3] = c13; w += nIn;
        dW[w] = c20; dW[w + 1] = c21; dW[w + 2] = c22; dW[w + 3] = c23; w += nIn;
        dW[w] = c30; dW[w + 1] = c31; dW[w + 2] = c32; dW[w + 3] = c33;
      }
    }
    for (; i < nIn; i++) {
      const a0 = i * S;
      let c0 = 0, c1 = 0, c2 = 0, c3 = 0;
      for (let s = 0; s < S; s++) {
        const y = A[a0 + s];
        c0 += dZ[d0 + s] * y; c1 += dZ[d1 + s] * y; c2 += dZ[d2 + s] * y; c3 += dZ[d3 + s] * y;
      }
      const w0 = o * nIn + i, w1 = w0 + nIn, w2 = w1 + nIn, w3 = w2 + nIn;
      if (accumulate) { dW[w0] += c0; dW[w1] += c1; dW[w2] += c2; dW[w3] += c3; }
      else { dW[w0] = c0; dW[w1] = c1; dW[w2] = c2; dW[w3] = c3; }
    }
  }
  for (; o < nOut; o++) {
    const d0 = o * S;
    for (let i = 0; i < nIn; i++) {
      let c = 0;
      for (let s = 0, a = i * S; s < S; s++) c += dZ[d0 + s] * A[a + s];
      dW[o * nIn + i] = accumulate ? dW[o * nIn + i] + c : c;
    }
  }
}

/** The dA half of denseBackward. */
export function denseBackwardInput(
  dA: Float64Array, dZ: Float64Array, W: Float64Array, nOut: number, nIn: number, S: number,
): void {
  const i4 = nIn & ~3;
  const s4 = S & ~3;
  let i = 0;
  for (; i < i4; i += 4) {
    let s = 0;
    for (; s < s4; s += 4) {
      let c00 = 0, c01 = 0, c02 = 0, c03 = 0;
      let c10 = 0, c11 = 0, c12 = 0, c13 = 0;
      let c20 = 0, c21 = 0, c22 = 0, c23 = 0;
      let c30 = 0, c31 = 0, c32 = 0, c33 = 0;
      for (let o = 0, w = i, d = s; o < nOut; o++, w += nIn, d += S) {
        const x0 = W[w], x1 = W[w + 1], x2 = W[w + 2], x3 = W[w + 3];
        const y0 = dZ[d], y1 = dZ[d + 1], y2 = dZ[d + 2], y3 = dZ[d + 3];
        c00 += x0 * y0; c01 += x0 * y1; c02 += x0 * y2; c03 += x0 * y3;
        c10 += x1 * y0; c11 += x1 * y1; c12 += x1 * y2; c13 += x1 * y3;
        c20 += x2 * y0; c21 += x2 * y1; c22 += x2 * y2; c23 += x2 * y3;
        c30 += x3 * y0; c31 += x3 * y1; c32 += x3 * y2; c33 += x3 * y3;
      }
      let a = i * S + s;
      dA[a] = c00; dA[a + 1] = c01; dA[a + 2] = c02; dA[a + 3] = c03; a += S;
      dA[a] = c10; dA[a + 1] = c11; dA[a + 2] = c12; dA[a + 3] = c13; a += S;
      dA[a] = c20; dA[a + 1] = c21; dA[a + 2] = c22; dA[a + 3] = c23; a += S;
      dA[a] = c30; dA[a + 1] = c31; dA[a + 2] = c32; dA[a + 3] = c33;
    }
    for (; s < S; s++) {
      let c0 = 0, c1 = 0, c2 = 0, c3 = 0;
      for (let o = 0, w = i, d = s; o < nOut; o++, w += nIn, d += S) {
        const y = dZ[d];
        c0 += W[w] * y; c1 += W[w + 1] * y; c2 += W[w + 2] * y; c3 += W[w + 3] * y;
      }
      dA[i * S + s] = c0; dA[(i + 1) * S + s] = c1; dA[(i + 2) * S + s] = c2; dA[(i + 3) * S + s] = c3;
    }
  }
  for (; i < nIn; i++) {
    for (let s = 0; s < S; s++) {
      let c = 0;
      for (let o = 0, w = i, d = s; o < nOut; o++, w += nIn, d += S) c += W[w] * dZ[d];
      dA[i * S + s] = c;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The first layer on sparse inputs. Pixels at an image's border, one-hot codes and bag-of-words
// counts leave many input features at exactly 0 for every sample of a block; `rows` lists the
// features that are not (ascending). The products of a zero row are all ±0, and adding ±0 to a
// sum leaves it unchanged (up to the sign of an exact zero), so skipping those rows gives the same
// sums, in the same order, with less work. Only the first layer has such rows; inner layers use
// the dense kernels above. These are copies of the dense kernels with the row loop going through
// `rows` on purpose: one kernel for both would put that extra load in every inner layer's loop.

/** Z (nOut × S) = W · A + b, reading only the rows of A listed in rows[0..nRows). */
export function denseForwardRows(
  Z: Float64Array, A: Float64Array, W: Float64Array, b: Float64Array,
  nOut: number, nIn: number, S: number, rows: Int32Array, nRows: number,
): void {
  const o4 = nOut & ~3;
  const s4 = S & ~3;
  let o = 0;
  for (; o < o4; o += 4) {
    const w0 = o * nIn, w1 = w0 + nIn, w2 = w1 + nIn, w3 = w2 + nIn;
    const b0 = b[o], b1 = b[o + 1], b2 = b[o + 2], b3 = b[o + 3];
    let s = 0;
    for (; s < s4; s += 4) {
      let c00 = b0, c01 = b0, c02 = b0, c03 = b0;
      let c10 = b1, c11 = b1, c12 = b1, c13 = b1;
      let c20 = b2, c21 = b2, c22 = b2, c23 = b2;
      let c30 = b3, c31 = b3, c32 = b3, c33 = b3;
      for (let k = 0; k < nRows; k++) {
        const i = rows[k];
        const a = i * S + s;
        const a0 = A[a], a1 = A[a + 1], a2 = A[a + 2], a3 = A[a + 3];
        const x0 = W[w0 + i], x1 = W[w1 + i], x2 = W[w2 + i], x3 = W[w3 + i];
        c00 += x0 * a0; c01 += x0 * a1; c02 += x0 * a2; c03 += x0 * a3;
        c10 += x1 * a0; c11 += x1 * a1; c12 += x1 * a2; c13 += x1 * a3;
        c20 += x2 * a0; c21 += x2 * a1; c22 += x2 * a2; c23 += x2 * a3;
        c30 += x3 * a0; c31 += x3 * a1; c32 += x3 * a2; c33 += x3 * a3;
      }
      let z = o * S + s;
      Z[z] = c00; Z[z + 1] = c01; Z[z + 2] = c02; Z[z + 3] = c03; z += S;
      Z[z] = c10; Z[z + 1] = c11; Z[z + 2] = c12; Z[z + 3] = c13; z += S;
      Z[z] = c20; Z[z + 1] = c21; Z[z + 2] = c22; Z[z + 3] = c23; z += S;
      Z[z] = c30; Z[z + 1] = c31; Z[z + 2] = c32; Z[z + 3] = c33;
    }
    for (; s < S; s++) {
      let c0 = b0, c1 = b1, c2 = b2, c3 = b3;
      for (let k = 0; k < nRows; k++) {
        const i = rows[k];
        const av = A[i * S + s];
        c0 += W[w0 + i] * av; c1 += W[w1 + i] * av; c2 += W[w2 + i] * av; c3 += W[w3 + i] * av;
      }
      Z[o * S + s] = c0; Z[(o + 1) * S + s] = c1; Z[(o + 2) * S + s] = c2; Z[(o + 3) * S + s] = c3;
    }
  }
  for (; o < nOut; o++) {
    const w0 = o * nIn;
    for (let s = 0; s < S; s++) {
      let c = b[o];
      for (let k = 0; k < nRows; k++) {
        const i = rows[k];
        c += W[w0 + i] * A[i * S + s];
      }
      Z[o * S + s] = c;
    }
  }
}

/**
 * dW += dZ · Aᵀ and db += row sums of dZ (or = with accumulate false), for a first layer whose
 * input rows outside rows[0..nRows) are all zero: their dW columns get exactly 0 (overwrite) or
 * nothing (accumulate). No dA: nobody needs the gradient of the inputs.
 */
export function denseBackwardWeightsRows(
  dW: Float64Array, db: Float64Array, dZ: Float64Array, A: Float64Array,
  nOut: number, nIn: number, S: number, rows: Int32Array, nRows: number, accumulate: boolean,
): void {
  for (let o = 0; o < nOut; o++) {
    let c = 0;
    for (let s = 0, d = o * S; s < S; s++) c += dZ[d + s];
    db[o] = accumulate ? db[o] + c : c;
  }
  if (!accumulate) {
    // The columns of the zero rows: their sums would be +0 (each starts at +0, adds ±0 products).
    for (let k = 0, next = 0; next < nIn; next++) {
      if (k < nRows && rows[k] === next) { k++; continue; }
      for (let o = 0, w = next; o < nOut; o++, w += nIn) dW[w] = 0;
    }
  }
  const o4 = nOut & ~3;
  const k4 = nRows & ~3;
  let o = 0;
  for (; o < o4; o += 4) {
    const d0 = o * S, d1 = d0 + S, d2 = d1 + S, d3 = d2 + S;
    const r0 = o * nIn, r1 = r0 + nIn, r2 = r1 + nIn, r3 = r2 + nIn;
    let k = 0;
    for (; k < k4; k += 4) {
      const i0 = rows[k], i1 = rows[k + 1], i2 = rows[k + 2], i3 = rows[k + 3];
      const a0 = i0 * S, a1 = i1 * S, a2 = i2 * S, a3 = i3 * S;
      let c00 = 0, c01 = 0, c02 = 0, c03 = 0;
      let c10 = 0, c11 = 0, c12 = 0, c13 = 0;
      let c20 = 0, c21 = 0, c22 = 0, c23 = 0;
      let c30 = 0, c31 = 0, c32 = 0, c33 = 0;
      for (let s = 0; s < S; s++) {
        const x0 = dZ[d0 + s], x1 = dZ[d1 + s], x2 = dZ[d2 + s], x3 = dZ[d3 + s];
        const y0 = A[a0 + s], y1 = A[a1 + s], y2 = A[a2 + s], y3 = A[a3 + s];
        c00 += x0 * y0; c01 += x0 * y1; c02 += x0 * y2; c03 += x0 * y3;
        c10 += x1 * y0; c11 += x1 * y1; c12 += x1 * y2; c13 += x1 * y3;
        c20 += x2 * y0; c21 += x2 * y1; c22 += x2 * y2; c23 += x2 * y3;
        c30 += x3 * y0; c31 += x3 * y1; c32 += x3 * y2; c33 += x3 * y3;
      }
      if (accumulate) {
        dW[r0 + i0] += c00; dW[r0 + i1] += c01; dW[r0 + i2] += c02; dW[r0 + i3] += c03;
        dW[r1 + i0] += c10; dW[r1 + i1] += c11; dW[r1 + i2] += c12; dW[r1 + i3] += c13;
        dW[r2 + i0] += c20; dW[r2 + i1] += c21; dW[r2 + i2] += c22; dW[r2 + i3] += c23;
        dW[r3 + i0] += c30; dW[r3 + i1] += c31; dW[r3 + i2] += c32; dW[r3 + i3] += c33;
      } else {
        dW[r0 + i0] = c00; dW[r0 + i1] = c01; dW[r0 + i2] = c02; dW[r0 + i3] = c03;
        dW[r1 + i0] = c10; dW[r1 + i1] = c11; dW[r1 + i2] = c12; dW[r1 + i3] = c13;
        dW[r2 + i0] = c20; dW[r2 + i1] = c21; dW[r2 + i2] = c22; dW[r2 + i3] = c23;
        dW[r3 + i0] = c30; dW[r3 + i1] = c31; dW[r3 + i2] = c32; dW[r3 + i3] = c33;
      }
    }
    for (; k < nRows; k++) {
      const i = rows[k];
      const a0 = i * S;
      let c0 = 0, c1 = 0, c2 = 0, c3 = 0;
      for (let s = 0; s < S; s++) {
        const y = A[a0 + s];
        c0 += dZ[d0 + s] * y; c1 += dZ[d1 + s] * y; c2 += dZ[d2 + s] * y; c3 += dZ[d3 + s] * y;
      }
      if (accumulate) { dW[r0 + i] += c0; dW[r1 + i] += c1; dW[r2 + i] += c2; dW[r3 + i] += c3; }
      else { dW[r0 + i] = c0; dW[r1 + i] = c1; dW[r2 + i] = c2; dW[r3 + i] = c3; }
    }
  }
  for (; o < nOut; o++) {
    const d0 = o * S;
    for (let k = 0; k < nRows; k++) {
      const i = rows[k];
      let c = 0;
      for (let s = 0, a = i * S; s < S; s++) c += dZ[d0 + s] * A[a + s];
      dW[o * nIn + i] = accumulate ? dW[o * nIn + i] + c : c;
    }
  }
}

/** Lists the rows of A (n × S) that hold a non-zero value into `rows`; returns how many. */
export function nonZeroRows(rows: Int32Array, A: Float64Array, n: number, S: number): number {
  let count = 0;
  for (let i = 0; i < n; i++) {
    for (let s = 0, a = i * S; s < S; s++) {
      if (A[a + s] !== 0) {
        rows[count++] = i;
        break;
      }
    }
  }
  return count;
}

// ---------------------------------------------------------------------------------------------
// Activations, block form. Hidden activations run in place (Z becomes A); their derivatives are
// computed from the activation value a = f(z), which is why no Z is kept for hidden layers.

/** A (n × S) = f(Z), elementwise, or softmax over each column. A may alias Z. */
export function activationForward(act: Act, A: Float64Array, Z: Float64Array, n: number, S: number): void {
  const len = n * S;
  switch (act) {
    case Act.Sigmoid:
      for (let j = 0; j < len; j++) A[j] = sigmoid(Z[j]);
      return;
    case Act.Tanh:
      for (let j = 0; j < len; j++) A[j] = Math.tanh(Z[j]);
      return;
    case Act.Relu:
      for (let j = 0; j < len; j++) { const z = Z[j]; A[j] = z > 0 ? z : 0; }
      return;
    case Act.LeakyRelu:
      for (let j = 0; j < len; j++) { const z = Z[j]; A[j] = z > 0 ? z : LEAKY_SLOPE * z; }
      return;
    case Act.Linear:
      if (A !== Z) A.set(Z.subarray(0, len));
      return;
    case Act.Softmax:
      for (let s = 0; s < S; s++) {
        let max = -Infinity;
        for (let o = 0, j = s; o < n; o++, j += S) if (Z[j] > max) max = Z[j];
        let sum = 0;
        for (let o = 0, j = s; o < n; o++, j += S) { const e = Math.exp(Z[j] - max); A[j] = e; sum += e; }
        for (let o = 0, j = s; o < n; o++, j += S) A[j] /= sum;
      }
      return;
  }
}

/** dZ = dA ⊙ f'(z), with f'(z) computed from A = f(z). dZ may alias dA. Not for softmax. */
export function activationBackward(act: Act, dZ: Float64Array, dA: Float64Array, A: Float64Array, len: number): void {
  switch (act) {
    case Act.Sigmoid:
      for (let j = 0; j < len; j++) { const a = A[j]; dZ[j] = dA[j] * a * (1 - a); }
      return;
    case Act.Tanh:
      for (let j = 0; j < len; j++) { const a = A[j]; dZ[j] = dA[j] * (1 - a * a); }
      return;
    case Act.Relu: // relu'(0) = 0
      for (let j = 0; j < len; j++) dZ[j] = A[j] > 0 ? dA[j] : 0;
      return;
    case Act.LeakyRelu: // slope at 0 is LEAKY_SLOPE, as in PyTorch
      for (let j = 0; j < len; j++) dZ[j] = A[j] > 0 ? dA[j] : LEAKY_SLOPE * dA[j];
      return;
    case Act.Linear:
      if (dZ !== dA) dZ.set(dA.subarray(0, len));
      return;
    case Act.Softmax:
      throw new Error('softmax is only supported as the output of a cross-entropy network');
  }
}

export function sigmoid(z: number): number {
  // Two branches so exp never overflows: 1/(1+e^-z) for z ≥ 0, e^z/(1+e^z) for z < 0.
  if (z >= 0) return 1 / (1 + Math.exp(-z));
  const e = Math.exp(z);
  return e / (1 + e);
}

// ---------------------------------------------------------------------------------------------
// Losses. Per-sample losses follow PyTorch's mean reduction: mse and binary cross-entropy average
// over the m outputs, cross-entropy sums over classes; the batch mean (1/B) is applied once by the
// coordinator. The output δ is ∂ℓ_s/∂z for each sample s.

/**
 * Sum over the S samples of the per-sample loss, from the output pre-activation Z, activation A
 * and targets Y (all m × S). When dZ is given, also writes the output δ = ∂ℓ_s/∂z into it.
 */
export function lossForwardBackward(
  loss: LossCode, outAct: Act, dZ: Float64Array | null,
  Z: Float64Array, A: Float64Array, Y: Float64Array, m: number, S: number,
): number {
  let total = 0;
  switch (loss) {
    case LossCode.Mse: {
      const inv = 1 / m;
      for (let s = 0; s < S; s++) {
        let l = 0;
        for (let o = 0, j = s; o < m; o++, j += S) {
          const e = A[j] - Y[j];
          l += e * e;
          if (dZ !== null) dZ[j] = 2 * e * inv;
        }
        total += l * inv;
      }
      if (dZ !== null) activationBackward(outAct, dZ, dZ, A, m * S);
      return total;
    }
    case LossCode.Bce: {
      // Stable form (BCEWithLogits): max(z,0) − z·y + log(1 + e^−|z|); δ = (σ(z) − y)/m.
      const inv = 1 / m;
      for (let s = 0; s < S; s++) {
        let l = 0;
        for (let o = 0, j = s; o < m; o++, j += S) {
          const z = Z[j], y = Y[j];
          l += (z > 0 ? z : 0) - z * y + Math.log1p(Math.exp(-Math.abs(z)));
          if (dZ !== null) dZ[j] = (A[j] - y) * inv;
        }
        total += l * inv;
      }
      return total;
    }
    case LossCode.CrossEntropy: {
      // −Σ y·log softmax(z), log-softmax taken as z − max − log Σ e^(z−max).
      // δ_j = p_j·Σy − y_j, which is p − y for a one-hot or normalised target.
      for (let s = 0; s < S; s++) {
        let max = -Infinity;
        for (let o = 0, j = s; o < m; o++, j += S) if (Z[j] > max) max = Z[j];
        let sum = 0;
        for (let o = 0, j = s; o < m; o++, j += S) sum += Math.exp(Z[j] - max);
        const logSum = Math.log(sum) + max;
        let l = 0, ySum = 0;
        for (let o = 0, j = s; o < m; o++, j += S) {
          const y = Y[j];
          if (y !== 0) l -= y * (Z[j] - logSum);
          ySum += y;
        }
        if (dZ !== null) for (let o = 0, j = s; o < m; o++, j += S) dZ[j] = A[j] * ySum - Y[j];
        total += l;
      }
      return total;
    }
  }
}

/** How countCorrect decides that a prediction is right. The trainer picks it from the model
 *  (trainer.ts accuracyRule): a model of class labels by decodeOutput's rule, whatever its output
 *  activation; any other model by its output activation (outputAccuracy). */
export enum Accuracy {
  /** No accuracy (regression): countCorrect returns 0. */
  None = 0,
  /** One per sample: the largest output (the first of equals) is the target's largest. */
  Argmax = 1,
  /** One per output value: on the same side of 0.5 as its target (count over S·m values). */
  PerOutput = 2,
  /** One per sample: the first output on the same side of 0.5 as the first target (two labels). */
  FirstOutput = 3,
}

/** The accuracy of a model that says nothing about its targets, by its output activation: argmax
 *  for softmax, per output for sigmoid (multi-label, as Keras' binary_accuracy), none otherwise. */
export function outputAccuracy(outAct: Act): Accuracy {
  return outAct === Act.Softmax ? Accuracy.Argmax : outAct === Act.Sigmoid ? Accuracy.PerOutput : Accuracy.None;
}

/** Number of correct predictions in a block of S samples (A and Y feature-major, m × S) by `rule`. */
export function countCorrect(rule: Accuracy, A: Float64Array, Y: Float64Array, m: number, S: number): number {
  let correct = 0;
  if (rule === Accuracy.Argmax) {
    for (let s = 0; s < S; s++) {
      let best = s, bestY = s;
      for (let o = 1, j = s + S; o < m; o++, j += S) {
        if (A[j] > A[best]) best = j;
        if (Y[j] > Y[bestY]) bestY = j;
      }
      if (best === bestY) correct++;
    }
  } else if (rule === Accuracy.PerOutput) {
    const len = m * S;
    for (let j = 0; j < len; j++) if (A[j] >= 0.5 === Y[j] >= 0.5) correct++;
  } else if (rule === Accuracy.FirstOutput) {
    for (let s = 0; s < S; s++) if (A[s] >= 0.5 === Y[s] >= 0.5) correct++;
  }
  return correct;
}

// ---------------------------------------------------------------------------------------------
// Naive per-sample reference kernels: the tutorial's equations written out one sample at a time.

/** z = W n + b for one sample; W is (nOut × nIn). */
export function denseForwardNaive(z: Float64Array, n: Float64Array, W: Float64Array, b: Float64Array, nOut: number, nIn: number): void {
  for (let m = 0; m < nOut; m++) {
    let acc = 0;
    for (let j = 0; j < nIn; j++) acc += W[m * nIn + j] * n[j];
    z[m] = acc + b[m];
  }
}

/** For one sample with error term δ = ∂ℓ/∂z: dW += δ nᵀ, db += δ, dn = Wᵀ δ (dn may be null). */
export function denseBackwardNaive(
  dn: Float64Array | null, dW: Float64Array, db: Float64Array,
  delta: Float64Array, n: Float64Array, W: Float64Array, nOut: number, nIn: number,
): void {
  for (let m = 0; m < nOut; m++) {
    const d = delta[m];
    db[m] += d;
    for (let j = 0; j < nIn; j++) dW[m * nIn + j] += d * n[j];
  }
  if (dn === null) return;
  for (let j = 0; j < nIn; j++) {
    let acc = 0;
    for (let m = 0; m < nOut; m++) acc += W[m * nIn + j] * delta[m];
    dn[j] = acc;
  }
}

/** f(z) for one activation value (softmax is handled over the whole vector by the caller). */
export function activate(act: Act, z: number): number {
  switch (act) {
    case Act.Sigmoid: return sigmoid(z);
    case Act.Tanh: return Math.tanh(z);
    case Act.Relu: return z > 0 ? z : 0;
    case Act.LeakyRelu: return z > 0 ? z : LEAKY_SLOPE * z;
    case Act.Linear: return z;
    case Act.Softmax: throw new Error('softmax is a vector function');
  }
}

/** f'(z), from z itself (the reference does not use the a-based shortcut of the fast kernels). */
export function activateDerivative(act: Act, z: number): number {
  switch (act) {
    case Act.Sigmoid: { const a = sigmoid(z); return a * (1 - a); }
    case Act.Tanh: { const t = Math.tanh(z); return 1 - t * t; }
    case Act.Relu: return z > 0 ? 1 : 0;
    case Act.LeakyRelu: return z > 0 ? 1 : LEAKY_SLOPE;
    case Act.Linear: return 1;
    case Act.Softmax: throw new Error('softmax is a vector function');
  }
}
