/**
 * The backup repository on the worker's file system.
 *
 *   <root>/<userClusterName>/<backupId>/snapshot.db      complete backups (0700 dirs, 0600 files)
 *   <root>/<userClusterName>/<backupId>/manifest.json    the BackupRecord
 *   <root>/<userClusterName>/.staging/<backupId>/        writes in progress
 *   <root>/<userClusterName>/.deleting/<backupId>/       pruning in progress
 *
 * A backup appears by renaming its staging directory, manifest included, into place; it
 * disappears by renaming it out first. So a directory with a valid manifest is always a
 * complete backup, whatever instant a crash happened at.
 */
import { execFile } from 'node:child_process';
import { copyFile, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { promisify } from 'node:util';
import {
  type BackupRecord,
  backupRecordSchema,
  describeIssues,
  type RetentionPolicy,
  retentionPolicySchema,
} from '../workflows/schemas.js';
import type {
  BackupRepository,
  BeginWriteRequest,
  CommitRequest,
  StagingWrite,
  VerifiedBackup,
} from './backup-repository.js';
import { BackupFailureType, backupFailure, isBackupFailure } from './backup-repository-errors.js';
import {
  ensurePrivateDir,
  fsyncPath,
  isErrno,
  sha256OfFile,
  touchPrivateFile,
  writePrivateFileAtomic,
} from './backup-repository-fs-io.js';
import { checkBackupId, checkClusterName, newBackupId } from './backup-repository-ids.js';
import { backupsToKeep, newestFirst } from './backup-repository-retention.js';
import { parseSnapshotStatus, snapshotStatusCommand } from './etcd-commands.js';

const execFileAsync = promisify(execFile);

const SNAPSHOT = 'snapshot.db';
const MANIFEST = 'manifest.json';
const STAGING = '.staging';
const DELETING = '.deleting';

export interface FileSystemBackupRepositoryOptions {
  /** Absolute directory on the worker, outside the cluster (B4). Created 0700 if missing. */
  root: string;
  /** etcdctl used by `verify` on the worker; `etcdctl` from PATH by default. */
  etcdctl?: string;
}

export class FileSystemBackupRepository implements BackupRepository {
  readonly root: string;
  private readonly etcdctl: string;

  constructor(options: FileSystemBackupRepositoryOptions) {
    if (!isAbsolute(options.root)) {
      throw new Error(`backup repository root must be an absolute path, got ${options.root}`);
    }
    this.root = resolve(options.root);
    this.etcdctl = options.etcdctl ?? 'etcdctl';
  }

  async beginWrite(request: BeginWriteRequest): Promise<StagingWrite> {
    const cluster = checkClusterName(request.userClusterName);
    const backupId = checkBackupId(request.backupId ?? newBackupId(request.now));
    if (await this.readManifest(cluster, backupId)) {
      throw backupFailure(
        BackupFailureType.Conflict,
        `backup ${backupId} of ${cluster} is already committed; start a new one`,
      );
    }
    const dir = this.stagingDir(cluster, backupId);
    await ensurePrivateDir(this.root);
    await ensurePrivateDir(this.clusterDir(cluster));
    await ensurePrivateDir(join(this.clusterDir(cluster), STAGING));
    await ensurePrivateDir(dir);
    await touchPrivateFile(join(dir, SNAPSHOT));
    return this.stagingStatus(`${cluster}/${backupId}`);
  }

  async stagingStatus(stagingId: string): Promise<StagingWrite> {
    const { cluster, backupId } = parseStagingId(stagingId);
    const path = join(this.stagingDir(cluster, backupId), SNAPSHOT);
    try {
      const { size } = await stat(path);
      return { stagingId, userClusterName: cluster, backupId, path, sizeBytes: size };
    } catch (error) {
      if (!isErrno(error, 'ENOENT')) throw error;
      throw backupFailure(BackupFailureType.NotFound, `no staging write ${stagingId}`);
    }
  }

  async openStagingWriteStream(stagingId: string, offset: number): Promise<Writable> {
    const staging = await this.stagingStatus(stagingId);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > staging.sizeBytes) {
      throw backupFailure(
        BackupFailureType.InvalidArgument,
        `cannot write ${stagingId} from offset ${offset}: it holds ${staging.sizeBytes} bytes`,
      );
    }
    const handle = await open(staging.path, 'r+');
    try {
      await handle.truncate(offset);
    } catch (error) {
      await handle.close();
      throw error;
    }
    return handle.createWriteStream({ start: offset });
  }

  async abortWrite(stagingId: string): Promise<void> {
    const { cluster, backupId } = parseStagingId(stagingId);
    await rm(this.stagingDir(cluster, backupId), { recursive: true, force: true });
  }

  async commit(stagingId: string, request: CommitRequest): Promise<BackupRecord> {
    const { cluster, backupId } = parseStagingId(stagingId);
    const committed = await this.readManifest(cluster, backupId);
    if (committed) return sameBackupOrConflict(committed, request);

    const staging = await this.stagingStatus(stagingId);
    const dir = this.stagingDir(cluster, backupId);
    await fsyncPath(staging.path);
    const sha256 = await sha256OfFile(staging.path);
    const { size } = await stat(staging.path);
    if (request.sha256 !== undefined && request.sha256 !== sha256) {
      throw backupFailure(
        BackupFailureType.Corrupt,
        `staged snapshot ${stagingId} has sha256 ${sha256}, the source reported ${request.sha256}`,
      );
    }
    if (request.sizeBytes !== undefined && request.sizeBytes !== size) {
      throw backupFailure(
        BackupFailureType.Corrupt,
        `staged snapshot ${stagingId} has ${size} bytes, the source reported ${request.sizeBytes}`,
      );
    }
    const finalDir = this.backupDir(cluster, backupId);
    const parsed = backupRecordSchema.safeParse({
      ...request,
      id: backupId,
      userClusterName: cluster,
      sha256,
      sizeBytes: size,
      snapshotPath: join(finalDir, SNAPSHOT),
    });
    if (!parsed.success) {
      throw backupFailure(
        BackupFailureType.InvalidArgument,
        `cannot commit ${stagingId}: ${describeIssues(parsed.error)}`,
      );
    }
    await writePrivateFileAtomic(dir, MANIFEST, `${JSON.stringify(parsed.data, null, 2)}\n`);
    try {
      await rename(dir, finalDir);
    } catch (error) {
      // Another commit of the same id got there first: fine if it is the same backup.
      if (!isErrno(error, 'ENOTEMPTY', 'EEXIST')) throw error;
      const winner = await this.readManifest(cluster, backupId);
      if (!winner) throw error;
      return sameBackupOrConflict(winner, request);
    }
    await fsyncPath(this.clusterDir(cluster));
    await fsyncPath(join(this.clusterDir(cluster), STAGING));
    return parsed.data;
  }

  async importFile(request: {
    userClusterName: string;
    backupId: string;
    path: string;
  }): Promise<BackupRecord> {
    const cluster = checkClusterName(request.userClusterName);
    const backupId = checkBackupId(request.backupId);
    const committed = await this.readManifest(cluster, backupId);
    if (committed) return committed;
    const corrupt = (message: string) =>
      backupFailure(
        BackupFailureType.Corrupt,
        `${request.path} is not a usable etcd snapshot: ${message}`,
      );
    let modified: Date;
    try {
      modified = (await stat(request.path)).mtime;
    } catch (error) {
      if (!isErrno(error, 'ENOENT')) throw error;
      throw backupFailure(
        BackupFailureType.NotFound,
        `no snapshot file ${request.path} on this worker`,
      );
    }
    const status = parseSnapshotStatus(await this.snapshotStatus(request.path, corrupt));
    const staging = await this.beginWrite({ userClusterName: cluster, backupId });
    await copyFile(request.path, staging.path);
    return this.commit(staging.stagingId, {
      member: 0,
      sourcePod: `file:${request.path}`,
      createdAt: modified.toISOString(),
      revision: status.revision,
      totalKeys: status.totalKey,
      etcdHash: status.hash,
      toolVersions: {},
    });
  }

  /** Skips directories without a manifest (incomplete) and with an unreadable one. */
  async list(userClusterName: string): Promise<BackupRecord[]> {
    const cluster = checkClusterName(userClusterName);
    const records: BackupRecord[] = [];
    for (const name of await subdirectories(this.clusterDir(cluster))) {
      if (!isBackupDirName(name)) continue;
      try {
        const record = await this.readManifest(cluster, name);
        if (record) records.push(record);
      } catch (error) {
        if (!isBackupFailure(error, BackupFailureType.Corrupt)) throw error;
      }
    }
    return newestFirst(records);
  }

  async get(backupId: string, userClusterName?: string): Promise<BackupRecord> {
    const id = checkBackupId(backupId);
    const clusters =
      userClusterName === undefined
        ? (await subdirectories(this.root)).filter(isClusterDirName)
        : [checkClusterName(userClusterName)];
    const found: BackupRecord[] = [];
    for (const cluster of clusters) {
      const record = await this.readManifest(cluster, id);
      if (record) found.push(record);
    }
    const [record, other] = found;
    if (!record) {
      const where = userClusterName === undefined ? '' : ` of user cluster ${userClusterName}`;
      throw backupFailure(BackupFailureType.NotFound, `no backup ${id}${where} in ${this.root}`);
    }
    if (other) {
      throw backupFailure(
        BackupFailureType.Conflict,
        `backup id ${id} exists for clusters ${found.map((r) => r.userClusterName).join(', ')}; name the cluster`,
      );
    }
    return record;
  }

  async openSnapshotReadStream(
    backupId: string,
    userClusterName?: string,
    offset = 0,
  ): Promise<Readable> {
    const record = await this.get(backupId, userClusterName);
    const handle = await open(record.snapshotPath, 'r');
    return handle.createReadStream({ start: offset });
  }

  async verify(backupId: string, userClusterName?: string): Promise<VerifiedBackup> {
    const record = await this.get(backupId, userClusterName);
    const what = `backup ${record.id} of ${record.userClusterName}`;
    const corrupt = (message: string) =>
      backupFailure(BackupFailureType.Corrupt, `${what} is corrupt: ${message}`);

    let size: number;
    try {
      size = (await stat(record.snapshotPath)).size;
    } catch (error) {
      if (!isErrno(error, 'ENOENT')) throw error;
      throw corrupt(`${record.snapshotPath} is missing`);
    }
    if (size !== record.sizeBytes) {
      throw corrupt(`${SNAPSHOT} has ${size} bytes, the manifest says ${record.sizeBytes}`);
    }
    const sha256 = await sha256OfFile(record.snapshotPath);
    if (sha256 !== record.sha256) {
      throw corrupt(`${SNAPSHOT} has sha256 ${sha256}, the manifest says ${record.sha256}`);
    }

    const status = parseSnapshotStatus(await this.snapshotStatus(record.snapshotPath, corrupt));
    const expected = {
      hash: record.etcdHash,
      revision: record.revision,
      totalKey: record.totalKeys,
    };
    for (const [field, value] of Object.entries(expected) as [keyof typeof expected, number][]) {
      if (status[field] !== value) {
        throw corrupt(
          `etcdctl snapshot status reports ${field} ${status[field]}, the manifest says ${value}`,
        );
      }
    }
    return {
      record,
      checks: [
        `${SNAPSHOT}: ${size} bytes, sha256 ${sha256} as in the manifest`,
        `etcdctl snapshot status: hash ${status.hash}, revision ${status.revision}, ${status.totalKey} keys as in the manifest`,
      ],
    };
  }

  async prune(userClusterName: string, policy: RetentionPolicy): Promise<string[]> {
    const cluster = checkClusterName(userClusterName);
    const backups = await this.list(cluster);
    const keep = backupsToKeep(backups, retentionPolicySchema.parse(policy));
    const deleting = join(this.clusterDir(cluster), DELETING);
    // Finish deletions a crash interrupted: those backups were already out of sight.
    for (const name of await subdirectories(deleting)) {
      await rm(join(deleting, name), { recursive: true, force: true });
    }
    const deleted: string[] = [];
    for (const record of backups) {
      if (keep.has(record.id)) continue;
      await ensurePrivateDir(deleting);
      // Out of sight first (atomic), then removed: never a half-deleted backup in the list.
      await rename(this.backupDir(cluster, record.id), join(deleting, record.id));
      await rm(join(deleting, record.id), { recursive: true, force: true });
      deleted.push(record.id);
    }
    if (deleted.length > 0) await fsyncPath(this.clusterDir(cluster));
    return deleted;
  }

  private clusterDir(cluster: string): string {
    return join(this.root, cluster);
  }

  private backupDir(cluster: string, backupId: string): string {
    return join(this.root, cluster, backupId);
  }

  private stagingDir(cluster: string, backupId: string): string {
    return join(this.root, cluster, STAGING, backupId);
  }

  /** The committed backup's record; undefined if there is none; Corrupt if unreadable. */
  private async readManifest(cluster: string, backupId: string): Promise<BackupRecord | undefined> {
    const dir = this.backupDir(cluster, backupId);
    let text: string;
    try {
      text = await readFile(join(dir, MANIFEST), 'utf8');
    } catch (error) {
      if (isErrno(error, 'ENOENT', 'ENOTDIR')) return undefined;
      throw error;
    }
    const corrupt = (message: string) =>
      backupFailure(
        BackupFailureType.Corrupt,
        `manifest of backup ${backupId} of ${cluster}: ${message}`,
      );
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw corrupt('not JSON');
    }
    const parsed = backupRecordSchema.safeParse(json);
    if (!parsed.success) throw corrupt(describeIssues(parsed.error));
    if (parsed.data.id !== backupId || parsed.data.userClusterName !== cluster) {
      throw corrupt(`it describes ${parsed.data.id} of ${parsed.data.userClusterName}`);
    }
    // Where the file is now: the repository may have been moved since the commit.
    return { ...parsed.data, snapshotPath: join(dir, SNAPSHOT) };
  }

  /** Runs `etcdctl snapshot status -w json` locally; a file etcdctl cannot read is corrupt. */
  private async snapshotStatus(path: string, corrupt: (message: string) => Error): Promise<string> {
    const { argv, env } = snapshotStatusCommand(path, { etcdctl: this.etcdctl });
    const [file, ...args] = argv as [string, ...string[]];
    try {
      const { stdout } = await execFileAsync(file, args, {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
        maxBuffer: 1024 * 1024,
      });
      return stdout;
    } catch (error) {
      if (isErrno(error, 'ENOENT')) {
        throw new Error(`cannot verify snapshots: ${this.etcdctl} is not installed on this worker`);
      }
      const stderr = (error as { stderr?: unknown }).stderr;
      throw corrupt(
        `etcdctl snapshot status failed: ${String(stderr || error)
          .trim()
          .slice(-500)}`,
      );
    }
  }
}

