/** A snapshot file on the worker, imported into a store as a backup (a restore "from a path"). */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { pipeline } from 'node:stream/promises';
import { type BackupRecord, FailureType } from '../../workflows/contract/index.js';
import { type LocalEtcdctl, SnapshotUnreadableError } from '../etcd/local-etcdctl.js';
import { backupFailure, isBackupFailure } from './failures.js';
import type { BackupKey, BackupStore } from './store.js';

/**
 * Imports a snapshot file on this worker as backup `key`, marked as an import and described
 * by `etcdctl snapshot status`; `name` is what the record says it came from (never the path
 * on the worker). Idempotent: a backup already under that id is it. `signal` stops the copy.
 */
export async function importSnapshotFile(
  store: BackupStore,
  etcdctl: LocalEtcdctl,
  key: BackupKey,
  file: { name: string; path: string; signal?: AbortSignal },
): Promise<BackupRecord> {
  const { name, path } = file;
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
    throw backupFailure(FailureType.BackupNotFound, `no file ${name} in the import inbox`);
  }
  const status = await etcdctl.snapshotStatus(path, file.signal).catch((error: unknown) => {
    if (!(error instanceof SnapshotUnreadableError)) throw error;
    throw backupFailure(
      FailureType.BackupCorrupt,
      `${name} is not a usable etcd snapshot: ${error.message}`,
    );
  });
  await pipeline(createReadStream(path), await store.stage(key, 0), { signal: file.signal });
  return store.commit(key, {
    member: 0,
    sourcePod: `import:${name}`,
    createdAt: modified.toISOString(),
    revision: status.revision,
    totalKeys: status.totalKey,
    etcdHash: status.hash,
    origin: 'imported',
    totalKeysCountedBy: await etcdctl.tool(),
    toolVersions: {},
  });
}
