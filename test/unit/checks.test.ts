/** The restore's checks (workflows/restore/checks.ts) as pure functions of what was read. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import {
  type ClusterInventory,
  clusterProfileSchema,
  FailureType,
} from '../../workflows/contract/index.js';
import { checkCluster, type VerifyInput, verifyRestore } from '../../workflows/restore/checks.js';

const profile = clusterProfileSchema.parse({});

function inventory(members: number, change: Partial<ClusterInventory> = {}): ClusterInventory {
  return {
    members: Array.from({ length: members }, (_, n) => ({
      name: `kube-etcd-${n}`,
      member: n,
      nodeName: `node-${n}`,
      ready: n !== 0,
      restartCount: n === 0 ? 7 : 0,
      phase: 'Running',
    })),
    secretName: 'kube-etcd-certs-abcde',
    dataClaims: Array.from({ length: members }, (_, n) => `data-kube-etcd-${n}`),
    nodes: ['node-0', 'node-1', 'node-2'],
    etcdReplicas: members,
    apiserverReplicas: 3,
    maintenanceReplicas: 1,
    pdbPresent: true,
    ...change,
  };
}

function failsWith(run: () => unknown, type: string, message: RegExp): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof ApplicationFailure, String(error));
    assert.equal(error.type, type);
    assert.equal(error.nonRetryable, true);
    assert.match(error.message, message);
    return true;
  });
}

describe('checkCluster', () => {
  test('1 and 3 members as the StatefulSet says, or as asked when they agree', () => {
    assert.equal(checkCluster(inventory(1), undefined, profile), 1);
    assert.equal(checkCluster(inventory(3), undefined, profile), 3);
    assert.equal(checkCluster(inventory(3), 3, profile), 3);
  });

  test('every problem is named at once, and it says nothing was changed', () => {
    const broken = inventory(3, {
      dataClaims: ['data-kube-etcd-0'],
      nodes: ['node-0', 'node-1'],
    });
    failsWith(
      () => checkCluster(broken, undefined, profile),
      FailureType.ClusterState,
      /nothing was changed: PVC data-kube-etcd-1 does not exist; node node-2 of kube-etcd-2 does not exist; PVC data-kube-etcd-2 does not exist/,
    );
  });

  test('refuses 2 or 5 members, a mismatch with the input, a member without a node, shared nodes', () => {
    failsWith(() => checkCluster(inventory(2), undefined, profile), 'ClusterState', /only 1 or 3/);
    failsWith(() => checkCluster(inventory(3), 1, profile), 'ClusterState', /input says 1/);
    const noNode = inventory(1);
    noNode.members = [];
    failsWith(
      () => checkCluster(noNode, undefined, profile),
      'ClusterState',
      /has no pod on a node/,
    );
    const shared = inventory(3);
    for (const m of shared.members) m.nodeName = 'node-0';
    failsWith(() => checkCluster(shared, undefined, profile), 'ClusterState', /same node/);
  });
});

describe('verifyRestore', () => {
  const good = (): VerifyInput => ({
    members: 3,
    record: { revision: 100, keyCount: 20, kvHash: 4242 },
    health: {
      health: [0, 1, 2].map((n) => ({ endpoint: `e${n}`, health: true })),
      clusterIds: ['111'],
      revisions: [100, 101, 100],
    },
    keyspace: {
      keyCount: 20,
      hashes: [0, 1, 2].map((n) => ({ endpoint: `e${n}`, memberId: String(n), hash: 4242 })),
    },
    before: inventory(3),
    after: inventory(3),
    pdbSaved: true,
    profile,
  });

  test('a right restore: every check passed is one line', () => {
    const lines = verifyRestore(good());
    assert.deepEqual(lines, [
      '3/3 members healthy',
      'one cluster ID (111)',
      "revision 100 ≥ the snapshot's 100",
      "every member holds the snapshot's keyspace at revision 100 (hashkv 4242, as recorded at backup)",
      '20 keys at revision 100',
      'kube-etcd back to 3 replicas',
      'kube-apiserver back to 3 replicas',
      'gke-master-etcd-maintenance back to 1 replicas',
      'PodDisruptionBudget re-created with its saved spec',
    ]);
  });

  test('without a recorded hash, the line does not claim one was compared', () => {
    const v = good();
    v.record = { revision: 100 };
    const lines = verifyRestore(v);
    assert.ok(
      lines.includes("every member holds the snapshot's keyspace at revision 100 (hashkv 4242)"),
    );
  });

  const failures: Array<[string, (v: VerifyInput) => void, RegExp]> = [
    [
      'an unhealthy member',
      (v) => {
        (v.health.health[1] as { health: boolean }).health = false;
      },
      /2 of 3 members healthy/,
    ],
    [
      'two cluster IDs',
      (v) => {
        v.health.clusterIds = ['111', '222'];
      },
      /cluster IDs 111, 222/,
    ],
    [
      'a revision below the snapshot',
      (v) => {
        v.health.revisions = [99, 100, 100];
      },
      /revision 99 is below/,
    ],
    [
      'members that disagree',
      (v) => {
        (v.keyspace.hashes[2] as { hash: number }).hash = 1;
      },
      /disagree on the keyspace/,
    ],
    [
      'a hash unlike the backup',
      (v) => {
        for (const h of v.keyspace.hashes) h.hash = 7;
      },
      /differs from the backup's 4242/,
    ],
    [
      'a missing member hash',
      (v) => {
        v.keyspace.hashes.pop();
      },
      /disagree on the keyspace/,
    ],
    [
      'another key count',
      (v) => {
        v.keyspace.keyCount = 19;
      },
      /19 keys at revision 100, the backup recorded 20/,
    ],
    [
      'a replica count not put back',
      (v) => {
        v.after = { ...v.after, apiserverReplicas: 0 };
      },
      /kube-apiserver has 0 replicas, had 3/,
    ],
    [
      'a missing PDB',
      (v) => {
        v.after = { ...v.after, pdbPresent: false };
      },
      /PodDisruptionBudget is missing/,
    ],
  ];
  for (const [what, change, message] of failures) {
    test(`fails on ${what}`, () => {
      const v = good();
      change(v);
      failsWith(() => verifyRestore(v), FailureType.VerificationFailed, message);
    });
  }
});
