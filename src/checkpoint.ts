// Checkpoints: everything needed to continue a fit bit-exactly after a crash, a kill or Ctrl-C.
//
// A checkpoint is taken between two steps. It holds the weights, the optimizer state, the RNG state
// (as it is after the current epoch's shuffle), the epoch and the step within it, the epoch's
// sample order, the running sums of the epoch's metrics, the history so far, the early-stopping
// state, the hyper-parameters and a hash of the training data. Float arrays are stored as base64 of
// their bytes (little-endian), so they come back bit-exact, -0 and all. Written atomically.

import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import type { Dataset } from './dataset.js';
import type { NetSpec } from './layout.js';
import type { OptimizerOptions } from './optim.js';
import type { RngState } from './rng.js';
import type { EpochStats } from './trainer.js';
import { writeFailure, writeFileAtomic } from './fsutil.js';

export const CHECKPOINT_FORMAT = 'bptrain-checkpoint';
export const CHECKPOINT_VERSION = 1;
const MAX_CHECKPOINT_BYTES = 4 * 2 ** 30;

/** Thrown when a checkpoint cannot be read, or does not belong to this run. */
export class CheckpointError extends Error {
  readonly code = 'BPTRAIN_CHECKPOINT';
  /** `options.cause`: the file system's error when the checkpoint could not be read or written. */
  constructor(message: string, readonly file?: string, options?: ErrorOptions) {
    super(file !== undefined ? `${file}: ${message}` : message, options);
    this.name = 'CheckpointError';
  }
}

/** The hyper-parameters a resumed run must share with the run that wrote the checkpoint. */
export interface RunSettings {
  epochs: number;
  batchSize: number;
  shuffle: boolean;
  seed: number;
  optimizer: OptimizerOptions;
  patience: number | null;
  validation: boolean;
  /** The gradient clipping norm, or null. (Absent in checkpoints written before it was recorded:
   *  then not compared.) */
  clipNorm?: number | null;
  /** A digest of the model's input normalisation (mean and std), or null without one: a run
   *  resumed without the normalisation would feed the weights raw inputs. (Absent: not compared.) */
  normalization?: string | null;
  /** A digest of the validation data, or null without it: with another validation set the
   *  validation losses, and so early stopping's choice, would mix two sets. (Absent: not compared.) */
  validationData?: string | null;
}

export interface Checkpoint {
  format: typeof CHECKPOINT_FORMAT;
  version: number;
  spec: NetSpec;
  settings: RunSettings;
  /** sha256 of the training data (sizes, inputs and targets). */
  dataHash: string;
  /** 1-based epoch in progress, and the number of its steps already taken. */
  epoch: number;
  step: number;
  globalStep: number;
  params: string;
  optimizerStep: number;
  optimizerBuffers: string[];
  rng: RngState;
  order: string;
  epochLoss: number;
  epochCorrect: number;
  history: EpochStats[];
  best: number | null;
  sinceBest: number;
  bestEpoch: number;
  bestParams: string | null;
}

export function encodeFloat64(a: Float64Array): string {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
}

export function encodeInt32(a: Int32Array): string {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
}

export function decodeFloat64(s: string, length: number, what: string, file?: string): Float64Array {
  return decode(s, new Float64Array(length), what, file);
}

export function decodeInt32(s: string, length: number, what: string, file?: string): Int32Array {
  return decode(s, new Int32Array(length), what, file);
}

function decode<T extends Float64Array | Int32Array>(s: string, out: T, what: string, file?: string): T {
  const b = Buffer.from(s, 'base64');
  const size = out.BYTES_PER_ELEMENT;
  if (b.length !== out.byteLength) throw new CheckpointError(`${what} has ${b.length / size} values, expected ${out.length}`, file);
  new Uint8Array(out.buffer).set(b);
  return out;
}

/** A hash of the training data, so that a resume on other data is refused. */
export function hashDataset(d: Dataset): string {
  const h = createHash('sha256');
  h.update(`${d.size}x${d.inputDim}->${d.targetDim};`);
  const x = d.x.subarray(0, d.size * d.inputDim);
  const y = d.y.subarray(0, d.size * d.targetDim);
  h.update(new Uint8Array(x.buffer, x.byteOffset, x.byteLength));
  h.update(new Uint8Array(y.buffer, y.byteOffset, y.byteLength));
  return h.digest('hex');
}

/** Writes the checkpoint atomically (writeFileAtomic). A failed write (a full disk, a directory
 *  removed or made read-only during the run) is a CheckpointError whose cause is the file
 *  system's error. */
export async function saveCheckpoint(file: string, c: Checkpoint): Promise<void> {
  try {
    await writeFileAtomic(file, JSON.stringify(c) + '\n');
  } catch (err) {
    // writeFileAtomic's error names the file; its cause is the system's.
    const fsError = (err as Error)?.cause ?? err;
    throw new CheckpointError(`cannot write the checkpoint: ${writeFailure(file, fsError)}`, file, { cause: fsError });
  }
}

