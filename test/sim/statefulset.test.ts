/**
 * The StatefulSet controller's monotonic rules (OrderedReady) against Parallel, the
 * immutability of podManagementPolicy, the OrderedReady + quorum-probe deadlock of a
 * restored kube-etcd scaled 0→3 (and the way out), and the reconciling controller.
 *
 * Pods here are Ready when their file /ready exists (an exec readiness probe), so a test
 * decides which pod is healthy, and take their grace period (1 s) to terminate.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import type * as k8s from '@kubernetes/client-node';
import {
  apiError,
  type Clients,
  clientsFor,
  eventually,
  execIn,
  patchAs,
  sleep,
} from './client.js';
import {
  type SimAdminCluster,
  type SimCluster,
  startSimAdminCluster,
  startSimCluster,
} from './index.js';

const NS = 'default';
const work = mkdtempSync(join(tmpdir(), 'sim-sts-test-'));
after(() => rmSync(work, { recursive: true, force: true }));

function set(
  name: string,
  policy: 'OrderedReady' | 'Parallel',
  replicas: number,
): k8s.V1StatefulSet {
  return {
    metadata: { name },
    spec: {
      replicas,
      podManagementPolicy: policy,
      serviceName: name,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          containers: [
            {
              name: 'main',
              image: 'x',
              // Ignores SIGTERM: each pod takes its grace period (1 s) to go.
              command: ['/bin/sh', '-c', 'trap "" TERM; while :; do sleep 1; done'],
              readinessProbe: {
                exec: { command: ['test', '-e', '/ready'] },
                periodSeconds: 1,
                failureThreshold: 1,
              },
            },
          ],
          terminationGracePeriodSeconds: 1,
        },
      },
    },
  };
}

describe('StatefulSet podManagementPolicy', () => {
  let sim: SimAdminCluster;
  let c: Clients;

  before(async () => {
    sim = await startSimAdminCluster({ readyAfterMs: 100 });
    c = clientsFor(sim.kubeconfigPath);
  });
  after(async () => {
    await sim?.stop();
  });

  const names = async (app: string) =>
    (await c.core.listNamespacedPod({ namespace: NS, labelSelector: `app=${app}` })).items
      .filter((p) => !p.metadata?.deletionTimestamp)
      .map((p) => p.metadata?.name ?? '')
      .sort();
  const healthy = (pod: string, yes: boolean) =>
    execIn(c.kc, NS, pod, 'main', yes ? ['touch', '/ready'] : ['rm', '-f', '/ready']);
  const ready = (pod: string) =>
    sim.pod(NS, pod)?.status?.conditions?.some((x) => x.type === 'Ready' && x.status === 'True') ===
    true;
  const running = (pod: string) =>
    eventually(`${pod} running`, async () => sim.pod(NS, pod)?.status?.phase === 'Running');
  const scale = (name: string, replicas: number) =>
    c.apps.patchNamespacedStatefulSetScale(
      { name, namespace: NS, body: { spec: { replicas } } },
      patchAs('merge'),
    );
  /** Asserts `check` holds for `ms`. */
  const holds = async (what: string, check: () => Promise<boolean> | boolean, ms = 2500) => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      assert.ok(await check(), what);
      await sleep(200);
    }
  };

  test('OrderedReady scales up one pod at a time, each Running and Ready before the next', async () => {
    await c.apps.createNamespacedStatefulSet({
      namespace: NS,
      body: set('ord', 'OrderedReady', 3),
    });
    await running('ord-0');
    await holds(
      'only ord-0 while it is not Ready',
      async () => (await names('ord')).join() === 'ord-0',
    );
    await healthy('ord-0', true);
    await running('ord-1');
    await holds('ord-2 waits for ord-1', async () => (await names('ord')).length === 2, 1500);
    await healthy('ord-1', true);
    await running('ord-2');
    await healthy('ord-2', true);
    await eventually('all ready', async () => ['ord-0', 'ord-1', 'ord-2'].every(ready));
  });

  test('OrderedReady scale-down: an unhealthy replica blocks it; highest ordinal first, one at a time', async () => {
    await healthy('ord-0', false);
    await eventually('ord-0 not ready', async () => !ready('ord-0'));
    await scale('ord', 2);
    await holds(
      'ord-2 stays while ord-0 (a replica) is unhealthy',
      async () => (await names('ord')).length === 3,
    );
    await healthy('ord-0', true);
    await eventually('ord-2 deleted', async () => (await names('ord')).join() === 'ord-0,ord-1');

    // Condemned ord-1 unhealthy, ord-0 healthy: scaling to 0 deletes... nothing while a
    // condemned pod that is not the first unhealthy one (ord-1 is) is unhealthy.
    await scale('ord', 3);
    await running('ord-2');
    await healthy('ord-2', false); // a new container: no /ready yet
    await healthy('ord-1', false);
    await eventually('1 and 2 not ready', async () => !ready('ord-1') && !ready('ord-2'));
    const deleted: string[] = [];
    const seen = setInterval(() => {
      for (const p of ['ord-0', 'ord-1', 'ord-2']) {
        const pod = sim.pod(NS, p);
        if ((!pod || pod.metadata.deletionTimestamp) && !deleted.includes(p)) deleted.push(p);
      }
    }, 20);
    try {
      await scale('ord', 0);
      await holds(
        'blocked by unhealthy ord-2 (ord-1 is the first unhealthy)',
        () => deleted.length === 0,
      );
      await healthy('ord-2', true);
      await eventually('all gone', async () => (await names('ord')).length === 0);
    } finally {
      clearInterval(seen);
    }
    assert.deepEqual(deleted, ['ord-2', 'ord-1', 'ord-0'], 'highest ordinal first');
    await eventually('status.replicas 0', async () => {
      const sts = await c.apps.readNamespacedStatefulSet({ name: 'ord', namespace: NS });
      return sts.status?.replicas === 0;
    });
  });

  test('Parallel creates and deletes all at once, healthy or not', async () => {
    await c.apps.createNamespacedStatefulSet({ namespace: NS, body: set('par', 'Parallel', 3) });
    await eventually('three pods at once', async () => (await names('par')).length === 3);
    assert.equal(['par-0', 'par-1', 'par-2'].some(ready), false, 'none of them Ready');
    await scale('par', 0);
    await eventually('all gone', async () => (await names('par')).length === 0);
  });

  test('podManagementPolicy is immutable: patch and update are refused with 422', async () => {
    const patch = await apiError(
      c.apps.patchNamespacedStatefulSet(
        { name: 'par', namespace: NS, body: { spec: { podManagementPolicy: 'OrderedReady' } } },
        patchAs('merge'),
      ),
    );
    assert.equal(patch.code, 422);
    assert.equal(patch.status.reason, 'Invalid');
    assert.equal(
      patch.status.message,
      `StatefulSet.apps "par" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden`,
    );
    const current = await c.apps.readNamespacedStatefulSet({ name: 'par', namespace: NS });
    const body = structuredClone(current);
    if (body.spec) body.spec.podManagementPolicy = 'OrderedReady';
    const put = await apiError(
      c.apps.replaceNamespacedStatefulSet({ name: 'par', namespace: NS, body }),
    );
    assert.equal(put.code, 422);
    // What may change still changes.
    await c.apps.patchNamespacedStatefulSet(
      { name: 'par', namespace: NS, body: { spec: { replicas: 1, minReadySeconds: 0 } } },
      patchAs('merge'),
    );
    const after = await c.apps.readNamespacedStatefulSet({ name: 'par', namespace: NS });
    assert.equal(after.spec?.podManagementPolicy, 'Parallel');
    assert.equal(after.spec?.replicas, 1);
    assert.deepEqual(sim.loopErrors, []);
  });
});

