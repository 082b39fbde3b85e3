/**
 * The backup store on the worker's file system.
 *
 *   <root>/<userClusterName>/<backupId>/snapshot.db      complete backups (0700 dirs, 0600 files)
 *   <root>/<userClusterName>/<backupId>/manifest.json    the BackupRecord
 *   <root>/<userClusterName>/.staging/<backupId>/        writes in progress
 *   <root>/<userClusterName>/.deleting/<backupId>/       deletions in progress
 *   <root>/.admin/<adminCluster>/...                      admin-cluster backups (fs-admin-store.ts)
 *
 * A backup appears by renaming its staging directory, manifest included, into place; it
 * disappears by renaming it out first. So a directory with a valid manifest is always a
 * complete backup, whatever instant a crash happened at.
 */
import { createReadStream } from 'node:fs';
import { open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { isAbsolute, join, resolve } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import {
  type BackupRecord,
  backupRecordSchema,
  type CommitRequest,
  describeIssues,
  dnsLabel,
  FailureType,
  isBackupId,
} from '../../workflows/contract/index.js';
import type { WorkerTargets } from '../config/targets.js';
import { canonicalJson } from '../json.js';
import { backupFailure, isBackupFailure } from './failures.js';
import { FileSystemAdminBackupStore } from './fs-admin-store.js';
import {
  ensurePrivateDir,
  fsyncPath,
  isErrno,
  sha256OfFile,
  touchPrivateFile,
  writePrivateFileAtomic,
} from './fs-io.js';
import { newestFirst } from './retention.js';
import type { AdminBackupStore, BackupKey, BackupStore, BackupStores } from './store.js';

const SNAPSHOT = 'snapshot.db';
const MANIFEST = 'manifest.json';
const STAGING = '.staging';
const DELETING = '.deleting';

export class FileSystemBackupStore implements BackupStore {
  readonly root: string;
  readonly admin: AdminBackupStore;

  /** `root`: an absolute directory on the worker, outside the cluster (B4); created 0700. */
  constructor(root: string) {
    if (!isAbsolute(root)) {
      throw new Error(`backup repository root must be an absolute path, got ${root}`);
    }
    this.root = resolve(root);
    this.admin = new FileSystemAdminBackupStore(this.root);
  }

  get location(): string {
    return this.root;
  }

  async stagedBytes(key: BackupKey): Promise<number> {
    const { cluster, backupId } = checkKey(key);
    try {
      return (await stat(this.stagedFile(cluster, backupId))).size;
    } catch (error) {
      if (isErrno(error, 'ENOENT')) return 0;
      throw error;
    }
  }

  async readStaged(key: BackupKey): Promise<Readable> {
    const { cluster, backupId } = checkKey(key);
    return createReadStream(this.stagedFile(cluster, backupId));
  }

  async stage(key: BackupKey, offset: number): Promise<Writable> {
    const { cluster, backupId } = checkKey(key);
    if (await this.readManifest(cluster, backupId)) {
      throw backupFailure(
        FailureType.BackupConflict,
        `backup ${backupId} of ${cluster} is already committed; start a new one`,
      );
    }
    const dir = this.stagingDir(cluster, backupId);
    for (const d of [this.root, this.clusterDir(cluster), join(this.clusterDir(cluster), STAGING)])
      await ensurePrivateDir(d);
    await ensurePrivateDir(dir);
    const file = join(dir, SNAPSHOT);
    await touchPrivateFile(file);
    const { size } = await stat(file);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > size) {
      throw backupFailure(
        FailureType.BackupInvalidArgument,
        `cannot write ${cluster}/${backupId} from offset ${offset}: it holds ${size} bytes`,
      );
    }
    const handle = await open(file, 'r+');
    try {
      await handle.truncate(offset);
    } catch (error) {
      await handle.close();
      throw error;
    }
    return handle.createWriteStream({ start: offset, flush: true, highWaterMark: 1 << 20 });
  }

  async abort(key: BackupKey): Promise<void> {
    const { cluster, backupId } = checkKey(key);
    await rm(this.stagingDir(cluster, backupId), { recursive: true, force: true });
  }

  async commit(key: BackupKey, request: CommitRequest): Promise<BackupRecord> {
    const { cluster, backupId } = checkKey(key);
    const committed = await this.readManifest(cluster, backupId);
    if (committed) return sameBackupOrConflict(committed, request);

    const dir = this.stagingDir(cluster, backupId);
    const staged = join(dir, SNAPSHOT);
    let size: number;
    try {
      size = (await stat(staged)).size;
    } catch (error) {
      if (!isErrno(error, 'ENOENT')) throw error;
      throw backupFailure(FailureType.BackupNotFound, `nothing staged for ${cluster}/${backupId}`);
    }
    await fsyncPath(staged);
    const sha256 = await sha256OfFile(staged);
    if (request.sha256 !== undefined && request.sha256 !== sha256) {
      throw backupFailure(
        FailureType.BackupCorrupt,
        `staged snapshot ${cluster}/${backupId} has sha256 ${sha256}, the source reported ${request.sha256}`,
      );
    }
    if (request.sizeBytes !== undefined && request.sizeBytes !== size) {
      throw backupFailure(
        FailureType.BackupCorrupt,
        `staged snapshot ${cluster}/${backupId} has ${size} bytes, the source reported ${request.sizeBytes}`,
      );
    }
    const parsed = backupRecordSchema.safeParse({
      ...request,
      id: backupId,
      userClusterName: cluster,
      sha256,
      sizeBytes: size,
    });
    if (!parsed.success) {
      throw backupFailure(
        FailureType.BackupInvalidArgument,
        `cannot commit ${cluster}/${backupId}: ${describeIssues(parsed.error)}`,
      );
    }
    await writePrivateFileAtomic(dir, MANIFEST, `${JSON.stringify(parsed.data, null, 2)}\n`);
    try {
      await rename(dir, this.backupDir(cluster, backupId));
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

  async get(key: BackupKey): Promise<BackupRecord> {
    const { cluster, backupId } = checkKey(key);
    const record = await this.readManifest(cluster, backupId);
    if (!record) {
      throw backupFailure(
        FailureType.BackupNotFound,
        `no backup ${backupId} of user cluster ${cluster} in ${this.root}`,
      );
    }
    return record;
  }

  async read(key: BackupKey, offset = 0): Promise<Readable> {
    const handle = await open(await this.localFile(key), 'r');
    return handle.createReadStream({ start: offset, highWaterMark: 1 << 20 });
  }

  async localFile(key: BackupKey): Promise<string> {
    const record = await this.get(key);
    return join(this.backupDir(record.userClusterName, record.id), SNAPSHOT);
  }

  async list(userClusterName: string): Promise<BackupRecord[]> {
    const cluster = checkClusterName(userClusterName);
    const records: BackupRecord[] = [];
    for (const name of await subdirectories(this.clusterDir(cluster))) {
      if (!isBackupId(name)) continue;
      try {
        const record = await this.readManifest(cluster, name);
        if (record) records.push(record);
      } catch (error) {
        if (!isBackupFailure(error, FailureType.BackupCorrupt)) throw error;
      }
    }
    return newestFirst(records);
  }

  async delete(key: BackupKey): Promise<void> {
    const { cluster, backupId } = checkKey(key);
    const deleting = join(this.clusterDir(cluster), DELETING);
    await ensurePrivateDir(deleting);
    // Out of sight first (atomic), then removed: never a half-deleted backup in the list.
    try {
      await rename(this.backupDir(cluster, backupId), join(deleting, backupId));
      await fsyncPath(this.clusterDir(cluster));
    } catch (error) {
      if (!isErrno(error, 'ENOENT')) throw error;
    }
    // Also finishes deletions a crash interrupted: those backups were already out of sight.
    for (const name of await subdirectories(deleting)) {
      await rm(join(deleting, name), { recursive: true, force: true });
    }
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

  private stagedFile(cluster: string, backupId: string): string {
    return join(this.stagingDir(cluster, backupId), SNAPSHOT);
  }

  /** The committed backup's record; undefined if there is none; BackupCorrupt if unreadable. */
  private async readManifest(cluster: string, backupId: string): Promise<BackupRecord | undefined> {
    let text: string;
    try {
      text = await readFile(join(this.backupDir(cluster, backupId), MANIFEST), 'utf8');
    } catch (error) {
      if (isErrno(error, 'ENOENT', 'ENOTDIR')) return undefined;
      throw error;
    }
    const corrupt = (message: string) =>
      backupFailure(
        FailureType.BackupCorrupt,
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
    return parsed.data;
  }
}

/** The key's parts, checked before they touch a path. */
function checkKey(key: BackupKey): { cluster: string; backupId: string } {
  if (!isBackupId(key.backupId)) {
    throw backupFailure(
      FailureType.BackupInvalidArgument,
      `invalid backup id ${JSON.stringify(key.backupId)}: letters, digits, ".", "_", "-", alphanumeric first`,
    );
  }
  return { cluster: checkClusterName(key.userClusterName), backupId: key.backupId };
}

/** A user cluster name as used for its directory: a DNS label, as the schemas require. */
function checkClusterName(name: string): string {
  if (!dnsLabel.safeParse(name).success) {
    throw backupFailure(
      FailureType.BackupInvalidArgument,
      `invalid user cluster name ${JSON.stringify(name)}: must be a DNS label`,
    );
  }
  return name;
}

/** A retried commit succeeds if it describes the backup already there. */
function sameBackupOrConflict(committed: BackupRecord, request: CommitRequest): BackupRecord {
  const differences = (Object.keys(request) as (keyof CommitRequest)[]).filter(
    (field) =>
      request[field] !== undefined &&
      canonicalJson(request[field]) !== canonicalJson(committed[field]),
  );
  if (differences.length > 0) {
    throw backupFailure(
      FailureType.BackupConflict,
      `backup ${committed.id} of ${committed.userClusterName} is already committed with different ${differences.join(', ')}`,
    );
  }
  return committed;
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

/** The worker's repositories, each a directory on its file system, by name. */
export function fileSystemStores(targets: WorkerTargets): BackupStores {
  return {
    forRepository: ({ repository }) =>
      new FileSystemBackupStore(targets.repository(repository).path),
  };
}
