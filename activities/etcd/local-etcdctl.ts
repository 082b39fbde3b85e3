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
  snapshotStatusCommand,
} from './commands.js';

const execFileAsync = promisify(execFile);

export interface LocalEtcdctl {
  /** `snapshot status` of a file here; SnapshotUnreadableError if etcdctl cannot read it. */
  snapshotStatus(path: string): Promise<SnapshotStatus>;
}

/** etcdctl ran and refused the file: it is not a readable etcd snapshot. */
export class SnapshotUnreadableError extends Error {
  override name = 'SnapshotUnreadableError';
}

/** The worker's etcdctl (3.4) or etcdutl (3.5+): absolute paths, or names looked up in PATH. */
export function localEtcdctl(tools: EtcdTools = ETCDCTL_ONLY): LocalEtcdctl {
  const binary = tools.etcdutl ?? tools.etcdctl;
  return {
    async snapshotStatus(path) {
      const [file, ...args] = snapshotStatusCommand(path, tools) as [string, ...string[]];
      let stdout: string;
      try {
        ({ stdout } = await execFileAsync(file, args, {
          env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
          maxBuffer: 1024 * 1024,
        }));
      } catch (error) {
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
