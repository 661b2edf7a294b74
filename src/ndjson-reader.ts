// The NDJSON data reader: streams one validated record per non-blank line of a file (or stdin),
// with the 1-based physical line number of each record, in constant memory.
//
// Accepted layouts of a line:
//   vector form  {"x": [0.1, 0.2], "y": 1}            (field names set by xField / yField)
//   record form  {"age": 31, "income": 2.5, "species": "cat"}   (features + label)
// The target may be a finite number, an array of finite numbers or a string label. Any problem is a
// DataError pointing at `file:line` and naming the field, e.g. `train.ndjson:37: x has 3 values,
// expected 4`.
//
// Why not the `ndjson` package (named in the founding design, so we looked at it first): its
// parser (2.0.0) reports no line numbers, keeps emitting rows after a bad line and stops early at
// a `null` line. Why not
// `node:readline`: it also splits at a lone '\r' (so physical line numbers can drift) and has a
// history of not forwarding input-stream errors to its async iterator. A small splitter over the
// stream's own async iterator is simpler: every error (missing file, corrupt gzip, bad line) rejects
// the iteration, and leaving the loop destroys the streams.

import { createReadStream } from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { pipeline, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { DataError, OptionError, checkOptionKeys, signalOption } from './errors.js';

export interface ReaderOptions {
  /** vector form: field holding the input vector. @default 'x' */
  xField?: string | undefined;
  /** field holding the target. @default 'y' */
  yField?: string | undefined;
  /** record form: named numeric input fields (then xField is not used); other fields ignored */
  features?: readonly string[] | undefined;
  /** record form: label field. @default yField */
  label?: string | undefined;
  /** When false, a missing target (absent field, or `null`) is allowed (predict); a present target
   *  is still validated. @default true */
  requireTarget?: boolean | undefined;
  /** Stops the reading: the iteration rejects with the signal's reason at the next line. */
  signal?: AbortSignal | undefined;
}

/** One data line: its 1-based physical line number, its inputs and its (validated) raw target. */
export interface RawRecord {
  line: number;
  x: number[];
  y: number | number[] | string | undefined;
}

/** The name used for `file` in messages and Dataset.source: the path as given, '<stdin>' for '-'. */
export function sourceName(file: string): string {
  return file === '-' ? '<stdin>' : file;
}

/** Whether a file name asks for transparent gunzip (`train.ndjson.gz`). */
export function isGzipName(file: string): boolean {
  return file !== '-' && /\.gz$/i.test(file);
}

interface Resolved {
  xField: string;
  labelField: string;
  features: string[] | undefined;
  requireTarget: boolean;
  signal: AbortSignal | undefined;
}

/** The option names of ReaderOptions (the compiler checks that none is missing or extra). */
export const READER_OPTION_KEYS = Object.keys({ xField: 1, yField: 1, features: 1, label: 1, requireTarget: 1, signal: 1 } satisfies Record<keyof ReaderOptions, 1>);

function resolveOptions(o: ReaderOptions): Resolved {
  const name = (key: 'xField' | 'yField' | 'label', v: unknown, dflt: string): string => {
    if (v === undefined) return dflt;
    if (typeof v !== 'string' || v === '') throw new OptionError(key, v, 'a non-empty field name');
    return v;
  };
  const xField = name('xField', o.xField, 'x');
  const yField = name('yField', o.yField, 'y');
  const labelField = name('label', o.label, yField);
  let features: string[] | undefined;
  if (o.features !== undefined) {
    if (!Array.isArray(o.features) || o.features.length === 0 || !o.features.every((f) => typeof f === 'string' && f !== ''))
      throw new OptionError('features', o.features, 'a non-empty array of field names');
    features = [...o.features];
  }
  if (o.requireTarget !== undefined && typeof o.requireTarget !== 'boolean')
    throw new OptionError('requireTarget', o.requireTarget, 'a boolean');
  signalOption(o.signal);
  return { xField, labelField, features, requireTarget: o.requireTarget ?? true, signal: o.signal };
}

/**
 * Streams records from an NDJSON file; file '-' reads process.stdin. Constant memory.
 * Files named `*.gz` are gunzipped. Options are checked at once (OptionError); everything else
 * (missing file, bad data, empty file) rejects the iteration with a DataError. Stopping early or
 * failing closes the file before the iteration settles.
 */
export function readRecords(file: string, options: ReaderOptions = {}): AsyncGenerator<RawRecord> {
  if (typeof file !== 'string' || file === '') throw new OptionError('file', file, "a file name or '-'");
  checkOptionKeys(options, READER_OPTION_KEYS, 'reader options');
  return records(file, resolveOptions(options));
}

async function* records(file: string, opts: Resolved): AsyncGenerator<RawRecord> {
  const name = sourceName(file);
  let width = -1; // x length fixed by the first record
  let count = 0;
  for await (const { text, line } of physicalLines(file, name, opts.signal)) {
    opts.signal?.throwIfAborted();
    if (text.trim() === '') continue;
    const rec = parseRecord(text, line, name, opts, width);
    if (width < 0) width = rec.x.length;
    count++;
    yield rec;
  }
  if (count === 0) throw new DataError('no data rows (the input is empty or has only blank lines)', name);
}

const noop = (): void => {};

/** Yields every physical line (without its '\n' or '\r\n'; BOM stripped from line 1). */
async function* physicalLines(file: string, name: string, signal?: AbortSignal): AsyncGenerator<{ text: string; line: number }> {
  const stdin = file === '-';
  const gz = isGzipName(file);
  const raw: Readable = stdin ? process.stdin : createReadStream(file);
  const owned: Readable[] = stdin ? [] : [raw];
  let input = raw;
  if (gz) {
    const gunzip = createGunzip();
    // pipeline forwards a read error of the file (ENOENT…) into gunzip, whose iterator rejects with it.
    pipeline(raw, gunzip, noop);
    owned.push(gunzip);
    input = gunzip;
  }
  // A late 'error' after we stopped listening must not become an uncaught exception.
  for (const s of owned) s.on('error', noop);

  // Bytes of the current, unfinished line. Kept as a list and joined once the '\n' arrives, so a
  // line spanning many chunks costs linear time. Lines are split on the byte 0x0A, which never
  // occurs inside a multi-byte UTF-8 character, so a chunk's whole lines decode on their own;
  // invalid UTF-8 is reported at its line (decodeLine).
  let carry: Buffer[] = [];
  let line = 0;
  // Plain-named input that starts with the gzip magic bytes is a likely mistake: say so.
  let head: Buffer | undefined = gz ? undefined : Buffer.alloc(0);
  // A read can wait for ever (stdin from a terminal or a quiet pipe): the signal destroys the
  // stream, which ends the wait (the command is ending; stdin included).
  const onAbort = (): void => void raw.destroy(signal!.reason instanceof Error ? signal!.reason : new Error('aborted'));
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    signal?.throwIfAborted();
    for await (const chunk of input as AsyncIterable<Buffer | string>) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      if (head !== undefined) {
        head = Buffer.concat([head, buf.subarray(0, 2 - head.length)]);
        if (head.length >= 2) {
          if (head[0] === 0x1f && head[1] === 0x8b) {
            const fix = stdin ? 'decompress it first (gunzip -c FILE | …)' : 'name it with a .gz suffix so it is decompressed';
            throw new DataError(`looks gzip-compressed (starts with the gzip magic bytes 1f 8b); ${fix}`, name, 1);
          }
          head = undefined;
        }
      }
      const last = buf.lastIndexOf(0x0a);
      if (last === -1) {
        carry.push(buf);
        continue;
      }
      let start = 0;
      if (carry.length > 0) {
        // The line begun in earlier chunks ends in this one.
        const nl = buf.indexOf(0x0a);
        carry.push(buf.subarray(0, nl));
        const bytes = Buffer.concat(carry);
        carry = [];
        line++;
        yield { text: clean(decodeLine(bytes, name, line), line), line };
        start = nl + 1;
      }
      // The whole lines of the chunk are decoded at once (one call, not one per line); only a
      // chunk whose text holds U+FFFD is checked line by line for bytes that are not UTF-8.
      if (start <= last) {
        // (else that line was the chunk's only whole one)
        const text = buf.toString('utf8', start, last);
        const suspect = text.includes('\uFFFD');
        let from = 0, at = start;
        for (;;) {
          const nl = text.indexOf('\n', from);
          const piece = text.slice(from, nl === -1 ? text.length : nl);
          line++;
          if (suspect) {
            const end = nl === -1 ? last : buf.indexOf(0x0a, at);
            decodeLine(buf.subarray(at, end), name, line);
            at = end + 1;
          }
          yield { text: clean(piece, line), line };
          if (nl === -1) break;
          from = nl + 1;
        }
      }
      if (last + 1 < buf.length) carry.push(buf.subarray(last + 1));
    }
    // A last line without '\n' is still a line (a truncated one fails JSON.parse at its number).
    if (carry.length > 0) {
      line++;
      yield { text: clean(decodeLine(Buffer.concat(carry), name, line), line), line };
    }
  } catch (e) {
    if (signal?.aborted) throw signal.reason;
    throw streamError(e, name, line + 1);
  } finally {
    signal?.removeEventListener('abort', onAbort);
    // Destroy and wait for 'close', so the file descriptor is released before the caller goes on.
    await Promise.all(owned.map(destroyAndWait));
  }
}

