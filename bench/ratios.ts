// The ratios issue #4 sets targets for, computed from this run's measurements only.
//
// A ratio passes when the measured value reaches the target. When it falls short by less than its
// own uncertainty (the two measurements' rme in quadrature) it is "MISS (within noise)": still a
// miss, but one that a quieter machine could turn either way. The one exception is the target
// "'auto' is not slower than one thread" on the tiny network: when 'auto' ran on one thread it ran
// the very code of threads: 1, so a ratio below 1 by less than its uncertainty is that noise and
// passes; a ratio below 1 by more, or 'auto' on more threads and slower, is a miss. Quick runs
// report the values and no verdict: their sizes are too small to say anything about speed.

import type { BenchResults, Ratio, RatioStatus, ScalingRow } from './results.js';
import { ratioRmePct, type Stats } from './measure.js';
import type { WorkloadId } from './workloads.js';

export function computeRatios(r: Pick<BenchResults, 'quick' | 'suites'>): Ratio[] {
  const scaling = r.suites.scaling?.rows ?? [];
  const find = (id: WorkloadId, threads: number | 'auto'): ScalingRow | undefined =>
    scaling.find((row) => row.workload === id && row.threads === threads);
  const peers = r.suites.peers?.rows ?? [];
  const peer = (impl: string, threads?: string): Stats | undefined =>
    peers.find((p) => p.impl === impl && (threads === undefined || p.threads === threads))?.stats;

  const ratio = (id: string, label: string, target: number, a: Stats | undefined, b: Stats | undefined, missing: string, sameCode = false): Ratio => {
    if (a === undefined || b === undefined) return { id, label, value: null, rmePct: null, target, status: 'n/a', note: missing };
    const value = a.samplesPerSec / b.samplesPerSec;
    const rmePct = ratioRmePct(a, b);
    if (r.quick) return { id, label, value, rmePct, target, status: 'n/a', note: 'quick run: no verdict' };
    const status = verdict(value, rmePct, target);
    if (sameCode && status === 'MISS (within noise)') return { id, label, value, rmePct, target, status: 'PASS', note: 'same code as 1 thread; below 1 by noise only' };
    return { id, label, value, rmePct, target, status };
  };

  const peersMissing = r.suites.peers === undefined ? 'peers suite not run'
    : r.suites.peers.skipped !== undefined ? `peers suite skipped: ${r.suites.peers.skipped}`
    : 'TF.js wasm backend did not run';
  const scalingMissing = (what: string): string => (r.suites.scaling === undefined ? 'scaling suite not run' : `${what} not measured`);
  return [
    ratio('bptrain-2t-vs-tfjs-wasm', 'bptrain at 2 threads ÷ TF.js wasm, MNIST 784-128-64-10, batch 64', 2,
      peer('bptrain', '2'), peer('TF.js wasm'), peersMissing),
    // Batch sizes as measured: a quick run's small data sets shrink them.
    ratio('speedup-2t-mnist-b256', `2-thread speedup, MNIST 784-128-64-10, batch ${find('mnist-b256', 1)?.batchSize ?? 256}`, 1.8,
      find('mnist-b256', 2)?.stats, find('mnist-b256', 1)?.stats, scalingMissing('2 threads')),
    ratio('speedup-2t-wide', `2-thread speedup, wide 256-1024-1024-10, batch ${find('wide', 1)?.batchSize ?? 256}`, 1.8,
      find('wide', 2)?.stats, find('wide', 1)?.stats, scalingMissing('2 threads')),
    ratio('tiny-auto-vs-1t', "tiny 2-3-2-1 batch 32: threads 'auto' ÷ 1 thread", 1,
      find('tiny', 'auto')?.stats, find('tiny', 1)?.stats, scalingMissing("'auto'"), find('tiny', 'auto')?.threadsUsed === 1),
  ];
}

function verdict(value: number, rmePct: number, target: number): RatioStatus {
  if (value >= target) return 'PASS';
  return value * (1 + rmePct / 100) >= target ? 'MISS (within noise)' : 'MISS';
}
