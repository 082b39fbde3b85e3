/** A snapshot file on the worker, imported into a store as a backup (a restore "from a path"). */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { type BackupRecord, FailureType } from '../../workflows/contract/index.js';
import { type LocalEtcdctl, SnapshotUnreadableError } from '../etcd/local-etcdctl.js';
import { backupFailure, isBackupFailure } from './failures.js';
import type { BackupKey, BackupStore } from './store.js';

/**
 * Imports a snapshot file on this worker as backup `key` (a restore "from a path"),
 * described by `etcdctl snapshot status`. Idempotent: a backup already under that id is it.
 */
export async function importSnapshotFile(
  store: BackupStore,
  etcdctl: LocalEtcdctl,
  key: BackupKey,
  path: string,
): Promise<BackupRecord> {
  try {
    return await store.get(key);
  } catch (error) {
    if (!isBackupFailure(error, FailureType.BackupNotFound)) throw error;
  }
  let modified: Date;
  try {
    modified = (await stat(path)).mtime;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    throw backupFailure(FailureType.BackupNotFound, `no snapshot file ${path} on this worker`);
  }
  const status = await etcdctl.snapshotStatus(path).catch((error: unknown) => {
    if (!(error instanceof SnapshotUnreadableError)) throw error;
    throw backupFailure(
      FailureType.BackupCorrupt,
      `${path} is not a usable etcd snapshot: ${error.message}`,
    );
  });
  await pipeline(createReadStream(path), await store.stage(key, 0));
  return store.commit(key, {
    member: 0,
    sourcePod: `file:${path}`,
    createdAt: modified.toISOString(),
    revision: status.revision,
    totalKeys: status.totalKey,
    etcdHash: status.hash,
    toolVersions: {},
  });
}
