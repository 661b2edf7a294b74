// A model: the network's shape, its parameters in one shared flat buffer, and what is needed to
// use it on raw data (target encoding, input normalisation, input field names). Also the model
// file (JSON) writer and its strict, allocation-safe reader.

import { promises as fsp } from 'node:fs';
import {
  Activation, HIDDEN_ACTIVATIONS, HiddenActivation, Layout, LOSSES, Loss, MAX_LAYER_SIZE, MAX_PARAMS, NetSpec,
  OUTPUT_ACTIVATIONS, OutputActivation, ParamViews, checkSpec, makeLayout, paramViews, sharedFloat64,
} from './layout.js';
import { ModelFormatError, OptionError, checkOptionKeys, describe } from './errors.js';
import { Rng } from './rng.js';
import { forwardBlock, gatherBlock, makeWorkspace } from './backprop.js';
import { writeFileAtomic } from './fsutil.js';
import { Dataset, checkDatasetFits } from './dataset.js';
import { datasetGradient } from './engine.js';

/** How the network's outputs map to targets; written by the CLI, used by predict/evaluate. */
export interface TargetInfo {
  kind: 'binary' | 'classes' | 'regression';
  /** Class names (strings, or numbers for integer class labels) for 'binary' and 'classes'. */
  classes?: readonly (string | number)[] | undefined;
  outputs: number;
}

/** Per-feature standardisation (x − mean) / std, computed on the training data. */
export interface Normalization {
  readonly mean: readonly number[];
  readonly std: readonly number[];
}

/** Which fields of an NDJSON record hold the inputs and the target. */
export interface InputFields {
  xField?: string | undefined;
  yField?: string | undefined;
  features?: readonly string[] | undefined;
  label?: string | undefined;
}

export interface ModelOptions {
  /** Layer sizes [n0, n1, …, nL], input size first, e.g. [2, 3, 2, 1]. */
  layers: readonly number[];
  /** Activation of the hidden layers: one name for all, or one per hidden layer. @default 'relu' */
  hidden?: HiddenActivation | readonly HiddenActivation[] | undefined;
  /** Output activation. @default 'softmax' with loss cross-entropy, 'sigmoid' with binary-cross-entropy,
   *  'linear' with mse; without a loss: 'sigmoid' for one output, 'softmax' for several. */
  output?: OutputActivation | undefined;
  /** @default 'cross-entropy' for softmax, 'binary-cross-entropy' for sigmoid, 'mse' otherwise */
  loss?: Loss | undefined;
  /** Seed of the initial weights. @default 1 */
  seed?: number | undefined;
}

const MODEL_OPTION_KEYS = Object.keys({ layers: 1, hidden: 1, output: 1, loss: 1, seed: 1 } satisfies Record<keyof ModelOptions, 1>);

export const MODEL_FORMAT = 'bptrain-model';
export const MODEL_VERSION = 1;
/** Largest model file read, in bytes: checked before the file is read. */
export const MAX_MODEL_FILE_BYTES = 1 << 30;

export class Model {
  readonly layout: Layout;
  /** All weights and biases, in the layout drawn in layout.ts, over shared memory. */
  readonly params: Float64Array;
  /** W[k-1] = W(k) (n_k × n_{k-1}, row-major), b[k-1] = b(k). Views into `params`. */
  readonly views: ParamViews;
  #target: TargetInfo | undefined;
  #normalization: Normalization | undefined;
  #inputFields: InputFields | undefined;

