/**
 * Admin backups in the file-system repository (activities/repository/fs-admin-store.ts):
 * several files per backup, 0700 directories and 0600 files, sealed only when every listed
 * file is staged with its size and sha256 and nothing else is; apart from user-cluster
 * backups, whose listing and retention never see them; the worker's gauge of the newest
 * admin backup, read from them at its start.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, test } from 'node:test';
import type { MetricMeter, MetricTags } from '@temporalio/common';
import { parseWorkerConfig } from '../../activities/config/worker-config.js';
import { FileSystemBackupStore } from '../../activities/repository/fs-store.js';
import { pruneBackups } from '../../activities/repository/retention.js';
import type { AdminBackupKey } from '../../activities/repository/store.js';
import { seedBackupMetrics } from '../../worker/metrics.js';
import {
  type AdminBackupEntry,
  type AdminCommitRequest,
  METRICS,
} from '../../workflows/contract/index.js';

const dir = mkdtempSync(join(tmpdir(), 'admin-store-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const files: Record<string, Buffer> = {
  'admin-cluster_snapshot.db': Buffer.alloc(4096, 1),
  'pki/ca.key': Buffer.from('key'),
  'pki/etcd/ca.crt': Buffer.from('cert'),
};
let n = 0;
const newKey = (): AdminBackupKey => ({
  adminCluster: 'admin-1',
  backupId: `20261201T0000${String(n++).padStart(2, '0')}Z-aaaa`,
});

async function stageAll(store: FileSystemBackupStore, key: AdminBackupKey) {
  await store.admin.stageDirectory(key, 'pki');
  await store.admin.stageDirectory(key, 'pki/etcd');
  for (const [path, bytes] of Object.entries(files))
    await pipeline(Readable.from([bytes]), await store.admin.stageFile(key, path, 0));
}

function request(createdAt = '2026-12-01T00:00:00.000Z'): AdminCommitRequest {
  const entries: AdminBackupEntry[] = [
    { path: 'pki', type: 'directory', mode: '0755', owner: 'root:root' },
    { path: 'pki/etcd', type: 'directory', mode: '0755', owner: 'root:root' },
    { path: 'pki/link.crt', type: 'symlink', mode: '0777', linkTarget: 'ca.crt' },
    ...Object.entries(files).map(
      ([path, b]): AdminBackupEntry => ({
        path,
        type: 'file',
        mode: path.endsWith('.key') ? '0600' : '0644',
        sizeBytes: b.length,
        sha256: sha256(b),
      }),
    ),
  ];
  return {
    createdAt,
    etcd: {
      path: 'admin-cluster_snapshot.db',
      sourcePod: 'etcd-admin-master',
      sha256: sha256(files['admin-cluster_snapshot.db'] as Buffer),
      sizeBytes: 4096,
      revision: 5,
      totalKeys: 3,
      etcdHash: 1,
      etcdVersion: '3.4.23',
      clusterId: '1',
      memberId: '2',
    },
    pki: { directory: '/etc/kubernetes/pki', viaJumpHost: false, fileCount: 2, totalBytes: 7 },
    files: entries,
    toolVersions: { workflow: 'test' },
  };
}

test('a committed admin backup: every file as staged, 0600 files and 0700 directories; an identical commit is a no-op', async () => {
  const store = new FileSystemBackupStore(dir);
  const key = newKey();
  await stageAll(store, key);
  const record = await store.admin.commit(key, request());
  assert.equal(record.kind, 'admin');
  assert.equal(record.id, key.backupId);
  const root = join(dir, '.admin', 'admin-1', key.backupId);
  for (const [path, bytes] of Object.entries(files)) {
    const chunks: Buffer[] = [];
    for await (const c of await store.admin.read(key, path)) chunks.push(c as Buffer);
    assert.deepEqual(Buffer.concat(chunks), bytes, path);
    assert.equal(statSync(join(root, path)).mode & 0o777, 0o600, path);
  }
  for (const d of ['', 'pki', 'pki/etcd'])
    assert.equal(statSync(join(root, d)).mode & 0o777, 0o700, d || '.');
  assert.equal(statSync(join(root, 'manifest.json')).mode & 0o777, 0o600);
  assert.deepEqual(await store.admin.commit(key, request()), record, 'a retried commit');
  await assert.rejects(
    store.admin.commit(key, request('2026-12-02T00:00:00.000Z')),
    /already committed with different createdAt/,
  );
  await assert.rejects(store.admin.stageFile(key, 'pki/x', 0), /already committed/);
  assert.deepEqual(await store.admin.get(key), record);
});

test('a commit is refused when a listed file is missing or differs, or something unlisted is staged', async () => {
  const store = new FileSystemBackupStore(dir);
  const missing = newKey();
  await stageAll(store, missing);
  await store.admin.discardStaged(missing, 'pki/ca.key');
  await assert.rejects(store.admin.commit(missing, request()), /file pki\/ca.key is not staged/);

  const differs = newKey();
  await stageAll(store, differs);
  await pipeline(
    Readable.from([Buffer.from('KEY')]),
    await store.admin.stageFile(differs, 'pki/ca.key', 0),
  );
  await assert.rejects(store.admin.commit(differs, request()), /pki\/ca.key has 3 bytes, sha256 /);

  const extra = newKey();
  await stageAll(store, extra);
  await pipeline(
    Readable.from([Buffer.from('x')]),
    await store.admin.stageFile(extra, 'pki/stray', 0),
  );
  await assert.rejects(
    store.admin.commit(extra, request()),
    /pki\/stray is staged but not in the file list/,
  );

  for (const bad of ['../x', '/etc/passwd', 'pki/../../x', 'manifest.json', 'a//b'])
    await assert.rejects(store.admin.stageFile(newKey(), bad, 0), /invalid file name/, bad);
  await store.admin.abort(extra);
  assert.ok(!readdirSync(join(dir, '.admin', 'admin-1', '.staging')).includes(extra.backupId));
});

test('admin backups are apart: user-cluster listing and retention never see them', async () => {
  const store = new FileSystemBackupStore(dir);
  const before = await store.admin.list('admin-1');
  assert.ok(before.length >= 1);
  assert.deepEqual(
    before.map((b) => b.createdAt),
    [...before.map((b) => b.createdAt)].sort().reverse(),
    'newest first',
  );
  // A user cluster named like the admin cluster has its own, empty, list; pruning it deletes nothing admin.
  assert.deepEqual(await store.list('admin-1'), []);
  assert.deepEqual(
    await pruneBackups(store, 'admin-1', { keepLast: 1, keepDaily: 0, keepWeekly: 0 }),
    [],
  );
  assert.equal((await store.admin.list('admin-1')).length, before.length);
  const first = before[0];
  assert.ok(first);
  await store.admin.delete({ adminCluster: 'admin-1', backupId: first.id });
  assert.equal((await store.admin.list('admin-1')).length, before.length - 1);
  await store.admin.delete({ adminCluster: 'admin-1', backupId: first.id });
});

test("a starting worker's admin-backup gauge is the newest admin backup of each admin cluster it serves", async () => {
  const store = new FileSystemBackupStore(dir);
  for (const createdAt of ['2026-12-03T00:00:00.000Z', '2026-12-04T00:00:00.000Z']) {
    const key = newKey();
    await stageAll(store, key);
    await store.admin.commit(key, request(createdAt));
  }
  const newest = (await store.admin.list('admin-1'))[0];
  assert.equal(newest?.createdAt, '2026-12-04T00:00:00.000Z');
  const sets: Array<{ workflowType: string; name: string; value: number; tags?: MetricTags }> = [];
  const meterOf = (workflowType: string) =>
    ({
      createGauge: (name: string) => ({
        set: (value: number, tags?: MetricTags) => sets.push({ workflowType, name, value, tags }),
      }),
    }) as unknown as MetricMeter;
  await seedBackupMetrics(
    meterOf,
    parseWorkerConfig(
      {
        adminClusters: {
          'admin-1': { kubeconfig: '/k/admin-1' },
          'admin-2': { kubeconfig: '/k/2' },
        },
        repositories: { local: { path: dir } },
      },
      'the test',
    ),
  );
  assert.deepEqual(
    sets.filter((s) => s.name === METRICS.adminBackupLastSuccess),
    [
      {
        workflowType: 'backupAdminCluster',
        name: METRICS.adminBackupLastSuccess,
        value: Date.parse(newest.createdAt) / 1000,
        tags: { admin_cluster: 'admin-1' },
      },
    ],
    'admin-2 has no backup: no series',
  );
  // Admin backups are no user cluster's: `.admin` is not taken for a cluster's directory.
  assert.deepEqual(
    sets.filter((s) => s.name === METRICS.backupLastSuccess),
    [],
  );
});
