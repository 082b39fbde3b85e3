/** Derived names and the backup-id rule: one definition, the same everywhere. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  backupIdSchema,
  backupSnapshotLeftovers,
  backupSnapshotPathInPod,
  clusterLockId,
  clusterProfileSchema,
  compactTimestamp,
  dataClaimName,
  formatBackupId,
  importBackupId,
  initialCluster,
  isBackupId,
  memberNumberOf,
  memberPodName,
  memberProfile,
  operationWorkflowId,
  peerUrl,
  podJoin,
  restoreSnapshotPathInPod,
  utilityPodName,
} from '../../workflows/contract/index.js';

const gke = clusterProfileSchema.parse({});

describe('backup ids', () => {
  test('one rule: the schema and isBackupId agree on every case', () => {
    const cases = [
      ['20261127T183000Z-1a2b3c4d', true],
      ['import-0123456789ab', true],
      ['a', true],
      ['a.b_c-d', true],
      ['x'.repeat(128), true],
      ['x'.repeat(129), false],
      ['-x', false],
      ['.x', false],
      ['_x', false],
      ['..', false],
      ['a/b', false],
      ['', false],
      ['a b', false],
    ] as const;
    for (const [id, valid] of cases) {
      assert.equal(isBackupId(id), valid, `isBackupId(${JSON.stringify(id)})`);
      assert.equal(backupIdSchema.safeParse(id).success, valid, `schema(${JSON.stringify(id)})`);
    }
  });

  test('new ids sort by time, to the second, and are valid', () => {
    const at = new Date('2026-11-27T18:30:00.999Z');
    assert.equal(compactTimestamp(at), '20261127T183000Z');
    const id = formatBackupId(at, '1a2b3c4d');
    assert.equal(id, '20261127T183000Z-1a2b3c4d');
    assert.ok(id < formatBackupId(new Date('2026-11-27T18:30:01Z'), '00000000'));
    assert.ok(isBackupId(id));
    assert.ok(isBackupId(importBackupId('0123456789ab')));
  });
});

describe('names derived from the profile', () => {
  test('GKE on-prem names of SPEC.md', () => {
    assert.equal(memberPodName(gke, 2), 'kube-etcd-2');
    assert.equal(dataClaimName(gke, 1), 'data-kube-etcd-1');
    assert.equal(utilityPodName(gke, 0), 'etcd-utility-0');
    assert.equal(peerUrl(gke, 1), 'https://kube-etcd-1.kube-etcd:2380');
    assert.equal(
      initialCluster(gke, 3),
      'kube-etcd-0=https://kube-etcd-0.kube-etcd:2380,kube-etcd-1=https://kube-etcd-1.kube-etcd:2380,kube-etcd-2=https://kube-etcd-2.kube-etcd:2380',
    );
    assert.equal(restoreSnapshotPathInPod(gke), '/snapshot.db');
    assert.equal(backupSnapshotPathInPod(gke, 'b1', 2), '/snapshot-b1.2.db');
    assert.deepEqual(backupSnapshotLeftovers(gke, 'b1', 2), [
      '/snapshot-b1.1.db',
      '/snapshot-b1.1.db.part',
      '/snapshot-b1.2.db',
      '/snapshot-b1.2.db.part',
    ]);
    assert.equal(memberProfile(gke, 2).etcdEndpoint, 'https://127.0.0.1:2379');
  });

  test('member numbers are read back only from kube-etcd-N', () => {
    assert.equal(memberNumberOf(gke, 'kube-etcd-0'), 0);
    assert.equal(memberNumberOf(gke, 'kube-etcd-12'), 12);
    for (const name of ['kube-etcd-', 'kube-etcd-x', 'kube-etcd-1a', 'kube-etcdx-1', 'etcd-1']) {
      assert.equal(memberNumberOf(gke, name), undefined, name);
    }
  });

  test('a profile with other names and a per-member endpoint', () => {
    const sim = clusterProfileSchema.parse({
      etcdStatefulSet: 'etcd',
      etcdEndpoint: 'https://127.0.0.1:23{member}78',
      utilityPodPrefix: 'util',
      dataClaimPrefix: 'data',
      workDir: '/work/',
    });
    assert.equal(memberPodName(sim, 1), 'etcd-1');
    assert.equal(utilityPodName(sim, 1), 'util-1');
    assert.equal(dataClaimName(sim, 1), 'data-1');
    assert.equal(memberProfile(sim, 2).etcdEndpoint, 'https://127.0.0.1:23278');
    assert.equal(restoreSnapshotPathInPod(sim), '/work/snapshot.db');
    assert.equal(podJoin('/a//', 'b'), '/a/b');
  });
});

describe('ids derived from a user cluster', () => {
  test('lock and workflow ids', () => {
    assert.equal(clusterLockId('c1'), 'etcd-lock-c1');
    assert.equal(
      operationWorkflowId('restore', 'c1', new Date('2026-11-27T18:30:00Z'), 'abcd1234'),
      'etcd-restore-c1-20261127T183000Z-abcd1234',
    );
  });
});
