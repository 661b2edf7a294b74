// Property-based fuzzing of the two parsers that read untrusted input: the model file reader
// (parseModelText) and the NDJSON data reader (readRecords, loadDataset). Inputs start from valid
// text and are mutated at the character/byte level and at the JSON level. The contract checked:
// a parser either returns a fully valid result or throws its own error type (ModelFormatError,
// DataError naming the file) — never a TypeError/RangeError/…, never an unhandled rejection, never
// a polluted Object.prototype, never a leaked file descriptor.
//
// Every fc.assert is seeded, so a failure reproduces exactly: fast-check prints the shrunk
// counterexample together with the seed and path to replay it.

import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DataError, ModelFormatError, createModel, loadModel, modelToText, parseModelText, type Model } from '../src/index.js';
import { readRecords, type RawRecord } from '../src/ndjson-reader.js';
import { loadDataset } from '../src/targets.js';
import { sameBits } from './helpers.js';

const SEED = 42;
const dir = mkdtempSync(path.join(tmpdir(), 'bptrain-fuzz-'));

// ---------------------------------------------------------------------------------------------
// Guards shared by all properties: prototype pollution, unhandled rejections, file descriptors.

const protoKeys = (o: object): string[] => Object.getOwnPropertyNames(o).sort();
const before = { object: protoKeys(Object.prototype), array: protoKeys(Array.prototype) };
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};
const FD_DIR = '/proc/self/fd';
const openFds = (): number => (existsSync(FD_DIR) ? readdirSync(FD_DIR).length : 0);

beforeAll(() => {
  process.on('unhandledRejection', onUnhandled);
});
afterAll(() => {
  process.off('unhandledRejection', onUnhandled);
  rmSync(dir, { recursive: true, force: true });
});

function expectNoPollution(): void {
  expect(protoKeys(Object.prototype)).toEqual(before.object);
  expect(protoKeys(Array.prototype)).toEqual(before.array);
  const probe = {} as Record<string, unknown>;
  for (const k of ['polluted', 'x', 'y', 'layers', 'format']) expect(probe[k]).toBeUndefined();
}

/** Fails with the offending error's class, message and stack (a bare instanceof check hides them). */
function expectErrorOf(err: unknown, type: new (...args: never[]) => Error, prefix: string): void {
  if (!(err instanceof type)) {
    const e = err as Error | undefined;
    throw new Error(`expected a ${type.name}, got ${e?.constructor?.name ?? typeof err}: ${e?.message ?? String(err)}\n${e?.stack ?? ''}`);
  }
  if (!err.message.startsWith(prefix)) throw new Error(`${type.name} message does not start with ${JSON.stringify(prefix)}: ${err.message}`);
}

// ---------------------------------------------------------------------------------------------
// Mutation machinery.

/** Replace a JSON value by a raw literal (e.g. 1e309, -0) that JSON.stringify cannot write. */
const rawMarker = (i: number): string => `@@bptrain-raw-${i}@@`;
function stringifyWithRaw(value: unknown, raws: string[]): string {
  let text = JSON.stringify(value) ?? '';
  raws.forEach((lit, i) => {
    text = text.replaceAll(JSON.stringify(rawMarker(i)), lit);
  });
  return text;
}

type Container = Record<string, unknown> | unknown[];
interface Slot {
  parent: Container;
  key: string | number;
  value: unknown;
}

/** Every value inside `root` (root included, through a holder), depth first. */
function slotsOf(holder: { root: unknown }): Slot[] {
  const out: Slot[] = [];
  const stack: Slot[] = [{ parent: holder as unknown as Record<string, unknown>, key: 'root', value: holder.root }];
  while (stack.length > 0) {
    const s = stack.pop()!;
    out.push(s);
    const v = s.value;
    if (Array.isArray(v)) v.forEach((e, i) => stack.push({ parent: v, key: i, value: e }));
    else if (v !== null && typeof v === 'object')
      for (const k of Object.keys(v)) stack.push({ parent: v as Record<string, unknown>, key: k, value: (v as Record<string, unknown>)[k] });
  }
  return out;
}

