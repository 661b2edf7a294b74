// Progress reporting for the CLI: a live line on a TTY, plain lines when piped, nothing with --quiet.
// Writes to stderr so that stdout stays clean for --json and predictions.

import type { EpochStats, StepPhases, StepProgress } from './trainer.js';

export interface ProgressSink {
  /** Records read so far from a data file (a large file takes seconds to load). */
  reading(file: string, records: number): void;
  step(p: StepProgress): void;
  epoch(e: EpochStats, epochs: number): void;
  done(): void;
}

const fmt = (v: number | undefined, digits = 4): string => (v === undefined ? '-' : v.toFixed(digits));
const pct = (v: number | undefined): string => (v === undefined ? '-' : `${(100 * v).toFixed(2)}%`);
const rate = (v: number): string => Math.round(v).toLocaleString('en-US');

function clock(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--:--';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return `${h > 0 ? `${h}:${String(m).padStart(2, '0')}` : m}:${String(r).padStart(2, '0')}`;
}

export function epochLine(e: EpochStats, epochs: number): string {
  const parts = [`epoch ${e.epoch}/${epochs}`, `loss ${fmt(e.loss)}`];
  if (e.accuracy !== undefined) parts.push(`acc ${pct(e.accuracy)}`);
  if (e.valLoss !== undefined) parts.push(`val_loss ${fmt(e.valLoss)}`);
  if (e.valAccuracy !== undefined) parts.push(`val_acc ${pct(e.valAccuracy)}`);
  parts.push(`${rate(e.samplesPerSec)} samples/s`, e.seconds < 1 ? `${(e.seconds * 1000).toFixed(1)}ms` : `${e.seconds.toFixed(2)}s`);
  return parts.join('  ') + (e.phases !== undefined ? '\n' + phasesLine(e.phases) : '');
}

/** `train --profile`'s second line of an epoch: where a step's time went, per thread. */
export function phasesLine(p: StepPhases): string {
  // Three significant digits, never an exponent: 1210, 6.51, 0.46, 0.0123; 0 below 0.0005.
  const ms = (v: number): string => (v >= 100 ? v.toFixed(0) : v < 0.0005 ? '0' : String(Number(v.toPrecision(3))));
  const threads = p.threads === 1 ? 'on 1 thread:' : `on ${p.threads} threads, each:`;
  return `  step ${ms(p.stepMs)} ms ${threads} δ pass ${ms(p.deltas)}, gradient sums ${ms(p.gradients)}, update ${ms(p.update)}, waiting ${ms(p.waiting)}; other ${ms(otherMs(p))}`;
}

/** What a step's time has beyond its threads' phases: the coordinator's share (see StepPhases). */
export function otherMs(p: StepPhases): number {
  return Math.max(0, p.stepMs - p.deltas - p.gradients - p.update - p.waiting);
}

export function makeProgress(stream: NodeJS.WriteStream, quiet: boolean): ProgressSink {
  if (quiet) return { reading() {}, step() {}, epoch() {}, done() {} };
  // A terminal that cannot redraw a line (TERM=dumb: an editor's shell buffer, `script` logs)
  // gets plain lines, as npm does.
  if (!stream.isTTY || process.env.TERM === 'dumb') {
    return {
      reading() {},
      step() {},
      epoch(e, epochs) { stream.write(epochLine(e, epochs) + '\n'); },
      done() {},
    };
  }
  // On a terminal: redraw one line at most 10 times a second; epoch summaries stay on screen.
  let last = 0;
  let started = performance.now();
  let epochSeen = -1;
  let firstStep = 1;
  let live = false;
  const clear = () => { if (live) stream.write('\r\x1b[2K'); live = false; };
  return {
    reading(file, records) {
      const now = performance.now();
      if (now - last < 100) return;
      last = now;
      stream.write(`\r\x1b[2Kreading ${file}: ${rate(records)} records`.slice(0, Math.max(20, (stream.columns || 120) - 1)));
      live = true;
    },
    step(p) {
      // The clock starts at the first step seen in an epoch (step 1, or the step a resumed run
      // starts from).
      if (p.epoch !== epochSeen) {
        epochSeen = p.epoch;
        firstStep = p.step;
        started = performance.now();
      }
      const now = performance.now();
      if (now - last < 100 && p.step !== p.steps) return;
      last = now;
      const width = 20;
      const filled = Math.round((width * p.step) / p.steps);
      // A step's time is known from the second step seen on; before that an ETA would read 0:00.
      const elapsed = (now - started) / 1000;
      const eta = p.step > firstStep ? clock(((p.epochs - p.epoch) * p.steps + (p.steps - p.step)) * (elapsed / (p.step - firstStep))) : '--:--';
      const line = `epoch ${p.epoch}/${p.epochs} [${'='.repeat(filled)}${' '.repeat(width - filled)}] ${p.step}/${p.steps}  loss ${fmt(p.loss)}  ${rate(p.samplesPerSec)} samples/s  ETA ${eta}`;
      stream.write('\r\x1b[2K' + line.slice(0, Math.max(20, (stream.columns || 120) - 1)));
      live = true;
    },
    epoch(e, epochs) {
      clear();
      stream.write(epochLine(e, epochs) + '\n');
    },
    done() { clear(); },
  };
}
