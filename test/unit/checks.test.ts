/**
 * The restore's checks (workflows/restore/checks.ts) as pure functions of what was read, and
 * how a readiness probe is read (activities/cluster/workloads.ts).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { V1Probe } from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import { classifyReadiness } from '../../activities/cluster/workloads.js';
import {
  type ClusterInventory,
  clusterProfileSchema,
  FailureType,
} from '../../workflows/contract/index.js';
import {
  changesSince,
  checkCluster,
  memberNode,
  originalReplicas,
  type RestoredEtcd,
  stopIsPointOfNoReturn,
  verifyControlPlane,
  verifyRestoredEtcd,
} from '../../workflows/restore/checks.js';

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
    ready: { etcd: members - 1, apiserver: 0, maintenance: 1 },
    pdbPresent: true,
    namespaceUid: 'uid-of-the-namespace',
    etcdStatefulSet: { podManagementPolicy: 'Parallel', readiness: 'none' },
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
    const broken = inventory(3, { dataClaims: ['data-kube-etcd-0'], nodes: ['node-0', 'node-1'] });
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

  test('OrderedReady with a probe a member cannot pass alone cannot start 3 restored members: refused up front', () => {
    const shape = (
      podManagementPolicy: 'OrderedReady' | 'Parallel',
      readiness: 'none' | 'alone' | 'quorum',
    ) =>
      inventory(3, {
        etcdStatefulSet: {
          podManagementPolicy,
          readiness,
          readinessProbe: 'exec etcdctl endpoint health',
        },
      });
    failsWith(
      () => checkCluster(shape('OrderedReady', 'quorum'), undefined, profile),
      FailureType.ClusterState,
      /OrderedReady and a readiness probe a member cannot pass before its cluster has a quorum.*kube-etcd-0 serves no client until a second member runs/,
    );
    // What a real cluster may have been created with and can be restored:
    for (const [policy, readiness] of [
      ['OrderedReady', 'alone'],
      ['OrderedReady', 'none'],
      ['Parallel', 'quorum'],
      ['Parallel', 'alone'],
    ] as const) {
      assert.equal(
        checkCluster(shape(policy, readiness), undefined, profile),
        3,
        `${policy} ${readiness}`,
      );
    }
    // One member is its own quorum.
    const one = inventory(1, {
      etcdStatefulSet: { podManagementPolicy: 'OrderedReady', readiness: 'quorum' },
    });
    assert.equal(checkCluster(one, undefined, profile), 1);
  });

  test('after an abandoned restore (workloads at 0, no member pod), the recorded originals and nodes count', () => {
    const left = inventory(3, {
      members: [],
      etcdReplicas: 0,
      apiserverReplicas: 0,
      maintenanceReplicas: 0,
      previousRestore: {
        workflowId: 'old',
        startedAt: '2026-11-30T10:00:00Z',
        replicas: { etcd: 3, apiserver: 3, maintenance: 1 },
        memberNodes: { '0': 'node-0', '1': 'node-1', '2': 'node-2' },
      },
    });
    assert.deepEqual(originalReplicas(left), { etcd: 3, apiserver: 3, maintenance: 1 });
    assert.equal(checkCluster(left, undefined, profile), 3, 'not "0 replicas: only 1 or 3"');
    assert.equal(memberNode(left, 2), 'node-2', 'from the record: no pod says it');
    failsWith(
      () =>
        checkCluster({ ...left, previousRestore: undefined, etcdReplicas: 3 }, undefined, profile),
      FailureType.ClusterState,
      /kube-etcd-0 has no pod on a node: its node cannot be known/,
    );
  });
});

describe('stopIsPointOfNoReturn: can stopping kube-etcd be undone by scaling back?', () => {
  const ordered = { podManagementPolicy: 'OrderedReady' as const, readiness: 'none' as const };
  const withReady = (ready: boolean[]) =>
    inventory(ready.length, {
      etcdStatefulSet: ordered,
      members: inventory(ready.length).members.map((m, n) => ({ ...m, ready: ready[n] === true })),
    });
  test('Parallel: always, whichever member is broken', () => {
    assert.equal(stopIsPointOfNoReturn(inventory(3), 3), false);
  });
  test('OrderedReady with a broken member below a healthy one: no (scaling back would start only the broken one)', () => {
    assert.equal(stopIsPointOfNoReturn(withReady([false, true, true]), 3), true);
    assert.equal(stopIsPointOfNoReturn(withReady([true, false, true]), 3), true);
  });
  test('OrderedReady with every member Ready, or only the last broken, or all broken: yes', () => {
    assert.equal(stopIsPointOfNoReturn(withReady([true, true, true]), 3), false);
    assert.equal(stopIsPointOfNoReturn(withReady([true, true, false]), 3), false);
    assert.equal(stopIsPointOfNoReturn(withReady([false, false, false]), 3), false);
    assert.equal(stopIsPointOfNoReturn(withReady([false]), 1), false);
  });
});

describe('changesSince the approved plan', () => {
  test('the same cluster: no change; another node or replica count: named', () => {
    assert.deepEqual(changesSince(inventory(3), inventory(3), 3), []);
    const moved = inventory(3);
    (moved.members[1] as { nodeName: string }).nodeName = 'node-9';
    const changes = changesSince(inventory(3), { ...moved, apiserverReplicas: 5 }, 3);
    assert.equal(changes.length, 2);
    assert.match(changes.join('; '), /replicas: .*"apiserver":3.* then, .*"apiserver":5.* now/);
    assert.match(changes.join('; '), /node of member 1: "node-1" then, "node-9" now/);
  });
});

describe('verifyRestoredEtcd (before H7)', () => {
  const good = (): RestoredEtcd => ({
    members: 3,
    record: { revision: 100, keyCount: 20, kvHash: 4242, kvHashCompactRevision: 50 },
    health: {
      health: [0, 1, 2].map((n) => ({ endpoint: `e${n}`, health: true })),
      clusterIds: ['111'],
      memberIds: ['1', '2', '3'],
      revisions: [100, 101, 100],
      versions: ['3.4.23', '3.4.23', '3.4.23'],
    },
    keyspace: {
      keyCount: 20,
      hashes: [0, 1, 2].map((n) => ({
        endpoint: `e${n}`,
        memberId: String(n),
        hash: 4242,
        compactRevision: 50,
      })),
    },
  });

  test('a right restore: every check passed is one line, and claims only what was checked', () => {
    assert.deepEqual(verifyRestoredEtcd(good()), [
      '3/3 members healthy',
      'one cluster ID (111)',
      '3 distinct member IDs',
      "revision 100 ≥ the snapshot's 100",
      '20 keys at revision 100, as recorded at backup',
      'every member has hashkv 4242 at revision 100, as recorded at backup (compact revision 50)',
    ]);
  });

  test('a hash read at another compact revision is not compared, and the line says why', () => {
    const v = good();
    for (const h of v.keyspace.hashes) {
      h.hash = 9999;
      h.compactRevision = 40;
    }
    const lines = verifyRestoredEtcd(v);
    assert.ok(
      lines.includes(
        "every member has hashkv 9999 at revision 100; not compared with the backup's: it was read at compact revision 50, the restored members are at 40 (a compaction ran between the snapshot and the reading)",
      ),
      lines.join('\n'),
    );
  });

  test('an imported snapshot (no recorded hash or count) does not claim a match', () => {
    const v = good();
    v.record = { revision: 100 };
    const lines = verifyRestoredEtcd(v);
    assert.ok(lines.includes('20 keys at revision 100 (the backup recorded no count to compare)'));
    assert.ok(
      lines.includes(
        'every member has hashkv 4242 at revision 100; not compared with the backup: it recorded no hash (an imported snapshot)',
      ),
    );
    assert.equal(
      lines.some((l) => /as recorded at backup/.test(l)),
      false,
    );
  });

  const failures: Array<[string, (v: RestoredEtcd) => void, RegExp]> = [
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
      'a member ID twice',
      (v) => {
        v.health.memberIds = ['1', '1', '3'];
      },
      /2 distinct member IDs for 3 members/,
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
      'a hash unlike the backup at the same compact revision',
      (v) => {
        for (const h of v.keyspace.hashes) h.hash = 7;
      },
      /differs from the backup's 4242 \(both at compact revision 50\)/,
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
  ];
  for (const [what, change, message] of failures) {
    test(`fails on ${what}`, () => {
      const v = good();
      change(v);
      failsWith(() => verifyRestoredEtcd(v), FailureType.VerificationFailed, message);
    });
  }
});

describe('verifyControlPlane (after H9)', () => {
  const originals = { etcd: 3, apiserver: 3, maintenance: 1 };
  test('back to the originals, PDB re-created', () => {
    assert.deepEqual(
      verifyControlPlane({ originals, after: inventory(3), pdbSaved: true, profile }),
      [
        'kube-etcd back to 3 replicas',
        'kube-apiserver back to 3 replicas',
        'gke-master-etcd-maintenance back to 1 replicas',
        'PodDisruptionBudget present again (re-created from the one saved at H2)',
      ],
    );
  });
  test('a count not put back, or a missing PDB, fails', () => {
    failsWith(
      () =>
        verifyControlPlane({
          originals,
          after: inventory(3, { apiserverReplicas: 0 }),
          pdbSaved: true,
          profile,
        }),
      FailureType.VerificationFailed,
      /kube-apiserver has 0 replicas, had 3/,
    );
    failsWith(
      () =>
        verifyControlPlane({
          originals,
          after: inventory(3, { pdbPresent: false }),
          pdbSaved: true,
          profile,
        }),
      FailureType.VerificationFailed,
      /PodDisruptionBudget is missing/,
    );
  });
});

describe('classifyReadiness: can a restored member pass the probe before it has a quorum?', () => {
  test('only probes outside the client API can; a serializable read cannot', () => {
    const cases: Array<[V1Probe | undefined, string]> = [
      [undefined, 'none'],
      [{ tcpSocket: { port: 2379 } }, 'alone'],
      [{ httpGet: { path: '/health?serializable=true', port: 2381 } }, 'alone'],
      [{ httpGet: { path: '/livez', port: 2381 } }, 'alone'],
      [{ httpGet: { path: '/health', port: 2381 } }, 'quorum'],
      [{ exec: { command: ['etcdctl', 'get', 'health', '--consistency=s'] } }, 'quorum'],
      [{ exec: { command: ['etcdctl', 'endpoint', 'health'] } }, 'quorum'],
    ];
    for (const [probe, expected] of cases)
      assert.equal(classifyReadiness(probe).readiness, expected, JSON.stringify(probe));
  });
});