function setSlot(s: Slot, v: unknown): void {
  if (Array.isArray(s.parent)) s.parent[s.key as number] = v;
  // defineProperty, so that a key named "__proto__" becomes an own property, as JSON.parse makes it
  else Object.defineProperty(s.parent, s.key, { value: v, enumerable: true, writable: true, configurable: true });
}

/** Literals that stress number handling and sizes. */
const NUMBER_LITERALS = [
  '1e308', '1.7976931348623157e308', '1e309', '-1e309', '-0', '0', '-1', '1', '2', '1.5', '1e9', '1048576', '1048577',
  '4294967297', '9007199254740993', '5e-324', '1e-400', '123456789012345678901234567890', '0.1',
];
/** Any-type literals a value could be swapped for. */
const VALUE_LITERALS = [...NUMBER_LITERALS, 'null', 'true', 'false', '""', '[]', '{}', '[[]]', '"__proto__"', '"bptrain-model"', '"softmax"', '"relu"', '"sigmoid"', '"mse"', '"cross-entropy"', '"classes"', '"binary"', '"regression"', '{"__proto__":{"polluted":true}}'];

type JsonOp =
  | { op: 'replace'; at: number; value: unknown }
  | { op: 'literal'; at: number; lit: string }
  | { op: 'number'; at: number; lit: string }
  | { op: 'double'; at: number; value: number }
  | { op: 'delete'; at: number }
  | { op: 'duplicateArray'; at: number }
  | { op: 'protoKey'; at: number; value: unknown };

const jsonOp: fc.Arbitrary<JsonOp> = fc.oneof(
  { arbitrary: fc.record({ op: fc.constant('replace' as const), at: fc.nat(), value: fc.jsonValue({ maxDepth: 3 }) }), weight: 2 },
  { arbitrary: fc.record({ op: fc.constant('literal' as const), at: fc.nat(), lit: fc.constantFrom(...VALUE_LITERALS) }), weight: 2 },
  { arbitrary: fc.record({ op: fc.constant('number' as const), at: fc.nat(), lit: fc.constantFrom(...NUMBER_LITERALS) }), weight: 3 },
  { arbitrary: fc.record({ op: fc.constant('double' as const), at: fc.nat(), value: fc.double({ noNaN: true, noDefaultInfinity: true }) }), weight: 3 },
  { arbitrary: fc.record({ op: fc.constant('delete' as const), at: fc.nat() }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant('duplicateArray' as const), at: fc.nat() }), weight: 1 },
  {
    arbitrary: fc.record({ op: fc.constant('protoKey' as const), at: fc.nat(), value: fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constant({ polluted: true })) }),
    weight: 2,
  },
);

/** Applies JSON-level mutations to the parsed text; returns the new text. */
function applyJsonOps(text: string, ops: JsonOp[]): string {
  const holder = { root: JSON.parse(text) as unknown };
  const raws: string[] = [];
  const pick = <T>(list: T[], at: number): T | undefined => (list.length === 0 ? undefined : list[at % list.length]);
  for (const o of ops) {
    const all = slotsOf(holder);
    switch (o.op) {
      case 'replace': {
        const s = pick(all, o.at);
        if (s) setSlot(s, structuredClone(o.value));
        break;
      }
      case 'literal':
      case 'number': {
        const s = pick(o.op === 'number' ? all.filter((x) => typeof x.value === 'number') : all, o.at);
        if (s) {
          setSlot(s, rawMarker(raws.length));
          raws.push(o.lit);
        }
        break;
      }
      case 'double': {
        // a different, valid weight: the model must hold exactly this double
        const s = pick(all.filter((x) => typeof x.value === 'number'), o.at);
        if (s) setSlot(s, o.value);
        break;
      }
      case 'delete': {
        const s = pick(all.filter((x) => x.parent !== (holder as unknown)), o.at);
        if (s && Array.isArray(s.parent)) s.parent.splice(s.key as number, 1);
        else if (s) delete (s.parent as Record<string, unknown>)[s.key as string];
        break;
      }
      case 'duplicateArray': {
        const s = pick(all.filter((x) => Array.isArray(x.value)), o.at);
        if (s) setSlot(s, [...(s.value as unknown[]), ...(s.value as unknown[])]);
        break;
      }
      case 'protoKey': {
        const s = pick(all.filter((x) => x.value !== null && typeof x.value === 'object' && !Array.isArray(x.value)), o.at);
        if (s) setSlot({ parent: s.value as Record<string, unknown>, key: '__proto__', value: undefined }, structuredClone(o.value));
        break;
      }
    }
  }
  return stringifyWithRaw(holder.root, raws);
}

