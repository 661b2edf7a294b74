// File helpers: atomic writes (a reader sees the old file or the new one, never half of one),
// and whether a module is the program node was started with.

import { constants as fsc, promises as fsp, accessSync, lstatSync, readdirSync, readlinkSync, realpathSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

let counter = 0;

/** Temporary files being written: removed by removeTempFiles if the process must end at once. */
const live = new Set<string>();

/**
 * Where writing `file` must go. A regular file, or none yet, is replaced atomically through a
 * temporary file beside its real path: a symlink is followed (a dangling one too: its target is
 * created), never replaced by a file. Anything else, and any path under /dev (but /dev/shm) or /proc (a device
 * such as /dev/null, /dev/stdout whatever it points at, a FIFO), is appended to in place:
 * renaming a file over /dev/null would replace the device itself, and /dev/stdout redirected to
 * a file must not lose what the process already wrote there.
 */
export function writeTarget(file: string, depth = 0): { path: string; atomic: boolean } {
  const abs = path.resolve(file);
  // /dev/stdout, /dev/fd/N, /proc/self/fd/N… name an open file of this process (a shell's
  // redirection): replacing it would leave the shell's file behind. /dev/shm is a plain tmpfs.
  if ((abs.startsWith('/dev/') && !abs.startsWith('/dev/shm/')) || abs.startsWith('/proc/')) return { path: file, atomic: false };
  try {
    return statSync(file).isFile() ? { path: realpathSync(file), atomic: true } : { path: file, atomic: false };
  } catch {
    // Not there yet, or a symlink whose target is not there yet: create its target.
    try {
      if (depth < 8 && lstatSync(file).isSymbolicLink()) return writeTarget(path.resolve(path.dirname(file), readlinkSync(file)), depth + 1);
    } catch {
      // not a link
    }
    return { path: file, atomic: true };
  }
}

/** Tells this machine's temporary files from another's in a directory they share (NFS, a
 *  volume mounted in several containers): only a process of this host can be known to be gone. */
export const HOST_TAG = os.hostname().replace(/[^A-Za-z0-9-]/g, '_') || 'host';

/** A fresh temporary name beside `file` (same directory, so the final rename is atomic):
 *  .NAME.HOST.PID.N.tmp. Call releaseTempPath once it is renamed or removed. */
export function tempPathFor(file: string): string {
  removeStaleTemps(file);
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${HOST_TAG}.${process.pid}.${counter++}.tmp`);
  live.add(tmp);
  return tmp;
}

const swept = new Set<string>();

/** Removes the temporary files of `file` that processes of this host left when they were killed
 *  during a write (kill -9), once per file per process. Best effort: a file it cannot remove (not
 *  ours, a directory) is left alone, and never stops the write. */
function removeStaleTemps(file: string): void {
  const dir = path.dirname(file), prefix = `.${path.basename(file)}.${HOST_TAG}.`;
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
    try {
      if (lstatSync(path.join(dir, name)).isFile()) rmSync(path.join(dir, name), { force: true });
    } catch {
      // someone else's, or gone already
    }
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

/** Gives the temporary file that is about to replace `file` the mode (and, where allowed, the
 *  owner) of the file it replaces: a private model (0600) must not become world-readable
 *  because it was rewritten. Nothing to do for a new file. */
async function keepModeOf(file: string, tmp: string): Promise<void> {
  let st;
  try {
    st = await fsp.stat(file);
  } catch {
    return;
  }
  await fsp.chmod(tmp, st.mode & 0o7777);
  await fsp.chown(tmp, st.uid, st.gid).catch(() => {}); // only root may give a file away
}

/** The end of every atomic replace: the written temporary file is fsynced (on disk before it
 *  takes the real name) through `written`, the handle it was written with, which this closes (or
 *  a handle opened here when the writer is gone, a stream), given the mode of the file it replaces
 *  (keepModeOf), and renamed over it. */
export async function replaceWithTemp(file: string, tmp: string, written?: fsp.FileHandle): Promise<void> {
  const h = written ?? (await fsp.open(tmp, 'r'));
  try {
    await h.sync();
  } finally {
    await h.close();
  }
  await keepModeOf(file, tmp);
  await fsp.rename(tmp, file);
  releaseTempPath(tmp);
}

/** Writes `text` to a temporary file beside `file`, fsyncs it, then renames it over `file` (a
 *  device or FIFO is written in place; see writeTarget). The file keeps its mode (keepModeOf). */
export async function writeFileAtomic(file: string, text: string): Promise<void> {
  const target = writeTarget(file);
  if (!target.atomic) {
    try {
      return await fsp.writeFile(target.path, text, { encoding: 'utf8', flag: 'a' });
    } catch (err) {
      throw writeError(file, err);
    }
  }
  file = target.path;
  const tmp = tempPathFor(file);
  let handle: fsp.FileHandle | undefined;
  try {
    handle = await fsp.open(tmp, 'w');
    await handle.writeFile(text, 'utf8');
    const written = handle;
    handle = undefined; // replaceWithTemp closes it
    await replaceWithTemp(file, tmp, written);
  } catch (err) {
    await handle?.close().catch(() => {});
    await fsp.rm(tmp, { force: true }).catch(() => {});
    releaseTempPath(tmp);
    throw writeError(file, err);
  }
}

/** A failed write of `file` as the user knows it: named by the file asked for (the system's
 *  message may name a temporary file, or nothing at all), with the system's error as cause. */
export function writeError(file: string, err: unknown): Error {
  const code = (err as NodeJS.ErrnoException)?.code;
  return Object.assign(new Error(`cannot write ${file}: ${writeFailure(file, err)}`, { cause: err }), { code });
}

function isDirectory(dir: string): boolean {
  try {
    return statSync(dir).isDirectory();
  } catch {
    return false;
  }
}

/** Why the system's error `err` failed a write of `file`, in words (writeError's reason). */
export function writeFailure(file: string, err: unknown): string {
  const code = (err as NodeJS.ErrnoException)?.code;
  // ENOENT also comes from a directory that is there but takes no new files (/proc, as root).
  return code === 'ENOENT' ? (isDirectory(path.dirname(file)) ? `files cannot be created in ${path.dirname(file)}` : `the directory ${path.dirname(file)} does not exist`)
    : code === 'EACCES' || code === 'EPERM' ? `no permission to write in ${path.dirname(file)}`
    : code === 'ENOSPC' ? 'no space left on the device'
    // The system's message names the temporary file, or the rename from it, not what went wrong.
    : code === 'EISDIR' ? 'it is a directory; give a file name'
    : code === 'ENOTDIR' ? `${file.endsWith('/') ? 'a name ending in / is a directory' : `a part of ${path.dirname(file)} is a file, not a directory`}; give a file name`
    : (err as Error)?.message ?? String(err);
}

/**
 * Why writeFileAtomic could not write `file`, as far as can be told before writing it, or
 * undefined: `file` is a directory; its directory (of its real path, for a symlink) does not
 * exist, is not a directory, or may not be written in; or it is a write-protected file (replaced
 * only behind its owner's back, which cp and a shell's redirection refuse too). A device or FIFO
 * (written in place, see writeTarget) is fine. For an output that must not be found unwritable
 * only after the work that fills it (a checkpoint, a model).
 */
export function unwritableReason(file: string): string | undefined {
  const why = unwritable(file);
  return why === undefined ? undefined : why.aboutFile ? `${file} ${why.reason}` : why.reason;
}

/** unwritableReason's finding: `reason` completes a sentence about the file ("is a directory")
 *  when `aboutFile`, and is one of its own otherwise ("the directory D does not exist"), so that
 *  the CLI can put its flag in front of either (checkFiles). */
export function unwritable(file: string): { reason: string; aboutFile: boolean } | undefined {
  const about = (reason: string) => ({ reason, aboutFile: true });
  const own = (reason: string) => ({ reason, aboutFile: false });
  // Whether or not a directory is there: the rename that writes the file would fail after the work.
  if (file.endsWith('/')) return about("ends in '/', so it names a directory; give a file name");
  let existing: ReturnType<typeof statSync> | undefined;
  try {
    existing = statSync(file);
  } catch {
    // not there yet
  }
  if (existing?.isDirectory()) return about('is a directory; give a file name');
  const target = writeTarget(file);
  if (!target.atomic) return undefined;
  const dir = path.dirname(path.resolve(target.path));
  let dirStat: ReturnType<typeof statSync> | undefined;
  try {
    dirStat = statSync(dir);
  } catch {
    // reported below
  }
  if (dirStat === undefined) return own(`the directory ${dir} does not exist`);
  if (!dirStat.isDirectory()) return own(`${dir} is not a directory`);
  try {
    accessSync(dir, fsc.W_OK);
  } catch {
    return own(`no permission to write in ${dir}`);
  }
  if (existing !== undefined) {
    try {
      accessSync(target.path, fsc.W_OK);
    } catch {
      // Not replaced behind its owner's back (cp and shell redirection refuse it too), although
      // the rename that replaces it would be allowed.
      return about('is write-protected; make it writable (chmod u+w) to replace it');
    }
  }
  return undefined;
}

/** A failed write to stdout, said once by the CLI (see cli.ts). */
export class StdoutError extends Error {
  constructor(err: unknown) {
    super(`cannot write to stdout: ${(err as Error)?.message ?? String(err)}`, { cause: err });
    this.name = 'StdoutError';
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
