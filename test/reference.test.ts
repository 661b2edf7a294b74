// bptrain against an independent float64 reference with PyTorch's semantics. The fixture
// (test/fixtures/reference/torch-reference.json) holds, for each case, the initial model in the
// model file format, the data, the fit options (and the epoch orders of shuffled cases), and what
// numpy computed from them with torch's formulas for the layers, losses, SGD/Adam and
// clip_grad_norm_ (scripts/torch-reference.py). Regenerate it with:
//   npm run build && node scripts/reference-cases.mjs | python3 scripts/torch-reference.py - test/fixtures/reference/torch-reference.json
// Each case trains on 1 and on 2 worker threads; both must match the reference to 1e-12 (relative)
// and each other bit for bit.
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { Trainer, makeDataset, parseModelText, type FitOptions, type ModelFile } from '../src/index.js';
import { sameBits } from './helpers.js';

interface Expected {
  final: { W: number[][]; b: number[] }[];
  history: { loss: number; accuracy: number | null }[];
  evaluate: { loss: number; accuracy: number | null };
  clippedSteps: number;
}
interface Case {
  name: string;
  model: ModelFile;
  train: { x: number[][]; y: number[][] };
  test: { x: number[][]; y: number[][] };
  fit: FitOptions;
  orders?: number[][];
  expected: Expected;
}
/** What one training run produced, in the fixture's shapes. */
interface Result {
  params: Float64Array;
  final: Expected['final'];
  history: Expected['history'];
  evaluate: Expected['evaluate'];
}

const fixture = JSON.parse(readFileSync(new URL('./fixtures/reference/torch-reference.json', import.meta.url), 'utf8')) as
  { format: string; version: number; cases: Case[] };
const TOL = 1e-12;

/** Largest differences seen over all cases, reported at the end. */
const worst = { params: 0, loss: 0, evaluate: 0 };

/** Normwise relative difference of two sets of numbers: max|a - b| / max|b|. */
function normwise(a: number[], b: number[]): number {
  if (a.length !== b.length) return Infinity;
  let d = 0, s = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i] - b[i]));
    s = Math.max(s, Math.abs(b[i]));
  }
  return s === 0 ? d : d / s;
}
const relative = (a: number, b: number): number => Math.abs(a - b) / Math.abs(b);
const flatParams = (final: Expected['final']): number[] => final.flatMap((l) => [...l.W.flat(), ...l.b]);

/** The differences of a result from the reference that exceed TOL, each a message naming the case;
 *  empty when it matches. */
function compare(name: string, got: Omit<Result, 'params'>, want: Expected, record = false): string[] {
  const problems: string[] = [];
  const dp = normwise(flatParams(got.final), flatParams(want.final));
  if (!(dp <= TOL)) problems.push(`${name}: final weights and biases differ from the reference by ${dp.toExponential(2)} (normwise relative)`);
  if (got.history.length !== want.history.length) problems.push(`${name}: ${got.history.length} epochs, the reference has ${want.history.length}`);
  let dl = 0;
  want.history.forEach((w, e) => {
    const g = got.history[e];
    if (g === undefined) return;
    const d = relative(g.loss, w.loss);
    dl = Math.max(dl, d);
    if (!(d <= TOL)) problems.push(`${name}: epoch ${e + 1} loss ${g.loss} differs from the reference's ${w.loss} by ${d.toExponential(2)} (relative)`);
    if (g.accuracy !== w.accuracy) problems.push(`${name}: epoch ${e + 1} accuracy ${g.accuracy}, the reference has ${w.accuracy}`);
  });
  const de = relative(got.evaluate.loss, want.evaluate.loss);
  if (!(de <= TOL)) problems.push(`${name}: evaluate loss ${got.evaluate.loss} differs from the reference's ${want.evaluate.loss} by ${de.toExponential(2)} (relative)`);
  if (got.evaluate.accuracy !== want.evaluate.accuracy) problems.push(`${name}: evaluate accuracy ${got.evaluate.accuracy}, the reference has ${want.evaluate.accuracy}`);
  if (record) {
    worst.params = Math.max(worst.params, dp);
    worst.loss = Math.max(worst.loss, dl);
    worst.evaluate = Math.max(worst.evaluate, de);
  }
  return problems;
}

