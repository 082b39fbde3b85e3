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
import type {
  AdminBackupRecord,
  AdminCommitRequest,
  BackupRecord,
  CommitRequest,
} from '../../workflows/contract/index.js';

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
  /** The admin-cluster backups of the same repository (kind `admin`, several files each). */
  readonly admin: AdminBackupStore;
}

/** One backup of one admin cluster. */
export interface AdminBackupKey {
  adminCluster: string;
  backupId: string;
}

/**
 * Admin-cluster backups (SPEC A2, A3): one backup holds several files — the admin etcd
 * snapshot and the node's PKI tree — under relative paths (`admin-cluster_snapshot.db`,
 * `pki/ca.key`). Staged and committed as user-cluster backups are; they are listed, pruned
 * and deleted apart from them, so user-cluster retention never sees them.
 */
export interface AdminBackupStore {
  /** Bytes staged so far of one file of the backup (0 if none). */
  stagedFileBytes(key: AdminBackupKey, file: string): Promise<number>;
  readStagedFile(key: AdminBackupKey, file: string): Promise<Readable>;
  /** Writes one staged file from `offset` (≤ its staged bytes) on; parent directories are made. */
  stageFile(key: AdminBackupKey, file: string, offset: number): Promise<Writable>;
  stageDirectory(key: AdminBackupKey, dir: string): Promise<void>;
  /** Drops a staged file or directory tree (a copy that starts again); gone is success. */
  discardStaged(key: AdminBackupKey, path: string): Promise<void>;
  /** Drops the whole staged backup; gone is success. */
  abort(key: AdminBackupKey): Promise<void>;
  /**
   * Seals the staged files into a backup. Every file the request lists must be staged with
   * its size and sha256, and nothing else may be. Idempotent, as for user-cluster backups.
   */
  commit(key: AdminBackupKey, request: AdminCommitRequest): Promise<AdminBackupRecord>;
  get(key: AdminBackupKey): Promise<AdminBackupRecord>;
  /** A committed file's bytes from `offset` on. */
  read(key: AdminBackupKey, file: string, offset?: number): Promise<Readable>;
  /** Committed admin backups of an admin cluster, newest first. */
  list(adminCluster: string): Promise<AdminBackupRecord[]>;
  delete(key: AdminBackupKey): Promise<void>;
  /** A committed file on this machine, for tools that need one (etcdctl). */
  localFile?(key: AdminBackupKey, file: string): Promise<string>;
}

/** The store of the repository a request names: the dependency activities get. */
export interface BackupStores {
  forRepository(ref: { repository: string }): BackupStore;
}
