// The coordinator: runs minibatch SGD/Adam over a dataset, data-parallel across a piscina pool.
//
// Per step: the minibatch is cut into chunks of 32 samples (engine.ts). The threads take chunks
// from a shared counter and compute their error terms δ, meet at a barrier, then take blocks of
// weight rows and sum their gradient over all chunks in chunk order, and apply the optimizer to
// the rows they summed. One task per thread runs a whole run of steps (an epoch, or up to the next
// checkpoint) in one round trip; the coordinator posts the tasks, reports progress, and finishes
// whatever a stalled thread left undone. Nothing but SharedArrayBuffer handles and indices
// crosses the thread boundary.
//
// With one thread (small networks under threads: 'auto', or threads: 1) the same chunk loop runs
// on the calling thread, yielding to the event loop between steps, and gives the same bits.

import { createHash } from 'node:crypto';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { Model, applyNormalization, checkInputArray, computeGradient, inputMatrix, outputRows } from './model.js';
import { Dataset, checkDatasetFits, nonFiniteError, toShared } from './dataset.js';
import {
  CHUNK_SIZE, Context, ROUND_CHUNKS, abortStep, allFinite, applyRowBlock, blockMemory, chunkCount, chunkStat, makeContext, rowBlocks, stepBatch,
  runChunks, stepTouchedWeights,
} from './engine.js';
import { PHASE_COUNT, PHASE_DELTAS, PHASE_GRADIENTS, PHASE_UPDATE, PHASE_WAITING, STATS_PER_CHUNK, SYNC_APPLIED, SYNC_STEPS_DONE, SYNC_STOP, SharedBuffers, WorkerResult, WorkerTask, syncLength } from './protocol.js';
import { OptimizerOptions, OptimizerState, makeOptimizerState, optimizerBufferCount, optimizerStep } from './optim.js';
import { Rng } from './rng.js';
import { NumericError, OptionError, StateError, WorkerError, checkOptionKeys, signalOption } from './errors.js';
import { sharedFloat64 } from './layout.js';
import { Accuracy, outputAccuracy } from './kernels.js';
import {
  CHECKPOINT_FORMAT, CHECKPOINT_VERSION, Checkpoint, CheckpointError, RunSettings, checkCheckpoint, compareCheckpoint,
  decodeFloat64, decodeInt32, encodeFloat64, encodeInt32, hashDataset, loadCheckpoint, saveCheckpoint,
} from './checkpoint.js';
import { mainHooks } from './testhooks.js';
import { unwritableReason } from './fsutil.js';

export interface TrainerOptions {
  /** Worker threads: a number ≥ 1, or 'auto' (one thread for networks too small to gain from more,
   *  else up to the available cores). A step's forward and δ pass runs 32 samples per thread at a
   *  time, so threads beyond one per 32 samples of the batch share only the gradient sums and the
   *  optimizer update. At most 32 threads. More threads than cores only slow training down: the threads meet at barriers three times a
   *  step, and each waits for the slowest. @default 'auto' */
  threads?: number | 'auto' | undefined;
  /** Heap limit of each worker thread in MiB: a worker that runs out is ended and fit rejects,
   *  instead of the whole process running out of memory. @default Node's default */
  workerHeapMb?: number | undefined;
}

export interface FitOptions {
  /** @default 10 */
  epochs?: number | undefined;
  /** Minibatch size; the last, partial minibatch of an epoch is used and averaged over its own size. @default 32 */
  batchSize?: number | undefined;
  /** @default 'sgd' */
  optimizer?: 'sgd' | 'adam' | undefined;
  /** Learning rate. @default 0.01 for sgd, 0.001 for adam */
  lr?: number | undefined;
  /** SGD momentum μ. @default 0 */
  momentum?: number | undefined;
  /** SGD Nesterov momentum. @default false */
  nesterov?: boolean | undefined;
  /** L2 penalty added to the gradient (PyTorch's weight_decay). @default 0 */
  weightDecay?: number | undefined;
  /** Adam β1. @default 0.9 */
  beta1?: number | undefined;
  /** Adam β2. @default 0.999 */
  beta2?: number | undefined;
  /** Adam ε. @default 1e-8 */
  eps?: number | undefined;
  /** Shuffle the samples every epoch with the seeded generator. @default true */
  shuffle?: boolean | undefined;
  /** Seed of the shuffles. @default 1 */
  seed?: number | undefined;
  /** Data evaluated after every epoch (val_loss, val_accuracy). */
  validation?: Dataset | undefined;
  /** Stop after this many epochs without improvement of val_loss (or loss without validation data),
   *  and restore the best weights at the end. @default undefined (no early stopping) */
  patience?: number | undefined;
  /** Aborts training: fit rejects with the signal's reason (an AbortError by default). */
  signal?: AbortSignal | undefined;
  /** Called after every epoch with its metrics. A promise it returns is awaited before the next
   *  epoch (unless the signal aborts first); if it throws or rejects, fit rejects with that error. */
  onEpoch?: ((stats: EpochStats) => unknown) | undefined;
  /** Called after every step, in order (keep it cheap). On the pool the workers run many steps
   *  per round trip and report each as it completes, so when onStep runs, the model's weights may
   *  already include later steps, even part of one. If it throws, training stops after the step
   *  in progress and fit rejects with that error. A promise it returns is not waited for before
   *  the next step, but by the end of the epoch (unless the signal aborts first); if it rejects,
   *  the same happens. */
  onStep?: ((progress: StepProgress) => unknown) | undefined;
  /** Write a checkpoint to this file after every epoch, every `checkpointEvery` steps, and when
   *  the fit is aborted (see checkpoint.ts). Written atomically. Checked before any work (a
   *  directory or a name ending in '/', a file whose directory is missing or read-only, or a
   *  write-protected file, is an OptionError); a write that fails later (a full disk) is a
   *  CheckpointError with the file system's error as cause. */
  checkpoint?: string | undefined;
  /** Also write the checkpoint every N steps. */
  checkpointEvery?: number | undefined;
  /** Called after each checkpoint is written (and renamed into place), with where it resumes:
   *  1-based epoch and the steps of it already taken. Awaited when it returns a promise (unless
   *  the signal aborts first); if it throws or rejects, fit rejects with that error. */
  onCheckpoint?: ((info: { file: string; epoch: number; step: number; globalStep: number }) => unknown) | undefined;
  /** Continue from a checkpoint (its file, or the object from loadCheckpoint). The model, data and
   *  options must be the ones it was written with; anything else is refused, saying what differs. */
  resume?: string | Checkpoint | undefined;
  /** Clip the batch-mean gradient to this L2 norm before the optimizer step, as
   *  torch.nn.utils.clip_grad_norm_ (scaled by clipNorm / (norm + 1e-6) when that is below 1). */
  clipNorm?: number | undefined;
  /** Continue the optimizer's state (SGD momentum, Adam's moments and step count) from this
   *  trainer's previous fit, as a PyTorch optimizer object or a compiled Keras model keeps it from
   *  one training call to the next; the optimizer settings must be the same. Without it each fit
   *  starts a fresh optimizer. Shuffling still starts from `seed`, so two fits of 2 epochs equal
   *  one of 4 only without shuffling (or use checkpoint/resume). Before the first fit there is
   *  nothing to keep (it starts fresh); after a fit that failed with a worker error it is refused
   *  (StateError). After a fit with `patience` the state is the last epoch's, also when the best
   *  epoch's weights were restored (as Keras' restore_best_weights). @default false */
  keepOptimizer?: boolean | undefined;
  /** Time where each step's time goes and report it per epoch (EpochStats.phases): the δ pass,
   *  the gradient sums, the update and the threads' waits for one another. Costs a few clock
   *  reads per step and changes no result. @default false */
  profile?: boolean | undefined;
}

// The option names, as objects with every key of the interface (the compiler checks that none is
// missing or extra), so that a misspelt option is refused rather than ignored (checkOptionKeys).
const TRAINER_OPTION_KEYS = Object.keys({ threads: 1, workerHeapMb: 1 } satisfies Record<keyof TrainerOptions, 1>);
const FIT_OPTION_KEYS = Object.keys({
  epochs: 1, batchSize: 1, optimizer: 1, lr: 1, momentum: 1, nesterov: 1, weightDecay: 1, beta1: 1, beta2: 1, eps: 1,
  shuffle: 1, seed: 1, validation: 1, patience: 1, signal: 1, onEpoch: 1, onStep: 1, checkpoint: 1, checkpointEvery: 1, onCheckpoint: 1,
  resume: 1, clipNorm: 1, keepOptimizer: 1, profile: 1,
} satisfies Record<keyof FitOptions, 1>);

/** FitOptions after resolveFitOptions: defaults filled in, the optimizer's settings gathered. */
export interface ResolvedFitOptions
  extends Pick<FitOptions, 'validation' | 'patience' | 'signal' | 'onEpoch' | 'onStep' | 'checkpoint' | 'checkpointEvery' | 'onCheckpoint' | 'resume' | 'clipNorm'> {
  keepOptimizer: boolean;
  profile: boolean;
  epochs: number;
  batchSize: number;
  optimizer: OptimizerOptions;
  shuffle: boolean;
  seed: number;
}

