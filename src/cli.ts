#!/usr/bin/env node
// The bptrain command line: declarative yargs options, a check for conflicting flags, and handlers
// in commands.ts that call the library. Exit codes: 0 success, 1 data or runtime error, 2 usage
// error. Messages name the file and line, or the flag and the value received; no stack trace
// unless BPTRAIN_DEBUG=1.

import { readFileSync } from 'node:fs';
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { StdoutError, isProgram, removeTempFiles } from './fsutil.js';
import { Interrupted, STOP_SIGNALS, UsageError, evaluateCommand, initCommand, predictCommand, trainCommand, type Io, type StopSignal } from './commands.js';
import { HIDDEN_ACTIVATIONS, LOSSES, MAX_LAYER_SIZE, OUTPUT_ACTIVATIONS } from './layout.js';
import { MAX_BATCH, MAX_EPOCHS, MAX_THREADS } from './trainer.js';
import type { InputFields } from './model.js';
import { closestName } from './errors.js';
import { isGzipName } from './ndjson-reader.js';

export { Interrupted, UsageError };

type Raw = Record<string, unknown>;

// yargs turns `--lr abc` into NaN and a repeated flag into an array. Numbers are therefore read as
// strings (parse-numbers off) and parsed here, quoting the raw value in the message.
function single(raw: Raw, name: string): string | undefined {
  const v = raw[name];
  if (v === undefined) return undefined;
  if (Array.isArray(v)) throw new UsageError(`--${name} was given ${v.length} times (${v.map((x) => JSON.stringify(String(x))).join(', ')}); give it once`);
  if (typeof v === 'boolean') throw new UsageError(`--${name} needs a value`);
  return String(v);
}

function num(raw: Raw, name: string, o: { int?: boolean; min?: number; max?: number; gt?: number; lt?: number } = {}): number | undefined {
  const s = single(raw, name);
  if (s === undefined) return undefined;
  // Number() also reads hex, octal, binary and exponents ('0x10' is 16, '1e3' is 1000): an integer
  // is plain decimal digits, so that a typo is not silently taken for another number.
  const v = s.trim() === '' ? NaN : Number(s);
  const kind = o.int ? 'an integer' : 'a number';
  if (!Number.isFinite(v) || (o.int && !Number.isInteger(v))) throw new UsageError(`--${name} must be ${kind}; received ${JSON.stringify(s)}`);
  if (o.int && !/^\s*[-+]?\d+\s*$/.test(s)) throw new UsageError(`--${name} must be an integer in plain decimal digits; received ${JSON.stringify(s)}`);
  // Past 2^53 the digits typed are not the number used (99999999999999999999 becomes 1e20).
  if (o.int && !Number.isSafeInteger(v)) throw new UsageError(`--${name} must be between -${Number.MAX_SAFE_INTEGER} and ${Number.MAX_SAFE_INTEGER}; received ${JSON.stringify(s)}`);
  if (o.min !== undefined && v < o.min) throw new UsageError(`--${name} must be ≥ ${o.min}; received ${JSON.stringify(s)}`);
  if (o.max !== undefined && v > o.max) throw new UsageError(`--${name} must be ≤ ${o.max}; received ${JSON.stringify(s)}`);
  if (o.gt !== undefined && !(v > o.gt)) throw new UsageError(`--${name} must be > ${o.gt}; received ${JSON.stringify(s)}`);
  if (o.lt !== undefined && !(v < o.lt)) throw new UsageError(`--${name} must be < ${o.lt}; received ${JSON.stringify(s)}`);
  return v;
}

function intList(raw: Raw, name: string): number[] | undefined {
  const s = single(raw, name);
  if (s === undefined) return undefined;
  const parts = s.split(',').map((p) => p.trim());
  const values = parts.map(Number);
  if (parts.some((p) => !/^\d+$/.test(p)) || values.some((v) => !Number.isInteger(v) || v < 1))
    throw new UsageError(`--${name} must be a comma-separated list of positive integers, e.g. 784,128,64,10; received ${JSON.stringify(s)}`);
  if (values.some((v) => v > MAX_LAYER_SIZE)) throw new UsageError(`--${name}: a layer has at most ${MAX_LAYER_SIZE} units; received ${JSON.stringify(s)}`);
  return values;
}

