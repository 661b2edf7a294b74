// What the CLI's subcommands do, on top of the library. Each takes resolved, validated options
// (parsed by cli.ts) and returns normally or throws; cli.ts maps errors to messages and exit codes.
// Nothing here reads process.argv or calls process.exit.

import { createWriteStream, promises as fsp, realpathSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { once } from 'node:events';
import { pipeline } from 'node:stream/promises';
import { createGzip, type Gzip } from 'node:zlib';
import {
  Model, computeNormalization, createModel, loadModel, saveModel,
  type InputFields, type ModelOptions, type TargetInfo,
} from './model.js';
import { MAX_THREADS, Trainer, type EpochStats, type FitOptions, type StepPhases } from './trainer.js';
import { splitDataset, type Dataset } from './dataset.js';
import { loadDataset, decodeOutput, encodeTarget, type TargetEncoding } from './targets.js';
import { isGzipName, readRecords, type ReaderOptions } from './ndjson-reader.js';
import { DataError, OptionError } from './errors.js';
import { CheckpointError } from './checkpoint.js';
import { Rng } from './rng.js';
import { makeProgress } from './progress.js';
import { StdoutError, releaseTempPath, replaceWithTemp, tempPathFor, unwritable, writeError, writeTarget } from './fsutil.js';
import type { HiddenActivation, Loss, OutputActivation } from './layout.js';

/** A bad flag, or flags that do not go together: reported with exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** The signals that stop a command (cli.ts), and the exit status a shell reports for each. */
export const STOP_SIGNALS = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
export type StopSignal = keyof typeof STOP_SIGNALS;

/** The reason an interrupted command was aborted with (cli.ts wires the STOP_SIGNALS to it).
 *  `outcome` says what the interruption left behind, for the message. */
export class Interrupted extends Error {
  outcome = 'nothing was written';
  /** When the signal came (Date.now()): a file written since was written in answer to it. */
  readonly at = Date.now();
  constructor(readonly signalName: StopSignal) {
    super(`interrupted by ${signalName}`);
    this.name = 'AbortError';
  }
  get exitCode(): number {
    return STOP_SIGNALS[this.signalName];
  }
}

/**
 * Checks, before any work, the files a command will write (flag → file) against each other and
 * against the files it reads: a run that can only fail to write its result at the end would throw
 * its work away, and an output that is also an input would destroy the input. '-' (stdin) and
 * undefined are skipped.
 */
export function checkFiles(outputs: Record<string, string | undefined>, inputs: Record<string, string | undefined>, sameAllowed: [string, string][] = []): void {
  const real = (f: string): string => {
    try {
      return realpathSync(f);
    } catch {
      return path.resolve(f);
    }
  };
  const outs = Object.entries(outputs).filter((e): e is [string, string] => e[1] !== undefined && e[1] !== '-');
  const ins = Object.entries(inputs).filter((e): e is [string, string] => e[1] !== undefined && e[1] !== '-');
  const allowed = (a: string, b: string): boolean => a === b || sameAllowed.some(([x, y]) => (x === a && y === b) || (x === b && y === a));
  outs.forEach(([flag, file], i) => {
    // A device or FIFO (/dev/null, /dev/stdout) is written in place; anything else through a
    // temporary file beside its real path (unwritable checks its directory). A name ending in
    // '/' never gets here: cli.ts's outPath refuses it as a usage error.
    if (writeTarget(file).atomic) {
      for (const [other, f] of [...ins, ...outs.slice(0, i)]) {
        if (real(file) === real(f) && !allowed(flag, other))
          throw new UsageError(`${flag} ${file} is also ${other}: writing it would ${ins.some(([g]) => g === other) ? 'destroy the input' : 'mix two outputs in one file'}; give another file`);
      }
    }
    const why = unwritable(file);
    if (why !== undefined) throw new DataError(why.aboutFile ? `${flag} ${file} ${why.reason}` : `${flag} ${file}: ${why.reason}`);
  });
}

/** createModel, with the library's option names turned into the flags that gave them (a bad
 *  combination of flags is a usage error, exit 2). */
function createModelFromFlags(options: ModelOptions, layersFlag: string): Model {
  try {
    return createModel(options);
  } catch (err) {
    if (!(err instanceof OptionError)) throw err;
    // An output the user did not give was derived from --loss: say so, not just "received softmax".
    if (err.option === 'output' && options.output === undefined && options.loss !== undefined)
      throw new UsageError(`--loss ${options.loss} implies a ${String(err.received)} output, but ${err.message.split(';')[0].replace(/^output/, 'the output')}`);
    const flag = err.option.startsWith('layers') ? layersFlag : `--${err.option}`;
    throw new UsageError(err.message.replace(err.option, flag));
  }
}

/** Where the CLI writes: injectable so tests of handlers need no process. */
export interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WriteStream;
  stdin: NodeJS.ReadableStream;
  /** Aborted on SIGINT/SIGTERM (wired by cli.ts); training stops at the next step boundary. */
  signal?: AbortSignal;
}