/** A line's text. Invalid UTF-8 (a Latin-1 file, say) is an error at its line: decoded as U+FFFD
 *  it would quietly merge labels such as "café" and "cafè" into one class. */
function decodeLine(bytes: Buffer, name: string, line: number): string {
  const text = bytes.toString('utf8');
  if (text.includes('\uFFFD') && !isUtf8(bytes)) throw new DataError('not valid UTF-8 (save the file as UTF-8)', name, line);
  return text;
}

function clean(text: string, line: number): string {
  if (line === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  return text.endsWith('\r') ? text.slice(0, -1) : text;
}

function destroyAndWait(s: Readable): Promise<void> {
  if (s.closed) return Promise.resolve();
  return new Promise((resolve) => {
    s.once('close', () => resolve());
    s.destroy();
  });
}

/** Turns a system or zlib error into a DataError naming the file; passes our own errors through. */
function streamError(e: unknown, name: string, line: number): unknown {
  if (e instanceof DataError || !(e instanceof Error)) return e;
  const code = (e as NodeJS.ErrnoException).code;
  if (typeof code !== 'string') return e;
  // The system's error goes along as `cause`: its `code` tells a missing file from the others.
  const cause = { cause: e };
  if (code === 'ENOENT') return new DataError('no such file', name, undefined, cause);
  if (code === 'EISDIR') return new DataError('is a directory, not a data file', name, undefined, cause);
  if (code === 'EACCES' || code === 'EPERM') return new DataError('permission denied', name, undefined, cause);
  if (code.startsWith('Z_')) return new DataError(`invalid gzip data (${e.message})`, name, line, cause);
  return new DataError(`cannot read (${e.message})`, name, undefined, cause);
}

// ---- one line → one record ----

function parseRecord(text: string, line: number, name: string, opts: Resolved, width: number): RawRecord {
  const fail = (msg: string): never => {
    throw new DataError(msg, name, line);
  };
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    const hint = /\b(NaN|-?Infinity)\b/.test(text) ? '; NaN and Infinity are not valid JSON numbers' : '';
    return fail(`invalid JSON (${why})${hint}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return fail(`expected a JSON object, got ${show(v)}`);
  // Fields are read only as own properties, so a missing "constructor" or "__proto__" field is
  // reported missing instead of picking up Object.prototype. Nothing is copied out of `v`.
  const obj = v as Record<string, unknown>;
  const get = (field: string): unknown => (Object.hasOwn(obj, field) ? obj[field] : undefined);
  const has = (field: string): boolean => Object.hasOwn(obj, field);

  let x: number[];
  if (opts.features !== undefined) {
    x = new Array<number>(opts.features.length);
    for (let i = 0; i < opts.features.length; i++) {
      const f = opts.features[i];
      if (!has(f)) fail(`missing field ${JSON.stringify(f)}`);
      x[i] = checkNumber(get(f), label(f), fail);
    }
  } else {
    const xf = opts.xField;
    if (!has(xf)) fail(`missing field ${JSON.stringify(xf)}`);
    const xv = get(xf);
    if (!Array.isArray(xv)) return fail(`${label(xf)} must be an array of numbers (got ${show(xv)})`);
    if (xv.length === 0) fail(`${label(xf)} is an empty array`);
    if (width >= 0 && xv.length !== width) fail(`${label(xf)} has ${xv.length} values, expected ${width}`);
    for (let j = 0; j < xv.length; j++) checkNumber(xv[j], `${label(xf)}[${j}]`, fail);
    x = xv as number[];
  }

  const yf = opts.labelField;
  let y: RawRecord['y'];
  if (!has(yf) || (get(yf) === null && !opts.requireTarget)) {
    if (opts.requireTarget) fail(`missing field ${JSON.stringify(yf)}`);
    y = undefined;
  } else {
    y = checkTarget(get(yf), label(yf), fail);
  }
  return { line, x, y };
}

function checkNumber(v: unknown, what: string, fail: (msg: string) => never): number {
  if (typeof v !== 'number') return fail(`${what} is not a number (got ${show(v)})`);
  // JSON.parse turns out-of-range literals such as 1e400 into ±Infinity.
  if (!Number.isFinite(v)) return fail(`${what} is not finite (the value overflows a 64-bit float)`);
  return v;
}

function checkTarget(v: unknown, what: string, fail: (msg: string) => never): number | number[] | string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return checkNumber(v, what, fail);
  if (Array.isArray(v)) {
    if (v.length === 0) fail(`${what} is an empty array`);
    for (let j = 0; j < v.length; j++) checkNumber(v[j], `${what}[${j}]`, fail);
    return v as number[];
  }
  return fail(`${what} must be a number, an array of numbers or a string label (got ${show(v)})`);
}

/** A field name as it appears in messages: bare when it is a plain identifier, else quoted. */
function label(field: string): string {
  return /^[A-Za-z_$][\w$]*$/.test(field) ? field : JSON.stringify(field);
}

/** A short rendering of a parsed JSON value for messages. */
function show(v: unknown): string {
  if (v === null || v === undefined) return String(v);
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v);
  return String(v);
}
