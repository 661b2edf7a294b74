// Writes the inputs of the PyTorch-semantics reference test (test/reference.test.ts): for each
// case, the initial model (bptrain's model file object, from createModel with a fixed seed), the
// training and test data (from bptrain's seeded Rng; no Math.random), the fit options and, where
// the case shuffles, the order of every epoch. scripts/torch-reference.py reads this JSON, trains
// the same networks in numpy with PyTorch's formulas, and writes the fixture (these inputs plus
// its expectations). Regenerate the committed fixture with:
//
//   npm run build && node scripts/reference-cases.mjs | python3 scripts/torch-reference.py - test/fixtures/reference/torch-reference.json
//
// With a file argument the cases go to that file instead of stdout.
import { writeFileSync } from 'node:fs';
import { Rng, createModel } from '../dist/src/index.js';

/** Rounds to 6 decimals: short, readable fixture lines (the values stay exact doubles either way). */
const r6 = (v) => Number(v.toFixed(6));

/** N samples of `n0` inputs in [-2, 2) and targets of the given kind over m outputs. Sample 0 has
 *  all inputs 0, so at step 1 its first-layer pre-activations are the biases, which start at 0:
 *  relu'(0) = 0 and leaky-relu'(0) = 0.01 decide its gradient. */
function makeData(kind, N, n0, m, seed) {
  const rng = new Rng(seed);
  const x = [], y = [];
  for (let i = 0; i < N; i++) {
    x.push(i === 0 ? new Array(n0).fill(0) : Array.from({ length: n0 }, () => r6(rng.uniform(-2, 2))));
    switch (kind) {
      case 'class': { const c = rng.int(m); y.push(Array.from({ length: m }, (_, j) => (j === c ? 1 : 0))); break; }
      case 'soft-class': { // probability rows (they sum to 1 up to rounding): cross-entropy with soft targets
        const p = Array.from({ length: m }, () => rng.uniform(0.05, 1));
        const s = p.reduce((a, b) => a + b, 0);
        y.push(p.map((v) => r6(v / s)));
        break;
      }
      case 'binary': y.push(Array.from({ length: m }, () => rng.int(2))); break;
      case 'unit': y.push(Array.from({ length: m }, () => r6(rng.uniform(0, 1)))); break; // sigmoid + mse
      case 'pm1': y.push(Array.from({ length: m }, () => r6(rng.uniform(-0.9, 0.9)))); break; // tanh + mse
      case 'real': y.push(Array.from({ length: m }, () => r6(rng.uniform(-1.5, 1.5)))); break; // linear + mse
      default: throw new Error(kind);
    }
  }
  return { x, y };
}

/** The epoch orders bptrain's Trainer.fit uses with shuffle on: one Rng(seed) for the whole fit;
 *  every epoch starts from the identity and Fisher–Yates-shuffles it (trainer.ts, fitLoop). */
function shuffleOrders(seed, N, epochs) {
  const rng = new Rng(seed);
  const orders = [];
  for (let e = 0; e < epochs; e++) {
    const order = new Int32Array(N);
    for (let i = 0; i < N; i++) order[i] = i;
    rng.shuffle(order);
    orders.push(Array.from(order));
  }
  return orders;
}

const PAIRS = {
  'softmax-ce': { output: 'softmax', loss: 'cross-entropy', m: 4, data: 'class' },
  'sigmoid-bce': { output: 'sigmoid', loss: 'binary-cross-entropy', m: 2, data: 'binary' },
  'sigmoid-mse': { output: 'sigmoid', loss: 'mse', m: 2, data: 'unit' },
  'linear-mse': { output: 'linear', loss: 'mse', m: 2, data: 'real' },
  'tanh-mse': { output: 'tanh', loss: 'mse', m: 2, data: 'pm1' },
};
const SGD = { optimizer: 'sgd', lr: 0.1 };
// Base shape: 3-5-4-m, 10 samples, batch 4 (the last batch of each epoch has 2), 3 epochs.
const BASE = { layers: [3, 5, 4], N: 10, fit: { batchSize: 4, epochs: 3, shuffle: false } };
const base = (name, pair, hidden, fit) => {
  const p = PAIRS[pair];
  return { name, layers: [...BASE.layers, p.m], hidden, output: p.output, loss: p.loss, data: p.data, N: BASE.N, fit: { ...BASE.fit, ...fit } };
};

