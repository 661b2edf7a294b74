// Do two busy threads run as fast as one on this machine? A diagnostic of the machine, not of
// bptrain: it explains how far any two-thread speedup can go here.
//
//   npm run build && node dist/bench/contention.js [repetitions]      (default 25)
//
// Two worker threads run the same loop, first each alone, then both at once, many times over;
// the ratio (time both at once) ÷ (time alone) is 1.00 when the two threads get two full cores.
// One loop keeps its data in L1 (arithmetic only); others stream over a working set of 1, 4,
// 12 and 32 MiB per thread (L2 is 1 MiB per core and L3 32 MiB shared on the development
// machine), reading one double per 64-byte cache line, so that they measure the caches and
// memory the two threads share. The last runs bptrain's own one-thread work, whole chunk
// gradients of 784-128-64-10 on MNIST digits, each thread on its own copy of model and data:
// nothing is shared, so its ratio is the most a two-thread step can get here from the machine,
// before any cost of splitting a step. Prints the median ratio and its range per loop.

import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { createModel, paramViews } from '../src/index.js';
import { chunkGradient, makeWorkspace } from '../src/backprop.js';
import { CHUNK_SIZE } from '../src/engine.js';
import { firstSamples, loadMnist } from './datasets.js';
import { countArgument } from './config.js';

interface Job {
  readonly sync: SharedArrayBuffer;
  /** 0: arithmetic in L1; CHUNKS: bptrain chunk gradients; otherwise the working set in MiB. */
  readonly mib: number;
}

const CHUNKS = -1;

/** Streaming passes per timing: about 400 MiB of cache lines whatever the working set. */
const STREAM_MIB = 384;

function arithmetic(): number {
  const a = new Float64Array(512).fill(1.0001);
  let s = 0;
  for (let r = 0; r < 40_000; r++) for (let i = 0; i < 512; i += 4) s += a[i] * a[i + 1] + a[i + 2] * a[i + 3];
  return s;
}

/** 64 chunk gradients (about 150 ms), as a one-thread training step runs them, over the first
 *  4,096 training digits in turn. */
function chunkGradients(): () => number {
  const model = createModel({ layers: [784, 128, 64, 10], hidden: 'relu', output: 'softmax', loss: 'cross-entropy', seed: 1 });
  const { layout } = model;
  const P = paramViews(layout, model.params);
  const G = paramViews(layout, new Float64Array(layout.stride));
  const data = firstSamples(loadMnist().train, 4096);
  const ws = makeWorkspace(layout, CHUNK_SIZE);
  let start = 0;
  return () => {
    let loss = 0;
    for (let c = 0; c < 64; c++) {
      loss += chunkGradient(layout, P, G, ws, data.x, data.y, null, start, CHUNK_SIZE, c > 0).loss;
      start = (start + CHUNK_SIZE) % data.size;
    }
    return loss;
  };
}

function stream(data: Float64Array, passes: number): number {
  let s = 0;
  for (let r = 0; r < passes; r++) for (let i = 0; i < data.length; i += 8) s += data[i];
  return s;
}

// Worker: waits for a go (sync[0] = 1), runs the loop once, answers with the time it took.
// sync[1] = -1 ends it. The go flag is cleared before the answer is posted, so the next go
// cannot be lost.
function workerMain(job: Job): void {
  const sync = new Int32Array(job.sync);
  const data = new Float64Array(Math.max(0, job.mib) * 131_072).fill(1);
  const run = job.mib === CHUNKS ? chunkGradients() : job.mib === 0 ? arithmetic : () => stream(data, Math.max(1, Math.round(STREAM_MIB / job.mib)));
  run(); // JIT and page faults before the first timing
  for (;;) {
    Atomics.wait(sync, 0, 0);
    if (sync[1] === -1) return;
    const t0 = performance.now();
    run();
    const ms = performance.now() - t0;
    Atomics.store(sync, 0, 0);
    parentPort!.postMessage(ms);
  }
}

async function measure(mib: number, repetitions: number): Promise<number[]> {
  const syncs = [0, 1].map(() => new SharedArrayBuffer(8));
  const workers = syncs.map((sync) => new Worker(new URL(import.meta.url), { workerData: { sync, mib } satisfies Job }));
  const go = (which: number[]): Promise<number[]> => Promise.all(which.map((i) => new Promise<number>((resolve, reject) => {
    const w = workers[i];
    const done = (ms: number): void => { w.off('error', fail); resolve(ms); };
    const fail = (err: Error): void => { w.off('message', done); reject(err); };
    w.once('message', done);
    w.once('error', fail);
    const s = new Int32Array(syncs[i]);
    Atomics.store(s, 0, 1);
    Atomics.notify(s, 0);
  })));
  try {
    await go([0, 1]); // both warm, together, once
    const ratios: number[] = [];
    for (let r = 0; r < repetitions; r++) {
      const [a] = await go([0]);
      const [b] = await go([1]);
      const both = await go([0, 1]);
      ratios.push((both[0] + both[1]) / (a + b));
    }
    return ratios;
  } finally {
    for (const sync of syncs) {
      const s = new Int32Array(sync);
      Atomics.store(s, 1, -1);
      Atomics.store(s, 0, 1);
      Atomics.notify(s, 0);
    }
    await Promise.all(workers.map((w) => new Promise((resolve) => w.once('exit', resolve))));
  }
}

async function main(): Promise<void> {
  const repetitions = countArgument('contention.js', 'REPETITIONS', 25, 3);
  if (repetitions === null) return;
  const lines = [
    `Two threads, each alone and then both at once, ${repetitions} times: time both at once ÷ time alone (1.00 = two full cores).`,
    '',
    '| loop | median | range |',
    '| --- | --- | --- |',
  ];
  for (const mib of [0, 1, 4, 12, 32, CHUNKS]) {
    const v = (await measure(mib, repetitions)).sort((x, y) => x - y);
    const label = mib === CHUNKS ? 'bptrain chunk gradients, 784-128-64-10 on MNIST, own copies' : mib === 0 ? 'arithmetic, data in L1' : `stream over ${mib} MiB per thread`;
    lines.push(`| ${label} | ${v[v.length >> 1].toFixed(2)} | ${v[0].toFixed(2)}–${v[v.length - 1].toFixed(2)} |`);
  }
  process.stdout.write(lines.join('\n') + '\n');
}

if (isMainThread) {
  main().catch((err: unknown) => {
    process.stderr.write(`contention: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  });
} else {
  workerMain(workerData as Job);
}
