/**
 * Where backups live, outside the cluster (SPEC.md B4): a narrow stream interface, like
 * gardener/etcd-backup-restore's SnapStore, so a store other than the worker's file system
 * (an S3-compatible bucket) can be added without touching a workflow. What a backup *is*
 * — its verification with etcdctl, retention — lives outside the store (verify.ts,
 * retention.ts, activities.ts).
 *
 * A backup is written in two steps so a copy interrupted anywhere can resume: `stage`
 * writes (or continues) its snapshot from an offset, `commit` seals it — checksum, manifest,
 * then the backup appears atomically. Readers (`list`, `get`, `read`) never see a backup
 * that is not complete.
 *
 * Errors: what retrying cannot fix is a non-retryable ApplicationFailure with one of the
 * backup failure types (failures.ts); anything else (I/O) may be retried.
 */
import type { Readable, Writable } from 'node:stream';
import type { BackupRecord, CommitRequest } from '../../workflows/contract/index.js';

/** One backup of one user cluster. */
export interface BackupKey {
  userClusterName: string;
  backupId: string;
}

export interface BackupStore {
  /** Where the backups are, for people (a directory, a bucket URL). */
  readonly location: string;
  /** Bytes staged so far for this backup (0 if none): where a resumed write continues. */
  stagedBytes(key: BackupKey): Promise<number>;
  /** The staged bytes, from the start (a resumed copy hashes what it already has). */
  readStaged(key: BackupKey): Promise<Readable>;
  /**
   * A stream that writes the staged snapshot from `offset` (≤ stagedBytes) on, dropping
   * anything after it; it finishes once the bytes are durable. Conflict if committed.
   */
  stage(key: BackupKey, offset: number): Promise<Writable>;
  /** Drops a staged write (a failed backup); succeeds if it is already gone. */
  abort(key: BackupKey): Promise<void>;
  /** Seals the staged snapshot into a backup. Idempotent: an identical commit returns it. */
  commit(key: BackupKey, request: CommitRequest): Promise<BackupRecord>;
  /** A committed backup's manifest; BackupNotFound if there is none. */
  get(key: BackupKey): Promise<BackupRecord>;
  /** The committed snapshot's bytes from `offset` on. */
  read(key: BackupKey, offset?: number): Promise<Readable>;
  /** Committed backups of a cluster, newest first (unreadable manifests are skipped). */
  list(userClusterName: string): Promise<BackupRecord[]>;
  /** Deletes a committed backup; succeeds if it is already gone. */
  delete(key: BackupKey): Promise<void>;
  /**
   * The committed snapshot as a file on this machine, for tools that need one (etcdctl):
   * stores that keep files locally have it; others leave it out (verify.ts then downloads).
   */
  localFile?(key: BackupKey): Promise<string>;
}

/** The store of the repository a request names: the dependency activities get. */
export interface BackupStores {
  forRepository(ref: { repository: string }): BackupStore;
}
