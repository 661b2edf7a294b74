// Per-step times, one thread against two: where a two-thread speedup below 2 comes from.
//
//   npm run build && node dist/bench/steps.js [epochs]      (default 12 epochs of 4,096 samples)
//
// Trains 784-128-64-10 on MNIST digits at batch 256, alternating one-thread and two-thread
// epochs (so that a change in the machine's load falls on both), and times every step from the
// gaps between onStep calls (on the pool, workers report each step as it completes). Prints the
// percentiles of the step time and the mean, and the speedup they imply. A median speedup near 2
// with a mean speedup well below says the loss is in occasional slow steps (the machine), not in
// every step (the code). Not part of `npm run bench`: a diagnostic, not a target.

import { Trainer, createModel, toShared } from '../src/index.js';
import { firstSamples, loadMnist } from './datasets.js';
import { SEED, LR, countArgument } from './config.js';

const SAMPLES = 4096;
const BATCH = 256;
const PERCENTILES = [0.1, 0.25, 0.5, 0.75, 0.9, 0.95];

async function main(): Promise<void> {
  const epochs = countArgument('steps.js', 'EPOCHS', 12, 2);
  if (epochs === null) return;
  const data = toShared(firstSamples(loadMnist().train, SAMPLES));
  const trainers = [1, 2].map((threads) => new Trainer(createModel({ layers: [784, 128, 64, 10], hidden: 'relu', output: 'softmax', loss: 'cross-entropy', seed: SEED }), { threads }));
  const times: number[][] = [[], []];
  try {
    for (let e = 0; e < epochs + 1; e++) {
      for (let i = 0; i < 2; i++) {
        let last = performance.now();
        await trainers[i].fit(data, {
          epochs: 1, batchSize: BATCH, optimizer: 'sgd', lr: LR, shuffle: false,
          onStep: () => {
            const now = performance.now();
            if (e > 0) times[i].push(now - last); // the first epoch warms up the JIT and the pool
            last = now;
          },
        });
      }
    }
  } finally {
    await Promise.all(trainers.map((t) => t.close()));
  }
  const pct = (v: number[], p: number): number => [...v].sort((a, b) => a - b)[Math.min(v.length - 1, Math.floor(v.length * p))];
  const mean = (v: number[]): number => v.reduce((a, b) => a + b, 0) / v.length;
  const row = (label: string, v: number[]): string => `| ${label} | ${PERCENTILES.map((p) => pct(v, p).toFixed(2)).join(' | ')} | ${mean(v).toFixed(2)} |`;
  const out = [
    `784-128-64-10 on ${SAMPLES} MNIST digits, batch ${BATCH}, ${epochs} epochs per thread count (${times[0].length} steps each): step time in ms.`,
    '',
    `| threads | ${PERCENTILES.map((p) => `p${Math.round(p * 100)}`).join(' | ')} | mean |`,
    `| --- | ${PERCENTILES.map(() => '---').join(' | ')} | --- |`,
    row('1', times[0]),
    row('2', times[1]),
    '',
    `speedup at the median step: ${(pct(times[0], 0.5) / pct(times[1], 0.5)).toFixed(2)}; from the mean step: ${(mean(times[0]) / mean(times[1])).toFixed(2)}`,
  ];
  process.stdout.write(out.join('\n') + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`steps: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exitCode = 1;
});
