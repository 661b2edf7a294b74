#!/usr/bin/env python3
"""Independent float64 reference for bptrain's training, with PyTorch's semantics, in numpy.

It reads the cases written by scripts/reference-cases.mjs (initial model in bptrain's model file
format, training and test data, fit options, and the epoch orders of shuffled cases), trains each
network the way torch.nn.Linear + torch.optim would, and writes the fixture of
test/reference.test.ts: the cases as read, each with an "expected" entry (final weights and
biases, per-epoch loss and accuracy, test-set loss and accuracy, and the number of steps on which
gradient clipping scaled the gradient).

Needs only python3 and numpy (no torch). Regenerate the committed fixture with:

    npm run build && node scripts/reference-cases.mjs | python3 scripts/torch-reference.py - test/fixtures/reference/torch-reference.json

What is modelled, as PyTorch does it:
  forward      z(k) = W(k) n(k-1) + b(k), W(k) of shape (n_k, n_{k-1}) as in nn.Linear
  hidden       sigmoid, tanh, relu (relu'(0) = 0), leaky-relu with slope 0.01 (slope 0.01 at 0),
               linear
  outputs      sigmoid, softmax, linear, tanh
  losses       mse: mean over all outputs of the batch (nn.MSELoss)
               binary-cross-entropy on the sigmoid output, computed stably from z as
               BCEWithLogitsLoss: max(z, 0) - z y + log1p(exp(-|z|)), mean over all outputs
               cross-entropy on the softmax output with probability (or one-hot) targets:
               -sum_j y_j log_softmax(z)_j, mean over the batch (F.cross_entropy)
  SGD          torch.optim.SGD: weight_decay adds wd * p to the gradient; momentum buffer is the
               gradient itself on the first step, then mu * buf + g (dampening 0); nesterov uses
               g + mu * buf; p -= lr * update
  Adam         torch.optim.Adam (L2 weight_decay added to the gradient, not AdamW): m.lerp_(g, 1-b1),
               v = b2 v + (1-b2) g^2, denom = sqrt(v) / sqrt(1 - b2^t) + eps,
               p -= lr / (1 - b1^t) * (m / denom)
  clipping     torch.nn.utils.clip_grad_norm_: total L2 norm of all gradients,
               coef = min(max_norm / (norm + 1e-6), 1), every gradient multiplied by coef
  batches      consecutive slices of the epoch's order; the last, partial batch is averaged over
               its own size
  epoch loss   mean over the epoch's samples of each sample's loss at the weights of its step
  accuracy     softmax: argmax of output == argmax of target (first maximum on ties), per sample;
               sigmoid: (output >= 0.5) == (target >= 0.5), per output; no accuracy otherwise

Usage: torch-reference.py CASES.json|- OUT.json|- [--clip-eps EPS]
  --clip-eps 0 gives the pre-torch clipping formula (scale max_norm / norm when norm > max_norm),
  for checking that the test tells the two apart; the committed fixture uses the default 1e-6.
"""
import argparse
import json
import math
import sys

import numpy as np

LEAK = 0.01


def activate(name, z):
    if name == 'sigmoid':
        return 1.0 / (1.0 + np.exp(-z))
    if name == 'tanh':
        return np.tanh(z)
    if name == 'relu':
        return np.where(z > 0, z, 0.0)
    if name == 'leaky-relu':
        return np.where(z > 0, z, LEAK * z)
    if name == 'linear':
        return z.copy()
    if name == 'softmax':
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    raise ValueError(f'unknown activation {name}')


def backward_activation(name, g, z, a):
    """dL/dz from dL/da, as torch's autograd computes it (sigmoid and tanh from the output)."""
    if name == 'sigmoid':
        return g * a * (1 - a)
    if name == 'tanh':
        return g * (1 - a * a)
    if name == 'relu':
        return np.where(z > 0, g, 0.0)
    if name == 'leaky-relu':
        return np.where(z > 0, g, LEAK * g)
    if name == 'linear':
        return g
    raise ValueError(f'no elementwise derivative for {name}')


def forward(params, acts, X):
    """Pre-activations Z and activations A (A[0] = X), samples in rows."""
    A, Z = [X], []
    for (W, b), f in zip(params, acts):
        z = A[-1] @ W.T + b
        Z.append(z)
        A.append(activate(f, z))
    return Z, A


