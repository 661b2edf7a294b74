// The model file: documented layout, bit-exact round trip, and strict validation of what it reads.
import { mkdtempSync, readFileSync, writeFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DataError, Model, ModelFormatError, OptionError, StateError, Trainer, computeNormalization, createModel, isBptrainError, loadDataset, loadModel, makeDataset, modelToText, normalizeInPlace, parseModelText, saveModel } from '../src/index.js';
import { sameBits } from './helpers.js';

const dir = mkdtempSync(path.join(tmpdir(), 'bptrain-model-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('computeNormalization', () => {
  const naive = (X: number[][]) => {
    const n = X.length, d = X[0].length;
    const mean = Array.from({ length: d }, (_, j) => X.reduce((a, r) => a + r[j], 0) / n);
    const std = Array.from({ length: d }, (_, j) => Math.sqrt(X.reduce((a, r) => a + (r[j] - mean[j]) ** 2, 0) / n));
    return { mean, std };
  };
  const flat = (X: number[][]) => Float64Array.from(X.flat());
  it('gives the bits of the plain two-pass formula on ordinary data (scaling by a power of two is exact)', () => {
    const X = Array.from({ length: 500 }, (_, i) => [Math.sin(i) * 255, Math.cos(i * 3) / 7 + 2, (i % 13) - 6.5]);
    expect(computeNormalization(flat(X), 500, 3)).toEqual(naive(X));
  });
  it('stays finite up to the largest doubles, and standardises data of any scale alike', () => {
    const X = Array.from({ length: 100 }, (_, i) => [Math.sin(i) * 1e300, 1.7e308 - i * 1e305, Math.sin(i) * 1e-13]);
    const { mean, std } = computeNormalization(flat(X), 100, 3);
    expect([...mean, ...std].every(Number.isFinite)).toBe(true);
    expect(std[0] / 1e300).toBeCloseTo(naive(X.map((r) => [r[0] / 1e300])).std[0], 12);
    expect(std[2] / 1e-13).toBeCloseTo(naive(X.map((r) => [r[2] / 1e-13])).std[0], 12); // not taken for constant
  });
  it('at the very top of the doubles: std never rounds up to Infinity, and applying it never overflows', () => {
    const M = Number.MAX_VALUE;
    for (const X of [[[M], [-M]], [[M], [-M], [M], [-M]], [[1.7e308], [-1.7e308], [-1.7e308]]]) {
      const norm = computeNormalization(flat(X), X.length, 1);
      expect(Number.isFinite(norm.mean[0]) && Number.isFinite(norm.std[0]) && norm.std[0] <= M).toBe(true);
      const x = flat(X);
      normalizeInPlace(x, X.length, 1, norm);
      expect(x.every(Number.isFinite), JSON.stringify(X)).toBe(true);
      expect(() => parseModelText(JSON.stringify({ ...JSON.parse(modelToText(createModel({ layers: [1, 1] }))), normalization: norm }))).not.toThrow();
    }
    expect(computeNormalization(Float64Array.of(1e-320, 0, 2e-320), 3, 1).std[0]).toBe(1); // 1/std must be finite
  });
  it('a feature whose spread is rounding noise next to its size is constant: divided by its size, so it normalises to about 0', () => {
    const X = Array.from({ length: 100 }, (_, i) => [123456.789, i, 0, 1e200]);
    const norm = computeNormalization(flat(X), 100, 4);
    expect(norm.std[0]).toBe(123456.789);
    expect(norm.std[1]).toBeCloseTo(naive(X).std[1], 12);
    expect(norm.std[2]).toBe(1); // all zeros
    expect(norm.std[3]).toBe(1e200);
    const x = flat(X);
    normalizeInPlace(x, 100, 4, norm);
    for (let i = 0; i < 100; i++) for (const j of [0, 2, 3]) expect(Math.abs(x[i * 4 + j])).toBeLessThan(1e-12);
  });
});

