/**
 * The file-system backup repository on real files in a temp dir, with a real etcd snapshot:
 * modes, checksums, resumed staging writes, idempotent commit, listing that ignores
 * incomplete backups, verification that catches corruption, and retention.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, before, test } from 'node:test';
import {
  BackupFailureType,
  type BackupRepository,
  backupsToKeep,
  type CommitRequest,
  FileSystemBackupRepository,
  isBackupFailure,
  isoWeek,
  newBackupId,
} from '../activities/backup-repository.js';
import { type BackupRecord, backupRecordSchema } from '../workflows/schemas.js';
import { makeRealSnapshot, type RealSnapshot, stopAllEtcd } from './helpers/etcd-tls.js';

const CLUSTER = 'user-cluster-1';

let tmp = '';
let snapshot: RealSnapshot;
let snapshotBytes: Buffer;
let previousUmask = 0;

before(async () => {
  // A permissive umask: modes must still come out private.
  previousUmask = process.umask(0o000);
  tmp = await mkdtemp(join(tmpdir(), 'backup-repository-'));
  snapshot = await makeRealSnapshot(join(tmp, 'etcd'));
  snapshotBytes = await readFile(snapshot.path);
});

after(async () => {
  process.umask(previousUmask);
  await stopAllEtcd();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

let repositories = 0;
/** A fresh repository under the temp dir (its root does not exist yet). */
function newRepository(): FileSystemBackupRepository {
  repositories++;
  return new FileSystemBackupRepository({ root: join(tmp, `repo-${repositories}`, 'backups') });
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
    toolVersions: { etcdctl: '3.4.23' },
  };
}

async function writeStaging(
  repo: BackupRepository,
  stagingId: string,
  offset: number,
  bytes: Buffer,
) {
  await pipeline(Readable.from([bytes]), await repo.openStagingWriteStream(stagingId, offset));
}

/** Stages and commits the real snapshot; returns its record. */
async function storeSnapshot(
  repo: BackupRepository,
  createdAt?: string,
  bytes: Buffer = snapshotBytes,
): Promise<BackupRecord> {
  const at = createdAt ?? '2026-11-27T18:30:00Z';
  const staging = await repo.beginWrite({ userClusterName: CLUSTER, now: new Date(at) });
  await writeStaging(repo, staging.stagingId, 0, bytes);
  return repo.commit(staging.stagingId, commitRequest(at));
}

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

test('a committed backup: 0700 dirs, 0600 files, sha256 and manifest as recorded', async () => {
  const repo = newRepository();
  const staging = await repo.beginWrite({
    userClusterName: CLUSTER,
    now: new Date('2026-11-27T18:30:00.123Z'),
  });
  assert.match(staging.backupId, /^20261127T183000Z-[0-9a-f]{8}$/);
  assert.equal(staging.sizeBytes, 0);
  await writeStaging(repo, staging.stagingId, 0, snapshotBytes);
  const record = await repo.commit(staging.stagingId, {
    ...commitRequest(),
    sha256: sha256(snapshotBytes),
    sizeBytes: snapshotBytes.length,
  });

  const dir = join(repo.root, CLUSTER, staging.backupId);
  assert.equal(record.snapshotPath, join(dir, 'snapshot.db'));
  assert.equal(record.sha256, sha256(snapshotBytes));
  assert.equal(record.sizeBytes, snapshotBytes.length);
  assert.deepEqual(await readFile(record.snapshotPath), snapshotBytes);
  const manifest = backupRecordSchema.parse(
    JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')),
  );
  assert.deepEqual(manifest, record);

  for (const path of [repo.root, join(repo.root, CLUSTER), dir]) {
    assert.equal(await mode(path), 0o700, path);
  }
  for (const path of [record.snapshotPath, join(dir, 'manifest.json')]) {
    assert.equal(await mode(path), 0o600, path);
  }
  assert.deepEqual(await repo.get(record.id), record);
  assert.deepEqual(await repo.get(record.id, CLUSTER), record);
  await rejectsWith(repo.get(record.id, 'other-cluster'), BackupFailureType.NotFound, /no backup/);
  await rejectsWith(repo.stagingStatus(staging.stagingId), BackupFailureType.NotFound, /staging/);
});