/** --layers: all sizes, input first, at least an input and an output. */
function layerList(raw: Raw): number[] | undefined {
  const layers = intList(raw, 'layers');
  if (layers !== undefined && layers.length < 2) throw new UsageError(`--layers needs at least an input and an output size; received ${JSON.stringify(raw.layers)}`);
  return layers;
}

function choice<T extends string>(raw: Raw, name: string, allowed: readonly T[]): T | undefined {
  const s = single(raw, name);
  if (s === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(s)) throw new UsageError(`--${name} must be one of ${allowed.join(', ')}; received ${JSON.stringify(s)}`);
  return s as T;
}

function str(raw: Raw, name: string): string | undefined {
  const s = single(raw, name);
  if (s === '') throw new UsageError(`--${name} must not be empty`);
  return s;
}

/** A file flag read whole from a file (a model, a checkpoint): stdin ('-') is not one. */
function inPath(raw: Raw, name: string): string | undefined {
  const s = str(raw, name);
  if (s === '-') throw new UsageError(`--${name} - (stdin) is not supported here; give a file name`);
  return s;
}

/** An output file flag. '-' is stdout where the command can stream there (predict), and refused
 *  elsewhere rather than written to a file named '-'. */
function outPath(raw: Raw, name: string, stdoutOk = false): string | undefined {
  const s = str(raw, name);
  if (s === '-' && !stdoutOk) throw new UsageError(`--${name} - (stdout) is not supported here; give a file name`);
  // A name ending in '/' is a directory's, whether or not one is there: the file would be
  // written beside it and the rename into place could only fail after all the work.
  if (s !== undefined && s.endsWith('/'))
    throw new UsageError(`--${name} ${JSON.stringify(s)} ends in '/', so it names a directory; give a file name (e.g. ${s}${name === 'metrics' ? 'metrics.ndjson' : name === 'checkpoint' ? 'run.ckpt' : name === 'out' && raw.model !== undefined ? 'preds.ndjson' : 'model.json'})`);
  return s === '-' ? undefined : s;
}

/** --metrics is written a line at a time, to be followed live, and appended to on --resume: not
 *  a gzip stream, so a .gz name (which --data would gunzip) is refused rather than mislabelled. */
function metricsPath(raw: Raw): string | undefined {
  const s = outPath(raw, 'metrics');
  if (s !== undefined && isGzipName(s)) throw new UsageError(`--metrics ${JSON.stringify(s)}: the metrics file is written a line per epoch, uncompressed, so that it can be followed; give a name without .gz (gzip it after the run)`);
  return s;
}

function threads(raw: Raw): number | 'auto' {
  const s = single(raw, 'threads');
  if (s === undefined || s === 'auto') return 'auto';
  return num(raw, 'threads', { int: true, min: 1, max: MAX_THREADS })!;
}

function checkpointEvery(raw: Raw): number | undefined {
  const n = num(raw, 'checkpoint-every', { int: true, min: 1 });
  // A resumed run goes on checkpointing to the file it resumed from.
  if (n !== undefined && raw.checkpoint === undefined && raw.resume === undefined) throw new UsageError('--checkpoint-every needs --checkpoint FILE (or --resume FILE)');
  return n;
}

