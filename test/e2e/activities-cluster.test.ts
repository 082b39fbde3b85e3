/**
 * The cluster-facing activities against the simulated admin cluster (real etcd, real
 * exec over WebSocket, fault injection): each called twice gives the same result and the
 * same cluster state; waits time out cleanly; the PDB round-trips. The exec and copy
 * transport under them is tested in transport.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { parseWorkerConfig } from '../../activities/config/worker-config.js';
import { type Activities, createActivities } from '../../activities/index.js';
import { connectKube, mergePatch } from '../../activities/kube/client.js';
import { execInPod } from '../../activities/kube/exec.js';
import { activityDeps, repositoryHostOf } from '../../worker/create-worker.js';
import { simWorkerConfig } from '../harness/temporal.js';
import { type SimCluster, startSimCluster } from '../sim/index.js';

let sim: SimCluster;
let real: Activities;
let scratch: string;
const ns = 'user-cluster-1';

before(async () => {
  sim = await startSimCluster({ members: 3, userClusterName: ns, adminEtcd: false });
  scratch = mkdtempSync(join(tmpdir(), 'activities-cluster-'));
  real = createActivities(
    activityDeps(
      parseWorkerConfig(simWorkerConfig(sim, join(scratch, 'backups')), 'the test'),
      repositoryHostOf('activities-cluster', 'test-host'),
    ),
  );
});
after(async () => {
  await sim?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** Each activity, run in the SDK's mock activity context (heartbeats, cancellation). */
const activities = new Proxy({} as Activities, {
  get: (_target, name: string) => (input: unknown) =>
    new MockActivityEnvironment().run(
      real[name as keyof Activities] as (i: unknown) => Promise<unknown>,
      input,
    ),
});
const cluster = () => ({ adminCluster: 'sim', namespace: ns });
const replicasOf = async (name: string) =>
  (await kube().apps.readNamespacedStatefulSet({ name, namespace: ns })).spec?.replicas;
const kube = () => connectKube(sim.kubeconfigPath);

async function podUids(labelSelector: string): Promise<string[]> {
  const pods = await kube().core.listNamespacedPod({ namespace: ns, labelSelector });
  return pods.items.map((p) => p.metadata?.uid ?? '').sort();
}

describe('workloads', () => {
  const apiserver = { ...cluster(), kind: 'StatefulSet' as const, name: 'kube-apiserver' };

  test('scale to 0 waits until the pods are gone, back to 3 until ready; twice is the same', async () => {
    assert.equal(await replicasOf('kube-apiserver'), 3);
    for (let i = 0; i < 2; i++) {
      await activities.scaleTo({ ...apiserver, replicas: 0, timeoutMs: 60_000 });
      assert.deepEqual(await podUids('app=kube-apiserver'), []);
      assert.equal(await replicasOf('kube-apiserver'), 0);
    }
    for (let i = 0; i < 2; i++) {
      await activities.scaleTo({ ...apiserver, replicas: 3, timeoutMs: 60_000 });
      const pods = await kube().core.listNamespacedPod({
        namespace: ns,
        labelSelector: 'app=kube-apiserver',
      });
      assert.equal(pods.items.length, 3);
      assert.ok(
        pods.items.every((p) =>
          p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
        ),
      );
    }
  });

  test('a wait that cannot be met in time times out cleanly, non-retryably, saying what it waited for', async () => {
    await assert.rejects(
      activities.scaleTo({ ...apiserver, replicas: 0, timeoutMs: 1 }),
      (e: unknown) =>
        e instanceof ApplicationFailure &&
        e.nonRetryable &&
        e.type === 'WaitTimeout' &&
        /want 0/.test(e.message),
    );
    await activities.scaleTo({ ...apiserver, replicas: 3, timeoutMs: 60_000 });
    assert.equal((await podUids('app=kube-apiserver')).length, 3);
  });
});

