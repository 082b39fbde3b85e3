/**
 * Size-limited directories: a tmpfs mounted with `size=`, which returns ENOSPC ("No space
 * left on device") when full, as a full disk does. Used for PVCs with a size (option
 * `pvcSizeBytes`) and for test directories (`sizeLimitedDir`, e.g. a worker's backup
 * directory). Needs root (mount(2)).
 *
 * Every such mount's source is `sim-k8s-<pid>` (visible in /proc/self/mountinfo), so that
 * mounts left by a process that was SIGKILLed are found and unmounted by the next
 * simulator that starts (collectOrphanMounts). A normal exit or a signal unmounts them
 * (sandbox.ts emergencyCleanup), and so does stop() / release().
 */
import { execFile, spawnSync } from 'node:child_process';
import { readFileSync, rmdirSync } from 'node:fs';
import { mkdir, readdir, rmdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { ensureExitHandlers, onEmergencyCleanup } from './sandbox.js';

const run = promisify(execFile);
const SOURCE_PREFIX = 'sim-k8s-';

interface MountEntry {
  /** We made the directory (and remove it on unmount). */
  createdDir: boolean;
}
const mounts = new Map<string, MountEntry>();

onEmergencyCleanup(() => {
  for (const [dir, entry] of mounts) {
    spawnSync('umount', ['-l', dir], { stdio: 'ignore' });
    if (entry.createdDir) {
      try {
        rmdirSync(dir);
      } catch {
        // not empty or gone: the simulator's directory removal takes it
      }
    }
  }
  mounts.clear();
});

/** Throws a clear error unless this process can mount (root). */
export function requireRoot(what: string): void {
  const uid = process.getuid?.();
  if (uid !== 0) {
    throw new Error(
      `sim: ${what} needs root to mount a size-limited tmpfs (this process runs as uid ${uid ?? '?'}); run the tests as root (id -u = 0) or leave it out`,
    );
  }
}

/** `size` as a Kubernetes quantity: 64Mi, 1Gi, or bytes. */
export function quantity(bytes: number): string {
  for (const [unit, n] of [
    ['Gi', 1024 ** 3],
    ['Mi', 1024 ** 2],
    ['Ki', 1024],
  ] as const) {
    if (bytes % n === 0) return `${bytes / n}${unit}`;
  }
  return String(bytes);
}

/** Mounts a tmpfs of `bytes` at `dir` (created if missing; must be empty if it exists). */
export async function mountSizeLimited(dir: string, bytes: number, what: string): Promise<void> {
  requireRoot(what);
  ensureExitHandlers();
  if (!Number.isInteger(bytes) || bytes < 4096) {
    throw new Error(`sim: ${what}: size must be an integer number of bytes >= 4096`);
  }
  const abs = resolve(dir);
  if (mounts.has(abs)) throw new Error(`sim: ${abs} is already size-limited`);
  const existing = await readdir(abs).catch(() => undefined);
  if (existing && existing.length > 0) throw new Error(`sim: ${abs} is not empty`);
  if (!existing) await mkdir(abs, { recursive: true });
  try {
    await run('mount', [
      '-t',
      'tmpfs',
      '-o',
      `size=${bytes},mode=0755`,
      `${SOURCE_PREFIX}${process.pid}`,
      abs,
    ]);
  } catch (e) {
    if (!existing) await rmdir(abs).catch(() => undefined);
    const stderr = (e as { stderr?: string }).stderr?.trim();
    throw new Error(`sim: ${what}: mount -t tmpfs at ${abs} failed: ${stderr || String(e)}`);
  }
  mounts.set(abs, { createdDir: !existing });
  ensureExitHandlers();
}

/** Unmounts a size-limited directory (and removes it if we made it). */
export async function unmountSizeLimited(dir: string): Promise<void> {
  const abs = resolve(dir);
  const entry = mounts.get(abs);
  if (!entry) return;
  try {
    await run('umount', [abs]);
  } catch {
    await run('umount', ['-l', abs]).catch(() => undefined);
  }
  mounts.delete(abs);
  if (entry.createdDir) await rmdir(abs).catch(() => undefined);
}

/** Unmounts every size-limited directory at or under `root`. */
export async function unmountUnder(root: string): Promise<void> {
  const r = resolve(root);
  for (const dir of [...mounts.keys()].sort().reverse()) {
    if (dir === r || dir.startsWith(`${r}/`)) await unmountSizeLimited(dir);
  }
}

function unescapeMountPath(p: string): string {
  return p.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

/** Mount points of our tmpfs mounts: `{ dir, pid }` from /proc/self/mountinfo. */
export function simMounts(): { dir: string; pid: number }[] {
  let text = '';
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8');
  } catch {
    return [];
  }
  const out: { dir: string; pid: number }[] = [];
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const [fstype, source] = right.split(' ');
    const m = source?.match(/^sim-k8s-(\d+)$/);
    if (fstype !== 'tmpfs' || !m) continue;
    const dir = left.split(' ')[4];
    if (dir) out.push({ dir: unescapeMountPath(dir), pid: Number(m[1]) });
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Unmounts size-limited directories of processes that are gone (SIGKILLed). */
export async function collectOrphanMounts(): Promise<void> {
  const orphans = simMounts()
    .filter((m) => m.pid !== process.pid && !alive(m.pid))
    .sort((a, b) => b.dir.length - a.dir.length);
  for (const m of orphans) {
    await run('umount', ['-l', m.dir]).catch(() => undefined);
    // A sizeLimitedDir's mount point was made for it; a PVC's goes with the sim directory.
    await rmdir(m.dir).catch(() => undefined);
  }
}