export interface InitArgs {
  layers: number[];
  hidden: HiddenActivation;
  output?: OutputActivation;
  loss?: Loss;
  seed: number;
  out: string;
  quiet: boolean;
}

export async function initCommand(a: InitArgs, io: Io): Promise<void> {
  checkFiles({ '--out': a.out }, {});
  const model = createModelFromFlags({ layers: a.layers, hidden: a.hidden, output: a.output, loss: a.loss, seed: a.seed }, '--layers');
  await saveModel(model, a.out);
  if (!a.quiet) io.stderr.write(`wrote ${a.out}: ${describeNet(model)}, seed ${a.seed}\n`);
}

export interface TrainArgs {
  data: string;
  fields: InputFields;
  layers?: number[];
  hiddenLayers?: number[];
  hidden: HiddenActivation;
  output?: OutputActivation;
  loss?: Loss;
  optimizer: 'sgd' | 'adam';
  lr?: number;
  momentum?: number;
  batch: number;
  epochs: number;
  threads: number | 'auto';
  seed: number;
  shuffle: boolean;
  init?: string;
  out?: string;
  validationSplit?: number;
  validation?: string;
  patience?: number;
  metrics?: string;
  normalize?: 'standard';
  checkpoint?: string;
  checkpointEvery?: number;
  resume?: string;
  clipNorm?: number;
  profile: boolean;
  json: boolean;
  quiet: boolean;
}

