// Kernels suite: what the arithmetic costs, apart from threads.
//
// 1. Block kernels against the naive per-sample reference on one block of MNIST samples through
//    784-128-64-10: the first dense layer forward, its backward (dW, db and dA), and the whole
//    chunk gradient (gather + forward + backward) against S calls of sampleGradientNaive.
// 2. The coordinator's per-step overhead: a 2-3-2-1 network at batch 128 (4 chunks of 32) has so
//    little arithmetic that a step's time at t threads, minus the one-thread step (which runs the
//    chunks inline), is what keeping the threads in step costs: three barriers per step, plus one
//    pool round trip per task (a task runs the whole epoch).

import { Rng, Trainer, createModel, paramViews, toShared } from '../src/index.js';
import { backwardBlock, forwardBlock, gatherBlock, makeWorkspace, sampleGradientNaive } from '../src/backprop.js';
import { denseBackward, denseBackwardNaive, denseForward, denseForwardNaive } from '../src/kernels.js';
import { CHUNK_SIZE, chunkCount } from '../src/engine.js';
import { LR, SEED, type BenchConfig } from './config.js';
import { measure, type Stats, type TaskSpec } from './measure.js';
import type { KernelRow, KernelsResult, OverheadRow } from './results.js';
import { DataBank, modelOptions, netLabel, weightCount, workload } from './workloads.js';
import { randomBinary } from './datasets.js';

export async function runKernels(cfg: BenchConfig, bank: DataBank, log: (line: string) => void): Promise<KernelsResult> {
  const rows = await blockVsNaive(cfg, bank, log);
  const overhead = await coordinatorOverhead(cfg, log);
  const w = workload('mnist-b64');
  return { network: netLabel(w.layers), blockSamples: cfg.sizes.kernelBlock, rows, overhead };
}

