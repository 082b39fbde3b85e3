/**
 * Admin-cluster backups on the worker's file system, beside the user-cluster ones:
 *
 *   <root>/.admin/<adminCluster>/<backupId>/manifest.json              the AdminBackupRecord
 *   <root>/.admin/<adminCluster>/<backupId>/admin-cluster_snapshot.db  the admin etcd (A3)
 *   <root>/.admin/<adminCluster>/<backupId>/pki/...                    the node's PKI (A2)
 *   <root>/.admin/<adminCluster>/.staging/<backupId>/                  writes in progress
 *
 * Directories are 0700 and files 0600 whatever the modes on the node were (those are in
 * the manifest). `.admin` is no DNS label, so it never collides with a user cluster's
 * directory. A backup appears by renaming its staging directory into place, manifest
 * included, as user-cluster backups do.
 */
import { createReadStream } from 'node:fs';
import { lstat, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import {
  type AdminBackupRecord,
  type AdminCommitRequest,
  adminBackupRecordSchema,
  describeIssues,
  dnsLabel,
  FailureType,
  isBackupId,
} from '../../workflows/contract/index.js';
import { canonicalJson } from '../json.js';
import { backupFailure, isBackupFailure } from './failures.js';
import {
  ensurePrivateDir,
  fsyncPath,
  isErrno,
  sha256OfFile,
  touchPrivateFile,
  writePrivateFileAtomic,
} from './fs-io.js';
import { newestFirst } from './retention.js';
import type { AdminBackupKey, AdminBackupStore } from './store.js';

const ADMIN = '.admin';
const MANIFEST = 'manifest.json';
const STAGING = '.staging';
const DELETING = '.deleting';

/** A path inside a backup: relative, plain segments, not the manifest. */
function checkFile(file: string): string {
  const segments = file.split('/');
  const bad =
    file.length > 1024 ||
    file === MANIFEST ||
    // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
    /[\u0000-\u001f]/.test(file) ||
    segments.some((s) => s === '' || s === '.' || s === '..');
  if (bad) {
    throw backupFailure(
      FailureType.BackupInvalidArgument,
      `invalid file name in an admin backup: ${JSON.stringify(file)}`,
    );
  }
  return file;
}

function checkKey(key: AdminBackupKey): AdminBackupKey {
  if (!isBackupId(key.backupId) || !dnsLabel.safeParse(key.adminCluster).success) {
    throw backupFailure(
      FailureType.BackupInvalidArgument,
      `invalid admin backup ${JSON.stringify(key.adminCluster)}/${JSON.stringify(key.backupId)}`,
    );
  }
  return key;
}

export class FileSystemAdminBackupStore implements AdminBackupStore {
  constructor(private readonly root: string) {}

  private clusterDir(adminCluster: string): string {
    return join(this.root, ADMIN, adminCluster);
  }

  private backupDir(key: AdminBackupKey): string {
    const { adminCluster, backupId } = checkKey(key);
    return join(this.clusterDir(adminCluster), backupId);
  }

  private stagingDir(key: AdminBackupKey): string {
    const { adminCluster, backupId } = checkKey(key);
    return join(this.clusterDir(adminCluster), STAGING, backupId);
  }

  private async ensureStaging(key: AdminBackupKey): Promise<string> {
    if (await this.readManifest(key)) {
      throw backupFailure(
        FailureType.BackupConflict,
        `admin backup ${key.backupId} of ${key.adminCluster} is already committed; start a new one`,
      );
    }
    const cluster = this.clusterDir(key.adminCluster);
    for (const d of [this.root, join(this.root, ADMIN), cluster, join(cluster, STAGING)])
      await ensurePrivateDir(d);
    const dir = this.stagingDir(key);
    await ensurePrivateDir(dir);
    return dir;
  }

  async stagedFileBytes(key: AdminBackupKey, file: string): Promise<number> {
    try {
      return (await lstat(join(this.stagingDir(key), checkFile(file)))).size;
    } catch (error) {
      if (isErrno(error, 'ENOENT')) return 0;
      throw error;
    }
  }

  async readStagedFile(key: AdminBackupKey, file: string): Promise<Readable> {
    return createReadStream(join(this.stagingDir(key), checkFile(file)));
  }

  async stageFile(key: AdminBackupKey, file: string, offset: number): Promise<Writable> {
    const path = join(await this.ensureStaging(key), checkFile(file));
    await this.ensureParents(key, file);
    await touchPrivateFile(path);
    const { size } = await lstat(path);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > size) {
      throw backupFailure(
        FailureType.BackupInvalidArgument,
        `cannot write ${file} of admin backup ${key.backupId} from offset ${offset}: it holds ${size} bytes`,
      );
    }
    const handle = await open(path, 'r+');
    try {
      await handle.truncate(offset);
    } catch (error) {
      await handle.close();
      throw error;
    }
    return handle.createWriteStream({ start: offset, flush: true, highWaterMark: 1 << 20 });
  }

  async stageDirectory(key: AdminBackupKey, dir: string): Promise<void> {
    const staging = await this.ensureStaging(key);
    await this.ensureParents(key, dir);
    await ensurePrivateDir(join(staging, checkFile(dir)));
  }

  /** Every directory between the staging root and `file`, 0700. */
  private async ensureParents(key: AdminBackupKey, file: string): Promise<void> {
    const staging = this.stagingDir(key);
    let parent = dirname(file);
    const parents: string[] = [];
    while (parent !== '.' && parent !== '') {
      parents.unshift(parent);
      parent = dirname(parent);
    }
    for (const p of parents) await ensurePrivateDir(join(staging, p));
  }

  async discardStaged(key: AdminBackupKey, path: string): Promise<void> {
    await rm(join(this.stagingDir(key), checkFile(path)), { recursive: true, force: true });
  }

  async abort(key: AdminBackupKey): Promise<void> {
    await rm(this.stagingDir(key), { recursive: true, force: true });
  }

  async commit(key: AdminBackupKey, request: AdminCommitRequest): Promise<AdminBackupRecord> {
    checkKey(key);
    const committed = await this.readManifest(key);
    if (committed) return sameOrConflict(committed, request);
    const dir = this.stagingDir(key);
    const corrupt = (message: string) =>
      backupFailure(
        FailureType.BackupCorrupt,
        `staged admin backup ${key.backupId} of ${key.adminCluster}: ${message}`,
      );
    const listed = new Map(request.files.map((f) => [checkFile(f.path), f]));
    for (const entry of listed.values()) {
      if (entry.type !== 'file' && entry.type !== 'directory') continue;
      const path = join(dir, entry.path);
      const st = await lstat(path).catch((error: unknown) => {
        if (isErrno(error, 'ENOENT', 'ENOTDIR')) return undefined;
        throw error;
      });
      if (entry.type === 'directory') {
        if (!st?.isDirectory()) throw corrupt(`directory ${entry.path} is not staged`);
        continue;
      }
      if (!st?.isFile()) throw corrupt(`file ${entry.path} is not staged`);
      await fsyncPath(path);
      const sha256 = await sha256OfFile(path);
      if (st.size !== entry.sizeBytes || sha256 !== entry.sha256) {
        throw corrupt(
          `${entry.path} has ${st.size} bytes, sha256 ${sha256}; the source reported ${entry.sizeBytes} bytes, sha256 ${entry.sha256}`,
        );
      }
    }
    const staged = await walk(dir);
    for (const file of staged.files) {
      if (!listed.has(file)) throw corrupt(`${file} is staged but not in the file list`);
    }
    const parsed = adminBackupRecordSchema.safeParse({
      ...request,
      kind: 'admin',
      id: key.backupId,
      adminCluster: key.adminCluster,
    });
    if (!parsed.success) {
      throw backupFailure(
        FailureType.BackupInvalidArgument,
        `cannot commit admin backup ${key.backupId}: ${describeIssues(parsed.error)}`,
      );
    }
    for (const sub of staged.dirs) await fsyncPath(join(dir, sub));
    await writePrivateFileAtomic(dir, MANIFEST, `${JSON.stringify(parsed.data, null, 2)}\n`);
    try {
      await rename(dir, this.backupDir(key));
    } catch (error) {
      if (!isErrno(error, 'ENOTEMPTY', 'EEXIST')) throw error;
      const winner = await this.readManifest(key);
      if (!winner) throw error;
      return sameOrConflict(winner, request);
    }
    await fsyncPath(this.clusterDir(key.adminCluster));
    return parsed.data;
  }

  async get(key: AdminBackupKey): Promise<AdminBackupRecord> {
    const record = await this.readManifest(key);
    if (!record) {
      throw backupFailure(
        FailureType.BackupNotFound,
        `no admin backup ${key.backupId} of admin cluster ${key.adminCluster} in ${this.root}`,
      );
    }
    return record;
  }

  async read(key: AdminBackupKey, file: string, offset = 0): Promise<Readable> {
    const handle = await open(await this.localFile(key, file), 'r');
    return handle.createReadStream({ start: offset, highWaterMark: 1 << 20 });
  }

  async localFile(key: AdminBackupKey, file: string): Promise<string> {
    const record = await this.get(key);
    const entry = record.files.find((f) => f.path === file && f.type === 'file');
    if (!entry) {
      throw backupFailure(
        FailureType.BackupNotFound,
        `admin backup ${key.backupId} of ${key.adminCluster} holds no file ${file}`,
      );
    }
    return join(this.backupDir(key), checkFile(file));
  }

  async list(adminCluster: string): Promise<AdminBackupRecord[]> {
    checkKey({ adminCluster, backupId: 'x' });
    const records: AdminBackupRecord[] = [];
    for (const name of await subdirectories(this.clusterDir(adminCluster))) {
      if (!isBackupId(name)) continue;
      try {
        const record = await this.readManifest({ adminCluster, backupId: name });
        if (record) records.push(record);
      } catch (error) {
        if (!isBackupFailure(error, FailureType.BackupCorrupt)) throw error;
      }
    }
    return newestFirst(records);
  }

  async delete(key: AdminBackupKey): Promise<void> {
    const deleting = join(this.clusterDir(key.adminCluster), DELETING);
    await ensurePrivateDir(deleting);
    try {
      await rename(this.backupDir(key), join(deleting, key.backupId));
      await fsyncPath(this.clusterDir(key.adminCluster));
    } catch (error) {
      if (!isErrno(error, 'ENOENT')) throw error;
    }
    for (const name of await subdirectories(deleting)) {
      await rm(join(deleting, name), { recursive: true, force: true });
    }
  }

  private async readManifest(key: AdminBackupKey): Promise<AdminBackupRecord | undefined> {
    let text: string;
    try {
      text = await readFile(join(this.backupDir(key), MANIFEST), 'utf8');
    } catch (error) {
      if (isErrno(error, 'ENOENT', 'ENOTDIR')) return undefined;
      throw error;
    }
    const corrupt = (message: string) =>
      backupFailure(
        FailureType.BackupCorrupt,
        `manifest of admin backup ${key.backupId} of ${key.adminCluster}: ${message}`,
      );
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw corrupt('not JSON');
    }
    const parsed = adminBackupRecordSchema.safeParse(json);
    if (!parsed.success) throw corrupt(describeIssues(parsed.error));
    if (parsed.data.id !== key.backupId || parsed.data.adminCluster !== key.adminCluster) {
      throw corrupt(`it describes ${parsed.data.id} of ${parsed.data.adminCluster}`);
    }
    return parsed.data;
  }
}

/** A retried commit succeeds if it describes the backup already there. */
function sameOrConflict(committed: AdminBackupRecord, request: AdminCommitRequest) {
  const differences = (Object.keys(request) as (keyof AdminCommitRequest)[]).filter(
    (field) => canonicalJson(request[field]) !== canonicalJson(committed[field]),
  );
  if (differences.length > 0) {
    throw backupFailure(
      FailureType.BackupConflict,
      `admin backup ${committed.id} of ${committed.adminCluster} is already committed with different ${differences.join(', ')}`,
    );
  }
  return committed;
}

/** Relative paths under `dir`: its files (anything not a directory; not the manifest) and directories. */
async function walk(dir: string): Promise<{ files: string[]; dirs: string[] }> {
  const files: string[] = [];
  const dirs: string[] = [];
  const visit = async (prefix: string) => {
    for (const entry of await readdir(join(dir, prefix), { withFileTypes: true })) {
      const rel = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
      if (entry.isDirectory()) {
        dirs.push(rel);
        await visit(rel);
      } else if (rel !== MANIFEST) files.push(rel);
    }
  };
  await visit('');
  return { files, dirs };
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
