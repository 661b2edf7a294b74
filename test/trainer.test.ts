// The trainer as a service uses it: options, abort, close, events, two trainers at once.
import { spawnSync } from 'node:child_process';
import { getEventListeners } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CheckpointError, DataError, OptionError, StateError, Trainer, createModel, decodeOutput, isBptrainError, makeDataset, type Dataset } from '../src/index.js';
import { randomData, sameBits } from './helpers.js';

function loadNdjson(file: string): Dataset {
  const rows = readFileSync(new URL(file, import.meta.url), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  return makeDataset(rows.map((r) => r.x), rows.map((r) => r.y));
}

describe("the tutorial's example", () => {
  it('2-3-2-1 sigmoid network reaches ≥ 95% held-out accuracy on the bundled data', async () => {
    const train = loadNdjson('../data/tutorial-train.ndjson');
    const test = loadNdjson('../data/tutorial-test.ndjson');
    const model = createModel({ layers: [2, 3, 2, 1], hidden: 'sigmoid', output: 'sigmoid', loss: 'binary-cross-entropy', seed: 7 });
    await using trainer = new Trainer(model);
    const history = await trainer.fit(train, { epochs: 60, batchSize: 16, lr: 0.5, momentum: 0.9, seed: 7, validation: test });
    const last = history.epochs.at(-1)!;
    expect(last.valAccuracy).toBeGreaterThanOrEqual(0.95);
    expect(last.loss).toBeLessThan(history.epochs[0].loss);
    const metrics = await trainer.evaluate(test);
    expect(metrics.accuracy).toBe(last.valAccuracy);
    expect(metrics.loss).toBeCloseTo(last.valLoss!, 12);
  });
});

describe('options are validated before any work', () => {
  const model = createModel({ layers: [3, 4, 2], seed: 1 });
  const data = randomData(1, 20, 3, 2, 'cross-entropy');
  const cases: [object, string, RegExp][] = [
    [{ lr: -1 }, 'lr', /lr must be a number in \(0, Infinity\); received -1/],
    [{ lr: 'abc' }, 'lr', /received "abc" \(string\)/],
    [{ epochs: 2.5 }, 'epochs', /epochs must be an integer from 1 to .*; received 2.5/],
    [{ batchSize: 0 }, 'batchSize', /batchSize .* received 0/],
    [{ optimizer: 'rmsprop' }, 'optimizer', /optimizer must be 'sgd' or 'adam'; received "rmsprop"/],
    [{ momentum: 1.5 }, 'momentum', /momentum .*received 1.5/],
    [{ optimizer: 'adam', momentum: 0.9 }, 'optimizer', /'sgd' when momentum/],
    [{ seed: 0.5 }, 'seed', /seed must be an integer; received 0.5/],
    [{ signal: {} }, 'signal', /signal must be an AbortSignal/],
    // A misspelt option would otherwise be ignored and its default used.
    [{ epoch: 3 }, 'epoch', /epoch is not one of the fit options \(did you mean epochs\?\)/],
    [{ learningRate: 0.5 }, 'learningRate', /learningRate is not one of the fit options; they are: epochs, batchSize/],
    [{ batch_size: 8 }, 'batch_size', /\(did you mean batchSize\?\)/],
    [{ momentun: 0.9 }, 'momentun', /\(did you mean momentum\?\)/],
    [{ batchSize: null }, 'batchSize', /batchSize must be a value, or left out \(undefined\) for its default; received null/],
  ];
  for (const [opts, option, message] of cases) {
    it(`rejects a bad ${option}: ${JSON.stringify(opts)}`, async () => {
      const trainer = new Trainer(model, { threads: 1 });
      const before = Float64Array.from(model.params);
      const err = await trainer.fit(data, opts).catch((e: unknown) => e);
      await trainer.close();
      expect(err).toBeInstanceOf(OptionError);
      expect((err as OptionError).option).toBe(option);
      expect((err as Error).message).toMatch(message);
      expect(model.params).toEqual(before);
    });
  }
  it('rejects a bad thread count and a bad layer list', () => {
    expect(() => new Trainer(model, { threads: 0 })).toThrow(/threads must be .*received 0/);
    expect(() => createModel({ layers: [3, -2, 1] })).toThrow(/layers\[1\] must be an integer .*received -2/);
    expect(() => createModel({ layers: [3, 2], output: 'softmax', loss: 'mse' })).toThrow(/loss must be 'cross-entropy'/);
  });
  it('undefined means the default (exactOptionalPropertyTypes callers may pass it)', async () => {
    const trainer = new Trainer(createModel({ layers: [3, 4, 2], seed: 1, hidden: undefined }), { threads: undefined });
    const h = await trainer.fit(data, { epochs: 2, batchSize: undefined, signal: undefined, onEpoch: undefined });
    await trainer.close();
    expect(h.epochs).toHaveLength(2);
    expect(h.epochs[0].steps).toBe(1); // 20 samples in batches of the default 32
  });
  it('rejects misspelt and null options of createModel, new Trainer and makeDataset', () => {
    expect(() => createModel({ layers: [3, 2], outputs: 'linear' } as never)).toThrow(/outputs is not one of the model options \(did you mean output\?\)/);
    expect(() => new Trainer(model, { thread: 2 } as never)).toThrow(/thread is not one of the Trainer options \(did you mean threads\?\)/);
    expect(() => new Trainer(model, { threads: null } as never)).toThrow(/threads must be a value, or left out/);
    expect(() => makeDataset([[1, 2]], [0], { class: 2 } as never)).toThrow(/class is not one of the makeDataset options \(did you mean classes\?\)/);
    expect(() => makeDataset([[1, 2]], [0], { classes: ['a', 'b'] } as never)).toThrow(/classes must be the number of classes/);
  });
  it('says which argument is wrong and what it received', async () => {
    expect(() => makeDataset(5 as never, [1])).toThrow('x must be an array of input rows; received 5 (number)');
    expect(() => makeDataset([[]], [1])).toThrow('x[0] must be a non-empty array of numbers; received [] (array)');
    expect(() => makeDataset([[1, 2]], ['ab'] as never)).toThrow('y[0] must be a number, or a non-empty array of numbers; received "ab" (string)');
    expect(() => makeDataset([[1, 2]], [[]])).toThrow(OptionError);
    expect(() => makeDataset([[1, NaN]], [1])).toThrow('sample 0: x[1] is NaN (number), not a finite number');
    const trainer = new Trainer(model, { threads: 1 });
    await expect(trainer.fit(data, { signal: new AbortController() as never })).rejects.toThrow('signal must be an AbortSignal; received an AbortController (object)');
    await expect(trainer.fit(data, { validation: 5 as never })).rejects.toThrow('validation must be a Dataset (makeDataset, or { size, inputDim, targetDim, x, y }); received 5 (number)');
    await expect(trainer.fit(makeDataset([[1, 2, 3]], [1]))).rejects.toThrow('(class indices? makeDataset(x, y, { classes: 2 }) one-hot encodes them)');
    await trainer.close();
  });
  it('a dataset array that is not a Float64Array is named, and described as it is', async () => {
    const trainer = new Trainer(createModel({ layers: [2, 1] }), { threads: 1 });
    const err = await trainer.evaluate({ size: 1, inputDim: 2, targetDim: 1, x: new Float64Array(2), y: [1] as never }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OptionError);
    expect(err).toMatchObject({ option: 'data.y', received: [1] });
    expect((err as Error).message).toBe('data.y must be a Float64Array (size × targetDim, sample-major; makeDataset builds one from arrays); received [1] (array)');
    await expect(trainer.fit(makeDataset([[0, 1]], [1]), { validation: { size: 1, inputDim: 2, targetDim: 1, x: [0, 0] as never, y: new Float64Array(1) } }))
      .rejects.toThrow('validation.x must be a Float64Array (size × inputDim, sample-major; makeDataset builds one from arrays); received [0, 0] (array)');
    await trainer.close();
  });
  it("createModel says when the output at fault is the loss's default, and refuses a hidden activation with no hidden layer", () => {
    const err = (() => { try { return createModel({ layers: [2, 1], loss: 'cross-entropy' }); } catch (e) { return e; } })();
    expect(err).toBeInstanceOf(OptionError);
    // The advice is about the loss the caller gave (a sigmoid output would be refused with it too).
    expect(err).toMatchObject({ option: 'loss', received: 'cross-entropy' });
    expect((err as Error).message).toBe(
      `loss 'cross-entropy' needs a softmax output, which needs 2 outputs or more, and this network has 1 (layers [2,1]); for one output use loss 'binary-cross-entropy' (a sigmoid output) or 'mse'; received "cross-entropy" (string)`);
    // Given by the caller, it is the caller's value.
    expect(() => createModel({ layers: [2, 1], output: 'softmax' })).toThrow('output must be sigmoid for a single output (softmax of one value is always 1); received "softmax" (string)');
    for (const hidden of ['tanh', 'sigmoid'] as const) {
      expect(() => createModel({ layers: [2, 1], hidden })).toThrow(OptionError);
      expect(() => createModel({ layers: [2, 1], hidden })).toThrow(`hidden must be left out for a network without hidden layers (layers [2,1]): it would apply to no layer; received "${hidden}" (string)`);
    }
    // The default asks for nothing, and no layers need no names.
    expect(createModel({ layers: [2, 1], hidden: 'relu' }).activations).toEqual(['sigmoid']);
    expect(createModel({ layers: [2, 1], hidden: [] }).activations).toEqual(['sigmoid']);
    expect(createModel({ layers: [2, 3, 1], hidden: 'tanh' }).activations).toEqual(['tanh', 'sigmoid']);
  });
  it('rejects a dataset that is not one, and NaN or infinite values with the sample that holds them', async () => {
    const trainer = new Trainer(model, { threads: 1 });
    const before = Float64Array.from(model.params);
    await expect(trainer.fit(null as never)).rejects.toThrow(OptionError);
    await expect(trainer.fit(null as never)).rejects.toThrow(/data must be a Dataset/);
    // Built by hand, and made by makeDataset and then changed: both found by the scan before any
    // work, with the same message.
    const base = randomData(1, 20, 3, 2, 'cross-entropy');
    const byHand = { ...base, x: Float64Array.from(base.x), y: Float64Array.from(base.y) };
    byHand.x[7 * 3 + 2] = NaN;
    base.x[7 * 3 + 2] = NaN;
    for (const bad of [byHand, base]) await expect(trainer.fit(bad, { shuffle: false })).rejects.toThrow(/data, sample 7: x\[2\] is NaN, not a finite number/);
    await expect(trainer.evaluate(byHand)).rejects.toThrow(DataError);
    // Arrays are scanned on every call, never remembered as checked: a service may change them
    // in place between calls (a NaN through relu gave a plausible loss once evaluate had seen them).
    const reused = makeDataset([[0.5, 0.5, 0.5], [0, 1, 0], [1, 0, 1]], [0, 1, 1], { classes: 2 });
    await trainer.evaluate(reused);
    for (const v of [NaN, Infinity]) {
      reused.x[1] = v;
      await expect(trainer.evaluate(reused)).rejects.toThrow(`data, sample 0: x[1] is ${v}, not a finite number`);
      await expect(trainer.fit(data, { validation: reused })).rejects.toThrow(`validation, sample 0: x[1] is ${v}`);
    }
    reused.x[1] = 0.5;
    const badY = { ...data, x: Float64Array.from(data.x), y: Float64Array.from(data.y) };
    badY.y[5 * 2 + 1] = Infinity;
    await expect(trainer.fit(data, { validation: badY })).rejects.toThrow(/validation, sample 5: y\[1\] is Infinity/);
    await trainer.close();
    expect(Object.is(model.params[0], before[0]) && model.params.every((v, i) => Object.is(v, before[i]))).toBe(true);
    expect(() => model.predict([[1, NaN, 2]])).toThrow(/inputs\[0\]\[1\] must be a finite number; received NaN/);
    expect(() => model.predict([['1', 2, 3]] as never)).toThrow(/inputs\[0\]\[0\] must be a finite number; received "1" \(string\)/);
    expect(() => model.predict(5 as never)).toThrow(/inputs must be an array of input rows/);
  });
  it("threads: 'auto' takes threads beyond one per chunk only when the gradient sums alone carry enough work", async () => {
    const cores = availableParallelism();
    const tiny = new Trainer(createModel({ layers: [2, 3, 2, 1] }), { threads: 'auto' });
    const mnist = new Trainer(createModel({ layers: [784, 128, 64, 10] }), { threads: 'auto' });
    expect([32, 256, 4096].map((b) => tiny.threadsFor(b))).toEqual([1, 1, 1]); // too little arithmetic for a second thread
    expect(mnist.threadsFor(16)).toBe(1); // 1 chunk; its sums alone would give 1.7 MFLOP a thread
    expect(mnist.threadsFor(32)).toBe(Math.min(2, cores)); // 1 chunk; its sums share out on 2 threads
    expect(mnist.threadsFor(256)).toBe(Math.min(8, cores)); // a thread per chunk, up to the cores
    const explicit = new Trainer(createModel({ layers: [2, 3, 2, 1] }), { threads: 8 });
    expect(explicit.threadsFor(16)).toBe(8); // asked for: the extra threads share the sums
    await Promise.all([tiny.close(), mnist.close(), explicit.close()]);
  });
  it("evaluate's outputs: true gives every sample's outputs from the same pass, equal to predict's, on 1 and 2 threads", async () => {
    const m = createModel({ layers: [3, 7, 2], seed: 3 });
    const set = randomData(2, 300, 3, 2, 'cross-entropy');
    const rows = Array.from({ length: set.size }, (_, i) => Array.from(set.x.subarray(i * 3, i * 3 + 3)));
    const expected = Float64Array.from(m.predict(rows).flat());
    for (const threads of [1, 2]) {
      const trainer = new Trainer(m, { threads });
      const r = await trainer.evaluate(set, { outputs: true });
      const plain = await trainer.evaluate(set);
      await trainer.close();
      expect(sameBits(r.outputs!, expected), `threads=${threads}`).toBe(true);
      expect([r.loss, r.accuracy]).toEqual([plain.loss, plain.accuracy]);
      expect(plain.outputs).toBeUndefined();
    }
  });
  it("trainer.predict gives model.predict's numbers bit for bit on 1, 2 and 3 threads, rows or flat; normalisation applied", async () => {
    const m = createModel({ layers: [3, 40, 2], seed: 4 });
    m.normalization = { mean: [0.1, -0.2, 0.3], std: [0.5, 2, 1.5] };
    const set = randomData(5, 1000, 3, 2, 'cross-entropy'); // 16 chunks of 64, the last partial
    const rows = Array.from({ length: set.size }, (_, i) => Array.from(set.x.subarray(i * 3, i * 3 + 3)));
    const expected = m.predict(rows);
    const X = Float64Array.from(set.x);
    for (const threads of [1, 2, 3]) {
      const trainer = new Trainer(m, { threads });
      const fromRows = await trainer.predict(rows);
      const flat = await trainer.predict(X);
      await trainer.close();
      expect(sameBits(Float64Array.from(fromRows.flat()), Float64Array.from(expected.flat())), `rows, threads=${threads}`).toBe(true);
      expect(sameBits(flat, Float64Array.from(expected.flat())), `flat, threads=${threads}`).toBe(true);
    }
    expect(sameBits(X, set.x)).toBe(true); // the caller's inputs are not normalised in place
  });
  it('trainer.predict refuses bad inputs and options before any work, and stops on its signal', async () => {
    const m = createModel({ layers: [3, 5, 2], seed: 4 });
    const trainer = new Trainer(m, { threads: 2 });
    await expect(trainer.predict(new Float64Array(7))).rejects.toThrow(/inputs has 7 numbers, not a multiple of 3/);
    await expect(trainer.predict(Float64Array.of(1, 2, 3, 4, NaN, 6))).rejects.toThrow(/inputs\[4\] must be a finite number \(sample 1, input 1\); received NaN/);
    await expect(trainer.predict([[1, 2]])).rejects.toThrow(/inputs\[0\] must be 3 numbers/);
    await expect(trainer.predict(new Float32Array(3) as never)).rejects.toThrow(/inputs must be a Float64Array \(n × inputs, sample-major\) or an array of input rows; received/);
    await expect(trainer.predict([[1, 2, 3]], { sigal: undefined } as never)).rejects.toThrow(/sigal is not one of the predict options \(did you mean signal\?\)/);
    await expect(trainer.predict([[1, 2, 3]], { signal: 'stop' } as never)).rejects.toThrow(/signal must be an AbortSignal/);
    await expect(trainer.predict([[1, 2, 3]], { signal: AbortSignal.abort(new Error('stopped')) })).rejects.toThrow(/^stopped$/);
    expect(await trainer.predict([])).toEqual([]);
    expect(await trainer.predict(new Float64Array(0))).toHaveLength(0);
    await trainer.close();
    await expect(trainer.predict([[1, 2, 3]])).rejects.toBeInstanceOf(StateError);
  });
  it('calls on one trainer wait their turn, in call order; a closed trainer refuses with a StateError', async () => {
    for (const threads of [1, 2]) {
      const mine = model.clone();
      const trainer = new Trainer(mine, { threads });
      const done: string[] = [];
      const first = trainer.fit(data, { epochs: 3, onEpoch: () => void done.push('fit1 epoch') }).then(() => done.push('fit1'));
      const second = trainer.fit(data, { epochs: 1 }).then(() => done.push('fit2'));
      const third = trainer.evaluate(data).then((m) => (done.push('evaluate'), m));
      const fourth = trainer.predict([[0.1, 0.2, 0.3]]).then(() => done.push('predict'));
      const [, , metrics] = await Promise.all([first, second, third, fourth]);
      expect(done).toEqual(['fit1 epoch', 'fit1 epoch', 'fit1 epoch', 'fit1', 'fit2', 'evaluate', 'predict']);
      // The same as making the calls one after the other.
      const ref = model.clone();
      const t2 = new Trainer(ref, { threads });
      await t2.fit(data, { epochs: 3 });
      await t2.fit(data, { epochs: 1 });
      expect((await t2.evaluate(data)).loss).toBe(metrics.loss);
      expect(Array.from(mine.params)).toEqual(Array.from(ref.params));
      await t2.close();
      await trainer.close();
      await expect(trainer.fit(data)).rejects.toMatchObject({ name: 'StateError', code: 'BPTRAIN_STATE' });
      await expect(trainer.predict([[0.1, 0.2, 0.3]])).rejects.toBeInstanceOf(StateError);
    }
  });
  it('twenty calls queued with one signal share one listener on it (no listener-leak warning), and none is left', async () => {
    const trainer = new Trainer(model.clone(), { threads: 1 });
    const shutdown = new AbortController();
    const warnings: string[] = [];
    const onWarning = (w: Error) => void warnings.push(w.name);
    process.on('warning', onWarning);
    const calls = Array.from({ length: 20 }, () => trainer.predict([[0.1, 0.2, 0.3]], { signal: shutdown.signal }));
    await Promise.all(calls);
    const aborted = Array.from({ length: 20 }, () => trainer.predict([[0.1, 0.2, 0.3]], { signal: shutdown.signal }));
    shutdown.abort();
    const outcomes = await Promise.allSettled(aborted);
    await new Promise((r) => setImmediate(r));
    process.off('warning', onWarning);
    expect(warnings).toEqual([]);
    expect(outcomes.filter((o) => o.status === 'rejected').length).toBeGreaterThanOrEqual(19); // the first may have finished
    await trainer.close();
  });
  it('fifteen trainers given one shutdown signal share one listener on it (no listener-leak warning), all stop on it, and none is left', async () => {
    const shutdown = new AbortController();
    const warnings: string[] = [];
    const onWarning = (w: Error) => void warnings.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    try {
      const trainers = Array.from({ length: 15 }, () => new Trainer(model.clone(), { threads: 1 }));
      let listening = -1;
      const fits = trainers.map((t, i) => t.fit(data, {
        epochs: 1_000_000, signal: shutdown.signal,
        // Once every fit runs: one listener for all fifteen, then shut down.
        onEpoch: i === 14 ? () => {
          listening = getEventListeners(shutdown.signal, 'abort').length;
          shutdown.abort();
        } : undefined,
      }));
      const outcomes = await Promise.allSettled(fits);
      expect(listening).toBe(1);
      for (const o of outcomes) expect(o).toMatchObject({ status: 'rejected', reason: { name: 'AbortError' } });
      // Calls that end without an abort leave no listener either.
      const again = new AbortController();
      await Promise.all(trainers.map((t) => t.evaluate(data, { signal: again.signal })));
      expect(getEventListeners(again.signal, 'abort')).toHaveLength(0);
      await Promise.all(trainers.map((t) => t.close()));
      await new Promise((r) => setImmediate(r));
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings).toEqual([]);
  });
  it('a call whose signal aborts while it waits for its turn rejects at once, and the queue goes on', async () => {
    const trainer = new Trainer(model.clone(), { threads: 1 });
    const controller = new AbortController();
    const first = trainer.fit(data, { epochs: 200 });
    const waiting = trainer.evaluate(data, { signal: controller.signal });
    const after = trainer.evaluate(data);
    controller.abort();
    await expect(waiting).rejects.toMatchObject({ name: 'AbortError' });
    const order: string[] = [];
    await Promise.all([first.then(() => order.push('fit')), after.then(() => order.push('after'))]);
    expect(order).toEqual(['fit', 'after']); // `after` still waited for the fit
    await trainer.close();
  });
  it('a checkpoint path that cannot be written is refused before any step (OptionError); a write that fails later is a CheckpointError', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'bptrain-ckpath-'));
    const m = model.clone();
    const trainer = new Trainer(m, { threads: 1 });
    const before = Float64Array.from(m.params);
    let steps = 0;
    const onStep = () => void steps++;
    const missing = path.join(dir, 'no-such-dir', 'x.ckpt');
    const plainFile = path.join(dir, 'plain');
    writeFileSync(plainFile, '');
    for (const [bad, why] of [[missing, `the directory ${path.dirname(missing)} does not exist`], [dir, `${dir} is a directory; give a file name`], [path.join(plainFile, 'x.ckpt'), `${plainFile} is not a directory`], [`${path.join(dir, 'newdir')}/`, `${path.join(dir, 'newdir')}/ ends in '/', so it names a directory; give a file name`]]) {
      // Were the path found out only by the first checkpoint, this would train an epoch first.
      const err = await trainer.fit(data, { epochs: 3, checkpoint: bad, onStep }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OptionError);
      expect(err).toMatchObject({ option: 'checkpoint', received: bad });
      expect((err as Error).message).toBe(`checkpoint must be a file that can be written (${why}); received ${JSON.stringify(bad)} (string)`);
    }
    expect(steps).toBe(0);
    expect(sameBits(m.params, before)).toBe(true);
    // A device is written in place, so it passes the check; the full one then fails the write.
    const full = await trainer.fit(data, { epochs: 2, checkpoint: '/dev/full' }).catch((e: unknown) => e);
    expect(full).toBeInstanceOf(CheckpointError);
    expect(isBptrainError(full)).toBe(true);
    expect((full as Error).message).toBe('/dev/full: cannot write the checkpoint: no space left on the device');
    expect(((full as Error).cause as NodeJS.ErrnoException).code).toBe('ENOSPC');
    // /proc is a directory that takes no new files (ENOENT), even for root, whom the check lets by.
    const proc = await trainer.fit(data, { epochs: 1, checkpoint: '/proc/x.ckpt' }).catch((e: unknown) => e);
    expect((proc as Error).message).toMatch(/^checkpoint must be a file that can be written \(no permission to write in \/proc\)|^\/proc\/x\.ckpt: cannot write the checkpoint: files cannot be created in \/proc$/);
    await trainer.close();
    rmSync(dir, { recursive: true, force: true });
  });
  it('rejects data whose shape does not fit the network', async () => {
    const trainer = new Trainer(model, { threads: 1 });
    await expect(trainer.fit(randomData(1, 5, 4, 2, 'cross-entropy'))).rejects.toThrow(/samples have 4 inputs, but the network's input layer has 3/);
    await trainer.close();
  });
});

