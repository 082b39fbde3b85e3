/**
 * The file-system backup store on real files in a temp dir, with a real etcd snapshot:
 * modes, checksums, resumed staged writes, idempotent commit, listing that ignores
 * incomplete backups; and, outside the store, verification that catches corruption (also
 * through a store that only streams), import of a snapshot file, and retention.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, test } from 'node:test';
import { localEtcdctl } from '../../activities/etcd/local-etcdctl.js';
import { type BackupFailureType, isBackupFailure } from '../../activities/repository/failures.js';
import { FileSystemBackupStore } from '../../activities/repository/fs-store.js';
import { importSnapshotFile } from '../../activities/repository/import.js';
import { backupsToKeep, isoWeek, pruneBackups } from '../../activities/repository/retention.js';
import type { BackupKey, BackupStore } from '../../activities/repository/store.js';
import { verifyStoredBackup } from '../../activities/repository/verify.js';
import {
  type BackupRecord,
  backupRecordSchema,
  type CommitRequest,
  FailureType,
  formatBackupId,
} from '../../workflows/contract/index.js';
import { makeRealSnapshot, type RealSnapshot, stopAllEtcd } from '../harness/etcd-tls.js';

const CLUSTER = 'user-cluster-1';
const etcdctl = localEtcdctl();

let tmp = '';
let snapshot: RealSnapshot;
let snapshotBytes: Buffer;
let previousUmask = 0;

before(async () => {
  // A permissive umask: modes must still come out private.
  previousUmask = process.umask(0o000);
  tmp = await mkdtemp(join(tmpdir(), 'backup-store-'));
  snapshot = await makeRealSnapshot(join(tmp, 'etcd'));
  snapshotBytes = await readFile(snapshot.path);
});

after(async () => {
  process.umask(previousUmask);
  await stopAllEtcd();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

let stores = 0;
/** A fresh store under the temp dir (its root does not exist yet). */
function newStore(): FileSystemBackupStore {
  stores++;
  return new FileSystemBackupStore(join(tmp, `repo-${stores}`, 'backups'));
}

let ids = 0;
/** A key with a fresh id stamped `at`. */
function newKey(at = '2026-11-27T18:30:00Z', cluster = CLUSTER): BackupKey {
  ids++;
  return {
    userClusterName: cluster,
    backupId: formatBackupId(new Date(at), ids.toString(16).padStart(8, '0')),
  };
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function commitRequest(createdAt = '2026-11-27T18:30:00Z'): CommitRequest {
  return {
    member: 0,
    sourcePod: 'kube-etcd-0',
    createdAt,
    revision: snapshot.status.revision,
    totalKeys: snapshot.status.totalKey,
    etcdHash: snapshot.status.hash,
    origin: 'taken',
    toolVersions: { etcdctl: '3.4.23' },
  };
}

async function writeStaged(store: BackupStore, key: BackupKey, offset: number, bytes: Buffer) {
  await pipeline(Readable.from([bytes]), await store.stage(key, offset));
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Stages and commits the real snapshot; returns its record. */
async function storeSnapshot(
  store: BackupStore,
  createdAt = '2026-11-27T18:30:00Z',
  bytes: Buffer = snapshotBytes,
): Promise<BackupRecord> {
  const key = newKey(createdAt);
  await writeStaged(store, key, 0, bytes);
  return store.commit(key, commitRequest(createdAt));
}

const keyOf = (r: BackupRecord): BackupKey => ({
  userClusterName: r.userClusterName,
  backupId: r.id,
});

function mode(path: string) {
  return stat(path).then((s) => s.mode & 0o777);
}

async function rejectsWith(promise: Promise<unknown>, type: BackupFailureType, message: RegExp) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(isBackupFailure(error, type), `expected ${type}, got ${String(error)}`);
    assert.equal(error.nonRetryable, true);
    assert.match(error.message, message);
    return true;
  });
}

