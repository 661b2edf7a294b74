// Target encoding (how raw NDJSON targets map to network outputs and back) and whole-file loading
// into a Dataset.
//
// Inference rules (inferEncoding):
//   all string labels                  → 'classes', classes = sorted unique labels (plain `<` order,
//                                         so it does not depend on file order); one label is an error.
//                                         With outputsHint 1 and exactly two labels → 'binary'.
//   numbers, all 0 or 1                → 'binary' (1 output, classes [0, 1]); with outputsHint ≥ 2,
//                                         'classes' 0..outputsHint-1.
//   numbers, non-negative integers,
//     some > 1                         → 'classes' 0..max (0..outputsHint-1 when that is larger);
//                                         with outputsHint 1 → 'regression'.
//   other numbers                      → 'regression', 1 output.
//   arrays of length k                 → 'regression', k outputs.
// Mixing kinds (labels and numbers, numbers and arrays) or array lengths is a DataError at the
// first target that differs. Label → index tables are Maps, so labels such as "__proto__" are
// ordinary keys.

import type { Dataset } from './dataset.js';
import { DataError, OptionError, checkOptionKeys } from './errors.js';
import { READER_OPTION_KEYS, readRecords, sourceName, type ReaderOptions } from './ndjson-reader.js';

export type TargetKind = 'binary' | 'classes' | 'regression';

export interface TargetEncoding {
  kind: TargetKind;
  /** class names for 'classes' (strings, or numbers for integer class indices); for 'binary' the
   *  two classes [negative, positive] (default [0, 1]) */
  classes?: readonly (string | number)[] | undefined;
  /** number of network outputs this encoding produces */
  outputs: number;
}

/** Where the targets given to inferEncoding come from, for error messages. */
export interface TargetSource {
  /** Source line of each target (parallel to `ys`); without it messages say "target N" (1-based). */
  lines?: ArrayLike<number>;
  /** File name for DataError.file. */
  file?: string;
  /** Target field name used in messages. @default 'y' */
  field?: string;
}

/** Integer targets above this many classes are refused rather than one-hot encoded into a huge
 *  output layer; they are almost surely a regression target (give outputsHint 1). */
export const MAX_INFERRED_CLASSES = 10_000;

type YKind = 'string' | 'number' | 'array';
const KIND_WORDS: Record<YKind, string> = { string: 'a string label', number: 'a number', array: 'an array of numbers' };

/**
 * Accumulates what inference needs from a stream of targets without keeping them: kind, labels,
 * numeric range, array length. Used by inferEncoding and (while streaming) by loadDataset.
 */
class TargetSummary {
  kind: YKind | undefined;
  count = 0;
  private firstLine = 0;
  /** distinct string labels → first line seen (a Map: labels are data, not trusted keys) */
  readonly labels = new Map<string, number>();
  private allBinary = true;
  private allNonNegInt = true;
  private max = -Infinity;
  private maxLine = 0;
  private width = 0;

  constructor(private readonly file: string | undefined, private readonly field: string, private readonly withLines: boolean) {}

  fail(msg: string, line?: number): never {
    if (this.file !== undefined) throw new DataError(msg, this.file, line);
    throw new DataError(line === undefined ? msg : `${this.withLines ? 'line' : 'target'} ${line}: ${msg}`);
  }

  private where(line: number): string {
    return `${this.withLines ? 'line' : 'target'} ${line}`;
  }