/** Snippets rich in JSON syntax (and a few things JSON does not allow). */
const TEXT_SNIPPETS = [
  '{', '}', '[', ']', '"', ',', ':', '0', '1', '9', '-', '+', '.', 'e', 'E', ' ', '\n', '\r', '\t',
  'nul', 'tru', 'fals', 'null', 'true', 'false', '__proto__', '"__proto__"', '"__proto__":', '\\', '\\u', '\\u0000',
  '1e308', '1e309', '-0', 'NaN', 'Infinity', '\u0000', '\ufeff', '\ud800', '\u2028', '00', '0x10', '1e', '-.5',
];
const snippet = fc.oneof(
  { arbitrary: fc.constantFrom(...TEXT_SNIPPETS), weight: 4 },
  { arbitrary: fc.stringMatching(/^[-+0-9eE.]{1,6}$/), weight: 2 },
  { arbitrary: fc.string({ maxLength: 3 }), weight: 1 },
);

type TextOp =
  | { op: 'insert' | 'replace'; pos: number; len: number; s: string }
  | { op: 'delete'; pos: number; len: number }
  | { op: 'member'; pos: number; end: boolean; key: string; lit: string };

const MODEL_KEYS = ['format', 'version', 'loss', 'layers', 'inputs', 'outputs', 'activation', 'weights', 'bias', 'target', 'kind', 'classes', 'normalization', 'mean', 'std', 'input', 'features', '__proto__'];
const textOp: fc.Arbitrary<TextOp> = fc.oneof(
  fc.record({ op: fc.constantFrom('insert' as const, 'replace' as const), pos: fc.nat(), len: fc.integer({ min: 1, max: 8 }), s: snippet }),
  fc.record({ op: fc.constant('delete' as const), pos: fc.nat(), len: fc.integer({ min: 1, max: 8 }) }),
  // a (usually duplicate) key inserted right after a '{' (the original wins) or before a '}' (it wins)
  fc.record({ op: fc.constant('member' as const), pos: fc.nat(), end: fc.boolean(), key: fc.constantFrom(...MODEL_KEYS), lit: fc.constantFrom(...VALUE_LITERALS) }),
);

function applyTextOps(text: string, ops: TextOp[]): string {
  for (const o of ops) {
    if (o.op === 'member') {
      const braces: number[] = [];
      for (let i = 0; i < text.length; i++) if (text[i] === (o.end ? '}' : '{')) braces.push(i);
      if (braces.length === 0) continue;
      const i = braces[o.pos % braces.length];
      const member = `"${o.key}":${o.lit}`;
      text = o.end ? `${text.slice(0, i)},${member}${text.slice(i)}` : `${text.slice(0, i + 1)}${member},${text.slice(i + 1)}`;
      continue;
    }
    const pos = o.pos % (text.length + 1);
    if (o.op === 'insert') text = text.slice(0, pos) + o.s + text.slice(pos);
    else if (o.op === 'replace') text = text.slice(0, pos) + o.s + text.slice(pos + o.len);
    else text = text.slice(0, pos) + text.slice(pos + o.len);
  }
  return text;
}