/** The same store seen only through its stream methods (as an object store would be). */
function streamOnly(store: FileSystemBackupStore): BackupStore {
  return {
    location: store.location,
    stagedBytes: (k) => store.stagedBytes(k),
    readStaged: (k) => store.readStaged(k),
    stage: (k, offset) => store.stage(k, offset),
    abort: (k) => store.abort(k),
    commit: (k, request) => store.commit(k, request),
    get: (k) => store.get(k),
    read: (k, offset) => store.read(k, offset),
    list: (cluster) => store.list(cluster),
    delete: (k) => store.delete(k),
    admin: store.admin,
  };
}

test('a committed backup: 0700 dirs, 0600 files, sha256 and manifest as recorded', async () => {
  const store = newStore();
  const key = newKey();
  assert.equal(await store.stagedBytes(key), 0);
  await writeStaged(store, key, 0, snapshotBytes);
  const record = await store.commit(key, {
    ...commitRequest(),
    sha256: sha256(snapshotBytes),
    sizeBytes: snapshotBytes.length,
  });

  const dir = join(store.root, CLUSTER, key.backupId);
  const file = await store.localFile(key);
  assert.equal(file, join(dir, 'snapshot.db'));
  assert.equal(record.sha256, sha256(snapshotBytes));
  assert.equal(record.sizeBytes, snapshotBytes.length);
  assert.deepEqual(await readFile(file), snapshotBytes);
  assert.deepEqual(await readAll(await store.read(key)), snapshotBytes);
  const manifest = backupRecordSchema.parse(
    JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')),
  );
  assert.deepEqual(manifest, record);
  assert.equal(JSON.stringify(record).includes(store.root), false, 'no worker path in the record');

  for (const path of [store.root, join(store.root, CLUSTER), dir]) {
    assert.equal(await mode(path), 0o700, path);
  }
  for (const path of [file, join(dir, 'manifest.json')]) {
    assert.equal(await mode(path), 0o600, path);
  }
  assert.deepEqual(await store.get(key), record);
  await rejectsWith(
    store.get({ ...key, userClusterName: 'other-cluster' }),
    FailureType.BackupNotFound,
    /no backup/,
  );
  assert.equal(await store.stagedBytes(key), 0, 'nothing staged once committed');
});

test('a commit whose bytes differ from what the source reported is refused as corrupt', async () => {
  const store = newStore();
  const key = newKey();
  await writeStaged(store, key, 0, snapshotBytes);
  await rejectsWith(
    store.commit(key, { ...commitRequest(), sha256: 'f'.repeat(64) }),
    FailureType.BackupCorrupt,
    /sha256/,
  );
  assert.deepEqual(await store.list(CLUSTER), []);
});

test('a staged write resumed after a crash gives the same bytes and hash', async () => {
  const store = newStore();
  const key = newKey();
  const half = Math.floor(snapshotBytes.length / 2);
  // The first attempt wrote half, plus bytes it never confirmed, then "crashed".
  await writeStaged(store, key, 0, snapshotBytes.subarray(0, half));
  await writeStaged(store, key, half, Buffer.from('garbage after the last ack'));
  const size = await store.stagedBytes(key);
  assert.equal(size, half + 'garbage after the last ack'.length);
  assert.deepEqual(
    await readAll(await store.readStaged(key)),
    Buffer.concat([snapshotBytes.subarray(0, half), Buffer.from('garbage after the last ack')]),
  );
  await rejectsWith(store.stage(key, size + 1), FailureType.BackupInvalidArgument, /offset/);
  // Resume from the last confirmed offset: everything after it is replaced.
  await writeStaged(store, key, half, snapshotBytes.subarray(half, half + 100));
  // ...crash again; this time resume from the size the store reports.
  const resumed = await store.stagedBytes(key);
  assert.equal(resumed, half + 100);
  await writeStaged(store, key, resumed, snapshotBytes.subarray(half + 100));

  const record = await store.commit(key, commitRequest());
  assert.equal(record.sha256, sha256(snapshotBytes));
  assert.deepEqual(await readFile(await store.localFile(key)), snapshotBytes);
  await verifyStoredBackup(store, etcdctl, key);
});

