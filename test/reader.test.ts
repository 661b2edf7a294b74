// Tests of the NDJSON reader (src/ndjson-reader.ts) and of target encoding / dataset loading
// (src/targets.ts), over the byte-exact fixture corpus in test/fixtures (written by
// test/fixtures/make-fixtures.mjs). Every bad input is checked for the DataError's exact line and
// for naming the offending field. Reading stdin ('-') is covered by the CLI tests.

import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { DataError, OptionError } from '../src/errors.js';
import { readRecords, type RawRecord, type ReaderOptions } from '../src/ndjson-reader.js';
import {
  MAX_INFERRED_CLASSES, decodeOutput, encodeTarget, inferEncoding, loadDataset, type TargetEncoding,
} from '../src/targets.js';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
const good = (name: string): string => join(FIXTURES, 'good', name);
const bad = (name: string): string => join(FIXTURES, 'bad', name);

async function readAll(file: string, options?: ReaderOptions): Promise<RawRecord[]> {
  const out: RawRecord[] = [];
  for await (const r of readRecords(file, options)) out.push(r);
  return out;
}

/** Awaits `p`, which must reject with a DataError, and returns that error. */
async function dataError(p: Promise<unknown>): Promise<DataError> {
  let caught: unknown;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(DataError);
  return caught as DataError;
}

/** Asserts a DataError at file:line whose message contains every fragment. */
function expectAt(err: DataError, file: string, line: number | undefined, ...fragments: string[]): void {
  expect(err.file).toBe(file);
  expect(err.line).toBe(line);
  expect(err.message.startsWith(line === undefined ? `${file}: ` : `${file}:${line}: `)).toBe(true);
  for (const f of fragments) expect(err.message).toContain(f);
}

