// The shape of a benchmark run's results: what the suites return, what the JSON file holds, and
// what the Markdown table and the SVG plot are drawn from.

import type { StepPhases } from '../src/index.js';
import type { Stats } from './measure.js';
import type { WorkloadId } from './workloads.js';

export interface ScalingRow {
  workload: WorkloadId;
  network: string;
  data: string;
  /** The batch size of the run (the workload's, capped at the task's sample count). */
  batchSize: number;
  /** Threads asked of the Trainer, and what Trainer.threadsFor made of it. */
  threads: number | 'auto';
  threadsUsed: number;
  stats: Stats;
  /** samples/s ÷ samples/s at 1 thread, and that ÷ threads (null for 'auto'). */
  speedup: number | null;
  efficiency: number | null;
  /** 6 × weights × samples/s, in GFLOP/s. */
  gflops: number;
  /** Where a step's time went, from a profiled fit after the timing (null for 'auto'). */
  phases: StepPhases | null;
}

export interface ScalingResult {
  rows: ScalingRow[];
}

export interface KernelRow {
  /** The comparison this row belongs to, e.g. 'dense forward 784→128'. */
  group: string;
  impl: 'block' | 'naive';
  description: string;
  stats: Stats;
  gflops: number;
  /** block samples/s ÷ naive samples/s (on the block row). */
  speedupVsNaive: number | null;
}

export interface OverheadRow {
  threads: number;
  threadsUsed: number;
  stepsPerTask: number;
  stats: Stats;
  /** Mean time of one step, µs, and the extra over the one-thread step. */
  perStepUs: number;
  overheadUs: number | null;
}

export interface KernelsResult {
  network: string;
  blockSamples: number;
  rows: KernelRow[];
  overhead: { network: string; batchSize: number; chunks: number; rows: OverheadRow[] };
}

export interface PeerRow {
  impl: string;
  precision: 'float64' | 'float32';
  threads: string;
  stats: Stats;
  gflops: number;
}

export interface PeersResult {
  /** Why the suite did not run (TF.js not installed), if it did not. */
  skipped?: string;
  network: string;
  batchSize: number;
  samples: number;
  tfjs?: { version: string; wasmSimd: boolean | null; wasmThreads: number | null; wasmError?: string };
  rows: PeerRow[];
}

export type RatioStatus = 'PASS' | 'MISS' | 'MISS (within noise)' | 'n/a';

export interface Ratio {
  id: string;
  label: string;
  value: number | null;
  /** Relative uncertainty of the value (rme of the two measurements in quadrature), percent. */
  rmePct: number | null;
  target: number;
  status: RatioStatus;
  note?: string;
}

export interface Machine {
  cpuModel: string;
  cores: number;
  availableParallelism: number;
  totalMemGiB: number;
  platform: string;
  arch: string;
  node: string;
  v8: string;
  tinybench: string | undefined;
  loadAverage: number[];
}

export interface BenchResults {
  schema: 'bptrain-bench/1';
  startedAt: string;
  finishedAt: string;
  durationSec: number;
  command: string;
  /** bptrain's version (package.json); absent in files written before it was recorded. */
  version?: string;
  /** The checked-out commit (`git describe --always`; "-dirty" when code differs from it, not
   *  counting earlier results), when git can tell; absent for an installed bptrain. */
  commit?: string;
  quick: boolean;
  machine: Machine;
  config: {
    threads: number[];
    suites: string[];
    timing: { time: number; iterations: number; warmupTime: number; warmupIterations: number };
    sizes: Record<string, number>;
    seed: number;
    lr: number;
  };
  suites: {
    scaling?: ScalingResult;
    kernels?: KernelsResult;
    peers?: PeersResult;
  };
  ratios: Ratio[];
}
