/**
 * etcdctl on the worker itself, for what reads a snapshot file on this machine
 * (`snapshot status`): a dependency of the activities, so tests and other deployments can
 * give their own binary.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { SnapshotStatus } from '../../workflows/contract/index.js';
import {
  ETCDCTL_ONLY,
  type EtcdTools,
  parseSnapshotStatus,
  parseToolVersion,
  snapshotStatusCommand,
} from './commands.js';

const execFileAsync = promisify(execFile);

/** `snapshot status` reads the whole file (it hashes it): minutes for gigabytes, not hours. */
const STATUS_TIMEOUT_MS = 30 * 60_000;

export interface LocalEtcdctl {
  /**
   * `snapshot status` of a file here; SnapshotUnreadableError if etcdctl cannot read it.
   * Stopped when `signal` aborts, and after STATUS_TIMEOUT_MS.
   */
  snapshotStatus(path: string, signal?: AbortSignal): Promise<SnapshotStatus>;
  /** The binary and version that read it, e.g. `etcdctl 3.4.23` (totalKey's meaning depends on it). */
  tool(): Promise<string>;
}

/** etcdctl ran and refused the file: it is not a readable etcd snapshot. */
export class SnapshotUnreadableError extends Error {
  override name = 'SnapshotUnreadableError';
}

/** The worker's etcdctl (3.4) or etcdutl (3.5+): absolute paths, or names looked up in PATH. */
export function localEtcdctl(tools: EtcdTools = ETCDCTL_ONLY): LocalEtcdctl {
  const binary = tools.etcdutl ?? tools.etcdctl;
  const name = tools.etcdutl ? 'etcdutl' : 'etcdctl';
  let version: Promise<string> | undefined;
  return {
    tool() {
      version ??= execFileAsync(binary, ['version'], {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
      }).then(({ stdout }) => `${name} ${parseToolVersion(name, stdout)}`);
      return version;
    },
    async snapshotStatus(path, signal) {
      const [file, ...args] = snapshotStatusCommand(path, tools) as [string, ...string[]];
      let stdout: string;
      try {
        ({ stdout } = await execFileAsync(file, args, {
          env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
          maxBuffer: 1024 * 1024,
          timeout: STATUS_TIMEOUT_MS,
          ...(signal ? { signal } : {}),
        }));
      } catch (error) {
        // Cancelled: not a verdict on the file.
        if (signal?.aborted) throw signal.reason;
        if ((error as { killed?: boolean }).killed) {
          throw new Error(
            `${binary} snapshot status did not finish in ${STATUS_TIMEOUT_MS / 60_000} min`,
          );
        }
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
          throw new Error(`cannot verify snapshots: ${binary} is not installed on this worker`);
        }
        const stderr = (error as { stderr?: unknown }).stderr;
        throw new SnapshotUnreadableError(
          `etcdctl snapshot status failed: ${String(stderr || error)
            .trim()
            .slice(-500)}`,
        );
      }
      return parseSnapshotStatus(stdout);
    },
  };
}
