// The promise no peer makes: with the same seed, the final weights are bitwise identical for any
// thread count, even when workers finish in a different order every step.
import { afterEach, describe, expect, it } from 'vitest';
import { Trainer, createModel, type FitOptions } from '../src/index.js';
import { randomData, sameBits } from './helpers.js';

const THREADS = [1, 2, 3, 4, 8];
const data = randomData(42, 600, 12, 4, 'cross-entropy'); // 600 = 2 full batches of 256 (8 chunks of 32) + 88
// 56 hidden units: the gradient sums take rows in blocks of 16, 8 and 4 (engine.ts rowBlocks).
const LAYERS = [12, 56, 16, 4];

async function train(threads: number, fit: FitOptions): Promise<Float64Array> {
  const model = createModel({ layers: LAYERS, hidden: 'tanh', output: 'softmax', seed: 9 });
  const trainer = new Trainer(model, { threads });
  try {
    await trainer.fit(data, { epochs: 3, batchSize: 256, shuffle: true, seed: 5, ...fit });
  } finally {
    await trainer.close();
  }
  return Float64Array.from(model.params);
}

const optimizers: [string, FitOptions][] = [
  ['SGD with momentum', { optimizer: 'sgd', lr: 0.1, momentum: 0.9 }],
  ['Adam', { optimizer: 'adam', lr: 0.01 }],
];

describe('bitwise-identical weights after 3 epochs for threads 1, 2, 3, 4, 8', () => {
  afterEach(() => {
    delete process.env.BPTRAIN_TEST_DELAY_MS;
  });
  for (const [name, fit] of optimizers) {
    it(name, async () => {
      const reference = await train(1, fit);
      const start = createModel({ layers: LAYERS, hidden: 'tanh', output: 'softmax', seed: 9 }).params;
      expect(sameBits(reference, start)).toBe(false); // training moved the weights
      for (const t of THREADS.slice(1)) expect(sameBits(await train(t, fit), reference), `threads=${t}`).toBe(true);
    });
    it(`${name}, workers delayed at random so they finish out of order`, async () => {
      const reference = await train(1, fit);
      // Read by each worker when it starts: sleeps before steps and after some chunks, so workers
      // take different chunks each step and sum ahead (engine.ts sumAhead) over varying chunks.
      process.env.BPTRAIN_TEST_DELAY_MS = '3';
      for (const t of [2, 4, 8]) expect(sameBits(await train(t, fit), reference), `threads=${t}`).toBe(true);
    });
  }
  it('sparse inputs too (the first layer skips all-zero input rows per chunk)', async () => {
    const sparse = randomData(43, 600, 12, 4, 'cross-entropy');
    // Half the features are zero everywhere, and feature 1 is non-zero in only a few samples,
    // so chunks differ in which rows they skip.
    for (let s = 0; s < sparse.size; s++) for (let j = 0; j < 12; j++) if (j % 2 === 0 || (j === 1 && s % 50 !== 0)) sparse.x[s * 12 + j] = 0;
    const run = async (threads: number) => {
      const model = createModel({ layers: LAYERS, hidden: 'relu', output: 'softmax', seed: 9 });
      const trainer = new Trainer(model, { threads });
      await trainer.fit(sparse, { epochs: 3, batchSize: 256, optimizer: 'adam', lr: 0.01, seed: 5 });
      await trainer.close();
      return Float64Array.from(model.params);
    };
    const reference = await run(1);
    for (const t of [2, 3, 8]) expect(sameBits(await run(t), reference), `threads=${t}`).toBe(true);
  });
  it('more threads than chunks (batches of 32 and 64: 1 and 2 chunks; the extra threads share the gradient sums)', async () => {
    for (const batchSize of [32, 64]) {
      const run = async (threads: number) => {
        const model = createModel({ layers: LAYERS, hidden: 'tanh', output: 'softmax', seed: 9 });
        const trainer = new Trainer(model, { threads });
        expect(trainer.threadsFor(batchSize)).toBe(threads);
        await trainer.fit(data, { epochs: 1, batchSize, optimizer: 'adam', lr: 0.01, seed: 5 });
        await trainer.close();
        return Float64Array.from(model.params);
      };
      const reference = await run(1);
      for (const t of [2, 3, 8]) expect(sameBits(await run(t), reference), `batch ${batchSize}, threads=${t}`).toBe(true);
    }
  });
  it('minibatches larger than one round (1,100 samples: 35 chunks, in rounds of 32)', async () => {
    const big = randomData(44, 2300, 12, 4, 'cross-entropy');
    const run = async (threads: number) => {
      const model = createModel({ layers: LAYERS, hidden: 'tanh', output: 'softmax', seed: 9 });
      const trainer = new Trainer(model, { threads });
      await trainer.fit(big, { epochs: 2, batchSize: 1100, optimizer: 'sgd', lr: 0.1, momentum: 0.9, seed: 5 });
      await trainer.close();
      return Float64Array.from(model.params);
    };
    const reference = await run(1);
    for (const t of [2, 3]) expect(sameBits(await run(t), reference), `threads=${t}`).toBe(true);
  });
  // A stalled worker makes the others give up at a barrier; the coordinator then finishes the
  // step: from scratch (stalled before its δ pass), or, stalled before the gradient sums, the
  // gradient is complete and the coordinator applies the updates of the worker that gave up.
  for (const stall of ['1', '1@gradient']) {
    it(`a worker stalled past the barrier timeout (BPTRAIN_TEST_STALL=${stall}): the coordinator finishes the step, same bits`, async () => {
      const reference = await train(1, optimizers[1][1]);
      process.env.BPTRAIN_TEST_STALL = stall; // read by each worker when it starts
      try {
        const t0 = performance.now();
        const stalled = await train(2, optimizers[1][1]);
        expect(performance.now() - t0).toBeGreaterThan(1500); // the stall happened
        expect(sameBits(stalled, reference)).toBe(true);
      } finally {
        delete process.env.BPTRAIN_TEST_STALL;
      }
    });
  }
  it('a different seed gives different weights (the check above can fail)', async () => {
    const a = await train(2, { optimizer: 'sgd', lr: 0.1, seed: 5 });
    const b = await train(2, { optimizer: 'sgd', lr: 0.1, seed: 6 });
    expect(sameBits(a, b)).toBe(false);
  });
});
