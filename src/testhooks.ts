// Test-only hooks for worker threads, switched on by environment variables that only the test
// suite sets. With none set, `testHooks` is null and costs one null check per task.
//
//   BPTRAIN_TEST_DELAY_MS=N   each task sleeps a pseudo-random 0..N ms first, so workers finish
//                             out of order (determinism tests).
//   BPTRAIN_TEST_FAULT=K@S    the first task of global step S (0-based) fails before any of its
//                             chunks: K = throw | exit | oom.
//   BPTRAIN_TEST_STALL=S       the second worker of parallel step S (0-based) stalls for
//                             STALL_MS before starting, longer than a barrier waits for it, so
//                             the step takes the coordinator's fallback path.
//   BPTRAIN_TEST_KILL_AFTER_CHECKPOINT=S
//                             the main thread kills its own process with SIGKILL right after the
//                             checkpoint written at global step S (a real kill -9 at a known point).

import type { WorkerTask } from './protocol.js';

interface Hooks {
  beforeTask(task: WorkerTask): void;
}

/** Longer than a parallel step's barriers wait (1 s plus twice the work done so far). */
const STALL_MS = 1500;

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
  const fault = /^(throw|exit|oom)@(\d+)$/.exec(process.env.BPTRAIN_TEST_FAULT ?? '');
  const stall = /^\d+$/.test(process.env.BPTRAIN_TEST_STALL ?? '') ? Number(process.env.BPTRAIN_TEST_STALL) : -1;
  if (!(delay > 0) && fault === null && stall < 0) return null;
  return {
    beforeTask(task) {
      if (task.step === stall && task.fused?.index === 1) sleepSync(STALL_MS);
      // A task's place in its step: its worker index in a fused step, else its first chunk.
      const place = task.fused?.index ?? task.chunkBegin;
      if (delay > 0) sleepSync(hash(task.step, place) % (delay + 1));
      if (fault === null || task.kind !== 'grad' || place !== 0 || task.step !== Number(fault[2])) return;
      switch (fault[1]) {
        case 'throw':
          throw new Error(`injected fault at step ${task.step}`);
        case 'exit':
          process.exit(3);
        // eslint-disable-next-line no-fallthrough
        case 'oom': {
          const hog: number[][] = [];
          for (;;) hog.push(new Array(1 << 20).fill(hog.length));
        }
      }
    },
  };
}

export const testHooks: Hooks | null = makeHooks();

interface MainHooks {
  afterCheckpoint(globalStep: number): void;
}

function makeMainHooks(): MainHooks | null {
  const at = process.env.BPTRAIN_TEST_KILL_AFTER_CHECKPOINT;
  if (at === undefined || at === '') return null;
  return {
    afterCheckpoint(globalStep) {
      if (globalStep === Number(at)) process.kill(process.pid, 'SIGKILL');
    },
  };
}

export const mainHooks: MainHooks | null = makeMainHooks();
