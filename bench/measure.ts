// Measuring with tinybench: one `Bench` per suite (or per workload), warm-up on, and a uniform
// record of each task's timing that the report can print and the JSON file can keep.
//
// A task always processes a known number of training samples (one epoch over a fixed data set, or
// a fixed block of samples), so throughput is samples ÷ median task time. The median, not the
// mean: on a shared machine a neighbour's burst lands on a few calls of one task, and the mean
// would charge it to whichever configuration happened to be running. Spread comes straight from
// tinybench's latency statistics: rme (the 95% confidence half-width of the mean, in percent) and
// the fastest/slowest task, turned into samples/s.

import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Bench } from 'tinybench';

/** How long and how often each task runs; quick mode makes every suite a smoke test. */
export interface BenchTiming {
  /** Time budget per task, ms: tinybench keeps sampling until this and `iterations` are both met. */
  time: number;
  /** Minimum timed calls per task. */
  iterations: number;
  /** Warm-up budget per task, ms, and minimum warm-up calls (JIT, worker start-up, pool caches). */
  warmupTime: number;
  warmupIterations: number;
}

/** One task's timing, in the units the report uses. */
export interface Stats {
  /** Training samples processed by one call of the task. */
  samplesPerTask: number;
  /** Timed calls (tinybench samples). */
  runs: number;
  meanMs: number;
  minMs: number;
  maxMs: number;
  sdMs: number;
  /** Relative margin of error of the mean, percent (95% confidence, Student's t). */
  rmePct: number;
  /** samplesPerTask ÷ median time (of the calls, or of the rounds' per-call times). */
  samplesPerSec: number;
  /** From the slowest and the fastest call. */
  samplesPerSecMin: number;
  samplesPerSecMax: number;
  /** Interleaved measurements only: each round's mean time per call, ms, in round order, so that
   *  the median, spread and same-round ratios can be recomputed from the results file. */
  roundMs?: number[];
}

export interface TaskSpec {
  name: string;
  samples: number;
  fn: () => unknown;
  /** Declared so tinybench does not call the function an extra time to find out. */
  async: boolean;
}

export function makeBench(name: string, timing: BenchTiming): Bench {
  return new Bench({
    name,
    time: timing.time,
    iterations: timing.iterations,
    warmup: true,
    warmupTime: timing.warmupTime,
    warmupIterations: timing.warmupIterations,
    // A failing task must fail the run, not leave a silent hole in the table.
    throws: true,
  });
}

/** Runs the tasks one after the other in one Bench and returns their stats by name. */
export async function measure(name: string, timing: BenchTiming, tasks: TaskSpec[]): Promise<Map<string, Stats>> {
  const bench = makeBench(name, timing);
  for (const t of tasks) bench.add(t.name, t.fn, { async: t.async });
  await bench.run();
  const out = new Map<string, Stats>();
  for (const t of tasks) {
    const task = bench.getTask(t.name);
    if (task === undefined) throw new Error(`${name}: task ${t.name} vanished`);
    out.set(t.name, statsOf(`${name}/${t.name}`, task.result, t.samples));
  }
  return out;
}

/** Length of one round of `measureInterleaved`, per task, ms. */
const ROUND_MS = 150;
/** Fewest rounds of `measureInterleaved`, whatever the time budget. */
const MIN_ROUNDS = 8;

/**
 * Like `measure`, but interleaved finely enough that a shared machine's load falls on every task
 * alike, which same-run ratios (speedup, 'auto' ÷ 1 thread) need. After a warm-up Bench (which
 * also times one call of each task), the tasks run in short rounds: each round is a fresh Bench in
 * which every task times one batch of calls lasting about `roundMs`, the order rotated from round
 * to round; rounds go on until every task has had `timing.time` ms and at least MIN_ROUNDS (and
 * `timing.iterations`) rounds. A burst of load lasting a second or two thus covers a round or so
 * of every task, instead of several seconds of one task (as whole Benches of a few calls per task
 * did: consecutive runs of the same code gave 2-thread speedups of 1.59 and 2.14).
 * Per task, from all its rounds' batches (per call): samples/s from the median time, the spread
 * from the slowest and fastest batch, rme from the mean and standard deviation.
 */
