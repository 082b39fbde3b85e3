/**
 * A real kubectl (v1.32) against the simulator: get -o wide, exec (WebSocket v5, stdin,
 * exit codes), scale, rollout restart, and cp in both directions.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type Clients, clientsFor, eventually } from './client.js';
import { type SimCluster, startSimCluster } from './index.js';
import { findKubectl, type KubectlResult, kubectl } from './kubectl.js';

const found = await findKubectl();
const skip = 'missing' in found ? `no kubectl: ${found.missing}` : false;
const NS = 'uc-kubectl';

let sim: SimCluster;
let c: Clients;
let work = '';

async function k(args: string[], input?: string): Promise<KubectlResult> {
  assert.ok('path' in found);
  return kubectl(found.path, sim.kubeconfigPath, args, {
    cacheDir: join(work, 'cache'),
    ...(input !== undefined ? { input } : {}),
  });
}

before(async () => {
  if (skip) return;
  work = mkdtempSync(join(tmpdir(), 'sim-kubectl-test-'));
  sim = await startSimCluster({ members: 1, userClusterName: NS, adminEtcd: false });
  c = clientsFor(sim.kubeconfigPath);
});

after(async () => {
  await sim?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

test('kubectl version and get pods -o wide (H1)', { skip }, async () => {
  const v = await k(['version', '-o', 'json']);
  assert.equal(v.code, 0, v.stderr);
  const version = JSON.parse(v.stdout) as {
    serverVersion: { minor: string };
    clientVersion: { minor: string };
  };
  assert.ok(Number(version.serverVersion.minor) >= 30);
  assert.ok(Number(version.clientVersion.minor) >= 30);
  const r = await k(['get', 'pods', '-n', NS, '-o', 'wide']);
  assert.equal(r.code, 0, r.stderr);
  const line = r.stdout.split('\n').find((l) => l.startsWith('kube-etcd-0'));
  assert.ok(line, r.stdout);
  const pod = await c.core.readNamespacedPod({ name: 'kube-etcd-0', namespace: NS });
  assert.match(line, /1\/1\s+Running\s+0\s+\S+\s+127\.0\.0\.1\s+uc-kubectl-node-\d/);
  assert.ok(line.includes(pod.spec?.nodeName ?? '?'));
  assert.match(
    r.stdout.split('\n')[0] ?? '',
    /^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\s+IP\s+NODE/,
  );
  const sts = await k(['get', 'statefulsets,deployments,pdb,pvc,secrets', '-n', NS]);
  assert.equal(sts.code, 0, sts.stderr);
  assert.match(sts.stdout, /kube-apiserver/);
  assert.match(sts.stdout, /kube-apiserver-pdb/);
  assert.match(sts.stdout, /data-kube-etcd-0/);
});

test('kubectl exec: command, stdin, exit codes (B2 in the etcd pod)', { skip }, async () => {
  const p = sim.profile;
  const health = await k([
    'exec',
    '-n',
    NS,
    'kube-etcd-0',
    '-c',
    'kube-etcd',
    '--',
    'etcdctl',
    `--endpoints=${p.etcdEndpoint.replace('{member}', '0')}`,
    `--cacert=${p.certificatesDir}/${p.caFile}`,
    `--cert=${p.certificatesDir}/${p.certFile}`,
    `--key=${p.certificatesDir}/${p.keyFile}`,
    'endpoint',
    'health',
  ]);
  assert.equal(health.code, 0, health.stderr);
  assert.match(health.stdout + health.stderr, /is healthy/);
  const stdin = await k(
    [
      'exec',
      '-i',
      '-n',
      NS,
      'kube-etcd-0',
      '-c',
      'kube-etcd',
      '--',
      'sh',
      '-c',
      'wc -c; tr a-z A-Z',
    ],
    'hello\n',
  );
  assert.equal(stdin.code, 0, stdin.stderr);
  assert.equal(stdin.stdout, '6\n');
  const fail = await k([
    'exec',
    '-n',
    NS,
    'kube-etcd-0',
    '-c',
    'kube-etcd',
    '--',
    'sh',
    '-c',
    'echo oops >&2; exit 4',
  ]);
  assert.equal(fail.code, 4);
  assert.match(fail.stderr, /oops/);
});

test('kubectl scale (H3, H7, H8)', { skip }, async () => {
  let r = await k(['scale', '-n', NS, 'deployment', 'gke-master-etcd-maintenance', '--replicas=0']);
  assert.equal(r.code, 0, r.stderr);
  r = await k(['scale', '-n', NS, 'statefulset', 'kube-apiserver', '--replicas=1']);
  assert.equal(r.code, 0, r.stderr);
  await eventually('scaled down', async () => {
    const d = await c.apps.readNamespacedDeployment({
      name: 'gke-master-etcd-maintenance',
      namespace: NS,
    });
    const s = await c.apps.readNamespacedStatefulSet({ name: 'kube-apiserver', namespace: NS });
    return d.status?.replicas === 0 && s.status?.replicas === 1 && s.status.readyReplicas === 1;
  });
  r = await k(['scale', '-n', NS, 'statefulset/kube-apiserver', '--replicas=3']);
  assert.equal(r.code, 0, r.stderr);
  r = await k(['scale', '-n', NS, 'deploy/gke-master-etcd-maintenance', '--replicas=1']);
  assert.equal(r.code, 0, r.stderr);
  await eventually('scaled up', async () => {
    const d = await c.apps.readNamespacedDeployment({
      name: 'gke-master-etcd-maintenance',
      namespace: NS,
    });
    const s = await c.apps.readNamespacedStatefulSet({ name: 'kube-apiserver', namespace: NS });
    return d.status?.readyReplicas === 1 && s.status?.readyReplicas === 3;
  });
});

test('kubectl rollout restart statefulset (H6) recreates the pods', { skip }, async () => {
  const before = await c.core.readNamespacedPod({ name: 'kube-etcd-0', namespace: NS });
  const r = await k(['rollout', 'restart', 'statefulset', 'kube-etcd', '-n', NS]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /restarted/);
  await eventually(
    'kube-etcd-0 recreated and ready',
    async () => {
      const p = await c.core.readNamespacedPod({ name: 'kube-etcd-0', namespace: NS });
      return (
        p.metadata?.uid !== before.metadata?.uid && p.status?.containerStatuses?.[0]?.ready === true
      );
    },
    90_000,
  );
  const sts = await c.apps.readNamespacedStatefulSet({ name: 'kube-etcd', namespace: NS });
  assert.ok(sts.spec?.template.metadata?.annotations?.['kubectl.kubernetes.io/restartedAt']);
  await eventually('etcd back', () => sim.hasQuorum());
});

test('kubectl cp into and out of a pod (B3, R3)', { skip }, async () => {
  const local = join(work, 'in.txt');
  writeFileSync(local, 'snapshot bytes\n'.repeat(1000));
  let r = await k(['cp', local, `${NS}/kube-etcd-0:/in.txt`, '-c', 'kube-etcd']);
  assert.equal(r.code, 0, r.stderr);
  const check = await k([
    'exec',
    '-n',
    NS,
    'kube-etcd-0',
    '-c',
    'kube-etcd',
    '--',
    'wc',
    '-c',
    '/in.txt',
  ]);
  assert.equal(check.stdout.trim(), `15000 /in.txt`);
  const out = join(work, 'out.txt');
  r = await k(['cp', `${NS}/kube-etcd-0:/in.txt`, out, '-c', 'kube-etcd']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(readFileSync(out, 'utf8'), readFileSync(local, 'utf8'));
  assert.deepEqual(sim.loopErrors, []);
});
