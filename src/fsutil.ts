// Atomic file writes: a reader sees the old file or the new one, never half of one.

import { promises as fsp } from 'node:fs';
import path from 'node:path';

let counter = 0;

/** A fresh temporary name beside `file` (same directory, so the final rename is atomic). */
export function tempPathFor(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${counter++}.tmp`);
}

/** Writes `text` to a temporary file beside `file`, fsyncs it, then renames it over `file`. */
export async function writeFileAtomic(file: string, text: string): Promise<void> {
  const tmp = tempPathFor(file);
  let handle: fsp.FileHandle | undefined;
  try {
    handle = await fsp.open(tmp, 'w');
    await handle.writeFile(text, 'utf8');
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fsp.rename(tmp, file);
  } catch (err) {
    await handle?.close().catch(() => {});
    await fsp.rm(tmp, { force: true }).catch(() => {});
    throw err;
  }
}
