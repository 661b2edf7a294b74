// Scaling suite: training throughput (samples/s), speedup and parallel efficiency against the
// thread count, on four workloads from arithmetic-starved (tiny) to arithmetic-bound (wide).
//
// Per workload, tinybench Benches in short rounds (measure.ts measureInterleaved: every thread
// count once per round, order rotated, so that load from elsewhere on a shared machine falls on
// every thread count alike), one task per thread count; a task is one epoch of Trainer.fit over
// the workload's data. Every Trainer is created before the bench runs and closed after it,
// so worker start-up is outside the timings and the workers stay JIT-warm across iterations
// (tinybench's warm-up call starts the pool). After the timing, one fit per thread count with
// `profile: true` says where a step's time went (Trainer's StepPhases): kept out of the timed
// calls, though it changes no arithmetic and costs a few clock reads per step.

import { Trainer, createModel, type EpochStats, type StepPhases } from '../src/index.js';
import { LR, type BenchConfig } from './config.js';
import { measureInterleaved, type TaskSpec } from './measure.js';
import type { ScalingResult, ScalingRow } from './results.js';
import { DataBank, WORKLOADS, modelOptions, netLabel, weightCount } from './workloads.js';

export async function runScaling(cfg: BenchConfig, bank: DataBank, log: (line: string) => void): Promise<ScalingResult> {
  const rows: ScalingRow[] = [];
  for (const w of WORKLOADS) {
    const data = bank.forWorkload(w.id);
    const batchSize = Math.min(w.batchSize, data.size);
    // 'auto' is measured on the tiny network only: that is where the heuristic must keep fit on
    // one thread rather than pay worker round trips that cost more than the arithmetic.
    // It runs right after the 1-thread task it is compared with, so that drift in the machine's
    // load between the two measurements is as small as it can be.
    const settings: (number | 'auto')[] = w.id === 'tiny' ? [1, 'auto', ...cfg.threads.slice(1)] : [...cfg.threads];
    const trainers = settings.map((threads) => new Trainer(createModel(modelOptions(w)), { threads }));
    log(`scaling: ${w.id} (${netLabel(w.layers)}, batch ${batchSize}, ${data.size} samples/task), threads ${settings.join(',')}`);
    try {
      const tasks: TaskSpec[] = settings.map((threads, i) => ({
        name: `threads=${threads}`,
        samples: data.size,
        async: true,
        fn: () => trainers[i].fit(data, { epochs: 1, batchSize, optimizer: 'sgd', lr: LR, shuffle: false }),
      }));
      const stats = await measureInterleaved(`scaling/${w.id}`, cfg.timing, tasks, cfg.quick);
      const phases = new Map<number, StepPhases>();
      for (const [i, threads] of settings.entries()) {
        if (threads === 'auto') continue;
        const h = await trainers[i].fit(data, { epochs: cfg.quick ? 1 : PROFILE_EPOCHS, batchSize, optimizer: 'sgd', lr: LR, shuffle: false, profile: true });
        phases.set(threads, meanPhases(h.epochs));
      }
      const weights = weightCount(w.layers);
      const base = stats.get('threads=1')!;
      // Rows in table order: thread counts ascending, then 'auto'.
      const order = settings.map((threads, i) => ({ threads, i })).sort((a, b) => rank(a.threads) - rank(b.threads));
      order.forEach(({ threads, i }) => {
        const s = stats.get(`threads=${threads}`)!;
        const speedup = threads === 'auto' ? null : s.samplesPerSec / base.samplesPerSec;
        rows.push({
          workload: w.id,
          network: netLabel(w.layers),
          data: w.dataLabel,
          batchSize,
          threads,
          threadsUsed: trainers[i].threadsFor(batchSize),
          stats: s,
          speedup,
          efficiency: speedup === null ? null : speedup / (threads as number),
          gflops: (6 * weights * s.samplesPerSec) / 1e9,
          phases: threads === 'auto' ? null : phases.get(threads)!,
        });
      });
    } finally {
      await Promise.all(trainers.map((t) => t.close()));
    }
  }
  return { rows };
}

/** Epochs of the profiled fit per thread count (their mean is reported). */
const PROFILE_EPOCHS = 3;

function meanPhases(epochs: readonly EpochStats[]): StepPhases {
  const mean = (k: Exclude<keyof StepPhases, 'threads'>): number => epochs.reduce((a, e) => a + e.phases![k], 0) / epochs.length;
  return { threads: epochs[0].phases!.threads, stepMs: mean('stepMs'), deltas: mean('deltas'), gradients: mean('gradients'), update: mean('update'), waiting: mean('waiting') };
}

const rank = (threads: number | 'auto'): number => (threads === 'auto' ? Number.MAX_SAFE_INTEGER : threads);
