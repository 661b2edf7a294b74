// The typed boundary between the coordinator and the worker threads.
//
// A task names a contiguous range of chunks of one minibatch. Weights, gradients and data are never
// copied: the task carries SharedArrayBuffer handles (cloning one shares the memory) plus indices
// and offsets. Each chunk c writes only its own gradient slot grads[c·stride …] and its own stats
// entries, so workers need no locks and finish in any order.

import type { NetSpec } from './layout.js';

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
}

/** stats[c*STATS_PER_CHUNK + 0] = loss sum, +1 = correct count, +2 = non-finite flag. */
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
}

/** For 'reduce', `finite` is false when a summed gradient entry is NaN or infinite. */
export type WorkerResult = { readonly ok: true; readonly finite: boolean };