test('a commit whose bytes differ from what the source reported is refused as corrupt', async () => {
  const repo = newRepository();
  const staging = await repo.beginWrite({ userClusterName: CLUSTER });
  await writeStaging(repo, staging.stagingId, 0, snapshotBytes);
  await rejectsWith(
    repo.commit(staging.stagingId, { ...commitRequest(), sha256: 'f'.repeat(64) }),
    BackupFailureType.Corrupt,
    /sha256/,
  );
  assert.deepEqual(await repo.list(CLUSTER), []);
});

test('a staging write resumed after a crash gives the same bytes and hash', async () => {
  const repo = newRepository();
  const half = Math.floor(snapshotBytes.length / 2);
  const first = await repo.beginWrite({ userClusterName: CLUSTER });
  // The first attempt wrote half, plus bytes it never confirmed, then "crashed".
  await writeStaging(repo, first.stagingId, 0, snapshotBytes.subarray(0, half));
  await writeStaging(repo, first.stagingId, half, Buffer.from('garbage after the last ack'));

  const again = await repo.beginWrite({ userClusterName: CLUSTER, backupId: first.backupId });
  assert.equal(again.stagingId, first.stagingId);
  assert.equal(again.path, first.path);
  assert.equal(again.sizeBytes, half + 'garbage after the last ack'.length);
  await rejectsWith(
    repo.openStagingWriteStream(first.stagingId, again.sizeBytes + 1),
    BackupFailureType.InvalidArgument,
    /offset/,
  );
  // Resume from the last confirmed offset: everything after it is replaced.
  await writeStaging(repo, first.stagingId, half, snapshotBytes.subarray(half, half + 100));
  // ...crash again; this time resume from the size the repository reports.
  const resumed = await repo.stagingStatus(first.stagingId);
  assert.equal(resumed.sizeBytes, half + 100);
  await writeStaging(repo, first.stagingId, resumed.sizeBytes, snapshotBytes.subarray(half + 100));

  const record = await repo.commit(first.stagingId, commitRequest());
  assert.equal(record.sha256, sha256(snapshotBytes));
  assert.deepEqual(await readFile(record.snapshotPath), snapshotBytes);
  await repo.verify(record.id);
});

test('commit twice is idempotent; a different record or a new write on the id conflicts', async () => {
  const repo = newRepository();
  const staging = await repo.beginWrite({ userClusterName: CLUSTER });
  await writeStaging(repo, staging.stagingId, 0, snapshotBytes);
  const first = await repo.commit(staging.stagingId, commitRequest());
  const second = await repo.commit(staging.stagingId, commitRequest());
  assert.deepEqual(second, first);
  await rejectsWith(
    repo.commit(staging.stagingId, { ...commitRequest(), revision: first.revision + 1 }),
    BackupFailureType.Conflict,
    /different revision/,
  );
  await rejectsWith(
    repo.beginWrite({ userClusterName: CLUSTER, backupId: staging.backupId }),
    BackupFailureType.Conflict,
    /already committed/,
  );
  assert.deepEqual(
    (await repo.list(CLUSTER)).map((r) => r.id),
    [first.id],
  );
});

test('list is newest first and ignores half-written backups', async () => {
  const repo = newRepository();
  const older = await storeSnapshot(repo, '2026-11-26T10:00:00Z');
  const newer = await storeSnapshot(repo, '2026-11-27T10:00:00Z');
  // A staging write in progress, a backup dir without manifest, one with only a temp manifest.
  const inProgress = await repo.beginWrite({ userClusterName: CLUSTER });
  await writeStaging(repo, inProgress.stagingId, 0, snapshotBytes.subarray(0, 1000));
  const noManifest = join(repo.root, CLUSTER, newBackupId(new Date('2026-11-28T00:00:00Z')));
  await mkdir(noManifest);
  await writeFile(join(noManifest, 'snapshot.db'), snapshotBytes);
  const tempManifest = join(repo.root, CLUSTER, newBackupId(new Date('2026-11-28T01:00:00Z')));
  await mkdir(tempManifest);
  await writeFile(join(tempManifest, 'manifest.json.tmp'), JSON.stringify(newer));

  assert.deepEqual(
    (await repo.list(CLUSTER)).map((r) => r.id),
    [newer.id, older.id],
  );
  assert.deepEqual(await repo.list('no-such-cluster'), []);
  await rejectsWith(repo.get(inProgress.backupId), BackupFailureType.NotFound, /no backup/);
});