  add(y: unknown, line: number): void {
    const f = this.field;
    let kind: YKind;
    if (typeof y === 'string') kind = 'string';
    else if (typeof y === 'number') kind = 'number';
    else if (Array.isArray(y) || ArrayBuffer.isView(y)) kind = 'array';
    else return this.fail(`${f} must be a number, an array of numbers or a string label (got ${y === null ? 'null' : typeof y})`, line);

    if (this.kind === undefined) {
      this.kind = kind;
      this.firstLine = line;
    } else if (kind !== this.kind) {
      this.fail(`${f} is ${KIND_WORDS[kind]}, but the first target (${this.where(this.firstLine)}) is ${KIND_WORDS[this.kind]}; all targets must be of one kind`, line);
    }
    this.count++;

    if (kind === 'string') {
      const s = y as string;
      if (!this.labels.has(s)) this.labels.set(s, line);
    } else if (kind === 'number') {
      const v = y as number;
      if (!Number.isFinite(v)) this.fail(`${f} is not finite`, line);
      if (v !== 0 && v !== 1) this.allBinary = false;
      if (!(Number.isInteger(v) && v >= 0)) this.allNonNegInt = false;
      if (v > this.max) {
        this.max = v;
        this.maxLine = line;
      }
    } else {
      const a = y as ArrayLike<unknown>;
      if (a.length === 0) this.fail(`${f} is an empty array`, line);
      for (let j = 0; j < a.length; j++) {
        const e = a[j];
        if (typeof e !== 'number' || !Number.isFinite(e)) this.fail(`${f}[${j}] is not a finite number`, line);
      }
      if (this.width === 0) this.width = a.length;
      else if (a.length !== this.width)
        this.fail(`${f} has ${a.length} values, expected ${this.width} (as in ${this.where(this.firstLine)})`, line);
    }
  }