// ---------------------------------------------------------------------------------------------
// Model files.

function baseModels(): string[] {
  const a = createModel({ layers: [3, 4, 2], seed: 1 });
  a.target = { kind: 'classes', classes: ['cat', 'dog'], outputs: 2 };
  a.normalization = { mean: [0, 1, -2.5], std: [1, 0.5, 3] };
  a.inputFields = { features: ['a', 'b', 'c'], label: 'species' };
  const b = createModel({ layers: [2, 3, 1], hidden: 'tanh', output: 'sigmoid', seed: 2 });
  b.views.W[0][0] = -0;
  b.views.b[0][1] = 5e-324;
  b.views.W[1][2] = 1.7976931348623157e308;
  b.target = { kind: 'binary', classes: [0, 1], outputs: 1 };
  const c = createModel({ layers: [4, 2], output: 'linear', loss: 'mse', seed: 3 });
  c.target = { kind: 'regression', outputs: 2 };
  c.inputFields = { xField: 'x', yField: 'y' };
  return [a, b, c].map(modelToText);
}
const BASE_MODELS = baseModels();

interface LayerJson {
  inputs: number;
  outputs: number;
  weights: number[][];
  bias: number[];
}

/**
 * The model-file contract: either a ModelFormatError naming the source, or a model whose
 * parameters are exactly the file's numbers (finite, shapes from the file's layers) and which
 * writes back to text that loads to the same bits.
 */
function checkModelText(text: string): 'accepted' | 'rejected' {
  let model: Model;
  try {
    model = parseModelText(text, 'm.json');
  } catch (err) {
    expectErrorOf(err, ModelFormatError, 'm.json: ');
    return 'rejected';
  }
  const obj = JSON.parse(text.charCodeAt(0) === 0xfeff ? text.slice(1) : text) as { layers: LayerJson[] };
  const layers = obj.layers;
  expect(model.sizes).toEqual([layers[0].inputs, ...layers.map((l) => l.outputs)]);
  for (const v of model.params) expect(Number.isFinite(v)).toBe(true);
  layers.forEach((l, k) => {
    const W = model.views.W[k], b = model.views.b[k];
    expect(W.length).toBe(l.inputs * l.outputs);
    expect(b.length).toBe(l.outputs);
    for (let m = 0; m < l.outputs; m++) {
      for (let j = 0; j < l.inputs; j++) if (!Object.is(W[m * l.inputs + j], l.weights[m][j])) throw new Error(`W[${k}][${m}][${j}] differs`);
      if (!Object.is(b[m], l.bias[m])) throw new Error(`b[${k}][${m}] differs`);
    }
  });
  const back = parseModelText(modelToText(model), 'again.json');
  expect(sameBits(back.params, model.params)).toBe(true);
  expect(back.sizes).toEqual(model.sizes);
  expect(back.activations).toEqual(model.activations);
  expect(back.loss).toBe(model.loss);
  expect(back.target).toEqual(model.target);
  expect(back.normalization).toEqual(model.normalization);
  expect(back.inputFields).toEqual(model.inputFields);
  return 'accepted';
}