describe('PodDisruptionBudget', () => {
  test('save, delete twice, re-create twice: the same spec comes back', async () => {
    const ref = { ...cluster(), name: 'kube-apiserver-pdb' };
    const saved = await activities.savePdb(ref);
    assert.ok(saved, 'the simulated cluster has the PDB');
    const { manifest, uid } = saved;
    assert.equal(manifest.kind, 'PodDisruptionBudget');
    assert.ok(uid, 'the uid of the object saved, for the delete');
    assert.equal(JSON.stringify(manifest).includes('resourceVersion'), false);
    assert.equal(JSON.stringify(manifest).includes(uid), false, 'no uid in the manifest');
    assert.equal(await activities.deletePdb({ ...ref, uid }), 'deleted');
    assert.equal(await activities.deletePdb({ ...ref, uid }), 'absent');
    assert.equal(await activities.savePdb(ref), undefined);
    assert.equal(await activities.recreatePdb({ ...cluster(), manifest }), 'created');
    assert.equal(await activities.recreatePdb({ ...cluster(), manifest }), 'present');
    const again = await activities.savePdb(ref);
    assert.deepEqual(again?.manifest.spec, manifest.spec);

    // A PDB re-created by someone else since it was saved (another uid) is not deleted.
    await assert.rejects(
      activities.deletePdb({ ...ref, uid }),
      (e: unknown) => e instanceof ApplicationFailure && e.nonRetryable && e.type === 'PdbConflict',
    );
    assert.ok(await activities.savePdb(ref), 'still there');

    const different = { ...manifest, spec: { ...manifest.spec, minAvailable: 42 } };
    await assert.rejects(
      activities.recreatePdb({ ...cluster(), manifest: different }),
      (e: unknown) => e instanceof ApplicationFailure && e.nonRetryable && e.type === 'PdbConflict',
    );
  });

  test('owner references survive the round trip', async () => {
    const kubeApi = kube();
    const ref = { ...cluster(), name: 'kube-apiserver-pdb' };
    const ownerReferences = [
      { apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: '1f0e-owner', controller: true },
    ];
    await kubeApi.policy.patchNamespacedPodDisruptionBudget(
      { name: ref.name, namespace: ns, body: { metadata: { ownerReferences } } },
      mergePatch,
    );
    const saved = await activities.savePdb(ref);
    assert.deepEqual(saved?.manifest.metadata.ownerReferences, ownerReferences);
    assert.equal(await activities.deletePdb({ ...ref, uid: saved?.uid }), 'deleted');
    assert.ok(saved);
    await activities.recreatePdb({ ...cluster(), manifest: saved.manifest });
    const back = await kubeApi.policy.readNamespacedPodDisruptionBudget({
      name: ref.name,
      namespace: ns,
    });
    assert.deepEqual(
      back.metadata?.ownerReferences?.map((o) => ({ ...o })),
      ownerReferences,
    );
  });

  test('Secrets are listed by name only: their data never reaches the worker', async () => {
    const from = sim.requests.length;
    await activities.inspectUserCluster({ ...cluster(), profile: sim.profile });
    const secretLists = sim.requests.slice(from).filter((r) => r.resource === 'secrets');
    assert.equal(secretLists.length, 1);
    assert.deepEqual(
      secretLists.map((r) => [r.verb, r.as]),
      [['list', 'PartialObjectMetadataList']],
    );
  });
});

describe('pods', () => {
  test('inventory of the user cluster (H1, H4, R1)', async () => {
    const inventory = await activities.inspectUserCluster({ ...cluster(), profile: sim.profile });
    assert.deepEqual(
      inventory.members.map((m) => m.name),
      ['kube-etcd-0', 'kube-etcd-1', 'kube-etcd-2'],
    );
    assert.equal(
      new Set(inventory.members.map((m) => m.nodeName)).size,
      3,
      'each member on its own node',
    );
    assert.equal(inventory.secretName, sim.etcdSecretName);
    assert.deepEqual(inventory.dataClaims, [
      'data-kube-etcd-0',
      'data-kube-etcd-1',
      'data-kube-etcd-2',
    ]);
    assert.equal(inventory.etcdReplicas, 3);
    assert.equal(inventory.apiserverReplicas, 3);
    assert.equal(inventory.maintenanceReplicas, 1);
    assert.equal(inventory.pdbPresent, true);
  });

  test('the utility pod of SPEC.md, on the member node; ensure and delete are idempotent', async () => {
    const inventory = await activities.inspectUserCluster({ ...cluster(), profile: sim.profile });
    const member1 = inventory.members[1];
    assert.ok(member1?.nodeName);
    const input = {
      ...cluster(),
      member: 1,
      nodeName: member1.nodeName,
      gkeOnPremVersion: '1.5.0-gke.0',
      secretName: inventory.secretName,
      profile: sim.profile,
      timeoutMs: 60_000,
    };
    assert.deepEqual(await activities.ensureUtilityPod(input), {
      pod: 'etcd-utility-1',
      created: true,
    });
    assert.deepEqual(await activities.ensureUtilityPod(input), {
      pod: 'etcd-utility-1',
      created: false,
    });
    const pod = await kube().core.readNamespacedPod({ name: 'etcd-utility-1', namespace: ns });
    assert.equal(pod.spec?.nodeName, member1.nodeName);
    assert.equal(
      pod.spec?.containers[0]?.image,
      'gcr.io/gke-on-prem-release/etcd-util:1.5.0-gke.0',
    );
    assert.equal(pod.spec?.volumes?.[0]?.persistentVolumeClaim?.claimName, 'data-kube-etcd-1');
    assert.equal(pod.spec?.volumes?.[1]?.secret?.secretName, inventory.secretName);
    // The member's data and certificates are where the runbook expects them.
    const look = await execInPod(kube().config, {
      namespace: ns,
      pod: 'etcd-utility-1',
      container: 'etcd-utility',
      argv: ['sh', '-c', 'ls "$1" "$2"', 'sh', sim.profile.dataDir, sim.profile.certificatesDir],
    });
    assert.equal(look.exitCode, 0, look.stderr);
    assert.match(look.stdout, /member/);
    assert.match(look.stdout, /etcdCA\.crt/);

    const different = { ...input, gkeOnPremVersion: '9.9.9' };
    await assert.rejects(
      activities.ensureUtilityPod(different),
      (e: unknown) =>
        e instanceof ApplicationFailure && e.nonRetryable && e.type === 'ClusterState',
    );
    assert.equal(
      await activities.deletePod({ ...cluster(), name: 'etcd-utility-1', timeoutMs: 60_000 }),
      'deleted',
    );
    assert.equal(
      await activities.deletePod({ ...cluster(), name: 'etcd-utility-1', timeoutMs: 60_000 }),
      'absent',
    );
  });

  test('API errors 429/500 stay retryable', async () => {
    const inspect = { ...cluster(), profile: sim.profile };
    sim.faults.failNext(1, 500, { verb: 'get', resource: 'statefulsets' });
    await assert.rejects(
      activities.inspectUserCluster(inspect),
      (e: unknown) => !(e instanceof ApplicationFailure && e.nonRetryable),
    );
    assert.equal((await activities.inspectUserCluster(inspect)).apiserverReplicas, 3);
  });

  test('no protocol violation recorded', () => {
    assert.deepEqual(sim.violations, []);
    assert.deepEqual(sim.loopErrors, []);
  });
});