/** `defaultTarget`: the target field when no flag names one (train's reader reads y). */
function fields(raw: Raw, defaultTarget?: string): InputFields {
  const f: InputFields = {};
  const xField = str(raw, 'x-field'), yField = str(raw, 'y-field'), label = str(raw, 'label');
  const features = single(raw, 'features');
  if (xField !== undefined) f.xField = xField;
  if (yField !== undefined) f.yField = yField;
  if (label !== undefined) f.label = label;
  if (features !== undefined) {
    const list = features.split(',').map((s) => s.trim());
    if (list.some((s) => s === '')) throw new UsageError(`--features must be a comma-separated list of field names; received ${JSON.stringify(features)}`);
    const twice = list.find((s, i) => list.indexOf(s) !== i);
    if (twice !== undefined) throw new UsageError(`--features names ${JSON.stringify(twice)} twice; give each field once; received ${JSON.stringify(features)}`);
    // The reader takes the target from the label field: as an input too, it would hand the
    // network its answer (and a string label is reported as a data error on every line).
    // (predict and evaluate take the target field from the model unless told: only a flag counts.)
    const target = label ?? yField ?? defaultTarget;
    if (target !== undefined && list.includes(target))
      throw new UsageError(`--features ${JSON.stringify(features)} includes ${JSON.stringify(target)}, the ${label !== undefined ? '--label' : yField !== undefined ? '--y-field' : 'target (y, as --label is not given)'} field; the target cannot also be an input`);
    f.features = list;
  }
  if (f.features !== undefined && f.xField !== undefined) throw new UsageError('--features (record form) and --x-field (vector form) cannot be used together');
  return f;
}

/** The on/off flags. yargs reads any value given to one with '=' other than true as false, so
 *  that `--profile=yes` would silently mean no profile. */
const SWITCHES = ['shuffle', 'json', 'quiet', 'profile'];

function checkSwitchValues(argv: readonly string[]): void {
  for (const a of argv) {
    if (a === '--') return;
    const m = /^--([a-z-]+)=(.*)$/s.exec(a);
    if (m !== null && SWITCHES.includes(m[1]) && m[2] !== 'true' && m[2] !== 'false')
      throw new UsageError(`--${m[1]} is an on/off flag: give it alone (or --${m[1]}=true, --${m[1]}=false${m[1] === 'shuffle' ? ', --no-shuffle' : ''}); received --${m[1]}=${JSON.stringify(m[2])}`);
  }
}

const dataOptions = (y: Argv) =>
  y
    .option('x-field', { describe: 'Field holding the input vector (vector form)', default: undefined, defaultDescription: 'x', requiresArg: true })
    .option('y-field', { describe: 'Field holding the target', defaultDescription: 'y', requiresArg: true })
    .option('features', { describe: 'Record form: comma-separated numeric input fields, e.g. a,b,c', requiresArg: true })
    .option('label', { describe: 'Record form: the label field', defaultDescription: '--y-field', requiresArg: true });