const run = promisify(execFile);

describe('OrderedReady + quorum readiness probe: a restored kube-etcd scaled 0→3 deadlocks', () => {
  let sim: SimCluster;
  let c: Clients;
  const ns = 'deadlock';

  before(async () => {
    sim = await startSimCluster({
      members: 3,
      userClusterName: ns,
      adminEtcd: false,
      etcdPodManagementPolicy: 'OrderedReady',
      etcdReadiness: 'quorum',
      readyAfterMs: 200,
    });
    c = clientsFor(sim.kubeconfigPath);
  });
  after(async () => {
    await sim?.stop();
  });

  const etcdPods = async () =>
    (await c.core.listNamespacedPod({ namespace: ns, labelSelector: 'component=kube-etcd' })).items;
  const scaleEtcd = (replicas: number) =>
    c.apps.patchNamespacedStatefulSetScale(
      { name: 'kube-etcd', namespace: ns, body: { spec: { replicas } } },
      patchAs('merge'),
    );

  test('kube-etcd-0 is never Ready and kube-etcd-1 is never created; deleting the pod after dropping the probe gets out', async () => {
    const sts = await c.apps.readNamespacedStatefulSet({ name: 'kube-etcd', namespace: ns });
    assert.equal(sts.spec?.podManagementPolicy, 'OrderedReady');
    assert.deepEqual(
      sts.spec?.template.spec?.containers[0]?.readinessProbe?.exec?.command?.slice(-2),
      ['endpoint', 'health'],
    );
    await sim.putKey('/deadlock/marker', 'before');
    const snapshot = join(work, 'deadlock.db');
    const save = await sim.etcdctl(['snapshot', 'save', snapshot], { member: 0 });
    assert.equal(save.code, 0, save.stderr);

    await scaleEtcd(0);
    await eventually('kube-etcd at 0', async () => (await etcdPods()).length === 0, 60_000);
    // Restore every member's data from the snapshot (as SPEC H5c, here from the host).
    const p = sim.profile;
    const initialCluster = [0, 1, 2]
      .map((i) => `kube-etcd-${i}=${p.peerUrlTemplate.replace('{member}', String(i))}`)
      .join(',');
    for (const i of [0, 1, 2]) {
      const out = join(work, `kube-etcd-${i}.etcd`);
      await run(
        sim.etcd.etcdctl,
        [
          'snapshot',
          'restore',
          snapshot,
          `--name=kube-etcd-${i}`,
          `--initial-cluster=${initialCluster}`,
          `--initial-cluster-token=${p.initialClusterToken}`,
          `--initial-advertise-peer-urls=${p.peerUrlTemplate.replace('{member}', String(i))}`,
          `--data-dir=${out}`,
        ],
        { env: { ETCDCTL_API: '3' } },
      );
      const pvc = sim.pvcHostDir(ns, `data-kube-etcd-${i}`) ?? '';
      await rm(join(pvc, 'member'), { recursive: true, force: true });
      await rename(join(out, 'member'), join(pvc, 'member'));
    }

    await scaleEtcd(3);
    await eventually(
      'kube-etcd-0 running',
      async () => sim.pod(ns, 'kube-etcd-0')?.status?.phase === 'Running',
    );
    // A member alone cannot reach quorum, so its quorum probe never passes, so the
    // controller never creates kube-etcd-1, which kube-etcd-0 would need for quorum.
    const end = Date.now() + 8000;
    while (Date.now() < end) {
      const pods = await etcdPods();
      assert.deepEqual(
        pods.map((x) => x.metadata?.name),
        ['kube-etcd-0'],
      );
      assert.equal(pods[0]?.status?.containerStatuses?.[0]?.ready, false);
      await sleep(500);
    }
    const stuck = await c.apps.readNamespacedStatefulSet({ name: 'kube-etcd', namespace: ns });
    assert.equal(stuck.status?.replicas, 1);
    assert.equal(stuck.status?.readyReplicas, 0);

    // Changing the template does not help: the controller waits for kube-etcd-0 before any
    // update. Deleting the stuck pod does (Kubernetes' "forced rollback").
    await c.apps.patchNamespacedStatefulSet(
      {
        name: 'kube-etcd',
        namespace: ns,
        body: [{ op: 'remove', path: '/spec/template/spec/containers/0/readinessProbe' }],
      },
      patchAs('json'),
    );
    await sleep(2000);
    assert.ok(sim.pod(ns, 'kube-etcd-0')?.spec.containers[0]?.readinessProbe, 'still the old pod');
    await c.core.deleteNamespacedPod({ name: 'kube-etcd-0', namespace: ns });
    await eventually(
      'three members',
      async () => {
        const pods = await etcdPods();
        return pods.length === 3 && pods.every((x) => x.status?.containerStatuses?.[0]?.ready);
      },
      60_000,
    );
    await eventually('quorum', () => sim.hasQuorum(), 60_000);
    assert.equal(await sim.getKey('/deadlock/marker'), 'before');
    assert.deepEqual(sim.loopErrors, []);
  });
});

