// The training workloads the suites share: network, batch size, and the data of one task.
//
// Data is built once per run, from one seed, and moved into shared memory up front: Trainer.fit
// shares data that is not already shared by copying it, and that copy is not what we measure.

import { toShared, type Dataset, type HiddenActivation, type Loss, type ModelOptions, type OutputActivation } from '../src/index.js';
import { firstSamples, loadMnist, randomBinary, randomClassification } from './datasets.js';
import { SEED, type Sizes } from './config.js';

export type WorkloadId = 'tiny' | 'mnist-b64' | 'mnist-b256' | 'wide';

export interface Workload {
  id: WorkloadId;
  /** What the data is, for the table. */
  dataLabel: string;
  layers: number[];
  hidden: HiddenActivation;
  output: OutputActivation;
  loss: Loss;
  batchSize: number;
}

export const WORKLOADS: readonly Workload[] = [
  { id: 'tiny', dataLabel: 'random, 2 inputs', layers: [2, 3, 2, 1], hidden: 'sigmoid', output: 'sigmoid', loss: 'binary-cross-entropy', batchSize: 32 },
  { id: 'mnist-b64', dataLabel: 'MNIST digits', layers: [784, 128, 64, 10], hidden: 'relu', output: 'softmax', loss: 'cross-entropy', batchSize: 64 },
  { id: 'mnist-b256', dataLabel: 'MNIST digits', layers: [784, 128, 64, 10], hidden: 'relu', output: 'softmax', loss: 'cross-entropy', batchSize: 256 },
  { id: 'wide', dataLabel: 'random, 10 classes', layers: [256, 1024, 1024, 10], hidden: 'relu', output: 'softmax', loss: 'cross-entropy', batchSize: 256 },
];

export function workload(id: WorkloadId): Workload {
  const w = WORKLOADS.find((x) => x.id === id);
  if (w === undefined) throw new Error(`unknown workload ${id}`);
  return w;
}

export function modelOptions(w: Workload): ModelOptions {
  return { layers: w.layers, hidden: w.hidden, output: w.output, loss: w.loss, seed: SEED };
}

/** Weights (not biases) of a network: the multiply-adds per sample are 2× this forward and
 *  4× backward, hence "effective GFLOP/s" = 6 × weights × samples/s. */
export function weightCount(layers: readonly number[]): number {
  let n = 0;
  for (let k = 1; k < layers.length; k++) n += layers[k] * layers[k - 1];
  return n;
}

export function netLabel(layers: readonly number[]): string {
  return layers.join('-');
}

/** Builds each workload's data once per run (MNIST is read on first use). */
export class DataBank {
  private mnist: Dataset | undefined;
  private readonly cache = new Map<string, Dataset>();

  constructor(private readonly sizes: Sizes) {}

  /** The MNIST training digits (about 8,000), not shared. */
  mnistTrain(): Dataset {
    this.mnist ??= loadMnist().train;
    return this.mnist;
  }

  /** The data of one task of a workload, in shared memory. */
  forWorkload(id: WorkloadId): Dataset {
    const key = id.startsWith('mnist') ? 'mnist' : id;
    let ds = this.cache.get(key);
    if (ds === undefined) {
      const s = this.sizes;
      if (key === 'tiny') ds = randomBinary(SEED, s.tinySamples, 2);
      else if (key === 'mnist') ds = firstSamples(this.mnistTrain(), s.mnistSamples);
      else ds = randomClassification(SEED, s.wideSamples, 256, 10);
      ds = toShared(ds);
      this.cache.set(key, ds);
    }
    return ds;
  }
}
