// Same-process A/B of two builds of bptrain: is a change faster, slower, or neither?
//
//   npm run build && node dist/bench/ab.js DIR_A DIR_B [--workload mnist-b256] [--threads 1,2] [--fits 16]
//
// DIR_A and DIR_B are checkouts with their own `npm run build` done (dist/src/index.js), e.g. the
// base of a change in a worktree: `git worktree add ../base <commit> && (cd ../base && npm ci &&
// npm run build)`. Both builds train the same workload on the same data in one process, one
// trainer per build and thread count, one-epoch fits taken in rounds, each round in a new seeded
// random order, so a change in the machine's load falls on every configuration alike; a full `npm run bench` of each build an hour
// apart cannot separate builds a few percent apart on a shared machine (see README, Performance).
// Prints the median fit time per configuration, B ÷ A speed per thread count with the spread of
// the per-round ratios, and each build's
// own speedup; and whether the two builds' final weights are bit-identical (expected unless the
// change touches the arithmetic). Not part of `npm run bench`: a tool, not a target.

import { parseArgs } from 'node:util';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { DataBank, WORKLOADS, modelOptions, workload, type WorkloadId } from './workloads.js';
import { FULL_SIZES, LR, SEED, plainInt } from './config.js';
import { Rng } from '../src/rng.js';
import { median } from './measure.js';
import type * as Lib from '../src/index.js';

const USAGE = `usage: node dist/bench/ab.js DIR_A DIR_B [--workload ${WORKLOADS.map((w) => w.id).join('|')}] [--threads 1,2] [--fits 16]
  DIR_A, DIR_B  checkouts of bptrain, each built (dist/src/index.js)
  --workload    what to train (default mnist-b256; the workloads of npm run bench)
  --threads     thread counts to compare (default 1,2)
  --fits        timed one-epoch fits per configuration (default 16, at least 3; one more warms up)
`;

interface Config { lib: typeof Lib; build: 'A' | 'B'; threads: number; model: Lib.Model; trainer: Lib.Trainer; times: number[] }

async function main(): Promise<void> {
  const fail = (why: string): void => {
    process.stderr.write(`ab: ${why}\n${USAGE}`);
    process.exitCode = 2;
  };
  let parsed;
  try {
    parsed = parseArgs({
      allowPositionals: true,
      options: { workload: { type: 'string', default: 'mnist-b256' }, threads: { type: 'string', default: '1,2' }, fits: { type: 'string', default: '16' }, help: { type: 'boolean', short: 'h' } },
    });
  } catch (err) {
    return fail((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) return void process.stdout.write(USAGE);
  if (positionals.length !== 2) return fail('give two build directories');
  if (!WORKLOADS.some((w) => w.id === values.workload)) return fail(`unknown workload ${values.workload}`);
  const threads = [...new Set(values.threads.split(',').map(plainInt))];
  if (!threads.every((t) => Number.isInteger(t) && t >= 1 && t <= 32)) return fail(`--threads must be integers from 1 to 32; received ${values.threads}`);
  const fits = plainInt(values.fits);
  if (!(Number.isInteger(fits) && fits >= 3)) return fail(`--fits must be an integer ≥ 3; received ${values.fits}`);

  const libs: (typeof Lib)[] = [];
  for (const dir of positionals) {
    const entry = path.resolve(dir, 'dist', 'src', 'index.js');
    try {
      libs.push((await import(pathToFileURL(entry).href)) as typeof Lib);
    } catch (err) {
      return fail(`cannot load ${entry} (run npm run build there): ${(err as Error).message}`);
    }
  }
  const w = workload(values.workload as WorkloadId);
  // The data of `npm run bench` (the same sizes), made once; each build gets its own shared copy.
  const raw = new DataBank(FULL_SIZES).forWorkload(w.id);
  const configs: Config[] = [];
  libs.forEach((lib, i) => {
    for (const t of threads) {
      const model = lib.createModel(modelOptions(w));
      configs.push({ lib, build: i === 0 ? 'A' : 'B', threads: t, model, trainer: new lib.Trainer(model, { threads: t }), times: [] });
    }
  });
  const data = libs.map((lib) => lib.toShared({ ...raw, x: Float64Array.from(raw.x), y: Float64Array.from(raw.y) }));
  try {
    // Each round in a new order, so that no configuration always runs first nor always follows
    // the same one (a rotation kept each after the same neighbour, whose after-effects, a warm
    // or cold cache, a core just freed, then fell on it alone).
    const rng = new Rng(SEED);
    const order = configs.map((_, i) => i);
    for (let round = 0; round <= fits; round++) {
      rng.shuffle(order);
      for (const i of order) {
        const c = configs[i];
        const t0 = performance.now();
        await c.trainer.fit(data[c.build === 'A' ? 0 : 1], { epochs: 1, batchSize: w.batchSize, optimizer: 'sgd', lr: LR, shuffle: false });
        if (round > 0) c.times.push(performance.now() - t0); // round 0 warms up the JIT and the pools
      }
    }
  } finally {
    await Promise.all(configs.map((c) => c.trainer.close()));
  }
  const get = (build: 'A' | 'B', t: number): Config => configs.find((c) => c.build === build && c.threads === t)!;
  const rate = (c: Config): number => raw.size / (median(c.times) / 1000);
  const lines = [
    `${w.id} (${w.layers.join('-')}, batch ${w.batchSize}, ${raw.size} samples per fit), ${fits} one-epoch fits per configuration in rounds of shuffled order; A = ${positionals[0]}, B = ${positionals[1]}`,
    '',
    '| threads | A median ms | B median ms | A samples/s | B samples/s | B ÷ A speed | B ÷ A per round: middle half (all) | same bits |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...threads.map((t) => {
      const a = get('A', t), b = get('B', t);
      const same = a.model.params.length === b.model.params.length && a.model.params.every((v, i) => Object.is(v, b.model.params[i]));
      // Each round's own ratio (the two fits ran within a second of each other): its spread says
      // how far one figure of B ÷ A can be trusted on this machine at this time.
      const perRound = a.times.map((ta, i) => ta / b.times[i]).sort((x, y) => x - y);
      const q = (p: number): string => perRound[Math.round(p * (perRound.length - 1))].toFixed(3);
      return `| ${t} | ${median(a.times).toFixed(1)} | ${median(b.times).toFixed(1)} | ${Math.round(rate(a))} | ${Math.round(rate(b))} | ${(rate(b) / rate(a)).toFixed(3)} | ${q(0.25)}–${q(0.75)} (${q(0)}–${q(1)}) | ${same ? 'yes' : 'no'} |`;
    }),
  ];
  if (threads.includes(1))
    for (const t of threads.filter((x) => x > 1))
      lines.push('', `speedup at ${t} threads: A ${(rate(get('A', t)) / rate(get('A', 1))).toFixed(3)}, B ${(rate(get('B', t)) / rate(get('B', 1))).toFixed(3)}`);
  process.stdout.write(lines.join('\n') + '\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`ab: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exitCode = 1;
});