export interface EvaluateOptions {
  /** Stops the evaluation between rounds of chunks: evaluate rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
  /** Also return every sample's outputs (Metrics.outputs), from the same pass. @default false */
  outputs?: boolean | undefined;
}

export interface PredictOptions {
  /** Stops the pass between rounds of chunks: predict rejects with the signal's reason. */
  signal?: AbortSignal | undefined;
}

export interface EpochStats {
  /** 1-based. */
  epoch: number;
  /** Mean training loss over the epoch's samples (each at the weights of its step). */
  loss: number;
  /** Training accuracy, for sigmoid and softmax outputs and for models of labels (target kind
   *  'classes' or 'binary', any output), counted as decodeOutput decides (README, Accuracy). */
  accuracy?: number;
  valLoss?: number;
  valAccuracy?: number;
  /** Training samples per second in this epoch (validation excluded). */
  samplesPerSec: number;
  /** Wall-clock seconds of the epoch, validation included. */
  seconds: number;
  steps: number;
  /** With FitOptions.profile: where the epoch's step time went. */
  phases?: StepPhases;
}

/**
 * Where a training step's time goes (FitOptions.profile), in milliseconds per step of the epoch,
 * all wall-clock. Each phase is the mean over the threads of the step. What stepMs has beyond
 * them is the coordinator's: on a pool, a round trip per run of steps; on one thread, checking
 * the gradient sum for overflow and yielding to the event loop; on both, the epoch's shuffle,
 * progress callbacks and mid-epoch checkpoints, spread over the epoch's steps (so it is large
 * for steps of a few microseconds). Work the coordinator does while the workers wait (the update
 * under clipNorm) counts for every thread. The first epoch of a fit on new threads includes
 * their start-up and the JIT's warm-up, mostly as waiting. On a machine busy with other work, a
 * thread that loses its core for a while shows that time in the phase it was in.
 */
export interface StepPhases {
  /** Threads the steps ran on. */
  threads: number;
  /** Wall-clock time per step. */
  stepMs: number;
  /** Forward pass, loss and error terms δ(k) of the thread's chunks. */
  deltas: number;
  /** Gradient sums δ(k) n(k-1)ᵀ and the bias sums (on a pool, also those taken ahead of the
   *  δ pass's end by a thread that ran out of chunks). */
  gradients: number;
  /** Optimizer update. */
  update: number;
  /** Waiting at barriers for the other threads (0 on one thread): their uneven finishing
   *  times, and waking up. */
  waiting: number;
}

export interface StepProgress {
  epoch: number;
  epochs: number;
  /** 1-based step within the epoch, and the number of steps per epoch. */
  step: number;
  steps: number;
  /** Mean loss so far in this epoch. */
  loss: number;
  samplesPerSec: number;
}

export interface History {
  epochs: EpochStats[];
  /** True when early stopping ended training before the last epoch. */
  stoppedEarly: boolean;
  /** The epoch whose weights the model holds at the end (the last, or the best with patience). */
  bestEpoch: number;
}

export interface Metrics {
  /** Mean loss per sample. */
  loss: number;
  /** The model's outputs (size × outputs, sample-major), with evaluate's `outputs: true`. */
  outputs?: Float64Array;
  /** For sigmoid and softmax outputs and for models of labels (as EpochStats.accuracy). */
  accuracy?: number;
  samples: number;
}

const WORKER_FILE = resolveWorkerFile();

/** Where the compiled worker is. Under a TypeScript runner (tests) this module is src/trainer.ts,
 *  but Node 20 cannot load .ts in a worker thread, so the worker always comes from dist/. */
function resolveWorkerFile(): string {
  const here = import.meta.url;
  const rel = here.endsWith('.ts') ? '../dist/workers/worker.js' : '../workers/worker.js';
  return fileURLToPath(new URL(rel, here));
}

let nextTrainerId = 0;
/** Ends the pool of a Trainer that was dropped without close(). The pool never retires idle
 *  workers (a fit must not pay for restarting them), so each would otherwise keep its threads,
 *  several MiB apiece, for the life of the process. The pool holds no reference to its trainer. */
const abandoned = new FinalizationRegistry<Piscina>((pool) => {
  pool.destroy().catch(() => {}); // nobody is left to tell
});
/** Models in a fit, and the number of evaluate/predict calls reading each (see Trainer.enter). */
const modelsTraining = new WeakSet<Model>();
const modelReaders = new WeakMap<Model, number>();

/** The one 'abort' listener on each caller's signal, shared by the calls of every Trainer that
 *  wait on it (see onAbort); an entry goes when its last call stops listening or the signal aborts. */
const aborters = new WeakMap<AbortSignal, { fns: Set<() => void>; listener: () => void }>();

/** Calls `fn` when `signal` aborts, through one listener per signal for all calls of all
 *  trainers (a listener each would trip Node's MaxListenersExceededWarning at the 11th, for a
 *  service that gives one shutdown signal to many trainers; raising the signal's limit instead
 *  would change the caller's object); returns the way to stop listening. */
function onAbort(signal: AbortSignal, fn: () => void): () => void {
  let entry = aborters.get(signal);
  if (entry === undefined) {
    const fns = new Set<() => void>();
    const listener = (): void => {
      aborters.delete(signal);
      for (const f of fns) f();
    };
    entry = { fns, listener };
    aborters.set(signal, entry);
    signal.addEventListener('abort', listener, { once: true });
  }
  const { fns, listener } = entry;
  fns.add(fn);
  return () => {
    fns.delete(fn);
    if (fns.size === 0 && aborters.get(signal)?.fns === fns) {
      aborters.delete(signal);
      signal.removeEventListener('abort', listener);
    }
  };
}

export class Trainer {
  readonly model: Model;
  private readonly threadsOption: number | 'auto';
  private readonly workerHeapMb: number | undefined;
  private pool: Piscina | null = null;
  private poolSize = 0;
  private readonly id = `t${process.pid}.${nextTrainerId++}`;
  private contextCounter = 0;
  /** Settles when every call made so far has finished: calls run one at a time, in the order
   *  they were made (see `turn`). */
  private tail: Promise<void> = Promise.resolve();
  /** Aborts the running call; close() uses it. */
  private current: AbortController | null = null;
  private closing: Promise<void> | null = null;
  /** True while one of the running fit's callbacks runs (synchronously): a call on this trainer
   *  made there would queue behind the fit that waits for the callback, for ever (see turn). */
  private inCallback = false;
  private closed = false;
  /** The optimizer state a keepOptimizer fit continues (its buffers are the scratch buffer
   *  'fit.optState'): null before the first fit (start fresh); the last fit's settings and step
   *  count when it ended in step with its weights (completed, stopped early, aborted, or stopped
   *  by a non-finite step, which changes nothing); 'lost' when it did not (a worker failed, or
   *  the fit failed after clearing the buffer), so that keepOptimizer refuses rather than
   *  quietly starting afresh on partly trained weights. */
  private lastOptimizer: { settings: OptimizerOptions; step: number } | 'lost' | null = null;
  /**
   * Shared memory kept across calls, by name, replaced only by a larger one. Worker threads hold
   * every SharedArrayBuffer they have been sent until their own garbage collector runs, which a
   * worker that allocates almost nothing may never do: fresh buffers for each fit, evaluate or
   * predict grew a long-lived trainer by a copy of its data per call (20 MB per evaluate, without
   * end, in an audit) until close(). So data copies, optimizer state, counters and outputs all
   * live here, and memory stays at what the largest call needed. Fresh memory also costs a page
   * fault per 4 KiB on first touch (the δ blocks of a wide network are tens of megabytes).
   */
  private readonly scratch = new Map<string, SharedArrayBuffer>();

  private sharedBuffer(name: string, bytes: number): SharedArrayBuffer {
    let b = this.scratch.get(name);
    if (b === undefined || b.byteLength < bytes) {
      b = new SharedArrayBuffer(Math.max(8, bytes));
      this.scratch.set(name, b);
    }
    return b;
  }

  /** `length` doubles of the scratch buffer `name`, zeroed (as fresh memory would be) or not
   *  (for memory that is written before it is read). */
  private sharedScratch(name: string, length: number, zero: boolean): Float64Array {
    const a = new Float64Array(this.sharedBuffer(name, 8 * length), 0, length);
    if (zero) a.fill(0);
    return a;
  }

  private sharedScratchInt32(name: string, length: number): Int32Array {
    return new Int32Array(this.sharedBuffer(name, 4 * length), 0, length).fill(0);
  }

  /** 0, 1, …, n−1 in the scratch buffer `name`. */
  private identityOrder(name: string, n: number): Int32Array {
    const order = this.sharedScratchInt32(name, n);
    for (let i = 0; i < n; i++) order[i] = i;
    return order;
  }

