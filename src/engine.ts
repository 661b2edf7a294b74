// The chunk runner shared by worker threads and the coordinator's own thread.
//
// A minibatch of B samples is cut into chunks of a fixed size that depends only on B (see
// `chunkSizeFor`). Chunk c's gradient sum goes to its own slot, and the coordinator adds the slots
// in chunk order. So the floating-point summation order is fixed by sample position alone, and the
// result is bitwise identical whatever the number of threads and whatever order they finish in.

import { Layout, ParamViews, makeLayout, paramViews } from './layout.js';
import { Workspace, chunkGradient, evaluateBlock, gatherBlock, makeWorkspace } from './backprop.js';
import { STATS_PER_CHUNK, SharedBuffers, WorkerTask } from './protocol.js';
import type { NetSpec } from './layout.js';

/** At most this many chunks (gradient slots) per minibatch: enough for 16 threads. */
export const MAX_CHUNKS = 16;
/** Smallest chunk: below 8 samples the 4×4 blocked kernels lose much of their advantage. */
export const MIN_CHUNK = 8;

/** Chunk size for a minibatch size: a pure function of B, never of the thread count. */
export function chunkSizeFor(batchSize: number): number {
  return Math.max(MIN_CHUNK, Math.ceil(batchSize / MAX_CHUNKS));
}

export function chunkCount(samples: number, chunkSize: number): number {
  return Math.ceil(samples / chunkSize);
}

/** Views over a set of shared buffers, plus this thread's scratch memory. */
export interface Context {
  readonly layout: Layout;
  readonly P: ParamViews;
  readonly grads: Float64Array;
  readonly gradSum: Float64Array;
  readonly stats: Float64Array;
  readonly X: Float64Array;
  readonly Y: Float64Array;
  readonly order: Int32Array;
  ws: Workspace;
  /** Gradient-slot views, made on first use. */
  readonly slots: ParamViews[];
}

export function makeContext(spec: NetSpec, buffers: SharedBuffers, layout: Layout = makeLayout(spec)): Context {
  const params = new Float64Array(buffers.params, 0, layout.stride);
  return {
    layout,
    P: paramViews(layout, params),
    grads: new Float64Array(buffers.grads),
    gradSum: new Float64Array(buffers.gradSum),
    stats: new Float64Array(buffers.stats),
    X: new Float64Array(buffers.x),
    Y: new Float64Array(buffers.y),
    order: new Int32Array(buffers.order),
    ws: makeWorkspace(layout, MIN_CHUNK),
    slots: [],
  };
}

function slot(ctx: Context, c: number): ParamViews {
  let v = ctx.slots[c];
  if (v === undefined) {
    v = paramViews(ctx.layout, ctx.grads, c * ctx.layout.stride);
    ctx.slots[c] = v;
  }
  return v;
}

type RangeTask = Pick<WorkerTask, 'kind' | 'batchStart' | 'batchSize' | 'chunkSize' | 'chunkBegin' | 'chunkEnd'>;

/**
 * Runs chunks [chunkBegin, chunkEnd) of one minibatch. 'grad' zeroes slot c and adds the chunk's
 * gradient sum into it; both kinds write the chunk's loss sum and correct count into stats.
 * With `foldInto`, every chunk uses slot 0 and is added into `foldInto` as soon as it is done
 * (foldInto = s0, then += s1, += s2, …): the same additions in the same order as reduceSlots, so
 * the same bits, but with one slot that stays in cache. The one-thread path uses this.
 */
export function runChunks(ctx: Context, t: RangeTask, foldInto: Float64Array | null = null): void {
  const { layout } = ctx;
  if (ctx.ws.cap < t.chunkSize) ctx.ws = makeWorkspace(layout, t.chunkSize);
  const stride = layout.stride;
  const sizes = layout.spec.sizes;
  for (let c = t.chunkBegin; c < t.chunkEnd; c++) {
    const begin = c * t.chunkSize;
    const S = Math.min(t.chunkSize, t.batchSize - begin);
    let r: { loss: number; correct: number };
    if (t.kind === 'grad') {
      const sc = foldInto === null ? c : 0;
      ctx.grads.fill(0, sc * stride, (sc + 1) * stride);
      r = chunkGradient(layout, ctx.P, slot(ctx, sc), ctx.ws, ctx.X, ctx.Y, ctx.order, t.batchStart + begin, S);
      if (foldInto !== null) {
        if (c === t.chunkBegin) foldInto.set(ctx.grads.subarray(0, stride));
        else for (let i = 0; i < stride; i++) foldInto[i] += ctx.grads[i];
      }
    } else {
      gatherBlock(ctx.ws, ctx.X, ctx.Y, ctx.order, t.batchStart + begin, S, sizes[0], sizes[sizes.length - 1]);
      r = evaluateBlock(layout, ctx.P, ctx.ws, S);
    }
    ctx.stats[c * STATS_PER_CHUNK] = r.loss;
    ctx.stats[c * STATS_PER_CHUNK + 1] = r.correct;
  }
}

/**
 * gradSum[p0, p1) = slot0 + slot1 + … + slot(chunks−1), added in slot order: the fixed order that
 * makes the thread count irrelevant. Returns false if any sum is NaN or infinite. Threads split
 * the parameter range between them, so the reduction runs in parallel too.
 */
export function reduceSlots(gradSum: Float64Array, grads: Float64Array, chunks: number, stride: number, p0: number, p1: number): boolean {
  gradSum.set(grads.subarray(p0, p1), p0);
  for (let c = 1; c < chunks; c++) {
    const off = c * stride;
    for (let i = p0; i < p1; i++) gradSum[i] += grads[off + i];
  }
  return allFinite(gradSum, p0, p1);
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
  const chunkSize = chunkSizeFor(n);
  const order = new Int32Array(sab(n));
  for (let i = 0; i < n; i++) order[i] = i;
  const buffers: SharedBuffers = {
    params: sab(layout.stride), grads: sab(layout.stride), gradSum: sab(layout.stride),
    stats: sab(STATS_PER_CHUNK * chunkCount(n, chunkSize)),
    x: sab(X.length), y: sab(Y.length), order: order.buffer as SharedArrayBuffer,
  };
  const ctx = makeContext(layout.spec, buffers, layout);
  new Float64Array(buffers.params).set(params.subarray(0, layout.stride));
  ctx.X.set(X);
  ctx.Y.set(Y);
  runChunks(ctx, { kind: 'grad', batchStart: 0, batchSize: n, chunkSize, chunkBegin: 0, chunkEnd: chunkCount(n, chunkSize) }, ctx.gradSum);
  let loss = 0;
  for (let c = 0; c < chunkCount(n, chunkSize); c++) loss += ctx.stats[c * STATS_PER_CHUNK];
  const grad = Float64Array.from(ctx.gradSum, (g) => g / n);
  return { loss: loss / n, grad };
}