describe('Model in code', () => {
  it('new Model(spec, params) takes params of exactly the padded layout length, and refuses any other', () => {
    const m = createModel({ layers: [2, 3, 1], seed: 3 });
    expect(m.layout.stride).toBeGreaterThan(m.parameterCount); // padded
    const copy = new Model(m.layout.spec, Float64Array.from(m.params));
    expect(sameBits(copy.params, m.params)).toBe(true);
    expect(copy.predict([[0.3, -0.2]])).toEqual(m.predict([[0.3, -0.2]]));
    // Shorter: the weights it lacks would be 0 (a 0.5 everywhere); longer: silently cut short.
    for (const bad of [new Float64Array(m.parameterCount), new Float64Array(3), new Float64Array(m.layout.stride + 1), Array.from(m.params)]) {
      const err = (() => { try { return new Model(m.layout.spec, bad as Float64Array); } catch (e) { return e; } })();
      expect(err).toBeInstanceOf(OptionError);
      expect(err).toMatchObject({ option: 'params' });
      expect((err as Error).message).toMatch(new RegExp(`^params must be a Float64Array of ${m.layout.stride} numbers, in the layout of model.params \\(the ${m.parameterCount} weights and biases, each layer's block padded to 64 bytes`));
    }
    expect(() => new Model(m.layout.spec, new Float64Array(3))).toThrow(/received a Float64Array of 3 numbers$/);
  });
  it('model.forward checks its inputs as predict does: exactly n × inputs finite numbers', () => {
    const m = createModel({ layers: [2, 3, 1], seed: 3 });
    expect(m.forward(Float64Array.from([0.3, -0.2, 1, 2]), 2)).toEqual(Float64Array.from(m.predict([[0.3, -0.2], [1, 2]]).flat()));
    expect(m.forward(new Float64Array(0), 0)).toEqual(new Float64Array(0));
    // Were these not checked, the first would read past the end of X, the NaN give a plausible 0.5.
    expect(() => m.forward(new Float64Array(2), 5)).toThrow(OptionError);
    expect(() => m.forward(new Float64Array(2), 5)).toThrow('X has 2 numbers, but n × inputs is 5 × 2 = 10');
    expect(() => m.forward(new Float64Array(6), 2)).toThrow('X has 6 numbers, but n × inputs is 2 × 2 = 4');
    expect(() => m.forward(Float64Array.from([0.5, NaN]), 1)).toThrow('X[1] must be a finite number (sample 0, input 1); received NaN (number)');
    expect(() => m.forward(Float64Array.from([Infinity, 1]), 1)).toThrow(OptionError);
    expect(() => m.forward([1, 2] as never, 1)).toThrow('X must be a Float64Array (n × inputs, sample-major); received [1, 2] (array)');
    expect(() => m.forward(new Float64Array(2), 1.5)).toThrow('n must be the number of samples, an integer ≥ 0; received 1.5 (number)');
  });
});