/** Trains the case's initial model on its data with `threads` worker threads, then evaluates it on the test set. */
async function run(c: Case, threads: number): Promise<Result> {
  const model = parseModelText(JSON.stringify(c.model), `${c.name} (initial model)`);
  const trainer = new Trainer(model, { threads });
  try {
    const history = await trainer.fit(makeDataset(c.train.x, c.train.y), c.fit);
    const ev = await trainer.evaluate(makeDataset(c.test.x, c.test.y));
    return {
      params: Float64Array.from(model.params),
      final: model.toJSON().layers.map((l) => ({ W: l.weights, b: l.bias })),
      history: history.epochs.map((e) => ({ loss: e.loss, accuracy: e.accuracy ?? null })),
      evaluate: { loss: ev.loss, accuracy: ev.accuracy ?? null },
    };
  } finally {
    await trainer.close();
  }
}

describe('training matches a numpy reference with PyTorch semantics (1e-12), on 1 and 2 threads bit for bit', () => {
  it('the fixture is the expected format and covers the cases it should', () => {
    expect(fixture.format).toBe('bptrain-torch-reference');
    expect(fixture.version).toBe(1);
    expect(fixture.cases.length).toBeGreaterThanOrEqual(15);
    expect(new Set(fixture.cases.map((c) => c.name)).size).toBe(fixture.cases.length);
    const clipped = fixture.cases.filter((c) => c.fit.clipNorm !== undefined);
    expect(clipped.length).toBeGreaterThanOrEqual(2);
    // The clipping cases are only a test of clipping if the reference clipped on some steps.
    for (const c of clipped) expect(c.expected.clippedSteps, c.name).toBeGreaterThan(0);
    // Shuffled cases carry the orders the reference used.
    for (const c of fixture.cases.filter((c) => c.fit.shuffle === true)) expect(c.orders?.length, c.name).toBe(c.fit.epochs);
  });

  for (const c of fixture.cases) {
    it(c.name, async () => {
      const one = await run(c, 1);
      const two = await run(c, 2);
      expect(compare(`${c.name}, threads 1`, one, c.expected, true)).toEqual([]);
      expect(compare(`${c.name}, threads 2`, two, c.expected, true)).toEqual([]);
      expect(sameBits(one.params, two.params), `${c.name}: weights on 1 and 2 threads are not bitwise equal`).toBe(true);
      two.history.forEach((h, e) =>
        expect(Object.is(h.loss, one.history[e].loss), `${c.name}: epoch ${e + 1} loss on 1 and 2 threads is not bitwise equal`).toBe(true));
      expect(Object.is(two.evaluate.loss, one.evaluate.loss), `${c.name}: evaluate loss on 1 and 2 threads is not bitwise equal`).toBe(true);
    });
  }

  it('negative control: the comparison reports, naming the case, expectations perturbed by ten times the tolerance', async () => {
    const c = fixture.cases.find((k) => k.fit.clipNorm !== undefined)!;
    const got = await run(c, 1);
    expect(compare(c.name, got, c.expected)).toEqual([]);
    // One weight moved by 1e-11 of the largest |w|: ten times the tolerance.
    const w = structuredClone(c.expected);
    const scale = Math.max(...flatParams(w.final).map(Math.abs));
    w.final[0].W[0][0] += 1e-11 * scale;
    const problems = compare(c.name, got, w);
    expect(problems).toHaveLength(1);
    expect(problems[0].startsWith(`${c.name}: final weights and biases differ`)).toBe(true);
    // One epoch's loss and the evaluate loss moved by 1e-11 (relative).
    const l = structuredClone(c.expected);
    l.history[1].loss *= 1 + 1e-11;
    l.evaluate.loss *= 1 - 1e-11;
    const lossProblems = compare(c.name, got, l);
    expect(lossProblems).toHaveLength(2);
    expect(lossProblems[0].startsWith(`${c.name}: epoch 2 loss`)).toBe(true);
    expect(lossProblems[1].startsWith(`${c.name}: evaluate loss`)).toBe(true);
  });

  afterAll(() => {
    console.log(`reference test, largest differences over all cases and both thread counts: weights ${worst.params.toExponential(2)} (normwise), `
      + `epoch loss ${worst.loss.toExponential(2)}, evaluate loss ${worst.evaluate.toExponential(2)} (relative); tolerance ${TOL}`);
  });
});
