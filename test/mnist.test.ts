// Real digits: 784-128-64-10 on MNIST from the `mnist` package reaches ≥ 90% test accuracy.
import { describe, expect, it } from 'vitest';
import { Trainer, createModel } from '../src/index.js';
import { loadMnist } from '../bench/datasets.js';

describe('MNIST', () => {
  it('784-128-64-10 relu/softmax reaches ≥ 90% test accuracy in 3 epochs (2 threads)', async () => {
    const { train, test } = loadMnist();
    expect(train.size).toBeGreaterThan(7000);
    const model = createModel({ layers: [784, 128, 64, 10], hidden: 'relu', output: 'softmax', loss: 'cross-entropy', seed: 1 });
    await using trainer = new Trainer(model, { threads: 2 });
    const history = await trainer.fit(train, { epochs: 3, batchSize: 64, optimizer: 'adam', lr: 1e-3, seed: 1, validation: test });
    const last = history.epochs.at(-1)!;
    expect(last.valAccuracy).toBeGreaterThanOrEqual(0.9);
  });
});