describe('reconciler', () => {
  test("puts kube-etcd's replicas back after the delay; disable() stops it", async () => {
    const sim = await startSimCluster({
      members: 3,
      userClusterName: 'reconcile',
      adminEtcd: false,
      reconciler: { delayMs: 1500 },
    });
    try {
      const c = clientsFor(sim.kubeconfigPath);
      const replicas = async () =>
        (await c.apps.readNamespacedStatefulSet({ name: 'kube-etcd', namespace: 'reconcile' })).spec
          ?.replicas;
      const scale = (n: number) =>
        c.apps.patchNamespacedStatefulSetScale(
          { name: 'kube-etcd', namespace: 'reconcile', body: { spec: { replicas: n } } },
          patchAs('merge'),
        );
      assert.equal(sim.reconciler.enabled, true);
      const t0 = Date.now();
      await scale(0);
      assert.equal(await replicas(), 0);
      await eventually('put back to 3', async () => (await replicas()) === 3, 10_000);
      const took = Date.now() - t0;
      assert.ok(took >= 1400 && took < 5000, `after ${took} ms`);
      assert.equal(sim.reconciler.resets, 1);
      await sim.waitReady(30_000);

      sim.reconciler.disable();
      await scale(1);
      await sleep(3000);
      assert.equal(await replicas(), 1, 'disabled: left alone');
      sim.reconciler.enable(500);
      await eventually('enabled again: back to 3', async () => (await replicas()) === 3, 10_000);
      assert.equal(sim.reconciler.resets, 2);
      assert.deepEqual(sim.loopErrors, []);
    } finally {
      await sim.stop();
    }
  });
});
