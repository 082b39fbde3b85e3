/**
 * deploy/ grants what the activities use, and nothing more. The worker runs with the
 * configuration of deploy/configmap.yaml (only how it reaches the API server and where its
 * volumes are differ: the simulator's kubeconfig and profile, scratch directories) against
 * the simulated admin cluster (OrderedReady kube-etcd, and the admin cluster's own etcd pod in
 * kube-system), through backups from each member, a 3-member restore of two corrupt members,
 * a restore cancelled before its point of no return (everything undone), an admin-cluster
 * backup (backupAdminCluster, A2 and A3) and backupAll (the user clusters as configured, and
 * the admin cluster). Every request the simulated API server logged is then authorized against
 * deploy/rbac.yaml as a real API server would: none may be forbidden, and every grant must
 * have been used.
 *
 * The admin backup needs two things deploy/configmap.yaml does not give, added here: the
 * admin etcd's endpoint in the simulator (`adminEtcd.etcdEndpoint`), and an `ssh` section for
 * A2 (the node's PKI) — a real sshd on a loopback port (test/harness/sshd.ts) with a test user
 * of this file's own, whose only sudo right is the one tar. A2 sends nothing to the API server;
 * it runs because A3 comes after it.
 *
 * Also: the in-cluster credentials (inCluster: true) work against an API server, for REST
 * calls and for the exec WebSocket.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { CancelledFailure } from '@temporalio/common';
import { parse as parseYaml } from 'yaml';
import {
  parseWorkerConfig,
  type WorkerConfig,
  type WorkerConfigInput,
} from '../../activities/config/worker-config.js';
import { inClusterKubeConfig } from '../../activities/kube/client.js';
import { execInPod } from '../../activities/kube/exec.js';
import { EtcdOpsClient } from '../../client/client.js';
import { adminEtcdProfileSchema, clusterProfileSchema } from '../../workflows/contract/index.js';
import { stored } from '../harness/backups.js';
import {
  compareWithGrants,
  type Manifest,
  Rbac,
  type RbacRequest,
  rbacRequestsOf,
  readDeployManifests,
  requestKey,
} from '../harness/rbac.js';
import {
  ensureTestUser,
  makeKeyPair,
  removeTestUser,
  type Sshd,
  startSshd,
} from '../harness/sshd.js';
import { startTemporalTestContext, type TemporalTestContext } from '../harness/temporal.js';
import { type SimCluster, startSimCluster } from '../sim/index.js';

/** Generous: the machine is shared; these bound a hang, they assert nothing about speed. */
const WAIT_MS = 5 * 60_000;

const manifests = readDeployManifests();
const one = (kind: string, name?: string): Manifest => {
  const found = manifests.filter((m) => m.kind === kind && (!name || m.metadata.name === name));
  assert.equal(found.length, 1, `deploy/ has one ${kind}${name ? ` ${name}` : ''}`);
  return found[0] as Manifest;
};
const serviceAccount = one('ServiceAccount');
const configMap = one('ConfigMap');
const deployed: WorkerConfig = parseWorkerConfig(
  parseYaml((configMap.data as Record<string, string>)['worker.yaml'] ?? ''),
  'deploy/configmap.yaml',
);
const [adminName, admin] = Object.entries(deployed.adminClusters)[0] ?? [];
assert.ok(adminName && admin, 'deploy/configmap.yaml names an admin cluster');
const userClusters =
  admin.userClusters && 'namespaces' in admin.userClusters ? admin.userClusters.namespaces : [];
const ns = userClusters[0] ?? '';
/** Where the admin cluster's own etcd pod is (kube-system unless the ConfigMap says otherwise). */
const adminEtcd = adminEtcdProfileSchema.parse(admin.adminEtcd ?? {});
/** Not admin-backup.test.ts's user: the two files may run at once on one machine. */
const SSH_USER = 'etcd-ha-restore-rbac';
const rbac = new Rbac(manifests, {
  namespace: serviceAccount.metadata.namespace ?? '',
  name: serviceAccount.metadata.name,
});

const scratch = mkdtempSync(join(tmpdir(), 'rbac-'));
let sim: SimCluster;
let ctx: TemporalTestContext;
let client: EtcdOpsClient;
let sshd: Sshd | undefined;