  constructor(model: Model, options: TrainerOptions = {}) {
    if (!(model instanceof Model)) throw new OptionError('model', model, 'a Model (createModel or loadModel)');
    checkOptionKeys(options, TRAINER_OPTION_KEYS, 'Trainer options');
    const threads = options.threads ?? 'auto';
    if (threads !== 'auto' && !(Number.isInteger(threads) && threads >= 1 && threads <= MAX_THREADS))
      throw new OptionError('threads', threads, `an integer from 1 to ${MAX_THREADS} (the most one step can use), or 'auto'`);
    const heap = options.workerHeapMb;
    if (heap !== undefined && !(Number.isInteger(heap) && heap >= 16)) throw new OptionError('workerHeapMb', heap, 'an integer ≥ 16');
    this.model = model;
    this.threadsOption = threads;
    this.workerHeapMb = heap;
  }

  /** Trains the model in place and resolves with the per-epoch history. Calls on one trainer run
   *  one at a time, in call order; each reads its data when its turn comes, so leave `data`
   *  unchanged until the promise settles. */
  async fit(data: Dataset, options: FitOptions = {}): Promise<History> {
    const opts = resolveFitOptions(options);
    return this.turn('fit', opts.signal, (signal) => this.fitLoop(data, { ...opts, signal }));
  }

  /** Loss (and accuracy) of the model on a dataset, computed in parallel like training. */
  async evaluate(data: Dataset, options: EvaluateOptions = {}): Promise<Metrics> {
    checkOptionKeys(options, ['signal', 'outputs'], 'evaluate options');
    const signal = signalOption(options.signal);
    const outputs = flag('outputs', options.outputs, false);
    return this.turn('read', signal, (sig) => {
      const model = this.model;
      checkDatasetFits(data, model.inputs, model.outputs, 'data', model.loss);
      const shared = this.shareData(data, 'data');
      return this.evaluateShared(shared, this.threadsFor(EVAL_CHUNK * 4), sig, outputs);
    });
  }

  /**
   * The model's outputs for many inputs, computed on the trainer's threads (the forward pass of
   * evaluate, without targets): the same numbers as `model.predict`, bit for bit, on any number
   * of threads. Rows in, rows out; or a flat sample-major Float64Array (n × inputs) in, a flat
   * Float64Array (n × outputs) out, which skips building arrays of arrays.
   */
  predict(inputs: Float64Array, options?: PredictOptions): Promise<Float64Array>;
  predict(inputs: ArrayLike<ArrayLike<number>>, options?: PredictOptions): Promise<number[][]>;
  predict(inputs: Float64Array | ArrayLike<ArrayLike<number>>, options?: PredictOptions): Promise<Float64Array | number[][]>;
  async predict(inputs: Float64Array | ArrayLike<ArrayLike<number>>, options: PredictOptions = {}): Promise<Float64Array | number[][]> {
    checkOptionKeys(options, ['signal'], 'predict options');
    const signal = signalOption(options.signal);
    const model = this.model;
    if (ArrayBuffer.isView(inputs) && !(inputs instanceof Float64Array))
      throw new OptionError('inputs', inputs, 'a Float64Array (n × inputs, sample-major) or an array of input rows');
    const flat = inputs instanceof Float64Array;
    const X = flat ? inputs : inputMatrix(inputs, model.inputs);
    const n = flat ? checkInputArray(X, model.inputs) : X.length / model.inputs;
    return this.turn('read', signal, async (sig) => {
      const x = this.sharedInputs(X, n, 'data.x');
      const { outputs } = await this.forwardPass(x, null, n, this.threadsFor(EVAL_CHUNK * 4), sig, true);
      return flat ? outputs! : outputRows(outputs!, model.outputs);
    });
  }