export async function trainCommand(a: TrainArgs, io: Io): Promise<void> {
  // Everything that can fail on bad input is checked before any output file is touched.
  checkFiles(
    // Without --checkpoint, a resumed run goes on writing the file it resumed from.
    { '--out': a.out, '--metrics': a.metrics, [a.checkpoint !== undefined ? '--checkpoint' : '--resume']: a.checkpoint ?? a.resume },
    { '--data': a.data, '--validation': a.validation, '--init': a.init, '--resume': a.resume },
    // --init is read whole before training and --out written atomically after: a model may be
    // trained further in place.
    [['--checkpoint', '--resume'], ['--out', '--init']],
  );
  if (a.data === '-' && a.validation === '-') throw new UsageError('--data and --validation cannot both be - (stdin)');
  const start = a.init !== undefined ? await loadModel(a.init) : undefined;
  // Whether it was trained: `train` stores the targets' encoding, `init` none (set below for this run).
  const startTrained = start?.target !== undefined;
  const outputsHint = start?.outputs ?? a.layers?.at(-1);
  const inputsHint = start?.inputs ?? a.layers?.[0];
  const fields = start !== undefined ? modelFields(start, a.fields) : a.fields;
  // A linear output (given, or implied by --loss mse) means numeric targets are values to fit,
  // also when they are all whole numbers (counts) or 0/1; a sigmoid or softmax output with mse
  // still classifies.
  const outAct = start?.activations.at(-1) ?? a.output ?? (a.loss === 'mse' ? 'linear' : undefined);
  const regression = start?.target === undefined && outAct === 'linear';
  const progress = makeProgress(io.stderr, a.quiet || a.json);
  const reading = (file: string) => (records: number) => progress.reading(file, records);
  let loaded;
  try {
    loaded = await loadDataset(a.data, { ...readerOptions(fields), encoding: start?.target, outputsHint, inputsHint, regression, signal: io.signal, onProgress: reading(a.data) });
  } finally {
    progress.done(); // clears the reading line, also before an error message
  }
  let train = loaded.dataset;
  const target: TargetInfo = loaded.encoding;

  let model: Model;
  if (start !== undefined) {
    model = start;
    if (target.outputs !== model.outputs)
      throw new DataError(`targets need ${target.outputs} outputs, but the model from --init has ${model.outputs}`, a.data);
  } else {
    // --layers reached the reader as inputsHint/outputsHint: a data file that does not fit them
    // has already failed there, at its first line that does not.
    const layers = a.layers ?? [train.inputDim, ...(a.hiddenLayers ?? []), target.outputs];
    const defaults = target.kind === 'classes' ? { output: 'softmax', loss: 'cross-entropy' } as const
      : target.kind === 'binary' ? { output: 'sigmoid', loss: 'binary-cross-entropy' } as const
      : { output: 'linear', loss: 'mse' } as const;
    const options: ModelOptions = { layers, hidden: a.hidden, output: a.output ?? (a.loss === undefined ? defaults.output : undefined), loss: a.loss ?? (a.output === undefined ? defaults.loss : undefined), seed: a.seed };
    model = createModelFromFlags(options, a.layers !== undefined ? '--layers' : '--hidden-layers');
  }
  model.target = target;
  model.inputFields = fields;

  let validation: Dataset | undefined;
  if (a.validation !== undefined) {
    try {
      validation = (await loadDataset(a.validation, { ...readerOptions(fields), encoding: target, inputsHint: model.inputs, signal: io.signal, onProgress: reading(a.validation) })).dataset;
    } finally {
      progress.done();
    }
  } else if (a.validationSplit !== undefined) {
    const order = Int32Array.from({ length: train.size }, (_, i) => i);
    new Rng(a.seed).shuffle(order);
    ({ train, validation } = splitDataset(train, a.validationSplit, order));
  }
  if (a.normalize === 'standard') {
    // The weights of a model that has a normalisation were trained on inputs scaled by it: scaled
    // by another mean and std, they would see other inputs. The same command run again in place
    // (--init m.json --out m.json, or its --resume) computes the same from the same data: fine.
    // A model trained without one learnt from raw inputs: standardised ones would be other
    // inputs to it as well. Trained is told by the targets' encoding, which `train` stores and
    // `init` does not; a model the library trained and saved without model.target looks untrained.
    if (start?.normalization === undefined && startTrained)
      throw new UsageError(`--normalize ${a.normalize}: the model from --init ${a.init} was trained on inputs without normalisation, so its weights expect them raw; drop --normalize, or start from a model made with init`);
    const computed = computeNormalization(train.x, train.size, train.inputDim);
    if (start?.normalization === undefined) model.normalization = computed;
    else if (JSON.stringify(start.normalization) !== JSON.stringify(computed))
      throw new UsageError(`--normalize ${a.normalize}: the model from --init ${a.init} has its own input normalisation, and this data's differs (its weights were trained on inputs scaled by its own, which is kept); drop --normalize${a.validationSplit !== undefined ? ' (with --validation-split, the training part, and so its normalisation, depends on --seed and the fraction)' : ''}`);
  }

  const metrics = a.metrics !== undefined ? new MetricsLog(a.metrics, a.resume !== undefined) : null;
  const trainer = new Trainer(model, { threads: a.threads });
  const used = trainer.threadsFor(Math.min(a.batch, train.size));
  const cores = os.availableParallelism();
  if (!a.quiet && used > cores)
    io.stderr.write(`warning: --threads ${a.threads} is more than this machine's ${cores} cores; the threads meet at barriers three times a step, so training will be slower than with ${cores}\n`);
  const fit: FitOptions = {
    epochs: a.epochs, batchSize: a.batch, optimizer: a.optimizer, lr: a.lr, seed: a.seed, shuffle: a.shuffle,
    validation, patience: a.patience, signal: io.signal,
    // A resumed run keeps checkpointing to the file it resumed from unless told otherwise.
    checkpoint: a.checkpoint ?? a.resume, checkpointEvery: a.checkpointEvery, resume: a.resume, clipNorm: a.clipNorm, profile: a.profile,
    ...(a.optimizer === 'sgd' && a.momentum !== undefined ? { momentum: a.momentum } : {}),
    onStep: (p) => progress.step(p),
    onCheckpoint: () => void (lastCheckpoint = Date.now()),
    onEpoch: async (e) => {
      firstEpoch ??= e.epoch;
      progress.epoch(e, a.epochs);
      await metrics?.write(JSON.stringify(metricsRecord(e)) + '\n');
    },
  };
  const t0 = performance.now();
  /** The first epoch that ended in this process: after --resume, the epochs before it were the
   *  checkpoint's, and took none of `seconds`. */
  let firstEpoch: number | undefined;
  let history;
  let lastCheckpoint = -Infinity; // Date.now() of the last checkpoint this run wrote
  try {
    history = await trainer.fit(train, fit);
  } catch (err) {
    // fit writes the checkpoint before it rejects with the interruption.
    if (err instanceof Interrupted) err.outcome = interruptedTraining(err, a, lastCheckpoint >= err.at);
    if (err instanceof CheckpointError) throw resumeErrorInFlags(err);
    throw err;
  } finally {
    progress.done();
    try {
      await trainer.close();
    } finally {
      await metrics?.close();
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  if (a.out !== undefined) await saveModel(model, a.out);
  const last = history.epochs[history.bestEpoch - 1] ?? history.epochs.at(-1)!;
  // Training throughput over the whole run: samples seen ÷ seconds spent in training steps.
  // (An epoch resumed with no step left to take, its validation only, trained nothing: left out.)
  const trained = history.epochs.filter((e) => e.samplesPerSec > 0);
  const trainSeconds = trained.reduce((s, e) => s + train.size / e.samplesPerSec, 0);
  const samples = trained.length > 0 ? (train.size * trained.length) / trainSeconds : 0;
  const profiled = [...history.epochs].reverse().find((e) => e.phases !== undefined)?.phases;
  const summary = {
    epochs: history.epochs.length,
    best_epoch: history.bestEpoch,
    stopped_early: history.stoppedEarly,
    loss: last.loss,
    ...(last.accuracy !== undefined ? { accuracy: last.accuracy } : {}),
    ...(last.valLoss !== undefined ? { val_loss: last.valLoss } : {}),
    ...(last.valAccuracy !== undefined ? { val_accuracy: last.valAccuracy } : {}),
    samples_per_s: samples,
    seconds,
    threads: trainer.threadsFor(Math.min(a.batch, train.size)),
    parameters: model.parameterCount,
    ...(a.out !== undefined ? { out: a.out } : {}),
    // --profile: the last epoch that has a profile (the first epoch's includes start-up).
    ...(profiled !== undefined ? { profile: phaseFields(profiled) } : {}),
  };
  if (a.json) {
    io.stdout.write(JSON.stringify(summary) + '\n');
  } else if (!a.quiet) {
    const speed = `(${Math.round(samples).toLocaleString('en-US')} samples/s, ${summary.threads} thread${summary.threads > 1 ? 's' : ''})`;
    const session = a.resume === undefined ? ''
      : firstEpoch === undefined ? ` (none left to run after the checkpoint ${a.resume})`
      : ` (${firstEpoch === summary.epochs ? `epoch ${firstEpoch}` : `epochs ${firstEpoch}-${summary.epochs}`} in this run, resumed from ${a.resume})`;
    const parts = [`trained ${describeNet(model)} for ${summary.epochs} epoch${summary.epochs === 1 ? '' : 's'}${session} in ${seconds.toFixed(2)}s ${speed}`];
    parts.push(`final loss ${last.loss.toFixed(4)}${last.accuracy !== undefined ? `, accuracy ${(100 * last.accuracy).toFixed(2)}%` : ''}`);
    if (last.valLoss !== undefined) parts.push(`validation loss ${last.valLoss.toFixed(4)}${last.valAccuracy !== undefined ? `, accuracy ${(100 * last.valAccuracy).toFixed(2)}%` : ''}`);
    if (history.stoppedEarly) parts.push(`stopped early; restored the weights of epoch ${history.bestEpoch}`);
    if (a.out !== undefined) parts.push(`wrote ${a.out}`);
    io.stdout.write(parts.join('\n') + '\n');
  }
}

/** The flag that sets each of fit's settings that a resume compares (checkpoint.ts's
 *  compareCheckpoint names them as the library does). The optimizer's own settings that no flag
 *  sets differ only with --optimizer, which is named instead. */
const RESUME_FLAGS: Record<string, string> = {
  layers: '--layers/--hidden-layers', activations: '--hidden/--output', loss: '--loss', batchSize: '--batch', epochs: '--epochs',
  shuffle: '--shuffle', seed: '--seed', optimizer: '--optimizer', lr: '--lr', momentum: '--momentum', patience: '--patience',
  validation: '--validation/--validation-split', clipNorm: '--clip-norm',
};
const OPTIMIZER_ONLY = ['momentum', 'nesterov', 'beta1', 'beta2', 'eps'];

/** fit's "cannot resume: this run differs from the checkpoint's — batchSize: checkpoint 4, now 8;
 *  …" with the flags named (--batch: checkpoint 4, now 8); any other CheckpointError as it is. */
function resumeErrorInFlags(err: CheckpointError): CheckpointError {
  const m = /^.*?(cannot resume: this run differs from the checkpoint's — )(.*)$/s.exec(err.message);
  if (m === null) return err;
  // One difference per "NAME: …"; the epochs one has a '; ' of its own.
  const diffs = m[2].split(/; (?=[A-Za-z0-9 ]+: )/).map((d) => /^([A-Za-z0-9 ]+): (.*)$/s.exec(d) ?? [d, d, '']);
  const optimizerDiffers = diffs.some(([, name]) => name === 'optimizer');
  const value = (v: string): string => (v === 'null' || v === 'undefined' ? 'none' : v === 'true' ? 'on' : v === 'false' ? 'off' : /^"[^"]*"$/.test(v) ? v.slice(1, -1) : v);
  const said = diffs
    .filter(([, name]) => !(optimizerDiffers && OPTIMIZER_ONLY.includes(name)))
    .map(([whole, name, rest]) => {
      if (RESUME_FLAGS[name] === undefined) return whole;
      const values = /^checkpoint (.*), now (.*)$/s.exec(rest);
      return `${RESUME_FLAGS[name]}: ${values !== null ? `checkpoint ${value(values[1])}, now ${value(values[2])}` : rest}`;
    });
  return Object.assign(new CheckpointError(`${m[1]}${said.join('; ')}`, err.file), { cause: err });
}

/** What an interrupted training left: the checkpoint fit wrote in answer to the signal (it says
 *  so through onCheckpoint), the one it resumed from (interrupted before writing one), or nothing. */
function interruptedTraining(err: Interrupted, a: TrainArgs, wroteAfterSignal: boolean): string {
  const metrics = a.metrics !== undefined ? `; --metrics ${a.metrics} has the finished epochs` : '';
  const out = (a.out !== undefined ? 'nothing was written to --out' : 'nothing was written') + metrics;
  const ckpt = a.checkpoint ?? a.resume;
  if (ckpt !== undefined && wroteAfterSignal) return `${out}; the checkpoint ${ckpt} is up to date: the same command with --resume ${ckpt} continues`;
  if (a.resume !== undefined) return `${out}; the checkpoint ${a.resume} is as it was: the same command with --resume ${a.resume} continues from there`;
  return out;
}

/**
 * --metrics: one whole line per epoch, written as it ends, so the file can be followed live. The
 * file is opened when the first epoch ends, so a run that fails its checks (or its first epoch)
 * leaves an existing file as it was; a fresh run then starts a regular file afresh, a resumed run
 * appends to the metrics of the run it continues, and a device, FIFO or /dev path
 * (`/dev/stdout`) is appended to, never truncated. One handle for the whole run: reopening a
 * FIFO per epoch would end its reader's input at the first close.
 */
class MetricsLog {
  private opening: Promise<fsp.FileHandle> | null = null;
  /** The last write, settled or not. */
  private last: Promise<unknown> = Promise.resolve();
  private busy = false;
  private closed = false;
  constructor(private readonly file: string, private readonly append: boolean) {}

  async write(line: string): Promise<void> {
    if (this.closed) return;
    this.opening ??= fsp.open(this.file, this.append || !writeTarget(this.file).atomic ? 'a' : 'w');
    this.busy = true;
    const w = this.opening.then((f) => (this.closed ? undefined : f.write(line)));
    this.last = w.catch(() => {});
    try {
      await w;
    } catch (err) {
      throw writeError(this.file, err);
    } finally {
      this.busy = false;
    }
  }

  /** Closes the file. One still opening, or with a write still pending (a FIFO nobody reads yet,
   *  or one whose reader stopped), is closed once that completes, without waiting for it here:
   *  a signal must be able to end the run. */
  async close(): Promise<void> {
    this.closed = true;
    const opening = this.opening;
    this.opening = null;
    if (opening === null) return;
    const closeIt = (): Promise<void> => opening.then((f) => f.close(), () => {});
    if (this.busy) void this.last.then(closeIt).catch(() => {});
    else await closeIt();
  }
}

function metricsRecord(e: EpochStats): Record<string, number | null> {
  return {
    epoch: e.epoch,
    loss: e.loss,
    val_loss: e.valLoss ?? null,
    accuracy: e.accuracy ?? null,
    val_accuracy: e.valAccuracy ?? null,
    samples_per_s: e.samplesPerSec,
    seconds: e.seconds,
    ...(e.phases !== undefined ? { threads: e.phases.threads, ...phaseFields(e.phases) } : {}),
  };
}

/** A step profile (train --profile) as --metrics and --json write it. */
function phaseFields(p: StepPhases): Record<string, number> {
  return { step_ms: p.stepMs, deltas_ms: p.deltas, gradients_ms: p.gradients, update_ms: p.update, waiting_ms: p.waiting };
}

export interface PredictArgs {
  model: string;
  data: string;
  out?: string;
  fields: InputFields;
  threads: number | 'auto';
}

/**
 * The blocks of a streamed file go to the trainer's threads one at a time and in order, while
 * the reader fills the next: `push` waits until the block before has been handled, then starts
 * this one; `finish` waits for the last; `settle`, on an error path, waits for the one in flight
 * whatever its outcome (the trainer cannot close while it runs).
 */
class InOrder {
  private pending: Promise<void> | null = null;

  async push(job: () => Promise<void>): Promise<void> {
    if (this.pending !== null) await this.pending;
    const p = job();
    p.catch(() => {}); // awaited by the next push or finish: a rejection while the reader is busy is not unhandled
    this.pending = p;
  }

  async finish(): Promise<void> {
    if (this.pending !== null) await this.pending;
  }

  async settle(): Promise<void> {
    await this.pending?.catch(() => {});
  }
}

/** Samples predict and evaluate read before handing them to the trainer's threads; they read the
 *  next block while the threads work on this one. Large enough that a pool round trip per round
 *  of chunks is noise, small enough to stay in the cache between the reader and the threads
 *  (4,096 lines of 784 inputs made one-thread predict 10-15% slower than 256-line batches; 1,024
 *  matched them) and to keep memory flat (2 × 1,024 × 784 inputs: 13 MB). */
const STREAM_BLOCK = 1024;

/** Streams predictions, one JSON line per input line, in constant memory. */
export async function predictCommand(a: PredictArgs, io: Io): Promise<void> {
  checkFiles({ '--out': a.out }, { '--model': a.model, '--data': a.data });
  const model = await loadModel(a.model);
  const fields = modelFields(model, a.fields);
  const target = a.out !== undefined ? writeTarget(a.out) : undefined;
  const tmp = target?.atomic === true ? tempPathFor(target.path) : undefined;
  const file = tmp !== undefined ? createWriteStream(tmp) : target !== undefined ? createWriteStream(target.path, { flags: 'a' }) : undefined;
  // --out NAME.gz is gzipped, as --data NAME.gz is gunzipped: bptrain reads back what it wrote.
  const gzip: Gzip | undefined = file !== undefined && isGzipName(a.out!) ? createGzip() : undefined;
  const piped = gzip !== undefined ? pipeline(gzip, file!) : undefined;
  // A failed write of the file (a full disk) destroys the gzip stream: a write after that neither
  // fails nor drains, so each write first checks, and a wait for 'drain' also ends on the failure.
  let pipeFailed: unknown;
  piped?.catch((e: unknown) => void (pipeFailed = e));
  const sink = gzip ?? file ?? io.stdout;
  const n0 = model.inputs, m = model.outputs;
  const outputActivation = model.activations.at(-1) as OutputActivation;
  // Two input blocks: the threads read one while the reader fills the other.
  const blocks = [new Float64Array(STREAM_BLOCK * n0), new Float64Array(STREAM_BLOCK * n0)];
  let filling = 0;
  let count = 0;
  let written = 0;
  const trainer = new Trainer(model, { threads: a.threads });
  // A live count on a terminal, when the predictions go to a file (not to stdout, /dev/tty, …).
  const progress = makeProgress(io.stderr, target?.atomic !== true);
  // Every worker thread's stdout is piped into ours, an 'error' listener apiece: with 10 threads
  // or more, waiting for 'drain' on it would pass Node's default of 10 and print a leak warning.
  if (sink === io.stdout && 'setMaxListeners' in sink) {
    const out = sink as NodeJS.WriteStream;
    out.setMaxListeners(Math.max(out.getMaxListeners(), MAX_THREADS + 10));
  }
  let read = 0;
  const blocksInOrder = new InOrder();
  const write = async (out: Float64Array) => {
    const n = out.length / m;
    let text = '';
    for (let i = 0; i < n; i++) text += JSON.stringify(predictionRecord(model.target, outputActivation, out.subarray(i * m, (i + 1) * m))) + '\n';
    if (pipeFailed !== undefined) throw pipeFailed;
    // A reader that stops reading must not keep a signal from ending the command.
    if (!sink.write(text)) {
      const drained = once(sink, 'drain', io.signal !== undefined ? { signal: io.signal } : {});
      await (piped !== undefined ? Promise.race([drained, piped]) : drained).catch((e: unknown) => {
        throw io.signal?.aborted ? io.signal.reason : e;
      });
    }
    written += n;
  };
  // The block just filled goes to the threads once the one before it is written, in order.
  const submit = async () => {
    const X = blocks[filling].subarray(0, count * n0);
    await blocksInOrder.push(() => trainer.predict(X, { signal: io.signal }).then(write));
    progress.reading(displayName(a.data), (read += count));
    filling = 1 - filling;
    count = 0;
  };
  try {
    for await (const r of readRecords(a.data, { ...readerOptions(fields), requireTarget: false, signal: io.signal })) {
      if (r.x.length !== n0) throw new DataError(`x has ${r.x.length} values, expected ${n0} (the model's input size)`, displayName(a.data), r.line);
      blocks[filling].set(r.x, count * n0);
      if (++count === STREAM_BLOCK) await submit();
    }
    if (count > 0) await submit();
    await blocksInOrder.finish();
    if (gzip !== undefined) {
      gzip.end();
      await piped;
    } else if (file !== undefined) {
      await new Promise<void>((resolve, reject) => file.end((err?: Error | null) => (err ? reject(err) : resolve())));
    }
    if (tmp !== undefined) await replaceWithTemp(target!.path, tmp);
  } catch (err) {
    await blocksInOrder.settle();
    gzip?.destroy();
    file?.destroy();
    if (tmp !== undefined) {
      await fsp.rm(tmp, { force: true }).catch(() => {}); // its directory may be gone: the write error says more
      releaseTempPath(tmp);
    }
    if (err instanceof Interrupted)
      err.outcome = a.out === undefined ? `the first ${written} predictions went to stdout`
        : target?.atomic === true ? `--out ${a.out} was left as it was` : `the first ${written} predictions went to ${a.out}`;
    // The reader of stdout went away (`bptrain predict … | head`): nobody wants the rest.
    const code = (err as NodeJS.ErrnoException)?.code;
    if (target === undefined && code === 'EPIPE') return;
    // A system error of the output (a full disk) names the file asked for, not the temporary one.
    if (typeof code === 'string' && (err as Error).message.startsWith(code)) throw target !== undefined ? writeError(a.out!, err) : new StdoutError(err);
    throw err;
  } finally {
    progress.done(); // clears the line, also before an error message
    await trainer.close();
  }
}

/** The fields a command reads with: the model's input fields, which the flags may repeat but not
 *  change (a model trained on fields a,b,c,d gets nonsense from d,c,b,a, without any error), and
 *  the target field as the flags say (targets are read only to compare, so any name will do). */
function modelFields(model: Model, given: InputFields): InputFields {
  const stored = model.inputFields;
  if (stored === undefined) return given; // a model from init or the library: nothing recorded
  const show = (v: readonly string[] | undefined): string => (v === undefined ? 'none (vector form)' : v.join(','));
  if (given.features !== undefined && !(stored.features !== undefined && stored.features.join('\0') === given.features.join('\0')))
    throw new UsageError(`--features ${given.features.join(',')} differs from the model's input fields (${show(stored.features)}): a model reads its inputs as it was trained to; drop --features`);
  if (given.xField !== undefined && (stored.features !== undefined || given.xField !== (stored.xField ?? 'x')))
    throw new UsageError(`--x-field ${given.xField} differs from the model's inputs (${stored.features !== undefined ? `record form: ${show(stored.features)}` : `vector form, field ${stored.xField ?? 'x'}`}): drop --x-field`);
  const merged = { ...stored, ...given };
  // The reader takes the target from `label ?? yField`: a --y-field given now names the target.
  if (given.yField !== undefined && given.label === undefined) delete merged.label;
  return merged;
}

/** A classifier's line: `probabilities` where the output activation makes them so (sigmoid,
 *  softmax); the raw `outputs` otherwise (a linear or tanh output can be negative, or above 1). */
function predictionRecord(target: TargetInfo | undefined, output: OutputActivation, out: Float64Array): Record<string, unknown> {
  const values = Array.from(out);
  if (target === undefined) return { prediction: values.length === 1 ? values[0] : values };
  const prediction = decodeOutput(target, out);
  if (target.kind === 'regression') return { prediction };
  if (output !== 'sigmoid' && output !== 'softmax') return { prediction, outputs: values };
  const probabilities = target.kind === 'binary' ? [1 - out[0], out[0]] : values;
  return { prediction, probabilities };
}

export interface EvaluateArgs {
  model: string;
  data: string;
  fields: InputFields;
  threads: number | 'auto';
  json: boolean;
}

/**
 * Loss, accuracy, precision/recall and confusion matrix (or mse/mae) of a model on labelled data.
 * A model that knows its targets (any model `train` wrote) is evaluated block by block as the
 * file streams, in constant memory, reading the next block while the threads work; a model that
 * does not (from `init` or the library) needs the whole file first, to infer the encoding.
 */
export async function evaluateCommand(a: EvaluateArgs, io: Io): Promise<void> {
  const model = await loadModel(a.model);
  const fields = modelFields(model, a.fields);
  const m = model.outputs;
  const trainer = new Trainer(model, { threads: a.threads });
  const progress = makeProgress(io.stderr, false); // a live count on a terminal
  let tally: Tally | undefined;
  const blocksInOrder = new InOrder();
  let read = 0;
  try {
    const run = (ds: Dataset, t: Tally) => trainer.evaluate(ds, { signal: io.signal, outputs: true }).then((r) => t.add(ds, r.outputs!, r.loss));
    if (model.target !== undefined) {
      const enc = model.target;
      if (enc.outputs !== m) throw new DataError(`the model's targets need ${enc.outputs} outputs, but it has ${m}`, displayName(a.data));
      const t = (tally = new Tally(enc, m));
      const n0 = model.inputs;
      const field = fields.label ?? fields.yField ?? 'y';
      // Two blocks: the threads evaluate one while the reader fills the other.
      const blocks = [0, 1].map(() => ({ x: new Float64Array(STREAM_BLOCK * n0), y: new Float64Array(STREAM_BLOCK * m), lines: new Int32Array(STREAM_BLOCK) }));
      let filling = 0, count = 0;
      const submit = async () => {
        const b = blocks[filling];
        // Lines and source: a target the trainer refuses is reported at its file:line.
        const ds: Dataset = {
          size: count, inputDim: n0, targetDim: m, x: b.x.subarray(0, count * n0), y: b.y.subarray(0, count * m),
          lines: b.lines.subarray(0, count), source: displayName(a.data),
        };
        await blocksInOrder.push(() => run(ds, t));
        progress.reading(displayName(a.data), (read += count));
        filling = 1 - filling;
        count = 0;
      };
      for await (const r of readRecords(a.data, { ...readerOptions(fields), signal: io.signal })) {
        if (r.x.length !== n0) throw new DataError(`x has ${r.x.length} values, expected ${n0} (the model's input size)`, displayName(a.data), r.line);
        blocks[filling].x.set(r.x, count * n0);
        blocks[filling].lines[count] = r.line;
        encodeTarget(enc, r.y!, blocks[filling].y, count * m, displayName(a.data), r.line, field);
        if (++count === STREAM_BLOCK) await submit();
      }
      if (count > 0) await submit();
    } else {
      const { dataset, encoding } = await loadDataset(a.data, {
        ...readerOptions(fields), outputsHint: m, inputsHint: model.inputs, signal: io.signal,
        onProgress: (records) => progress.reading(displayName(a.data), records),
      });
      if (encoding.outputs !== m)
        throw new DataError(`targets need ${encoding.outputs} outputs, but the model has ${m}`, displayName(a.data));
      const t = (tally = new Tally(encoding, m));
      await blocksInOrder.push(() => run(dataset, t));
    }
    await blocksInOrder.finish();
  } catch (err) {
    await blocksInOrder.settle();
    throw err;
  } finally {
    progress.done();
    await trainer.close();
  }
  const result = tally!.result();
  if (a.json) {
    io.stdout.write(JSON.stringify(result) + '\n');
    return;
  }
  io.stdout.write(formatEvaluation(result, tally!.kind) + '\n');
}

/** The running sums of an evaluation, block by block. */
class Tally {
  readonly kind: TargetEncoding['kind'];
  private samples = 0;
  private blocks = 0;
  /** Σ block mean × block size; with one block, that block's mean as it came. */
  private lossSum = 0;
  private firstLoss = 0;
  private se = 0;
  private ae = 0;
  private readonly classes: readonly (string | number)[];
  private readonly confusion: number[][];

  constructor(encoding: TargetEncoding, private readonly m: number) {
    this.kind = encoding.kind;
    const k = this.kind === 'binary' ? 2 : m;
    this.classes = encoding.classes ?? Array.from({ length: k }, (_, i) => i);
    this.confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  }

  /** A block's outputs and mean loss. */
  add(ds: Dataset, out: Float64Array, meanLoss: number): void {
    const { m, kind } = this;
    this.samples += ds.size;
    if (this.blocks++ === 0) this.firstLoss = meanLoss;
    this.lossSum += meanLoss * ds.size;
    if (kind === 'regression') {
      for (let i = 0; i < ds.size * m; i++) {
        const e = out[i] - ds.y[i];
        this.se += e * e;
        this.ae += Math.abs(e);
      }
      return;
    }
    for (let i = 0; i < ds.size; i++) {
      const row = out.subarray(i * m, (i + 1) * m);
      const yRow = ds.y.subarray(i * m, (i + 1) * m);
      const pred = kind === 'binary' ? (row[0] >= 0.5 ? 1 : 0) : argmax(row);
      const truth = kind === 'binary' ? (yRow[0] >= 0.5 ? 1 : 0) : argmax(yRow);
      this.confusion[truth][pred]++;
    }
  }

  result(): Record<string, unknown> {
    const n = this.samples;
    // One block (a file of up to 1,024 lines): exactly trainer.evaluate's loss, which
    // mean × n / n need not round back to.
    const result: Record<string, unknown> = { loss: this.blocks === 1 ? this.firstLoss : this.lossSum / n, samples: n };
    if (this.kind === 'regression') return { ...result, mse: this.se / (n * this.m), mae: this.ae / (n * this.m) };
    const { classes, confusion } = this;
    const precision = classes.map((_, c) => ratio(confusion[c][c], confusion.reduce((s, r) => s + r[c], 0)));
    const recall = classes.map((_, c) => ratio(confusion[c][c], confusion[c].reduce((s, v) => s + v, 0)));
    result.accuracy = confusion.reduce((s, r, c) => s + r[c], 0) / n;
    return Object.assign(result, { classes, precision, recall, confusion });
  }
}

/** Beyond this many classes the evaluation table leaves the confusion matrix out. */
const MAX_PRINTED_CLASSES = 30;

function formatEvaluation(r: Record<string, unknown>, kind: string): string {
  const lines = [`samples   ${r.samples}`, `loss      ${(r.loss as number).toFixed(6)}`];
  if (kind === 'regression') {
    lines.push(`mse       ${(r.mse as number).toFixed(6)}`, `mae       ${(r.mae as number).toFixed(6)}`);
    return lines.join('\n');
  }
  lines.push(`accuracy  ${(100 * (r.accuracy as number)).toFixed(2)}%`, '');
  // A label with control characters (a newline, an escape sequence) is shown JSON-quoted: raw, it
  // would break the table or drive the terminal.
  const classes = (r.classes as (string | number)[]).map((c) => (/[\u0000-\u001f\u007f-\u009f]/.test(String(c)) ? JSON.stringify(c) : String(c)));
  const precision = r.precision as (number | null)[], recall = r.recall as (number | null)[];
  const confusion = r.confusion as number[][];
  const longest = (xs: readonly string[], least: number): number => xs.reduce((m, x) => Math.max(m, x.length), least); // no spread: thousands of classes
  const w = longest(classes, 5);
  const cell = (s: string, width = 9) => s.padStart(width);
  const pcts = (v: number | null) => (v === null ? '-' : `${(100 * v).toFixed(1)}%`);
  lines.push(`${'class'.padEnd(w)} ${cell('precision', 10)} ${cell('recall')}`);
  classes.forEach((c, i) => lines.push(`${c.padEnd(w)} ${cell(pcts(precision[i]), 10)} ${cell(pcts(recall[i]))}`));
  if (classes.length > MAX_PRINTED_CLASSES) {
    lines.push('', `confusion matrix: ${classes.length} classes, too wide to print (--json has it)`);
    return lines.join('\n');
  }
  lines.push('', `confusion matrix (rows: true class, columns: predicted)`);
  const cw = Math.max(longest(classes, 5), longest(confusion.flat().map(String), 5)) + 1;
  lines.push(`${''.padEnd(w)} ${classes.map((c) => c.padStart(cw)).join('')}`);
  classes.forEach((c, i) => lines.push(`${c.padEnd(w)} ${confusion[i].map((v) => String(v).padStart(cw)).join('')}`));
  return lines.join('\n');
}

const ratio = (a: number, b: number): number | null => (b === 0 ? null : a / b);

function argmax(a: ArrayLike<number>): number {
  let best = 0;
  for (let j = 1; j < a.length; j++) if (a[j] > a[best]) best = j;
  return best;
}

function readerOptions(f: InputFields): ReaderOptions {
  return { xField: f.xField, yField: f.yField, features: f.features, label: f.label };
}

function displayName(file: string): string {
  return file === '-' ? '<stdin>' : file;
}


export function describeNet(model: Model): string {
  const acts = model.activations;
  const hidden = acts.length > 1 ? `${acts[0]} hidden, ` : '';
  return `${model.sizes.join('-')} (${hidden}${acts.at(-1)} output, ${model.loss}, ${model.parameterCount} parameters)`;
}