describe('abort, events and history', () => {
  it('aborting mid-fit rejects with an AbortError and keeps the completed steps', async () => {
    for (const threads of [1, 2]) {
      const model = createModel({ layers: [8, 32, 4], seed: 2 });
      const trainer = new Trainer(model, { threads });
      const controller = new AbortController();
      let steps = 0;
      const err = await trainer
        .fit(randomData(3, 400, 8, 4, 'cross-entropy'), {
          epochs: 50, batchSize: 16, signal: controller.signal,
          onStep: () => { if (++steps === 7) controller.abort(); },
        })
        .catch((e: unknown) => e);
      await trainer.close();
      expect((err as Error).name).toBe('AbortError');
      // One thread checks the signal before every step; the pool stops after the step in
      // progress, so a step or two more may complete (and are reported; see the next test).
      if (threads === 1) expect(steps).toBe(7);
      else expect(steps).toBeGreaterThanOrEqual(7);
    }
  });
  it('aborting on the pool stops after the step in progress; the weights are those of the steps reported', async () => {
    // Workers run many steps per round trip, so a few may complete after abort() is called;
    // every one of them is reported, and the weights match a one-thread run of as many steps.
    const data = randomData(3, 400, 8, 4, 'cross-entropy');
    const run = async (threads: number, stopAt: number) => {
      const model = createModel({ layers: [8, 32, 4], seed: 2 });
      const trainer = new Trainer(model, { threads });
      const controller = new AbortController();
      let steps = 0;
      const err = await trainer
        .fit(data, { epochs: 50, batchSize: 64, signal: controller.signal, onStep: () => { if (++steps === stopAt) controller.abort(); } })
        .catch((e: unknown) => e);
      await trainer.close();
      expect((err as Error).name).toBe('AbortError');
      return { steps, params: Float64Array.from(model.params) };
    };
    const pool = await run(2, 9);
    expect(pool.steps).toBeGreaterThanOrEqual(9);
    expect(pool.steps).toBeLessThan(50 * 7);
    const one = await run(1, pool.steps);
    expect(one.steps).toBe(pool.steps);
    expect(sameBits(pool.params, one.params)).toBe(true);
  });
  it('an error thrown by onStep rejects fit with that error, at 1 and 2 threads, and the trainer still works', async () => {
    for (const threads of [1, 2]) {
      const model = createModel({ layers: [8, 32, 4], seed: 2 });
      const trainer = new Trainer(model, { threads });
      const boom = new Error('boom from onStep');
      let calls = 0;
      const err = await trainer
        .fit(randomData(3, 400, 8, 4, 'cross-entropy'), { epochs: 20, batchSize: 64, onStep: () => { if (++calls === 5) throw boom; } })
        .catch((e: unknown) => e);
      expect(err).toBe(boom);
      expect(calls).toBe(5); // not called again after it threw
      const h = await trainer.fit(randomData(3, 400, 8, 4, 'cross-entropy'), { epochs: 1, batchSize: 64 });
      expect(h.epochs).toHaveLength(1);
      await trainer.close();
    }
  });
  it('close() while a fit runs aborts it, refuses the calls still waiting, and resolves once all have settled', async () => {
    for (const threads of [1, 2]) {
      const trainer = new Trainer(createModel({ layers: [8, 32, 4], seed: 2 }), { threads });
      const data = randomData(3, 400, 8, 4, 'cross-entropy');
      let epochs = 0;
      const fit = trainer.fit(data, { epochs: 1000, batchSize: 64, onEpoch: () => void epochs++ });
      const waiting = trainer.evaluate(data);
      fit.catch(() => {});
      waiting.catch(() => {});
      while (epochs < 2) await new Promise((r) => setTimeout(r, 1));
      const closing = trainer.close();
      expect(trainer.close()).toBe(closing); // the same promise
      await closing;
      await expect(fit).rejects.toMatchObject({ name: 'AbortError', message: 'the Trainer was closed' });
      await expect(waiting).rejects.toBeInstanceOf(StateError);
      expect(epochs).toBeLessThan(1000);
    }
  });
  it('close() is not held up by an onEpoch promise that never settles, nor is an abort', async () => {
    const data = randomData(3, 100, 8, 4, 'cross-entropy');
    const trainer = new Trainer(createModel({ layers: [8, 16, 4], seed: 2 }), { threads: 1 });
    const fit = trainer.fit(data, { epochs: 5, onEpoch: () => new Promise(() => {}) });
    fit.catch(() => {});
    await new Promise((r) => setTimeout(r, 50));
    await trainer.close();
    await expect(fit).rejects.toMatchObject({ name: 'AbortError' });
    const t2 = new Trainer(createModel({ layers: [8, 16, 4], seed: 2 }), { threads: 1 });
    const t0 = performance.now();
    await expect(t2.fit(data, { epochs: 5, signal: AbortSignal.timeout(50), onEpoch: () => new Promise(() => {}) })).rejects.toMatchObject({ name: 'TimeoutError' });
    expect(performance.now() - t0).toBeLessThan(5000);
    await t2.close();
  });
  it('a callback that aborts, or closes the trainer, before returning a promise that never settles: the fit still ends', async () => {
    const data = randomData(3, 100, 8, 4, 'cross-entropy');
    const within = <T,>(p: Promise<T>) => Promise.race([p, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('hung')), 5000))]);
    const ac = new AbortController();
    const t1 = new Trainer(createModel({ layers: [8, 16, 4], seed: 2 }), { threads: 1 });
    await expect(within(t1.fit(data, { epochs: 5, signal: ac.signal, onEpoch: () => { ac.abort(); return new Promise(() => {}); } }))).rejects.toMatchObject({ name: 'AbortError' });
    await t1.close();
    const t2 = new Trainer(createModel({ layers: [8, 16, 4], seed: 2 }), { threads: 2 });
    await expect(within(t2.fit(data, { epochs: 5, onEpoch: async () => { await t2.close(); } }))).rejects.toMatchObject({ name: 'AbortError', message: 'the Trainer was closed' });
  });
  it("a trainer's own callbacks cannot call it (they would wait behind the fit that waits for them): StateError", async () => {
    const data = randomData(3, 100, 8, 4, 'cross-entropy');
    const t = new Trainer(createModel({ layers: [8, 16, 4], seed: 2 }), { threads: 1 });
    await expect(t.fit(data, { epochs: 2, onEpoch: () => t.evaluate(data) })).rejects.toThrow(/cannot be called from its own fit's callbacks/);
    await expect(t.fit(data, { epochs: 2, onEpoch: async () => { await t.predict([[1, 2, 3, 4, 5, 6, 7, 8]]); } })).rejects.toBeInstanceOf(StateError);
    let inStep: unknown;
    await t.fit(data, { epochs: 1, onStep: () => { inStep ??= t.predict([[1, 2, 3, 4, 5, 6, 7, 8]]).catch((e: unknown) => e); } });
    expect(await inStep).toBeInstanceOf(StateError);
    expect((await t.evaluate(data)).loss).toBeGreaterThan(0); // the trainer is fine afterwards
    // A timer a callback sets, firing once the fit is over: nothing waits for it, and it runs.
    let later: Promise<unknown> | undefined;
    await t.fit(data, { epochs: 1, onEpoch: () => { later = new Promise((r) => setTimeout(() => r(t.evaluate(data)), 50)); } });
    expect(((await later) as { loss: number }).loss).toBeGreaterThan(0);
    await t.close();
  });
  it('await using: a failure beside a running fit ends the fit and the threads, and the failure is what the caller sees', async () => {
    const data = randomData(3, 400, 8, 4, 'cross-entropy');
    let epochsAfter = 0;
    let left = false;
    const job = async () => {
      await using trainer = new Trainer(createModel({ layers: [8, 32, 4], seed: 2 }), { threads: 2 });
      await Promise.all([
        trainer.fit(data, { epochs: 1000, batchSize: 64, onEpoch: () => void (left && epochsAfter++) }),
        new Promise((_, reject) => setTimeout(() => reject(new Error('sibling failed')), 30)),
      ]);
    };
    await expect(job()).rejects.toThrow('sibling failed');
    left = true;
    await new Promise((r) => setTimeout(r, 100));
    expect(epochsAfter).toBe(0); // the fit ended with the scope
  });
  it('reports every epoch with loss, accuracy, validation metrics and samples/s', async () => {
    const model = createModel({ layers: [6, 10, 3], seed: 4 });
    await using trainer = new Trainer(model, { threads: 2 });
    const seen: number[] = [];
    const h = await trainer.fit(randomData(5, 300, 6, 3, 'cross-entropy'), {
      epochs: 4, batchSize: 32, optimizer: 'adam', validation: randomData(6, 50, 6, 3, 'cross-entropy'),
      onEpoch: (e) => { seen.push(e.epoch); },
    });
    expect(seen).toEqual([1, 2, 3, 4]);
    for (const e of h.epochs) {
      expect(e.loss).toBeGreaterThan(0);
      expect(e.accuracy).toBeGreaterThanOrEqual(0);
      expect(e.valLoss).toBeGreaterThan(0);
      expect(e.valAccuracy).toBeLessThanOrEqual(1);
      expect(e.samplesPerSec).toBeGreaterThan(0);
      expect(e.steps).toBe(10);
    }
    expect(h.epochs[3].loss).toBeLessThan(h.epochs[0].loss);
  });
  it("class models with linear or tanh outputs count accuracy in fit and evaluate by decodeOutput's rule, the same bits on 1, 2 and 3 threads", async () => {
    const classes = randomData(8, 300, 5, 3, 'cross-entropy'); // one-hot targets
    const binary = makeDataset(Array.from({ length: 300 }, (_, i) => Array.from(classes.x.subarray(i * 5, i * 5 + 5))), Array.from({ length: 300 }, (_, i) => (classes.x[i * 5] > 0 ? 1 : 0)));
    const cases = [
      { data: classes, output: 'linear', target: { kind: 'classes', classes: ['a', 'b', 'c'], outputs: 3 } },
      { data: classes, output: 'tanh', target: { kind: 'classes', classes: ['a', 'b', 'c'], outputs: 3 } },
      { data: binary, output: 'linear', target: { kind: 'binary', classes: ['no', 'yes'], outputs: 1 } },
      { data: binary, output: 'tanh', target: { kind: 'binary', classes: [0, 1], outputs: 1 } },
    ] as const;
    for (const { data, output, target } of cases) {
      const runs = [];
      for (const threads of [1, 2, 3]) {
        const model = createModel({ layers: [5, 16, target.outputs], output, loss: 'mse', seed: 3 });
        model.target = target;
        await using trainer = new Trainer(model, { threads });
        const h = await trainer.fit(data, { epochs: 3, batchSize: 128, lr: 0.1, validation: data });
        const m = await trainer.evaluate(data, { outputs: true });
        // decodeOutput on every sample's outputs against its label: what `bptrain evaluate` counts.
        let right = 0;
        for (let i = 0; i < data.size; i++) {
          const row = m.outputs!.subarray(i * target.outputs, (i + 1) * target.outputs);
          const truth = decodeOutput(target, data.y.subarray(i * target.outputs, (i + 1) * target.outputs));
          if (decodeOutput(target, row) === truth) right++;
        }
        expect(m.accuracy).toBe(right / data.size);
        expect(h.epochs.at(-1)!.valAccuracy).toBe(m.accuracy);
        for (const e of h.epochs) expect(e.accuracy).toBeGreaterThan(0);
        runs.push({ params: Float64Array.from(model.params), epochs: h.epochs.map((e) => [e.loss, e.accuracy, e.valLoss, e.valAccuracy]), accuracy: m.accuracy });
      }
      for (const r of runs.slice(1)) {
        expect(sameBits(r.params, runs[0].params)).toBe(true);
        expect(r.epochs).toEqual(runs[0].epochs);
        expect(r.accuracy).toBe(runs[0].accuracy);
      }
    }
    // Without a target, a linear output is a regression: no accuracy.
    await using plain = new Trainer(createModel({ layers: [5, 4, 3], output: 'linear', loss: 'mse' }), { threads: 1 });
    expect((await plain.evaluate(classes)).accuracy).toBeUndefined();
  });
  it('early stopping stops after `patience` epochs without improvement and restores the best weights', async () => {
    const model = createModel({ layers: [4, 16, 2], seed: 4 });
    await using trainer = new Trainer(model, { threads: 1 });
    const train = randomData(7, 40, 4, 2, 'cross-entropy'); // tiny: the validation loss soon rises
    const val = randomData(8, 40, 4, 2, 'cross-entropy');
    const h = await trainer.fit(train, { epochs: 500, batchSize: 8, optimizer: 'adam', lr: 0.05, validation: val, patience: 5 });
    expect(h.stoppedEarly).toBe(true);
    expect(h.epochs.length).toBe(h.bestEpoch + 5);
    const best = Math.min(...h.epochs.map((e) => e.valLoss!));
    expect(h.epochs[h.bestEpoch - 1].valLoss).toBe(best);
    expect((await trainer.evaluate(val)).loss).toBe(best);
  });
  it('on one thread, fit yields to the event loop between steps (a step takes milliseconds here)', async () => {
    const model = createModel({ layers: [784, 128, 10], seed: 1 });
    await using trainer = new Trainer(model, { threads: 1 });
    let ticks = 0;
    let stepsWithoutTick = 0;
    let running = true;
    const tick = () => { ticks++; if (running) setImmediate(tick); };
    setImmediate(tick);
    let lastTicks = -1;
    await trainer.fit(randomData(3, 640, 784, 10, 'cross-entropy'), {
      epochs: 1, batchSize: 64,
      onStep: () => { if (ticks === lastTicks) stepsWithoutTick++; lastTicks = ticks; },
    });
    running = false;
    expect(ticks).toBeGreaterThanOrEqual(9);
    expect(stepsWithoutTick).toBe(0);
  });
  it('two trainers train at the same time in one process', async () => {
    const a = createModel({ layers: [6, 12, 3], seed: 1 });
    const b = createModel({ layers: [6, 12, 3], seed: 1 });
    const data = randomData(9, 200, 6, 3, 'cross-entropy');
    const ta = new Trainer(a, { threads: 2 });
    const tb = new Trainer(b, { threads: 2 });
    await Promise.all([ta.fit(data, { epochs: 3, batchSize: 64 }), tb.fit(data, { epochs: 3, batchSize: 64 })]);
    await Promise.all([ta.close(), tb.close()]);
    expect(a.params).toEqual(b.params);
  });
  it('a model being trained by one trainer is refused to another (fit, evaluate, predict); reading it twice is fine', async () => {
    const model = createModel({ layers: [6, 12, 3], seed: 1 });
    const data = randomData(9, 200, 6, 3, 'cross-entropy');
    const [ta, tb] = [new Trainer(model, { threads: 2 }), new Trainer(model, { threads: 1 })];
    const fit = ta.fit(data, { epochs: 5, batchSize: 64 });
    await expect(tb.fit(data)).rejects.toThrow(/this model is being trained by another Trainer; give each concurrent job its own copy \(model.clone\(\)\)/);
    await expect(tb.evaluate(data)).rejects.toBeInstanceOf(StateError);
    await expect(tb.predict([[1, 2, 3, 4, 5, 6]])).rejects.toBeInstanceOf(StateError);
    await fit;
    const reads = [ta.evaluate(data), tb.evaluate(data)];
    const tc = new Trainer(model, { threads: 1 });
    await expect(tc.fit(data)).rejects.toThrow(/this model is being evaluated by another Trainer/);
    const [ea, eb] = await Promise.all(reads);
    expect(ea.loss).toBe(eb.loss);
    await tc.fit(data, { epochs: 1 }); // free again
    const copy = new Trainer(model.clone(), { threads: 1 });
    await Promise.all([ta.fit(data, { epochs: 2 }), copy.fit(data, { epochs: 2 })]);
    await Promise.all([ta.close(), tb.close(), tc.close(), copy.close()]);
  });
  it('an async onStep or onCheckpoint that rejects rejects fit with that error (never an unhandled rejection)', async () => {
    for (const threads of [1, 2]) {
      const trainer = new Trainer(createModel({ layers: [8, 32, 4], seed: 2 }), { threads });
      const data = randomData(3, 400, 8, 4, 'cross-entropy');
      const late = new Error('late from onStep');
      let calls = 0;
      const onStep = async () => {
        if (++calls !== 3) return;
        await new Promise((r) => setTimeout(r, 20));
        throw late;
      };
      await expect(trainer.fit(data, { epochs: 3, batchSize: 64, onStep })).rejects.toBe(late);
      const dir = mkdtempSync(path.join(tmpdir(), 'bptrain-cb-'));
      const bad = new Error('from onCheckpoint');
      await expect(trainer.fit(data, {
        epochs: 3, batchSize: 64, checkpoint: path.join(dir, 'c.ckpt'), onCheckpoint: async () => { throw bad; },
      })).rejects.toBe(bad);
      let waited = false;
      await trainer.fit(data, {
        epochs: 1, batchSize: 64, checkpoint: path.join(dir, 'c.ckpt'),
        onCheckpoint: async () => { await new Promise((r) => setTimeout(r, 10)); waited = true; },
      });
      expect(waited).toBe(true); // awaited before fit resolved
      await trainer.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it('an onStep promise that rejects while no step runs (during onCheckpoint) stops the fit before the next step, on any thread count', async () => {
    // Before the fix the next run of steps cleared the stop: one more step on 1 thread, five on 2.
    const dir = mkdtempSync(path.join(tmpdir(), 'bptrain-late-'));
    try {
      for (const threads of [1, 2]) {
        const model = createModel({ layers: [8, 32, 4], seed: 2 });
        const trainer = new Trainer(model, { threads });
        const late = new Error('rejected during onCheckpoint');
        let afterStep5: Float64Array | null = null;
        const err = await trainer.fit(randomData(3, 640, 8, 4, 'cross-entropy'), {
          epochs: 1, batchSize: 32, checkpoint: path.join(dir, `t${threads}.ckpt`), checkpointEvery: 5,
          onCheckpoint: () => new Promise((r) => setTimeout(r, 50)),
          onStep: (p) => {
            if (p.step !== 5) return;
            afterStep5 = Float64Array.from(model.params);
            return new Promise((_, reject) => setTimeout(() => reject(late), 10));
          },
        }).catch((e: unknown) => e);
        await trainer.close();
        expect(err).toBe(late);
        expect(sameBits(model.params, afterStep5!)).toBe(true);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  it("an abort is not held up by an onStep promise that never settles (the epoch's end waits for them)", async () => {
    for (const threads of [1, 2]) {
      const trainer = new Trainer(createModel({ layers: [8, 32, 4], seed: 2 }), { threads });
      const controller = new AbortController();
      const fit = trainer.fit(randomData(3, 400, 8, 4, 'cross-entropy'), {
        epochs: 3, batchSize: 64, signal: controller.signal,
        onStep: (p) => {
          if (p.step === 2) setTimeout(() => controller.abort(), 20);
          return new Promise<void>(() => {}); // never settles
        },
      });
      await expect(fit).rejects.toMatchObject({ name: 'AbortError' });
      await trainer.close();
    }
  }, 30_000); // without the race against the signal, fit waits forever
  it('data in a SharedArrayBuffer at an offset (a view into a larger buffer) trains as the same data copied', async () => {
    const plain = randomData(4, 300, 5, 3, 'cross-entropy');
    const view = (a: Float64Array): Float64Array => {
      const v = new Float64Array(new SharedArrayBuffer(8 * (a.length + 4)), 32, a.length);
      v.set(a);
      return v;
    };
    const offset = { ...plain, x: view(plain.x), y: view(plain.y) };
    const results = [];
    for (const data of [plain, offset]) {
      const model = createModel({ layers: [5, 9, 3], seed: 6 });
      const trainer = new Trainer(model, { threads: 2 });
      const h = await trainer.fit(data, { epochs: 2, batchSize: 64 });
      results.push({ params: Float64Array.from(model.params), loss: h.epochs[1].loss, evaluated: (await trainer.evaluate(data)).loss });
      await trainer.close();
    }
    expect(sameBits(results[1].params, results[0].params)).toBe(true);
    expect([results[1].loss, results[1].evaluated]).toEqual([results[0].loss, results[0].evaluated]);
  });
  it('keepOptimizer: two fits of 2 epochs equal one of 4, bit for bit (SGD with momentum, Adam; 1 and 2 threads)', async () => {
    const data = randomData(8, 300, 6, 3, 'cross-entropy');
    for (const threads of [1, 2]) {
      for (const optimizer of [{ optimizer: 'sgd', lr: 0.05, momentum: 0.9 }, { optimizer: 'adam', lr: 0.01 }] as const) {
        const run = async (plan: { epochs: number; keepOptimizer?: boolean }[]) => {
          const model = createModel({ layers: [6, 10, 3], seed: 3 });
          const trainer = new Trainer(model, { threads });
          for (const p of plan) await trainer.fit(data, { ...optimizer, batchSize: 64, shuffle: false, ...p });
          await trainer.close();
          return model.params;
        };
        const straight = await run([{ epochs: 4 }]);
        const kept = await run([{ epochs: 2 }, { epochs: 2, keepOptimizer: true }]);
        const fresh = await run([{ epochs: 2 }, { epochs: 2 }]);
        const what = `${optimizer.optimizer}, threads=${threads}`;
        expect(sameBits(kept, straight), what).toBe(true);
        expect(sameBits(fresh, straight), what).toBe(false); // a fresh optimizer on the second fit
      }
    }
    const trainer = new Trainer(createModel({ layers: [6, 10, 3], seed: 3 }), { threads: 1 });
    await trainer.fit(data, { epochs: 1, optimizer: 'adam', lr: 0.01 });
    await expect(trainer.fit(data, { epochs: 1, optimizer: 'adam', lr: 0.02, keepOptimizer: true }))
      .rejects.toThrow(/keepOptimizer needs the previous fit's optimizer settings/);
    await expect(trainer.fit(data, { keepOptimizer: 'yes' } as never)).rejects.toThrow(/keepOptimizer must be a boolean/);
    await expect(trainer.fit(data, { keepOptimizer: true, resume: 'x.ckpt' })).rejects.toThrow(/keepOptimizer must be false with resume/);
    await trainer.close();
  });
  it("profile: every epoch says where its steps' time went, and the weights are the same bits as without it (1-3 threads, clipNorm)", async () => {
    const data = randomData(9, 300, 6, 3, 'cross-entropy');
    for (const [threads, extra] of [[1, {}], [2, {}], [3, {}], [2, { clipNorm: 0.5 }]] as const) {
      const run = async (profile: boolean) => {
        const model = createModel({ layers: [6, 40, 3], seed: 3 });
        await using trainer = new Trainer(model, { threads });
        const h = await trainer.fit(data, { epochs: 2, batchSize: 96, optimizer: 'adam', lr: 0.01, profile, ...extra });
        return { params: model.params, h };
      };
      const what = `threads=${threads} ${JSON.stringify(extra)}`;
      const plain = await run(false);
      const profiled = await run(true);
      expect(sameBits(profiled.params, plain.params), what).toBe(true);
      expect(plain.h.epochs.every((e) => e.phases === undefined), what).toBe(true);
      for (const e of profiled.h.epochs) {
        const p = e.phases!;
        expect(p.threads, what).toBe(threads);
        expect(p.deltas, what).toBeGreaterThan(0);
        expect(p.gradients, what).toBeGreaterThan(0);
        expect(p.update, what).toBeGreaterThan(0);
        expect(p.waiting, what).toBeGreaterThanOrEqual(0);
        if (threads === 1) expect(p.waiting, what).toBe(0);
        // Each phase is a mean over threads of time inside the epoch's training: together they
        // cannot exceed the wall-clock time per step.
        expect(p.deltas + p.gradients + p.update + p.waiting, what).toBeLessThanOrEqual(p.stepMs * (1 + 1e-9));
        expect(p.stepMs, what).toBeCloseTo((e.seconds * 1000) / e.steps, 0); // no validation: seconds are the steps'
      }
    }
    await using trainer = new Trainer(createModel({ layers: [6, 10, 3] }), { threads: 1 });
    await expect(trainer.fit(data, { profile: 1 } as never)).rejects.toThrow(/profile must be a boolean; received 1/);
  });
  it('cross-entropy targets must be probabilities: a target outside [0, 1] is refused with its sample', async () => {
    const bce = createModel({ layers: [2, 3, 1], output: 'sigmoid', loss: 'binary-cross-entropy' });
    const trainer = new Trainer(bce, { threads: 1 });
    const bad = makeDataset([[0, 1], [1, 0], [1, 1]], [1, 2, 0]);
    await expect(trainer.fit(bad)).rejects.toThrow(/data, sample 1: y\[0\] is 2, but binary-cross-entropy needs targets in \[0, 1\]/);
    await expect(trainer.evaluate(bad)).rejects.toBeInstanceOf(DataError);
    await expect(trainer.fit(makeDataset([[0, 1]], [1]), { validation: makeDataset([[0, 1]], [-3]) })).rejects.toThrow(/validation, sample 0: y\[0\] is -3/);
    await trainer.fit(makeDataset([[0, 1], [1, 0]], [0.25, 1]), { epochs: 1 }); // soft targets are fine
    // A service that refills one request buffer between calls: the new values are checked too.
    const reused = { size: 3, inputDim: 2, targetDim: 1, x: Float64Array.of(0, 1, 1, 0, 1, 1), y: Float64Array.of(1, 0, 1) };
    await trainer.evaluate(reused);
    reused.y.set([5, -3, 4]);
    await expect(trainer.evaluate(reused)).rejects.toThrow(/data, sample 0: y\[0\] is 5/);
    await trainer.close();
    const mse = new Trainer(createModel({ layers: [2, 3, 1], output: 'linear', loss: 'mse' }), { threads: 1 });
    await mse.fit(bad, { epochs: 1 }); // regression: any finite target
    await mse.close();
  });
});

describe('close()', () => {
  it('leaves no worker thread or handle: a process that fits and closes exits by itself', () => {
    const script = `
      import { Trainer, createModel, makeDataset } from './dist/src/index.js';
      const model = createModel({ layers: [4, 64, 3], seed: 1 });
      const x = Array.from({ length: 256 }, (_, i) => [i % 7, i % 5, i % 3, 1].map((v) => v / 7));
      const t = new Trainer(model, { threads: 2 });
      await t.fit(makeDataset(x, x.map((_, i) => i % 3), { classes: 3 }), { epochs: 2, batchSize: 128 });
      await t.close();
      // stdout and stderr are pipes here; anything else (MessagePort, Timeout, ...) is a leak.
      const left = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap' && r !== 'PipeWrap');
      console.log(JSON.stringify(left));
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: new URL('..', import.meta.url), encoding: 'utf8', timeout: 30_000,
    });
    expect(r.error).toBeUndefined(); // a timeout would mean something kept the process alive
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout.trim())).toEqual([]);
  });
});