def sample_losses(loss, z, a, Y):
    if loss == 'mse':
        return ((a - Y) ** 2).mean(axis=1)
    if loss == 'binary-cross-entropy':
        return (np.maximum(z, 0) - z * Y + np.log1p(np.exp(-np.abs(z)))).mean(axis=1)
    if loss == 'cross-entropy':
        mx = z.max(axis=1, keepdims=True)
        log_softmax = z - mx - np.log(np.exp(z - mx).sum(axis=1, keepdims=True))
        return -(Y * log_softmax).sum(axis=1)
    raise ValueError(f'unknown loss {loss}')


def correct_count(output, a, Y):
    if output == 'softmax':
        return int((a.argmax(axis=1) == Y.argmax(axis=1)).sum())
    if output == 'sigmoid':
        return int(((a >= 0.5) == (Y >= 0.5)).sum())
    return 0


def accuracy_units(output, m):
    return 1 if output == 'softmax' else m if output == 'sigmoid' else 0


def loss_and_grads(params, acts, loss, X, Y):
    """Per-sample losses, the gradient of the batch-mean loss [(dW, db), ...], and the outputs."""
    B, m = Y.shape
    Z, A = forward(params, acts, X)
    z, a = Z[-1], A[-1]
    losses = sample_losses(loss, z, a, Y)
    if loss == 'mse':
        d = backward_activation(acts[-1], 2 * (a - Y) / (B * m), z, a)
    elif loss == 'binary-cross-entropy':
        d = (activate('sigmoid', z) - Y) / (B * m)
    else:  # d/dz of -sum_j y_j log_softmax(z)_j is softmax(z) * sum_j y_j - y
        d = (activate('softmax', z) * Y.sum(axis=1, keepdims=True) - Y) / B
    grads = [None] * len(params)
    for k in range(len(params) - 1, -1, -1):
        grads[k] = (d.T @ A[k], d.sum(axis=0))
        if k > 0:
            d = backward_activation(acts[k - 1], d @ params[k][0], Z[k - 1], A[k])
    return losses, grads, a


class SGD:
    def __init__(self, fit):
        self.lr = fit.get('lr', 0.01)
        self.momentum = fit.get('momentum', 0.0)
        self.nesterov = fit.get('nesterov', False)
        self.wd = fit.get('weightDecay', 0.0)
        self.buf = None

    def step(self, params, grads):
        if self.buf is None:
            self.buf = [None] * len(params)
        for i, (p, g) in enumerate(zip(params, grads)):
            d = g + self.wd * p if self.wd != 0 else g
            if self.momentum != 0:
                self.buf[i] = d.copy() if self.buf[i] is None else self.buf[i] * self.momentum + d
                d = d + self.momentum * self.buf[i] if self.nesterov else self.buf[i]
            p -= self.lr * d


class Adam:
    def __init__(self, fit):
        self.lr = fit.get('lr', 0.001)
        self.b1 = fit.get('beta1', 0.9)
        self.b2 = fit.get('beta2', 0.999)
        self.eps = fit.get('eps', 1e-8)
        self.wd = fit.get('weightDecay', 0.0)
        self.t = 0
        self.m = self.v = None

    def step(self, params, grads):
        if self.m is None:
            self.m = [np.zeros_like(p) for p in params]
            self.v = [np.zeros_like(p) for p in params]
        self.t += 1
        step_size = self.lr / (1 - self.b1 ** self.t)
        bc2_sqrt = math.sqrt(1 - self.b2 ** self.t)
        for i, (p, g) in enumerate(zip(params, grads)):
            if self.wd != 0:
                g = g + self.wd * p
            self.m[i] = self.m[i] + (1 - self.b1) * (g - self.m[i])  # torch lerp_, weight < 0.5
            self.v[i] = self.v[i] * self.b2 + (1 - self.b2) * g * g  # mul_ then addcmul_
            denom = np.sqrt(self.v[i]) / bc2_sqrt + self.eps
            p -= step_size * (self.m[i] / denom)  # addcdiv_(m, denom, value=-step_size)