export async function measureInterleaved(
  name: string, timing: BenchTiming, tasks: TaskSpec[], quick: boolean, roundMs = ROUND_MS,
): Promise<Map<string, Stats>> {
  if (quick) return measure(name, timing, tasks);
  const warm = await measure(`${name} (warm-up)`, { ...timing, time: 0, iterations: 1 }, tasks);
  const calls = tasks.map((t) => Math.max(1, Math.round(roundMs / warm.get(t.name)!.meanMs)));
  const perCall: number[][] = tasks.map(() => []);
  const spentMs = (i: number): number => perCall[i].reduce((a, b) => a + b, 0) * calls[i];
  const once: BenchTiming = { time: 0, iterations: 1, warmupTime: 0, warmupIterations: 0 };
  for (let r = 0; r < Math.max(MIN_ROUNDS, timing.iterations) || tasks.some((_, i) => spentMs(i) < timing.time); r++) {
    const order = tasks.map((_, i) => (i + r) % tasks.length);
    const batches: TaskSpec[] = order.map((i) => ({
      name: tasks[i].name,
      samples: tasks[i].samples * calls[i],
      async: tasks[i].async,
      fn: tasks[i].async
        ? async () => { for (let k = 0; k < calls[i]; k++) await tasks[i].fn(); }
        : () => { for (let k = 0; k < calls[i]; k++) tasks[i].fn(); },
    }));
    const round = await measure(`${name} (round ${r + 1})`, once, batches);
    order.forEach((i) => perCall[i].push(round.get(tasks[i].name)!.meanMs / calls[i]));
  }
  const out = new Map<string, Stats>();
  tasks.forEach((t, i) => {
    const v = perCall[i];
    const n = v.length;
    const mean = v.reduce((a, b) => a + b, 0) / n;
    const sd = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1));
    const df = n - 1;
    const t975 = 1.96 + 2.4 / df + 3 / (df * df); // Student's t, 0.975 quantile, to ~1% for df ≥ 4
    const perSec = (ms: number): number => t.samples / (ms / 1000);
    out.set(t.name, {
      samplesPerTask: t.samples,
      runs: n * calls[i],
      meanMs: mean,
      minMs: Math.min(...v),
      maxMs: Math.max(...v),
      sdMs: sd,
      rmePct: (100 * t975 * sd) / Math.sqrt(n) / mean,
      samplesPerSec: perSec(median(v)),
      samplesPerSecMin: perSec(Math.max(...v)),
      samplesPerSecMax: perSec(Math.min(...v)),
      roundMs: v,
    });
  });
  return out;
}

export function median(values: number[]): number {
  const v = [...values].sort((a, b) => a - b);
  const m = v.length >> 1;
  return v.length % 2 === 1 ? v[m] : (v[m - 1] + v[m]) / 2;
}

function statsOf(label: string, result: unknown, samples: number): Stats {
  const r = result as { state: string; error?: Error; latency?: { mean: number; p50?: number; min: number; max: number; sd: number; rme: number; samplesCount: number } };
  if (r.state === 'errored') throw r.error ?? new Error(`${label} failed`);
  const lat = r.latency;
  if (lat === undefined || !(lat.mean > 0)) throw new Error(`${label}: no timing (${r.state})`);
  const perSec = (ms: number): number => (ms > 0 ? samples / (ms / 1000) : Number.POSITIVE_INFINITY);
  return {
    samplesPerTask: samples,
    runs: lat.samplesCount,
    meanMs: lat.mean,
    minMs: lat.min,
    maxMs: lat.max,
    sdMs: lat.sd,
    // With a single sample tinybench reports rme 0 (no interval); keep it, the runs count says so.
    rmePct: Number.isFinite(lat.rme) ? lat.rme : 0,
    samplesPerSec: perSec(lat.p50 !== undefined && lat.p50 > 0 ? lat.p50 : lat.mean),
    samplesPerSecMin: perSec(lat.max),
    samplesPerSecMax: perSec(lat.min),
  };
}

/** Relative uncertainty of a ratio a/b from the two rme values (independent errors add in quadrature). */
export function ratioRmePct(a: Stats, b: Stats): number {
  return Math.hypot(a.rmePct, b.rmePct);
}

/** Version of an installed package (read from its package.json, which not every package exports), or undefined. */
export function packageVersion(name: string): string | undefined {
  try {
    const require = createRequire(import.meta.url);
    let dir = path.dirname(require.resolve(name));
    for (;;) {
      const file = path.join(dir, 'package.json');
      if (existsSync(file)) {
        const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
        if (pkg.name === name) return pkg.version;
      }
      const up = path.dirname(dir);
      if (up === dir) return undefined;
      dir = up;
    }
  } catch {
    return undefined;
  }
}
