// Test-only hooks for worker threads, switched on by environment variables that only the test
// suite sets. With none set, `testHooks` is null and costs one null check per task.
//
//   BPTRAIN_TEST_DELAY_MS=N   each task sleeps a pseudo-random 0..N ms first, so workers finish
//                             out of order (determinism tests).

import type { WorkerTask } from './protocol.js';

interface Hooks {
  beforeTask(task: WorkerTask): void;
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** A deterministic hash of the task's position, so delays vary without Math.random. */
function hash(a: number, b: number): number {
  let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(b + 0x632be5ab, 0xc2b2ae35);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  return (h ^ (h >>> 12)) >>> 0;
}

function makeHooks(): Hooks | null {
  const delay = Number(process.env.BPTRAIN_TEST_DELAY_MS ?? 0);
  if (!(delay > 0)) return null;
  return {
    beforeTask(task) {
      sleepSync(hash(task.step, task.chunkBegin) % (delay + 1));
    },
  };
}

export const testHooks: Hooks | null = makeHooks();
