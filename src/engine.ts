// The chunk runner shared by worker threads and the coordinator's own thread.
//
// A minibatch is cut into chunks of CHUNK_SIZE samples. Every gradient entry is one sum over the
// chunks in chunk order, each chunk's part itself a sum over its samples in sample order:
// g = ((s0 + s1) + s2) + …. So the floating-point summation order is fixed by sample position
// alone, and the result is bitwise identical whatever the number of threads and whatever order
// they finish in.
//
// One thread runs the chunks one after the other, adding each chunk's gradient into the sum
// (runChunks with sumInto). On the pool (runParallelSteps) a step splits the same arithmetic in
// two phases joined by a barrier:
//   1. δ pass, data-parallel: the threads take chunks from a shared counter; for each they run
//      forward, the loss and δ(k) for every layer, into that chunk's block of shared memory.
//   2. gradient sums, parameter-parallel: the threads take blocks of weight rows from a second
//      counter and add up, for those rows only, δ(k) n(k-1)ᵀ over every chunk in chunk order,
//      straight into the summed gradient; then each applies the optimizer to the rows it summed.
//      A thread that runs out of chunks before the others starts these sums early, over the
//      chunks already done (sumAhead), instead of idling at the barrier.
// Nobody writes what another thread writes, so there are no locks and no per-thread gradient
// copies to add up afterwards: only the per-chunk activations and δ cross between threads, which
// for MNIST are about a third of the bytes of a full gradient per chunk. A worker task runs many
// such steps, with a barrier between them, so the coordinator's round trip (about 0.4 ms) is paid
// once per run of steps rather than once per step.

import os from 'node:os';
import { Layout, ParamViews, makeLayout, paramViews } from './layout.js';
import { Workspace, blockGradient, blockWeightGradient, chunkDeltas, evaluateBlock, forwardBlock, gatherBlock, makeWorkspace, workspaceSize } from './backprop.js';
import {
  STATS_PER_CHUNK, SYNC_ABORT, SYNC_ARRIVED, SYNC_DECISION, SYNC_FLAGS, SYNC_NEXT_CHUNK, SYNC_RELEASED, SYNC_STEPS_DONE, SYNC_STOP, SYNC_NEXT_ROW, SYNC_APPLIED,
  SYNC_NEXT_AHEAD, SYNC_CHUNKS_DONE, SYNC_READY, MAX_WORKERS, SharedBuffers, StepsResult, WorkerTask, syncAhead,
  PHASE_COUNT, PHASE_DELTAS, PHASE_GRADIENTS, PHASE_UPDATE, PHASE_WAITING,
} from './protocol.js';
import { testHooks } from './testhooks.js';
import { OptimizerOptions, optimizerBufferCount, optimizerStepRange } from './optim.js';
import type { NetSpec } from './layout.js';
import { Accuracy, outputAccuracy } from './kernels.js';

/** Samples per chunk: the unit of the summation order (and of the work a thread takes at a time).
 *  A constant, so the order depends on sample positions only. 32 keeps a chunk's activations
 *  inside L2 with the blocked kernels still running long inner loops (measured on 784-128-64-10:
 *  16 is slower per sample on one thread, 64 too, once its blocks outgrow L2). */
export const CHUNK_SIZE = 32;
/** Chunks whose δ blocks are in shared memory at once. Larger minibatches run in rounds of this
 *  many chunks (each round: δ pass, barrier, gradient sums, barrier), so that memory stays bounded
 *  whatever the batch size. Also the most threads one step can use. */
export const ROUND_CHUNKS = MAX_WORKERS;

export function chunkCount(samples: number, chunkSize: number): number {
  return Math.ceil(samples / chunkSize);
}

/** Minibatch `step` of an epoch of `samples` samples: its offset in the sample order and its
 *  size (the last one may be partial). Workers and coordinator must agree on it exactly. */
export function stepBatch(batchSize: number, samples: number, step: number): { start: number; size: number } {
  const start = step * batchSize;
  return { start, size: Math.min(batchSize, samples - start) };
}