test('commit twice is idempotent; a different record or a new write on the id conflicts', async () => {
  const store = newStore();
  const key = newKey();
  await writeStaged(store, key, 0, snapshotBytes);
  const first = await store.commit(key, commitRequest());
  const second = await store.commit(key, commitRequest());
  assert.deepEqual(second, first);
  await rejectsWith(
    store.commit(key, { ...commitRequest(), revision: first.revision + 1 }),
    FailureType.BackupConflict,
    /different revision/,
  );
  await rejectsWith(store.stage(key, 0), FailureType.BackupConflict, /already committed/);
  assert.deepEqual(
    (await store.list(CLUSTER)).map((r) => r.id),
    [first.id],
  );
});

test('list is newest first and ignores half-written backups', async () => {
  const store = newStore();
  const older = await storeSnapshot(store, '2026-11-26T10:00:00Z');
  const newer = await storeSnapshot(store, '2026-11-27T10:00:00Z');
  // A staged write in progress, a backup dir without manifest, one with only a temp manifest.
  const inProgress = newKey();
  await writeStaged(store, inProgress, 0, snapshotBytes.subarray(0, 1000));
  const noManifest = join(store.root, CLUSTER, newKey('2026-11-28T00:00:00Z').backupId);
  await mkdir(noManifest);
  await writeFile(join(noManifest, 'snapshot.db'), snapshotBytes);
  const tempManifest = join(store.root, CLUSTER, newKey('2026-11-28T01:00:00Z').backupId);
  await mkdir(tempManifest);
  await writeFile(join(tempManifest, 'manifest.json.tmp'), JSON.stringify(newer));

  assert.deepEqual(
    (await store.list(CLUSTER)).map((r) => r.id),
    [newer.id, older.id],
  );
  assert.deepEqual(await store.list('no-such-cluster'), []);
  await rejectsWith(store.get(inProgress), FailureType.BackupNotFound, /no backup/);
});

test('a backup reads back from an offset; an aborted staged write is gone; delete is idempotent', async () => {
  const store = newStore();
  const record = await storeSnapshot(store);
  assert.deepEqual(
    await readAll(await store.read(keyOf(record), 1000)),
    snapshotBytes.subarray(1000),
  );

  const key = newKey();
  await writeStaged(store, key, 0, Buffer.from('partial'));
  await store.abort(key);
  await store.abort(key);
  assert.equal(await store.stagedBytes(key), 0);
  await rejectsWith(
    store.commit(key, commitRequest()),
    FailureType.BackupNotFound,
    /nothing staged/,
  );

  await store.delete(keyOf(record));
  await store.delete(keyOf(record));
  await rejectsWith(store.get(keyOf(record)), FailureType.BackupNotFound, /no backup/);
  await assert.rejects(stat(join(store.root, CLUSTER, record.id)), /ENOENT/);
});

test('ids and names that could leave the repository are refused', async () => {
  const store = newStore();
  for (const id of ['..', '../x', 'a/b', '.staging', '', '-x', 'x'.repeat(129)]) {
    const key = { userClusterName: CLUSTER, backupId: id };
    await rejectsWith(store.get(key), FailureType.BackupInvalidArgument, /invalid backup id/);
    await rejectsWith(store.stage(key, 0), FailureType.BackupInvalidArgument, /invalid backup id/);
  }
  await rejectsWith(store.list('../etc'), FailureType.BackupInvalidArgument, /DNS label/);
  await rejectsWith(
    store.commit({ userClusterName: '../x', backupId: 'b' }, commitRequest()),
    FailureType.BackupInvalidArgument,
    /DNS label/,
  );
});