const CASES = [
  // Each output/loss pair once, the hidden activation rotating through all five.
  base('softmax-ce/relu/sgd', 'softmax-ce', 'relu', SGD),
  base('sigmoid-bce/sigmoid/sgd', 'sigmoid-bce', 'sigmoid', SGD),
  base('sigmoid-mse/tanh/sgd', 'sigmoid-mse', 'tanh', SGD),
  base('linear-mse/leaky-relu/sgd', 'linear-mse', 'leaky-relu', SGD),
  base('tanh-mse/linear/sgd', 'tanh-mse', 'linear', SGD),
  // The optimizers on one net (relu, softmax + cross-entropy; plain SGD is the first case above).
  base('softmax-ce/relu/momentum', 'softmax-ce', 'relu', { optimizer: 'sgd', lr: 0.05, momentum: 0.9 }),
  base('softmax-ce/relu/nesterov', 'softmax-ce', 'relu', { optimizer: 'sgd', lr: 0.05, momentum: 0.9, nesterov: true }),
  base('softmax-ce/relu/sgd-weight-decay', 'softmax-ce', 'relu', { optimizer: 'sgd', lr: 0.1, weightDecay: 0.05 }),
  base('softmax-ce/relu/adam', 'softmax-ce', 'relu', { optimizer: 'adam', lr: 0.01 }),
  base('softmax-ce/relu/adam-weight-decay', 'softmax-ce', 'relu', { optimizer: 'adam', lr: 0.01, weightDecay: 0.01 }),
  base('softmax-ce/relu/adam-betas-eps', 'softmax-ce', 'relu', { optimizer: 'adam', lr: 0.02, beta1: 0.8, beta2: 0.99, eps: 1e-6 }),
  // Gradient clipping that triggers: on some of the 9 steps (7; the others stay below 1), and on
  // all 9. The fixture records on how many steps (expected.clippedSteps).
  base('linear-mse/tanh/sgd-clip', 'linear-mse', 'tanh', { optimizer: 'sgd', lr: 0.1, momentum: 0.5, clipNorm: 1 }),
  base('sigmoid-bce/leaky-relu/adam-clip', 'sigmoid-bce', 'leaky-relu', { optimizer: 'adam', lr: 0.01, clipNorm: 0.05 }),
  // Several 32-sample chunks per batch (threads really split the batch), partial last batch: 150 = 70 + 70 + 10.
  { name: 'multichunk/partial-last-batch', layers: [3, 6, 5, 4], hidden: 'tanh', output: 'softmax', loss: 'cross-entropy', data: 'class', N: 150,
    fit: { optimizer: 'sgd', lr: 0.1, momentum: 0.9, batchSize: 70, epochs: 3, shuffle: false } },
  // Batch larger than the data set: one step per epoch over all 10 samples.
  { name: 'batch>N', layers: [3, 5, 4, 2], hidden: 'sigmoid', output: 'tanh', loss: 'mse', data: 'pm1', N: 10,
    fit: { optimizer: 'sgd', lr: 0.1, batchSize: 64, epochs: 4, shuffle: false } },
  { name: 'batch1', layers: [3, 5, 4, 4], hidden: 'relu', output: 'softmax', loss: 'cross-entropy', data: 'class', N: 10,
    fit: { optimizer: 'adam', lr: 0.01, batchSize: 1, epochs: 2, shuffle: false } },
  // Four layers of weights, a different activation in each hidden layer.
  { name: 'mixed-hidden', layers: [3, 5, 4, 3, 2], hidden: ['tanh', 'leaky-relu', 'relu'], output: 'sigmoid', loss: 'binary-cross-entropy', data: 'binary', N: 10,
    fit: { optimizer: 'sgd', lr: 0.2, momentum: 0.9, nesterov: true, weightDecay: 0.001, batchSize: 3, epochs: 3, shuffle: false } },
  // Cross-entropy with probability targets.
  { name: 'soft-cross-entropy', layers: [3, 5, 4, 4], hidden: 'tanh', output: 'softmax', loss: 'cross-entropy', data: 'soft-class', N: 10,
    fit: { optimizer: 'sgd', lr: 0.1, batchSize: 4, epochs: 3, shuffle: false } },
  // Shuffle on: the orders come from bptrain's Rng as the trainer draws them (shuffleOrders).
  { name: 'shuffle/multichunk', layers: [3, 6, 5, 2], hidden: 'leaky-relu', output: 'linear', loss: 'mse', data: 'real', N: 100,
    fit: { optimizer: 'adam', lr: 0.01, batchSize: 40, epochs: 3, shuffle: true, seed: 7 } },
];

const cases = CASES.map((c, i) => {
  const seed = 101 + i;
  const m = c.layers[c.layers.length - 1];
  const model = createModel({ layers: c.layers, hidden: c.hidden, output: c.output, loss: c.loss, seed });
  return {
    name: c.name,
    model: model.toJSON(),
    train: makeData(c.data, c.N, c.layers[0], m, 1000 + seed),
    test: makeData(c.data, 13, c.layers[0], m, 5000 + seed),
    fit: c.fit,
    ...(c.fit.shuffle ? { orders: shuffleOrders(c.fit.seed, c.N, c.fit.epochs) } : {}),
  };
});

const text = JSON.stringify({ format: 'bptrain-reference-cases', version: 1, cases }) + '\n';
if (process.argv[2] !== undefined) writeFileSync(process.argv[2], text);
else process.stdout.write(text);