function parseStagingId(stagingId: string): { cluster: string; backupId: string } {
  const [cluster, backupId, ...rest] = stagingId.split('/');
  if (cluster === undefined || backupId === undefined || rest.length > 0) {
    throw backupFailure(
      BackupFailureType.InvalidArgument,
      `invalid staging id ${JSON.stringify(stagingId)}: expected <userClusterName>/<backupId>`,
    );
  }
  return { cluster: checkClusterName(cluster), backupId: checkBackupId(backupId) };
}

/** A retried commit succeeds if it describes the backup already there. */
function sameBackupOrConflict(committed: BackupRecord, request: CommitRequest): BackupRecord {
  const differences = (Object.keys(request) as (keyof CommitRequest)[]).filter(
    (field) =>
      request[field] !== undefined && canonical(request[field]) !== canonical(committed[field]),
  );
  if (differences.length > 0) {
    throw backupFailure(
      BackupFailureType.Conflict,
      `backup ${committed.id} of ${committed.userClusterName} is already committed with different ${differences.join(', ')}`,
    );
  }
  return committed;
}

/** JSON with object keys sorted, so equal records compare equal. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

async function subdirectories(dir: string): Promise<string[]> {
  try {
    const entries = await readdir(dir, { withFileTypes: true });
    return entries.filter((e) => e.isDirectory()).map((e) => e.name);
  } catch (error) {
    if (isErrno(error, 'ENOENT')) return [];
    throw error;
  }
}

function isBackupDirName(name: string): boolean {
  return /^[A-Za-z0-9._-]+$/.test(name) && !name.startsWith('.');
}

function isClusterDirName(name: string): boolean {
  return /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name);
}