export function buildParser(argv: string[], io: Io): Argv {
  const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  const run = (fn: (raw: Raw) => Promise<void>) => async (raw: Raw) => {
    checkSwitchValues(argv);
    await fn(raw);
  };
  return yargs(argv)
    .scriptName('bptrain')
    .parserConfiguration({ 'parse-numbers': false, 'parse-positional-numbers': false, 'duplicate-arguments-array': true })
    .usage('$0 <command> [options]\n\nTrain multilayer perceptrons on NDJSON data, data-parallel across worker threads.')
    .command('init', 'Write an untrained model file (seeded initial weights)', (y) =>
      y
        .option('layers', { describe: 'Layer sizes, input first, e.g. 2,3,2,1', demandOption: true, requiresArg: true })
        .option('hidden', { describe: `Hidden activation: ${HIDDEN_ACTIVATIONS.join(', ')}`, default: 'relu', requiresArg: true })
        .option('output', { describe: `Output activation: ${OUTPUT_ACTIVATIONS.join(', ')}`, defaultDescription: 'from --loss, or sigmoid for 1 output, softmax for more', requiresArg: true })
        .option('loss', { describe: `Loss: ${LOSSES.join(', ')}`, defaultDescription: 'from --output', requiresArg: true })
        .option('seed', { describe: 'Seed of the initial weights (integer)', default: '1', requiresArg: true })
        .option('out', { describe: 'Model file to write', demandOption: true, requiresArg: true })
        .option('quiet', { type: 'boolean', describe: 'Print nothing' })
        .example('$0 init --layers 2,3,2,1 --hidden sigmoid --output sigmoid --seed 7 --out init.json', 'the tutorial network, untrained'),
      run((raw) => initCommand({
        layers: layerList(raw)!,
        hidden: choice(raw, 'hidden', HIDDEN_ACTIVATIONS)!,
        output: choice(raw, 'output', OUTPUT_ACTIVATIONS),
        loss: choice(raw, 'loss', LOSSES),
        seed: num(raw, 'seed', { int: true })!,
        out: outPath(raw, 'out')!,
        quiet: raw.quiet === true,
      }, io)))
    .command('train', 'Train a model on an NDJSON file', (y) =>
      dataOptions(y)
        .option('data', { describe: 'Training data (.ndjson, .ndjson.gz, or - for stdin)', demandOption: true, requiresArg: true })
        .option('layers', { describe: 'All layer sizes, input first, e.g. 784,128,64,10', requiresArg: true })
        .option('hidden-layers', { describe: "Hidden layer sizes only, e.g. 128,64 (input and output sizes from the data); 'none' for no hidden layer", requiresArg: true })
        // No yargs default: with --init, a --hidden given (even relu) is refused, one left out is not.
        .option('hidden', { describe: `Hidden activation: ${HIDDEN_ACTIVATIONS.join(', ')}`, defaultDescription: 'relu', requiresArg: true })
        .option('output', { describe: `Output activation: ${OUTPUT_ACTIVATIONS.join(', ')}`, defaultDescription: 'from --loss (mse: linear, binary-cross-entropy: sigmoid, cross-entropy: softmax), else softmax for classes, sigmoid for 0/1, linear for numbers', requiresArg: true })
        .option('loss', { describe: `Loss: ${LOSSES.join(', ')}`, defaultDescription: 'from the output', requiresArg: true })
        .option('optimizer', { describe: 'sgd or adam', default: 'sgd', requiresArg: true })
        .option('lr', { describe: 'Learning rate', defaultDescription: '0.01 (sgd), 0.001 (adam)', requiresArg: true })
        .option('momentum', { describe: 'SGD momentum', defaultDescription: '0', requiresArg: true })
        .option('batch', { describe: 'Minibatch size', default: '32', requiresArg: true })
        .option('epochs', { describe: 'Passes over the data', default: '10', requiresArg: true })
        .option('threads', { describe: "Worker threads, or 'auto' (1 for small networks)", default: 'auto', requiresArg: true })
        .option('seed', { describe: 'Seed of the initial weights, shuffles and validation split', default: '1', requiresArg: true })
        .option('shuffle', { type: 'boolean', default: true, describe: 'Shuffle every epoch (--no-shuffle to keep file order)' })
        .option('init', { describe: "Start from this model file's weights, activations, loss, normalisation and input fields (so --hidden, --output and --loss are refused, and --normalize for a model whose normalisation differs from this data's, or one trained by bptrain train without one; a model from init takes this data's)", requiresArg: true })
        .option('out', { describe: 'Write the trained model here (only when training completes)', requiresArg: true })
        .option('validation-split', { describe: 'Hold out this fraction of the data (seeded) for validation', requiresArg: true })
        .option('validation', { describe: 'Validation data file', requiresArg: true })
        .option('patience', { describe: 'Stop after N epochs without a better validation loss (training loss without validation data); keep the best weights', requiresArg: true })
        .option('metrics', { describe: 'Write one JSON line per epoch to this file (uncompressed: a .gz name is refused)', requiresArg: true })
        .option('normalize', { describe: "'standard': per-feature mean/std from the training data, stored in the model", requiresArg: true })
        .option('checkpoint', { describe: 'Write a checkpoint here after every epoch and on SIGINT/SIGTERM/SIGHUP', requiresArg: true })
        .option('checkpoint-every', { describe: 'Also checkpoint every N steps', requiresArg: true })
        .option('resume', { describe: 'Continue from a checkpoint (same command, data and options)', requiresArg: true })
        .option('clip-norm', { describe: 'Clip the gradient to this L2 norm', requiresArg: true })
        .option('profile', { type: 'boolean', describe: "After each epoch, say where a step's time went: δ pass, gradient sums, update, waiting for other threads" })
        .option('json', { type: 'boolean', describe: 'Print a final summary as one JSON line on stdout' })
        .option('quiet', { type: 'boolean', describe: 'No progress output and no summary' })
        .example('$0 train --data big.ndjson --hidden-layers 128,64 --checkpoint run.ckpt --out model.json', 'Ctrl-C, then the same command with --resume run.ckpt continues exactly')
        .example('$0 train --data data/tutorial-train.ndjson --layers 2,3,2,1 --hidden sigmoid --output sigmoid --lr 0.5 --momentum 0.9 --batch 16 --epochs 60 --out model.json', "the tutorial's network")
        .example('$0 train --data iris.ndjson --features sepal_length,sepal_width --label species --hidden-layers 16 --optimizer adam --validation-split 0.2 --normalize standard', 'record form, string labels'),
      run((raw) => {
        const layers = layerList(raw);
        // No hidden layer (logistic or linear regression) is asked for by name: an empty value is
        // more often an unset shell variable ("$HIDDEN") than a wish.
        if (raw['hidden-layers'] === '') throw new UsageError("--hidden-layers must not be empty; for no hidden layer, say --hidden-layers none");
        const hiddenLayers = raw['hidden-layers'] === 'none' ? [] : intList(raw, 'hidden-layers');
        const init = inPath(raw, 'init');
        if (layers !== undefined && hiddenLayers !== undefined) throw new UsageError('give --layers or --hidden-layers, not both');
        if (init !== undefined && (layers !== undefined || hiddenLayers !== undefined)) throw new UsageError('--init takes the layers from the model file; drop --layers/--hidden-layers');
        if (init === undefined && layers === undefined && hiddenLayers === undefined)
          throw new UsageError('say what network to train: --layers 784,128,64,10, --hidden-layers 128,64, or --init model.json');
        const validation = str(raw, 'validation');
        const validationSplit = num(raw, 'validation-split', { gt: 0, lt: 1 });
        if (validation !== undefined && validationSplit !== undefined) throw new UsageError('give --validation or --validation-split, not both');
        const optimizer = choice(raw, 'optimizer', ['sgd', 'adam'] as const)!;
        const momentum = num(raw, 'momentum', { min: 0, lt: 1 });
        if (optimizer === 'adam' && momentum !== undefined) throw new UsageError('--momentum applies to --optimizer sgd only');
        const patience = num(raw, 'patience', { int: true, min: 1 });
        const modelFlags = ['hidden', 'output', 'loss'].filter((f) => raw[f] !== undefined);
        if (init !== undefined && modelFlags.length > 0)
          throw new UsageError(`--init takes the activations and loss from the model file; drop ${modelFlags.map((f) => `--${f} ${JSON.stringify(raw[f])}`).join(', ')}`);
        return trainCommand({
          data: str(raw, 'data')!,
          fields: fields(raw, init === undefined ? 'y' : undefined),
          layers, hiddenLayers,
          hidden: choice(raw, 'hidden', HIDDEN_ACTIVATIONS) ?? 'relu',
          output: choice(raw, 'output', OUTPUT_ACTIVATIONS),
          loss: choice(raw, 'loss', LOSSES),
          optimizer,
          lr: num(raw, 'lr', { gt: 0 }),
          momentum,
          batch: num(raw, 'batch', { int: true, min: 1, max: MAX_BATCH })!,
          epochs: num(raw, 'epochs', { int: true, min: 1, max: MAX_EPOCHS })!,
          threads: threads(raw),
          seed: num(raw, 'seed', { int: true })!,
          shuffle: raw.shuffle !== false,
          init,
          out: outPath(raw, 'out'),
          validation, validationSplit, patience,
          metrics: metricsPath(raw),
          normalize: choice(raw, 'normalize', ['standard'] as const),
          checkpoint: outPath(raw, 'checkpoint'),
          checkpointEvery: checkpointEvery(raw),
          resume: inPath(raw, 'resume'),
          clipNorm: num(raw, 'clip-norm', { gt: 0 }),
          profile: raw.profile === true,
          json: raw.json === true,
          quiet: raw.quiet === true,
        }, io);
      }))
    .command('predict', 'Predict for every line of an NDJSON file (streams, constant memory)', (y) =>
      dataOptions(y)
        .option('model', { describe: 'Model file', demandOption: true, requiresArg: true })
        .option('data', { describe: 'Input data (.ndjson, .ndjson.gz, or - for stdin); targets are not needed', demandOption: true, requiresArg: true })
        .option('out', { describe: 'Write predictions here instead of stdout (- is stdout; a .gz name is gzipped)', requiresArg: true })
        .option('threads', { describe: "Worker threads, or 'auto' (1 for small networks)", default: 'auto', requiresArg: true })
        .example('$0 predict --model model.json --data data/tutorial-test.ndjson --out preds.ndjson', 'one {"prediction", "probabilities" (or "outputs")} line per input line'),
      run((raw) => predictCommand({ model: inPath(raw, 'model')!, data: str(raw, 'data')!, out: outPath(raw, 'out', true), fields: fields(raw), threads: threads(raw) }, io)))
    .command('evaluate', 'Loss, accuracy, per-class precision/recall and confusion matrix on labelled data', (y) =>
      dataOptions(y)
        .option('model', { describe: 'Model file', demandOption: true, requiresArg: true })
        .option('data', { describe: 'Labelled data (.ndjson, .ndjson.gz, or - for stdin)', demandOption: true, requiresArg: true })
        .option('threads', { describe: "Worker threads, or 'auto'", default: 'auto', requiresArg: true })
        .option('json', { type: 'boolean', describe: 'Print one JSON line instead of a table' })
        .example('$0 evaluate --model model.json --data data/tutorial-test.ndjson', 'a table for people')
        .example('$0 evaluate --model model.json --data test.ndjson --json', '{"accuracy": …, "loss": …, …}'),
      run((raw) => evaluateCommand({ model: inPath(raw, 'model')!, data: str(raw, 'data')!, fields: fields(raw), threads: threads(raw), json: raw.json === true }, io)))
    .command('bench', 'Run the benchmark suites (bptrain bench --help for their options)', (y) =>
      y.strict(false).example('$0 bench --quick', 'check that the suites run').example('$0 bench --threads 1,2', 'scaling at 1 and 2 threads'),
      run(async () => {
        const code = await runBench(argv.slice(argv.indexOf('bench') + 1));
        if (code !== 0) throw new RuntimeExit(code);
      }))
    .demandCommand(1, 'Give a command: init, train, predict, evaluate or bench')
    .strict()
    .version(version)
    .help()
    .alias('h', 'help')
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .fail((msg, err, y) => {
      // The third argument is yargs' usage object: its descriptions are keyed by the options of the command.
      const known = Object.keys((y as unknown as { getDescriptions(): Record<string, unknown> }).getDescriptions());
      // yargs checks required options before unknown ones: `--modle m.json` would be reported as
      // "Missing required argument: model", without the misspelling that caused it.
      const unknown = /^Missing required argument/.test(msg) ? unknownOptions(argv, known) : [];
      throw err ?? new UsageError(explainUnknown(unknown.length > 0 ? `Unknown arguments: ${unknown.join(', ')}` : msg, argv, known) ?? msg);
    });
}

