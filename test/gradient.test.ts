// Gradients against independent references: central differences of a loss written from the
// definitions, and a single SGD step on the tutorial's 2-3-2-1 network worked out by hand.
import { describe, expect, it } from 'vitest';
import { Trainer, computeGradient, createModel, makeDataset, type HiddenActivation } from '../src/index.js';
import { randomData, referenceLoss } from './helpers.js';

const HIDDEN: HiddenActivation[] = ['sigmoid', 'tanh', 'relu', 'leaky-relu', 'linear'];
const HEADS = [
  { output: 'sigmoid', loss: 'binary-cross-entropy', outputs: 2 },
  { output: 'softmax', loss: 'cross-entropy', outputs: 4 },
  { output: 'linear', loss: 'mse', outputs: 3 },
  { output: 'tanh', loss: 'mse', outputs: 2 },
  { output: 'sigmoid', loss: 'mse', outputs: 1 },
] as const;

describe('central-difference gradient check (float64)', () => {
  for (const hidden of HIDDEN) {
    for (const head of HEADS) {
      it(`${hidden} hidden, ${head.output} output, ${head.loss}`, () => {
        const model = createModel({ layers: [5, 7, 6, head.outputs], hidden, output: head.output, loss: head.loss, seed: 11 });
        // Non-zero biases so that no pre-activation sits exactly on relu's kink.
        for (const b of model.views.b) for (let i = 0; i < b.length; i++) b[i] = 0.05 * Math.sin(3 * i + 1);
        const data = randomData(5, 13, 5, head.outputs, head.loss);
        const { loss, grad } = computeGradient(model, data);
        expect(Math.abs(loss - referenceLoss(model, data))).toBeLessThan(1e-12);
        const h = 1e-5;
        let worst = 0;
        for (let k = 0; k < model.views.W.length; k++) {
          for (const view of [model.views.W[k], model.views.b[k]]) {
            const base = view.byteOffset / 8;
            for (let i = 0; i < view.length; i++) {
              const keep = view[i];
              view[i] = keep + h;
              const up = referenceLoss(model, data);
              view[i] = keep - h;
              const down = referenceLoss(model, data);
              view[i] = keep;
              const fd = (up - down) / (2 * h);
              const g = grad[base + i];
              // Relative error, with entries below 1e-5 compared absolutely (central differences
              // carry ~1e-11 of rounding error, which is all a tiny entry would show).
              const rel = Math.abs(g - fd) / Math.max(Math.abs(g), Math.abs(fd), 1e-5);
              worst = Math.max(worst, rel);
            }
          }
        }
        expect(worst).toBeLessThan(1e-6);
      });
    }
  }
});

describe('one SGD step on the tutorial 2-3-2-1 sigmoid network, by hand', () => {
  it('matches the tutorial equations worked out for two samples', async () => {
    const model = createModel({ layers: [2, 3, 2, 1], hidden: 'sigmoid', output: 'sigmoid', loss: 'binary-cross-entropy' });
    const W1 = [[0.1, -0.2], [0.4, 0.3], [-0.5, 0.2]], b1 = [0.01, -0.02, 0.03];
    const W2 = [[0.3, -0.1, 0.2], [-0.4, 0.5, 0.1]], b2 = [0.05, -0.05];
    const W3 = [[0.7, -0.6]], b3 = [0.1];
    const put = (k: number, W: number[][], b: number[]) => {
      W.forEach((row, m) => row.forEach((v, j) => (model.views.W[k][m * row.length + j] = v)));
      b.forEach((v, m) => (model.views.b[k][m] = v));
    };
    put(0, W1, b1); put(1, W2, b2); put(2, W3, b3);
    const xs = [[0.5, -1.0], [1.5, 0.25]], ys = [1, 0];
    const lr = 0.5;

    // By hand: forward, δ(3) = (a − y)/1, δ(k) = σ'(z) ⊙ W(k+1)ᵀ δ(k+1), gradients averaged over 2.
    const sig = (z: number) => 1 / (1 + Math.exp(-z));
    const gW1 = W1.map((r) => r.map(() => 0)), gb1 = [0, 0, 0];
    const gW2 = W2.map((r) => r.map(() => 0)), gb2 = [0, 0];
    const gW3 = [[0, 0]], gb3 = [0];
    xs.forEach((x, s) => {
      const n1 = [0, 1, 2].map((m) => sig(W1[m][0] * x[0] + W1[m][1] * x[1] + b1[m]));
      const n2 = [0, 1].map((m) => sig(W2[m][0] * n1[0] + W2[m][1] * n1[1] + W2[m][2] * n1[2] + b2[m]));
      const a3 = sig(W3[0][0] * n2[0] + W3[0][1] * n2[1] + b3[0]);
      const d3 = a3 - ys[s];
      const d2 = [0, 1].map((m) => n2[m] * (1 - n2[m]) * W3[0][m] * d3);
      const d1 = [0, 1, 2].map((m) => n1[m] * (1 - n1[m]) * (W2[0][m] * d2[0] + W2[1][m] * d2[1]));
      gW3[0][0] += d3 * n2[0] / 2; gW3[0][1] += d3 * n2[1] / 2; gb3[0] += d3 / 2;
      for (let m = 0; m < 2; m++) { gb2[m] += d2[m] / 2; for (let j = 0; j < 3; j++) gW2[m][j] += d2[m] * n1[j] / 2; }
      for (let m = 0; m < 3; m++) { gb1[m] += d1[m] / 2; for (let j = 0; j < 2; j++) gW1[m][j] += d1[m] * x[j] / 2; }
    });

    const trainer = new Trainer(model, { threads: 1 });
    await trainer.fit(makeDataset(xs, ys), { epochs: 1, batchSize: 2, lr, shuffle: false });
    await trainer.close();
    const check = (k: number, W: number[][], b: number[], gW: number[][], gb: number[]) => {
      W.forEach((row, m) => row.forEach((v, j) => expect(model.views.W[k][m * row.length + j]).toBeCloseTo(v - lr * gW[m][j], 14)));
      b.forEach((v, m) => expect(model.views.b[k][m]).toBeCloseTo(v - lr * gb[m], 14));
    };
    check(0, W1, b1, gW1, gb1); check(1, W2, b2, gW2, gb2); check(2, W3, b3, gW3, gb3);
    // The step really moved every weight (a no-op trainer would fail above only by luck).
    expect(Math.abs(gW1[0][0])).toBeGreaterThan(1e-6);
  });
});
