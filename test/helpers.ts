// Shared test helpers: seeded data and an independent reference loss for gradient checks.
import { Rng, makeDataset, type Dataset, type Model } from '../src/index.js';

/** n samples with inputs in [-1, 1]; targets suited to the loss of `outputs` outputs. */
export function randomData(seed: number, n: number, inputs: number, outputs: number, loss: string): Dataset {
  const rng = new Rng(seed);
  const x = Array.from({ length: n }, () => Array.from({ length: inputs }, () => rng.uniform(-1, 1)));
  if (loss === 'cross-entropy') return makeDataset(x, Array.from({ length: n }, () => rng.int(outputs)), { classes: outputs });
  if (loss === 'binary-cross-entropy') return makeDataset(x, Array.from({ length: n }, () => Array.from({ length: outputs }, () => rng.int(2))));
  return makeDataset(x, Array.from({ length: n }, () => Array.from({ length: outputs }, () => rng.uniform(-0.9, 0.9))));
}

const f = (act: string, z: number): number => {
  switch (act) {
    case 'sigmoid': return 1 / (1 + Math.exp(-z));
    case 'tanh': return Math.tanh(z);
    case 'relu': return Math.max(0, z);
    case 'leaky-relu': return z > 0 ? z : 0.01 * z;
    case 'linear': return z;
    default: throw new Error(act);
  }
};

/** Mean loss over the dataset, written from the definitions without any library kernel. */
export function referenceLoss(model: Model, data: Dataset): number {
  const { sizes, activations, loss } = model;
  let total = 0;
  for (let s = 0; s < data.size; s++) {
    let n = Array.from(data.x.subarray(s * data.inputDim, (s + 1) * data.inputDim));
    let z: number[] = [];
    for (let k = 1; k < sizes.length; k++) {
      const W = model.views.W[k - 1], b = model.views.b[k - 1];
      z = Array.from({ length: sizes[k] }, (_, m) => n.reduce((acc, v, j) => acc + W[m * sizes[k - 1] + j] * v, b[m]));
      const act = activations[k - 1];
      if (act === 'softmax') {
        const mx = Math.max(...z);
        const e = z.map((v) => Math.exp(v - mx));
        const sum = e.reduce((a, b2) => a + b2, 0);
        n = e.map((v) => v / sum);
      } else n = z.map((v) => f(act, v));
    }
    const y = Array.from(data.y.subarray(s * data.targetDim, (s + 1) * data.targetDim));
    const m = y.length;
    if (loss === 'mse') total += y.reduce((acc, t, j) => acc + (n[j] - t) ** 2, 0) / m;
    else if (loss === 'binary-cross-entropy') total += y.reduce((acc, t, j) => acc - (t * Math.log(n[j]) + (1 - t) * Math.log(1 - n[j])), 0) / m;
    else total += -y.reduce((acc, t, j) => acc + (t === 0 ? 0 : t * Math.log(n[j])), 0);
  }
  return total / data.size;
}

/** Bitwise equality of two float arrays (distinguishes -0 and NaN payloads too). */
export function sameBits(a: Float64Array, b: Float64Array): boolean {
  if (a.length !== b.length) return false;
  const ua = new BigUint64Array(a.buffer, a.byteOffset, a.length);
  const ub = new BigUint64Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return false;
  return true;
}