describe('fixture bytes', () => {
  it('BOM, CRLF and gzip fixtures really contain those bytes', () => {
    const bom = readFileSync(good('bom-crlf.ndjson'));
    expect([...bom.subarray(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
    expect(bom.includes('\r\n')).toBe(true);
    expect(bom.toString('latin1').replaceAll('\r\n', '').includes('\n')).toBe(false);
    for (const f of [good('train.ndjson.gz'), bad('gzip-bytes.ndjson')]) expect([...readFileSync(f).subarray(0, 2)]).toEqual([0x1f, 0x8b]);
    expect(readFileSync(bad('truncated-last-line.ndjson')).at(-1)).not.toBe(0x0a);
  });
});

describe('readRecords: good input', () => {
  it('reads vector-form records with 1-based line numbers', async () => {
    const recs = await readAll(good('basic.ndjson'));
    expect(recs).toEqual([
      { line: 1, x: [0.5, 1], y: 0 },
      { line: 2, x: [1.5, -2], y: 1 },
      { line: 3, x: [0, 0.25], y: 1 },
      { line: 4, x: [-1, 3], y: 0 },
    ]);
  });

  it('handles a UTF-8 BOM and CRLF line ends', async () => {
    expect(await readAll(good('bom-crlf.ndjson'))).toEqual(await readAll(good('basic.ndjson')));
  });

  it('skips blank and whitespace-only lines, keeping physical line numbers', async () => {
    const recs = await readAll(good('blank-lines.ndjson'));
    expect(recs.map((r) => r.line)).toEqual([1, 4, 7]);
    expect(recs.map((r) => r.x)).toEqual([[1, 2], [3, 4], [5, 6]]);
  });

  it('reads a last line without a newline', async () => {
    expect((await readAll(good('no-final-newline.ndjson'))).map((r) => r.line)).toEqual([1, 2]);
  });

  it('gunzips a .ndjson.gz file transparently', async () => {
    expect(await readAll(good('train.ndjson.gz'))).toEqual(await readAll(good('basic.ndjson')));
  });

  it('reads the record form (features + label), ignoring other fields', async () => {
    const recs = await readAll(good('records.ndjson'), { features: ['sepal', 'petal'], label: 'species' });
    expect(recs[0]).toEqual({ line: 1, x: [5.1, 1.4], y: 'setosa' });
    expect(recs[1]).toEqual({ line: 2, x: [7, 4.7], y: 'versicolor' });
    expect(recs).toHaveLength(4);
  });

  it('uses yField as the label field in record form', async () => {
    const recs = await readAll(good('records.ndjson'), { features: ['petal'], yField: 'species' });
    expect(recs[2]).toEqual({ line: 3, x: [6], y: 'virginica' });
  });

  it('uses custom xField / yField names', async () => {
    const recs = await readAll(good('custom-fields.ndjson'), { xField: 'input', yField: 'target' });
    expect(recs).toEqual([{ line: 1, x: [1, 2], y: 'no' }, { line: 2, x: [3, 4], y: 'yes' }]);
  });

  it('vector form: an xField that is not an array is named', async () => {
    const f = good('records.ndjson');
    const err = await dataError(readAll(f, { xField: 'sepal', yField: 'species' }));
    expectAt(err, f, 1, 'sepal must be an array of numbers (got 5.1)');
  });

  it('allows a missing or null target when requireTarget is false', async () => {
    const recs = await readAll(good('predict.ndjson'), { requireTarget: false });
    expect(recs.map((r) => r.y)).toEqual([undefined, undefined, 1]);
  });

  it('still validates a present target when requireTarget is false', async () => {
    const err = await dataError(readAll(bad('y-bool.ndjson'), { requireTarget: false }));
    expectAt(err, bad('y-bool.ndjson'), 2, 'y must be a number');
  });

  it('accepts array and string targets', async () => {
    expect((await readAll(good('regression-array.ndjson'))).map((r) => r.y)).toEqual([[1, 2], [3, 4], [5, 6]]);
    expect((await readAll(good('labels.ndjson'))).map((r) => r.y)).toEqual(['dog', 'cat', 'bird', 'cat']);
  });

  it('refuses bad options at once with an OptionError', () => {
    expect(() => readRecords(good('basic.ndjson'), { features: [] })).toThrow(OptionError);
    expect(() => readRecords(good('basic.ndjson'), { xField: '' })).toThrow(OptionError);
    expect(() => readRecords('')).toThrow(OptionError);
  });
});

describe('readRecords: lines across read chunks (64 KiB)', () => {
  it('every line and label comes out whole, wherever a chunk ends: at a newline, inside a multi-byte character, inside a line longer than a chunk', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'bptrain-chunks-'));
    const labels = ['é', '日本', '🙂', 'a', 'caf\uFFFD'];
    const lines: string[] = [];
    const expected: { line: number; y: string }[] = [];
    let bytes = 0;
    const add = (text: string, y?: string): void => {
      lines.push(text);
      bytes += Buffer.byteLength(text) + 1;
      if (y !== undefined) expected.push({ line: lines.length, y });
    };
    const record = (i: number, pad = ''): [string, string] => {
      const y = labels[i % labels.length] + pad;
      return [JSON.stringify({ x: [i], y }), y];
    };
    // Chunk 1 ends exactly on a newline.
    for (let i = 0; bytes < 65_536 - 200; i++) add(...record(i));
    const fill = 65_536 - bytes - Buffer.byteLength(record(0)[0]) - 1;
    add(...record(0, 'x'.repeat(fill)));
    expect(bytes).toBe(65_536);
    // Chunk 2 ends inside 'é' (2 bytes), then a line longer than a whole chunk, blank lines and CRLF.
    for (let i = 1; bytes < 131_072 - 200; i++) add(...record(i * 5 + 1));
    const [head] = record(0); // label 'é': the 'é' must straddle byte 131,072
    const pre = 131_072 - bytes - Buffer.byteLength('{"x":[0],"y":"') - 1;
    add(JSON.stringify({ x: [0], y: 'x'.repeat(pre) + 'é' }), 'x'.repeat(pre) + 'é');
    void head;
    add(...record(2, 'y'.repeat(100_000)));
    for (let i = 0; i < 3000; i++) {
      if (i % 7 === 0) add('');
      const [t, y] = record(i);
      add(i % 5 === 0 ? t + '\r' : t, y);
    }
    const file = join(dir, 'chunks.ndjson');
    writeFileSync(file, lines.join('\n') + '\n');
    const got = (await readAll(file)).map((r) => ({ line: r.line, y: r.y as string }));
    expect(got).toEqual(expected);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('readRecords: __proto__ keys', () => {
  it('a "__proto__" key in a record neither pollutes Object.prototype nor breaks the reader', async () => {
    const recs = await readAll(good('proto.ndjson'));
    expect(recs.map((r) => [r.x, r.y])).toEqual([[[1, 2], 1], [[3, 4], 0]]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
    const { dataset } = await loadDataset(good('proto.ndjson'));
    expect(dataset.size).toBe(2);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('"__proto__" as the label field name and as a label value is an ordinary field and class', async () => {
    const opts = { features: ['a'], label: '__proto__' };
    const recs = await readAll(good('proto-label.ndjson'), opts);
    expect(recs.map((r) => r.y)).toEqual(['__proto__', 'constructor', 'toString', '__proto__']);
    const { dataset, encoding } = await loadDataset(good('proto-label.ndjson'), opts);
    expect(encoding).toEqual({ kind: 'classes', classes: ['__proto__', 'constructor', 'toString'], outputs: 3 });
    expect([...dataset.y]).toEqual([1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0]);
    expect(Object.getPrototypeOf({})).toBe(Object.prototype);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(decodeOutput(encoding, [0.9, 0.05, 0.05])).toBe('__proto__');
  });

  it('a field missing from the record is not found on Object.prototype', async () => {
    // "constructor" is inherited by every object; the reader must still call it missing
    const err = await dataError(readAll(good('basic.ndjson'), { yField: 'constructor' }));
    expectAt(err, good('basic.ndjson'), 1, 'missing field "constructor"');
  });
});

describe('readRecords: bad input', () => {
  it('truncated last line → invalid JSON at that line', async () => {
    const f = bad('truncated-last-line.ndjson');
    expectAt(await dataError(readAll(f)), f, 3, 'invalid JSON (');
  });

  it('invalid JSON mid-file', async () => {
    const f = bad('invalid-json.ndjson');
    expectAt(await dataError(readAll(f)), f, 3, 'invalid JSON (');
  });

  it.each([
    ['not-object-null.ndjson', 'got null'],
    ['not-object-number.ndjson', 'got 42'],
    ['not-object-array.ndjson', 'got an array'],
    ['not-object-string.ndjson', 'got "s"'],
  ])('non-object line (%s)', async (name, got) => {
    const f = bad(name);
    expectAt(await dataError(readAll(f)), f, 2, `expected a JSON object, ${got}`);
  });

  it('1e400 (parses to Infinity) → not finite, naming x[0]', async () => {
    const f = bad('overflow-1e400.ndjson');
    expectAt(await dataError(readAll(f)), f, 2, 'x[0] is not finite');
  });

  it('a NaN literal is invalid JSON', async () => {
    const f = bad('nan-literal.ndjson');
    expectAt(await dataError(readAll(f)), f, 2, 'invalid JSON', 'NaN');
  });

  it('wrong x length on a later line (length fixed by the first record)', async () => {
    const f = bad('wrong-x-length.ndjson');
    expectAt(await dataError(readAll(f)), f, 4, 'x has 3 values, expected 2');
  });

  it('missing target field', async () => {
    const f = bad('missing-y.ndjson');
    expectAt(await dataError(readAll(f)), f, 2, 'missing field "y"');
  });

  it('missing input field', async () => {
    const f = bad('missing-x.ndjson');
    expectAt(await dataError(readAll(f)), f, 3, 'missing field "x"');
  });

  it.each([
    ['x-null.ndjson', 'x[1] is not a number (got null)'],
    ['x-string.ndjson', 'x[1] is not a number (got "2")'],
    ['x-bool.ndjson', 'x[1] is not a number (got true)'],
    ['x-nested.ndjson', 'x[1] is not a number (got an array)'],
  ])('non-numeric x element (%s)', async (name, msg) => {
    const f = bad(name);
    expectAt(await dataError(readAll(f)), f, 2, msg);
  });

  it.each([
    ['y-null.ndjson', 'y must be a number, an array of numbers or a string label (got null)'],
    ['y-object.ndjson', 'y must be a number, an array of numbers or a string label (got an object)'],
    ['y-bool.ndjson', 'y must be a number, an array of numbers or a string label (got true)'],
    ['y-nested.ndjson', 'y[0] is not a number (got an array)'],
  ])('invalid target (%s)', async (name, msg) => {
    const f = bad(name);
    expectAt(await dataError(readAll(f)), f, 2, msg);
  });

  it('record form: a non-numeric feature names the feature', async () => {
    const f = bad('record-bad-feature.ndjson');
    const err = await dataError(readAll(f, { features: ['sepal', 'petal'], label: 'species' }));
    expectAt(err, f, 2, 'petal is not a number (got "wide")');
  });

  it('record form: a missing feature', async () => {
    const f = bad('record-missing-feature.ndjson');
    const err = await dataError(readAll(f, { features: ['sepal', 'petal'], label: 'species' }));
    expectAt(err, f, 3, 'missing field "petal"');
  });

  it('record form: a missing label field', async () => {
    const f = good('records.ndjson');
    const err = await dataError(readAll(f, { features: ['sepal'], label: 'kind' }));
    expectAt(err, f, 1, 'missing field "kind"');
  });

  it('errors after blank lines report the physical line', async () => {
    const f = bad('blank-then-bad.ndjson');
    expectAt(await dataError(readAll(f)), f, 6, 'x[1] is not a number (got "a")');
  });

  it('errors after BOM + CRLF lines report the physical line', async () => {
    const f = bad('bom-crlf-bad.ndjson');
    expectAt(await dataError(readAll(f)), f, 3, 'x has 1 values, expected 2');
  });

  it('an empty file → no data rows', async () => {
    const f = bad('empty.ndjson');
    expectAt(await dataError(readAll(f)), f, undefined, 'no data rows', 'empty');
  });

  it('a file of blank lines only → no data rows', async () => {
    const f = bad('blank-only.ndjson');
    expectAt(await dataError(readAll(f)), f, undefined, 'no data rows');
  });

  it('gzip bytes in a file not named .gz → says so at line 1', async () => {
    const f = bad('gzip-bytes.ndjson');
    expectAt(await dataError(readAll(f)), f, 1, 'gzip-compressed', '.gz suffix');
  });

  it('a .gz name over plain text → invalid gzip data', async () => {
    const f = bad('not-gzip.ndjson.gz');
    expectAt(await dataError(readAll(f)), f, 1, 'invalid gzip data');
  });

  it('a missing file → no such file (plain and .gz)', async () => {
    for (const f of [join(FIXTURES, 'nope.ndjson'), join(FIXTURES, 'nope.ndjson.gz')]) {
      expectAt(await dataError(readAll(f)), f, undefined, 'no such file');
    }
  });

  it('a directory → DataError', async () => {
    expectAt(await dataError(readAll(FIXTURES)), FIXTURES, undefined, 'directory');
  });
});

describe('readRecords: stream lifetime', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'bptrain-reader-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  /** File descriptors of this process that point at `file` (Linux /proc; empty elsewhere). */
  const openFds = (file: string): string[] => {
    let fds: string[];
    try {
      fds = readdirSync('/proc/self/fd');
    } catch {
      return [];
    }
    return fds.filter((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`) === file;
      } catch {
        return false;
      }
    });
  };

  // Larger than one 64 KiB read, so the file is still open when line 2 fails.
  const big = join(tmp, 'big.ndjson');
  const rows = Array.from({ length: 20000 }, (_, i) => `{"x":[${i},1],"y":${i % 2}}`);
  rows[1] = '{"x":[1],"y":0}';
  writeFileSync(big, rows.join('\n') + '\n');
  const bigGz = join(tmp, 'big.ndjson.gz');

  it('an error rejects the iteration and closes the file', async () => {
    expectAt(await dataError(readAll(big)), big, 2, 'x has 1 values, expected 2');
    expect(openFds(big)).toEqual([]);
  });

  it('stopping early closes the file (gzip too)', async () => {
    const { gzipSync } = await import('node:zlib');
    writeFileSync(bigGz, gzipSync(readFileSync(big)));
    for (const f of [big, bigGz]) {
      for await (const r of readRecords(f)) {
        expect(r.line).toBe(1);
        if (process.platform === 'linux') expect(openFds(f)).toHaveLength(1); // the check can see it
        break;
      }
      expect(openFds(f)).toEqual([]);
    }
  });

  it('a 64 KiB read boundary inside a UTF-8 character or between \\r and \\n changes nothing', async () => {
    // Rows of 20 bytes: '{"x":[1],"y":"€"}\n' ('€' is 3 bytes at offsets 14..16), so byte 65536
    // (the first byte of the second read) is the last byte of a '€'.
    const utf = join(tmp, 'utf8.ndjson');
    writeFileSync(utf, '{"x":[1],"y":"€"}\n'.repeat(4000));
    expect(readFileSync(utf).subarray(65534, 65537).toString()).toBe('€');
    const recs = await readAll(utf);
    expect(recs).toHaveLength(4000);
    expect(recs.every((r, i) => r.y === '€' && r.line === i + 1)).toBe(true);
    // CRLF rows of 20 bytes after a first row padded so that byte 65535 is a '\r'.
    const crlf = join(tmp, 'crlf.ndjson');
    const row = '{"x":[1],"y":0}   \r\n';
    const pad = ' '.repeat((65535 - 17 - 18) % 20); // first row is 17 bytes + pad; '\r' is at offset 18 of a row
    writeFileSync(crlf, '{"x":[1],"y":1}' + pad + '\r\n' + row.repeat(4000));
    expect(readFileSync(crlf)[65535]).toBe(0x0d);
    const rows2 = await readAll(crlf);
    expect(rows2).toHaveLength(4001);
    expect(rows2.every((r, i) => r.line === i + 1)).toBe(true);
  });

  it('is lazy: nothing is opened before the first next()', async () => {
    const it = readRecords(join(tmp, 'missing.ndjson'));
    const err = await dataError(it.next());
    expect(err.message).toContain('no such file');
    expect(await it.next()).toEqual({ done: true, value: undefined });
  });
});

describe('inferEncoding', () => {
  it('string labels → classes, sorted independently of file order', () => {
    const a = inferEncoding(['dog', 'cat', 'bird', 'cat']);
    const b = inferEncoding(['bird', 'dog', 'cat']);
    expect(a).toEqual({ kind: 'classes', classes: ['bird', 'cat', 'dog'], outputs: 3 });
    expect(b).toEqual(a);
    // plain `<` order: upper case before lower case, no locale collation
    expect(inferEncoding(['b', 'B', 'a']).classes).toEqual(['B', 'a', 'b']);
  });

  it('string labels: one class is an error; two with outputsHint 1 → binary', () => {
    expect(() => inferEncoding(['cat', 'cat'])).toThrow(/only one class \("cat"\)/);
    expect(inferEncoding(['spam', 'ham', 'spam'], 1)).toEqual({ kind: 'binary', classes: ['ham', 'spam'], outputs: 1 });
    expect(() => inferEncoding(['a', 'b', 'c'], 2)).toThrow(/3 classes .* 2 outputs/);
  });

  it('0/1 numbers → binary; with outputsHint ≥ 2 → classes 0..hint-1', () => {
    expect(inferEncoding([0, 1, 1, 0])).toEqual({ kind: 'binary', classes: [0, 1], outputs: 1 });
    expect(inferEncoding([0, 1], 1)).toEqual({ kind: 'binary', classes: [0, 1], outputs: 1 });
    expect(inferEncoding([0, 1, 0], 3)).toEqual({ kind: 'classes', classes: [0, 1, 2], outputs: 3 });
  });

  it('non-negative integers with some > 1 → classes 0..max (or 0..hint-1); hint 1 → regression', () => {
    expect(inferEncoding([2, 0, 3, 1])).toEqual({ kind: 'classes', classes: [0, 1, 2, 3], outputs: 4 });
    expect(inferEncoding([2, 0], 5)).toEqual({ kind: 'classes', classes: [0, 1, 2, 3, 4], outputs: 5 });
    expect(inferEncoding([2, 0, 3], 1)).toEqual({ kind: 'regression', outputs: 1 });
    const err = (() => {
      try {
        inferEncoding([0, 1, 7, 2], 3, { lines: [1, 2, 5, 6], file: 'd.ndjson' });
      } catch (e) {
        return e as DataError;
      }
    })();
    expect(err).toBeInstanceOf(DataError);
    expect(err!.message).toBe('d.ndjson:5: y = 7 is not a class index of a network with 3 outputs (0..2)');
  });

  it(`refuses integer targets that would make more than ${MAX_INFERRED_CLASSES} classes`, () => {
    expect(() => inferEncoding([0, 2, 50000])).toThrow(/50001 classes/);
  });

  it('other numbers → regression with 1 output; arrays → regression with k outputs', () => {
    expect(inferEncoding([0.5, -1, 2])).toEqual({ kind: 'regression', outputs: 1 });
    expect(inferEncoding([-1, 2, 3])).toEqual({ kind: 'regression', outputs: 1 });
    expect(inferEncoding([[1, 2, 3], [4, 5, 6]])).toEqual({ kind: 'regression', outputs: 3 });
    expect(inferEncoding([new Float64Array([1, 2])])).toEqual({ kind: 'regression', outputs: 2 });
    expect(() => inferEncoding([0.5], 2)).toThrow(/2 outputs/);
    expect(() => inferEncoding([[1, 2]], 3)).toThrow(/2 values, but the network has 3 outputs/);
  });

  it('mixing kinds fails at the first target whose kind differs, with its line', () => {
    const at = (ys: (number | number[] | string)[], where = {}): DataError => {
      try {
        inferEncoding(ys, undefined, where);
      } catch (e) {
        expect(e).toBeInstanceOf(DataError);
        return e as DataError;
      }
      throw new Error('expected a DataError');
    };
    const e1 = at(['a', 'b', 3, 'c'], { lines: [2, 4, 9, 10], file: 'f.ndjson' });
    expect(e1.line).toBe(9);
    expect(e1.message).toBe('f.ndjson:9: y is a number, but the first target (line 2) is a string label; all targets must be of one kind');
    expect(at([1, [1, 2]]).message).toBe('target 2: y is an array of numbers, but the first target (target 1) is a number; all targets must be of one kind');
    expect(at([[1, 2], [1, 2, 3]], { lines: [1, 3], file: 'g', field: 'out' }).message).toBe('g:3: out has 3 values, expected 2 (as in line 1)');
  });

  it('no targets → DataError', () => {
    expect(() => inferEncoding([])).toThrow(DataError);
  });
});

describe('encodeTarget / decodeOutput', () => {
  const enc = (e: TargetEncoding): TargetEncoding => e;
  const row = (e: TargetEncoding, y: number | number[] | string): number[] => {
    const into = new Float64Array(e.outputs + 2).fill(9);
    encodeTarget(e, y, into, 1, 'f.ndjson', 7);
    return [...into];
  };

  it('binary → 0/1 in one output (numbers or two string classes)', () => {
    const b = enc({ kind: 'binary', classes: [0, 1], outputs: 1 });
    expect(row(b, 1)).toEqual([9, 1, 9]);
    expect(row(b, 0)).toEqual([9, 0, 9]);
    const s = enc({ kind: 'binary', classes: ['ham', 'spam'], outputs: 1 });
    expect(row(s, 'spam')).toEqual([9, 1, 9]);
    expect(() => row(b, 0.5)).toThrow('f.ndjson:7: y = 0.5 is not one of the model\'s classes (0, 1)');
  });

  it('classes → one-hot from a string label or an integer index', () => {
    const c = enc({ kind: 'classes', classes: ['bird', 'cat', 'dog'], outputs: 3 });
    expect(row(c, 'cat')).toEqual([9, 0, 1, 0, 9]);
    const n = enc({ kind: 'classes', classes: [0, 1, 2, 3], outputs: 4 });
    expect(row(n, 3)).toEqual([9, 0, 0, 0, 1, 9]);
    expect(() => row(n, 4)).toThrow(/f\.ndjson:7: y = 4 is not one of the model's classes/);
    expect(() => row(n, '1')).toThrow(/unknown label "1"/);
    expect(() => row(c, [1, 0, 0])).toThrow(/is an array, but the model is a classifier/);
  });

  it('unknown label → DataError with file:line naming the field', () => {
    const c = enc({ kind: 'classes', classes: ['cat', 'dog'], outputs: 2 });
    const into = new Float64Array(2);
    let err: unknown;
    try {
      encodeTarget(c, 'bird', into, 0, 'f.ndjson', 3, 'species');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DataError);
    expect((err as DataError).message).toBe('f.ndjson:3: unknown label "bird" in species; the model\'s classes are "cat", "dog"');
  });

  it('regression → raw values; wrong length or a label is an error', () => {
    const r1 = enc({ kind: 'regression', outputs: 1 });
    const r2 = enc({ kind: 'regression', outputs: 2 });
    expect(row(r1, -2.5)).toEqual([9, -2.5, 9]);
    expect(row(r2, [1, 2])).toEqual([9, 1, 2, 9]);
    expect(() => row(r2, [1, 2, 3])).toThrow('f.ndjson:7: y has 3 values, expected 2');
    expect(() => row(r2, 1)).toThrow(/single number/);
    expect(() => row(r1, 'a')).toThrow(/string label/);
  });

  it('decodes: argmax for classes, ≥ 0.5 for binary, values for regression', () => {
    expect(decodeOutput({ kind: 'classes', classes: ['a', 'b', 'c'], outputs: 3 }, [0.1, 0.7, 0.2])).toBe('b');
    expect(decodeOutput({ kind: 'classes', classes: [0, 1, 2], outputs: 3 }, new Float64Array([0.1, 0.2, 0.7]))).toBe(2);
    expect(decodeOutput({ kind: 'binary', classes: [0, 1], outputs: 1 }, [0.5])).toBe(1);
    expect(decodeOutput({ kind: 'binary', classes: [0, 1], outputs: 1 }, [0.49])).toBe(0);
    expect(decodeOutput({ kind: 'binary', classes: ['ham', 'spam'], outputs: 1 }, [0.9])).toBe('spam');
    expect(decodeOutput({ kind: 'regression', outputs: 1 }, [3.5])).toBe(3.5);
    expect(decodeOutput({ kind: 'regression', outputs: 2 }, new Float64Array([1, 2]))).toEqual([1, 2]);
  });
});

describe('loadDataset', () => {
  it('loads a binary dataset with lines and source', async () => {
    const f = good('blank-lines.ndjson');
    const { dataset, encoding } = await loadDataset(f);
    expect(encoding).toEqual({ kind: 'binary', classes: [0, 1], outputs: 1 });
    expect(dataset.size).toBe(3);
    expect(dataset.inputDim).toBe(2);
    expect(dataset.targetDim).toBe(1);
    expect(dataset.x).toBeInstanceOf(Float64Array);
    expect([...dataset.x]).toEqual([1, 2, 3, 4, 5, 6]);
    expect([...dataset.y]).toEqual([0, 1, 1]);
    expect([...dataset.lines!]).toEqual([1, 4, 7]);
    expect(dataset.source).toBe(f);
  });

  it('grows past its initial capacity and trims to size', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'bptrain-load-'));
    try {
      const f = join(tmp, 'many.ndjson');
      const n = 1000;
      writeFileSync(f, Array.from({ length: n }, (_, i) => `{"x":[${i},${-i},0.5],"y":"c${i % 3}"}`).join('\n'));
      const { dataset, encoding } = await loadDataset(f);
      expect(encoding.classes).toEqual(['c0', 'c1', 'c2']);
      expect(dataset.size).toBe(n);
      expect(dataset.x.length).toBe(3 * n);
      expect(dataset.y.length).toBe(3 * n);
      expect([...dataset.x.subarray(3 * 999)]).toEqual([999, -999, 0.5]);
      expect([...dataset.y.subarray(3 * 998)]).toEqual([0, 0, 1, 1, 0, 0]); // 998 % 3 = 2, 999 % 3 = 0
      expect(dataset.lines![999]).toBe(1000);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('record form with string labels → one-hot classes', async () => {
    const { dataset, encoding } = await loadDataset(good('records.ndjson'), { features: ['sepal', 'petal'], label: 'species' });
    expect(encoding).toEqual({ kind: 'classes', classes: ['setosa', 'versicolor', 'virginica'], outputs: 3 });
    expect([...dataset.x]).toEqual([5.1, 1.4, 7, 4.7, 6.3, 6, 4.9, 1.5]);
    expect([...dataset.y]).toEqual([1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0]);
  });

  it('integer classes, regression and array regression', async () => {
    const ic = await loadDataset(good('int-classes.ndjson'));
    expect(ic.encoding).toEqual({ kind: 'classes', classes: [0, 1, 2, 3], outputs: 4 });
    expect([...ic.dataset.y.subarray(0, 8)]).toEqual([0, 0, 1, 0, 1, 0, 0, 0]);
    const icr = await loadDataset(good('int-classes.ndjson'), { outputsHint: 1 });
    expect(icr.encoding.kind).toBe('regression');
    expect([...icr.dataset.y]).toEqual([2, 0, 3, 1]);
    const r = await loadDataset(good('regression.ndjson'));
    expect(r.encoding).toEqual({ kind: 'regression', outputs: 1 });
    expect([...r.dataset.y]).toEqual([0.5, -1.25, 3]);
    const ra = await loadDataset(good('regression-array.ndjson'));
    expect(ra.encoding).toEqual({ kind: 'regression', outputs: 2 });
    expect(ra.dataset.targetDim).toBe(2);
    expect([...ra.dataset.y]).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('reads a .gz file', async () => {
    const { dataset } = await loadDataset(good('train.ndjson.gz'));
    expect(dataset.size).toBe(4);
  });

  it('with a given encoding (evaluate): an unknown label fails at its line', async () => {
    const f = bad('unknown-label.ndjson');
    const encoding: TargetEncoding = { kind: 'classes', classes: ['cat', 'dog'], outputs: 2 };
    const err = await dataError(loadDataset(f, { encoding }));
    expectAt(err, f, 3, 'unknown label "bird" in y');
  });

  it('with a given encoding: known labels are encoded with it, not re-inferred', async () => {
    const encoding: TargetEncoding = { kind: 'classes', classes: ['dog', 'cat', 'bird'], outputs: 3 };
    const { dataset, encoding: used } = await loadDataset(good('labels.ndjson'), { encoding });
    expect(used).toBe(encoding);
    expect([...dataset.y.subarray(0, 6)]).toEqual([1, 0, 0, 0, 1, 0]);
  });

  it('mixed target kinds fail at the first differing line', async () => {
    const f = bad('mixed-kinds.ndjson');
    expectAt(await dataError(loadDataset(f)), f, 3, 'y is a number', 'line 1', 'string label');
    const g = bad('mixed-array.ndjson');
    expectAt(await dataError(loadDataset(g)), g, 2, 'y is an array of numbers');
  });

  it('target arrays of different lengths fail at the first differing line', async () => {
    const f = bad('array-length.ndjson');
    expectAt(await dataError(loadDataset(f)), f, 3, 'y has 3 values, expected 2');
  });

  it('one class only → DataError', async () => {
    const f = bad('one-class.ndjson');
    expectAt(await dataError(loadDataset(f)), f, undefined, 'only one class ("cat")');
  });

  it('inputsHint: a different x length fails at the first record', async () => {
    const f = good('blank-lines.ndjson');
    expectAt(await dataError(loadDataset(f, { inputsHint: 3 })), f, 1, "x has 2 values, expected 3 (the network's input size)");
  });

  it('checks every record has the same x length', async () => {
    const f = bad('wrong-x-length.ndjson');
    expectAt(await dataError(loadDataset(f)), f, 4, 'x has 3 values, expected 2');
  });

  it('empty file → no data rows', async () => {
    const f = bad('empty.ndjson');
    expectAt(await dataError(loadDataset(f)), f, undefined, 'no data rows');
  });

  it('refuses requireTarget: false and bad encodings', async () => {
    await expect(loadDataset(good('basic.ndjson'), { requireTarget: false })).rejects.toBeInstanceOf(OptionError);
    await expect(loadDataset(good('basic.ndjson'), { encoding: { kind: 'classes', outputs: 2 } })).rejects.toBeInstanceOf(OptionError);
  });
});

describe('options of readRecords and loadDataset', () => {
  it('a misspelt option is refused, naming the nearest real one', async () => {
    expect(() => readRecords(good('basic.ndjson'), { xfield: 'x' } as never)).toThrow(/xfield is not one of the reader options \(did you mean xField\?\)/);
    await expect(loadDataset(good('basic.ndjson'), { labels: 'y' } as never)).rejects.toThrow(/labels is not one of the loadDataset options \(did you mean label\?\)/);
    await expect(loadDataset(good('basic.ndjson'), { outputHint: 2 } as never)).rejects.toBeInstanceOf(OptionError);
  });
});
