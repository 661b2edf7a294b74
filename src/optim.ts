// Optimizers with PyTorch's semantics, applied to the batch-mean gradient.
// Each step is one loop over the flat parameter buffer (padding entries stay 0).

export interface SgdOptions {
  kind: 'sgd';
  lr: number;
  momentum: number;
  nesterov: boolean;
  weightDecay: number;
}

export interface AdamOptions {
  kind: 'adam';
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export type OptimizerOptions = SgdOptions | AdamOptions;

/** Optimizer state: SGD keeps the momentum buffer; Adam the two moment estimates and the step. */
export interface OptimizerState {
  step: number;
  /** SGD: [velocity]; Adam: [exp_avg, exp_avg_sq]. */
  buffers: Float64Array[];
}

/** Number of state buffers (each as long as the parameters) an optimizer keeps. */
export function optimizerBufferCount(opt: OptimizerOptions): number {
  return opt.kind === 'sgd' ? (opt.momentum !== 0 ? 1 : 0) : 2;
}

/** Fresh optimizer state; with `memory`, the buffers are views into it (shared with workers). */
export function makeOptimizerState(opt: OptimizerOptions, length: number, memory?: Float64Array): OptimizerState {
  const n = optimizerBufferCount(opt);
  return {
    step: 0,
    buffers: Array.from({ length: n }, (_, i) => (memory ? memory.subarray(i * length, (i + 1) * length) : new Float64Array(length))),
  };
}

/**
 * One optimizer step on `params` with gradient `gradSum / batch` (the batch mean).
 *
 * SGD (torch.optim.SGD, dampening 0): g ← g + wd·w; v ← μ·v + g; g ← g + μ·v (nesterov) or v;
 * w ← w − lr·g. On the first step v = g, as PyTorch's buffer is initialised to the gradient.
 * Adam (torch.optim.Adam): m ← m + (1−β1)(g − m); v ← β2·v + (1−β2)·g²;
 * w ← w − (lr / (1−β1ᵗ)) · m / (√v / √(1−β2ᵗ) + ε).
 */
export function optimizerStep(opt: OptimizerOptions, state: OptimizerState, params: Float64Array, gradSum: Float64Array, batch: number): void {
  state.step++;
  optimizerStepRange(opt, state.step, state.buffers, params, gradSum, batch, 0, params.length);
}

/**
 * Step number t of the optimizer on parameters [p0, p1) only. Every entry is updated on its own,
 * so threads can each take a range and the result does not depend on how it was cut.
 */
export function optimizerStepRange(
  opt: OptimizerOptions, t: number, buffers: Float64Array[], params: Float64Array, gradSum: Float64Array,
  batch: number, p0: number, p1: number,
): void {
  if (opt.kind === 'sgd') {
    const { lr, momentum, nesterov, weightDecay } = opt;
    if (momentum === 0) {
      for (let i = p0; i < p1; i++) {
        let g = gradSum[i] / batch;
        if (weightDecay !== 0) g += weightDecay * params[i];
        params[i] -= lr * g;
      }
      return;
    }
    const v = buffers[0];
    const first = t === 1;
    for (let i = p0; i < p1; i++) {
      let g = gradSum[i] / batch;
      if (weightDecay !== 0) g += weightDecay * params[i];
      const vi = first ? g : momentum * v[i] + g;
      v[i] = vi;
      params[i] -= lr * (nesterov ? g + momentum * vi : vi);
    }
    return;
  }
  const { lr, beta1, beta2, eps, weightDecay } = opt;
  const [m, v] = buffers;
  const bc1 = 1 - beta1 ** t;
  const bc2Sqrt = Math.sqrt(1 - beta2 ** t);
  const stepSize = lr / bc1;
  for (let i = p0; i < p1; i++) {
    let g = gradSum[i] / batch;
    if (weightDecay !== 0) g += weightDecay * params[i];
    const mi = m[i] + (1 - beta1) * (g - m[i]);
    const vi = beta2 * v[i] + (1 - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    params[i] -= (stepSize * mi) / (Math.sqrt(vi) / bc2Sqrt + eps);
  }
}