  /**
   * A model of the network `spec` (see resolveModelSpec), its weights and biases zero, or copied
   * from `params`: another model's `params` (or a copy), in the same layout, which pads each
   * block to 64 bytes, so it holds `layout.stride` numbers, more than `parameterCount`. Any
   * other length is an OptionError (it would be cut short, or leave the weights it lacks at 0).
   */
  constructor(spec: NetSpec, params?: Float64Array) {
    this.layout = makeLayout(spec);
    const { stride, count } = this.layout;
    if (params !== undefined && !(params instanceof Float64Array && params.length === stride)) {
      const got = params instanceof Float64Array ? `a Float64Array of ${params.length} numbers` : describe(params);
      throw new OptionError('params', params, '',
        `params must be a Float64Array of ${stride} numbers, in the layout of model.params (the ${count} weights and biases, each layer's block padded to 64 bytes; paramViews shows where each is); received ${got}`);
    }
    this.params = sharedFloat64(stride);
    if (params !== undefined) this.params.set(params);
    this.views = paramViews(this.layout, this.params);
  }

  get sizes(): readonly number[] { return this.layout.spec.sizes; }
  get activations(): readonly Activation[] { return this.layout.spec.activations; }
  get loss(): Loss { return this.layout.spec.loss; }
  get inputs(): number { return this.sizes[0]; }
  get outputs(): number { return this.sizes[this.sizes.length - 1]; }
  /** Number of weights and biases. */
  get parameterCount(): number { return this.layout.count; }

  // The three settings below are checked as the model file's reader checks them, when set and
  // again where they are used or saved (they may be changed in place after being set): a model
  // must never predict with a normalisation of the wrong size, or write a file it cannot read back.