test('a backup reads back from an offset; an aborted staging write is gone', async () => {
  const repo = newRepository();
  const record = await storeSnapshot(repo);
  const chunks: Buffer[] = [];
  for await (const chunk of await repo.openSnapshotReadStream(record.id, CLUSTER, 1000)) {
    chunks.push(chunk as Buffer);
  }
  assert.deepEqual(Buffer.concat(chunks), snapshotBytes.subarray(1000));

  const staging = await repo.beginWrite({ userClusterName: CLUSTER });
  await writeStaging(repo, staging.stagingId, 0, Buffer.from('partial'));
  await repo.abortWrite(staging.stagingId);
  await repo.abortWrite(staging.stagingId);
  await rejectsWith(repo.stagingStatus(staging.stagingId), BackupFailureType.NotFound, /staging/);
  await rejectsWith(
    repo.commit(staging.stagingId, commitRequest()),
    BackupFailureType.NotFound,
    /staging/,
  );
});

test('new ids sort by time and differ within the same second', () => {
  const at = new Date('2026-11-27T18:30:00.999Z');
  const [a, b] = [newBackupId(at), newBackupId(at)];
  assert.notEqual(a, b);
  assert.match(a, /^20261127T183000Z-[0-9a-f]{8}$/);
  const later = newBackupId(new Date('2026-11-27T18:30:01Z'));
  assert.ok(a < later);
});

test('ids and names that could leave the repository are refused', async () => {
  const repo = newRepository();
  for (const id of ['..', '../x', 'a/b', '.staging', '']) {
    await rejectsWith(repo.get(id), BackupFailureType.InvalidArgument, /invalid backup id/);
    await rejectsWith(
      repo.beginWrite({ userClusterName: CLUSTER, backupId: id }),
      BackupFailureType.InvalidArgument,
      /invalid backup id/,
    );
  }
  await rejectsWith(repo.list('../etc'), BackupFailureType.InvalidArgument, /DNS label/);
  await rejectsWith(
    repo.commit(`${CLUSTER}/../x`, commitRequest()),
    BackupFailureType.InvalidArgument,
    /staging id/,
  );
});