before(async () => {
  // OrderedReady, Kubernetes' default: the restore must delete member pods that the
  // controller will not scale down past a crash-looping one.
  sim = await startSimCluster({
    members: 3,
    userClusterName: ns,
    etcdPodManagementPolicy: 'OrderedReady',
  });
  const simAdminEtcd = sim.adminEtcd;
  assert.ok(simAdminEtcd, 'the simulator runs the admin etcd pod');
  // A2: the node's PKI, only root may read it; the SSH user may run the one tar, with sudo.
  await chmod(simAdminEtcd.nodePkiDir, 0o700);
  const key = await makeKeyPair(join(scratch, 'worker_ed25519'), 'etcd-ha-restore worker');
  await removeTestUser(SSH_USER);
  await ensureTestUser([simAdminEtcd.nodePkiDir], SSH_USER);
  sshd = await startSshd({
    authorizedKeys: [key.publicKey],
    allowTcpForwarding: false,
    user: SSH_USER,
  });
  const knownHostsPath = join(scratch, 'known_hosts');
  writeFileSync(knownHostsPath, `${sshd.knownHostsLine}\n`);
  // The deployed configuration, reaching the simulator instead of the pod's API server, and
  // (what it does not give) the simulator's admin etcd endpoint and the node's SSH.
  const { inCluster: _inCluster, ...rest } = admin;
  const config: WorkerConfigInput = {
    ...deployed,
    adminClusters: {
      [adminName]: {
        ...rest,
        kubeconfig: sim.kubeconfigPath,
        profile: sim.profile,
        adminEtcd: { ...rest.adminEtcd, etcdEndpoint: simAdminEtcd.endpoint },
        ssh: {
          host: sshd.host,
          port: sshd.port,
          user: SSH_USER,
          privateKeyPath: key.privateKeyPath,
          knownHostsPath,
          pkiDir: simAdminEtcd.nodePkiDir,
        },
      },
    },
    repositories: Object.fromEntries(
      Object.keys(deployed.repositories).map((name) => [name, { path: join(scratch, name) }]),
    ),
    importInbox: join(scratch, 'inbox'),
  };
  ctx = await startTemporalTestContext('rbac', { config });
  client = new EtcdOpsClient(ctx.env.client, ctx.taskQueue);
});

