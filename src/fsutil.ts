// File helpers: atomic writes (a reader sees the old file or the new one, never half of one),
// and whether a module is the program node was started with.

import { promises as fsp, readdirSync, realpathSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

let counter = 0;

/** Temporary files being written: removed by removeTempFiles if the process must end at once. */
const live = new Set<string>();

/**
 * Where writing `file` must go. A regular file, or none yet, is replaced atomically through a
 * temporary file beside its real path: a symlink is followed, not replaced by a file. Anything
 * else (a device such as /dev/null or /dev/stdout, a FIFO) is written in place: renaming a file
 * over /dev/null would replace the device itself.
 */
export function writeTarget(file: string): { path: string; atomic: boolean } {
  let real: string;
  try {
    real = realpathSync(file);
  } catch {
    return { path: file, atomic: true }; // not there yet
  }
  return { path: real, atomic: statSync(real).isFile() };
}

/** A fresh temporary name beside `file` (same directory, so the final rename is atomic). Call
 *  releaseTempPath once it is renamed or removed. */
export function tempPathFor(file: string): string {
  removeStaleTemps(file);
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${counter++}.tmp`);
  live.add(tmp);
  return tmp;
}

const swept = new Set<string>();

/** Removes the temporary files of `file` left by processes that no longer run (kill -9 during a
 *  write), once per file per process. Its name says whose it is: .NAME.PID.N.tmp. */
function removeStaleTemps(file: string): void {
  const dir = path.dirname(file), prefix = `.${path.basename(file)}.`;
  if (swept.has(path.resolve(file))) return;
  swept.add(path.resolve(file));
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const m = name.startsWith(prefix) ? /^(\d+)\.\d+\.tmp$/.exec(name.slice(prefix.length)) : null;
    if (m === null || Number(m[1]) === process.pid || isRunning(Number(m[1]))) continue;
    rmSync(path.join(dir, name), { force: true });
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function releaseTempPath(tmp: string): void {
  live.delete(tmp);
}

/** Removes every temporary file still being written, synchronously: for a process that ends at
 *  once (a second Ctrl-C), so that it leaves no half-written file behind. */
export function removeTempFiles(): void {
  for (const tmp of live) rmSync(tmp, { force: true });
  live.clear();
}

/** Writes `text` to a temporary file beside `file`, fsyncs it, then renames it over `file` (a
 *  device or FIFO is written in place; see writeTarget). */
export async function writeFileAtomic(file: string, text: string): Promise<void> {
  const target = writeTarget(file);
  if (!target.atomic) return fsp.writeFile(target.path, text, 'utf8');
  file = target.path;
  const tmp = tempPathFor(file);
  let handle: fsp.FileHandle | undefined;
  try {
    handle = await fsp.open(tmp, 'w');
    await handle.writeFile(text, 'utf8');
    await handle.sync();
    await handle.close();
    handle = undefined;
    await fsp.rename(tmp, file);
    releaseTempPath(tmp);
  } catch (err) {
    await handle?.close().catch(() => {});
    await fsp.rm(tmp, { force: true }).catch(() => {});
    releaseTempPath(tmp);
    // The system's message names the temporary file, which the caller never asked for.
    const code = (err as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? `the directory ${path.dirname(file)} does not exist`
      : code === 'EACCES' || code === 'EPERM' ? `no permission to write in ${path.dirname(file)}`
      : code === 'ENOSPC' ? 'no space left on the device' : (err as Error).message;
    throw Object.assign(new Error(`cannot write ${file}: ${reason}`, { cause: err }), { code });
  }
}

/** True when the module at `moduleUrl` (its import.meta.url) is the program node was started
 *  with, not an import. Compared by real path: npm installs a package's commands as links
 *  (node_modules/.bin/bptrain, or the global bin directory) to the file, so argv[1] names the
 *  link, not the file. */
export function isProgram(moduleUrl: string): boolean {
  const arg = process.argv[1];
  if (arg === undefined) return false;
  try {
    return realpathSync(arg) === realpathSync(fileURLToPath(moduleUrl));
  } catch {
    return false;
  }
}