for (const [name, storeFor] of [
  ['the file-system store', (s: FileSystemBackupStore): BackupStore => s],
  ['a store that only streams', streamOnly],
] as const) {
  test(`verify (${name}) passes an intact snapshot and names a bit flip, a truncation and a wrong revision`, async () => {
    const fs = newStore();
    const store = storeFor(fs);
    const intact = await storeSnapshot(store);
    const verified = await verifyStoredBackup(store, etcdctl, keyOf(intact));
    assert.equal(verified.record.id, intact.id);
    assert.match(verified.checks.join('\n'), new RegExp(`revision ${snapshot.status.revision}`));

    const flipped = await storeSnapshot(store);
    const flippedFile = await fs.localFile(keyOf(flipped));
    const bytes = await readFile(flippedFile);
    const middle = Math.floor(bytes.length / 2);
    bytes[middle] = (bytes[middle] ?? 0) ^ 0x01;
    await writeFile(flippedFile, bytes);
    await rejectsWith(
      verifyStoredBackup(store, etcdctl, keyOf(flipped)),
      FailureType.BackupCorrupt,
      /has sha256 .* the manifest says/,
    );

    const truncated = await storeSnapshot(store);
    await truncate(await fs.localFile(keyOf(truncated)), truncated.sizeBytes - 4096);
    await rejectsWith(
      verifyStoredBackup(store, etcdctl, keyOf(truncated)),
      FailureType.BackupCorrupt,
      new RegExp(
        `has ${truncated.sizeBytes - 4096} bytes, the manifest says ${truncated.sizeBytes}`,
      ),
    );

    // Bytes intact but the manifest's etcd fields wrong: only etcdctl snapshot status can tell.
    const key = newKey();
    await writeStaged(store, key, 0, snapshotBytes);
    const wrong = await store.commit(key, {
      ...commitRequest(),
      revision: snapshot.status.revision + 1,
    });
    await rejectsWith(
      verifyStoredBackup(store, etcdctl, key),
      FailureType.BackupCorrupt,
      new RegExp(
        `reports revision ${snapshot.status.revision}, the manifest says ${wrong.revision}`,
      ),
    );
    // Not a snapshot at all, stored consistently: etcdctl refuses it.
    const junk = await storeSnapshot(store, undefined, Buffer.alloc(8192, 7));
    await rejectsWith(
      verifyStoredBackup(store, etcdctl, keyOf(junk)),
      FailureType.BackupCorrupt,
      /etcdctl snapshot status failed/,
    );
  });
}

test('iso weeks follow ISO 8601 at year ends', () => {
  assert.equal(isoWeek('2026-01-01T00:00:00Z'), '2026-W01');
  assert.equal(isoWeek('2027-01-01T12:00:00Z'), '2026-W53');
  assert.equal(isoWeek('2024-12-30T12:00:00Z'), '2025-W01');
  assert.equal(isoWeek('2026-11-22T23:59:59Z'), '2026-W47');
  assert.equal(isoWeek('2026-11-23T00:00:00Z'), '2026-W48');
});

test('prune keeps newest keepLast plus newest per day and per ISO week, and is idempotent', async () => {
  const dates: Record<string, string> = {
    b1: '2026-11-27T18:00:00Z', // Fri, week 48
    b2: '2026-11-27T06:00:00Z',
    b3: '2026-11-26T23:00:00Z', // Thu
    b4: '2026-11-26T01:00:00Z',
    b5: '2026-11-24T12:00:00Z', // Tue
    b6: '2026-11-22T12:00:00Z', // Sun, week 47
    b7: '2026-11-20T12:00:00Z', // Fri, week 47
    b8: '2026-11-10T12:00:00Z', // week 46
    b9: '2026-11-03T12:00:00Z', // week 45
  };
  const store = newStore();
  const idOf: Record<string, string> = {};
  // Stored in shuffled order, so only createdAt can order them.
  for (const name of ['b5', 'b9', 'b1', 'b7', 'b3', 'b2', 'b8', 'b4', 'b6']) {
    const at = dates[name] ?? '';
    idOf[name] = (await storeSnapshot(store, at, Buffer.from(name))).id;
  }
  const ids = (names: string[]) => names.map((n) => idOf[n] ?? n);
  const policy = { keepLast: 2, keepDaily: 3, keepWeekly: 3 };

  const deleted = await pruneBackups(store, CLUSTER, policy);
  assert.deepEqual(deleted, ids(['b4', 'b7', 'b9']));
  assert.deepEqual(
    (await store.list(CLUSTER)).map((r) => r.id),
    ids(['b1', 'b2', 'b3', 'b5', 'b6', 'b8']),
  );
  for (const id of deleted) {
    await assert.rejects(stat(join(store.root, CLUSTER, id)), /ENOENT/);
  }
  assert.deepEqual(await pruneBackups(store, CLUSTER, policy), []);

  // The newest survives the tightest policy.
  assert.deepEqual(
    await pruneBackups(store, CLUSTER, { keepLast: 1, keepDaily: 0, keepWeekly: 0 }),
    ids(['b2', 'b3', 'b5', 'b6', 'b8']),
  );
  assert.deepEqual(
    (await store.list(CLUSTER)).map((r) => r.id),
    ids(['b1']),
  );
});

