/**
 * `npm run sim -- --kubeconfig FILE [--members 1|3] [--name USER_CLUSTER_NAME] [hazards...]`
 * (see `--help` and README.md for the hazard switches)
 *
 * Starts the simulated admin cluster with a GKE on-prem user cluster and keeps it running
 * until interrupted (Ctrl-C / SIGTERM), then removes every process and file it made.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { type SimClusterOptions, startSimCluster } from './index.js';

const usage = `usage: npm run sim -- --kubeconfig FILE [--members 1|3] [--name USER_CLUSTER_NAME] [--no-admin-etcd]
  hazards (all off by default):
    --etcd 3.4|3.5|3.6                 etcd release of the pods and helpers (default 3.4)
    --etcd-image full|distroless       kube-etcd / admin etcd image (distroless: no shell)
    --utility-image full|busybox       utility image (busybox: no flock, mv -T, stat)
    --compact-every-ms MS              kube-apiserver compacts etcd every MS ms
    --etcd-readiness none|local|quorum readinessProbe on kube-etcd
    --fresh-container-on-restart       a restarted container loses its writable root and execs
    --etcd-pod-management-policy OrderedReady|Parallel   kube-etcd's policy (default Parallel)
    --reconciler-delay-ms MS           a controller puts kube-etcd's replicas back after MS ms
    --pvc-size SIZE                    kube-etcd data volumes of SIZE (bytes, or 160Mi, 1Gi): ENOSPC when full (root)`;

function fail(message: string): never {
  console.error(`${message}\n${usage}`);
  process.exit(2);
}

let values: {
  kubeconfig?: string;
  members?: string;
  name?: string;
  'no-admin-etcd'?: boolean;
  etcd?: string;
  'etcd-image'?: string;
  'utility-image'?: string;
  'compact-every-ms'?: string;
  'etcd-readiness'?: string;
  'fresh-container-on-restart'?: boolean;
  'etcd-pod-management-policy'?: string;
  'reconciler-delay-ms'?: string;
  'pvc-size'?: string;
  help?: boolean;
};
try {
  ({ values } = parseArgs({
    options: {
      kubeconfig: { type: 'string' },
      members: { type: 'string', default: '3' },
      name: { type: 'string', default: 'user-cluster-1' },
      'no-admin-etcd': { type: 'boolean', default: false },
      etcd: { type: 'string' },
      'etcd-image': { type: 'string' },
      'utility-image': { type: 'string' },
      'compact-every-ms': { type: 'string' },
      'etcd-readiness': { type: 'string' },
      'fresh-container-on-restart': { type: 'boolean', default: false },
      'etcd-pod-management-policy': { type: 'string' },
      'reconciler-delay-ms': { type: 'string' },
      'pvc-size': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    strict: true,
  }));
} catch (e) {
  fail(e instanceof Error ? e.message : String(e));
}
if (values.help) {
  console.log(usage);
  process.exit(0);
}
if (!values.kubeconfig) fail('--kubeconfig is required');
const members = Number(values.members);
if (members !== 1 && members !== 3) fail('--members must be 1 or 3');
const name = values.name ?? 'user-cluster-1';
if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name)) fail('--name must be a DNS label');

function oneOf<T extends string>(
  flag: string,
  value: string | undefined,
  allowed: readonly T[],
): T | undefined {
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value))
    fail(`--${flag} must be one of ${allowed.join(', ')}`);
  return value as T;
}
function positive(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) fail(`--${flag} must be a positive integer`);
  return n;
}

const hazards: Partial<SimClusterOptions> = {};
{
  const etcd = oneOf('etcd', values.etcd, ['3.4', '3.5', '3.6'] as const);
  if (etcd) hazards.etcd = etcd;
  const etcdImage = oneOf('etcd-image', values['etcd-image'], ['full', 'distroless'] as const);
  if (etcdImage) hazards.etcdImage = etcdImage;
  const utilityImage = oneOf('utility-image', values['utility-image'], [
    'full',
    'busybox',
  ] as const);
  if (utilityImage) hazards.utilityImage = utilityImage;
  const compact = positive('compact-every-ms', values['compact-every-ms']);
  if (compact) hazards.compactEveryMs = compact;
  const readiness = oneOf('etcd-readiness', values['etcd-readiness'], [
    'none',
    'local',
    'quorum',
  ] as const);
  if (readiness) hazards.etcdReadiness = readiness;
  if (values['fresh-container-on-restart']) hazards.freshContainerOnRestart = true;
  const policy = oneOf('etcd-pod-management-policy', values['etcd-pod-management-policy'], [
    'OrderedReady',
    'Parallel',
  ] as const);
  if (policy) hazards.etcdPodManagementPolicy = policy;
  const reconcile = positive('reconciler-delay-ms', values['reconciler-delay-ms']);
  if (reconcile) hazards.reconciler = { delayMs: reconcile };
  if (values['pvc-size'] !== undefined) {
    const m = values['pvc-size'].match(/^(\d+)(Ki|Mi|Gi)?$/);
    if (!m) fail('--pvc-size must be bytes or a size like 160Mi, 1Gi');
    const unit = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 }[m[2] ?? ''] ?? 1;
    hazards.pvcSizeBytes = Number(m[1]) * unit;
  }
}

const kubeconfigPath = resolve(values.kubeconfig);
const t0 = Date.now();
const sim = await startSimCluster({
  members,
  userClusterName: name,
  kubeconfigPath,
  adminEtcd: !values['no-admin-etcd'],
  ...hazards,
});
let stopping = false;
const stop = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  console.error(`\n${signal}: stopping the simulated cluster...`);
  await sim.stop();
  console.error('stopped; all processes and files removed.');
  process.exit(0);
};
process.on('SIGINT', () => void stop('SIGINT'));
process.on('SIGTERM', () => void stop('SIGTERM'));
process.on('SIGHUP', () => void stop('SIGHUP'));

console.log(
  `Simulated admin cluster ready in ${Date.now() - t0} ms (${members} etcd member${members > 1 ? 's' : ''}).`,
);
console.log(`kubeconfig: ${sim.kubeconfigPath}`);
console.log(`API server: ${sim.server}`);
console.log(`user cluster: ${sim.userClusterName} (etcd Secret ${sim.etcdSecretName})`);
console.log(
  `etcd ${sim.etcd.version}: kube-etcd image ${sim.etcdImage}, utility image ${sim.utilityImage}`,
);
if (Object.keys(hazards).length > 0) console.log(`hazards: ${JSON.stringify(hazards)}`);
if (sim.adminEtcd)
  console.log(
    `admin etcd: pod kube-system/${sim.adminEtcd.podName}, endpoint ${sim.adminEtcd.endpoint}`,
  );
console.log('profile:');
console.log(JSON.stringify(sim.profile, null, 2));
console.log(
  `\ntry: KUBECONFIG=${sim.kubeconfigPath} kubectl get pods -n ${sim.userClusterName} -o wide`,
);
console.log('Ctrl-C to stop.');
