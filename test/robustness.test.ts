// Nothing lost: exact resume after kill -9, signals, the numeric guard, worker faults, clipping.
// Real processes and real signals: the CLI is spawned, killed and resumed.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Trainer, createModel, loadCheckpoint, makeDataset } from '../src/index.js';
import { randomData, sameBits } from './helpers.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const CLI = path.join(root, 'dist/src/cli.js');
const dir = mkdtempSync(path.join(tmpdir(), 'bptrain-robust-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function bptrain(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: root, encoding: 'utf8', timeout: 60_000, env: { ...process.env, ...env } });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}
const tmpFiles = () => readdirSync(dir).filter((f) => f.endsWith('.tmp'));

describe('exact resume: K steps straight = j steps, kill -9, resume for the rest', () => {
  // 800 samples, batch 64 (2 chunks, so 2 threads really share it): 13 steps per epoch (the last
  // one partial), 3 epochs = 39 steps; Adam, so optimizer state matters.
  const common = ['train', '--data', 'data/tutorial-train.ndjson', '--hidden-layers', '6,4', '--hidden', 'tanh',
    '--optimizer', 'adam', '--lr', '0.01', '--batch', '64', '--epochs', '3', '--seed', '3', '--quiet'];
  for (const threads of ['1', '2']) {
    it(`threads ${threads}, killed after steps 7 (mid-epoch), 13 (epoch end) and 20`, () => {
      const straight = path.join(dir, `straight-${threads}.json`);
      expect(bptrain([...common, '--threads', threads, '--out', straight]).code).toBe(0);
      for (const j of [7, 13, 20]) {
        const ckpt = path.join(dir, `ck-${threads}-${j}.json`);
        const out = path.join(dir, `resumed-${threads}-${j}.json`);
        const killed = bptrain([...common, '--threads', threads, '--checkpoint', ckpt, '--checkpoint-every', '1', '--out', out],
          { BPTRAIN_TEST_KILL_AFTER_CHECKPOINT: String(j) });
        expect(killed.signal).toBe('SIGKILL');
        expect(existsSync(out)).toBe(false);
        const resumed = bptrain([...common, '--threads', threads, '--resume', ckpt, '--out', out]);
        expect(resumed.stderr).toBe('');
        expect(resumed.code).toBe(0);
        expect(readFileSync(out, 'utf8'), `j=${j}`).toBe(readFileSync(straight, 'utf8'));
      }
      expect(tmpFiles()).toEqual([]);
    });
  }
  it('resuming with other options or other data is refused, saying what differs', async () => {
    const ckpt = path.join(dir, 'ck-refuse.json');
    bptrain([...common, '--checkpoint', ckpt, '--checkpoint-every', '1'], { BPTRAIN_TEST_KILL_AFTER_CHECKPOINT: '5' });
    const other = bptrain([...common.map((a) => (a === '0.01' ? '0.02' : a)), '--resume', ckpt]);
    expect(other.code).toBe(1);
    expect(other.stderr).toMatch(/cannot resume: .*lr: checkpoint 0.01, now 0.02/);
    const data = bptrain([...common.map((a) => (a === 'data/tutorial-train.ndjson' ? 'data/tutorial-test.ndjson' : a)), '--resume', ckpt]);
    expect(data.code).toBe(1);
    expect(data.stderr).toMatch(/training data: not the data the checkpoint was trained on/);
    expect((await loadCheckpoint(ckpt)).globalStep).toBe(5);
  });
});

describe('resume refuses a run whose inputs or clipping differ (both change what the weights see)', () => {
  const common = ['train', '--data', 'data/tutorial-train.ndjson', '--hidden-layers', '4', '--batch', '64', '--epochs', '2', '--quiet'];
  it('--normalize dropped, or --clip-norm added, on --resume', () => {
    const ckpt = path.join(dir, 'ck-norm.json');
    expect(bptrain([...common, '--normalize', 'standard', '--checkpoint', ckpt, '--checkpoint-every', '1'], { BPTRAIN_TEST_KILL_AFTER_CHECKPOINT: '3' }).code).not.toBe(0);
    const noNorm = bptrain([...common, '--resume', ckpt]);
    expect(noNorm.code).toBe(1);
    expect(noNorm.stderr).toMatch(/cannot resume: .*input normalisation: checkpoint standardised inputs .*, now none/);
    const clipped = bptrain([...common, '--normalize', 'standard', '--clip-norm', '1', '--resume', ckpt]);
    expect(clipped.code).toBe(1);
    expect(clipped.stderr).toMatch(/--clip-norm: checkpoint none, now 1/);
    expect(bptrain([...common, '--normalize', 'standard', '--resume', ckpt]).code).toBe(0); // the same run resumes
  });
  it('another --validation file on --resume is refused (its losses, and early stopping, would mix two sets)', () => {
    const ckpt = path.join(dir, 'ck-val.json');
    const withVal = (file: string) => [...common, '--validation', file, '--patience', '3'];
    expect(bptrain([...withVal('data/tutorial-test.ndjson'), '--checkpoint', ckpt, '--checkpoint-every', '1'], { BPTRAIN_TEST_KILL_AFTER_CHECKPOINT: '3' }).code).not.toBe(0);
    const other = path.join(dir, 'other-val.ndjson');
    writeFileSync(other, readFileSync('data/tutorial-test.ndjson', 'utf8').split('\n').slice(0, 50).join('\n') + '\n');
    const r = bptrain([...withVal(other), '--resume', ckpt]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot resume: .*validation data: not the data the checkpoint was validated on/);
    expect(bptrain([...withVal('data/tutorial-test.ndjson'), '--resume', ckpt]).code).toBe(0);
  });
  it('a checkpoint from before normalisation and clipping were recorded resumes (they are not compared)', () => {
    const ckpt = path.join(dir, 'ck-old.json');
    expect(bptrain([...common, '--normalize', 'standard', '--clip-norm', '1', '--checkpoint', ckpt, '--checkpoint-every', '1'], { BPTRAIN_TEST_KILL_AFTER_CHECKPOINT: '3' }).code).not.toBe(0);
    const c = JSON.parse(readFileSync(ckpt, 'utf8'));
    delete c.settings.normalization;
    delete c.settings.clipNorm;
    delete c.settings.validationData;
    writeFileSync(ckpt, JSON.stringify(c));
    expect(bptrain([...common, '--normalize', 'standard', '--clip-norm', '1', '--resume', ckpt]).code).toBe(0);
  });
});

describe('a refused resume names the flags that differ, not the library\'s option names', () => {
  it('--batch, --clip-norm, --optimizer (not its internal settings), --no-shuffle, --seed', () => {
    const common = ['train', '--data', 'data/tutorial-train.ndjson', '--hidden-layers', '3', '--epochs', '2', '--quiet'];
    const ckpt = path.join(dir, 'flags.ckpt');
    expect(bptrain([...common, '--batch', '4', '--clip-norm', '1', '--checkpoint', ckpt]).code).toBe(0);
    const r = bptrain([...common, '--batch', '8', '--optimizer', 'adam', '--no-shuffle', '--seed', '3', '--resume', ckpt]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`bptrain: ${ckpt}: cannot resume: this run differs from the checkpoint's — --batch: checkpoint 4, now 8; --shuffle: checkpoint on, now off; `
      + '--seed: checkpoint 1, now 3; --optimizer: checkpoint sgd, now adam; --lr: checkpoint 0.01, now 0.001; --clip-norm: checkpoint 1, now none\n');
  });
});

describe('the summary of a resumed run', () => {
  it('says which epochs this run trained, as its seconds are this run\'s only', () => {
    const common = ['train', '--data', 'data/tutorial-train.ndjson', '--hidden-layers', '3'];
    const ckpt = path.join(dir, 'summary.ckpt');
    expect(bptrain([...common, '--epochs', '2', '--checkpoint', ckpt, '--quiet']).code).toBe(0);
    const more = bptrain([...common, '--epochs', '5', '--resume', ckpt]);
    expect(more.code).toBe(0);
    expect(more.stdout).toMatch(/^trained 2-3-1 .* for 5 epochs \(epochs 3-5 in this run, resumed from .*summary\.ckpt\) in \d+\.\d\ds /);
    const none = bptrain([...common, '--epochs', '5', '--resume', ckpt]);
    expect(none.stdout).toMatch(/ for 5 epochs \(none left to run after the checkpoint .*summary\.ckpt\) in /);
    expect(bptrain([...common, '--epochs', '2']).stdout).toMatch(/ for 2 epochs in \d+\.\d\ds \(/);
  });
});

describe('a finished run extended with --resume and more --epochs', () => {
  it('2 epochs, then --resume with --epochs 4 = 4 epochs straight, bit for bit; fewer than done is refused', () => {
    const common = ['train', '--data', 'data/tutorial-train.ndjson', '--hidden-layers', '6', '--optimizer', 'adam', '--lr', '0.01', '--batch', '64', '--quiet'];
    const straight = path.join(dir, 'extend-straight.json');
    const extended = path.join(dir, 'extend-resumed.json');
    const ckpt = path.join(dir, 'extend.ckpt');
    expect(bptrain([...common, '--epochs', '4', '--out', straight]).code).toBe(0);
    expect(bptrain([...common, '--epochs', '2', '--checkpoint', ckpt]).code).toBe(0);
    expect(bptrain([...common, '--epochs', '4', '--resume', ckpt, '--checkpoint-every', '5', '--out', extended]).code).toBe(0);
    expect(readFileSync(extended, 'utf8')).toBe(readFileSync(straight, 'utf8'));
    const fewer = bptrain([...common, '--epochs', '1', '--resume', ckpt]);
    expect(fewer.code).toBe(1);
    expect(fewer.stderr).toMatch(/the checkpoint has reached epoch 4, so epochs must be at least 4; now 1/);
  });
});

describe('an abort at an epoch boundary (during onEpoch) resumes bit for bit', () => {
  it('abort in onEpoch of epoch 2, resume: the weights of 4 epochs straight', async () => {
    const data = randomData(7, 300, 5, 3, 'cross-entropy');
    const fit = { epochs: 4, batchSize: 64, optimizer: 'adam' as const, lr: 0.01, seed: 3 };
    const make = () => createModel({ layers: [5, 8, 3], seed: 4 });
    const straight = make();
    const t1 = new Trainer(straight, { threads: 1 });
    await t1.fit(data, fit);
    await t1.close();
    const ckpt = path.join(dir, 'epoch-boundary.ckpt');
    const resumed = make();
    const t2 = new Trainer(resumed, { threads: 1 });
    const controller = new AbortController();
    const err = await t2.fit(data, { ...fit, checkpoint: ckpt, signal: controller.signal, onEpoch: (e) => { if (e.epoch === 2) controller.abort(); } }).catch((e: unknown) => e);
    expect((err as Error).name).toBe('AbortError');
    await t2.fit(data, { ...fit, resume: ckpt });
    await t2.close();
    expect(sameBits(resumed.params, straight.params)).toBe(true);
  });
});

describe('an abort during the validation pass', () => {
  it('stops before the pass ends, checkpoints the finished steps, and the resumed run is exact', async () => {
    const data = randomData(8, 256, 5, 3, 'cross-entropy');
    const validation = randomData(9, 2000, 5, 3, 'cross-entropy');
    const fit = { epochs: 3, batchSize: 64, optimizer: 'adam' as const, lr: 0.01, seed: 3, validation };
    const make = () => createModel({ layers: [5, 8, 3], seed: 4 });
    const straight = make();
    const t1 = new Trainer(straight, { threads: 1 });
    const expected = await t1.fit(data, fit);
    await t1.close();
    const ckpt = path.join(dir, 'validation-abort.ckpt');
    const resumed = make();
    const t2 = new Trainer(resumed, { threads: 1 });
    const controller = new AbortController();
    // The last step of epoch 2: the abort lands while its validation pass runs.
    const err = await t2.fit(data, { ...fit, checkpoint: ckpt, signal: controller.signal, onStep: (p) => { if (p.epoch === 2 && p.step === p.steps) controller.abort(); } })
      .catch((e: unknown) => e);
    expect((err as Error).name).toBe('AbortError');
    const c = await loadCheckpoint(ckpt);
    expect([c.epoch, c.step]).toEqual([2, 4]); // all 4 steps of epoch 2 done, its validation not
    const h = await t2.fit(data, { ...fit, resume: ckpt, profile: true });
    await t2.close();
    expect(sameBits(resumed.params, straight.params)).toBe(true);
    expect(h.epochs.map((e) => e.valLoss)).toEqual(expected.epochs.map((e) => e.valLoss));
    // Epoch 1 is the checkpoint's (run without profile); epoch 2 resumed with no step left has
    // nothing to profile (no figures of zero steps); epoch 3 has.
    expect(h.epochs.map((e) => [e.epoch, e.phases === undefined])).toEqual([[1, true], [2, true], [3, false]]);
    const t3 = new Trainer(straight, { threads: 1 });
    await expect(t3.evaluate(validation, { signal: AbortSignal.abort() })).rejects.toMatchObject({ name: 'AbortError' });
    await t3.close();
  });
});

function catchesSigint(pid: number): boolean {
  try {
    const m = /^SigCgt:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m !== null && (BigInt(`0x${m[1]}`) & 2n) !== 0n;
  } catch {
    return false;
  }
}

/** The status a shell reports for a child: its exit code, or 128 + the signal that ended it. The
 *  CLI ends by the signal it was stopped with, after cleaning up, so that a shell loop stops too. */
function exitStatus(child: ReturnType<typeof spawn>): Promise<number> {
  return new Promise((resolve) => child.on('exit', (code, sig) => resolve(code ?? 128 + constants.signals[sig!])));
}

describe('signals stop every command, and the message says what was left', () => {
  const interrupt = async (args: string[], waitFor: RegExp | null) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: root });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = exitStatus(child);
    // stdin stays open with one record sent: the command waits for more, as on a quiet pipe.
    child.stdin.write('{"x": [0.1, 0.2], "y": 1}\n');
    for (let i = 0; i < 100 && waitFor !== null && !waitFor.test(stderr); i++) await new Promise((r) => setTimeout(r, 50));
    // Not before the CLI handles SIGINT (a slow start would meet Node's default action): Linux
    // lists the signals a process catches in /proc/PID/status, SIGINT (2) as bit 1 of SigCgt.
    for (let i = 0; i < 200 && !catchesSigint(child.pid!); i++) await new Promise((r) => setTimeout(r, 25));
    await new Promise((r) => setTimeout(r, 300));
    child.kill('SIGINT');
    return { code: await exited, stderr: () => stderr };
  };
  it('predict reading a pipe that stays open: exit 130 at once, --out left as it was', async () => {
    const out = path.join(dir, 'sig-preds.ndjson');
    writeFileSync(out, 'previous predictions\n');
    const model = path.join(dir, 'sig-model.json');
    expect(bptrain(['init', '--layers', '2,3,1', '--out', model, '--quiet']).code).toBe(0);
    const r = await interrupt(['predict', '--model', model, '--data', '-', '--out', out], null);
    expect(r.code).toBe(130);
    expect(r.stderr()).toMatch(/interrupted by SIGINT; --out .*sig-preds\.ndjson was left as it was/);
    expect(readFileSync(out, 'utf8')).toBe('previous predictions\n');
    expect(tmpFiles()).toEqual([]);
  });
  it('predict to stdout: the message says how many predictions went out', async () => {
    const model = path.join(dir, 'sig-model2.json');
    expect(bptrain(['init', '--layers', '2,3,1', '--out', model, '--quiet']).code).toBe(0);
    const r = await interrupt(['predict', '--model', model, '--data', '-'], null);
    expect(r.code).toBe(130);
    expect(r.stderr()).toMatch(/interrupted by SIGINT; the first 0 predictions went to stdout/);
  });
  it('train still reading its data: exit 130, and no claim of a checkpoint that was never written', async () => {
    const ckpt = path.join(dir, 'sig-loading.ckpt');
    const r = await interrupt(['train', '--data', '-', '--hidden-layers', '4', '--checkpoint', ckpt], null);
    expect(r.code).toBe(130);
    expect(r.stderr()).toMatch(/interrupted by SIGINT; nothing was written\n/);
    expect(existsSync(ckpt)).toBe(false);
  });
});

