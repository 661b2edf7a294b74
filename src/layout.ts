// The network's shape and where each parameter lives in the one flat buffer.
//
// All weights and biases of a model sit in a single Float64Array (over a SharedArrayBuffer, so
// worker threads read the same memory). Gradients use exactly the same layout, so zeroing is one
// fill(0), a thread's share of rows is a few contiguous ranges, and an optimizer step is one loop.
//
//   params (float64 offsets; every block starts on a 64-byte boundary, 8 doubles):
//   ┌──────────────┬───────┬──────────────┬───────┬─────┬──────────────┬───────┐
//   │ W(1) n1×n0   │ b(1)  │ W(2) n2×n1   │ b(2)  │ ... │ W(L) nL×nL-1 │ b(L)  │
//   └──────────────┴───────┴──────────────┴───────┴─────┴──────────────┴───────┘
//
// W(k) is row-major (n_k × n_{k-1}): row m holds the weights into neuron m of layer k, exactly
// the tutorial's W(k), so W(k)[m*n_{k-1} + j] is the weight from neuron j of layer k-1 to m.
// The 64-byte alignment lets a later WebAssembly (SIMD) kernel use the same buffer in place; the
// buffer is in fact allocated as a shared WebAssembly.Memory.

import { OptionError } from './errors.js';

export const HIDDEN_ACTIVATIONS = ['sigmoid', 'tanh', 'relu', 'leaky-relu', 'linear'] as const;
export const OUTPUT_ACTIVATIONS = ['sigmoid', 'softmax', 'linear', 'tanh'] as const;
export const LOSSES = ['mse', 'binary-cross-entropy', 'cross-entropy'] as const;

export type HiddenActivation = (typeof HIDDEN_ACTIVATIONS)[number];
export type OutputActivation = (typeof OUTPUT_ACTIVATIONS)[number];
export type Activation = HiddenActivation | OutputActivation;
export type Loss = (typeof LOSSES)[number];

/** Activation codes used inside the kernels (numbers, so the hot loops switch on an int). */
export enum Act {
  Sigmoid = 0,
  Tanh = 1,
  Relu = 2,
  LeakyRelu = 3,
  Linear = 4,
  Softmax = 5,
}
export enum LossCode {
  Mse = 0,
  Bce = 1,
  CrossEntropy = 2,
}

export const ACT_CODE: Record<Activation, Act> = {
  sigmoid: Act.Sigmoid,
  tanh: Act.Tanh,
  relu: Act.Relu,
  'leaky-relu': Act.LeakyRelu,
  linear: Act.Linear,
  softmax: Act.Softmax,
};
export const LOSS_CODE: Record<Loss, LossCode> = {
  mse: LossCode.Mse,
  'binary-cross-entropy': LossCode.Bce,
  'cross-entropy': LossCode.CrossEntropy,
};

/** Slope of leaky-relu for z < 0 (and at z = 0, as PyTorch's backward does). */
export const LEAKY_SLOPE = 0.01;

/** The plain-data description of a network: enough to rebuild views in a worker. */
export interface NetSpec {
  /** Layer sizes [n0, n1, …, nL]; n0 is the input size. */
  readonly sizes: readonly number[];
  /** Activation of layers 1..L (length L). */
  readonly activations: readonly Activation[];
  readonly loss: Loss;
}

export interface Layout {
  readonly spec: NetSpec;
  /** Number of layers with weights (L). */
  readonly depth: number;
  /** Offset of W(k) for k = 1..L at index k-1. */
  readonly wOffset: readonly number[];
  /** Offset of b(k) for k = 1..L at index k-1. */
  readonly bOffset: readonly number[];
  /** Total doubles in one parameter (or gradient) block, padding included. */
  readonly stride: number;
  /** Number of real parameters (weights + biases), padding excluded. */
  readonly count: number;
  readonly act: readonly Act[];
  readonly lossCode: LossCode;
}

const ALIGN = 8; // doubles = 64 bytes
const align = (n: number): number => Math.ceil(n / ALIGN) * ALIGN;

/** Upper bounds that keep a hostile model file or a typo from allocating gigabytes. */
export const MAX_LAYER_SIZE = 1 << 20;
export const MAX_PARAMS = 1 << 27; // 1 GiB of float64

