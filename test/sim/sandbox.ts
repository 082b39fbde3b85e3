/**
 * Processes in bubblewrap sandboxes, and their clean-up.
 *
 * A sandbox sees: the container's own root directory as `/` (writable), the image's files
 * read-only (images.ts: by default the host's `/usr` with the Debian `/bin`, `/sbin`,
 * `/lib`, `/lib64` symlinks), a fresh `/proc` and minimal `/dev`, and the pod's volumes
 * bind-mounted at their mount paths. It shares only the host's network namespace (everything listens on loopback).
 * Every sandbox is started in its own process group; all of them are killed when the
 * simulator stops, and `--die-with-parent` kills them if this process dies.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DEFAULT_PATH, HOST_IMAGE, type ImageFs } from './images.js';

export { DEFAULT_PATH };

export interface Mount {
  /** Directory on the host. */
  source: string;
  /** Absolute path inside the sandbox. */
  target: string;
  readOnly: boolean;
}

export interface SandboxSpec {
  rootDir: string;
  /** The container's image (default: the host's /usr). */
  image?: ImageFs;
  mounts: Mount[];
  hostname: string;
  workingDir: string;
  env: Record<string, string>;
  argv: string[];
}

/**
 * Prepares a container root: a minimal /etc, /tmp, /root, and for images with the host's
 * /usr the Debian /bin, /sbin, /lib, /lib64 symlinks.
 */
export async function preparePodRoot(
  rootDir: string,
  hostname: string,
  image: ImageFs = HOST_IMAGE,
): Promise<void> {
  await mkdir(join(rootDir, 'etc'), { recursive: true });
  await mkdir(join(rootDir, 'tmp'), { recursive: true, mode: 0o1777 });
  await mkdir(join(rootDir, 'root'), { recursive: true });
  const links = image.hostUsr ? DEBIAN_LINKS : [];
  for (const [link, target] of links) {
    await symlink(target, join(rootDir, link)).catch((e: NodeJS.ErrnoException) => {
      if (e.code !== 'EEXIST') throw e;
    });
  }
  await writeFile(
    join(rootDir, 'etc/passwd'),
    'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n',
  );
  await writeFile(join(rootDir, 'etc/group'), 'root:x:0:\nnogroup:x:65534:\n');
  await writeFile(
    join(rootDir, 'etc/hosts'),
    `127.0.0.1\tlocalhost\n127.0.1.1\t${hostname}\n::1\tlocalhost\n`,
  );
  await writeFile(join(rootDir, 'etc/hostname'), `${hostname}\n`);
  await writeFile(
    join(rootDir, 'etc/nsswitch.conf'),
    'passwd: files\ngroup: files\nhosts: files dns\n',
  );
}

const DEBIAN_LINKS = [
  ['bin', 'usr/bin'],
  ['sbin', 'usr/sbin'],
  ['lib', 'usr/lib'],
  ['lib64', 'usr/lib64'],
] as const;

/** bwrap argv for a sandbox (without the command). */
export function bwrapArgs(spec: SandboxSpec): string[] {
  const args = [
    '--unshare-all',
    '--share-net',
    '--die-with-parent',
    // bwrap run by root keeps root's capabilities (mknod, mount, ...), which would let a
    // pod reach the host's disks: drop them all.
    '--cap-drop',
    'ALL',
    '--bind',
    spec.rootDir,
    '/',
  ];
  const image = spec.image ?? HOST_IMAGE;
  if (image.hostUsr) args.push('--ro-bind', '/usr', '/usr');
  for (const b of image.binds) args.push('--ro-bind', b.source, b.target);
  args.push('--proc', '/proc', '--dev', '/dev', '--hostname', spec.hostname);
  const mounts = [...spec.mounts].sort(
    (a, b) => a.target.split('/').length - b.target.split('/').length,
  );
  for (const m of mounts) args.push(m.readOnly ? '--ro-bind' : '--bind', m.source, m.target);
  args.push('--chdir', spec.workingDir, '--');
  return args;
}

const live = new Set<ChildProcess>();

/** Starts a sandboxed process in its own process group. */
export function spawnSandboxed(
  spec: SandboxSpec,
  stdio: ['ignore' | 'pipe', number | 'pipe', number | 'pipe'],
): ChildProcess {
  const child = spawn('/usr/bin/bwrap', [...bwrapArgs(spec), ...spec.argv], {
    env: {
      PATH: spec.image?.path ?? DEFAULT_PATH,
      HOME: '/root',
      HOSTNAME: spec.hostname,
      ...spec.env,
    },
    stdio,
    detached: true,
  });
  live.add(child);
  child.once('exit', () => live.delete(child));
  child.once('error', () => live.delete(child));
  return child;
}

/** PIDs in process group `pgid`, except the group leader (the outer bwrap). */
function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // fields[0] = state, [1] = ppid, [2] = pgrp
      if (Number(fields[2]) === pgid && Number(entry) !== pgid) out.push(Number(entry));
    } catch {
      // process went away
    }
  }
  return out;
}

/**
 * Asks the sandboxed processes to stop (SIGTERM to every process in the group but bwrap
 * itself, which would otherwise take the sandbox down with SIGKILL at once).
 */
export function terminate(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  for (const pid of groupMembers(child.pid)) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // gone
    }
  }
}

/** Kills the whole process group. */
export function kill(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // gone
  }
}

/** Resolves when the process has exited (immediately if it already has). */
export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined)
    return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

const tempDirs = new Set<string>();
const emergencySteps: (() => void)[] = [];

/** A synchronous step of emergencyCleanup, run after the kills and before the removals. */
export function onEmergencyCleanup(step: () => void): void {
  emergencySteps.push(step);
}

/** Makes sure emergencyCleanup runs when this process exits, however it exits. */
export function ensureExitHandlers(): void {
  installExitHandlers();
}

/** Registers a directory to be removed when the process exits, however it exits. */
export function registerTempDir(dir: string): void {
  tempDirs.add(dir);
  installExitHandlers();
}

export function unregisterTempDir(dir: string): void {
  tempDirs.delete(dir);
}

/** Kills every sandbox and removes every registered directory, synchronously. */
export function emergencyCleanup(): void {
  for (const child of live) kill(child);
  live.clear();
  for (const step of emergencySteps) {
    try {
      step();
    } catch {
      // best effort
    }
  }
  for (const dir of tempDirs) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // best effort
    }
  }
  tempDirs.clear();
}

let handlersInstalled = false;
function installExitHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.once('exit', emergencyCleanup);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = () => {
      // Someone else (e.g. the sim CLI) handles this signal and stops the simulator itself.
      if (process.listenerCount(signal) > 1) return;
      emergencyCleanup();
      process.exit(128 + (signal === 'SIGINT' ? 2 : signal === 'SIGTERM' ? 15 : 1));
    };
    process.on(signal, handler);
  }
}