describe('names, records and the state inspection refuses', () => {
  test('resolveTarget: the user cluster must be one of the admin cluster; names unknown to the worker are refused', async () => {
    const resolved = await activities.resolveTarget({ userClusterName: ns });
    assert.deepEqual(
      { adminCluster: resolved.adminCluster, repository: resolved.repository },
      { adminCluster: 'sim', repository: 'local' },
    );
    assert.equal(resolved.profile.etcdEndpoint, sim.profile.etcdEndpoint);
    const refused = (
      input: { adminCluster?: string; repository?: string; userClusterName: string },
      message: RegExp,
    ) =>
      assert.rejects(activities.resolveTarget(input), (e: unknown) => {
        assert.ok(
          e instanceof ApplicationFailure && e.nonRetryable && e.type === 'InvalidInput',
          String(e),
        );
        assert.match(e.message, message);
        return true;
      });
    await refused(
      { userClusterName: 'kube-system' },
      /kube-system is not a user cluster of admin cluster sim: it holds no StatefulSet kube-etcd/,
    );
    await refused({ userClusterName: 'nope' }, /there is no such namespace/);
    await refused({ userClusterName: ns, adminCluster: 'prod' }, /no admin cluster named "prod"/);
    await refused({ userClusterName: ns, repository: 'nfs' }, /no repository named "nfs"/);
  });

  test('a required object that is missing fails inspection at once (ClusterState)', async () => {
    const missing = { ...sim.profile, maintenanceDeployment: 'no-such-deployment' };
    await assert.rejects(
      activities.inspectUserCluster({ ...cluster(), profile: missing }),
      (e: unknown) =>
        e instanceof ApplicationFailure &&
        e.nonRetryable &&
        e.type === 'ClusterState' &&
        /Deployment user-cluster-1\/no-such-deployment does not exist/.test(e.message),
    );
  });

  test('the record of the originals: the first one written stays, inspection reports it, clearing removes it', async () => {
    const first = {
      workflowId: 'r1',
      startedAt: '2026-12-01T00:00:00Z',
      replicas: { etcd: 3, apiserver: 3, maintenance: 1 },
      memberNodes: { '0': 'n0', '1': 'n1', '2': 'n2' },
    };
    assert.deepEqual(await activities.recordRestore({ ...cluster(), record: first }), first);
    const second = {
      ...first,
      workflowId: 'r2',
      replicas: { etcd: 0, apiserver: 0, maintenance: 0 },
    };
    assert.deepEqual(
      await activities.recordRestore({ ...cluster(), record: second }),
      first,
      'the first wins',
    );
    const inventory = await activities.inspectUserCluster({ ...cluster(), profile: sim.profile });
    assert.deepEqual(inventory.previousRestore, first);
    await activities.clearRestoreRecord(cluster());
    await activities.clearRestoreRecord(cluster());
    const after = await activities.inspectUserCluster({ ...cluster(), profile: sim.profile });
    assert.equal(after.previousRestore, undefined);
  });

  test('inspection reads how kube-etcd starts its pods', async () => {
    const inventory = await activities.inspectUserCluster({ ...cluster(), profile: sim.profile });
    assert.ok(['OrderedReady', 'Parallel'].includes(inventory.etcdStatefulSet.podManagementPolicy));
    assert.ok(['none', 'alone', 'quorum'].includes(inventory.etcdStatefulSet.readiness));
    assert.equal(inventory.ready.apiserver, 3);
  });
});