/** Rows [begin, end) of layer `layer` (1-based), and the parameter ranges [p0, p1) they own in
 *  the flat layout: their W(k) rows, then their b(k) entries. */
export interface RowRange {
  readonly layer: number;
  readonly begin: number;
  readonly end: number;
  readonly ranges: readonly (readonly [number, number])[];
}

/** Rows per row block: the unit of work of the gradient-sum and optimizer phases. Summing a
 *  block runs the 4×4 blocked kernel over its rows 4 at a time, chunk by chunk, so each chunk's
 *  input activations come from L3 once per block and from L2 for its other groups of 4 rows
 *  (with 4-row blocks they came from L3 every time). Measured on 784-128-64-10, 2 threads, one
 *  process alternating builds: 0 to 3% faster per step at batch 256 and 64, same on wide. */
const ROWS_PER_BLOCK = 16;
/** The last TAIL_ROWS rows of each layer go in blocks of 4 rows instead, so that the blocks
 *  handed out last are small and the threads finish the phase within a small block of each
 *  other, up to 8 threads. */
const TAIL_ROWS = 32;
const TAIL_BLOCK_ROWS = 4;

/**
 * Every layer's rows cut into blocks (ROWS_PER_BLOCK, then TAIL_BLOCK_ROWS for the last
 * TAIL_ROWS), the costliest (rows × n_(k-1)) first, so that the cheap blocks handed out last
 * even out the threads' finishing times.
 */
export function rowBlocks(layout: Layout): RowRange[] {
  const sizes = layout.spec.sizes;
  const blocks: RowRange[] = [];
  for (let k = 1; k < sizes.length; k++) {
    const nIn = sizes[k - 1];
    const w0 = layout.wOffset[k - 1];
    const b0 = layout.bOffset[k - 1];
    const tail = sizes[k] - TAIL_ROWS; // rows from here on go in blocks of TAIL_BLOCK_ROWS
    for (let o = 0, end = 0; o < sizes[k]; o = end) {
      end = Math.min(sizes[k], o < tail ? Math.min(tail, o + ROWS_PER_BLOCK) : o + TAIL_BLOCK_ROWS);
      blocks.push({ layer: k, begin: o, end, ranges: [[w0 + o * nIn, w0 + end * nIn], [b0 + o, b0 + end]] });
    }
  }
  const cost = (r: RowRange): number => (r.end - r.begin) * sizes[r.layer - 1];
  return blocks.sort((a, b) => cost(b) - cost(a) || a.layer - b.layer || a.begin - b.begin);
}

/** Optimizer step t on the parameters of one row block. */
export function applyRowBlock(
  r: RowRange, opt: OptimizerOptions, t: number, buffers: Float64Array[], params: Float64Array, gradSum: Float64Array, batch: number,
): void {
  for (const [p0, p1] of r.ranges) optimizerStepRange(opt, t, buffers, params, gradSum, batch, p0, p1);
}

/** Views over a set of shared buffers, plus this thread's scratch memory. */
export interface Context {
  readonly layout: Layout;
  readonly params: Float64Array;
  readonly P: ParamViews;
  readonly gradSum: Float64Array;
  /** Views of gradSum. */
  readonly sum: ParamViews;
  readonly stats: Float64Array;
  readonly stepStats: Float64Array;
  readonly X: Float64Array;
  readonly Y: Float64Array;
  readonly order: Int32Array;
  /** This thread's own workspace, for runChunks. */
  ws: Workspace;
  /** The shared per-chunk workspaces of a parallel step's round, made on first use. */
  readonly blocks: Workspace[];
  readonly blockF64: Float64Array;
  readonly blockI32: Int32Array;
  /** The network's row blocks (rowBlocks). */
  readonly rows: RowRange[];
  readonly optState: Float64Array;
  readonly sync: Int32Array;
  /** Evaluation outputs (N × nL), or null when not asked for. */
  readonly outputs: Float64Array | null;
  /** How correct predictions are counted (countCorrect). */
  readonly accuracy: Accuracy;
}