describe('fuzz: model file reader', () => {
  it('the unmutated base models load and round-trip', () => {
    for (const t of BASE_MODELS) expect(checkModelText(t)).toBe('accepted');
  });

  it('mutated model text: a valid model or a ModelFormatError, nothing else', () => {
    const seen = { accepted: 0, rejected: 0 };
    fc.assert(
      fc.property(
        fc.nat(BASE_MODELS.length - 1),
        fc.array(jsonOp, { maxLength: 3 }),
        fc.oneof({ arbitrary: fc.constant([] as TextOp[]), weight: 2 }, { arbitrary: fc.array(textOp, { minLength: 1, maxLength: 4 }), weight: 1 }),
        fc.oneof({ arbitrary: fc.constant(null), weight: 5 }, { arbitrary: fc.nat(), weight: 1 }), // truncation
        fc.boolean(),
        (base, jsonOps, textOps, cut, bom) => {
          let text = applyJsonOps(BASE_MODELS[base], jsonOps);
          text = applyTextOps(text, textOps);
          if (cut !== null) text = text.slice(0, cut % (text.length + 1));
          if (bom) text = '\ufeff' + text;
          seen[checkModelText(text)]++;
        },
      ),
      { seed: SEED, numRuns: 500 },
    );
    // Not vacuous: both outcomes occur often.
    expect(seen.accepted).toBeGreaterThan(25);
    expect(seen.rejected).toBeGreaterThan(100);
    expectNoPollution();
  });

  it('truncation at every length of every base model is a ModelFormatError', () => {
    for (const t of BASE_MODELS) {
      const body = t.trimEnd();
      for (let n = 0; n < body.length; n++) expect(checkModelText(body.slice(0, n))).toBe('rejected');
    }
  });

  it('random layer sizes (up to 1e9, fractional, negative, -0) load or are a ModelFormatError', () => {
    const size = fc.oneof(
      fc.integer({ min: -2, max: 8 }),
      fc.constantFrom(1e9, 1 << 20, (1 << 20) + 1, 2 ** 31, 2 ** 53, 1.5, -0, 1e308, Number.MAX_SAFE_INTEGER),
      fc.integer({ min: 1, max: 1 << 21 }),
    );
    fc.assert(
      fc.property(fc.nat(BASE_MODELS.length - 1), fc.array(fc.tuple(fc.nat(), fc.boolean(), size), { minLength: 1, maxLength: 3 }), (base, edits) => {
        const obj = JSON.parse(BASE_MODELS[base]) as { layers: LayerJson[] };
        for (const [k, which, v] of edits) obj.layers[k % obj.layers.length][which ? 'inputs' : 'outputs'] = v;
        checkModelText(JSON.stringify(obj));
      }),
      { seed: SEED, numRuns: 200 },
    );
  });

  it('deeply nested values anywhere are a ModelFormatError (no stack overflow)', () => {
    // JSON.parse itself is iterative in V8 and reads any depth; what reads the parsed value must not
    // recurse over it either (e.g. JSON.stringify of a bad value in an error message).
    fc.assert(
      fc.property(fc.nat(BASE_MODELS.length - 1), fc.nat(), fc.integer({ min: 1, max: 50_000 }), fc.boolean(), (base, at, depth, arrays) => {
        const nest = arrays ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth) + '0' + '}'.repeat(depth);
        const holder = { root: JSON.parse(BASE_MODELS[base]) as unknown };
        const all = slotsOf(holder);
        setSlot(all[at % all.length], rawMarker(0));
        checkModelText(stringifyWithRaw(holder.root, [nest]));
      }),
      { seed: SEED, numRuns: 150 },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// NDJSON data files.

const finite = fc.double({ noNaN: true, noDefaultInfinity: true });
const yOf = (kind: string): fc.Arbitrary<unknown> => {
  switch (kind) {
    case 'binary': return fc.constantFrom(0, 1);
    case 'int': return fc.nat(20);
    case 'label': return fc.constantFrom('cat', 'dog', '__proto__', 'constructor', 'toString', '', 'é');
    case 'regression': return finite;
    default: return fc.array(finite, { minLength: 2, maxLength: 2 });
  }
};
const ndjsonText: fc.Arbitrary<string> = fc
  .record({ width: fc.integer({ min: 1, max: 4 }), kind: fc.constantFrom('binary', 'int', 'label', 'regression', 'array'), crlf: fc.boolean(), finalNewline: fc.boolean() })
  .chain(({ width, kind, crlf, finalNewline }) =>
    fc.array(fc.record({ x: fc.array(finite, { minLength: width, maxLength: width }), y: yOf(kind) }), { minLength: 1, maxLength: 6 }).map((rows) => {
      const nl = crlf ? '\r\n' : '\n';
      return rows.map((r) => JSON.stringify(r)).join(nl) + (finalNewline ? nl : '');
    }),
  );

const utf8 = (s: string): number[] => [...Buffer.from(s, 'utf8')];
const BYTE_SNIPPETS: number[][] = [
  ...['\r', '\n', '\r\n', '\n\n', ' ', '\t', ',', '[', ']', '{', '}', '"', ':', '0', '1', '-', '.', 'e', 'null', 'true',
    'NaN', '-NaN', 'Infinity', '1e400', '-1e400', '1e308', '"__proto__"', '"__proto__":{"polluted":1},', '{"__proto__":{"polluted":1}}',
    '"constructor":{"prototype":{"polluted":1}},', '"x":', '"y":', '"x":[]', '"y":null', '\u2028', '\u00e9'].map(utf8),
  [0xef, 0xbb, 0xbf], // BOM
  [0x00], [0xff], [0xfe], [0xc3], [0x80], [0xe2, 0x82], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xc0, 0xaf], // invalid UTF-8
  [0x1f, 0x8b], // gzip magic
];
const bytesArb = fc.oneof(
  { arbitrary: fc.constantFrom(...BYTE_SNIPPETS), weight: 4 },
  { arbitrary: fc.uint8Array({ minLength: 1, maxLength: 4 }).map((a) => [...a]), weight: 1 },
);
type ByteOp =
  | { op: 'insert' | 'replace'; pos: number; len: number; bytes: number[] }
  | { op: 'delete'; pos: number; len: number }
  | { op: 'truncate'; pos: number }
  | { op: 'duplicateLine' | 'blankLine'; pos: number }
  | { op: 'pad'; pos: number; len: number };
const byteOp: fc.Arbitrary<ByteOp> = fc.oneof(
  { arbitrary: fc.record({ op: fc.constantFrom('insert' as const, 'replace' as const), pos: fc.nat(), len: fc.integer({ min: 1, max: 6 }), bytes: bytesArb }), weight: 6 },
  { arbitrary: fc.record({ op: fc.constant('delete' as const), pos: fc.nat(), len: fc.integer({ min: 1, max: 6 }) }), weight: 2 },
  { arbitrary: fc.record({ op: fc.constantFrom('truncate' as const, 'duplicateLine' as const, 'blankLine' as const), pos: fc.nat() }), weight: 1 },
  // JSON whitespace long enough that lines (and multi-byte or invalid sequences) straddle the
  // reader's 64 KiB chunks
  { arbitrary: fc.record({ op: fc.constant('pad' as const), pos: fc.nat(), len: fc.integer({ min: 60_000, max: 140_000 }) }), weight: 1 },
);

function applyByteOps(input: Buffer, ops: ByteOp[]): Buffer {
  let b = input;
  for (const o of ops) {
    const pos = o.pos % (b.length + 1);
    switch (o.op) {
      case 'insert': b = Buffer.concat([b.subarray(0, pos), Buffer.from(o.bytes), b.subarray(pos)]); break;
      case 'replace': b = Buffer.concat([b.subarray(0, pos), Buffer.from(o.bytes), b.subarray(pos + o.len)]); break;
      case 'delete': b = Buffer.concat([b.subarray(0, pos), b.subarray(pos + o.len)]); break;
      case 'truncate': b = b.subarray(0, pos); break;
      case 'pad': b = Buffer.concat([b.subarray(0, pos), Buffer.alloc(o.len, 0x20), b.subarray(pos)]); break;
      case 'duplicateLine':
      case 'blankLine': {
        const start = b.lastIndexOf(0x0a, pos - 1) + 1;
        let end = b.indexOf(0x0a, pos);
        if (end < 0) end = b.length;
        const extra = o.op === 'blankLine' ? Buffer.from(' \t\r\n') : Buffer.concat([b.subarray(start, end), Buffer.from('\n')]);
        b = Buffer.concat([b.subarray(0, start), extra, b.subarray(start)]);
        break;
      }
    }
  }
  return b;
}

type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };
async function settle<T>(p: () => Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await p() };
  } catch (error) {
    return { ok: false, error };
  }
}
async function readAll(file: string): Promise<RawRecord[]> {
  const out: RawRecord[] = [];
  for await (const r of readRecords(file)) out.push(r);
  return out;
}

const isFiniteNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/**
 * What a successful read must return, worked out independently of the reader: the file's
 * non-blank physical lines (split at '\n' only, '\r' before it and a BOM on line 1 removed).
 */
function expectedRecords(bytes: Buffer): { line: number; value: unknown }[] {
  const out: { line: number; value: unknown }[] = [];
  let start = 0;
  for (let line = 1; start <= bytes.length; line++) {
    let end = bytes.indexOf(0x0a, start);
    if (end < 0) end = bytes.length;
    let text = bytes.subarray(start, end).toString('utf8');
    if (line === 1 && text.startsWith('\ufeff')) text = text.slice(1);
    if (text.endsWith('\r')) text = text.slice(0, -1);
    if (text.trim() !== '') out.push({ line, value: JSON.parse(text) });
    start = end + 1;
  }
  return out;
}

/** The reader contract for one file (`plain`: its bytes as read, when known); returns which way it went. */
async function checkDataFile(file: string, plain?: Buffer): Promise<'loaded' | 'read-only' | 'rejected'> {
  const read = await settle(() => readAll(file));
  if (!read.ok) {
    expectErrorOf(read.error, DataError, `${file}:`);
    expect((read.error as DataError).file).toBe(file);
  } else {
    const recs = read.value;
    expect(recs.length).toBeGreaterThan(0);
    if (plain !== undefined) {
      const want = expectedRecords(plain);
      expect(recs.map((r) => r.line)).toEqual(want.map((w) => w.line));
      recs.forEach((r, i) => {
        const v = want[i].value as { x: unknown; y: unknown };
        expect(r.x).toEqual(v.x);
        expect(r.y).toEqual(v.y);
      });
    }
    let last = 0;
    for (const r of recs) {
      expect(Number.isInteger(r.line) && r.line > last).toBe(true);
      last = r.line;
      expect(r.x.length).toBe(recs[0].x.length);
      expect(r.x.length).toBeGreaterThan(0);
      expect(r.x.every(isFiniteNumber)).toBe(true);
      const y = r.y;
      expect(typeof y === 'string' || isFiniteNumber(y) || (Array.isArray(y) && y.length > 0 && y.every(isFiniteNumber))).toBe(true);
    }
  }

  // Stopping after the first record closes the file and rejects only for a bad first line.
  const first = await settle(async () => {
    for await (const r of readRecords(file)) return r;
    return undefined;
  });
  if (!first.ok) expectErrorOf(first.error, DataError, `${file}:`);
  else if (read.ok) expect(first.value).toEqual(read.value[0]);

  const loaded = await settle(() => loadDataset(file));
  if (!loaded.ok) {
    expectErrorOf(loaded.error, DataError, `${file}:`);
    expect((loaded.error as DataError).file).toBe(file);
    return read.ok ? 'read-only' : 'rejected';
  }
  // loadDataset reads with readRecords: it cannot succeed where readRecords fails.
  if (!read.ok) throw new Error(`loadDataset accepted a file that readRecords rejects (${(read.error as Error).message})`);
  const recs = read.value;
  const { dataset: ds, encoding } = loaded.value;
  expect(ds.size).toBe(recs.length);
  expect(ds.inputDim).toBe(recs[0].x.length);
  expect(ds.targetDim).toBe(encoding.outputs);
  expect(ds.x.length).toBe(ds.size * ds.inputDim);
  expect(ds.y.length).toBe(ds.size * ds.targetDim);
  expect(sameBits(ds.x, Float64Array.from(recs.flatMap((r) => r.x)))).toBe(true);
  expect(ds.y.every(Number.isFinite)).toBe(true);
  expect(Array.from(ds.lines!)).toEqual(recs.map((r) => r.line));
  expect(ds.source).toBe(file);
  return 'loaded';
}