const COMMANDS = ['init', 'train', 'predict', 'evaluate', 'bench'];

/** --hiddenLayers as --hidden-layers: yargs accepts an option's camelCase spelling too. */
const kebab = (s: string): string => s.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** The long options in `argv` (up to `--`) that are not among the command's `known` ones, nor
 *  the --no- form or the camelCase spelling of one (yargs takes both). */
function unknownOptions(argv: readonly string[], known: readonly string[]): string[] {
  const names: string[] = [];
  const isKnown = (n: string): boolean => known.includes(n) || known.includes(kebab(n));
  for (const a of argv) {
    if (a === '--') break;
    const m = /^--([^=]+)/.exec(a);
    if (m === null || isKnown(m[1]) || (m[1].startsWith('no-') && isKnown(m[1].slice(3)))) continue;
    names.push(m[1]);
  }
  return names;
}

/** yargs' "Unknown arguments: model, data, predcit" (a misspelt command) and "Unknown arguments:
 *  hiden-layers, hidenLayers" (one misspelt option, twice) as one clear sentence with the
 *  likely meaning, as git and npm do. Null when `msg` is another error. */
function explainUnknown(msg: string, argv: string[], known: string[]): string | null {
  const m = /^Unknown arguments?: (.*)$/.exec(msg);
  if (m === null) return null;
  const command = argv.find((a) => !a.startsWith('-'));
  if (command !== undefined && !COMMANDS.includes(command)) {
    const near = closestName(command, COMMANDS);
    return `unknown command '${command}'${near !== undefined ? ` (did you mean ${near}?)` : ''}; the commands are ${COMMANDS.join(', ')}`;
  }
  const names = m[1].split(', ');
  const unknown = names.filter((n) => !(/[A-Z]/.test(n) && names.includes(kebab(n)))); // yargs lists a camelCase copy
  const options = known.filter((k) => !/[A-Z]/.test(k) && k.length > 1);
  // Given as an option: --name, --name=…, --no-name, or a letter of a short flag (-x, -xy).
  const given = (n: string): boolean => argv.some((a) => a === `--${n}` || a.startsWith(`--${n}=`) || a === `--no-${n}`
    || (n.length === 1 && /^-[^-]/.test(a) && a.slice(1).includes(n)));
  return unknown.map((n) => {
    if (!given(n)) return `unexpected argument '${n}' (every value belongs to an option, e.g. --data FILE)`;
    if (n.length === 1) return `unknown option -${n}`;
    // yargs reads `--no-shuffle=false` as an option named no-shuffle, which there is not.
    const negated = argv.find((a) => a.startsWith(`--${n}=`));
    if (n.startsWith('no-') && options.includes(n.slice(3)) && negated !== undefined)
      return `--${n} takes no value: give --${n} alone (or --${n.slice(3)}=true, --${n.slice(3)}=false); received ${negated}`;
    const near = closestName(n, options);
    return `unknown option --${n}${near !== undefined ? ` (did you mean --${near}?)` : ''}`;
  }).join('; ');
}