export function makeContext(spec: NetSpec, buffers: SharedBuffers, layout: Layout = makeLayout(spec), accuracy = outputAccuracy(layout.act[layout.depth - 1])): Context {
  const params = new Float64Array(buffers.params, 0, layout.stride);
  const gradSum = new Float64Array(buffers.gradSum);
  return {
    layout,
    params,
    P: paramViews(layout, params),
    gradSum,
    sum: paramViews(layout, gradSum),
    stats: new Float64Array(buffers.stats),
    stepStats: new Float64Array(buffers.stepStats),
    X: new Float64Array(buffers.x),
    Y: new Float64Array(buffers.y),
    order: new Int32Array(buffers.order),
    ws: makeWorkspace(layout, CHUNK_SIZE),
    blocks: [],
    blockF64: new Float64Array(buffers.blocks),
    blockI32: new Int32Array(buffers.blockRows),
    rows: rowBlocks(layout),
    optState: new Float64Array(buffers.optState),
    sync: new Int32Array(buffers.sync),
    outputs: buffers.outputs !== undefined ? new Float64Array(buffers.outputs) : null,
    accuracy,
  };
}

/** Shared memory for the δ blocks of `chunks` chunks (see makeContext). */
export function blockMemory(layout: Layout, chunks: number): { f64: number; i32: number } {
  const one = workspaceSize(layout, CHUNK_SIZE);
  return { f64: chunks * one.f64, i32: chunks * one.i32 };
}

function block(ctx: Context, j: number): Workspace {
  let ws = ctx.blocks[j];
  if (ws === undefined) {
    const one = workspaceSize(ctx.layout, CHUNK_SIZE);
    ws = makeWorkspace(ctx.layout, CHUNK_SIZE, ctx.blockF64.subarray(j * one.f64, (j + 1) * one.f64), ctx.blockI32.subarray(j * one.i32, (j + 1) * one.i32));
    ctx.blocks[j] = ws;
  }
  return ws;
}

/** The stats of a 'predict' chunk: without targets there is no loss. */
const NO_STATS = { loss: 0, correct: 0 };

type RangeTask = Pick<WorkerTask, 'kind' | 'batchStart' | 'batchSize' | 'chunkSize' | 'chunkBegin' | 'chunkEnd'>;

/**
 * Runs chunks [chunkBegin, chunkEnd) of one minibatch on this thread; every kind writes each
 * chunk's loss sum and correct count into stats (zeros for 'predict'). 'grad' sums the chunks'
 * gradients into `sumInto` in chunk order, writing chunk 0's and adding the others':
 * sumInto = (s0 + s1) + …, exactly the parallel step's sum, hence the same bits (so sumInto
 * need not be zeroed first; a block sum is never -0, so writing s0 equals adding it to +0). With `phases`, the time of
 * a 'grad' chunk's δ pass and of its gradient sums is added to phases[PHASE_DELTAS] and
 * phases[PHASE_GRADIENTS] (same arithmetic, timed in two halves).
 */
export function runChunks(ctx: Context, t: RangeTask, sumInto: ParamViews | null = null, phases: number[] | null = null): void {
  const { layout } = ctx;
  if (ctx.ws.cap < t.chunkSize) ctx.ws = makeWorkspace(layout, t.chunkSize);
  const sizes = layout.spec.sizes;
  for (let c = t.chunkBegin; c < t.chunkEnd; c++) {
    const begin = c * t.chunkSize;
    const S = Math.min(t.chunkSize, t.batchSize - begin);
    let r: { loss: number; correct: number };
    if (t.kind === 'grad') {
      if (sumInto === null) throw new Error('runChunks: a gradient needs sumInto');
      // chunkGradient's two halves, so that a profile can time each.
      const t0 = phases === null ? 0 : performance.now();
      r = chunkDeltas(layout, ctx.P, ctx.ws, ctx.X, ctx.Y, ctx.order, t.batchStart + begin, S, ctx.accuracy);
      const t1 = phases === null ? 0 : performance.now();
      blockGradient(layout, sumInto, ctx.ws, S, c > 0);
      if (phases !== null) {
        phases[PHASE_DELTAS] += t1 - t0;
        phases[PHASE_GRADIENTS] += performance.now() - t1;
      }
    } else {
      const m = sizes[sizes.length - 1];
      const eval_ = t.kind === 'eval';
      gatherBlock(ctx.ws, ctx.X, eval_ ? ctx.Y : null, ctx.order, t.batchStart + begin, S, sizes[0], m);
      if (eval_) r = evaluateBlock(layout, ctx.P, ctx.ws, S, ctx.accuracy);
      else {
        forwardBlock(layout, ctx.P, ctx.ws, S);
        r = NO_STATS;
      }
      if (ctx.outputs !== null) {
        const A = ctx.ws.acts[layout.depth]; // (m × S), feature-major
        for (let s = 0; s < S; s++) {
          const o = ctx.order[t.batchStart + begin + s] * m;
          for (let j = 0; j < m; j++) ctx.outputs[o + j] = A[j * S + s];
        }
      }
    }
    ctx.stats[c * STATS_PER_CHUNK] = r.loss;
    ctx.stats[c * STATS_PER_CHUNK + 1] = r.correct;
  }
}