test('backupsToKeep never drops the newest, even with keepLast 0', () => {
  const backups = [
    { id: 'x', createdAt: '2026-01-01T00:00:00Z' },
    { id: 'y', createdAt: '2026-01-02T00:00:00Z' },
  ];
  assert.deepEqual(
    [...backupsToKeep(backups, { keepLast: 0, keepDaily: 0, keepWeekly: 0 })],
    ['y'],
  );
});

test('a snapshot file on the worker is imported as a backup (0600), verified like any other', async () => {
  const store = newStore();
  const key = { userClusterName: 'c1', backupId: 'import-1' };
  const inbox = (name: string, path = snapshot.path) => ({ name, path });
  await chmod(snapshot.path, 0o644); // an inbox file readable by others: the backup is not
  const record = await importSnapshotFile(store, etcdctl, key, inbox('snap.db'));
  assert.equal(record.sha256, sha256(snapshotBytes));
  assert.equal(record.sizeBytes, snapshotBytes.length);
  assert.equal(record.revision, snapshot.status.revision);
  assert.equal(record.etcdHash, snapshot.status.hash);
  assert.equal(record.sourcePod, 'import:snap.db', 'the file name, never the path on the worker');
  assert.equal(record.origin, 'imported');
  assert.deepEqual(await readFile(await store.localFile(key)), snapshotBytes);
  assert.equal(await mode(await store.localFile(key)), 0o600);
  assert.equal((await verifyStoredBackup(store, etcdctl, key)).record.id, 'import-1');
  assert.deepEqual(await importSnapshotFile(store, etcdctl, key, inbox('snap.db')), record);

  const notASnapshot = join(tmp, 'not-a-snapshot.db');
  await writeFile(notASnapshot, 'hello');
  await rejectsWith(
    importSnapshotFile(
      store,
      etcdctl,
      { ...key, backupId: 'import-2' },
      inbox('n.db', notASnapshot),
    ),
    FailureType.BackupCorrupt,
    /not a usable etcd snapshot/,
  );
  await rejectsWith(
    importSnapshotFile(
      store,
      etcdctl,
      { ...key, backupId: 'import-3' },
      inbox('missing.db', join(tmp, 'missing.db')),
    ),
    FailureType.BackupNotFound,
    /no file missing.db in the import inbox/,
  );
  assert.deepEqual(
    (await store.list('c1')).map((b) => b.id),
    ['import-1'],
    'nothing half-imported is listed',
  );
});

test('retention counts and prunes taken backups only: imports are neither counted nor removed', async () => {
  const store = newStore();
  const taken = [];
  for (const at of ['2026-11-25T10:00:00Z', '2026-11-26T10:00:00Z', '2026-11-27T10:00:00Z']) {
    taken.push(await storeSnapshot(store, at));
  }
  const imported = { userClusterName: CLUSTER, backupId: 'import-0123456789ab' };
  await importSnapshotFile(store, etcdctl, imported, { name: 'snap.db', path: snapshot.path });
  const deleted = await pruneBackups(store, CLUSTER, { keepLast: 2, keepDaily: 0, keepWeekly: 0 });
  assert.deepEqual(deleted, [taken[0]?.id]);
  assert.deepEqual(
    (await store.list(CLUSTER)).map((b) => b.id).sort(),
    [taken[1]?.id, taken[2]?.id, imported.backupId].sort(),
  );
});