test('verify passes an intact snapshot and names a bit flip, a truncation and a wrong revision', async () => {
  const repo = newRepository();
  const intact = await storeSnapshot(repo);
  const verified = await repo.verify(intact.id, CLUSTER);
  assert.equal(verified.record.id, intact.id);
  assert.match(verified.checks.join('\n'), new RegExp(`revision ${snapshot.status.revision}`));

  const flipped = await storeSnapshot(repo);
  const bytes = await readFile(flipped.snapshotPath);
  const middle = Math.floor(bytes.length / 2);
  bytes[middle] = (bytes[middle] ?? 0) ^ 0x01;
  await writeFile(flipped.snapshotPath, bytes);
  await rejectsWith(
    repo.verify(flipped.id),
    BackupFailureType.Corrupt,
    /has sha256 .* the manifest says/,
  );

  const truncated = await storeSnapshot(repo);
  await truncate(truncated.snapshotPath, truncated.sizeBytes - 4096);
  await rejectsWith(
    repo.verify(truncated.id),
    BackupFailureType.Corrupt,
    new RegExp(`has ${truncated.sizeBytes - 4096} bytes, the manifest says ${truncated.sizeBytes}`),
  );

  // Bytes intact but the manifest's etcd fields wrong: only etcdctl snapshot status can tell.
  const repo2 = newRepository();
  const staging = await repo2.beginWrite({ userClusterName: CLUSTER });
  await writeStaging(repo2, staging.stagingId, 0, snapshotBytes);
  const wrong = await repo2.commit(staging.stagingId, {
    ...commitRequest(),
    revision: snapshot.status.revision + 1,
  });
  await rejectsWith(
    repo2.verify(wrong.id),
    BackupFailureType.Corrupt,
    new RegExp(`reports revision ${snapshot.status.revision}, the manifest says ${wrong.revision}`),
  );
  // Not a snapshot at all, stored consistently: etcdctl refuses it.
  const junk = await storeSnapshot(repo2, undefined, Buffer.alloc(8192, 7));
  await rejectsWith(
    repo2.verify(junk.id),
    BackupFailureType.Corrupt,
    /etcdctl snapshot status failed/,
  );
});

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
  const repo = newRepository();
  const idOf: Record<string, string> = {};
  // Stored in shuffled order, so only createdAt can order them.
  for (const name of ['b5', 'b9', 'b1', 'b7', 'b3', 'b2', 'b8', 'b4', 'b6']) {
    const at = dates[name] ?? '';
    idOf[name] = (await storeSnapshot(repo, at, Buffer.from(name))).id;
  }
  const ids = (names: string[]) => names.map((n) => idOf[n] ?? n);
  const policy = { keepLast: 2, keepDaily: 3, keepWeekly: 3 };

  const deleted = await repo.prune(CLUSTER, policy);
  assert.deepEqual(deleted, ids(['b4', 'b7', 'b9']));
  assert.deepEqual(
    (await repo.list(CLUSTER)).map((r) => r.id),
    ids(['b1', 'b2', 'b3', 'b5', 'b6', 'b8']),
  );
  for (const id of deleted) {
    await assert.rejects(stat(join(repo.root, CLUSTER, id)), /ENOENT/);
  }
  assert.deepEqual(await repo.prune(CLUSTER, policy), []);

  // The newest survives the tightest policy.
  assert.deepEqual(
    await repo.prune(CLUSTER, { keepLast: 1, keepDaily: 0, keepWeekly: 0 }),
    ids(['b2', 'b3', 'b5', 'b6', 'b8']),
  );
  assert.deepEqual(
    (await repo.list(CLUSTER)).map((r) => r.id),
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

test('a snapshot file on the worker is imported as a backup, verified like any other', async () => {
  const repo = newRepository();
  const record = await repo.importFile({
    userClusterName: 'c1',
    backupId: 'import-1',
    path: snapshot.path,
  });
  assert.equal(record.sha256, sha256(snapshotBytes));
  assert.equal(record.sizeBytes, snapshotBytes.length);
  assert.equal(record.revision, snapshot.status.revision);
  assert.equal(record.etcdHash, snapshot.status.hash);
  assert.equal(record.sourcePod, `file:${snapshot.path}`);
  assert.deepEqual(await readFile(record.snapshotPath), snapshotBytes);
  assert.equal((await repo.verify('import-1', 'c1')).record.id, 'import-1');
  assert.deepEqual(
    await repo.importFile({ userClusterName: 'c1', backupId: 'import-1', path: snapshot.path }),
    record,
  );

  const notASnapshot = join(tmp, 'not-a-snapshot.db');
  await writeFile(notASnapshot, 'hello');
  await rejectsWith(
    repo.importFile({ userClusterName: 'c1', backupId: 'import-2', path: notASnapshot }),
    BackupFailureType.Corrupt,
    /not a usable etcd snapshot/,
  );
  await rejectsWith(
    repo.importFile({ userClusterName: 'c1', backupId: 'import-3', path: join(tmp, 'missing.db') }),
    BackupFailureType.NotFound,
    /no snapshot file/,
  );
  assert.deepEqual(
    (await repo.list('c1')).map((b) => b.id),
    ['import-1'],
    'nothing half-imported is listed',
  );
});
