// Error types that callers can tell apart with `instanceof` or `err.code`.

/** A bad option passed to the library: names the option and the value received. */
export class OptionError extends TypeError {
  readonly code = 'BPTRAIN_OPTION';
  /** `message` replaces the usual "OPTION must be EXPECTED; received VALUE". */
  constructor(readonly option: string, readonly received: unknown, expected: string, message?: string) {
    super(message ?? `${option} must be ${expected}; received ${describe(received)}`);
    this.name = 'OptionError';
  }
}

/**
 * Checks the keys of an options object before anything reads it: a misspelt option (`epoch`,
 * `learningRate`, `batch_size`) would otherwise be ignored and its default used without a word,
 * and null is not "the default" (leave the option out, or pass undefined). `what` names the
 * options in the message, e.g. "fit options".
 */
export function checkOptionKeys(options: object, known: readonly string[], what: string): void {
  if (options === null || typeof options !== 'object') throw new OptionError('options', options, `an object of ${what}`);
  for (const [key, value] of Object.entries(options)) {
    if (!known.includes(key)) {
      const near = closestName(key, known);
      throw new OptionError(key, value, '', `${key} is not one of the ${what}${near !== undefined ? ` (did you mean ${near}?)` : ''}; they are: ${known.join(', ')}`);
    }
    if (value === null) throw new OptionError(key, value, 'a value, or left out (undefined) for its default');
  }
}

/** An options object's `signal`: an AbortSignal or undefined, else an OptionError. */
export function signalOption(signal: unknown): AbortSignal | undefined {
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw new OptionError('signal', signal, 'an AbortSignal');
  return signal;
}

/** The known name closest to `name`: the same letters ignoring case, '_' and '-', or at most
 *  two edits away (and closer than any other). */
export function closestName(name: string, known: readonly string[]): string | undefined {
  const bare = (s: string): string => s.toLowerCase().replace(/[_-]/g, '');
  const exact = known.find((k) => bare(k) === bare(name));
  if (exact !== undefined) return exact;
  let best: string | undefined;
  let bestD = 3;
  for (const k of known) {
    const d = editDistance(bare(name), bare(k));
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

/** A Trainer used when it cannot be: closed (or closed while the call waited for its turn), called
 *  from inside its own running call, or given a model that another Trainer is training. */
export class StateError extends Error {
  readonly code = 'BPTRAIN_STATE';
  constructor(message: string) {
    super(message);
    this.name = 'StateError';
  }
}

/** Bad training or prediction data: names the file and line where there is one. */
export class DataError extends Error {
  readonly code = 'BPTRAIN_DATA';
  /** `options.cause`: the file system's error when a data file could not be read. */
  constructor(message: string, readonly file?: string, readonly line?: number, options?: ErrorOptions) {
    super(file !== undefined ? `${file}${line !== undefined ? `:${line}` : ''}: ${message}` : message, options);
    this.name = 'DataError';
  }
}

/** A model file that is not a valid bptrain model. */
export class ModelFormatError extends Error {
  readonly code = 'BPTRAIN_MODEL_FORMAT';
  /** `options.cause`: the file system's error when the file could not be read (its `code`, e.g.
   *  ENOENT, tells a missing file from a corrupt one). */
  constructor(message: string, readonly file?: string, options?: ErrorOptions) {
    super(file !== undefined ? `${file}: ${message}` : message, options);
    this.name = 'ModelFormatError';
  }
}

/** Training hit a non-finite loss or gradient. */
export class NumericError extends Error {
  readonly code = 'BPTRAIN_NUMERIC';
  constructor(message: string, readonly epoch: number, readonly step: number) {
    super(message);
    this.name = 'NumericError';
  }
}

/** A worker thread failed during a step. */
export class WorkerError extends Error {
  readonly code = 'BPTRAIN_WORKER';
  constructor(message: string, readonly epoch: number, readonly step: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'WorkerError';
  }
}

/** The `code` of each of bptrain's own errors. */
export type BptrainErrorCode =
  | 'BPTRAIN_OPTION' | 'BPTRAIN_STATE' | 'BPTRAIN_DATA' | 'BPTRAIN_MODEL_FORMAT' | 'BPTRAIN_NUMERIC' | 'BPTRAIN_WORKER' | 'BPTRAIN_CHECKPOINT';

/** What every error bptrain throws on purpose has: its class's name and a `code`. */
export interface BptrainError extends Error {
  readonly code: BptrainErrorCode;
}

const CODES: ReadonlySet<string> = new Set<BptrainErrorCode>([
  'BPTRAIN_OPTION', 'BPTRAIN_STATE', 'BPTRAIN_DATA', 'BPTRAIN_MODEL_FORMAT', 'BPTRAIN_NUMERIC', 'BPTRAIN_WORKER', 'BPTRAIN_CHECKPOINT',
]);

/**
 * True for bptrain's own errors (OptionError, DataError, ModelFormatError, NumericError,
 * WorkerError, StateError, CheckpointError), whatever copy of the package threw them; a type
 * guard for `catch (err)`, where err is `unknown`. (There is no common base class: OptionError
 * is a TypeError, the others are Errors.)
 */
export function isBptrainError(err: unknown): err is BptrainError {
  return err instanceof Error && CODES.has((err as { code?: unknown }).code as string);
}

/** A short, readable rendering of a received value for error messages (p-map style). */
export function describe(v: unknown): string {
  if (typeof v === 'string') return `${JSON.stringify(v.length > 60 ? v.slice(0, 60) + '…' : v)} (string)`;
  if (typeof v === 'number') return `${String(v)} (number)`;
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (Array.isArray(v)) return `[${v.slice(0, 5).map((e) => (typeof e === 'string' ? JSON.stringify(e) : String(e))).join(', ')}${v.length > 5 ? ', …' : ''}] (array)`;
  if (typeof v === 'object') {
    // The class says most: "an AbortController" where an AbortSignal was wanted.
    const name = (Object.getPrototypeOf(v) as { constructor?: { name?: unknown } } | null)?.constructor?.name;
    return typeof name === 'string' && name !== '' && name !== 'Object' ? `${/^[AEIOU]/.test(name) ? 'an' : 'a'} ${name} (object)` : 'object';
  }
  return `${typeof v}`;
}