/** How long a thread that reaches a barrier early polls before it sleeps, when every thread of
 *  the step has a core of its own. Waking a sleeping thread takes tens of µs on a virtual machine
 *  (measured here: a futex round trip between two threads 55 µs at the median, 0.2 µs polling),
 *  three times per step on the step's critical path; an early thread usually waits less than
 *  this. With more threads than cores a polling thread would take the core of one it waits for
 *  (8 threads on 2 cores: 17% slower per epoch), so then threads sleep at once. */
const SPIN_MS = 0.2;

/**
 * The generation-th barrier of a run of steps: waits until `parties` threads have arrived, i.e.
 * the arrival counter reaches parties × generation. The last to arrive runs `last` (if given)
 * before releasing the others, so a decision it writes there is seen alike by all. False on
 * timeout, or when the coordinator has called the run off (a worker failed).
 */
function barrier(sync: Int32Array, parties: number, generation: number, timeoutMs: number, spinMs: number, last?: () => void): boolean {
  if (Atomics.load(sync, SYNC_ABORT) !== 0) return false;
  if (Atomics.add(sync, SYNC_ARRIVED, 1) + 1 === parties * generation) {
    last?.();
    Atomics.store(sync, SYNC_RELEASED, generation);
    Atomics.notify(sync, SYNC_RELEASED);
    return true;
  }
  const spinEnd = performance.now() + spinMs;
  while (Atomics.load(sync, SYNC_RELEASED) < generation && Atomics.load(sync, SYNC_ABORT) === 0 && performance.now() < spinEnd) {
    // polling: the loop below sees the release or the abort
  }
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const seen = Atomics.load(sync, SYNC_RELEASED);
    if (Atomics.load(sync, SYNC_ABORT) !== 0) return false;
    if (seen >= generation) return true;
    const left = deadline - performance.now();
    if (left <= 0) return false;
    Atomics.wait(sync, SYNC_RELEASED, seen, left);
  }
}

/** Calls a run of steps off: its workers leave their barriers at once (see barrier). RELEASED is
 *  changed too, so that a worker between its ABORT check and its wait does not sleep through it:
 *  the wait sees a value other than the one it read, returns, and the loop sees ABORT. */
export function abortStep(sync: Int32Array): void {
  Atomics.store(sync, SYNC_ABORT, 1);
  Atomics.store(sync, SYNC_RELEASED, -1);
  Atomics.notify(sync, SYNC_RELEASED);
}

/**
 * A run of training steps in one round trip (worker side; see the top of this file). Per step,
 * per round of up to ROUND_CHUNKS chunks: the δ pass over chunks taken from the shared counter, a
 * barrier, the gradient sums of this worker's rows over the round's chunks, a barrier. At the
 * step's last barrier each worker has posted whether its rows (and the losses) are finite; only
 * if all are does each apply the optimizer to its own rows, so that a failed step changes
 * nothing. A barrier then ends the step (nobody reads the weights of the next step before all
 * are updated), and its last arrival decides for all whether to go on (the coordinator's STOP).
 *
 * A barrier that times out (a thread stalled far longer than the step's work, or a task that never
 * started) or that the coordinator calls off ends the run early; the result says how far this
 * worker got, and the coordinator finishes the step with the same arithmetic (Trainer.runSteps).
 */
