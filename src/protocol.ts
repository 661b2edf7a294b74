// The typed boundary between the coordinator and the worker threads.
//
// Weights, gradients and data are never copied: a task carries SharedArrayBuffer handles (cloning
// one shares the memory) plus indices and offsets. Within a step every piece of shared memory has
// one writer: a chunk's δ block and stats entries are written by the thread that took the chunk,
// a gradient or parameter row by the thread whose share holds it. So workers need no locks and
// finish in any order.

import type { NetSpec } from './layout.js';
import type { OptimizerOptions } from './optim.js';
import type { Accuracy } from './kernels.js';

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
  /** Per-step statistics of a run of steps: the loss sum and correct count of step i of the run at
   *  [2i] and [2i+1], written once the step is complete. */
  readonly stepStats: SharedArrayBuffer;
  /** Inputs (N × n0) and targets (N × nL), sample-major. */
  readonly x: SharedArrayBuffer;
  readonly y: SharedArrayBuffer;
  /** The epoch's sample order (Int32, length N). */
  readonly order: SharedArrayBuffer;
  /** Optimizer state buffers, each `stride` doubles (see optim.ts). */
  readonly optState: SharedArrayBuffer;
  /** Int32 counters and flags of a parallel step (SYNC_*; see engine.ts runParallelSteps). */
  readonly sync: SharedArrayBuffer;
  /** When present, 'eval' and 'predict' tasks write each sample's outputs here (N × nL,
   *  sample-major). */
  readonly outputs?: SharedArrayBuffer;
}

/** Layout of the sync buffer (Int32; see engine.ts runParallelSteps):
 *  ARRIVED    barrier arrivals, counted over the whole run of steps;
 *  RELEASED   the last barrier generation released (−1 once the run is called off);
 *  NEXT_CHUNK, NEXT_ROW  the work counters of the δ pass and the gradient sums (claims,
 *             counted over the whole run);
 *  NEXT_AHEAD the work counter of summing ahead (row blocks; reset at each δ-pass barrier);
 *  CHUNKS_DONE chunks of the round whose δ pass is complete (reset with NEXT_AHEAD);
 *  ABORT      set by the coordinator when a worker failed: everyone leaves at once;
 *  STOP       set by the coordinator to stop the run after the current step (AbortSignal);
 *  DECISION   STOP as read by the last worker at a step's end, so that all decide alike;
 *  STEPS_DONE steps of the run complete, for live progress;
 *  FLAGS…     one finite flag per worker (MAX_WORKERS of them);
 *  READY…     per chunk of a round (MAX_WORKERS of them), the generation of the barrier that
 *             ends the δ pass it was done for: its δ block is complete;
 *  APPLIED…   per row block, the last step of the run (1-based) whose update it received;
 *  AHEAD…     per row block, the chunks of the round already summed into it ahead of its turn. */
export const SYNC_ARRIVED = 0;
export const SYNC_RELEASED = 1;
export const SYNC_NEXT_CHUNK = 2;
export const SYNC_NEXT_ROW = 3;
export const SYNC_ABORT = 4;
export const SYNC_STOP = 5;
export const SYNC_DECISION = 6;
export const SYNC_STEPS_DONE = 7;
export const SYNC_NEXT_AHEAD = 8;
export const SYNC_CHUNKS_DONE = 9;
export const SYNC_FLAGS = 10;
/** Most workers in a step, and chunks in a round (engine.ts ROUND_CHUNKS). */
export const MAX_WORKERS = 32;
export const SYNC_READY = SYNC_FLAGS + MAX_WORKERS;
export const SYNC_APPLIED = SYNC_READY + MAX_WORKERS;
/** Int32s of the sync buffer for a network of `rowBlocks` row blocks. */
export function syncLength(rowBlocks: number): number {
  return SYNC_APPLIED + 2 * rowBlocks;
}
/** Index of row block b's AHEAD entry. */
export function syncAhead(rowBlocks: number, b: number): number {
  return SYNC_APPLIED + rowBlocks + b;
}

/** stats[c*STATS_PER_CHUNK + 0] = chunk c's loss sum, +1 = its correct count (the rest is padding). */
export const STATS_PER_CHUNK = 4;

export interface WorkerTask {
  /** 'grad': a run of parallel training steps (with `steps`); 'eval': loss and accuracy of chunks
   *  [chunkBegin, chunkEnd) of the batch at batchStart; 'predict': only the outputs of those
   *  chunks (there are no targets). */
  readonly kind: 'grad' | 'eval' | 'predict';
  /** Identifies the (network, buffers) context so the worker can reuse views and scratch memory. */
  readonly contextId: string;
  readonly spec: NetSpec;
  readonly buffers: SharedBuffers;
  /** How correct predictions are counted (kernels.ts Accuracy; by the output activation when
   *  left out); see countCorrect. */
  readonly accuracy?: Accuracy;
  /** Offset of the minibatch in `order` ('eval'), the batch size, and the fixed chunk size. */
  readonly batchStart: number;
  readonly batchSize: number;
  readonly chunkSize: number;
  /** For 'eval': chunks [chunkBegin, chunkEnd) of this batch are this task's. */
  readonly chunkBegin: number;
  readonly chunkEnd: number;
  /** For fault-injection tests: the coordinator's global step counter (of the first step). */
  readonly step: number;
  /** A run of parallel steps ('grad'): steps first .. first+count−1 of the epoch (step s is the
   *  minibatch at s·batchSize of `samples`). For each, the workers take chunks from a shared
   *  counter for the δ pass, then row blocks (engine.ts rowBlocks) for the gradient sums, and,
   *  when `optimizer` is given and everything is finite, each applies optimizer step t + i to the
   *  row blocks it summed. */
  readonly steps?: {
    readonly workers: number;
    readonly index: number;
    readonly first: number;
    readonly count: number;
    readonly samples: number;
    readonly optimizer: OptimizerOptions | null;
    readonly t: number;
    readonly timeoutMs: number;
    /** Time the phases of each step (StepsResult.phases). */
    readonly profile?: boolean;
  };
}

/** Where a thread's time went, in ms summed over its steps: PHASE_DELTAS the δ pass of its
 *  chunks, PHASE_GRADIENTS its gradient sums (ahead of the barrier included), PHASE_UPDATE the
 *  optimizer update of its rows, PHASE_WAITING its waits at barriers. */
export const PHASE_DELTAS = 0;
export const PHASE_GRADIENTS = 1;
export const PHASE_UPDATE = 2;
export const PHASE_WAITING = 3;
export const PHASE_COUNT = 4;

/** What a worker did of a run of steps (counted from its first step). stepsDone: steps it
 *  finished, updates included. passedFlags: steps whose gradient barrier it passed, so that the
 *  gradient was complete (stepsDone or stepsDone + 1). finite: the verdict of the last of those.
 *  stopped: it stopped early because the coordinator asked. */
export interface StepsResult {
  readonly stepsDone: number;
  readonly passedFlags: number;
  readonly finite: boolean;
  readonly stopped: boolean;
  /** With steps.profile: PHASE_COUNT totals in ms (PHASE_*). */
  readonly phases?: number[];
}

export interface WorkerResult {
  readonly ok: true;
  /** For 'grad'. */
  readonly steps?: StepsResult;
  /** Time spent in the task. */
  readonly busyMs: number;
}
