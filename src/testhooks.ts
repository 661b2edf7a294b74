// Test-only hooks for worker threads, switched on by environment variables that only the test
// suite sets. With none set, `testHooks` is null and costs one null check per task.
//
//   BPTRAIN_TEST_DELAY_MS=N   each task, and each worker at each parallel step, sleeps a
//                             pseudo-random 0..N ms first, and after one chunk in four of a δ
//                             pass, so workers finish out of order and sum ahead of the barrier
//                             over varying numbers of chunks (determinism tests).
//   BPTRAIN_TEST_FAULT=K@S    the first worker of parallel global step S (0-based) fails as it
//                             starts the step: K = throw | exit | oom. With K@S@apply the
//                             worker that updates the step's first row block (block 0) fails
//                             right after it (the others may have updated theirs: the step is
//                             half applied). Not "the first worker": the row blocks go to
//                             whoever claims them, and it may claim none. With
//                             K@eval, a worker fails as it starts an 'eval' or 'predict' task's
//                             first chunk.
//   BPTRAIN_TEST_STALL=S       the second worker of parallel global step S (0-based) stalls for
//                             STALL_MS as it starts the step, longer than a barrier waits for it,
//                             so the coordinator has to redo the step. With S@gradient it stalls
//                             after the δ pass instead: the first worker sums every row block
//                             and gives up at the gradient barrier; the second, with no rows of
//                             its own, finishes the step's barriers, and the coordinator applies
//                             the updates the first one left.
//   BPTRAIN_TEST_KILL_AFTER_CHECKPOINT=S
//                             the main thread kills its own process with SIGKILL right after the
//                             checkpoint written at global step S (a real kill -9 at a known point).

import type { WorkerTask } from './protocol.js';

interface Hooks {
  /** Before a worker task ('eval' tasks; a run of steps calls beforeStep per step). */
  beforeTask(task: WorkerTask): void;
  /** Before worker `index` of a parallel run starts global step `step`. */
  beforeStep(step: number, index: number): void;
  /** After the δ pass of chunk `chunk` of that step (before it is marked ready). */
  afterChunk(step: number, index: number, chunk: number): void;
  /** After its δ pass of that step. */
  afterDeltas(step: number, index: number): void;
  /** After a worker updated row block `block` (rowBlocks index) of that step. */
  afterApply(step: number, block: number): void;
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
  const fault = /^(throw|exit|oom)@(\d+|eval)(@apply)?$/.exec(process.env.BPTRAIN_TEST_FAULT ?? '');
  const faultAt = fault === null ? null : fault[2] === 'eval' ? 'eval' : fault[3] !== undefined ? 'apply' : 'step';
  const fail = (what: string): void => {
    switch (fault![1]) {
      case 'throw':
        throw new Error(`injected fault ${what}`);
      case 'exit':
        process.exit(3);
      // eslint-disable-next-line no-fallthrough
      case 'oom': {
        const hog: number[][] = [];
        for (;;) hog.push(new Array(1 << 20).fill(hog.length));
      }
    }
  };
  const faultStep = fault === null ? -1 : Number(fault[2]);
  const stallAt = /^(\d+)(@gradient)?$/.exec(process.env.BPTRAIN_TEST_STALL ?? '');
  const stall = stallAt === null ? -1 : Number(stallAt[1]);
  const stallGradient = stallAt?.[2] !== undefined;
  if (!(delay > 0) && fault === null && stall < 0) return null;
  return {
    beforeTask(task) {
      if (delay > 0) sleepSync(hash(task.step, task.chunkBegin) % (delay + 1));
      if (faultAt === 'eval' && (task.kind === 'eval' || task.kind === 'predict') && task.chunkBegin === 0) fail(`in a ${task.kind} task`);
    },
    beforeStep(step, index) {
      if (delay > 0) sleepSync(hash(step, index) % (delay + 1));
      if (step === stall && index === 1 && !stallGradient) sleepSync(STALL_MS);
      if (faultAt === 'step' && index === 0 && step === faultStep) fail(`at step ${step}`);
    },
    afterApply(step, block) {
      if (faultAt === 'apply' && block === 0 && step === faultStep) fail(`while applying step ${step}`);
    },
    afterChunk(step, index, chunk) {
      if (delay > 0 && hash(step, chunk) % 4 === 0) sleepSync(hash(chunk, index) % (delay + 1));
    },
    afterDeltas(step, index) {
      if (step === stall && index === 1 && stallGradient) sleepSync(STALL_MS);
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