export function runParallelSteps(ctx: Context, task: WorkerTask): StepsResult {
  const f = task.steps!;
  const { layout, sync, stats, rows } = ctx;
  const parties = f.workers;
  const spinMs = parties <= os.availableParallelism() ? SPIN_MS : 0;
  const B = task.batchSize;
  const stride = layout.stride;
  const optBuffers = f.optimizer === null ? [] : Array.from({ length: optimizerBufferCount(f.optimizer) }, (_, i) => ctx.optState.subarray(i * stride, (i + 1) * stride));
  // With f.profile, every stretch of this task's time goes to the phase it ends (PHASE_*).
  const phases = f.profile === true ? new Array<number>(PHASE_COUNT).fill(0) : null;
  let lap = phases === null ? 0 : performance.now();
  const mark = phases === null ? null : (k: number): void => {
    const now = performance.now();
    phases[k] += now - lap;
    lap = now;
  };
  const out: { -readonly [K in keyof StepsResult]: StepsResult[K] } = { stepsDone: 0, passedFlags: 0, finite: true, stopped: false };
  if (phases !== null) out.phases = phases;
  // Work is handed out by two shared counters: chunks (δ pass) and row blocks (gradient sums).
  // Every worker draws once past the end of each phase (that is how it learns the phase is
  // over), so a phase takes its items plus `parties` claims, and a claim's item is its value
  // minus the claims of earlier phases of the step (the last to reach a step's end resets the
  // counters, so they never grow past one step). This holds because every claiming phase ends
  // at a barrier: a worker that gives up at a barrier never claims again, and the others cannot
  // get past the next barrier without it, so no claim is ever read against a wrong count.
  // A worker updates the row blocks it summed last, whose gradient is still in its own cache.
  const claims = { chunks: 0, rows: 0 };
  const mine: number[] = [];
  const claim = (counter: number, base: number): number => Atomics.add(sync, counter, 1) - base;
  const resetAhead = (): void => {
    Atomics.store(sync, SYNC_NEXT_AHEAD, 0);
    Atomics.store(sync, SYNC_CHUNKS_DONE, 0);
  };
  let generation = 0;
  for (let i = 0; i < f.count; i++) {
    testHooks?.beforeStep(task.step + i, f.index);
    const { start, size } = stepBatch(B, f.samples, f.first + i);
    const chunks = chunkCount(size, CHUNK_SIZE);
    const t0 = performance.now();
    // A stall must be long against the step's own work before it counts as a dead worker.
    const timeout = (): number => f.timeoutMs + 2 * (performance.now() - t0);
    let finite = true;
    for (let begin = 0; begin < chunks; begin += ROUND_CHUNKS) {
      const end = Math.min(chunks, begin + ROUND_CHUNKS);
      const stamp = generation + 1; // the barrier that ends this δ pass
      for (let c = begin + claim(SYNC_NEXT_CHUNK, claims.chunks); c < end; c = begin + claim(SYNC_NEXT_CHUNK, claims.chunks)) {
        const r = chunkDeltas(layout, ctx.P, block(ctx, c - begin), ctx.X, ctx.Y, ctx.order, start + c * CHUNK_SIZE, chunkSamples(size, c), ctx.accuracy);
        stats[c * STATS_PER_CHUNK] = r.loss;
        stats[c * STATS_PER_CHUNK + 1] = r.correct;
        testHooks?.afterChunk(task.step + i, f.index, c);
        Atomics.store(sync, SYNC_READY + c - begin, stamp);
        Atomics.add(sync, SYNC_CHUNKS_DONE, 1);
      }
      claims.chunks += end - begin + parties;
      mark?.(PHASE_DELTAS);
      sumAhead(ctx, size, begin, end, stamp);
      mark?.(PHASE_GRADIENTS);
      if (!barrier(sync, parties, ++generation, timeout(), spinMs, resetAhead)) return out;
      mark?.(PHASE_WAITING);
      if (begin === 0) testHooks?.afterDeltas(task.step + i, f.index);
      const last = end === chunks;
      mine.length = 0;
      for (let b = claim(SYNC_NEXT_ROW, claims.rows); b < rows.length; b = claim(SYNC_NEXT_ROW, claims.rows)) {
        mine.push(b);
        // Chunks before `from` were summed ahead (by whichever thread); the rest follow in order.
        const ahead = syncAhead(rows.length, b);
        const from = begin + sync[ahead];
        sync[ahead] = 0; // read and cleared here only, between two barriers
        for (let c = from; c < end; c++) addChunk(ctx, rows[b], size, begin, c);
        if (last) for (const [p0, p1] of rows[b].ranges) finite &&= allFinite(ctx.gradSum, p0, p1);
      }
      claims.rows += rows.length + parties;
      if (last) Atomics.store(sync, SYNC_FLAGS + f.index, finite && Number.isFinite(chunkStat(stats, chunks, 0)) ? 1 : 2);
      mark?.(PHASE_GRADIENTS);
      if (!barrier(sync, parties, ++generation, timeout(), spinMs)) return out;
      mark?.(PHASE_WAITING);
    }
    out.passedFlags = i + 1;
    for (let w = 0; w < parties; w++) {
      if (Atomics.load(sync, SYNC_FLAGS + w) !== 1) {
        out.finite = false;
        return out;
      }
    }
    if (f.index === 0) {
      ctx.stepStats[2 * i] = chunkStat(stats, chunks, 0);
      ctx.stepStats[2 * i + 1] = chunkStat(stats, chunks, 1);
    }
    if (f.optimizer !== null) {
      for (const b of mine) {
        applyRowBlock(rows[b], f.optimizer, f.t + i, optBuffers, ctx.params, ctx.gradSum, size);
        Atomics.store(sync, SYNC_APPLIED + b, i + 1); // for the coordinator, should the step be cut short
        testHooks?.afterApply(task.step + i, b);
      }
      out.stepsDone = i + 1;
    }
    mark?.(PHASE_UPDATE);
    if (i + 1 === f.count) break;
    const decide = (): void => {
      Atomics.store(sync, SYNC_DECISION, Atomics.load(sync, SYNC_STOP));
      Atomics.store(sync, SYNC_NEXT_CHUNK, 0);
      Atomics.store(sync, SYNC_NEXT_ROW, 0);
      Atomics.store(sync, SYNC_STEPS_DONE, i + 1);
      Atomics.notify(sync, SYNC_STEPS_DONE);
    };
    if (!barrier(sync, parties, ++generation, timeout(), spinMs, decide)) return out;
    mark?.(PHASE_WAITING);
    claims.chunks = 0;
    claims.rows = 0;
    if (Atomics.load(sync, SYNC_DECISION) !== 0) {
      out.stopped = true;
      return out;
    }
  }
  return out;
}