describe('fuzz: NDJSON reader and loadDataset', () => {
  it('mutated NDJSON: valid records or a DataError naming the file, nothing else', async () => {
    const fdsBefore = openFds();
    const seen = { loaded: 0, 'read-only': 0, rejected: 0 };
    let i = 0;
    await fc.assert(
      fc.asyncProperty(
        ndjsonText,
        fc.array(byteOp, { maxLength: 4 }),
        fc.constantFrom('plain', 'plain', 'plain', 'gzip', 'gzip-corrupt'),
        async (text, ops, packing) => {
          let bytes: Buffer;
          let plain: Buffer | undefined;
          if (packing === 'plain') bytes = plain = applyByteOps(Buffer.from(text, 'utf8'), ops);
          else if (packing === 'gzip') bytes = gzipSync((plain = applyByteOps(Buffer.from(text, 'utf8'), ops)));
          else bytes = applyByteOps(gzipSync(text), ops); // corrupt the compressed bytes
          const file = path.join(dir, `d${i++}.ndjson${packing === 'plain' ? '' : '.gz'}`);
          writeFileSync(file, bytes);
          try {
            seen[await checkDataFile(file, plain)]++;
          } finally {
            rmSync(file, { force: true });
          }
        },
      ),
      { seed: SEED, numRuns: 400 },
    );
    // Not vacuous: files load, and files are refused.
    expect(seen.loaded).toBeGreaterThan(40);
    expect(seen.rejected).toBeGreaterThan(40);
    expectNoPollution();
    // Every reader closed its file before settling (a leak would add one descriptor per run).
    if (fdsBefore > 0) expect(openFds()).toBeLessThanOrEqual(fdsBefore + 2);
    await new Promise((r) => setImmediate(r));
    expect(unhandled).toEqual([]);
  }, 60_000);

  it('deeply nested values in a record are a DataError (no stack overflow)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 50_000 }), fc.boolean(), fc.constantFrom('x', 'y', 'x0', 'z'), async (depth, arrays, where) => {
        const nest = arrays ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth) + '0' + '}'.repeat(depth);
        const line = where === 'x' ? `{"x":${nest},"y":1}` : where === 'y' ? `{"x":[1],"y":${nest}}` : where === 'x0' ? `{"x":[${nest}],"y":1}` : `{"x":[1],"y":0,"z":${nest}}`;
        const file = path.join(dir, `deep-${depth}.ndjson`);
        writeFileSync(file, `{"x":[2],"y":1}\n${line}\n`);
        try {
          await checkDataFile(file);
        } finally {
          rmSync(file, { force: true });
        }
      }),
      { seed: SEED, numRuns: 40 },
    );
  });
});

describe('fuzz: loadModel on mutated bytes', () => {
  it('a model file with random bytes (BOM, NUL, invalid UTF-8, CR/LF …) loads or is a ModelFormatError', async () => {
    let i = 0;
    await fc.assert(
      fc.asyncProperty(fc.nat(BASE_MODELS.length - 1), fc.array(byteOp, { minLength: 1, maxLength: 3 }), async (base, ops) => {
        const file = path.join(dir, `m${i++}.json`);
        writeFileSync(file, applyByteOps(Buffer.from(BASE_MODELS[base], 'utf8'), ops));
        try {
          const model = await loadModel(file).catch((err: unknown) => {
            expectErrorOf(err, ModelFormatError, `${file}: `);
            return undefined;
          });
          if (model !== undefined) for (const v of model.params) expect(Number.isFinite(v)).toBe(true);
        } finally {
          rmSync(file, { force: true });
        }
      }),
      { seed: SEED, numRuns: 200 },
    );
    expectNoPollution();
  });
});