export function checkSpec(spec: NetSpec, where = 'layers'): void {
  const { sizes, activations, loss } = spec;
  if (!Array.isArray(sizes) || sizes.length < 2)
    throw new OptionError(where, sizes, 'an array of at least two layer sizes, e.g. [2, 3, 2, 1]');
  sizes.forEach((n, k) => {
    if (!Number.isInteger(n) || n < 1 || n > MAX_LAYER_SIZE)
      throw new OptionError(`${where}[${k}]`, n, `an integer in 1..${MAX_LAYER_SIZE}`);
  });
  const L = sizes.length - 1;
  if (activations.length !== L) throw new OptionError('activations', activations, `${L} activations, one per layer`);
  activations.forEach((a, k) => {
    const allowed: readonly string[] = k === L - 1 ? OUTPUT_ACTIVATIONS : HIDDEN_ACTIVATIONS;
    if (!allowed.includes(a))
      throw new OptionError(k === L - 1 ? 'output' : 'hidden', a, `one of ${allowed.join(', ')}`);
  });
  if (!(LOSSES as readonly string[]).includes(loss)) throw new OptionError('loss', loss, `one of ${LOSSES.join(', ')}`);
  const out = activations[L - 1];
  if (loss === 'cross-entropy' && out !== 'softmax')
    throw new OptionError('output', out, "softmax when loss is 'cross-entropy'");
  if (loss === 'binary-cross-entropy' && out !== 'sigmoid')
    throw new OptionError('output', out, "sigmoid when loss is 'binary-cross-entropy'");
  if (out === 'softmax' && loss !== 'cross-entropy')
    throw new OptionError('loss', loss, "'cross-entropy' when the output is softmax");
  if (out === 'softmax' && sizes[L] < 2) throw new OptionError('output', out, 'sigmoid for a single output (softmax of one value is always 1)');
  let count = 0;
  for (let k = 1; k <= L; k++) count += sizes[k] * sizes[k - 1] + sizes[k];
  if (count > MAX_PARAMS) throw new OptionError(where, sizes, `a network of at most ${MAX_PARAMS} parameters (this one has ${count})`);
}

export function makeLayout(spec: NetSpec): Layout {
  checkSpec(spec);
  const { sizes } = spec;
  const L = sizes.length - 1;
  const wOffset: number[] = [];
  const bOffset: number[] = [];
  let off = 0;
  let count = 0;
  for (let k = 1; k <= L; k++) {
    wOffset.push(off);
    off = align(off + sizes[k] * sizes[k - 1]);
    bOffset.push(off);
    off = align(off + sizes[k]);
    count += sizes[k] * sizes[k - 1] + sizes[k];
  }
  return {
    spec,
    depth: L,
    wOffset,
    bOffset,
    stride: off,
    count,
    act: spec.activations.map((a) => ACT_CODE[a]),
    lossCode: LOSS_CODE[spec.loss],
  };
}

/** Named views into one parameter (or gradient) block starting at `base`. */
export interface ParamViews {
  /** W[k-1] is W(k), (n_k × n_{k-1}) row-major. */
  readonly W: Float64Array[];
  /** b[k-1] is b(k), length n_k. */
  readonly b: Float64Array[];
}

export function paramViews(layout: Layout, buf: Float64Array, base = 0): ParamViews {
  const { sizes } = layout.spec;
  const W: Float64Array[] = [];
  const b: Float64Array[] = [];
  for (let k = 1; k <= layout.depth; k++) {
    const w0 = base + layout.wOffset[k - 1];
    const b0 = base + layout.bOffset[k - 1];
    W.push(buf.subarray(w0, w0 + sizes[k] * sizes[k - 1]));
    b.push(buf.subarray(b0, b0 + sizes[k]));
  }
  return { W, b };
}

// Node's WebAssembly global is not in the ES lib typings; this is the one constructor used here.
declare const WebAssembly: {
  Memory: new (d: { initial: number; maximum: number; shared: boolean }) => { buffer: ArrayBufferLike };
};

/** A zeroed Float64Array over shared memory: a shared WebAssembly.Memory when it fits, so a
 *  future WASM kernel can work on it in place. */
export function sharedFloat64(length: number): Float64Array {
  const bytes = Math.max(8, length * 8);
  const pages = Math.ceil(bytes / 65536);
  if (pages <= 65536) {
    const mem = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    return new Float64Array(mem.buffer as SharedArrayBuffer, 0, length);
  }
  return new Float64Array(new SharedArrayBuffer(bytes), 0, length);
}
