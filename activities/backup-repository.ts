/**
 * Where backups live, outside the cluster (SPEC.md B4): an interface the activities use,
 * so storage other than the worker's file system (S3-compatible) can be added behind it.
 *
 * A backup is written in two steps so a copy interrupted anywhere can resume: `beginWrite`
 * opens (or finds again) a staging write whose current size says where to continue, and
 * `commit` seals it — checksum, manifest, then the backup appears atomically. Readers
 * (`list`, `get`) never see a backup that is not complete.
 *
 * Errors: failures that retrying cannot fix are non-retryable `ApplicationFailure`s with a
 * `BackupFailureType` (see `isBackupFailure`); anything else (I/O) may be retried.
 */
import type { Readable, Writable } from 'node:stream';
import type { BackupRecord, RetentionPolicy } from '../workflows/schemas.js';

export interface BeginWriteRequest {
  userClusterName: string;
  /** Find this backup's staging write again (creating it if missing); a new id if absent. */
  backupId?: string;
  /** Time a new id is stamped with; now if absent. */
  now?: Date;
}

export interface StagingWrite {
  /** Opaque handle for the other staging calls: `<userClusterName>/<backupId>`. */
  stagingId: string;
  userClusterName: string;
  backupId: string;
  /** The staging file on the worker, for copies that write to a path themselves. */
  path: string;
  /** Bytes already written: a resumed copy continues from this offset. */
  sizeBytes: number;
}

/**
 * What the caller knows about a snapshot when sealing it. The repository fills in id,
 * cluster and path, and computes sha256 and size; when the caller gives them (measured at
 * the source), they must match or the commit fails as corrupt.
 */
export type CommitRequest = Omit<
  BackupRecord,
  'id' | 'userClusterName' | 'snapshotPath' | 'sha256' | 'sizeBytes'
> & { sha256?: string; sizeBytes?: number };

export interface VerifiedBackup {
  record: BackupRecord;
  /** What was checked, one line each, for the operator. */
  checks: string[];
}

export interface BackupRepository {
  /** Starts a backup's staging write, or finds it again with its current size (resume). */
  beginWrite(request: BeginWriteRequest): Promise<StagingWrite>;
  /** The staging write as it is now; NotFound if it was never begun or is committed. */
  stagingStatus(stagingId: string): Promise<StagingWrite>;
  /**
   * A stream that writes the staging file from `offset` on, dropping anything after it
   * (bytes past the last confirmed offset are not trusted). `offset` ≤ current size.
   */
  openStagingWriteStream(stagingId: string, offset: number): Promise<Writable>;
  /** Discards a staging write (a failed backup); succeeds if it is already gone. */
  abortWrite(stagingId: string): Promise<void>;
  /** Seals a staging write into a backup. Idempotent: an identical committed backup is returned. */
  commit(stagingId: string, request: CommitRequest): Promise<BackupRecord>;
  /**
   * Imports a snapshot file from this machine as backup `backupId` (a restore "from a
   * path"), described by `etcdctl snapshot status`. Idempotent by id.
   */
  importFile(request: {
    userClusterName: string;
    backupId: string;
    path: string;
  }): Promise<BackupRecord>;
  /** Complete backups of a cluster, newest first. */
  list(userClusterName: string): Promise<BackupRecord[]>;
  /** One backup; when the cluster is given, only that cluster's backups are searched. */
  get(backupId: string, userClusterName?: string): Promise<BackupRecord>;
  /** The snapshot bytes from `offset` on (a resumed copy into a pod). */
  openSnapshotReadStream(
    backupId: string,
    userClusterName?: string,
    offset?: number,
  ): Promise<Readable>;
  /** Checks size and sha256 against the manifest, and `etcdctl snapshot status` against it. */
  verify(backupId: string, userClusterName?: string): Promise<VerifiedBackup>;
  /** Deletes what the policy does not keep (never the newest); returns the deleted ids. */
  prune(userClusterName: string, policy: RetentionPolicy): Promise<string[]>;
}

export { BackupFailureType, backupFailure, isBackupFailure } from './backup-repository-errors.js';
export {
  FileSystemBackupRepository,
  type FileSystemBackupRepositoryOptions,
} from './backup-repository-fs.js';
export { checkBackupId, newBackupId } from './backup-repository-ids.js';
export { backupsToKeep, isoWeek } from './backup-repository-retention.js';