  finish(outputsHint: number | undefined, regression = false): TargetEncoding {
    const f = this.field;
    if (outputsHint !== undefined && !(Number.isInteger(outputsHint) && outputsHint >= 1))
      throw new OptionError('outputsHint', outputsHint, 'a positive integer');
    if (this.kind === undefined) return this.fail('no targets');
    const hint = outputsHint;
    const net = (n: number): string => `the network has ${n} output${n === 1 ? '' : 's'}`;

    if (this.kind === 'string') {
      const classes = [...this.labels.keys()].sort(compare);
      if (classes.length < 2)
        return this.fail(`only one class (${JSON.stringify(classes[0])}) found in ${f}; a classifier needs at least 2`);
      if (hint === 1 && classes.length === 2) return { kind: 'binary', classes, outputs: 1 };
      if (hint !== undefined && hint !== classes.length)
        return this.fail(`${f} has ${classes.length} classes (${listClasses(classes)}), but ${net(hint)}`);
      return { kind: 'classes', classes, outputs: classes.length };
    }

    if (this.kind === 'array') {
      if (hint !== undefined && hint !== this.width)
        return this.fail(`${f} has ${this.width} values, but ${net(hint)}`, this.firstLine);
      return { kind: 'regression', outputs: this.width };
    }

    if (regression) {
      if (hint !== undefined && hint !== 1) return this.fail(`${f} holds single numbers (regression, 1 output), but ${net(hint)}`);
      return { kind: 'regression', outputs: 1 };
    }
    if (this.allBinary) {
      if (hint === undefined || hint === 1) return { kind: 'binary', classes: [0, 1], outputs: 1 };
      return { kind: 'classes', classes: range(hint), outputs: hint };
    }
    if (this.allNonNegInt && hint !== 1) {
      const n = Math.max(this.max + 1, hint ?? 0);
      if (hint !== undefined && hint <= this.max)
        return this.fail(`${f} = ${this.max} is not a class index of a network with ${hint} outputs (0..${hint - 1})`, this.maxLine);
      if (n > MAX_INFERRED_CLASSES)
        return this.fail(`${f} = ${this.max} would make ${n} classes; for a regression target give the network 1 output`, this.maxLine);
      return { kind: 'classes', classes: range(n), outputs: n };
    }
    if (hint !== undefined && hint !== 1)
      return this.fail(`${f} holds single numbers (regression, 1 output), but ${net(hint)}`);
    return { kind: 'regression', outputs: 1 };
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

function listClasses(classes: readonly (string | number)[]): string {
  const shown = classes.slice(0, 8).map((c) => (typeof c === 'string' ? JSON.stringify(c) : String(c)));
  return shown.join(', ') + (classes.length > 8 ? `, … (${classes.length} in all)` : '');
}

/**
 * Infers the encoding from all raw targets. outputsHint = the network's output size when known.
 * `where` names the targets' source lines and file for DataErrors (e.g. mixing labels and numbers
 * fails at the first target whose kind differs from the first one).
 */
export function inferEncoding(
  ys: Iterable<number | ArrayLike<number> | string>,
  outputsHint?: number,
  where: TargetSource = {},
): TargetEncoding {
  const summary = new TargetSummary(where.file, where.field ?? 'y', where.lines !== undefined);
  let i = 0;
  for (const y of ys) {
    summary.add(y, where.lines !== undefined ? where.lines[i] : i + 1);
    i++;
  }
  return summary.finish(outputsHint);
}

/** Checks that an encoding (e.g. read from a model file) is usable; throws OptionError if not. */
export function checkEncoding(enc: TargetEncoding): void {
  const bad = (why: string): never => {
    throw new OptionError('encoding', enc, why);
  };
  if (enc === null || typeof enc !== 'object') bad('a target encoding object');
  if (!Number.isInteger(enc.outputs) || enc.outputs < 1) bad('an encoding with a positive integer "outputs"');
  if (enc.kind === 'regression') return;
  if (enc.kind !== 'binary' && enc.kind !== 'classes') bad('an encoding of kind binary, classes or regression');
  if (enc.kind === 'binary' && enc.outputs !== 1) bad('a binary encoding with 1 output');
  const classes = enc.classes;
  if (classes === undefined) {
    if (enc.kind === 'classes') bad('a classes encoding with a "classes" list');
    return;
  }
  const want = enc.kind === 'binary' ? 2 : enc.outputs;
  if (!Array.isArray(classes) || classes.length !== want) bad(`an encoding with ${want} classes`);
  if (new Set(classes).size !== classes.length) bad('an encoding with distinct classes');
}

// Class → index table per encoding, built once (a Map, so any label is a safe key).
const classIndex = new WeakMap<TargetEncoding, Map<string | number, number>>();

function indexOf(enc: TargetEncoding, y: string | number): number | undefined {
  let table = classIndex.get(enc);
  if (table === undefined) {
    const classes = enc.classes ?? (enc.kind === 'binary' ? [0, 1] : range(enc.outputs));
    table = new Map(classes.map((c, i) => [c, i] as [string | number, number]));
    classIndex.set(enc, table);
  }
  return table.get(y);
}

/**
 * Writes the encoded target of one record into `into` at `offset` (enc.outputs values): 0/1 for
 * 'binary', one-hot for 'classes' (a string label or an integer class), raw values for
 * 'regression'. Throws DataError(file, line) for an unknown label, a wrong length etc.
 * `field` names the target field in messages.
 */
export function encodeTarget(
  enc: TargetEncoding,
  y: number | ArrayLike<number> | string,
  into: Float64Array,
  offset: number,
  file: string,
  line: number,
  field = 'y',
): void {
  const fail = (msg: string): never => {
    throw new DataError(msg, file, line);
  };
  const isArray = typeof y !== 'string' && typeof y !== 'number';
  if (enc.kind === 'regression') {
    if (typeof y === 'string') fail(`${field} is a string label (${JSON.stringify(y)}), but the model does regression`);
    if (typeof y === 'number') {
      if (enc.outputs !== 1) fail(`${field} is a single number, expected an array of ${enc.outputs} values`);
      if (!Number.isFinite(y)) fail(`${field} is not finite`);
      into[offset] = y;
      return;
    }
    const a = y as ArrayLike<number>;
    if (a.length !== enc.outputs) fail(`${field} has ${a.length} values, expected ${enc.outputs}`);
    for (let j = 0; j < a.length; j++) {
      const v = a[j];
      if (typeof v !== 'number' || !Number.isFinite(v)) fail(`${field}[${j}] is not a finite number`);
      into[offset + j] = v;
    }
    return;
  }
  if (isArray) return fail(`${field} is an array, but the model is a classifier`);
  const label = y as string | number;
  const k = indexOf(enc, label);
  if (k === undefined) {
    const known = listClasses(enc.classes ?? (enc.kind === 'binary' ? [0, 1] : range(enc.outputs)));
    if (typeof label === 'string') fail(`unknown label ${JSON.stringify(label)} in ${field}; the model's classes are ${known}`);
    fail(`${field} = ${label} is not one of the model's classes (${known})`);
  }
  if (enc.kind === 'binary') {
    into[offset] = k!;
    return;
  }
  into.fill(0, offset, offset + enc.outputs);
  into[offset + k!] = 1;
}

/**
 * Decodes a network output row into a prediction: the class for classifiers (argmax for
 * 'classes', output ≥ 0.5 → second class for 'binary'), the value (1 output) or values for
 * regression.
 */
export function decodeOutput(enc: TargetEncoding, out: ArrayLike<number>): string | number | number[] {
  if (out === null || typeof out !== 'object' || !(out.length >= enc.outputs))
    throw new OptionError('out', out, `a row of the model's ${enc.outputs} outputs`);
  if (enc.kind === 'regression') {
    if (enc.outputs === 1) return out[0];
    return Array.from({ length: enc.outputs }, (_, j) => out[j]);
  }
  if (enc.kind === 'binary') {
    const classes = enc.classes ?? [0, 1];
    return out[0] >= 0.5 ? classes[1] : classes[0];
  }
  let best = 0;
  for (let j = 1; j < enc.outputs; j++) if (out[j] > out[best]) best = j;
  return enc.classes !== undefined ? enc.classes[best] : best;
}

/** A Float64Array with room for at least `need` values, keeping the first `used` (doubling). */
function grow(a: Float64Array, used: number, need: number): Float64Array {
  if (need <= a.length) return a;
  let cap = Math.max(a.length, 16);
  while (cap < need) cap *= 2;
  const b = new Float64Array(cap);
  b.set(a.subarray(0, used));
  return b;
}

function growInt(a: Int32Array, need: number): Int32Array {
  if (need <= a.length) return a;
  const b = new Int32Array(Math.max(a.length * 2, need, 16));
  b.set(a);
  return b;
}

export interface LoadOptions extends ReaderOptions {
  /** Encode with this encoding (evaluate, or train --init) instead of inferring one; labels it
   *  does not know are DataErrors at their line. */
  encoding?: TargetEncoding | undefined;
  /** The network's output size, when known (guides inference). */
  outputsHint?: number | undefined;
  /** The network's input size, when known: a different x length fails at the first record. */
  inputsHint?: number | undefined;
  /** Single-number targets are regression targets even when they are all 0/1 or whole numbers
   *  (the network has a linear output). @default false */
  regression?: boolean | undefined;
  /** Called every 4,096 records with the count read so far (progress on large files). */
  onProgress?: ((records: number) => void) | undefined;
}

const LOAD_OPTION_KEYS = [...READER_OPTION_KEYS, ...Object.keys({ encoding: 1, outputsHint: 1, inputsHint: 1, regression: 1, onProgress: 1 } satisfies Record<Exclude<keyof LoadOptions, keyof ReaderOptions>, 1>)];

/**
 * Reads a whole file into a Dataset. x and y grow in typed arrays by doubling (no number[][]).
 * When `encoding` is given, uses it and rejects unknown labels with file:line; otherwise infers it
 * from all targets (kept compactly while reading: one float per number target, k per array, an
 * interned id per string label). Every record must have a target (requireTarget: false is refused;
 * use readRecords for predictions). Sets `lines` and `source` on the Dataset.
 */
export async function loadDataset(file: string, options: LoadOptions = {}): Promise<{ dataset: Dataset; encoding: TargetEncoding }> {
  if (typeof file !== 'string' || file === '') throw new OptionError('file', file, "a file name or '-'");
  checkOptionKeys(options, LOAD_OPTION_KEYS, 'loadDataset options');
  if (options.requireTarget === false) throw new OptionError('requireTarget', false, 'true for loadDataset (every sample needs a target)');
  const given = options.encoding;
  if (given !== undefined) checkEncoding(given);
  const inputsHint = options.inputsHint;
  if (inputsHint !== undefined && !(Number.isInteger(inputsHint) && inputsHint >= 1))
    throw new OptionError('inputsHint', inputsHint, 'a positive integer');
  const reader: ReaderOptions = {
    xField: options.xField,
    yField: options.yField,
    features: options.features,
    label: options.label,
    requireTarget: true,
    signal: options.signal,
  };
  const name = sourceName(file);
  const field = options.label ?? options.yField ?? 'y';
  const summary = new TargetSummary(name, field, true);

  const INITIAL = 256;
  let n = 0;
  let inputDim = 0;
  let x: Float64Array = new Float64Array(0);
  let lines: Int32Array = new Int32Array(INITIAL);
  // With a given encoding targets are encoded at once into y; otherwise raw targets are kept in
  // `raw` (numbers: 1 per record, arrays: k per record) or `ids` (string labels, interned).
  const outputs = given?.outputs ?? 0;
  let y: Float64Array = new Float64Array(given ? INITIAL * outputs : 0);
  let raw: Float64Array = new Float64Array(0);
  let ids: Int32Array = new Int32Array(0);
  const labelIds = new Map<string, number>();
  const labelNames: string[] = [];

  for await (const rec of readRecords(file, reader)) {
    if (n === 0) {
      inputDim = rec.x.length;
      if (inputsHint !== undefined && inputDim !== inputsHint) {
        const what = options.features !== undefined ? `--features give ${inputDim} values` : `${options.xField ?? 'x'} has ${inputDim} values`;
        throw new DataError(`${what}, expected ${inputsHint} (the network's input size)`, name, rec.line);
      }
      x = new Float64Array(INITIAL * inputDim);
    }
    x = grow(x, n * inputDim, (n + 1) * inputDim);
    x.set(rec.x, n * inputDim);
    lines = growInt(lines, n + 1);
    lines[n] = rec.line;
    const t = rec.y as number | number[] | string; // requireTarget: true → never undefined
    if (given !== undefined) {
      y = grow(y, n * outputs, (n + 1) * outputs);
      encodeTarget(given, t, y, n * outputs, name, rec.line, field);
    } else {
      summary.add(t, rec.line);
      if (typeof t === 'string') {
        let id = labelIds.get(t);
        if (id === undefined) {
          id = labelNames.length;
          labelIds.set(t, id);
          labelNames.push(t);
        }
        if (ids.length === 0) ids = new Int32Array(INITIAL);
        ids = growInt(ids, n + 1);
        ids[n] = id;
      } else if (typeof t === 'number') {
        if (raw.length === 0) raw = new Float64Array(INITIAL);
        raw = grow(raw, n, n + 1);
        raw[n] = t;
      } else {
        const k = t.length; // equal for all records (checked by summary.add)
        if (raw.length === 0) raw = new Float64Array(INITIAL * k);
        raw = grow(raw, n * k, (n + 1) * k);
        raw.set(t, n * k);
      }
    }
    n++;
    if ((n & 4095) === 0) options.onProgress?.(n);
  }

  let encoding: TargetEncoding;
  if (given !== undefined) {
    encoding = given;
    y = y.slice(0, n * outputs);
  } else {
    encoding = summary.finish(options.outputsHint, options.regression === true);
    const m = encoding.outputs;
    y = new Float64Array(n * m);
    if (summary.kind === 'string') {
      for (let i = 0; i < n; i++) encodeTarget(encoding, labelNames[ids[i]], y, i * m, name, lines[i], field);
    } else if (summary.kind === 'number') {
      for (let i = 0; i < n; i++) encodeTarget(encoding, raw[i], y, i * m, name, lines[i], field);
    } else {
      y.set(raw.subarray(0, n * m)); // arrays: regression with k = m outputs, values already checked
    }
  }
  const dataset: Dataset = {
    size: n,
    inputDim,
    targetDim: encoding.outputs,
    x: x.slice(0, n * inputDim),
    y,
    lines: lines.slice(0, n),
    source: name,
  };
  return { dataset, encoding };
}