describe('model file', () => {
  it('saving into a directory that does not exist names the file asked for, not a temporary one', async () => {
    const file = path.join(dir, 'no-such-dir', 'm.json');
    const err = await saveModel(createModel({ layers: [2, 1] }), file).catch((e: unknown) => e as Error & { code?: string });
    expect(err.message).toBe(`cannot write ${file}: the directory ${path.dirname(file)} does not exist`);
    expect(err.code).toBe('ENOENT');
    expect(err.message).not.toMatch(/\.tmp/);
  });
  it("writes the documented layout: layers[k].weights[m][n] is W(k+1) row m, column n", async () => {
    const model = createModel({ layers: [2, 3, 2, 1], hidden: 'sigmoid', output: 'sigmoid', seed: 7 });
    const file = path.join(dir, 'm.json');
    await saveModel(model, file);
    const json = JSON.parse(readFileSync(file, 'utf8'));
    expect(json.format).toBe('bptrain-model');
    expect(json.version).toBe(1);
    expect(json.loss).toBe('binary-cross-entropy');
    expect(json.layers.map((l: { inputs: number; outputs: number; activation: string }) => [l.inputs, l.outputs, l.activation]))
      .toEqual([[2, 3, 'sigmoid'], [3, 2, 'sigmoid'], [2, 1, 'sigmoid']]);
    expect(json.layers[1].weights[1][2]).toBe(model.views.W[1][1 * 3 + 2]);
    expect(json.layers[1].bias).toHaveLength(2);
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });
  it('loads back bit-exact, awkward doubles included', async () => {
    const model = createModel({ layers: [3, 4, 2], seed: 3 });
    model.views.W[0][0] = 0.1 + 0.2;
    model.views.W[0][1] = 5e-324;
    model.views.W[0][2] = -0;
    model.views.b[1][0] = 1.7976931348623157e308;
    model.target = { kind: 'classes', classes: ['cat', 'dog'], outputs: 2 };
    model.normalization = { mean: [1, 2, 3], std: [0.5, 1, 2] };
    const file = path.join(dir, 'exact.json');
    await saveModel(model, file);
    const back = await loadModel(file);
    expect(sameBits(back.params, model.params)).toBe(true); // -0 included
    expect(Array.from(back.params)).toEqual(Array.from(model.params));
    expect(back.target).toEqual(model.target);
    expect(back.normalization).toEqual(model.normalization);
    expect(back.predict([[0.1, 0.2, 0.3]])).toEqual(model.predict([[0.1, 0.2, 0.3]]));
  });
  it('refuses to write non-finite weights and leaves the old file alone', async () => {
    const model = createModel({ layers: [2, 2], seed: 1 });
    const file = path.join(dir, 'keep.json');
    await saveModel(model, file);
    const before = readFileSync(file, 'utf8');
    model.views.W[0][1] = NaN;
    await expect(saveModel(model, file)).rejects.toThrow(ModelFormatError);
    expect(readFileSync(file, 'utf8')).toBe(before);
  });
  it("checks a model's target, normalization and inputFields as its file's reader does: when set, and again when used or saved", async () => {
    const model = createModel({ layers: [2, 4, 3], seed: 1 });
    // When set: a normalisation of the wrong size, a target of the wrong width, fields for 3 inputs.
    expect(() => (model.normalization = { mean: [0], std: [1] })).toThrow(OptionError);
    expect(() => (model.normalization = { mean: [0, 0], std: [0, 1] })).toThrow(/model\.normalization is not valid: "normalization\.std" must be an array of 2 positive numbers/);
    expect(() => (model.target = { kind: 'binary', outputs: 1 })).toThrow(/model\.target is not valid: "target\.outputs" is 1, but the last layer has 3 outputs/);
    expect(() => (model.target = { kind: 'classes', outputs: 3, classes: ['a', 'b'] })).toThrow(OptionError);
    expect(() => (model.inputFields = { features: ['a', 'b', 'c'] })).toThrow(OptionError);
    expect(model.normalization).toBeUndefined();
    // Changed in place after being set: refused where used, and never saved.
    model.normalization = { mean: [0, 0], std: [1, 1] };
    model.target = { kind: 'classes', outputs: 3, classes: ['a', 'b', 'c'] };
    const file = path.join(dir, 'settings.json');
    await saveModel(model, file);
    const before = readFileSync(file, 'utf8');
    expect((await loadModel(file)).normalization).toEqual({ mean: [0, 0], std: [1, 1] });
    model.normalization.mean.pop();
    expect(() => model.predict([[0.5, 0.5]])).toThrow(/model\.normalization is not valid/);
    await expect(saveModel(model, file)).rejects.toThrow(OptionError);
    const trainer = new Trainer(model, { threads: 1 });
    await expect(trainer.fit(makeDataset([[0, 1], [1, 0]], [0, 1], { classes: 3 }))).rejects.toThrow(OptionError);
    await trainer.close();
    model.normalization = undefined;
    model.target!.classes!.pop();
    await expect(saveModel(model, file)).rejects.toThrow(/model\.target is not valid/);
    expect(readFileSync(file, 'utf8')).toBe(before);
    model.target = undefined;
    await saveModel(model, file);
    expect((await loadModel(file)).target).toBeUndefined();
    // computeNormalization refuses what it cannot standardise rather than returning NaN.
    expect(() => computeNormalization(new Float64Array(3), 2, 2)).toThrow(/X has 3 numbers, fewer than n × n0 = 4/);
    expect(() => computeNormalization(Float64Array.of(1, NaN), 1, 2)).toThrow(OptionError);
  });
  it("isBptrainError tells bptrain's own errors from others; a file that cannot be read carries the system's error as cause", async () => {
    const missing = path.join(dir, 'missing.ndjson');
    const errors = await Promise.all([
      loadDataset(missing).catch((e: unknown) => e),
      loadModel(missing).catch((e: unknown) => e),
      saveModel({} as never, path.join(dir, 'x.json')).catch((e: unknown) => e),
      new Trainer(createModel({ layers: [1, 1] }), { threads: 1 }).close().then(() => null),
    ]);
    expect(errors[0]).toBeInstanceOf(DataError);
    expect((errors[0] as Error).cause).toMatchObject({ code: 'ENOENT' });
    expect(errors[1]).toBeInstanceOf(ModelFormatError);
    expect((errors[1] as Error).cause).toMatchObject({ code: 'ENOENT' });
    expect(errors[2]).toBeInstanceOf(OptionError);
    expect(errors[2]).toMatchObject({ option: 'model' });
    for (const e of [...errors.slice(0, 3), new StateError('x')]) expect(isBptrainError(e)).toBe(true);
    for (const e of [new TypeError('x'), new DOMException('x', 'AbortError'), Object.assign(new Error('x'), { code: 'ENOENT' }), { code: 'BPTRAIN_DATA' }, null])
      expect(isBptrainError(e)).toBe(false);
  });
  const good = () => JSON.parse(JSON.stringify(createModel({ layers: [2, 3, 1], seed: 1 }).toJSON()));
  const bad: [string, (m: any) => unknown, RegExp][] = [
    ['wrong format', (m) => ((m.format = 'keras'), m), /"format" must be "bptrain-model"/],
    ['unknown version', (m) => ((m.version = 2), m), /unsupported version 2/],
    ['wrong row count', (m) => (m.layers[0].weights.pop(), m), /layers\[0\]\.weights must be an array of 3 rows/],
    ['null weight', (m) => ((m.layers[1].weights[0][2] = null), m), /layers\[1\]\.weights\[0\]\[2\] must be a finite number \(got null\)/],
    ['string weight', (m) => ((m.layers[0].bias[1] = '1'), m), /layers\[0\]\.bias\[1\] must be a finite number/],
    ['chain mismatch', (m) => ((m.layers[1].inputs = 4), m), /layers\[1\]\.inputs is 4, but layers\[0\]\.outputs is 3/],
    ['huge sizes', (m) => ((m.layers[0].outputs = 1e9), m), /layers\[0\]\.outputs must be an integer in 1\.\./],
    ['bad activation', (m) => ((m.layers[0].activation = 'gelu'), m), /layers\[0\]\.activation must be one of/],
    ['not an object', () => [1, 2], /expected a JSON object/],
  ];
  for (const [name, mutate, message] of bad) {
    it(`rejects ${name} with a ModelFormatError`, () => {
      const text = JSON.stringify(mutate(good()));
      expect(() => parseModelText(text, 'm.json')).toThrow(ModelFormatError);
      expect(() => parseModelText(text, 'm.json')).toThrow(message);
    });
  }
  it('rejects a truncated file and does not let __proto__ keys pollute', async () => {
    const text = JSON.stringify(good());
    expect(() => parseModelText(text.slice(0, text.length / 2), 'm.json')).toThrow(/m\.json: not valid JSON.*truncated/);
    const evil = text.replace('{', '{"__proto__":{"polluted":true},');
    parseModelText(evil, 'm.json');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const file = path.join(dir, 'missing.json');
    await expect(loadModel(file)).rejects.toThrow(/missing\.json: no such file/);
    await expect(loadModel(file)).rejects.toMatchObject({ cause: { code: 'ENOENT' } }); // missing, not corrupt
    writeFileSync(path.join(dir, 'empty.json'), '');
    await expect(loadModel(path.join(dir, 'empty.json'))).rejects.toThrow(ModelFormatError);
  });
});