describe('signals', () => {
  it('Ctrl-C stops a shell loop of commands: the CLI ends by the signal, not by exiting 130', () => {
    // A shell that sees a child exit normally (even with 130) assumes it handled Ctrl-C and goes
    // on with the loop; only a child killed by SIGINT stops it (bash's wait-and-cooperative-exit).
    const loop = `for i in 1 2 3; do echo "run $i" >&2; "${process.execPath}" "${CLI}" train --data - --hidden-layers 4 --quiet; done; echo "loop finished" >&2`;
    const child = spawn('bash', ['-c', loop], { cwd: root, detached: true, stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    return new Promise<void>((resolve, reject) => {
      // SIGINT to the whole process group, as a terminal's Ctrl-C does, once the first run waits on stdin.
      const timer = setTimeout(() => process.kill(-child.pid!, 'SIGINT'), 1500);
      // A loop that went on waits for stdin in its next run: end it, and let the checks fail.
      const guard = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 10_000);
      child.on('exit', (code, sig) => {
        clearTimeout(timer);
        clearTimeout(guard);
        try {
          expect(stderr).toMatch(/run 1/);
          expect(stderr).not.toMatch(/run 2|loop finished/);
          expect(code === 130 || sig === 'SIGINT').toBe(true);
          resolve();
        } catch (e) {
          reject(e);
        }
      });
    });
  });
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
    it(`${sig} during training: checkpoint written, exit ${code}, no temp files, --out not written`, async () => {
      const ckpt = path.join(dir, `sig-${sig}.json`);
      const out = path.join(dir, `sig-${sig}-model.json`);
      const child = spawn(process.execPath, [CLI, 'train', '--data', 'data/tutorial-train.ndjson', '--hidden-layers', '32,32',
        '--epochs', '100000', '--batch', '64', '--threads', '2', '--checkpoint', ckpt, '--out', out, '--quiet'], { cwd: root });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      const exited = exitStatus(child);
      for (let i = 0; i < 300 && !existsSync(ckpt); i++) await new Promise((r) => setTimeout(r, 50));
      expect(existsSync(ckpt)).toBe(true); // the first epoch's checkpoint
      const before = (await loadCheckpoint(ckpt)).globalStep;
      await new Promise((r) => setTimeout(r, 300));
      child.kill(sig);
      expect(await exited).toBe(code);
      expect(stderr).toMatch(new RegExp(`interrupted by ${sig}`));
      const c = await loadCheckpoint(ckpt);
      expect(c.globalStep).toBeGreaterThan(before); // written at the signal, not only at epoch ends
      expect(existsSync(out)).toBe(false);
      expect(tmpFiles()).toEqual([]);
    });
  }
});