async function blockVsNaive(cfg: BenchConfig, bank: DataBank, log: (line: string) => void): Promise<KernelRow[]> {
  const w = workload('mnist-b64');
  const model = createModel(modelOptions(w));
  const { layout, views: P } = model;
  const sizes = layout.spec.sizes;
  const n0 = sizes[0], n1 = sizes[1], m = sizes[sizes.length - 1];
  const data = bank.forWorkload('mnist-b64');
  const S = Math.min(cfg.sizes.kernelBlock, data.size);
  const X = data.x, Y = data.y;
  log(`kernels: block vs naive, ${netLabel(w.layers)}, ${S} samples`);

  // Block path inputs: the block gathered once, feature-major, as the trainer's chunks see it.
  const ws = makeWorkspace(layout, S);
  gatherBlock(ws, X, Y, null, 0, S, n0, m);
  const A0 = ws.acts[0];
  const Z1 = new Float64Array(n1 * S);
  // Naive path inputs: per-sample views made up front, so no allocation is timed in the forward
  // and backward comparisons (sampleGradientNaive allocates by design; that is part of it).
  const xs = Array.from({ length: S }, (_, s) => X.subarray(s * n0, (s + 1) * n0));
  const ys = Array.from({ length: S }, (_, s) => Y.subarray(s * m, (s + 1) * m));
  const z1 = new Float64Array(n1);
  // An output δ for the layer's backward pass: seeded values, the same for both paths.
  const rng = new Rng(SEED);
  const dZ = Float64Array.from({ length: n1 * S }, () => rng.uniform(-1, 1));
  const deltas = Array.from({ length: S }, (_, s) => Float64Array.from({ length: n1 }, (_, o) => dZ[o * S + s]));
  const dA = new Float64Array(n0 * S);
  const dn = new Float64Array(n0);
  const dW = new Float64Array(n1 * n0);
  const db = new Float64Array(n1);
  const gBlock = new Float64Array(layout.stride);
  const gNaive = new Float64Array(layout.stride);
  const GBlock = paramViews(layout, gBlock);
  const GNaive = paramViews(layout, gNaive);
  const W0 = P.W[0], b0 = P.b[0];

  const groups = [
    {
      group: `dense forward ${n0}→${n1}`, flopsPerSample: 2 * n0 * n1,
      block: { description: `denseForward, one ${n1}×${S} block`, fn: () => denseForward(Z1, A0, W0, b0, n1, n0, S) },
      naive: { description: `${S} × denseForwardNaive`, fn: () => { for (let s = 0; s < S; s++) denseForwardNaive(z1, xs[s], W0, b0, n1, n0); } },
    },
    {
      group: `dense backward ${n0}→${n1} (dW, db, dA)`, flopsPerSample: 4 * n0 * n1,
      block: { description: `denseBackward, one block`, fn: () => denseBackward(dA, dW, db, dZ, A0, W0, n1, n0, S) },
      naive: { description: `${S} × denseBackwardNaive`, fn: () => { for (let s = 0; s < S; s++) denseBackwardNaive(dn, dW, db, deltas[s], xs[s], W0, n1, n0); } },
    },
    {
      group: `gradient ${netLabel(w.layers)}`, flopsPerSample: 6 * weightCount(w.layers),
      block: {
        description: 'gatherBlock + forwardBlock + backwardBlock',
        fn: () => {
          gBlock.fill(0);
          gatherBlock(ws, X, Y, null, 0, S, n0, m);
          forwardBlock(layout, P, ws, S);
          backwardBlock(layout, P, GBlock, ws, S);
        },
      },
      naive: {
        description: `${S} × sampleGradientNaive`,
        fn: () => {
          gNaive.fill(0);
          for (let s = 0; s < S; s++) sampleGradientNaive(layout, P, GNaive, xs[s], ys[s]);
        },
      },
    },
  ];

  const tasks: TaskSpec[] = groups.flatMap((g) => [
    { name: `${g.group} | block`, samples: S, async: false, fn: g.block.fn },
    { name: `${g.group} | naive`, samples: S, async: false, fn: g.naive.fn },
  ]);
  const stats = await measure('kernels/block-vs-naive', cfg.timing, tasks);
  const rows: KernelRow[] = [];
  for (const g of groups) {
    const b = stats.get(`${g.group} | block`)!;
    const n = stats.get(`${g.group} | naive`)!;
    const gf = (s: Stats): number => (g.flopsPerSample * s.samplesPerSec) / 1e9;
    rows.push({ group: g.group, impl: 'block', description: g.block.description, stats: b, gflops: gf(b), speedupVsNaive: b.samplesPerSec / n.samplesPerSec });
    rows.push({ group: g.group, impl: 'naive', description: g.naive.description, stats: n, gflops: gf(n), speedupVsNaive: null });
  }
  return rows;
}

async function coordinatorOverhead(cfg: BenchConfig, log: (line: string) => void): Promise<KernelsResult['overhead']> {
  const w = workload('tiny');
  const batchSize = 128;
  const steps = cfg.sizes.overheadSteps;
  const data = toShared(randomBinary(SEED, batchSize * steps, w.layers[0]));
  const chunks = chunkCount(batchSize, CHUNK_SIZE);
  log(`kernels: coordinator overhead, ${netLabel(w.layers)}, batch ${batchSize} (${chunks} chunks), ${steps} steps/task, threads ${cfg.threads.join(',')}`);
  const trainers = cfg.threads.map((threads) => new Trainer(createModel(modelOptions(w)), { threads }));
  try {
    const tasks: TaskSpec[] = cfg.threads.map((threads, i) => ({
      name: `threads=${threads}`,
      samples: data.size,
      async: true,
      fn: () => trainers[i].fit(data, { epochs: 1, batchSize, optimizer: 'sgd', lr: LR, shuffle: false }),
    }));
    const stats = await measure('kernels/overhead', cfg.timing, tasks);
    const perStep = (s: Stats): number => (s.meanMs * 1000) / steps;
    const base = perStep(stats.get('threads=1')!);
    const rows: OverheadRow[] = cfg.threads.map((threads, i) => {
      const s = stats.get(`threads=${threads}`)!;
      return {
        threads, threadsUsed: trainers[i].threadsFor(batchSize), stepsPerTask: steps, stats: s,
        perStepUs: perStep(s), overheadUs: threads === 1 ? null : perStep(s) - base,
      };
    });
    return { network: netLabel(w.layers), batchSize, chunks, rows };
  } finally {
    await Promise.all(trainers.map((t) => t.close()));
  }
}