def clip_grad_norm(grads, max_norm, eps):
    """torch.nn.utils.clip_grad_norm_. Returns the (possibly) scaled gradients and whether they were scaled."""
    norm = math.sqrt(sum(float((g * g).sum()) for g in grads))
    coef = max_norm / (norm + eps)
    if coef >= 1:
        return grads, False
    return [g * coef for g in grads], True


def train(case, clip_eps):
    model = case['model']
    layers = model['layers']
    acts = [l['activation'] for l in layers]
    loss, output = model['loss'], acts[-1]
    params = []  # flat list W1, b1, W2, b2, ...: the optimizers' parameter list
    for l in layers:
        params += [np.array(l['weights'], dtype=np.float64).reshape(l['outputs'], l['inputs']),
                   np.array(l['bias'], dtype=np.float64)]
    pairs = lambda: [(params[2 * k], params[2 * k + 1]) for k in range(len(layers))]
    X = np.array(case['train']['x'], dtype=np.float64)
    Y = np.array(case['train']['y'], dtype=np.float64)
    N, m = Y.shape
    fit = case['fit']
    B = min(fit['batchSize'], N)
    opt = Adam(fit) if fit.get('optimizer', 'sgd') == 'adam' else SGD(fit)
    units = accuracy_units(output, m)
    history, clipped = [], 0
    for e in range(fit['epochs']):
        order = np.array(case['orders'][e]) if fit.get('shuffle', True) else np.arange(N)
        loss_sum, correct = 0.0, 0
        for start in range(0, N, B):
            idx = order[start:start + B]
            losses, grads, a = loss_and_grads(pairs(), acts, loss, X[idx], Y[idx])
            loss_sum += float(losses.sum())
            correct += correct_count(output, a, Y[idx])
            flat = [t for wb in grads for t in wb]
            if fit.get('clipNorm') is not None:
                flat, scaled = clip_grad_norm(flat, fit['clipNorm'], clip_eps)
                clipped += scaled
            opt.step(params, flat)
        history.append({'loss': loss_sum / N, 'accuracy': correct / (N * units) if units else None})
    Xt = np.array(case['test']['x'], dtype=np.float64)
    Yt = np.array(case['test']['y'], dtype=np.float64)
    Z, A = forward(pairs(), acts, Xt)
    evaluate = {
        'loss': float(sample_losses(loss, Z[-1], A[-1], Yt).mean()),
        'accuracy': correct_count(output, A[-1], Yt) / (len(Yt) * units) if units else None,
    }
    final = [{'W': W.tolist(), 'b': b.tolist()} for W, b in pairs()]
    return {'final': final, 'history': history, 'evaluate': evaluate, 'clippedSteps': clipped}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('cases', help="cases JSON from scripts/reference-cases.mjs, or - for stdin")
    ap.add_argument('out', help='fixture to write, or - for stdout')
    ap.add_argument('--clip-eps', type=float, default=1e-6,
                    help='added to the norm by clip_grad_norm_ (torch: 1e-6; 0 gives the old formula)')
    args = ap.parse_args()
    src = json.load(sys.stdin if args.cases == '-' else open(args.cases))
    if src.get('format') != 'bptrain-reference-cases':
        sys.exit(f'{args.cases}: not a cases file from scripts/reference-cases.mjs')
    cases = []
    for case in src['cases']:
        cases.append({**case, 'expected': train(case, args.clip_eps)})
        c = cases[-1]
        print(f"{c['name']:36s} loss {c['expected']['history'][0]['loss']:.6f} -> {c['expected']['history'][-1]['loss']:.6f}"
              + (f", clipped {c['expected']['clippedSteps']} steps" if 'clipNorm' in c['fit'] else ''), file=sys.stderr)
    head = {
        'format': 'bptrain-torch-reference', 'version': 1,
        'note': 'Generated by scripts/torch-reference.py from scripts/reference-cases.mjs; do not edit.',
    }
    # One case per line, so that a regenerated fixture diffs case by case.
    dump = lambda v: json.dumps(v, separators=(',', ':'), allow_nan=False)
    text = dump(head)[:-1] + ',"cases":[\n' + ',\n'.join(dump(c) for c in cases) + '\n]}\n'
    if args.out == '-':
        sys.stdout.write(text)
    else:
        with open(args.out, 'w') as f:
            f.write(text)


if __name__ == '__main__':
    main()