/** A command that already reported its failure and wants this exit code. */
class RuntimeExit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`);
  }
}

/** The benchmarks' own entry (bench/run.ts), with its own options and --help. */
async function runBench(args: string[]): Promise<number> {
  const bench = (await import(new URL('../bench/run.js', import.meta.url).href)) as { runBenchmarks(a: string[], invokedAs: string): Promise<number> };
  return bench.runBenchmarks(args, 'bptrain bench');
}

/** The signal that stopped the last `main` run, for the program to end by (see below); null when
 *  none did. */
let stoppedBy: StopSignal | null = null;
/** Set once a failed write to stdout has been reported, so that it is said once. */
let stdoutFailureSaid = false;

/** Runs the CLI; resolves with the exit code. SIGINT/SIGTERM/SIGHUP stop any command: training
 *  after the step in progress (the checkpoint, when asked for, is written first), reading and
 *  predicting at the next line; exit codes 130/143/129, and no output file is left half-written.
 *  A second signal while the first is being honoured ends the process at once (a step of a large
 *  network can take seconds, and a FIFO nobody opens can block for ever). */
export async function main(argv: string[], io: Io): Promise<number> {
  stoppedBy = null;
  // `bptrain bench …` goes straight to the benchmarks, whose options (and --help) are their own;
  // they have nothing to save half-way, so Node's default signal handling ends them at once.
  if (argv[0] === 'bench') return runBench(argv.slice(1));
  const controller = new AbortController();
  const handlers = new Map<StopSignal, () => void>();
  const unhook = (): void => {
    for (const [name, h] of handlers) process.off(name, h);
  };
  for (const name of Object.keys(STOP_SIGNALS) as StopSignal[]) {
    const h = (): void => {
      if (controller.signal.aborted) {
        io.stderr.write(`${progressBreak(io)}bptrain: ${name} again: stopping at once (files being replaced keep their old content)\n`);
        removeTempFiles();
        // Killed by the signal itself, not process.exit: exit waits for the threads, and one
        // blocked opening a FIFO that nobody opens would hold the process for ever.
        unhook();
        process.kill(process.pid, name);
        return;
      }
      io.stderr.write(`${progressBreak(io)}bptrain: ${name}: stopping (${name === 'SIGINT' ? 'Ctrl-C' : 'the signal'} again to stop at once)\n`);
      controller.abort(new Interrupted(name));
    };
    handlers.set(name, h);
    process.on(name, h);
  }
  try {
    await buildParser(argv, { ...io, signal: controller.signal }).parseAsync();
    const late = controller.signal.reason;
    if (late instanceof Interrupted) {
      // The signal came as the command was finishing: its work is done and written, but the
      // caller asked to stop (a shell loop must not go on to its next command).
      io.stderr.write(`bptrain: ${late.message} as it finished; its output is complete\n`);
      stoppedBy = late.signalName;
      return late.exitCode;
    }
    return 0;
  } catch (err) {
    if (err instanceof RuntimeExit) return err.code;
    if (err instanceof Interrupted) {
      io.stderr.write(`bptrain: ${err.message}; ${err.outcome}\n`);
      stoppedBy = err.signalName;
      return err.exitCode;
    }
    const usage = err instanceof UsageError || (err as Error)?.name === 'YError';
    // Said once, here or by the stream's 'error' listener, whichever comes first.
    if (err instanceof StdoutError) {
      if (!stdoutFailureSaid) io.stderr.write(`bptrain: ${err.message}\n`);
      stdoutFailureSaid = true;
      return 1;
    }
    const message = (err as Error)?.message ?? String(err);
    io.stderr.write(`bptrain: ${message}\n`);
    const command = argv.find((a) => !a.startsWith('-'));
    if (usage) io.stderr.write(`Run 'bptrain ${command !== undefined && COMMANDS.includes(command) ? command : ''} --help' for the options and examples.\n`.replace('  ', ' '));
    if (process.env.BPTRAIN_DEBUG === '1' && err instanceof Error && err.stack) io.stderr.write(err.stack + '\n');
    return usage ? 2 : 1;
  } finally {
    unhook();
  }
}

/** A line break first when a progress line is being redrawn on the terminal, so that a message
 *  does not run on from it. */
function progressBreak(io: Io): string {
  return (io.stderr as NodeJS.WriteStream).isTTY === true ? '\n' : '';
}

// Run only as the program (`bptrain`, or `node dist/src/cli.js`), not when imported.
if (isProgram(import.meta.url)) {
  const io: Io = { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin };
  // A reader that goes away (`bptrain train … 2>&1 | head -1`) must not crash a run with an
  // unhandled 'error' event: progress and summaries are dropped and the work goes on to its files
  // (predict, whose output is the work, stops by itself). Another write error (a full disk
  // behind `> file`) is said once and makes the exit status 1.
  let outputFailed = false;
  for (const [stream, name] of [[process.stdout, 'stdout'], [process.stderr, 'stderr']] as const) {
    stream.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'EPIPE' || outputFailed) return;
      outputFailed = true;
      process.exitCode = 1; // also when it comes after the command has returned
      if (name === 'stdout' && !stdoutFailureSaid) process.stderr.write(`bptrain: ${new StdoutError(e).message}\n`);
      if (name === 'stdout') stdoutFailureSaid = true;
    });
  }
  main(hideBin(process.argv), io).then((code) => {
    // Stopped by a signal: end by that same signal once everything is cleaned up, as gzip and
    // curl do, so that a shell running a loop of commands stops too (for an exit status of 130
    // it assumes the command handled Ctrl-C itself, and goes on).
    if (stoppedBy !== null) process.kill(process.pid, stoppedBy);
    else process.exitCode = code === 0 && outputFailed ? 1 : code;
  });
}
