/**
 * Kubelet hazards: a container killed and restarted (restartContainer) loses its writable
 * root and its exec sessions when `freshContainerOnRestart` is on, as with a real runtime,
 * while volumes stay; kube-etcd readiness probes (`etcdReadiness`) that pass on a member
 * without quorum (`local`) or only with one (`quorum`).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type * as k8s from '@kubernetes/client-node';
import { type Clients, clientsFor, eventually, execIn, patchAs, sleep } from './client.js';
import {
  type SimAdminCluster,
  type SimCluster,
  startSimAdminCluster,
  startSimCluster,
} from './index.js';

const NS = 'default';
const LOOP = ['/bin/sh', '-c', 'while :; do sleep 1; done'];

function utility(name: string): k8s.V1Pod {
  return {
    metadata: { name },
    spec: {
      containers: [
        {
          name: 'etcd-utility',
          image: 'gcr.io/gke-on-prem-release/etcd-util:1.31.0-gke.0',
          command: LOOP,
          volumeMounts: [
            { name: 'data', mountPath: '/var/lib/etcd' },
            { name: 'certs', mountPath: '/etcd.local.config/certificates' },
          ],
        },
      ],
      volumes: [
        { name: 'data', persistentVolumeClaim: { claimName: `data-${name}` } },
        { name: 'certs', secret: { secretName: 'certs', defaultMode: 420 } },
      ],
      terminationGracePeriodSeconds: 1,
    },
  };
}

async function setUp(
  sim: SimAdminCluster,
  c: Clients,
  name: string,
  body: k8s.V1Pod = utility(name),
): Promise<void> {
  await c.core.createNamespacedPersistentVolumeClaim({
    namespace: NS,
    body: {
      metadata: { name: `data-${name}` },
      spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
    },
  });
  await c.core.createNamespacedPod({ namespace: NS, body });
  await eventually(`${name} ready`, async () => {
    const p = await c.core.readNamespacedPod({ name, namespace: NS });
    return p.status?.containerStatuses?.[0]?.ready === true;
  });
  assert.ok(sim.podRootDir(NS, name));
}

const sh = (c: Clients, pod: string, script: string) =>
  execIn(c.kc, NS, pod, 'etcd-utility', ['/bin/sh', '-c', script]);

async function restarted(c: Clients, pod: string, count: number): Promise<k8s.V1ContainerStatus> {
  return eventually(`${pod} restarted ${count}x and ready`, async () => {
    const p = await c.core.readNamespacedPod({ name: pod, namespace: NS });
    const s = p.status?.containerStatuses?.[0];
    return s?.restartCount === count && s.ready ? s : undefined;
  });
}

describe('restartContainer', () => {
  let sim: SimAdminCluster;
  let c: Clients;
  let plain: SimAdminCluster;
  let pc: Clients;

  before(async () => {
    sim = await startSimAdminCluster({
      freshContainerOnRestart: true,
      readyAfterMs: 100,
      backoffInitialMs: 200,
    });
    c = clientsFor(sim.kubeconfigPath);
    plain = await startSimAdminCluster({ readyAfterMs: 100, backoffInitialMs: 200 });
    pc = clientsFor(plain.kubeconfigPath);
    for (const [cc] of [[c], [pc]] as const) {
      await cc.core.createNamespacedSecret({
        namespace: NS,
        body: { metadata: { name: 'certs' }, stringData: { 'etcd.key': 'KEY' } },
      });
    }
  });
  after(async () => {
    await sim?.stop();
    await plain?.stop();
  });

  test('freshContainerOnRestart: files in / are gone after a restart, volumes stay, execs die', async () => {
    await setUp(sim, c, 'u1');
    const w = await sh(c, 'u1', 'echo mine > /snapshot.db && echo keep > /var/lib/etcd/keep');
    assert.equal(w.exitCode, 0, w.stderr);
    const before = sim.podRootDir(NS, 'u1') ?? '';
    assert.equal(readFileSync(join(before, 'snapshot.db'), 'utf8'), 'mine\n');
    // An exec session in flight (a long copy into the pod) dies with the container.
    const inFlight = sh(c, 'u1', 'sleep 30');
    await sleep(300);
    await sim.restartContainer(NS, 'u1');
    const r = await inFlight;
    assert.equal(r.exitCode, 137, 'the exec process was killed with its container');
    const s = await restarted(c, 'u1', 1);
    assert.equal(s.lastState?.terminated?.exitCode, 137);
    assert.equal(s.lastState?.terminated?.reason, 'Error');
    const after = await sh(
      c,
      'u1',
      'ls /snapshot.db; cat /var/lib/etcd/keep /etcd.local.config/certificates/etcd.key',
    );
    assert.match(after.stderr, /No such file or directory/);
    assert.equal(after.stdout.toString(), 'keep\nKEY');
    assert.notEqual(sim.podRootDir(NS, 'u1'), before);
    assert.equal(existsSync(before), false, 'the old writable layer is removed');
    // A new pod of the same name starts from an empty root too.
    await sh(c, 'u1', 'echo again > /snapshot.db');
    await c.core.deleteNamespacedPod({ name: 'u1', namespace: NS, gracePeriodSeconds: 0 });
    await eventually('u1 gone', async () => !sim.pod(NS, 'u1'));
    await c.core.createNamespacedPod({ namespace: NS, body: utility('u1') });
    await eventually(
      'u1 back',
      async () => sim.pod(NS, 'u1')?.status?.containerStatuses?.[0]?.ready,
    );
    const fresh = await sh(c, 'u1', 'test -e /snapshot.db || echo none; cat /var/lib/etcd/keep');
    assert.equal(fresh.stdout.toString(), 'none\nkeep\n');
    assert.deepEqual(sim.loopErrors, []);
  });

  test('default: a restarted container keeps its root (the simulator as it was)', async () => {
    await setUp(plain, pc, 'u2');
    await sh(pc, 'u2', 'echo mine > /snapshot.db');
    await plain.restartContainer(NS, 'u2', 'etcd-utility');
    await restarted(pc, 'u2', 1);
    const r = await sh(pc, 'u2', 'cat /snapshot.db');
    assert.equal(r.stdout.toString(), 'mine\n');
  });

  test('restartPolicy Never: a killed container is not restarted and the pod Fails', async () => {
    const body = utility('u3');
    body.spec = { ...body.spec, restartPolicy: 'Never', containers: body.spec?.containers ?? [] };
    await setUp(sim, c, 'u3', body);
    await sim.restartContainer(NS, 'u3');
    const p = await eventually('u3 failed', async () => {
      const x = await c.core.readNamespacedPod({ name: 'u3', namespace: NS });
      return x.status?.phase === 'Failed' ? x : undefined;
    });
    assert.equal(p.status?.containerStatuses?.[0]?.restartCount, 0);
    assert.equal(p.status?.containerStatuses?.[0]?.state?.terminated?.exitCode, 137);
  });
});

/** Scales kube-etcd to 1: members 1 and 2 go, kube-etcd-0 has no quorum any more. */
async function stopTwoMembers(sim: SimCluster, c: Clients): Promise<void> {
  const ns = sim.userClusterName;
  await c.apps.patchNamespacedStatefulSetScale(
    { name: 'kube-etcd', namespace: ns, body: { spec: { replicas: 1 } } },
    patchAs('merge'),
  );
  await eventually('members 1 and 2 gone', async () => {
    const pods = await c.core.listNamespacedPod({
      namespace: ns,
      labelSelector: 'component=kube-etcd',
    });
    return pods.items.length === 1;
  });
}

