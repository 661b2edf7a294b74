// The typed boundary between the coordinator and the worker threads.
//
// A task names a contiguous range of chunks of one minibatch. Weights, gradients and data are never
// copied: the task carries SharedArrayBuffer handles (cloning one shares the memory) plus indices
// and offsets. Each chunk c writes only its own gradient slot grads[c·stride …] and its own stats
// entries, so workers need no locks and finish in any order.

import type { NetSpec } from './layout.js';
import type { OptimizerOptions } from './optim.js';

export interface SharedBuffers {
  /** Model parameters (read-only for workers during a step). */
  readonly params: SharedArrayBuffer;
  /** One gradient slot per chunk, each `stride` doubles, same layout as params. */
  readonly grads: SharedArrayBuffer;
  /** Per-chunk statistics: STATS_PER_CHUNK doubles per chunk. */
  readonly stats: SharedArrayBuffer;
  /** Inputs (N × n0) and targets (N × nL), sample-major. */
  readonly x: SharedArrayBuffer;
  readonly y: SharedArrayBuffer;
  /** The epoch's sample order (Int32, length N). */
  readonly order: SharedArrayBuffer;
  /** The reduced (summed) gradient, one block of `stride` doubles. */
  readonly gradSum: SharedArrayBuffer;
  /** Optimizer state buffers, each `stride` doubles (see optim.ts). */
  readonly optState: SharedArrayBuffer;
  /** Int32 barrier counters and per-worker flags of a fused step (see engine.ts runFusedStep). */
  readonly sync: SharedArrayBuffer;
}

/** Layout of the sync buffer: two barrier counters, then one finite flag per worker. */
export const SYNC_ARRIVED_GRAD = 0;
export const SYNC_ARRIVED_REDUCE = 1;
export const SYNC_FLAGS = 2;

/** stats[c*STATS_PER_CHUNK + 0] = chunk c's loss sum, +1 = its correct count (the rest is padding). */
export const STATS_PER_CHUNK = 4;

export interface WorkerTask {
  /** 'grad': gradients of chunks [chunkBegin, chunkEnd); 'eval': their loss and accuracy only;
   *  'reduce': gradSum[paramBegin, paramEnd) = sum of the chunk slots, in slot order. */
  readonly kind: 'grad' | 'eval' | 'reduce';
  /** Identifies the (network, buffers) context so the worker can reuse views and scratch memory. */
  readonly contextId: string;
  readonly spec: NetSpec;
  readonly buffers: SharedBuffers;
  /** Offset of the minibatch in `order`, its size, and the fixed chunk size. */
  readonly batchStart: number;
  readonly batchSize: number;
  readonly chunkSize: number;
  /** Chunks [chunkBegin, chunkEnd) of this minibatch are this task's. */
  readonly chunkBegin: number;
  readonly chunkEnd: number;
  /** For 'reduce': the parameter range, and the number of chunk slots to add. */
  readonly paramBegin: number;
  readonly paramEnd: number;
  /** For fault-injection tests: the coordinator's step counter. */
  readonly step: number;
  /** A fused step ('grad' only): after their chunks, the workers meet at a barrier, each reduces
   *  [paramBegin, paramEnd), meet again, and apply optimizer step `t` to their range when every
   *  loss and gradient is finite. One round trip per step instead of two plus a serial update. */
  readonly fused?: {
    readonly workers: number;
    readonly index: number;
    readonly chunks: number;
    readonly optimizer: OptimizerOptions;
    readonly t: number;
    readonly timeoutMs: number;
  };
}

/** For 'reduce', `finite` is false when a summed gradient entry is NaN or infinite. */
/** finite: the reduced range (and, in a fused step, every chunk loss) is finite. reduced / applied:
 *  whether a fused step's reduction and optimizer update of the worker's range were done (a barrier
 *  that times out leaves them to the coordinator). busyMs: time spent computing. */
export interface WorkerResult {
  readonly ok: true;
  readonly finite: boolean;
  readonly reduced: boolean;
  readonly applied: boolean;
  readonly busyMs: number;
}