/** Whether a run's step, the one whose SYNC_APPLIED mark is `mark` (its index in the run + 1),
 *  updated any row block: after a worker failed there, that step is partly applied (or wholly,
 *  with its loss lost), and no one can tell which rows of a block it was in the middle of. */
export function stepTouchedWeights(sync: Int32Array, blocks: number, mark: number): boolean {
  for (let b = 0; b < blocks; b++) if (Atomics.load(sync, SYNC_APPLIED + b) === mark) return true;
  return false;
}

/**
 * Summing ahead: a worker that finds no chunk left to take while others are still on theirs
 * would idle at the barrier for up to a chunk's time (about 1.4 ms of an 11 ms MNIST step). It
 * starts the gradient sums instead, for the chunks already done: it takes row blocks from their
 * own counter and adds chunks 0, 1, … into each for as long as they are ready, recording in
 * AHEAD how far it got; the thread that takes the block after the barrier goes on from there.
 * Each entry is still one sum over the chunks in chunk order, so no bit changes. It stops as soon
 * as every chunk is done, so the barrier waits at most one chunk of one row block more (up to
 * about 0.12 ms, for a 16-row block of MNIST's first layer).
 * Before the worker arrives at the barrier nobody reads what it writes here, and after it nobody
 * sums ahead (the barrier's last arrival resets the counters), so there is no race.
 */
