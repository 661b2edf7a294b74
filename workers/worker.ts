// Worker-thread entry for the piscina pool: runs a run of parallel steps, or evaluation chunks, against
// shared memory. All the maths lives in src/; this file only keeps per-context views and scratch
// memory alive between tasks, and holds the test-only fault and delay hooks.

import { Context, makeContext, runChunks, runParallelSteps } from '../src/engine.js';
import type { WorkerResult, WorkerTask } from '../src/protocol.js';
import { testHooks } from '../src/testhooks.js';

// A few contexts (one per trainer × dataset) are kept; older ones are dropped.
const contexts = new Map<string, Context>();
const MAX_CONTEXTS = 8;

export default function run(task: WorkerTask): WorkerResult {
  let ctx = contexts.get(task.contextId);
  if (ctx === undefined) {
    ctx = makeContext(task.spec, task.buffers, undefined, task.accuracy);
    contexts.set(task.contextId, ctx);
    if (contexts.size > MAX_CONTEXTS) contexts.delete(contexts.keys().next().value as string);
  }
  const t0 = performance.now();
  if (task.steps !== undefined) return { ok: true, steps: runParallelSteps(ctx, task), busyMs: performance.now() - t0 };
  testHooks?.beforeTask(task);
  runChunks(ctx, task);
  return { ok: true, busyMs: performance.now() - t0 };
}