after(async () => {
  await ctx?.teardown();
  await sshd?.stop();
  await removeTestUser(SSH_USER);
  await sim?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

test('deploy/ is consistent: one RoleBinding per configured user cluster and one for the admin etcd, the worker runs as the bound account with the ConfigMap mounted', () => {
  assert.equal(admin.inCluster, true, 'the deployed worker uses its service account');
  assert.ok(ns, 'the configuration lists its user clusters by name');
  const boundTo = (kind: string, name: string) =>
    manifests
      .filter((m) => {
        const ref = m.roleRef as { kind: string; name: string } | undefined;
        return m.kind === 'RoleBinding' && ref?.kind === kind && ref.name === name;
      })
      .map((m) => m.metadata.namespace)
      .sort();
  assert.deepEqual(
    boundTo('ClusterRole', 'etcd-ha-restore-user-cluster'),
    [...userClusters].sort(),
    'a RoleBinding in each user cluster, no other',
  );
  const adminRole = one('Role');
  assert.equal(
    adminRole.metadata.namespace,
    adminEtcd.namespace,
    'the Role is where the admin etcd is',
  );
  assert.deepEqual(boundTo('Role', adminRole.metadata.name), [adminEtcd.namespace]);
  assert.equal(
    manifests.filter((m) => m.kind === 'RoleBinding').length,
    userClusters.length + 1,
    'no other RoleBinding',
  );

  const pod = (one('Deployment').spec as { template: { spec: PodSpec } }).template.spec;
  assert.equal(pod.serviceAccountName, serviceAccount.metadata.name);
  const worker = pod.containers[0];
  assert.ok(worker);
  const env = new Map(worker.env?.map((e) => [e.name, e.value]));
  const mountOf = (path: string) =>
    worker.volumeMounts?.find((m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`));
  const configFile = env.get('ETCD_HA_RESTORE_CONFIG') ?? '';
  const configMount = mountOf(configFile);
  const configVolume = pod.volumes?.find((v) => v.name === configMount?.name);
  assert.equal(configVolume?.configMap?.name, configMap.metadata.name, 'the ConfigMap is mounted');
  assert.equal(configFile, `${configMount?.mountPath}/worker.yaml`);
  for (const path of [
    ...Object.values(deployed.repositories).map((r) => r.path),
    deployed.importInbox ?? '',
  ]) {
    const mount = mountOf(path);
    assert.ok(mount, `${path} is on a volume`);
    assert.notEqual(mount.readOnly, true, `${path} is writable`);
    assert.ok(
      pod.volumes?.find((v) => v.name === mount.name)?.persistentVolumeClaim,
      `${path} is on the repository's claim`,
    );
  }
  // The simulator's profile differs from GKE's only in its endpoints, so the names in the
  // rules (resourceNames) are the ones a real admin cluster has.
  const {
    etcdEndpoint: _e,
    peerUrlTemplate: _p,
    memberClientUrlTemplate: _m,
    ...names
  } = sim.profile;
  const {
    etcdEndpoint: _ge,
    peerUrlTemplate: _gp,
    memberClientUrlTemplate: _gm,
    ...gkeNames
  } = clusterProfileSchema.parse({});
  assert.deepEqual(names, gkeNames);
});

/** Where the runs below start in the simulator's request log; what each run checked. */
let from: number | undefined;
const ran = new Set<string>();

test('user clusters: backups from each member, a 3-member restore and an undone restore', {
  timeout: 30 * 60_000,
}, async () => {
  from = sim.requests.length;

  await sim.putKey('/test/rbac', 'before the backup');
  const backup = stored(await (await client.startBackup({ userClusterName: ns })).result());
  // A backup may be taken from any member (sourceMember, or the first ready one).
  for (const sourceMember of [1, 2])
    await (await client.startBackup({ userClusterName: ns, sourceMember })).result();

  for (const member of [0, 2]) await sim.corruptMember(member);
  await sim.waitFor(
    'the corrupt members to crash-loop',
    () =>
      [0, 2].every((n) =>
        sim
          .pod(ns, `kube-etcd-${n}`)
          ?.status?.containerStatuses?.some((c) => (c.restartCount ?? 0) > 0),
      ),
    WAIT_MS,
  );
  const restored = await (
    await client.startRestore({
      userClusterName: ns,
      gkeOnPremVersion: '1.5.0-gke.0',
      backup: { backupId: backup.id },
    })
  ).result();
  assert.equal(restored.outcome, 'restored');
  assert.deepEqual(restored.members, [0, 1, 2]);

  // Held where everything before the point of no return is changed (stopping etcd answers
  // 503, retried), cancelled there: the undo puts everything back.
  await sim.waitReady(WAIT_MS);
  sim.faults.failNext(1_000_000, 503, {
    verb: 'patch',
    resource: 'statefulsets',
    subresource: 'scale',
    name: 'kube-etcd',
  });
  const undone = await client.startRestore({
    userClusterName: ns,
    gkeOnPremVersion: '1.5.0-gke.0',
    backup: { backupId: backup.id },
  });
  try {
    for (const deadline = Date.now() + WAIT_MS; ; await sleep(500)) {
      const { events } = await undone.fetchHistory();
      const scheduled = (events ?? []).some(
        (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'stopEtcdMembers',
      );
      if (scheduled) break;
      assert.ok(Date.now() < deadline, 'the restore reached stopEtcdMembers');
    }
    await undone.cancel();
  } finally {
    sim.faults.clear();
  }
  await assert.rejects(undone.result(), (e: Error) => e.cause instanceof CancelledFailure);
  assert.deepEqual(sim.violations, [], 'no protocol violation');
  ran.add('user clusters');
});

test('the admin cluster: backupAdminCluster (A2, A3), and backupAll over the configured user clusters', {
  timeout: 15 * 60_000,
}, async () => {
  from ??= sim.requests.length;
  await sim.waitReady(WAIT_MS);
  // The worker's only admin cluster, as an operator would start it: no name.
  const adminBackup = await (await client.startAdminBackup({})).result();
  assert.equal(adminBackup.outcome, 'stored', JSON.stringify(adminBackup));
  assert.equal(adminBackup.backup?.etcd.sourcePod, sim.adminEtcd?.podName);
  assert.ok((adminBackup.backup?.pki.fileCount ?? 0) > 0, 'A2 copied the PKI');

  const all = await (await client.startBackupAll({})).result();
  assert.equal(all.outcome, 'stored', JSON.stringify(all));
  // Discovery takes the ConfigMap's list (no StatefulSet listed across namespaces).
  assert.equal(all.userClustersFrom, "the worker's configuration (userClusters.namespaces)");
  assert.deepEqual(
    all.parts.map((p) => [p.kind, p.name, p.outcome]),
    [['admin', adminName, 'stored'], ...userClusters.map((n) => ['user-cluster', n, 'stored'])],
  );
  assert.deepEqual(sim.violations, [], 'no protocol violation');
  ran.add('admin cluster');
});

test('every request of those runs is granted by deploy/rbac.yaml, and every grant was used', () => {
  assert.deepEqual([...ran].sort(), ['admin cluster', 'user clusters'], 'both runs completed');
  const logged = sim.requests.slice(from);
  const requests = logged.flatMap(rbacRequestsOf);
  assert.ok(requests.length > 0);
  const { missing, unused } = compareWithGrants(rbac, requests);
  assert.deepEqual(missing, [], `requests deploy/rbac.yaml does not grant:\n${missing.join('\n')}`);
  assert.deepEqual(unused, [], `grants no request used:\n${unused.join('\n')}`);

  // In kube-system the worker only lists pods and execs into the admin etcd pod, the one
  // with the runbook's labels (what a Role naming that pod would also allow).
  const inAdminNamespace = requests.filter((r) => r.namespace === adminEtcd.namespace);
  assert.ok(inAdminNamespace.length > 0, `requests in ${adminEtcd.namespace}`);
  const etcdPod = sim.pod(adminEtcd.namespace, sim.adminEtcd?.podName ?? '');
  for (const pair of adminEtcd.podLabelSelector.split(',')) {
    const [label = '', value] = pair.split('=');
    assert.equal(etcdPod?.metadata.labels?.[label], value, `${etcdPod?.metadata.name}: ${pair}`);
  }
  const elsewhere = (r: RbacRequest) =>
    !(r.resource === 'pods' && r.verb === 'list' && !r.subresource) &&
    !(r.subresource === 'exec' && r.name === etcdPod?.metadata.name);
  assert.deepEqual(inAdminNamespace.filter(elsewhere).map(requestKey), []);
});

test('inCluster: the service account token and CA work for API calls and the exec WebSocket', async () => {
  const user = new KubeConfig();
  user.loadFromFile(sim.kubeconfigPath);
  const server = new URL(user.getCurrentCluster()?.server ?? '');
  const prefix = join(scratch, 'pod');
  const saDir = join(prefix, 'var/run/secrets/kubernetes.io/serviceaccount');
  mkdirSync(saDir, { recursive: true });
  writeFileSync(join(saDir, 'token'), user.getCurrentUser()?.token ?? '');
  writeFileSync(
    join(saDir, 'ca.crt'),
    Buffer.from(user.getCurrentCluster()?.caData ?? '', 'base64'),
  );
  const saved = { ...process.env };
  try {
    process.env.KUBERNETES_SERVICE_HOST = server.hostname;
    process.env.KUBERNETES_SERVICE_PORT = server.port;
    const config = inClusterKubeConfig(prefix);
    const pods = await config.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: ns });
    assert.ok(pods.items.some((p) => p.metadata?.name === 'kube-etcd-0'));
    const result = await execInPod(config, {
      namespace: ns,
      pod: 'kube-etcd-0',
      container: 'kube-etcd',
      argv: ['echo', 'in-cluster'],
    });
    assert.deepEqual([result.exitCode, result.stdout.trim()], [0, 'in-cluster']);
  } finally {
    process.env = saved;
  }
});

interface PodSpec {
  serviceAccountName?: string;
  containers: {
    env?: { name: string; value?: string }[];
    volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
  }[];
  volumes?: {
    name: string;
    configMap?: { name: string };
    persistentVolumeClaim?: { claimName: string };
  }[];
}