  /**
   * Ends every worker thread; the trainer cannot be used afterwards (calls reject with a
   * StateError). A call still running is aborted (it rejects with an AbortError, "the Trainer was
   * closed"; a fit with a checkpoint file writes it first, as on any abort), calls still waiting
   * for their turn reject with a StateError, and close() resolves once all have settled and the
   * threads are gone. Calling it again returns the same promise.
   */
  close(): Promise<void> {
    if (this.closing === null) {
      this.closed = true;
      this.current?.abort(new DOMException('the Trainer was closed', 'AbortError'));
      this.closing = this.tail.then(async () => {
        this.scratch.clear();
        await this.destroyPool();
      });
    }
    return this.closing;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Threads a fit with this batch size would use. */
  threadsFor(batchSize: number): number {
    const chunks = chunkCount(batchSize, CHUNK_SIZE);
    if (this.threadsOption !== 'auto') return Math.min(this.threadsOption, ROUND_CHUNKS);
    // A step on the pool pays three barriers and the threads' misses on memory another thread
    // wrote; on a busy machine a thread descheduled for a moment holds up the others. So a step
    // must carry a few hundred microseconds of arithmetic per thread (2 MFLOP at ~7 GFLOP/s)
    // before another thread pays, although the barriers alone now cost little (the kernels
    // bench suite's coordinator overhead: a 4-chunk 2-3-2-1 step is about as fast on two
    // threads as on one).
    const flops = 6 * this.model.parameterCount * batchSize;
    const byWork = Math.floor(flops / MIN_FLOPS_PER_THREAD);
    // Threads beyond one per chunk share only the gradient sums, a third of the arithmetic: they
    // pay when that third alone carries enough per thread (784-128-64-10 at batch 32: 1.1 to
    // 1.2 times one thread's speed on 2 threads; at batch 16, 1.05, and not taken).
    const bySums = Math.floor(flops / 3 / MIN_FLOPS_PER_THREAD);
    return Math.max(1, Math.min(os.availableParallelism(), Math.max(Math.min(chunks, byWork), bySums), ROUND_CHUNKS));
  }

  // -------------------------------------------------------------------------------------------

  /**
   * Runs `body` when every call made before this one has finished: one call at a time per
   * trainer (they share its threads and scratch memory), in the order they were made, as
   * piscina queues tasks. A call whose signal aborts while it waits rejects at once with the
   * signal's reason. `body` gets a signal that also aborts when the trainer is closed.
   * A call made in one of the running fit's callbacks (an onEpoch that evaluates with the same
   * trainer) is refused: queued behind the fit that waits for the callback, it would wait for
   * ever. Only calls made while the callback itself runs are seen (not after one of its awaits):
   * tracking async contexts (AsyncLocalStorage) would slow every await of the host process on
   * Node 20, whose promise hooks it turns on.
   */
  private async turn<T>(use: 'fit' | 'read', signal: AbortSignal | undefined, body: (signal: AbortSignal) => Promise<T>): Promise<T> {
    if (this.closed) throw new StateError('this Trainer is closed');
    if (this.inCallback)
      throw new StateError("a Trainer cannot be called from its own fit's callbacks (the call would wait for the fit, which waits for the callback): use another Trainer on model.clone(), or model.predict");
    signal?.throwIfAborted();
    const before = this.tail;
    let done!: () => void;
    const mine = new Promise<void>((resolve) => (done = resolve));
    // The next call waits for this one and for everything before it, also when this one gives
    // up while it waits.
    this.tail = before.then(() => mine);
    // Every call on one signal, of every trainer, shares one 'abort' listener (see onAbort):
    // twenty calls queued with a service's shutdown signal, or fifteen trainers given it, must
    // not trip Node's listener-leak warning.
    let wake = (): void => {};
    const woken = new Promise<void>((resolve) => (wake = resolve));
    const off = signal === undefined ? () => {} : onAbort(signal, () => wake());
    try {
      await Promise.race([before, woken]);
      signal?.throwIfAborted();
      if (this.closed) throw new StateError('this Trainer was closed before the call started');
      this.enter(use);
      // The caller's signal and close() both abort the call. (Not AbortSignal.any: on Node 20 it
      // leaves an entry on a long-lived caller's signal for every call, a leak for a service or
      // the CLI that passes one signal to thousands of calls.)
      const ac = new AbortController();
      wake = () => ac.abort(signal!.reason);
      this.current = ac;
      try {
        return await body(ac.signal);
      } finally {
        this.current = null;
        this.leave(use);
      }
    } finally {
      off();
      done();
    }
  }

  /** Runs one of the user's fit callbacks, marked as such (see inCallback). */
  private callback<T>(fn: () => T): T {
    this.inCallback = true;
    try {
      return fn();
    } finally {
      this.inCallback = false;
    }
  }

  /** Marks this trainer's model as trained ('fit') or read ('read'), for turn(). Another
   *  trainer may read a model while nobody trains it; training needs it alone: two fits on one
   *  model interleave their updates (the weights then depend on timing), and a fit moves the
   *  weights under an evaluate or predict. */
  private enter(use: 'fit' | 'read'): void {
    const readers = modelReaders.get(this.model) ?? 0;
    if (modelsTraining.has(this.model) || (use === 'fit' && readers > 0))
      throw new StateError(`this model is being ${modelsTraining.has(this.model) ? 'trained' : 'evaluated'} by another Trainer; give each concurrent job its own copy (model.clone())`);
    if (use === 'fit') modelsTraining.add(this.model);
    else modelReaders.set(this.model, readers + 1);
  }

  private leave(use: 'fit' | 'read'): void {
    if (use === 'fit') modelsTraining.delete(this.model);
    else modelReaders.set(this.model, modelReaders.get(this.model)! - 1);
  }

  /** The data in shared memory (copied once per call into the scratch buffers `name`.x and
   *  `name`.y unless already shared), x normalised if the model says so. */
  private shareData(data: Dataset, name: 'data' | 'validation'): Dataset {
    return { ...data, x: this.sharedInputs(data.x, data.size, `${name}.x`), y: this.shared(data.y, `${name}.y`, false) };
  }

  /** Inputs (n samples) where the workers can read them, normalised if the model says so. */
  private sharedInputs(x: Float64Array, n: number, key: string): Float64Array {
    this.model.checkSettings();
    const norm = this.model.normalization;
    const s = this.shared(x, key, norm !== undefined);
    if (norm !== undefined) applyNormalization(s, n, this.model.inputs, norm);
    return s;
  }

  /** `a` itself when the workers can view it (a SharedArrayBuffer from its first byte: a view
   *  starting further in would be read from byte 0), else, or when `copy`, a copy in the scratch
   *  buffer `key`. */
  private shared(a: Float64Array, key: string, copy: boolean): Float64Array {
    if (!copy && a.buffer instanceof SharedArrayBuffer && a.byteOffset === 0) return a;
    const s = this.sharedScratch(key, a.length, false);
    s.set(a);
    return s;
  }

  private async ensurePool(threads: number): Promise<Piscina | null> {
    if (threads <= 1) return null;
    // A larger pool serves a smaller request (tasks are split by the requested count), so a
    // validation pass between epochs never restarts the threads.
    if (this.pool !== null && this.poolSize >= threads) return this.pool;
    await this.destroyPool();
    this.pool = new Piscina({
      filename: WORKER_FILE,
      minThreads: threads,
      maxThreads: threads,
      concurrentTasksPerWorker: 1,
      idleTimeout: Number.MAX_SAFE_INTEGER,
      ...(this.workerHeapMb !== undefined ? { resourceLimits: { maxOldGenerationSizeMb: this.workerHeapMb } } : {}),
    });
    this.poolSize = threads;
    abandoned.register(this, this.pool, this);
    return this.pool;
  }

  private async destroyPool(): Promise<void> {
    const pool = this.pool;
    this.pool = null;
    this.poolSize = 0;
    abandoned.unregister(this);
    if (pool !== null) await pool.destroy();
  }

  /** Evaluates one batch's chunks (loss and correct counts into ctx.stats; outputs, if kept) on
   *  `threads` threads. */
  private async runEval(
    ctx: Context, buffers: SharedBuffers, contextId: string, kind: 'eval' | 'predict', batchStart: number, batchSize: number, chunkSize: number, threads: number,
  ): Promise<void> {
    const chunks = chunkCount(batchSize, chunkSize);
    const t = Math.min(threads, chunks);
    const pool = t > 1 ? this.pool : null;
    if (pool === null) {
      runChunks(ctx, { kind, batchStart, batchSize, chunkSize, chunkBegin: 0, chunkEnd: chunks });
      return;
    }
    try {
      await this.runAll(pool, Array.from({ length: t }, (_, w): WorkerTask => ({
        kind, contextId, spec: this.model.layout.spec, accuracy: ctx.accuracy, buffers, batchStart, batchSize, chunkSize, step: -1,
        chunkBegin: Math.floor((w * chunks) / t), chunkEnd: Math.floor(((w + 1) * chunks) / t),
      })));
    } catch (err) {
      // Nothing of the model was written (these tasks only read it), and piscina replaces a
      // worker that died; epoch and step 0: not in training (fit's validation adds its epoch).
      throw new WorkerError(`a worker failed while ${kind === 'predict' ? 'predicting' : 'evaluating'}: ${(err as Error)?.message ?? String(err)}`, 0, 0, { cause: err });
    }
  }

  /**
   * Runs `count` training steps of the epoch from step `first`, calling `stepDone` with each
   * completed step's loss sum and correct count, in order, as they complete. Returns null, or
   * what was not finite at the step where it stopped (then that step changed nothing).
   *
   * On one thread, or with gradient clipping (which needs the whole gradient's norm), count is 1
   * and this thread applies the optimizer. On the pool a run of steps is one round trip: the
   * workers apply the optimizer to their rows themselves (engine.ts runParallelSteps), and an
   * abort stops them after the current step. If a worker stalled past a barrier, the first
   * unfinished step is finished here, with the same arithmetic, and the run ends there.
   */
  private async runSteps(run: StepRun, first: number, count: number, globalStep: number, stepDone: (loss: number, correct: number) => void): Promise<'loss' | 'gradient' | null> {
    const { ctx, opts } = run;
    const pool = run.threads > 1 ? this.pool : null;
    if (pool === null) return this.stepHere(run, first, stepDone);
    const sync = ctx.sync;
    sync.fill(0);
    const state = run.optState;
    const optimizer = opts.clipNorm === undefined ? opts.optimizer : null;
    const t = run.threads;
    const tasks = Array.from({ length: t }, (_, w): WorkerTask => ({
      kind: 'grad', contextId: run.contextId, spec: this.model.layout.spec, accuracy: run.ctx.accuracy, buffers: run.buffers,
      batchStart: 0, batchSize: run.batchSize, chunkSize: CHUNK_SIZE, chunkBegin: 0, chunkEnd: 0, step: globalStep,
      steps: { workers: t, index: w, first, count, samples: run.samples, optimizer, t: state.step + 1, timeoutMs: BARRIER_TIMEOUT_MS, profile: run.phases !== null },
    }));
    let delivered = 0;
    const deliver = (upTo: number): void => {
      while (delivered < upTo) {
        const i = delivered++;
        stepDone(ctx.stepStats[2 * i], ctx.stepStats[2 * i + 1]);
      }
    };
    const stop = (): void => void Atomics.store(sync, SYNC_STOP, 1);
    opts.signal?.addEventListener('abort', stop);
    let settled = false;
    const all = this.runAll(pool, tasks, sync).finally(() => {
      settled = true;
      Atomics.notify(sync, SYNC_STEPS_DONE); // wakes the progress wait below
    });
    all.catch(() => {}); // handled below, once the progress loop sees it settled
    let results: WorkerResult[];
    try {
      // Progress while the workers run: each step's end is published in sync[SYNC_STEPS_DONE].
      // Without onStep nobody needs it before the end, and this thread is not woken every step
      // (on a machine with as many cores as workers, each wake-up takes time from one of them).
      while (!settled && opts.onStep !== undefined) {
        const seen = Atomics.load(sync, SYNC_STEPS_DONE);
        deliver(seen);
        const wait = Atomics.waitAsync(sync, SYNC_STEPS_DONE, seen);
        if (wait.async) await wait.value;
      }
      results = await all;
    } catch (err) {
      // Steps the workers finished before the failure count (their weights are in place), so
      // that the error names the step that failed. The fit rejects: the optimizer state is done with.
      deliver(Atomics.load(sync, SYNC_STEPS_DONE));
      throw err;
    } finally {
      opts.signal?.removeEventListener('abort', stop);
    }
    const steps = results.map((r) => r.steps!);
    if (run.phases !== null) for (const r of steps) r.phases?.forEach((ms, p) => (run.phases![p] += ms));
    const k = Math.min(...steps.map((r) => r.stepsDone));
    deliver(k);
    state.step += k;
    if (k === count || steps.every((r) => r.stopped)) return null;
    // Step first + k is unfinished. If a worker passed its gradient barrier, the gradient is
    // complete and only updates may be missing (each row block marks the step it received).
    // Otherwise the step is redone here from scratch; nothing of it was applied then.
    const passed = steps.find((r) => r.passedFlags > k);
    if (passed === undefined) return this.stepHere(run, first + k, stepDone);
    const { size } = stepBatch(run.batchSize, run.samples, first + k);
    const chunks = chunkCount(size, CHUNK_SIZE);
    const loss = chunkStat(ctx.stats, chunks, 0);
    if (!passed.finite) return Number.isFinite(loss) ? 'gradient' : 'loss';
    const t0 = run.phases === null ? 0 : performance.now();
    if (optimizer === null) this.applyHere(run, size);
    else {
      state.step++;
      ctx.rows.forEach((r, b) => {
        if (Atomics.load(sync, SYNC_APPLIED + b) !== k + 1) applyRowBlock(r, optimizer, state.step, state.buffers, ctx.params, ctx.gradSum, size);
      });
    }
    if (run.phases !== null) this.addPhase(run, PHASE_UPDATE, performance.now() - t0);
    stepDone(loss, chunkStat(ctx.stats, chunks, 1));
    return null;
  }

  /** Step `step` of the epoch entirely on this thread: same chunks, same order, same bits. */
  private stepHere(run: StepRun, step: number, stepDone: (loss: number, correct: number) => void): 'loss' | 'gradient' | null {
    const { ctx } = run;
    const { start, size } = stepBatch(run.batchSize, run.samples, step);
    const chunks = chunkCount(size, CHUNK_SIZE);
    // On one thread the times go straight into the epoch's totals; a step finished here for a
    // pool (rare: a stalled worker) counts for each of its threads (addPhase).
    const direct = run.threads === 1;
    const phases = run.phases === null ? null : direct ? run.phases : new Array<number>(PHASE_COUNT).fill(0);
    runChunks(ctx, { kind: 'grad', batchStart: start, batchSize: size, chunkSize: CHUNK_SIZE, chunkBegin: 0, chunkEnd: chunks }, ctx.sum, phases);
    const loss = chunkStat(ctx.stats, chunks, 0);
    if (!Number.isFinite(loss)) return 'loss';
    if (!allFinite(ctx.gradSum)) return 'gradient';
    if (phases === null) this.applyHere(run, size);
    else {
      const t0 = performance.now();
      this.applyHere(run, size);
      phases[PHASE_UPDATE] += performance.now() - t0;
      if (!direct) phases.forEach((ms, p) => this.addPhase(run, p, ms));
    }
    stepDone(loss, chunkStat(ctx.stats, chunks, 1));
    return null;
  }

  /** Adds `ms` of this thread's work to phase p of the profile (if any). The workers, if any,
   *  wait for it, so it counts for every thread of the run. */
  private addPhase(run: StepRun, p: number, ms: number): void {
    if (run.phases !== null) run.phases[p] += ms * run.threads;
  }

  /** Clips (if asked) and applies the optimizer to the summed gradient in ctx.gradSum. */
  private applyHere(run: StepRun, size: number): void {
    const { opts, ctx } = run;
    if (opts.clipNorm !== undefined) clipGradient(ctx.gradSum, size, opts.clipNorm);
    optimizerStep(opts.optimizer, run.optState, this.model.params, ctx.gradSum, size);
  }

  /** Runs tasks on the pool; waits for every one, failed or not, before the shared buffers are
   *  touched again, then rethrows the first failure. */
  private async runAll(pool: Piscina, tasks: WorkerTask[], sync?: Int32Array): Promise<WorkerResult[]> {
    // The first failure calls a parallel step off, so that the other workers leave their
    // barriers at once instead of waiting for the one that is gone.
    const settled = await Promise.allSettled(tasks.map((task) => (pool.run(task) as Promise<WorkerResult>).catch((err: unknown) => {
      if (sync !== undefined) abortStep(sync);
      throw err;
    })));
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    return settled.map((r) => (r as PromiseFulfilledResult<WorkerResult>).value);
  }

  private async evaluateShared(data: Dataset, threads: number, signal?: AbortSignal, withOutputs = false): Promise<Metrics> {
    const model = this.model;
    const N = data.size;
    const r = await this.forwardPass(data.x, data.y, N, threads, signal, withOutputs);
    const units = accuracyUnits(accuracyRule(model), model.outputs);
    return {
      loss: r.loss / N, ...(units > 0 ? { accuracy: r.correct / (N * units) } : {}), samples: N,
      ...(r.outputs !== null ? { outputs: r.outputs } : {}),
    };
  }

  /**
   * The forward pass of evaluate and predict over n samples of x (shared, normalised): with
   * targets y, the loss sum and correct count, added chunk by chunk in chunk order (so the same
   * on any number of threads); without (predict), only the outputs. Outputs are kept when asked.
   */
  private async forwardPass(
    x: Float64Array, y: Float64Array | null, n: number, threads: number, signal: AbortSignal | undefined, withOutputs: boolean,
  ): Promise<{ loss: number; correct: number; outputs: Float64Array | null }> {
    const model = this.model;
    const layout = model.layout;
    const chunks = chunkCount(n, EVAL_CHUNK);
    threads = Math.min(threads, Math.max(1, chunks)); // a pool for a handful of samples would idle
    const unused = this.sharedBuffer('pass.unused', 8);
    const buffers: SharedBuffers = {
      params: model.params.buffer as SharedArrayBuffer,
      gradSum: unused,
      blocks: unused,
      blockRows: unused,
      optState: unused,
      sync: unused,
      stats: this.sharedScratch('pass.stats', STATS_PER_CHUNK * Math.min(chunks, Math.max(threads, 1) * 4), true).buffer as SharedArrayBuffer,
      stepStats: unused,
      x: x.buffer as SharedArrayBuffer,
      y: y !== null ? y.buffer as SharedArrayBuffer : unused,
      order: this.identityOrder('pass.order', n).buffer as SharedArrayBuffer,
      ...(withOutputs ? { outputs: this.sharedScratch('pass.outputs', n * model.outputs, false).buffer as SharedArrayBuffer } : {}),
    };
    await this.ensurePool(threads);
    const ctx = makeContext(layout.spec, buffers, layout, accuracyRule(model));
    const contextId = `${this.id}.e${this.contextCounter++}`;
    const kind = y !== null ? 'eval' : 'predict';
    // The set is run in rounds of a few chunks per thread, so the event loop breathes between
    // them; the per-chunk sums are added in chunk order, round after round.
    const perRound = Math.max(threads, 1) * 4;
    let loss = 0, correct = 0;
    for (let c0 = 0; c0 < chunks; c0 += perRound) {
      signal?.throwIfAborted();
      const start = c0 * EVAL_CHUNK;
      const size = Math.min(n, (c0 + perRound) * EVAL_CHUNK) - start;
      await this.runEval(ctx, buffers, contextId, kind, start, size, EVAL_CHUNK, threads);
      for (let c = 0; c < chunkCount(size, EVAL_CHUNK); c++) {
        loss += ctx.stats[c * STATS_PER_CHUNK];
        correct += ctx.stats[c * STATS_PER_CHUNK + 1];
      }
      if (threads <= 1) await yieldToEventLoop();
    }
    // A copy: the scratch buffer is the next call's.
    return { loss, correct, outputs: ctx.outputs !== null ? ctx.outputs.slice(0, n * model.outputs) : null };
  }

  private async fitLoop(data: Dataset, opts: ResolvedFitOptions): Promise<History> {
    const model = this.model;
    const layout = model.layout;
    checkDatasetFits(data, model.inputs, model.outputs, 'data', model.loss);
    if (!allFinite(model.params)) throw new NumericError("the model's weights are not all finite, so there is nothing to train from (create or load the model again)", 0, 0);
    if (opts.validation !== undefined) checkDatasetFits(opts.validation, model.inputs, model.outputs, 'validation', model.loss);
    const N = data.size;
    const B = Math.min(opts.batchSize, N);
    const stride = layout.stride;
    const settings: RunSettings = {
      epochs: opts.epochs, batchSize: opts.batchSize, shuffle: opts.shuffle, seed: opts.seed,
      optimizer: opts.optimizer, patience: opts.patience ?? null, validation: opts.validation !== undefined,
      clipNorm: opts.clipNorm ?? null,
      normalization: model.normalization === undefined ? null
        : createHash('sha256').update(JSON.stringify(model.normalization)).digest('hex').slice(0, 16),
    };
    const checkpointing = opts.checkpoint !== undefined || opts.resume !== undefined;
    const dataHash = checkpointing ? hashDataset(data) : '';
    settings.validationData = checkpointing && opts.validation !== undefined ? hashDataset(opts.validation) : null;
    const resume = opts.resume === undefined ? undefined
      : typeof opts.resume === 'string' ? await loadCheckpoint(opts.resume) : checkCheckpoint(opts.resume);
    if (resume !== undefined) {
      const diffs = compareCheckpoint(resume, layout.spec, settings, dataHash);
      const done = resume.epoch - 1 + (resume.step > 0 ? 1 : 0); // epochs finished or begun
      if (opts.epochs < done) diffs.push(`epochs: the checkpoint has reached epoch ${done}, so epochs must be at least ${done}; now ${opts.epochs}`);
      if (diffs.length > 0)
        throw new CheckpointError(`cannot resume: this run differs from the checkpoint's — ${diffs.join('; ')}`, typeof opts.resume === 'string' ? opts.resume : undefined);
    }
    opts.signal?.throwIfAborted();

    // keepOptimizer: the previous fit's optimizer state, still in its scratch buffer.
    const kept = opts.keepOptimizer ? this.lastOptimizer : null;
    if (kept === 'lost')
      throw new StateError("keepOptimizer: the previous fit failed (a worker error), so its optimizer state is lost; fit without keepOptimizer to start a fresh optimizer");
    if (kept !== null && JSON.stringify(kept.settings) !== JSON.stringify(opts.optimizer))
      throw new OptionError('optimizer', opts.optimizer, '', `keepOptimizer needs the previous fit's optimizer settings (${JSON.stringify(kept.settings)}); received ${JSON.stringify(opts.optimizer)}`);
    this.lastOptimizer = 'lost'; // until this fit ends in step with its weights
    const train = this.shareData(data, 'data');
    const validation = opts.validation !== undefined ? this.shareData(opts.validation, 'validation') : undefined;
    const maxChunks = chunkCount(B, CHUNK_SIZE);
    const threads = this.threadsFor(B);
    const order = this.identityOrder('fit.order', N);
    const blockMem = blockMemory(layout, threads > 1 ? Math.min(maxChunks, ROUND_CHUNKS) : 0);
    // Scratch memory (see `scratch`), zeroed where a fit relies on fresh memory: the gradient
    // sum (exactly `stride` long: its whole length is read), optimizer state, counters.
    const buffers: SharedBuffers = {
      params: model.params.buffer as SharedArrayBuffer,
      gradSum: this.sharedScratch('fit.gradSum', stride, true).buffer as SharedArrayBuffer,
      // δ blocks are always written before they are read, so reused memory needs no clearing.
      blocks: this.sharedScratch('fit.blocks', blockMem.f64, false).buffer as SharedArrayBuffer,
      blockRows: this.sharedScratchInt32('fit.blockRows', Math.max(1, blockMem.i32)).buffer as SharedArrayBuffer,
      optState: this.sharedScratch('fit.optState', optimizerBufferCount(opts.optimizer) * stride, kept === null).buffer as SharedArrayBuffer,
      sync: this.sharedScratchInt32('fit.sync', syncLength(rowBlocks(layout).length)).buffer as SharedArrayBuffer,
      stats: this.sharedScratch('fit.stats', STATS_PER_CHUNK * maxChunks, true).buffer as SharedArrayBuffer,
      stepStats: this.sharedScratch('fit.stepStats', 2 * Math.ceil(N / B), true).buffer as SharedArrayBuffer,
      x: train.x.buffer as SharedArrayBuffer,
      y: train.y.buffer as SharedArrayBuffer,
      order: order.buffer as SharedArrayBuffer,
    };
    const ctx = makeContext(layout.spec, buffers, layout, accuracyRule(model));
    const contextId = `${this.id}.f${this.contextCounter++}`;
    const steps = Math.ceil(N / B);
    const units = accuracyUnits(ctx.accuracy, model.outputs);
    const monitorVal = validation !== undefined;

    // Everything a checkpoint captures, so that a resumed run continues with the same bits.
    const optState: OptimizerState = makeOptimizerState(opts.optimizer, stride, ctx.optState);
    if (kept !== null) optState.step = kept.step;
    const run: StepRun = { ctx, buffers, contextId, batchSize: B, samples: N, threads, opts, optState, phases: opts.profile ? new Array<number>(PHASE_COUNT).fill(0) : null };
    let rng = new Rng(opts.seed);
    const history: History = { epochs: [], stoppedEarly: false, bestEpoch: 0 };
    let best = Infinity;
    let bestParams: Float64Array | null = null;
    let sinceBest = 0;
    let globalStep = 0;
    let firstEpoch = 1;
    let firstStep = 0;
    let lossSum = 0, correct = 0;
    if (resume !== undefined) {
      const file = typeof opts.resume === 'string' ? opts.resume : undefined;
      model.params.set(decodeFloat64(resume.params, stride, 'params', file));
      if (resume.optimizerBuffers.length !== optState.buffers.length) throw new CheckpointError('optimizer state does not match the optimizer', file);
      resume.optimizerBuffers.forEach((b, i) => optState.buffers[i].set(decodeFloat64(b, stride, 'optimizer state', file)));
      optState.step = resume.optimizerStep;
      rng = new Rng(resume.rng);
      order.set(decodeInt32(resume.order, N, 'order', file));
      history.epochs.push(...resume.history);
      history.bestEpoch = resume.bestEpoch;
      best = resume.best ?? Infinity;
      sinceBest = resume.sinceBest;
      bestParams = resume.bestParams === null ? null : decodeFloat64(resume.bestParams, stride, 'best params', file);
      globalStep = resume.globalStep;
      firstEpoch = resume.epoch;
      firstStep = resume.step;
      lossSum = resume.epochLoss;
      correct = resume.epochCorrect;
    }
    const snapshot = (epoch: number, step: number): Checkpoint => ({
      format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, spec: layout.spec, settings, dataHash,
      epoch, step, globalStep,
      params: encodeFloat64(model.params),
      optimizerStep: optState.step, optimizerBuffers: optState.buffers.map(encodeFloat64),
      rng: rng.state(), order: encodeInt32(order),
      epochLoss: lossSum, epochCorrect: correct,
      history: history.epochs, best: Number.isFinite(best) ? best : null, sinceBest, bestEpoch: history.bestEpoch,
      bestParams: bestParams === null ? null : encodeFloat64(bestParams),
    });
    const writeCheckpoint = async (epoch: number, step: number): Promise<void> => {
      if (opts.checkpoint === undefined) return;
      await saveCheckpoint(opts.checkpoint, snapshot(epoch, step));
      mainHooks?.afterCheckpoint(globalStep);
      if (opts.onCheckpoint !== undefined) await awaitCallback(this.callback(() => opts.onCheckpoint!({ file: opts.checkpoint!, epoch, step, globalStep })), opts.signal);
    };

    await this.ensurePool(threads);
    let lastYield = performance.now();
    // An error thrown by onStep, or the rejection of a promise it returned, stops the run after
    // the step in progress (the workers are left in a clean state), and fit rejects with it.
    let callbackError: { error: unknown } | null = null;
    const stepPromises = new Set<PromiseLike<unknown>>();
    let over = false; // a promise of this fit's onStep that rejects later must not stop the next fit
    // An update can overflow the weights themselves (a huge learning rate or gradient) although
    // the loss and gradient it came from were finite. The weights are checked after every run of
    // steps (every step on one thread, an epoch or up to a checkpoint on the pool), and the last
    // good state, kept at each epoch's start and each checkpoint, is put back: a fit never ends,
    // nor writes a checkpoint, with non-finite weights.
    const good = { params: new Float64Array(model.params.length), opt: optState.buffers.map((b) => new Float64Array(b.length)), step: 0, when: '' };
    const saveGood = (when: string): void => {
      good.params.set(model.params);
      optState.buffers.forEach((b, i) => good.opt[i].set(b));
      good.step = optState.step;
      good.when = when;
    };
    const restoreGood = (): void => {
      model.params.set(good.params);
      optState.buffers.forEach((b, i) => b.set(good.opt[i]));
      optState.step = good.step;
    };
    /** Puts the last good state back and returns the error that says so. */
    const overflowed = (epoch: number, step: number): NumericError => {
      restoreGood();
      return new NumericError(`an update made the weights non-finite in epoch ${epoch}, by step ${step}; training stopped and the weights are those of ${good.when} (try a lower learning rate: lr, --lr; standardised inputs: --normalize standard; or gradient clipping: clipNorm, --clip-norm)`, epoch, step);
    };
    const failStep = (error: unknown): void => {
      if (callbackError !== null || over) return;
      callbackError = { error };
      Atomics.store(ctx.sync, SYNC_STOP, 1);
    };
    try {
      for (let epoch = firstEpoch; epoch <= opts.epochs; epoch++) {
        const t0 = performance.now();
        run.phases?.fill(0);
        const resumedMidEpoch = epoch === firstEpoch && firstStep > 0;
        if (!resumedMidEpoch) {
          // An abort that came during the last epoch's callbacks is honoured here, before this
          // epoch's shuffle moves the generator: a checkpoint at (epoch, step 0) must hold the
          // generator as it was, or the resumed run would shuffle from a different state.
          if (opts.signal?.aborted) {
            await writeCheckpoint(epoch, 0);
            opts.signal.throwIfAborted();
          }
          for (let i = 0; i < N; i++) order[i] = i;
          if (opts.shuffle) rng.shuffle(order);
          lossSum = 0;
          correct = 0;
        }
        saveGood(resumedMidEpoch ? `the checkpoint resumed from (epoch ${epoch}, step ${firstStep})` : `the start of epoch ${epoch}`);
        const stepBegin = resumedMidEpoch ? firstStep : 0;
        let step = stepBegin;
        const stepDone = (loss: number, right: number): void => {
          lossSum += loss;
          correct += right;
          globalStep++;
          step++;
          if (opts.onStep !== undefined && callbackError === null) {
            const done = Math.min(step * B, N);
            try {
              const r = this.callback(() => opts.onStep!({ epoch, epochs: opts.epochs, step, steps, loss: lossSum / done, samplesPerSec: (done - stepBegin * B) / ((performance.now() - t0) / 1000) }));
              if (isThenable(r)) {
                stepPromises.add(r);
                r.then(() => stepPromises.delete(r), (error: unknown) => {
                  stepPromises.delete(r);
                  failStep(error);
                });
              }
            } catch (error) {
              failStep(error);
            }
          }
        };
        while (step < steps) {
          // An onStep promise that rejected while no step ran (during a checkpoint's onCheckpoint,
          // say) stops the fit before the next step, as one that rejects during a step does after it.
          const pending = callbackError as { error: unknown } | null;
          if (pending !== null) throw pending.error;
          if (opts.signal?.aborted) {
            await writeCheckpoint(epoch, step);
            opts.signal.throwIfAborted();
          }
          // On the pool, one round trip runs up to the epoch's end or the next checkpoint.
          let count = 1;
          if (threads > 1 && opts.clipNorm === undefined) {
            count = steps - step;
            if (opts.checkpointEvery !== undefined) count = Math.min(count, opts.checkpointEvery - (globalStep % opts.checkpointEvery));
          }
          let bad: 'loss' | 'gradient' | null;
          const runFirst = step;
          try {
            bad = await this.runSteps(run, step, count, globalStep, stepDone);
          } catch (err) {
            // The failed worker is gone or may be in any state: end the pool (waiting for every
            // thread to stop) so that nothing can still write the shared buffers, and start afresh
            // on the next fit. A worker that fails before the last barrier of a parallel step (its
            // chunks or its gradient rows) leaves the weights as they were: the others are called
            // off and apply nothing. One that fails while updating its own rows after that barrier
            // leaves the step partly applied (the others updated theirs), so the last good state
            // is put back, as for weights an update made non-finite.
            await this.destroyPool();
            const why = (err as Error)?.message ?? String(err);
            if (threads > 1 && stepTouchedWeights(ctx.sync, ctx.rows.length, step - runFirst + 1)) {
              restoreGood();
              throw new WorkerError(`a worker failed in epoch ${epoch}, step ${step + 1}, while that step's updates were being applied: ${why}; training stopped and the weights are those of ${good.when}`, epoch, step + 1, { cause: err });
            }
            throw new WorkerError(`a worker failed in epoch ${epoch}, step ${step + 1}: ${why}`, epoch, step + 1, { cause: err });
          }
          // Weights an update broke are put back first, whatever else stopped the run (a loss that
          // is not finite may be that update's doing); then onStep's error, if any, is the answer.
          const broken = allFinite(model.params) ? null : overflowed(epoch, step);
          const failed = callbackError as { error: unknown } | null; // set inside stepDone
          if (failed !== null) throw failed.error;
          if (broken !== null) throw broken;
          if (bad !== null) {
            const { start, size } = stepBatch(B, N, step);
            const where = locateNonFinite(model, data, order, start, size);
            throw new NumericError(`non-finite ${bad} in epoch ${epoch}, step ${step + 1}${where}; training stopped and the weights are those from before this step (try a lower learning rate: lr, --lr; standardised inputs: --normalize standard; or gradient clipping: clipNorm, --clip-norm)`, epoch, step + 1);
          }
          if (opts.checkpointEvery !== undefined && globalStep % opts.checkpointEvery === 0 && step < steps) {
            await writeCheckpoint(epoch, step);
            saveGood(`the checkpoint of epoch ${epoch}, step ${step}`);
          }
          // Keep the event loop responsive when the steps run on this thread.
          if (threads <= 1 && performance.now() - lastYield > 1) {
            await yieldToEventLoop();
            lastYield = performance.now();
          }
        }
        // The epoch's onStep promises, settled (a rejection among them fails the fit here), unless
        // the signal comes first: the epoch's steps are done, so a resumed run validates it.
        while (stepPromises.size > 0 && !opts.signal?.aborted) await settledOrAborted([...stepPromises], opts.signal);
        if (opts.signal?.aborted) {
          await writeCheckpoint(epoch, steps);
          opts.signal.throwIfAborted();
        }
        // (The weights were checked after the epoch's last run of steps.)
        const late = callbackError as { error: unknown } | null;
        if (late !== null) throw late.error;
        const trainSeconds = (performance.now() - t0) / 1000;
        const stats1: EpochStats = { epoch, loss: lossSum / N, samplesPerSec: (N - Math.min(N, stepBegin * B)) / trainSeconds, seconds: 0, steps };
        if (units > 0) stats1.accuracy = correct / (N * units);
        // (An epoch resumed with no step left to take has nothing to profile.)
        if (run.phases !== null && steps > stepBegin) stats1.phases = stepPhases(run.phases, threads, steps - stepBegin, trainSeconds);
        if (validation !== undefined) {
          let m: Metrics;
          try {
            m = await this.evaluateShared(validation, Math.max(threads, 1), opts.signal);
          } catch (err) {
            // Aborted during validation: the epoch's steps are done; a resumed run validates it.
            if (opts.signal?.aborted) await writeCheckpoint(epoch, steps);
            if (err instanceof WorkerError) throw new WorkerError(`${err.message} (validating epoch ${epoch})`, epoch, steps, { cause: err.cause });
            throw err;
          }
          stats1.valLoss = m.loss;
          if (m.accuracy !== undefined) stats1.valAccuracy = m.accuracy;
        }
        stats1.seconds = (performance.now() - t0) / 1000;
        history.epochs.push(stats1);

        const monitored = monitorVal ? stats1.valLoss! : stats1.loss;
        let stop = false;
        if (monitored < best) {
          best = monitored;
          history.bestEpoch = epoch;
          sinceBest = 0;
          if (opts.patience !== undefined) bestParams = Float64Array.from(model.params);
        } else if (opts.patience !== undefined && ++sinceBest >= opts.patience) {
          history.stoppedEarly = epoch < opts.epochs;
          stop = true;
        }
        // The epoch is complete: the checkpoint points at the start of the next one.
        lossSum = 0;
        correct = 0;
        await writeCheckpoint(epoch + 1, 0);
        if (opts.onEpoch !== undefined) await awaitCallback(this.callback(() => opts.onEpoch!(stats1)), opts.signal);
        if (stop) break;
        await yieldToEventLoop();
      }
    } catch (err) {
      // Every way a fit stops leaves the weights and the optimizer state in step (a stopped or
      // non-finite step applies nothing) except a failed worker, which may have updated some rows.
      if (!(err instanceof WorkerError)) this.lastOptimizer = { settings: opts.optimizer, step: optState.step };
      throw err;
    } finally {
      over = true;
    }
    this.lastOptimizer = { settings: opts.optimizer, step: optState.step };
    if (opts.patience !== undefined && bestParams !== null) model.params.set(bestParams);
    else history.bestEpoch = history.epochs.length;
    return history;
  }
}

/** Waits for what a callback returned when it is a promise, unless the signal aborts first: a
 *  callback that never settles must not hold the fit, nor close(), forever. Its rejection is
 *  the fit's error; after an abort it is the abort's. */
async function awaitCallback(result: unknown, signal: AbortSignal | undefined): Promise<void> {
  if (!isThenable(result)) return;
  const p = Promise.resolve(result);
  await settledOrAborted([p], signal); // settledOrAborted handles a rejection, awaited or not
  signal?.throwIfAborted();
  await p;
}

/** Resolves when every promise has settled or the signal aborts, whichever comes first. */
function settledOrAborted(promises: PromiseLike<unknown>[], signal: AbortSignal | undefined): Promise<unknown> {
  const all = Promise.allSettled(promises); // also marks every rejection handled
  if (signal === undefined) return all;
  // Aborted already (a callback that aborted, or closed the trainer, before returning its
  // promise): its 'abort' event is past, and no listener would ever hear it.
  if (signal.aborted) return Promise.resolve();
  let onAbort = (): void => {};
  const aborted = new Promise<void>((resolve) => {
    onAbort = resolve;
    signal.addEventListener('abort', onAbort, { once: true });
  });
  return Promise.race([all, aborted]).finally(() => signal.removeEventListener('abort', onAbort));
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return typeof (v as PromiseLike<unknown> | null)?.then === 'function';
}

/** Finds the first sample of a minibatch whose loss or gradient is not finite, for the message. */
function locateNonFinite(model: Model, data: Dataset, order: Int32Array, start: number, size: number): string {
  const { inputDim: n0, targetDim: m } = data;
  for (let s = 0; s < size; s++) {
    const r = order[start + s];
    // Data changed after it was checked (see dataset.ts checkFinite) can hold a NaN: say so.
    const bad = nonFiniteError(data, r);
    if (bad !== null) throw bad;
    const one: Dataset = { size: 1, inputDim: n0, targetDim: m, x: data.x.subarray(r * n0, (r + 1) * n0), y: data.y.subarray(r * m, (r + 1) * m) };
    const { loss, grad } = computeGradient(model, one);
    if (Number.isFinite(loss) && allFinite(grad)) continue;
    const line = data.lines?.[r];
    if (line === undefined) return ` (first at sample ${r})`;
    return data.source !== undefined ? ` (first at the sample from ${data.source}:${line})` : ` (first at the sample from line ${line})`;
  }
  return ' (every sample of the batch alone has a finite loss and gradient: their sum overflowed)';
}

/** Scales the batch-mean gradient (gradSum / batch) down to an L2 norm of at most maxNorm, as
 *  torch.nn.utils.clip_grad_norm_ does: by maxNorm / (norm + 1e-6) when that is below 1 (the
 *  1e-6 guards a zero norm; results checked against PyTorch need it, to about 1e-7). */
export function clipGradient(gradSum: Float64Array, batch: number, maxNorm: number): void {
  // The norm of the mean, as torch computes it (the sum's squares overflowed `batch` times
  // sooner, and the step was then zeroed).
  let sq = 0;
  for (let i = 0; i < gradSum.length; i++) {
    const g = gradSum[i] / batch;
    sq += g * g;
  }
  const norm = Math.sqrt(sq);
  const scale = maxNorm / (norm + CLIP_EPS);
  if (scale < 1) for (let i = 0; i < gradSum.length; i++) gradSum[i] *= scale;
}
const CLIP_EPS = 1e-6;

/** The profile of an epoch's `n` steps from its thread-milliseconds per phase (StepRun.phases). */
function stepPhases(totals: readonly number[], threads: number, n: number, trainSeconds: number): StepPhases {
  const per = (p: number): number => totals[p] / (threads * n);
  return {
    threads,
    stepMs: (trainSeconds * 1000) / n,
    deltas: per(PHASE_DELTAS),
    gradients: per(PHASE_GRADIENTS),
    update: per(PHASE_UPDATE),
    waiting: per(PHASE_WAITING),
  };
}

/** What runSteps needs of a fit. */
interface StepRun {
  readonly ctx: Context;
  readonly buffers: SharedBuffers;
  readonly contextId: string;
  readonly batchSize: number;
  /** Samples in the epoch. */
  readonly samples: number;
  readonly threads: number;
  readonly opts: ResolvedFitOptions;
  readonly optState: OptimizerState;
  /** With opts.profile: the epoch's thread-milliseconds so far per phase (PHASE_*), summed over
   *  threads; null otherwise. */
  readonly phases: number[] | null;
}

/** How long, at least, a worker in a run of steps waits at a barrier for the others before leaving
 *  the rest to the coordinator (plus twice the step's time so far; see engine.ts). A worker that
 *  fails calls the run off at once; this only bounds a stall. */
const BARRIER_TIMEOUT_MS = 1000;

/** Chunk size of evaluation passes (no gradients, so no δ blocks; only stats). */
const EVAL_CHUNK = 64;
/** Arithmetic per thread per step below which another thread does not pay (see threadsFor). */
const MIN_FLOPS_PER_THREAD = 2e6;

/** How a model's predictions are counted right (countCorrect): a model of class labels (target
 *  kind 'classes' or 'binary', as `bptrain train` writes for labels) by decodeOutput's rule, the
 *  rule of `bptrain evaluate`, whatever its output activation (linear and tanh outputs trained
 *  on one-hot or 0/1 targets classify too; and per output, 9 of 10 one-hot sigmoid outputs are
 *  right for a model that always answers 0); any other model by its output activation. */
function accuracyRule(model: Model): Accuracy {
  const kind = model.target?.kind;
  if (kind === 'classes') return Accuracy.Argmax;
  if (kind === 'binary') return Accuracy.FirstOutput;
  return outputAccuracy(model.layout.act[model.layout.depth - 1]);
}

/** Values the accuracy is counted over per sample under `rule`: m per output, 1 per sample, 0 for none. */
function accuracyUnits(rule: Accuracy, outputs: number): number {
  return rule === Accuracy.None ? 0 : rule === Accuracy.PerOutput ? outputs : 1;
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

const positiveInt = (name: string, v: unknown, max = 1e9): number => {
  if (!(typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= max)) throw new OptionError(name, v, `an integer from 1 to ${max}`);
  return v;
};
const number = (name: string, v: unknown, lo: number, hi: number, loOpen = false, hiOpen = false): number => {
  const ok = typeof v === 'number' && Number.isFinite(v) && (loOpen ? v > lo : v >= lo) && (hiOpen ? v < hi : v <= hi);
  if (!ok) throw new OptionError(name, v, `a number in ${loOpen ? '(' : '['}${lo}, ${hi}${hiOpen || hi === Infinity ? ')' : ']'}`);
  return v as number;
};

/** An on/off option: `fallback` when left out. */
const flag = (name: string, v: unknown, fallback: boolean): boolean => {
  if (v === undefined) return fallback;
  if (typeof v !== 'boolean') throw new OptionError(name, v, 'a boolean');
  return v;
};

const nonEmpty = (name: string, v: unknown): string => {
  if (typeof v !== 'string' || v === '') throw new OptionError(name, v, 'a file name');
  return v;
};

/** A file an option names for writing: checked now, so that a path that cannot be written is
 *  refused before training rather than found after its first epoch. */
const writableFile = (name: string, v: unknown): string => {
  const file = nonEmpty(name, v);
  const why = unwritableReason(file);
  if (why !== undefined) throw new OptionError(name, file, `a file that can be written (${why})`);
  return file;
};

/** Most threads a Trainer takes (the CLI checks --threads against the same). */
export const MAX_THREADS = ROUND_CHUNKS;
/** Largest `epochs` and `batchSize` fit accepts (the CLI checks its flags against the same). */
export const MAX_EPOCHS = 1e7;
export const MAX_BATCH = 1 << 20;

/** Checks every option and fills in the defaults; throws OptionError naming the option. */
export function resolveFitOptions(o: FitOptions): ResolvedFitOptions {
  checkOptionKeys(o, FIT_OPTION_KEYS, 'fit options');
  const kind = o.optimizer ?? 'sgd';
  if (kind !== 'sgd' && kind !== 'adam') throw new OptionError('optimizer', kind, "'sgd' or 'adam'");
  const lr = number('lr', o.lr ?? (kind === 'sgd' ? 0.01 : 0.001), 0, Infinity, true);
  const weightDecay = number('weightDecay', o.weightDecay ?? 0, 0, Infinity);
  let optimizer: OptimizerOptions;
  if (kind === 'sgd') {
    if (o.beta1 !== undefined || o.beta2 !== undefined || o.eps !== undefined)
      throw new OptionError('optimizer', kind, "'adam' when beta1, beta2 or eps is given");
    const nesterov = flag('nesterov', o.nesterov, false);
    const momentum = number('momentum', o.momentum ?? 0, 0, 1, false, true);
    if (nesterov && momentum === 0) throw new OptionError('momentum', momentum, 'greater than 0 when nesterov is true');
    optimizer = { kind, lr, momentum, nesterov, weightDecay };
  } else {
    if (o.momentum !== undefined || o.nesterov !== undefined)
      throw new OptionError('optimizer', kind, "'sgd' when momentum or nesterov is given (Adam has beta1/beta2)");
    optimizer = {
      kind, lr, weightDecay,
      beta1: number('beta1', o.beta1 ?? 0.9, 0, 1, false, true),
      beta2: number('beta2', o.beta2 ?? 0.999, 0, 1, false, true),
      eps: number('eps', o.eps ?? 1e-8, 0, Infinity, true),
    };
  }
  const shuffle = flag('shuffle', o.shuffle, true);
  const seed = o.seed ?? 1;
  if (!Number.isSafeInteger(seed)) throw new OptionError('seed', seed, 'an integer');
  signalOption(o.signal);
  const keepOptimizer = flag('keepOptimizer', o.keepOptimizer, false);
  if (keepOptimizer && o.resume !== undefined) throw new OptionError('keepOptimizer', keepOptimizer, 'false with resume (the checkpoint holds the optimizer state)');
  const profile = flag('profile', o.profile, false);
  for (const name of ['onEpoch', 'onStep', 'onCheckpoint'] as const)
    if (o[name] !== undefined && typeof o[name] !== 'function') throw new OptionError(name, o[name], 'a function');
  if (o.validation !== undefined && (typeof o.validation !== 'object' || o.validation === null))
    throw new OptionError('validation', o.validation, 'a Dataset (makeDataset, or { size, inputDim, targetDim, x, y })');
  return {
    epochs: positiveInt('epochs', o.epochs ?? 10, MAX_EPOCHS),
    batchSize: positiveInt('batchSize', o.batchSize ?? 32, MAX_BATCH),
    optimizer,
    shuffle,
    seed,
    validation: o.validation,
    patience: o.patience === undefined ? undefined : positiveInt('patience', o.patience, MAX_EPOCHS),
    signal: o.signal,
    onEpoch: o.onEpoch,
    onStep: o.onStep,
    onCheckpoint: o.onCheckpoint,
    checkpoint: o.checkpoint === undefined ? undefined : writableFile('checkpoint', o.checkpoint),
    checkpointEvery: o.checkpointEvery === undefined ? undefined : positiveInt('checkpointEvery', o.checkpointEvery, 1e9),
    resume: o.resume === undefined ? undefined : typeof o.resume === 'string' ? nonEmpty('resume', o.resume) : o.resume,
    clipNorm: o.clipNorm === undefined ? undefined : number('clipNorm', o.clipNorm, 0, Infinity, true),
    keepOptimizer,
    profile,
  };
}