function sumAhead(ctx: Context, size: number, begin: number, end: number, stamp: number): void {
  const { sync, rows } = ctx;
  const n = end - begin;
  const allDone = (): boolean => Atomics.load(sync, SYNC_CHUNKS_DONE) >= n;
  const ready = (p: number): boolean => Atomics.load(sync, SYNC_READY + p) === stamp;
  // Sums run in chunk order from chunk 0: while it is not done, nothing can be summed yet.
  while (!allDone() && ready(0)) {
    const b = Atomics.add(sync, SYNC_NEXT_AHEAD, 1);
    if (b >= rows.length) return;
    let p = 0;
    for (; p < n && ready(p) && !allDone(); p++) addChunk(ctx, rows[b], size, begin, begin + p);
    sync[syncAhead(rows.length, b)] = p;
  }
}

/** Samples in chunk c of a minibatch of `size` (the last chunk may be partial). */
function chunkSamples(size: number, c: number): number {
  return Math.min(CHUNK_SIZE, size - c * CHUNK_SIZE);
}

/** Adds chunk c's part of row block r's gradient sum into ctx.gradSum (writes it, for chunk 0):
 *  the one step of the gradient sums, whether taken in turn or ahead. `begin` is the round's
 *  first chunk, whose δ block is block 0. */
function addChunk(ctx: Context, r: RowRange, size: number, begin: number, c: number): void {
  blockWeightGradient(ctx.layout, ctx.sum, block(ctx, c - begin), chunkSamples(size, c), r.layer, r.begin, r.end, c > 0);
}

/** The sum over a step's chunks of stats field k (0: loss sum, 1: correct count), in chunk order. */
export function chunkStat(stats: Float64Array, chunks: number, k: number): number {
  let sum = 0;
  for (let c = 0; c < chunks; c++) sum += stats[c * STATS_PER_CHUNK + k];
  return sum;
}

/** True when a[p0, p1) holds no NaN or infinity. */
export function allFinite(a: Float64Array, p0 = 0, p1 = a.length): boolean {
  let z = 0;
  for (let i = p0; i < p1; i++) z += a[i] * 0; // 0 for finite entries, NaN for NaN or ±Infinity
  return z === 0;
}

/**
 * The batch-mean gradient of the loss over a whole dataset at the model's current parameters,
 * computed on this thread with the same chunked kernels and summation order as training (one
 * minibatch of all samples). For gradient checks and for callers who want the raw gradient.
 * Returns the mean loss and the gradient in the parameter layout (see layout.ts).
 */
export function datasetGradient(
  layout: Layout, params: Float64Array, X: Float64Array, Y: Float64Array, n: number,
): { loss: number; grad: Float64Array } {
  const sab = (len: number): SharedArrayBuffer => new SharedArrayBuffer(Math.max(8, len * 8));
  const chunks = chunkCount(n, CHUNK_SIZE);
  const order = new Int32Array(sab(n));
  for (let i = 0; i < n; i++) order[i] = i;
  const buffers: SharedBuffers = {
    params: sab(layout.stride), gradSum: sab(layout.stride), blocks: sab(1), blockRows: sab(1), optState: sab(1), sync: sab(1), stepStats: sab(1),
    stats: sab(STATS_PER_CHUNK * chunks),
    x: sab(X.length), y: sab(Y.length), order: order.buffer as SharedArrayBuffer,
  };
  const ctx = makeContext(layout.spec, buffers, layout);
  new Float64Array(buffers.params).set(params.subarray(0, layout.stride));
  ctx.X.set(X);
  ctx.Y.set(Y);
  runChunks(ctx, { kind: 'grad', batchStart: 0, batchSize: n, chunkSize: CHUNK_SIZE, chunkBegin: 0, chunkEnd: chunks }, ctx.sum);
  const loss = chunkStat(ctx.stats, chunks, 0);
  const grad = Float64Array.from(ctx.gradSum, (g) => g / n);
  return { loss: loss / n, grad };
}
