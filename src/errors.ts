// Error types that callers can tell apart with `instanceof` or `err.code`.

/** A bad option passed to the library: names the option and the value received. */
export class OptionError extends TypeError {
  readonly code = 'BPTRAIN_OPTION';
  constructor(readonly option: string, readonly received: unknown, expected: string) {
    super(`${option} must be ${expected}; received ${describe(received)}`);
    this.name = 'OptionError';
  }
}

/** Bad training or prediction data: names the file and line where there is one. */
export class DataError extends Error {
  readonly code = 'BPTRAIN_DATA';
  constructor(message: string, readonly file?: string, readonly line?: number) {
    super(file !== undefined ? `${file}${line !== undefined ? `:${line}` : ''}: ${message}` : message);
    this.name = 'DataError';
  }
}

/** A model file that is not a valid bptrain model. */
export class ModelFormatError extends Error {
  readonly code = 'BPTRAIN_MODEL_FORMAT';
  constructor(message: string, readonly file?: string) {
    super(file !== undefined ? `${file}: ${message}` : message);
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

/** A short, readable rendering of a received value for error messages (p-map style). */
export function describe(v: unknown): string {
  if (typeof v === 'string') return `${JSON.stringify(v.length > 60 ? v.slice(0, 60) + '…' : v)} (string)`;
  if (typeof v === 'number') return `${String(v)} (number)`;
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  if (Array.isArray(v)) return `[${v.slice(0, 5).map((e) => (typeof e === 'string' ? JSON.stringify(e) : String(e))).join(', ')}${v.length > 5 ? ', …' : ''}] (array)`;
  return `${typeof v}`;
}
