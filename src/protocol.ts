// The typed boundary between the coordinator and the worker threads.
//
// Weights, gradients and data are never copied: a task carries SharedArrayBuffer handles (cloning
// one shares the memory) plus indices and offsets. Within a step every piece of shared memory has
// one writer: a chunk's δ block and stats entries are written by the thread that took the chunk,
// a gradient or parameter row by the thread whose share holds it. So workers need no locks and
// finish in any order.

import type { NetSpec } from './layout.js';
import type { OptimizerOptions } from './optim.js';

export interface SharedBuffers {
  /** Model parameters (read-only for workers until a step's last barrier). */
  readonly params: SharedArrayBuffer;
  /** The summed gradient of a minibatch, `stride` doubles, same layout as params. */
  readonly gradSum: SharedArrayBuffer;
  /** Activations and δ of the chunks of one round, one workspace each (backprop.ts, engine.ts
   *  blockMemory), and their Int32 part (the sparse first layer's row lists). */
  readonly blocks: SharedArrayBuffer;
  readonly blockRows: SharedArrayBuffer;
  /** Per-chunk statistics: STATS_PER_CHUNK doubles per chunk. */
  readonly stats: SharedArrayBuffer;
  /** Inputs (N × n0) and targets (N × nL), sample-major. */
  readonly x: SharedArrayBuffer;
  readonly y: SharedArrayBuffer;
  /** The epoch's sample order (Int32, length N). */
  readonly order: SharedArrayBuffer;
  /** Optimizer state buffers, each `stride` doubles (see optim.ts). */
  readonly optState: SharedArrayBuffer;
  /** Int32 counters and flags of a parallel step (SYNC_*; see engine.ts runParallelStep). */
  readonly sync: SharedArrayBuffer;
}

/** Layout of the sync buffer: the barrier arrival counter, the next chunk to hand out, the
 *  coordinator's call-off flag, the first layer's measured input width (engine.ts stepShares),
 *  then one finite flag per worker. */
export const SYNC_ARRIVED = 0;
export const SYNC_NEXT_CHUNK = 1;
export const SYNC_ABORT = 2;
export const SYNC_WIDTH = 3;
export const SYNC_FLAGS = 4;

/** stats[c*STATS_PER_CHUNK + 0] = chunk c's loss sum, +1 = its correct count (the rest is padding). */
export const STATS_PER_CHUNK = 4;

export interface WorkerTask {
  /** 'grad': a parallel training step (with `fused`); 'eval': loss and accuracy of chunks
   *  [chunkBegin, chunkEnd). */
  readonly kind: 'grad' | 'eval';
  /** Identifies the (network, buffers) context so the worker can reuse views and scratch memory. */
  readonly contextId: string;
  readonly spec: NetSpec;
  readonly buffers: SharedBuffers;
  /** Offset of the minibatch in `order`, its size, and the fixed chunk size. */
  readonly batchStart: number;
  readonly batchSize: number;
  readonly chunkSize: number;
  /** For 'eval': chunks [chunkBegin, chunkEnd) of this batch are this task's. */
  readonly chunkBegin: number;
  readonly chunkEnd: number;
  /** For fault-injection tests: the coordinator's step counter. */
  readonly step: number;
  /** A parallel step ('grad'): worker `index` of `workers` takes chunks from the shared counter
   *  for the δ pass, sums the gradient of its share of the rows (engine.ts rowShares), and, when
   *  `optimizer` is given and everything is finite, applies optimizer step `t` to those rows. */
  readonly fused?: {
    readonly workers: number;
    readonly index: number;
    readonly chunks: number;
    readonly optimizer: OptimizerOptions | null;
    readonly t: number;
    readonly timeoutMs: number;
  };
}

/** finished: the worker passed the step's last barrier, so every worker did all of its part and
 *  the summed gradient is complete. finite: (when finished) every loss and gradient entry is
 *  finite. applied: the worker applied the optimizer to its rows. busyMs: time spent in the task. */
export interface WorkerResult {
  readonly ok: true;
  readonly finished: boolean;
  readonly finite: boolean;
  readonly applied: boolean;
  readonly busyMs: number;
}
