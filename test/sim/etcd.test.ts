/**
 * The GKE on-prem-shaped user cluster with real etcd behind the pods: shape, real writes
 * from kube-apiserver, snapshots from inside the pods (SPEC B2, A3), corruption that
 * crash-loops, quorum with one and two corrupt members, a correct restore (SPEC R and H,
 * done by hand here) that brings the cluster back, and the protocol-violation record.
 */
import assert from 'node:assert/strict';
import { createReadStream, createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import type * as k8s from '@kubernetes/client-node';
import { clusterProfileSchema } from '../../workflows/contract/index.js';
import { type Clients, clientsFor, eventually, execIn, patchAs } from './client.js';
import { type SimCluster, startSimCluster } from './index.js';

const work = mkdtempSync(join(tmpdir(), 'sim-etcd-test-'));
after(() => rmSync(work, { recursive: true, force: true }));

const member = (template: string, n: number) => template.replaceAll('{member}', String(n));

function tlsFlags(sim: SimCluster): string[] {
  const p = sim.profile;
  return [
    `--cacert=${p.certificatesDir}/${p.caFile}`,
    `--cert=${p.certificatesDir}/${p.certFile}`,
    `--key=${p.certificatesDir}/${p.keyFile}`,
  ];
}

async function etcdPods(c: Clients, ns: string): Promise<k8s.V1Pod[]> {
  return (await c.core.listNamespacedPod({ namespace: ns, labelSelector: 'component=kube-etcd' }))
    .items;
}

/** B1–B3: snapshot inside kube-etcd-N, then copy it out through exec. */
async function backup(sim: SimCluster, c: Clients, n: number, file: string): Promise<void> {
  const ns = sim.userClusterName;
  const p = sim.profile;
  const save = await execIn(c.kc, ns, `kube-etcd-${n}`, p.etcdContainer, [
    'etcdctl',
    `--endpoints=${member(p.etcdEndpoint, n)}`,
    ...tlsFlags(sim),
    'snapshot',
    'save',
    'snapshot.db',
  ]);
  assert.equal(save.exitCode, 0, save.stderr);
  const out = createWriteStream(file);
  const copy = await execIn(c.kc, ns, `kube-etcd-${n}`, p.etcdContainer, ['cat', '/snapshot.db'], {
    stdout: out,
  });
  assert.equal(copy.exitCode, 0, copy.stderr);
  await new Promise((r) => out.close(r));
  await execIn(c.kc, ns, `kube-etcd-${n}`, p.etcdContainer, ['rm', '/snapshot.db']);
}

/** The SPEC's utility pod manifest (R2, H5a). */
function utilityPod(sim: SimCluster, n: number, node: string): k8s.V1Pod {
  const p = sim.profile;
  return {
    metadata: { name: `${p.utilityPodPrefix}-${n}`, namespace: sim.userClusterName },
    spec: {
      containers: [
        {
          command: ['/bin/sh'],
          args: ['-ec', "while :; do echo '.'; sleep 5 ; done"],
          image: `${p.utilityImageRepository}:1.31.0-gke.0`,
          name: p.utilityContainer,
          volumeMounts: [
            { mountPath: p.dataDir, name: 'data' },
            { mountPath: p.certificatesDir, name: 'etcd-certs' },
          ],
        },
      ],
      nodeSelector: { [p.clusterNameLabel]: sim.userClusterName, 'kubernetes.io/hostname': node },
      volumes: [
        { name: 'data', persistentVolumeClaim: { claimName: `${p.dataClaimPrefix}-${n}` } },
        { name: 'etcd-certs', secret: { defaultMode: 420, secretName: sim.etcdSecretName } },
      ],
    },
  };
}

async function scale(
  c: Clients,
  ns: string,
  kind: 'sts' | 'deploy',
  name: string,
  replicas: number,
): Promise<void> {
  const body = { spec: { replicas } };
  if (kind === 'sts')
    await c.apps.patchNamespacedStatefulSetScale({ name, namespace: ns, body }, patchAs('merge'));
  else await c.apps.patchNamespacedDeploymentScale({ name, namespace: ns, body }, patchAs('merge'));
  await eventually(`${name} at ${replicas}`, async () => {
    const s =
      kind === 'sts'
        ? await c.apps.readNamespacedStatefulSet({ name, namespace: ns })
        : await c.apps.readNamespacedDeployment({ name, namespace: ns });
    const pods = (await c.core.listNamespacedPod({ namespace: ns })).items.filter((p) =>
      p.metadata?.ownerReferences?.some((o) => o.name === name),
    );
    return pods.length === replicas && (s.status?.readyReplicas ?? 0) === replicas;
  });
}

/**
 * A correct restore of `members` from `snapshot`: nothing uses etcd (apiserver and
 * maintenance at 0), etcd itself is stopped (kube-etcd at 0), each member's data is replaced
 * from a utility pod on its node, then everything is scaled back.
 */
async function restore(
  sim: SimCluster,
  c: Clients,
  snapshot: string,
  nodes: string[],
): Promise<void> {
  const ns = sim.userClusterName;
  const p = sim.profile;
  const n = nodes.length;
  await scale(c, ns, 'sts', p.apiserverStatefulSet, 0);
  await scale(c, ns, 'deploy', p.maintenanceDeployment, 0);
  await c.apps.patchNamespacedStatefulSetScale(
    { name: p.etcdStatefulSet, namespace: ns, body: { spec: { replicas: 0 } } },
    patchAs('merge'),
  );
  await eventually('etcd pods gone', async () => (await etcdPods(c, ns)).length === 0);
  const initialCluster = [...Array(n).keys()]
    .map((i) => `kube-etcd-${i}=${member(p.peerUrlTemplate, i)}`)
    .join(',');
  for (let i = 0; i < n; i++) {
    const name = `${p.utilityPodPrefix}-${i}`;
    await c.core.createNamespacedPod({ namespace: ns, body: utilityPod(sim, i, nodes[i] ?? '') });
    const u = await eventually(`${name} running`, async () => {
      const x = await c.core.readNamespacedPod({ name, namespace: ns });
      return x.status?.containerStatuses?.[0]?.ready ? x : undefined;
    });
    assert.equal(u.spec?.nodeName, nodes[i]);
    const run = async (argv: string[], stdin?: Readable) => {
      const r = await execIn(c.kc, ns, name, p.utilityContainer, argv, stdin ? { stdin } : {});
      assert.equal(r.exitCode, 0, `${argv.join(' ')}: ${r.stderr}`);
      return r;
    };
    await run(['/bin/sh', '-c', 'cat > /snapshot.db'], createReadStream(snapshot));
    const restoreArgs =
      n === 1
        ? ['etcdctl', ...tlsFlags(sim), 'snapshot', 'restore', 'snapshot.db']
        : [
            'etcdctl',
            ...tlsFlags(sim),
            `--name=kube-etcd-${i}`,
            `--initial-cluster=${initialCluster}`,
            `--initial-cluster-token=${p.initialClusterToken}`,
            `--initial-advertise-peer-urls=${member(p.peerUrlTemplate, i)}`,
            'snapshot',
            'restore',
            'snapshot.db',
          ];
    await run(restoreArgs);
    const out = n === 1 ? 'default.etcd' : `kube-etcd-${i}.etcd`;
    await run([
      '/bin/sh',
      '-ec',
      `cd / && rm -rf var/lib/etcd/* && cp -r ${out}/* var/lib/etcd/ && rm -r ${out} snapshot.db`,
    ]);
    await c.core.deleteNamespacedPod({ name, namespace: ns, gracePeriodSeconds: 0 });
  }
  await eventually('utility pods gone', async () => {
    const pods = (await c.core.listNamespacedPod({ namespace: ns })).items;
    return !pods.some((x) => x.metadata?.name?.startsWith(p.utilityPodPrefix));
  });
  await scale(c, ns, 'sts', p.etcdStatefulSet, n);
  await eventually('quorum', () => sim.hasQuorum(), 60_000);
  await scale(c, ns, 'sts', p.apiserverStatefulSet, 3);
  await scale(c, ns, 'deploy', p.maintenanceDeployment, 1);
}

describe('non-HA user cluster (1 member)', () => {
  let sim: SimCluster;
  let c: Clients;
  const ns = 'uc-one';
  const snapshot = join(work, 'one.db');

  before(async () => {
    sim = await startSimCluster({
      members: 1,
      userClusterName: ns,
      backoffInitialMs: 500,
      backoffMaxMs: 4000,
    });
    c = clientsFor(sim.kubeconfigPath);
  });
  after(async () => {
    await sim?.stop();
  });

  test('has the GKE on-prem shape and a valid profile', async () => {
    assert.deepEqual(clusterProfileSchema.parse(sim.profile), sim.profile);
    assert.match(sim.profile.etcdEndpoint, /^https:\/\/127\.0\.0\.1:\d\d\{member\}\d\d$/);
    assert.equal(sim.profile.certificatesDir, '/etcd.local.config/certificates');
    const secrets = await c.core.listNamespacedSecret({ namespace: ns });
    const secret = secrets.items.find((s) => s.metadata?.name?.startsWith('kube-etcd-certs-'));
    assert.equal(secret?.metadata?.name, sim.etcdSecretName);
    assert.deepEqual(Object.keys(secret?.data ?? {}).sort(), [
      'etcd.crt',
      'etcd.key',
      'etcdCA.crt',
    ]);
    const pods = await etcdPods(c, ns);
    assert.deepEqual(
      pods.map((p) => p.metadata?.name),
      ['kube-etcd-0'],
    );
    assert.equal(pods[0]?.spec?.containers[0]?.name, 'kube-etcd');
    await c.core.readNamespacedPersistentVolumeClaim({ name: 'data-kube-etcd-0', namespace: ns });
    const api = await c.apps.readNamespacedStatefulSet({ name: 'kube-apiserver', namespace: ns });
    assert.equal(api.status?.readyReplicas, 3);
    const maint = await c.apps.readNamespacedDeployment({
      name: 'gke-master-etcd-maintenance',
      namespace: ns,
    });
    assert.equal(maint.status?.readyReplicas, 1);
    const pdb = await c.policy.readNamespacedPodDisruptionBudget({
      name: 'kube-apiserver-pdb',
      namespace: ns,
    });
    assert.equal(pdb.spec?.minAvailable, 2);
    const nodes = await c.core.listNode({
      labelSelector: `kubernetes.googleapis.com/cluster-name=${ns}`,
    });
    assert.equal(nodes.items.length, 3);
  });

  test('kube-apiserver pods really write to etcd', async () => {
    const keys = await eventually('apiserver writes', async () => {
      const r = await sim.etcdctl(['get', '--prefix', '--keys-only', '/registry/sim-apiserver/']);
      const k = r.stdout.split('\n').filter(Boolean);
      return k.length === 3 ? k : undefined;
    });
    assert.deepEqual(keys, [
      '/registry/sim-apiserver/kube-apiserver-0',
      '/registry/sim-apiserver/kube-apiserver-1',
      '/registry/sim-apiserver/kube-apiserver-2',
    ]);
  });

  test('B1-B3: snapshot save inside kube-etcd-0 and copy out', async () => {
    await sim.putKey('/marker', 'before-corruption');
    await backup(sim, c, 0, snapshot);
    const status = await sim.etcdctl(['snapshot', 'status', snapshot, '-w', 'json']);
    assert.equal(status.code, 0, status.stderr);
    assert.ok((JSON.parse(status.stdout) as { totalKey: number }).totalKey > 0);
  });

  test('A3: the kube-system etcd pod answers snapshot save with kubeadm paths', async () => {
    const a = sim.adminEtcd;
    assert.ok(a);
    const pods = await c.core.listNamespacedPod({
      namespace: 'kube-system',
      labelSelector: 'component=etcd,tier=control-plane',
    });
    assert.deepEqual(
      pods.items.map((p) => p.metadata?.name),
      [a.podName],
    );
    const r = await execIn(c.kc, 'kube-system', a.podName, 'etcd', [
      'etcdctl',
      `--endpoints=${a.endpoint}`,
      '--cacert=/etc/kubernetes/pki/etcd/ca.crt',
      '--cert=/etc/kubernetes/pki/etcd/healthcheck-client.crt',
      '--key=/etc/kubernetes/pki/etcd/healthcheck-client.key',
      'snapshot',
      'save',
      'admin_snapshot.db',
    ]);
    assert.equal(r.exitCode, 0, r.stderr);
  });

  test('a corrupted member crash-loops and the cluster has no quorum', async () => {
    await sim.corruptMember(0);
    const p = await eventually('CrashLoopBackOff', async () => {
      const x = await c.core.readNamespacedPod({ name: 'kube-etcd-0', namespace: ns });
      const s = x.status?.containerStatuses?.[0];
      return s?.state?.waiting?.reason === 'CrashLoopBackOff' && s.restartCount >= 2
        ? x
        : undefined;
    });
    assert.notEqual(p.status?.containerStatuses?.[0]?.lastState?.terminated?.exitCode, 0);
    assert.equal(await sim.hasQuorum(), false);
  });

  test('after a correct restore (SPEC R) etcd runs, has the data, and nothing was violated', async () => {
    const node = (await etcdPods(c, ns))[0]?.spec?.nodeName ?? '';
    await restore(sim, c, snapshot, [node]);
    assert.equal(await sim.getKey('/marker'), 'before-corruption');
    const p = await c.core.readNamespacedPod({ name: 'kube-etcd-0', namespace: ns });
    assert.equal(p.status?.containerStatuses?.[0]?.ready, true);
    assert.deepEqual(sim.violations, []);
    assert.deepEqual(sim.loopErrors, []);
  });

  test('violations: changing member data while kube-apiserver and etcd run is recorded', async () => {
    const node = (await etcdPods(c, ns))[0]?.spec?.nodeName ?? '';
    await c.core.createNamespacedPod({ namespace: ns, body: utilityPod(sim, 0, node) });
    await eventually('utility running', async () => {
      const x = await c.core.readNamespacedPod({ name: 'etcd-utility-0', namespace: ns });
      return x.status?.containerStatuses?.[0]?.ready === true;
    });
    const r = await execIn(c.kc, ns, 'etcd-utility-0', 'etcd-utility', [
      '/bin/sh',
      '-c',
      'mkdir /var/lib/etcd/scratch && mkdir /var/lib/etcd/member/x',
    ]);
    assert.equal(r.exitCode, 0, r.stderr);
    assert.deepEqual(sim.violations.map((v) => v.kind).sort(), [
      'data-changed-while-apiserver-up',
      'data-changed-while-etcd-running',
    ]);
    const count = sim.violations.length;
    // Outside member/ (a restore's scratch space) is not the member's data.
    const scratch = await execIn(c.kc, ns, 'etcd-utility-0', 'etcd-utility', [
      'rmdir',
      '/var/lib/etcd/scratch',
    ]);
    assert.equal(scratch.exitCode, 0, scratch.stderr);
    assert.equal(sim.violations.length, count);
    await execIn(c.kc, ns, 'etcd-utility-0', 'etcd-utility', ['rmdir', '/var/lib/etcd/member/x']);
    await c.core.deleteNamespacedPod({
      name: 'etcd-utility-0',
      namespace: ns,
      gracePeriodSeconds: 0,
    });
  });
});

describe('HA user cluster (3 members)', () => {
  let sim: SimCluster;
  let c: Clients;
  const ns = 'uc-ha';
  const snapshot = join(work, 'ha.db');

  before(async () => {
    sim = await startSimCluster({
      members: 3,
      userClusterName: ns,
      adminEtcd: false,
      backoffInitialMs: 500,
      backoffMaxMs: 4000,
    });
    c = clientsFor(sim.kubeconfigPath);
  });
  after(async () => {
    await sim?.stop();
  });

  test('forms a 3-member quorum, one member per node, with distinct endpoints', async () => {
    const list = await sim.etcdctl(['member', 'list', '-w', 'json']);
    assert.equal(list.code, 0, list.stderr);
    const members = (JSON.parse(list.stdout) as { members: { name: string; peerURLs: string[] }[] })
      .members;
    assert.deepEqual(members.map((m) => m.name).sort(), [
      'kube-etcd-0',
      'kube-etcd-1',
      'kube-etcd-2',
    ]);
    for (const m of members) {
      const n = Number(m.name.slice(-1));
      assert.deepEqual(m.peerURLs, [member(sim.profile.peerUrlTemplate, n)]);
      assert.ok(await sim.memberHealthy(n));
    }
    const nodes = (await etcdPods(c, ns)).map((p) => p.spec?.nodeName);
    assert.equal(new Set(nodes).size, 3);
    await sim.putKey('/ha/marker', 'v1', { member: 0 });
    assert.equal(await sim.getKey('/ha/marker', { member: 2 }), 'v1');
    await backup(sim, c, 0, snapshot);
  });

  test('survives one corrupted member, loses quorum with two', async () => {
    await sim.corruptMember(1);
    await eventually('member 1 crash-looping', async () => {
      const x = await c.core.readNamespacedPod({ name: 'kube-etcd-1', namespace: ns });
      return x.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'CrashLoopBackOff';
    });
    // A new leader may have to be elected first.
    await eventually('quorum with one member down', () => sim.hasQuorum(), 30_000);
    await sim.putKey('/ha/after-one', 'ok');
    await sim.corruptMember(2);
    await eventually('member 2 crash-looping', async () => {
      const x = await c.core.readNamespacedPod({ name: 'kube-etcd-2', namespace: ns });
      return (
        (x.status?.containerStatuses?.[0]?.restartCount ?? 0) >= 1 &&
        x.status?.containerStatuses?.[0]?.ready === false
      );
    });
    assert.equal(await sim.hasQuorum(), false);
  });

  test('after a correct HA restore (SPEC H) all three members run with quorum', async () => {
    const pdb = await c.policy.readNamespacedPodDisruptionBudget({
      name: 'kube-apiserver-pdb',
      namespace: ns,
    });
    await c.policy.deleteNamespacedPodDisruptionBudget({
      name: 'kube-apiserver-pdb',
      namespace: ns,
    });
    const nodes = (await etcdPods(c, ns))
      .sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''))
      .map((p) => p.spec?.nodeName ?? '');
    await restore(sim, c, snapshot, nodes);
    await c.policy.createNamespacedPodDisruptionBudget({
      namespace: ns,
      body: {
        metadata: { name: 'kube-apiserver-pdb', labels: pdb.metadata?.labels },
        spec: pdb.spec,
      },
    });
    for (const n of [0, 1, 2]) assert.ok(await sim.memberHealthy(n), `member ${n}`);
    assert.equal(await sim.getKey('/ha/marker', { member: 1 }), 'v1');
    assert.equal(await sim.getKey('/ha/after-one'), undefined, 'written after the backup');
    const restored = await sim.getKey('/registry/sim-apiserver/kube-apiserver-0');
    await eventually('apiserver writes again', async () => {
      const v = await sim.getKey('/registry/sim-apiserver/kube-apiserver-0');
      return v !== restored;
    });
    assert.deepEqual(sim.violations, []);
    assert.deepEqual(sim.loopErrors, []);
  });

  test("violations: the runbook's literal H5 (data replaced while a member's etcd runs) is recorded", async () => {
    // SPEC H5 restores every member while the kube-etcd pods still run (H6 restarts them
    // later). Member 1 is healthy and running here, so replacing its data is flagged; with
    // real etcd the old process then leads the restored members into "tocommit out of range"
    // panics, which is why a workflow should stop etcd before replacing data.
    const p = sim.profile;
    await scale(c, ns, 'sts', p.apiserverStatefulSet, 0);
    await scale(c, ns, 'deploy', p.maintenanceDeployment, 0);
    const node =
      (await c.core.readNamespacedPod({ name: 'kube-etcd-1', namespace: ns })).spec?.nodeName ?? '';
    await c.core.createNamespacedPod({ namespace: ns, body: utilityPod(sim, 1, node) });
    await eventually('utility running', async () => {
      const x = await c.core.readNamespacedPod({ name: 'etcd-utility-1', namespace: ns });
      return x.status?.containerStatuses?.[0]?.ready === true;
    });
    const run = (argv: string[], stdin?: Readable) =>
      execIn(c.kc, ns, 'etcd-utility-1', p.utilityContainer, argv, stdin ? { stdin } : {});
    assert.equal(
      (await run(['/bin/sh', '-c', 'cat > /snapshot.db'], createReadStream(snapshot))).exitCode,
      0,
    );
    const initialCluster = [0, 1, 2]
      .map((i) => `kube-etcd-${i}=${member(p.peerUrlTemplate, i)}`)
      .join(',');
    const restored = await run([
      'etcdctl',
      ...tlsFlags(sim),
      '--name=kube-etcd-1',
      `--initial-cluster=${initialCluster}`,
      `--initial-cluster-token=${p.initialClusterToken}`,
      `--initial-advertise-peer-urls=${member(p.peerUrlTemplate, 1)}`,
      'snapshot',
      'restore',
      'snapshot.db',
    ]);
    assert.equal(restored.exitCode, 0, restored.stderr);
    assert.equal(sim.violations.length, 0, 'restoring into the pod root touches no member data');
    const swap = await run([
      '/bin/sh',
      '-ec',
      'cd / && rm -r var/lib/etcd/* && cp -r kube-etcd-1.etcd/* var/lib/etcd/',
    ]);
    assert.equal(swap.exitCode, 0, swap.stderr);
    assert.deepEqual(
      sim.violations.map((v) => v.kind),
      ['data-changed-while-etcd-running'],
    );
    assert.match(
      sim.violations[0]?.message ?? '',
      /member 1's data changed by exec in pod etcd-utility-1/,
    );
  });
});