const etcd0Ready = (sim: SimCluster) =>
  sim.pod(sim.userClusterName, 'kube-etcd-0')?.status?.containerStatuses?.[0]?.ready === true;

describe('kube-etcd readiness probes', () => {
  test("'local': the probe is in the template, and a member that lost quorum stays Ready", async () => {
    const sim = await startSimCluster({
      members: 3,
      userClusterName: 'probe-local',
      adminEtcd: false,
      etcdReadiness: 'local',
    });
    try {
      const c = clientsFor(sim.kubeconfigPath);
      const sts = await c.apps.readNamespacedStatefulSet({
        name: 'kube-etcd',
        namespace: 'probe-local',
      });
      const probe = sts.spec?.template.spec?.containers[0]?.readinessProbe;
      assert.deepEqual(probe?.exec?.command?.slice(-3), ['get', 'health', '--consistency=s']);
      assert.equal(probe?.periodSeconds, 1);
      assert.equal(probe?.failureThreshold, 3);
      await stopTwoMembers(sim, c);
      // What the probe runs, run by hand: the serializable read passes, a linearizable fails.
      const cmd = probe?.exec?.command ?? [];
      const local = await execIn(c.kc, 'probe-local', 'kube-etcd-0', 'kube-etcd', cmd);
      assert.equal(local.exitCode, 0, local.stderr);
      const linear = await execIn(c.kc, 'probe-local', 'kube-etcd-0', 'kube-etcd', [
        ...cmd.slice(0, -3),
        'get',
        'health',
      ]);
      assert.notEqual(linear.exitCode, 0);
      for (let i = 0; i < 6; i++) {
        assert.ok(etcd0Ready(sim), `kube-etcd-0 still Ready after ${i} s`);
        await sleep(1000);
      }
      assert.deepEqual(sim.loopErrors, []);
    } finally {
      await sim.stop();
    }
  });

  test("'quorum': a member that lost quorum goes NotReady after failureThreshold probes", async () => {
    const sim = await startSimCluster({
      members: 3,
      userClusterName: 'probe-quorum',
      adminEtcd: false,
      etcdReadiness: 'quorum',
    });
    try {
      const c = clientsFor(sim.kubeconfigPath);
      assert.ok(etcd0Ready(sim));
      const t0 = Date.now();
      await stopTwoMembers(sim, c);
      await eventually('kube-etcd-0 NotReady', async () => !etcd0Ready(sim), 20_000);
      assert.ok(Date.now() - t0 >= 2000, 'not before three failed probes');
      const p = await c.core.readNamespacedPod({ name: 'kube-etcd-0', namespace: 'probe-quorum' });
      assert.equal(p.status?.phase, 'Running');
      assert.equal(p.status?.conditions?.find((x) => x.type === 'Ready')?.status, 'False');
      // Back to three: quorum again, the probe passes again.
      await c.apps.patchNamespacedStatefulSetScale(
        { name: 'kube-etcd', namespace: 'probe-quorum', body: { spec: { replicas: 3 } } },
        patchAs('merge'),
      );
      await eventually('kube-etcd-0 Ready again', async () => etcd0Ready(sim), 30_000);
      assert.deepEqual(sim.loopErrors, []);
    } finally {
      await sim.stop();
    }
  });
});
