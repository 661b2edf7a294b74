// The fast block kernels against the naive per-sample reference, on shapes that exercise the 4×4
// blocks and every remainder path.
import { describe, expect, it } from 'vitest';
import { Rng, createModel, paramViews, type HiddenActivation } from '../src/index.js';
import { makeWorkspace, gatherBlock, forwardBlock, backwardBlock, sampleGradientNaive } from '../src/backprop.js';
import { denseForward, denseForwardNaive } from '../src/kernels.js';
import { randomData } from './helpers.js';

function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i] - b[i]) / Math.max(Math.abs(a[i]), Math.abs(b[i]), 1e-300);
    if (a[i] !== b[i]) worst = Math.max(worst, d);
  }
  return worst;
}

describe('denseForward (blocked) equals denseForwardNaive', () => {
  for (const [nOut, nIn, S] of [[4, 4, 4], [7, 5, 3], [13, 33, 9], [1, 1, 1], [64, 128, 16]]) {
    it(`${nOut}×${nIn}, ${S} samples`, () => {
      const rng = new Rng(nOut * 100 + nIn);
      const W = Float64Array.from({ length: nOut * nIn }, () => rng.uniform(-1, 1));
      const b = Float64Array.from({ length: nOut }, () => rng.uniform(-1, 1));
      const A = Float64Array.from({ length: nIn * S }, () => rng.uniform(-1, 1));
      const Z = new Float64Array(nOut * S);
      denseForward(Z, A, W, b, nOut, nIn, S);
      for (let s = 0; s < S; s++) {
        const n = Float64Array.from({ length: nIn }, (_, j) => A[j * S + s]);
        const z = new Float64Array(nOut);
        denseForwardNaive(z, n, W, b, nOut, nIn);
        const col = Float64Array.from({ length: nOut }, (_, m) => Z[m * S + s]);
        expect(maxRelDiff(col, z)).toBeLessThanOrEqual(1e-12);
      }
    });
  }
});

describe('block forward/backward equals the per-sample reference', () => {
  const cases: [number[], HiddenActivation, 'sigmoid' | 'softmax' | 'linear' | 'tanh', string][] = [
    [[2, 3, 2, 1], 'sigmoid', 'sigmoid', 'binary-cross-entropy'],
    [[9, 13, 6, 5], 'relu', 'softmax', 'cross-entropy'],
    [[7, 5, 3], 'tanh', 'linear', 'mse'],
    [[6, 11, 4, 4, 2], 'leaky-relu', 'tanh', 'mse'],
    [[17, 8, 3], 'linear', 'sigmoid', 'binary-cross-entropy'],
  ];
  for (const [layers, hidden, output, loss] of cases) {
    for (const S of [1, 5, 8, 11]) {
      it(`${layers.join('-')} ${hidden}/${output}/${loss}, block of ${S}`, () => {
        const model = createModel({ layers, hidden, output, loss: loss as never, seed: 3 });
        const { layout } = model;
        const m = layers[layers.length - 1];
        const data = randomData(S, S, layers[0], m, loss);
        const ws = makeWorkspace(layout, S);
        gatherBlock(ws, data.x, data.y, null, 0, S, layers[0], m);
        forwardBlock(layout, model.views, ws, S);
        const fast = new Float64Array(layout.stride);
        const fastLoss = backwardBlock(layout, model.views, paramViews(layout, fast), ws, S);
        const naive = new Float64Array(layout.stride);
        let naiveLoss = 0;
        for (let s = 0; s < S; s++)
          naiveLoss += sampleGradientNaive(layout, model.views, paramViews(layout, naive),
            data.x.subarray(s * layers[0], (s + 1) * layers[0]), data.y.subarray(s * m, (s + 1) * m));
        expect(maxRelDiff([fastLoss], [naiveLoss])).toBeLessThanOrEqual(1e-12);
        expect(maxRelDiff(fast, naive)).toBeLessThanOrEqual(1e-12);
        expect(fast.some((v) => v !== 0)).toBe(true);
      });
    }
  }
});

describe('sparse inputs: the first layer skips all-zero input rows, with the same results', () => {
  for (const S of [3, 8, 32]) {
    for (const accumulate of [true, false]) {
      it(`block of ${S}, ${accumulate ? 'accumulating into' : 'overwriting'} the gradient`, () => {
        const layers = [23, 9, 4];
        const model = createModel({ layers, hidden: 'relu', output: 'softmax', seed: 5 });
        const { layout } = model;
        const data = randomData(S + 100, S, 23, 4, 'cross-entropy');
        // Features 0, 3, 6, … are zero in every sample: over a third of the rows, so the sparse path runs.
        for (let s = 0; s < S; s++) for (let j = 0; j < 23; j += 3) data.x[s * 23 + j] = 0;
        const ws = makeWorkspace(layout, S);
        gatherBlock(ws, data.x, data.y, null, 0, S, 23, 4);
        forwardBlock(layout, model.views, ws, S);
        expect(ws.rows[23]).toBe(15); // the sparse kernels were chosen
        const fast = new Float64Array(layout.stride).fill(accumulate ? 0 : 123.5); // overwrite must clear stale values
        backwardBlock(layout, model.views, paramViews(layout, fast), ws, S, accumulate);
        const naive = new Float64Array(layout.stride);
        for (let s = 0; s < S; s++)
          sampleGradientNaive(layout, model.views, paramViews(layout, naive), data.x.subarray(s * 23, (s + 1) * 23), data.y.subarray(s * 4, (s + 1) * 4));
        const views = paramViews(layout, fast);
        const ref = paramViews(layout, naive);
        for (let k = 0; k < 2; k++) {
          expect(maxRelDiff(views.W[k], ref.W[k])).toBeLessThanOrEqual(1e-12);
          expect(maxRelDiff(views.b[k], ref.b[k])).toBeLessThanOrEqual(1e-12);
        }
        // The zero rows' weight gradients are exactly zero; the others are not.
        expect(views.W[0].every((v, idx) => idx % 23 !== 0 || Object.is(v, 0))).toBe(true);
        expect(views.W[0].some((v, idx) => idx % 23 === 1 && v !== 0)).toBe(true);
      });
    }
  }
});

describe('Rng seeds', () => {
  it('seeds beyond 32 bits are streams of their own (1 and 2^32 + 1 differ); seeds from −2^31 to 2^32 − 1 keep theirs', () => {
    const first = (seed: number) => { const r = new Rng(seed); return [r.nextU32(), r.nextU32(), r.nextU32(), r.nextU32()].join(','); };
    for (const [a, b] of [[1, 2 ** 32 + 1], [0, 2 ** 32], [5, -(2 ** 32) + 5], [2 ** 53 - 1, 2 ** 32 - 1], [-1, -(2 ** 32) - 1]]) expect(first(a)).not.toBe(first(b));
    // The streams they always had (models and results made with them reproduce).
    expect(new Rng(1).state()).toEqual([2527132011, 314344336, 2535364964, 2041432039]);
    expect(new Rng(7).state()).toEqual([588686121, 1937383562, 4286812467, 2372217166]);
    expect(new Rng(-1).state()).toEqual(new Rng(2 ** 32 - 1).state());
    for (const odd of [NaN, Infinity, -Infinity]) expect(new Rng(odd).state()).toEqual(new Rng(0).state());
  });
});
