/**
 * Verifying a stored backup, outside the store: its bytes against the manifest (size,
 * sha256) and etcd's own reading of them (`etcdctl snapshot status`: hash, revision, keys).
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import {
  countsLiveKeys,
  FailureType,
  type SnapshotStatus,
  type VerifiedBackup,
} from '../../workflows/contract/index.js';
import { type LocalEtcdctl, SnapshotUnreadableError } from '../etcd/local-etcdctl.js';
import { backupFailure } from './failures.js';
import type { BackupKey, BackupStore } from './store.js';

/** How a verification reports the bytes hashed, and learns it is no longer wanted. */
export interface VerifyOptions {
  onProgress?: (p: { bytesDone: number; totalBytes: number }) => void;
  signal?: AbortSignal;
}

export async function verifyStoredBackup(
  store: BackupStore,
  etcdctl: LocalEtcdctl,
  key: BackupKey,
  { onProgress, signal }: VerifyOptions = {},
): Promise<VerifiedBackup> {
  const record = await store.get(key);
  const corrupt = (message: string) =>
    backupFailure(
      FailureType.BackupCorrupt,
      `backup ${record.id} of ${record.userClusterName} is corrupt: ${message}`,
    );

  const hashStored = async () => {
    let size = 0;
    const hash = createHash('sha256');
    let reported = 0;
    for await (const chunk of await store.read(key)) {
      signal?.throwIfAborted();
      size += (chunk as Buffer).length;
      hash.update(chunk as Buffer);
      // A hash of gigabytes takes a while: say how far it is, every 64 MiB.
      if (size - reported >= 64 * 1024 * 1024) {
        reported = size;
        onProgress?.({ bytesDone: size, totalBytes: record.sizeBytes });
      }
    }
    return { size, sha256: hash.digest('hex') };
  };
  // The hash here and etcd's reading in its own process run side by side (the same file,
  // mostly from the page cache); the bytes' verdict comes first, and a failed or wrong
  // hash stops etcd's reading rather than waiting for it.
  const reading = new AbortController();
  const stopReading = () => reading.abort(signal?.reason);
  signal?.addEventListener('abort', stopReading, { once: true });
  const read = withLocalFile(store, key, (path) =>
    etcdctl.snapshotStatus(path, reading.signal),
  ).then(
    (status) => ({ status }),
    (error: unknown) => ({ error }),
  );
  let checked: { size: number; sha256: string; status: SnapshotStatus };
  try {
    const { size, sha256 } = await hashStored();
    if (size !== record.sizeBytes) {
      throw corrupt(`the snapshot has ${size} bytes, the manifest says ${record.sizeBytes}`);
    }
    if (sha256 !== record.sha256) {
      throw corrupt(`the snapshot has sha256 ${sha256}, the manifest says ${record.sha256}`);
    }
    const outcome = await read;
    if ('error' in outcome) {
      throw outcome.error instanceof SnapshotUnreadableError
        ? corrupt(outcome.error.message)
        : outcome.error;
    }
    checked = { size, sha256, status: outcome.status };
  } catch (error) {
    reading.abort(error);
    await read;
    throw error;
  } finally {
    signal?.removeEventListener('abort', stopReading);
  }
  const { size, sha256, status } = checked;
  const { mismatch, line: statusLine } = compareSnapshotStatus(status, await etcdctl.tool(), {
    hash: record.etcdHash,
    revision: record.revision,
    totalKeys: record.totalKeys,
    ...(record.totalKeysCountedBy ? { countedBy: record.totalKeysCountedBy } : {}),
  });
  if (mismatch) throw corrupt(mismatch);
  return {
    record,
    checks: [`snapshot: ${size} bytes, sha256 ${sha256} as in the manifest`, statusLine],
  };
}

/**
 * etcd's reading of a snapshot here (by `tool`) against what its manifest recorded: hash
 * and revision, and totalKey where comparable — etcdutl 3.6 counts live keys, older tools
 * every bbolt entry, so a count made by a tool of the other kind is not compared (the line
 * says so). `mismatch` names the field that differs; `line` is for the operator.
 */
export function compareSnapshotStatus(
  status: SnapshotStatus,
  tool: string,
  recorded: { hash: number; revision: number; totalKeys: number; countedBy?: string },
): { mismatch?: string; line: string } {
  const { countedBy } = recorded;
  const keysComparable =
    countedBy === undefined || countsLiveKeys(countedBy) === countsLiveKeys(tool);
  const expected = {
    hash: recorded.hash,
    revision: recorded.revision,
    ...(keysComparable ? { totalKey: recorded.totalKeys } : {}),
  };
  for (const [field, value] of Object.entries(expected) as [keyof typeof expected, number][]) {
    if (status[field] !== value)
      return {
        mismatch: `${tool} snapshot status reports ${field} ${status[field]}, the manifest says ${value}`,
        line: '',
      };
  }
  return {
    line: keysComparable
      ? `${tool} snapshot status: hash ${status.hash}, revision ${status.revision}, ${status.totalKey} keys as in the manifest`
      : `${tool} snapshot status: hash ${status.hash}, revision ${status.revision} as in the manifest ` +
        `(${status.totalKey} keys, not compared: ${countedBy} counted ${recorded.totalKeys} its own way)`,
  };
}

/** Runs `use` on the snapshot as a local file: the store's own, or a temporary download. */
async function withLocalFile<T>(
  store: BackupStore,
  key: BackupKey,
  use: (path: string) => Promise<T>,
): Promise<T> {
  if (store.localFile) return use(await store.localFile(key));
  const dir = await mkdtemp(join(tmpdir(), 'etcd-backup-verify-'));
  try {
    const path = join(dir, 'snapshot.db');
    await pipeline(await store.read(key), createWriteStream(path, { mode: 0o600 }));
    return await use(path);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