export async function loadCheckpoint(file: string): Promise<Checkpoint> {
  let text: string;
  try {
    const st = await fsp.stat(file);
    if (st.size > MAX_CHECKPOINT_BYTES) throw new CheckpointError(`file is ${st.size} bytes, more than the limit`, file);
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    if (err instanceof CheckpointError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new CheckpointError(code === 'ENOENT' ? 'no such file' : `cannot read: ${(err as Error).message}`, file, { cause: err });
  }
  let c: unknown;
  try {
    c = JSON.parse(text);
  } catch (err) {
    throw new CheckpointError(`not valid JSON (${(err as Error).message}); is the file truncated?`, file);
  }
  return checkCheckpoint(c, file);
}

/** Structural checks; the contents are checked against the run in `compareCheckpoint`. */
export function checkCheckpoint(c: unknown, file?: string): Checkpoint {
  const fail = (m: string): never => {
    throw new CheckpointError(m, file);
  };
  if (typeof c !== 'object' || c === null || Array.isArray(c)) return fail('expected a JSON object');
  const o = c as Record<string, unknown>;
  if (o.format !== CHECKPOINT_FORMAT) fail(`"format" must be "${CHECKPOINT_FORMAT}"; is this a model file? (--init takes models)`);
  if (o.version !== CHECKPOINT_VERSION) fail(`unsupported checkpoint version ${JSON.stringify(o.version)}`);
  const ints = ['epoch', 'step', 'globalStep', 'optimizerStep', 'sinceBest', 'bestEpoch'] as const;
  for (const k of ints) if (!Number.isSafeInteger(o[k]) || (o[k] as number) < 0) fail(`"${k}" must be a non-negative integer`);
  for (const k of ['params', 'order', 'dataHash'] as const) if (typeof o[k] !== 'string') fail(`"${k}" must be a string`);
  if (!Array.isArray(o.optimizerBuffers) || !o.optimizerBuffers.every((b) => typeof b === 'string')) fail('"optimizerBuffers" must be an array of strings');
  if (!Array.isArray(o.rng) || o.rng.length !== 4 || !o.rng.every((v) => Number.isInteger(v) && v >= 0 && v < 2 ** 32)) fail('"rng" must be 4 uint32 values');
  if (!Array.isArray(o.history)) fail('"history" must be an array');
  if (typeof o.spec !== 'object' || o.spec === null || typeof o.settings !== 'object' || o.settings === null) fail('"spec" and "settings" must be objects');
  return c as Checkpoint;
}

/** Lists what differs between a checkpoint and the run that wants to resume from it. */
export function compareCheckpoint(c: Checkpoint, spec: NetSpec, settings: RunSettings, dataHash: string): string[] {
  const diffs: string[] = [];
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  if (!same(c.spec.sizes, spec.sizes)) diffs.push(`layers: checkpoint ${c.spec.sizes.join(',')}, now ${spec.sizes.join(',')}`);
  if (!same(c.spec.activations, spec.activations)) diffs.push(`activations: checkpoint ${c.spec.activations.join(',')}, now ${spec.activations.join(',')}`);
  if (c.spec.loss !== spec.loss) diffs.push(`loss: checkpoint ${c.spec.loss}, now ${spec.loss}`);
  if (c.dataHash !== dataHash) diffs.push('training data: not the data the checkpoint was trained on (its hash differs)');
  const a = c.settings as unknown as Record<string, unknown>, b = settings as unknown as Record<string, unknown>;
  for (const k of Object.keys(b)) {
    // More (or fewer) epochs change no step already taken: a resumed run may extend a finished
    // one, or stop earlier (fit checks that the checkpoint is not past the new end).
    if (k === 'epochs') continue;
    if (k === 'optimizer') {
      const ao = a.optimizer as Record<string, unknown>, bo = b.optimizer as Record<string, unknown>;
      for (const ok of new Set([...Object.keys(ao ?? {}), ...Object.keys(bo)]))
        if (!same(ao?.[ok], bo[ok])) diffs.push(`${ok === 'kind' ? 'optimizer' : ok}: checkpoint ${JSON.stringify(ao?.[ok])}, now ${JSON.stringify(bo[ok])}`);
    } else if ((k === 'normalization' || k === 'clipNorm' || k === 'validationData') && !(k in a)) {
      // A checkpoint from before these were recorded: not known, so not compared.
    } else if (k === 'validationData') {
      // Whether there is validation data at all is the `validation` setting's to say.
      if (a[k] !== null && b[k] !== null && a[k] !== b[k]) diffs.push('validation data: not the data the checkpoint was validated on (its hash differs)');
    } else if (k === 'normalization') {
      const was = a[k] ?? null, now = b[k] ?? null;
      const say = (v: unknown): string => (v === null ? 'none' : 'standardised inputs (mean/std from the training data)');
      if (was !== now) diffs.push(`input normalisation: checkpoint ${say(was)}, now ${was !== null && now !== null ? 'a different mean/std' : say(now)}`);
    } else if (!same(a[k] ?? null, b[k] ?? null)) diffs.push(`${k}: checkpoint ${JSON.stringify(a[k] ?? null)}, now ${JSON.stringify(b[k] ?? null)}`);
  }
  return diffs;
}