describe('numeric guard', () => {
  it('a non-finite loss stops training, naming epoch, step and the file line; the last good files stay', () => {
    const data = path.join(dir, 'overflow.ndjson');
    const rows = Array.from({ length: 12 }, (_, i) => JSON.stringify({ x: [i / 12, 1 - i / 12], y: [i / 12] }));
    rows[6] = JSON.stringify({ x: [1e200, -1e200], y: [0.5] }); // line 7: squares overflow
    writeFileSync(data, rows.join('\n') + '\n');
    const out = path.join(dir, 'guard-model.json');
    const ckpt = path.join(dir, 'guard-ck.json');
    writeFileSync(out, 'previous model\n');
    writeFileSync(ckpt, 'previous checkpoint\n');
    const r = bptrain(['train', '--data', data, '--hidden-layers', '4', '--output', 'linear', '--loss', 'mse',
      '--batch', '4', '--no-shuffle', '--epochs', '2', '--checkpoint', ckpt, '--out', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/non-finite loss in epoch 1, step 2 \(first at the sample from .*overflow\.ndjson:7\)/);
    expect(readFileSync(out, 'utf8')).toBe('previous model\n');
    expect(readFileSync(ckpt, 'utf8')).toBe('previous checkpoint\n');
  });
  it('on two threads too: a parallel step applies nothing when a loss is not finite', async () => {
    const data = randomData(4, 256, 4, 1, 'mse');
    for (let j = 0; j < 4; j++) data.x[200 * 4 + j] = 1e200; // sample 200: in step 4 of 64-sample steps
    const model = createModel({ layers: [4, 8, 1], hidden: 'relu', output: 'linear', loss: 'mse', seed: 1 });
    const trainer = new Trainer(model, { threads: 2 });
    let afterStep3: Float64Array | null = null;
    const err = await trainer.fit(data, {
      epochs: 1, batchSize: 64, shuffle: false,
      onStep: (p) => { if (p.step === 3) afterStep3 = Float64Array.from(model.params); },
    }).catch((e: unknown) => e);
    expect(trainer.threadsFor(64)).toBe(2);
    await trainer.close();
    expect((err as Error).name).toBe('NumericError');
    expect((err as Error).message).toMatch(/non-finite loss in epoch 1, step 4 \(first at sample 200\)/);
    expect(Array.from(model.params)).toEqual(Array.from(afterStep3!));
  });
  it('an update that overflows the weights (finite loss and gradient) stops training with the last good weights, and no checkpoint holds them', async () => {
    for (const threads of [1, 2]) {
      // lr 1e10 on inputs of 1e150: the gradients are finite, the updated weights are not.
      const x = Array.from({ length: 128 }, (_, i) => [Math.sin(i) * 1e150, Math.cos(i) * 1e150]);
      const data = makeDataset(x, x.map(([a, b]) => [(a - b) / 1e150]));
      const model = createModel({ layers: [2, 4, 1], hidden: 'linear', output: 'linear', loss: 'mse', seed: 3 });
      const before = Float64Array.from(model.params);
      const ckpt = path.join(dir, `overflow-${threads}.ckpt`);
      const trainer = new Trainer(model, { threads });
      const err = await trainer.fit(data, { epochs: 3, batchSize: 32, lr: 1e10, shuffle: false, checkpoint: ckpt, checkpointEvery: 1 }).catch((e: unknown) => e);
      await trainer.close();
      expect((err as Error).name, `threads=${threads}`).toBe('NumericError');
      expect((err as Error).message).toMatch(/an update made the weights non-finite in epoch 1, by step \d; training stopped and the weights are those of (the start of epoch 1|the checkpoint of epoch 1, step \d)/);
      expect(model.params.every(Number.isFinite)).toBe(true);
      if (/start of epoch 1/.test((err as Error).message)) expect(sameBits(model.params, before)).toBe(true);
      if (existsSync(ckpt)) expect((await loadCheckpoint(ckpt)).params).toBeDefined(); // loads: all finite
    }
  });
  it('an onStep that throws in the step that overflowed still leaves the last good weights; a model with non-finite weights is not trained', async () => {
    for (const threads of [1, 2]) {
      const x = Array.from({ length: 128 }, (_, i) => [Math.sin(i) * 1e150, Math.cos(i) * 1e150]);
      const data = makeDataset(x, x.map(([a, b]) => [(a - b) / 1e150]));
      const model = createModel({ layers: [2, 4, 1], hidden: 'linear', output: 'linear', loss: 'mse', seed: 3 });
      const trainer = new Trainer(model, { threads });
      const mine = new Error('from onStep');
      const err = await trainer.fit(data, { epochs: 2, batchSize: 32, lr: 1e10, shuffle: false, onStep: () => { if (!model.params.every(Number.isFinite)) throw mine; } }).catch((e: unknown) => e);
      expect(err, `threads=${threads}`).toBe(mine);
      expect(model.params.every(Number.isFinite), `threads=${threads}`).toBe(true);
      model.params[0] = NaN;
      await expect(trainer.fit(data, { epochs: 1 })).rejects.toThrow(/the model's weights are not all finite/);
      await trainer.close();
    }
  });
  it('--clip-norm takes the norm of the mean gradient: no overflow where PyTorch has none (a summed gradient of 6e153 per entry)', async () => {
    const model = createModel({ layers: [1, 1], output: 'linear', loss: 'mse', seed: 1 });
    model.params.set([0.5, 0]);
    const data = makeDataset(Array.from({ length: 64 }, () => [1e77]), Array.from({ length: 64 }, () => [0]));
    const trainer = new Trainer(model, { threads: 1 });
    await trainer.fit(data, { epochs: 1, batchSize: 64, lr: 1, clipNorm: 1, shuffle: false });
    await trainer.close();
    expect(model.params[0]).toBeCloseTo(-0.5, 12); // one step of length 1 along the (almost pure W) gradient
  });
  it('--clip-norm bounds the size of every step', async () => {
    const model = createModel({ layers: [4, 8, 2], seed: 1 });
    const before = Float64Array.from(model.params);
    const trainer = new Trainer(model, { threads: 1 });
    await trainer.fit(randomData(2, 16, 4, 2, 'cross-entropy'), { epochs: 1, batchSize: 16, lr: 1, clipNorm: 1e-3 });
    await trainer.close();
    const moved = Math.hypot(...model.params.map((v, i) => v - before[i]));
    expect(moved).toBeGreaterThan(0);
    expect(moved).toBeLessThanOrEqual(1e-3 * (1 + 1e-12));
  });
});

describe('worker faults', () => {
  // Each case runs in its own process, so that the fault hook (read by workers when they start)
  // and the "no thread left" check see nothing but this trainer.
  for (const fault of ['throw', 'exit', 'oom']) {
    it(`a worker that ${fault === 'oom' ? 'runs out of memory' : fault === 'exit' ? 'exits' : 'throws'}: fit rejects naming the step, weights from before it, nothing left running`, () => {
      const script = `
        import { Trainer, createModel, makeDataset, WorkerError } from './dist/src/index.js';
        const x = Array.from({ length: 512 }, (_, i) => [Math.sin(i), Math.cos(i), (i % 9) / 9]);
        const data = makeDataset(x, x.map((_, i) => i % 3), { classes: 3 });
        const model = createModel({ layers: [3, 16, 3], seed: 1 });
        const trainer = new Trainer(model, { threads: 2, workerHeapMb: 32 });
        let afterStep3 = null;
        const t0 = Date.now();
        const err = await trainer.fit(data, { epochs: 2, batchSize: 64, onStep: (p) => { if (p.step === 3) afterStep3 = Float64Array.from(model.params); } }).catch((e) => e);
        const seconds = (Date.now() - t0) / 1000;
        const same = afterStep3 !== null && model.params.every((v, i) => Object.is(v, afterStep3[i]));
        // The optimizer state went with the worker: continuing it is refused, not started afresh.
        const keep = await trainer.fit(data, { epochs: 1, batchSize: 64, keepOptimizer: true }).catch((e) => e);
        await trainer.close();
        process.env.BPTRAIN_TEST_FAULT = '';
        const again = new Trainer(createModel({ layers: [3, 16, 3], seed: 1 }), { threads: 2 });
        const h = await again.fit(data, { epochs: 1, batchSize: 64 });
        await again.close();
        const left = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap' && r !== 'PipeWrap');
        console.log(JSON.stringify({ name: err?.name, isWorkerError: err instanceof WorkerError, message: err?.message, step: err?.step, same, seconds, retrained: h.epochs.length, left, keep: keep?.message }));
      `;
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
        cwd: root, encoding: 'utf8', timeout: 60_000, env: { ...process.env, BPTRAIN_TEST_FAULT: `${fault}@3` },
      });
      expect(r.error).toBeUndefined();
      expect(r.status, r.stderr).toBe(0);
      const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
      expect(out.isWorkerError).toBe(true);
      expect(out.message).toMatch(/a worker failed in epoch 1, step 4/);
      expect(out.step).toBe(4);
      expect(out.same).toBe(true);
      expect(out.seconds).toBeLessThan(30);
      expect(out.retrained).toBe(1);
      expect(out.left).toEqual([]);
      expect(out.keep).toMatch(/keepOptimizer: the previous fit failed \(a worker error\), so its optimizer state is lost/);
    });
  }
  it('a worker that throws while applying a step (the others updated their rows): fit puts back the last good weights and says so', () => {
    const script = `
      import { Trainer, createModel, makeDataset, WorkerError } from './dist/src/index.js';
      const x = Array.from({ length: 512 }, (_, i) => [Math.sin(i), Math.cos(i), (i % 9) / 9]);
      const data = makeDataset(x, x.map((_, i) => i % 3), { classes: 3 });
      const model = createModel({ layers: [3, 16, 3], seed: 1 });
      const start = Float64Array.from(model.params);
      const trainer = new Trainer(model, { threads: 2 });
      let afterStep3 = null;
      const err = await trainer.fit(data, { epochs: 2, batchSize: 64, optimizer: 'sgd', momentum: 0.9, onStep: (p) => { if (p.step === 3) afterStep3 = Float64Array.from(model.params); } }).catch((e) => e);
      const same = (a) => a !== null && model.params.every((v, i) => Object.is(v, a[i]));
      await trainer.close();
      console.log(JSON.stringify({ isWorkerError: err instanceof WorkerError, message: err?.message, step: err?.step, start: same(start), afterStep3: same(afterStep3) }));
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: root, encoding: 'utf8', timeout: 60_000, env: { ...process.env, BPTRAIN_TEST_FAULT: 'throw@3@apply' },
    });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(out.isWorkerError).toBe(true);
    expect(out.message).toMatch(/a worker failed in epoch 1, step 4, while that step's updates were being applied: .*injected fault while applying step 3; training stopped and the weights are those of the start of epoch 1$/);
    expect(out.step).toBe(4);
    // Neither torn nor "after step 3" (which the failed step's other rows had already left):
    // the state kept at the epoch's start, optimizer state included.
    expect(out.start).toBe(true);
    expect(out.afterStep3).toBe(false);
  });
  it('a worker that fails in evaluate, predict or validation: a WorkerError (validation names the epoch), never a bare Error', () => {
    const script = `
      import { Trainer, createModel, makeDataset, WorkerError, isBptrainError } from './dist/src/index.js';
      const x = Array.from({ length: 2048 }, (_, i) => [Math.sin(i), Math.cos(i), (i % 9) / 9]);
      const data = makeDataset(x, x.map((_, i) => i % 3), { classes: 3 });
      const trainer = new Trainer(createModel({ layers: [3, 16, 3], seed: 1 }), { threads: 2 });
      const show = (e) => ({ isWorkerError: e instanceof WorkerError && isBptrainError(e), message: e?.message, epoch: e?.epoch });
      const ev = await trainer.evaluate(data).catch(show);
      const pr = await trainer.predict(x).catch(show);
      const fit = await trainer.fit(data, { epochs: 2, batchSize: 256, validation: data }).catch(show);
      await trainer.close();
      console.log(JSON.stringify({ ev, pr, fit }));
    `;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: root, encoding: 'utf8', timeout: 60_000, env: { ...process.env, BPTRAIN_TEST_FAULT: 'throw@eval' },
    });
    expect(r.status, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(out.ev).toMatchObject({ isWorkerError: true, message: expect.stringMatching(/^a worker failed while evaluating: .*injected fault in a eval task/) });
    expect(out.pr).toMatchObject({ isWorkerError: true, message: expect.stringMatching(/^a worker failed while predicting: .*injected fault in a predict task/) });
    expect(out.fit).toMatchObject({ isWorkerError: true, epoch: 1, message: expect.stringMatching(/^a worker failed while evaluating: .* \(validating epoch 1\)$/) });
  });
});