  /** How the outputs map to targets (class names, or regression); the CLI sets it. */
  get target(): TargetInfo | undefined { return this.#target; }
  set target(v: TargetInfo | undefined) { this.#target = v === undefined ? v : parseTarget(v, this.outputs, extraFail('target', v)); }
  /** Per-feature standardisation applied to raw inputs before the first layer. */
  get normalization(): Normalization | undefined { return this.#normalization; }
  set normalization(v: Normalization | undefined) { this.#normalization = v === undefined ? v : parseNormalization(v, this.inputs, extraFail('normalization', v)); }
  /** The NDJSON fields the model was trained on. */
  get inputFields(): InputFields | undefined { return this.#inputFields; }
  set inputFields(v: InputFields | undefined) { this.#inputFields = v === undefined ? v : parseInputFields(v, this.inputs, extraFail('inputFields', v)); }

  /** Checks target, normalization and inputFields as they are now (see above). */
  checkSettings(): void {
    if (this.#target !== undefined) parseTarget(this.#target, this.outputs, extraFail('target', this.#target));
    if (this.#normalization !== undefined) parseNormalization(this.#normalization, this.inputs, extraFail('normalization', this.#normalization));
    if (this.#inputFields !== undefined) parseInputFields(this.#inputFields, this.inputs, extraFail('inputFields', this.#inputFields));
  }

  /** A deep copy with its own parameter buffer. */
  clone(): Model {
    const m = new Model(this.layout.spec, this.params);
    m.target = this.#target;
    m.normalization = this.#normalization;
    m.inputFields = this.#inputFields;
    return m;
  }

  /** Network outputs for raw inputs, one row per sample (normalisation applied if the model has it). */
  predict(inputs: ArrayLike<ArrayLike<number>>): number[][] {
    const X = inputMatrix(inputs, this.inputs);
    return outputRows(this.#forward(X, inputs.length), this.outputs);
  }

  /** Outputs (n × n_L, sample-major) for n raw inputs X (n × n0, sample-major; normalisation
   *  applied if the model has it). X must hold exactly n × n0 finite numbers (else OptionError),
   *  as `trainer.predict`'s flat form. */
  forward(X: Float64Array, n: number): Float64Array {
    if (!(X instanceof Float64Array)) throw new OptionError('X', X, 'a Float64Array (n × inputs, sample-major)');
    if (!(Number.isSafeInteger(n) && n >= 0)) throw new OptionError('n', n, 'the number of samples, an integer ≥ 0');
    if (X.length !== n * this.inputs)
      throw new OptionError('X', X, '', `X has ${X.length} numbers, but n × inputs is ${n} × ${this.inputs} = ${n * this.inputs}`);
    checkInputArray(X, this.inputs, 'X');
    return this.#forward(X, n);
  }

  /** forward without its checks, for inputs already checked (predict's inputMatrix). */
  #forward(X: Float64Array, n: number): Float64Array {
    const n0 = this.inputs;
    const m = this.outputs;
    this.checkSettings();
    const Xn = this.normalization ? normalized(X, n, n0, this.normalization) : X;
    const cap = Math.min(64, Math.max(1, n));
    const ws = makeWorkspace(this.layout, cap);
    const out = new Float64Array(n * m);
    const A = ws.acts[this.layout.depth];
    for (let start = 0; start < n; start += cap) {
      const S = Math.min(cap, n - start);
      gatherBlock(ws, Xn, null, null, start, S, n0, m);
      forwardBlock(this.layout, this.views, ws, S);
      for (let s = 0; s < S; s++) for (let j = 0; j < m; j++) out[(start + s) * m + j] = A[j * S + s];
    }
    return out;
  }

  /** The model as the JSON object of the model file. */
  toJSON(): ModelFile {
    const { sizes, activations, loss } = this.layout.spec;
    for (let i = 0; i < this.params.length; i++)
      if (!Number.isFinite(this.params[i])) throw new ModelFormatError(`refusing to write a model with a non-finite parameter (${this.params[i]})`);
    this.checkSettings();
    return {
      format: MODEL_FORMAT,
      version: MODEL_VERSION,
      loss,
      layers: activations.map((activation, k) => {
        const W = this.views.W[k];
        const nIn = sizes[k];
        return {
          inputs: nIn,
          outputs: sizes[k + 1],
          activation,
          weights: Array.from({ length: sizes[k + 1] }, (_, m) => Array.from(W.subarray(m * nIn, (m + 1) * nIn))),
          bias: Array.from(this.views.b[k]),
        };
      }),
      ...(this.target ? { target: this.target } : {}),
      ...(this.normalization ? { normalization: this.normalization } : {}),
      ...(this.inputFields ? { input: this.inputFields } : {}),
    };
  }

  /** Builds a model from a parsed model file, validating everything before allocating. */
  static fromJSON(obj: unknown, source?: string): Model {
    return parseModelFile(obj, source);
  }
}

/** The model file: `layers[k].weights[m][n]` is the tutorial's W(k+1), row m, column n. */
export interface ModelFile {
  format: typeof MODEL_FORMAT;
  version: number;
  loss: Loss;
  layers: { inputs: number; outputs: number; activation: Activation; weights: number[][]; bias: number[] }[];
  target?: TargetInfo;
  normalization?: Normalization;
  input?: InputFields;
}

/** Resolves ModelOptions (defaults, validation) into a network spec. */
export function resolveModelSpec(options: ModelOptions): NetSpec {
  checkOptionKeys(options, MODEL_OPTION_KEYS, 'model options');
  const { layers } = options;
  if (!Array.isArray(layers)) throw new OptionError('layers', layers, 'an array of layer sizes, e.g. [2, 3, 2, 1]');
  const L = layers.length - 1;
  const hidden = options.hidden ?? 'relu';
  // One name for a network without hidden layers would apply to no layer: refused rather than
  // ignored, unless it is the default, which asks for nothing (the CLI passes its --hidden default).
  if (L === 1 && !Array.isArray(hidden) && hidden !== 'relu')
    throw new OptionError('hidden', hidden, `left out for a network without hidden layers (layers ${JSON.stringify(layers)}): it would apply to no layer`);
  const hiddenList = Array.isArray(hidden) ? hidden : Array.from({ length: Math.max(0, L - 1) }, () => hidden);
  if (hiddenList.length !== Math.max(0, L - 1)) throw new OptionError('hidden', hidden, `${L - 1} activations, one per hidden layer`);
  let { output, loss } = options;
  const outputGiven = output !== undefined;
  if (output === undefined) {
    output = loss === 'cross-entropy' ? 'softmax' : loss === 'binary-cross-entropy' ? 'sigmoid' : loss === 'mse' ? 'linear'
      : layers[L] === 1 ? 'sigmoid' : 'softmax';
  }
  if (loss === undefined) loss = output === 'softmax' ? 'cross-entropy' : output === 'sigmoid' ? 'binary-cross-entropy' : 'mse';
  const spec: NetSpec = { sizes: [...layers], activations: [...hiddenList, output], loss };
  try {
    checkSpec(spec);
  } catch (err) {
    // An output the caller left out is the loss's default: say so, not just "received softmax"
    // (cross-entropy takes softmax only, which needs two outputs or more).
    if (!outputGiven && err instanceof OptionError && err.option === 'output') {
      // The loss is what the caller chose: cross-entropy needs softmax, which one output cannot
      // have (and a sigmoid output is refused with cross-entropy), so the advice is about the loss.
      if (loss === 'cross-entropy' && layers[L] === 1)
        throw new OptionError('loss', loss, '', `loss 'cross-entropy' needs a softmax output, which needs 2 outputs or more, and this network has 1 (layers ${JSON.stringify(layers)}); for one output use loss 'binary-cross-entropy' (a sigmoid output) or 'mse'; received ${describe(loss)}`);
      throw new OptionError('output', output, '', `${err.message.split('; received ')[0]}; received no output, so the default for loss '${loss}': ${describe(output)}`);
    }
    throw err;
  }
  return spec;
}

/**
 * A new model with seeded initial weights. Weights are drawn uniformly from (−a, a): Glorot/Xavier
 * uniform, a = √(6 / (fan_in + fan_out)), for sigmoid, tanh, linear and softmax layers; He uniform,
 * a = √(6 / fan_in), for relu and leaky-relu layers (as Keras' glorot_uniform / he_uniform).
 * Biases start at 0. Layers are filled in order, each row by row, from one generator.
 */
export function createModel(options: ModelOptions): Model {
  const spec = resolveModelSpec(options);
  const seed = options.seed ?? 1;
  if (!Number.isSafeInteger(seed)) throw new OptionError('seed', seed, 'an integer');
  const model = new Model(spec);
  const rng = new Rng(seed);
  const { sizes, activations } = spec;
  for (let k = 1; k < sizes.length; k++) {
    const fanIn = sizes[k - 1], fanOut = sizes[k];
    const act = activations[k - 1];
    const a = act === 'relu' || act === 'leaky-relu' ? Math.sqrt(6 / fanIn) : Math.sqrt(6 / (fanIn + fanOut));
    const W = model.views.W[k - 1];
    for (let i = 0; i < W.length; i++) W[i] = rng.uniform(-a, a);
  }
  return model;
}

/** Input rows as one sample-major matrix (n × n0), each value checked: a NaN would come out as a
 *  plausible number (relu maps it to 0), and a string as whatever it coerces to. */
export function inputMatrix(inputs: ArrayLike<ArrayLike<number>>, n0: number): Float64Array {
  if (inputs === null || typeof inputs !== 'object' || typeof inputs.length !== 'number')
    throw new OptionError('inputs', inputs, 'an array of input rows');
  const n = inputs.length;
  const X = new Float64Array(n * n0);
  for (let i = 0; i < n; i++) {
    const row = inputs[i];
    if (row === null || typeof row !== 'object' || row.length !== n0) throw new OptionError(`inputs[${i}]`, row, `${n0} numbers`);
    for (let j = 0; j < n0; j++) {
      const v = row[j];
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new OptionError(`inputs[${i}][${j}]`, v, 'a finite number');
      X[i * n0 + j] = v;
    }
  }
  return X;
}

/** A flat sample-major matrix of inputs (n × n0), checked: its length, and every value finite. */
export function checkInputArray(X: Float64Array, n0: number, name = 'inputs'): number {
  if (X.length % n0 !== 0)
    throw new OptionError(name, X, '', `${name} has ${X.length} numbers, not a multiple of ${n0} (the model's inputs per sample)`);
  for (let i = 0; i < X.length; i++)
    if (!Number.isFinite(X[i])) throw new OptionError(`${name}[${i}]`, X[i], `a finite number (sample ${Math.floor(i / n0)}, input ${i % n0})`);
  return X.length / n0;
}

/** Rows of a flat sample-major output matrix. */
export function outputRows(out: Float64Array, m: number): number[][] {
  return Array.from({ length: out.length / m }, (_, i) => Array.from(out.subarray(i * m, (i + 1) * m)));
}

function normalized(X: Float64Array, n: number, n0: number, norm: Normalization): Float64Array {
  const out = X.slice(0, n * n0);
  applyNormalization(out, n, n0, norm);
  return out;
}

/** Applies a model's normalisation to sample-major X in place. */
export function normalizeInPlace(X: Float64Array, n: number, n0: number, norm: Normalization): void {
  parseNormalization(norm, n0, (msg) => {
    throw new OptionError('normalization', norm, '', `normalization is not valid: ${msg}`);
  });
  if (!(X.length >= n * n0)) throw new OptionError('X', X, '', `X has ${X.length} numbers, fewer than n × n0 = ${n * n0}`);
  applyNormalization(X, n, n0, norm);
}

/** normalizeInPlace without its checks, for a model's own normalisation, which
 *  Model.checkSettings has just checked. */
export function applyNormalization(X: Float64Array, n: number, n0: number, norm: Normalization): void {
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n0; j++) {
      const x = X[i * n0 + j];
      const d = x - norm.mean[j];
      // x − mean overflows for values of opposite signs near the largest double; their quotients
      // do not.
      X[i * n0 + j] = Number.isFinite(d) ? d / norm.std[j] : x / norm.std[j] - norm.mean[j] / norm.std[j];
    }
  }
}

/** Per-feature mean and (population) standard deviation. A constant feature gets its largest
 *  magnitude as std (1 when it is all zeros), so it normalises to about 0 (see below). */
export function computeNormalization(X: Float64Array, n: number, n0: number): Normalization {
  if (!(X instanceof Float64Array)) throw new OptionError('X', X, 'a Float64Array');
  if (!(Number.isInteger(n) && n >= 1)) throw new OptionError('n', n, 'a positive integer');
  if (!(Number.isInteger(n0) && n0 >= 1)) throw new OptionError('n0', n0, 'a positive integer');
  if (X.length < n * n0) throw new OptionError('X', X, '', `X has ${X.length} numbers, fewer than n × n0 = ${n * n0}`);
  for (let i = 0; i < n * n0; i++) if (!Number.isFinite(X[i])) throw new OptionError(`X[${i}]`, X[i], `a finite number (sample ${Math.floor(i / n0)}, input ${i % n0})`);
  // Each feature is summed scaled by a power of two at its largest magnitude, so that neither the
  // sum nor the squares overflow, up to the largest double (inputs of 1e155 made the squares
  // Infinity and the std null). A power of two scales exactly: for ordinary data these are the
  // same bits as sums of the raw values.
  const scale = new Array<number>(n0).fill(0);
  for (let i = 0; i < n; i++) for (let j = 0; j < n0; j++) scale[j] = Math.max(scale[j], Math.abs(X[i * n0 + j]));
  const largest = scale.slice();
  for (let j = 0; j < n0; j++) scale[j] = largest[j] > 0 ? 2 ** Math.min(1023, Math.ceil(Math.log2(largest[j]))) : 1;
  const mean = new Array<number>(n0).fill(0);
  const std = new Array<number>(n0).fill(0);
  for (let i = 0; i < n; i++) for (let j = 0; j < n0; j++) mean[j] += X[i * n0 + j] / scale[j];
  for (let j = 0; j < n0; j++) mean[j] /= n;
  for (let i = 0; i < n; i++) for (let j = 0; j < n0; j++) std[j] += (X[i * n0 + j] / scale[j] - mean[j]) ** 2;
  for (let j = 0; j < n0; j++) {
    const s = Math.sqrt(std[j] / n) * scale[j];
    mean[j] *= scale[j];
    // A feature whose spread is rounding noise next to its size is constant: dividing by that
    // noise would blow tiny input changes up into huge ones. Relative, so that data of any
    // scale (1e-13 or 1e13) is standardised alike. A constant feature is divided by its size
    // instead, so that what is left of it (its mean is rounded: x − mean is an ulp, 1e184 for
    // values of 1e200) comes out near 0, and a new value reads as its relative change.
    // The true std is at most the largest magnitude (its rounding could reach 2^1024 at the top),
    // and 1/std must be finite (a subnormal std would turn inputs into infinities).
    const finite = (v: number): boolean => v > 0 && 1 / v < Infinity;
    std[j] = s > 1e-12 * largest[j] && finite(s) ? Math.min(s, largest[j]) : finite(largest[j]) ? largest[j] : 1;
  }
  return { mean, std };
}

// ---------------------------------------------------------------------------------------------
// Model files.

/** Writes the model file atomically (temp file, fsync, rename): a reader never sees half a file. */
export async function saveModel(model: Model, file: string): Promise<void> {
  if (!(model instanceof Model)) throw new OptionError('model', model, 'a Model (createModel or loadModel)');
  if (typeof file !== 'string' || file === '') throw new OptionError('file', file, 'a file name');
  await writeFileAtomic(file, modelToText(model));
}

// JSON.stringify writes -0 as 0; JSON.parse reads "-0" back as -0. A sentinel string marks each -0
// and is then replaced by the bare literal, so every double, -0 included, loads back bit-exact
// (JSON.stringify already writes the shortest text that parses back to the same double).
const NEG_ZERO = '\u0000bptrain:-0';

/** The model file's text. */
export function modelToText(model: Model): string {
  if (!(model instanceof Model)) throw new OptionError('model', model, 'a Model (createModel or loadModel)');
  const text = JSON.stringify(model.toJSON(), (_k, v: unknown) => (typeof v === 'number' && Object.is(v, -0) ? NEG_ZERO : v));
  return text.replaceAll(JSON.stringify(NEG_ZERO), '-0') + '\n';
}

/** Reads and validates a model file. Throws ModelFormatError for anything that is not a valid model. */
export async function loadModel(file: string): Promise<Model> {
  let text: string;
  try {
    const st = await fsp.stat(file);
    if (!st.isFile()) throw new ModelFormatError('not a regular file', file);
    if (st.size > MAX_MODEL_FILE_BYTES) throw new ModelFormatError(`file is ${st.size} bytes, more than the ${MAX_MODEL_FILE_BYTES}-byte limit`, file);
    text = await fsp.readFile(file, 'utf8');
  } catch (err) {
    if (err instanceof ModelFormatError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new ModelFormatError(code === 'ENOENT' ? 'no such file' : `cannot read: ${(err as Error).message}`, file, { cause: err });
  }
  return parseModelText(text, file);
}

export function parseModelText(text: string, source?: string): Model {
  let obj: unknown;
  try {
    obj = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text);
  } catch (err) {
    throw new ModelFormatError(`not valid JSON (${(err as Error).message}); is the file truncated?`, source);
  }
  return parseModelFile(obj, source);
}

/** A bad value from a file, rendered for a message: bounded and non-recursive (a value nested
 *  thousands deep would overflow JSON.stringify's stack). */
function show(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  if (v !== null && typeof v === 'object') return 'an object';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v);
  return String(v);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const own = (o: Record<string, unknown>, k: string): unknown => (Object.prototype.hasOwnProperty.call(o, k) ? o[k] : undefined);

function parseModelFile(obj: unknown, source?: string): Model {
  const fail = (msg: string): never => {
    throw new ModelFormatError(msg, source);
  };
  if (!isObject(obj)) return fail('expected a JSON object');
  if (own(obj, 'format') !== MODEL_FORMAT) fail(`"format" must be "${MODEL_FORMAT}" (got ${show(own(obj, 'format'))})`);
  const version = own(obj, 'version');
  if (version !== MODEL_VERSION) fail(`unsupported version ${show(version)}; this bptrain reads version ${MODEL_VERSION}`);
  const loss = own(obj, 'loss');
  if (typeof loss !== 'string' || !(LOSSES as readonly string[]).includes(loss)) fail(`"loss" must be one of ${LOSSES.join(', ')} (got ${show(loss)})`);
  const layers = own(obj, 'layers');
  if (!Array.isArray(layers) || layers.length === 0) return fail('"layers" must be a non-empty array');
  if (layers.length > 1000) fail(`"layers" has ${layers.length} entries; at most 1000 are supported`);
  // Shapes first, all of them, so nothing is allocated for a file that lies about its sizes.
  const sizes: number[] = [];
  const activations: Activation[] = [];
  let count = 0;
  layers.forEach((layer: unknown, k: number) => {
    if (!isObject(layer)) fail(`layers[${k}] must be an object`);
    const l = layer as Record<string, unknown>;
    const inputs = own(l, 'inputs'), outputs = own(l, 'outputs'), activation = own(l, 'activation');
    for (const [name, v] of [['inputs', inputs], ['outputs', outputs]] as const)
      if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > MAX_LAYER_SIZE)
        fail(`layers[${k}].${name} must be an integer in 1..${MAX_LAYER_SIZE} (got ${show(v)})`);
    if (k === 0) sizes.push(inputs as number);
    else if (inputs !== sizes[k]) fail(`layers[${k}].inputs is ${inputs}, but layers[${k - 1}].outputs is ${sizes[k]}`);
    sizes.push(outputs as number);
    const allowed: readonly string[] = k === layers.length - 1 ? OUTPUT_ACTIVATIONS : HIDDEN_ACTIVATIONS;
    if (typeof activation !== 'string' || !allowed.includes(activation))
      fail(`layers[${k}].activation must be one of ${allowed.join(', ')} (got ${show(activation)})`);
    activations.push(activation as Activation);
    count += (inputs as number) * (outputs as number) + (outputs as number);
    if (count > MAX_PARAMS) fail(`the model has more than ${MAX_PARAMS} parameters`);
  });
  // Then the array lengths, still before allocating anything.
  layers.forEach((layer: Record<string, unknown>, k: number) => {
    const nIn = sizes[k], nOut = sizes[k + 1];
    const weights = own(layer, 'weights'), bias = own(layer, 'bias');
    if (!Array.isArray(weights) || weights.length !== nOut) fail(`layers[${k}].weights must be an array of ${nOut} rows`);
    (weights as unknown[]).forEach((row, m) => {
      if (!Array.isArray(row) || row.length !== nIn) fail(`layers[${k}].weights[${m}] must be an array of ${nIn} numbers`);
    });
    if (!Array.isArray(bias) || bias.length !== nOut) fail(`layers[${k}].bias must be an array of ${nOut} numbers`);
  });
  let model: Model;
  try {
    model = new Model({ sizes, activations, loss: loss as Loss });
  } catch (err) {
    return fail((err as Error).message);
  }
  layers.forEach((layer: Record<string, unknown>, k: number) => {
    const nIn = sizes[k], nOut = sizes[k + 1];
    const weights = own(layer, 'weights') as unknown[][], bias = own(layer, 'bias') as unknown[];
    const W = model.views.W[k];
    weights.forEach((row, m) => {
      for (let j = 0; j < nIn; j++) {
        const v = (row as unknown[])[j];
        if (typeof v !== 'number' || !Number.isFinite(v)) fail(`layers[${k}].weights[${m}][${j}] must be a finite number (got ${show(v)})`);
        W[m * nIn + j] = v as number;
      }
    });
    const b = model.views.b[k];
    for (let m = 0; m < nOut; m++) {
      const v = (bias as unknown[])[m];
      if (typeof v !== 'number' || !Number.isFinite(v)) fail(`layers[${k}].bias[${m}] must be a finite number (got ${show(v)})`);
      b[m] = v as number;
    }
  });
  const target = own(obj, 'target');
  if (target !== undefined) model.target = parseTarget(target, model.outputs, fail);
  const norm = own(obj, 'normalization');
  if (norm !== undefined) model.normalization = parseNormalization(norm, model.inputs, fail);
  const input = own(obj, 'input');
  if (input !== undefined) model.inputFields = parseInputFields(input, model.inputs, fail);
  return model;
}

/** The `fail` of the model file's checks, for a setting made in code: an OptionError naming it. */
function extraFail(name: 'target' | 'normalization' | 'inputFields', value: unknown): (msg: string) => never {
  return (msg) => {
    throw new OptionError(`model.${name}`, value, '', `model.${name} is not valid: ${msg}`);
  };
}

function parseTarget(t: unknown, outputs: number, fail: (m: string) => never): TargetInfo {
  if (!isObject(t)) return fail('"target" must be an object');
  const kind = own(t, 'kind');
  if (kind !== 'binary' && kind !== 'classes' && kind !== 'regression') return fail(`"target.kind" must be binary, classes or regression (got ${show(kind)})`);
  const out = own(t, 'outputs');
  if (out !== outputs) fail(`"target.outputs" is ${show(out)}, but the last layer has ${outputs} outputs`);
  const info: TargetInfo = { kind, outputs };
  const classes = own(t, 'classes');
  if (kind !== 'regression') {
    const want = kind === 'binary' ? 2 : outputs;
    if (!Array.isArray(classes) || classes.length !== want || !classes.every((c) => typeof c === 'string' || (typeof c === 'number' && Number.isFinite(c))))
      fail(`"target.classes" must be an array of ${want} class names`);
    info.classes = [...(classes as (string | number)[])];
  }
  return info;
}

function parseNormalization(n: unknown, inputs: number, fail: (m: string) => never): Normalization {
  if (!isObject(n)) return fail('"normalization" must be an object');
  const mean = own(n, 'mean'), std = own(n, 'std');
  const ok = (a: unknown, positive: boolean): a is number[] =>
    Array.isArray(a) && a.length === inputs && a.every((v) => typeof v === 'number' && Number.isFinite(v) && (!positive || v > 0));
  if (!ok(mean, false)) fail(`"normalization.mean" must be an array of ${inputs} finite numbers`);
  if (!ok(std, true)) fail(`"normalization.std" must be an array of ${inputs} positive numbers`);
  return { mean: [...(mean as number[])], std: [...(std as number[])] };
}

function parseInputFields(f: unknown, inputs: number, fail: (m: string) => never): InputFields {
  if (!isObject(f)) return fail('"input" must be an object');
  const out: InputFields = {};
  for (const key of ['xField', 'yField', 'label'] as const) {
    const v = own(f, key);
    if (v === undefined) continue;
    if (typeof v !== 'string') fail(`"input.${key}" must be a string`);
    out[key] = v as string;
  }
  const features = own(f, 'features');
  if (features !== undefined) {
    if (!Array.isArray(features) || features.length !== inputs || !features.every((v) => typeof v === 'string'))
      fail(`"input.features" must be an array of ${inputs} field names`);
    out.features = [...(features as string[])];
  }
  return out;
}

/**
 * The batch-mean gradient ∂L/∂θ over all of `data` at the model's current weights, in the
 * parameter layout of `model.params` (use `paramViews` or the layout offsets to read W(k), b(k)),
 * with the same kernels and summation order as training. The model's normalisation is applied.
 */
export function computeGradient(model: Model, data: Dataset): { loss: number; grad: Float64Array } {
  checkDatasetFits(data, model.inputs, model.outputs);
  model.checkSettings();
  const x = model.normalization ? normalized(data.x, data.size, data.inputDim, model.normalization) : data.x;
  return datasetGradient(model.layout, model.params, x.subarray(0, data.size * data.inputDim), data.y.subarray(0, data.size * data.targetDim), data.size);
}
