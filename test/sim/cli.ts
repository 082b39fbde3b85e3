/**
 * `npm run sim -- --kubeconfig FILE [--members 1|3] [--name USER_CLUSTER_NAME]`
 *
 * Starts the simulated admin cluster with a GKE on-prem user cluster and keeps it running
 * until interrupted (Ctrl-C / SIGTERM), then removes every process and file it made.
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startSimCluster } from './index.js';

const usage =
  'usage: npm run sim -- --kubeconfig FILE [--members 1|3] [--name USER_CLUSTER_NAME] [--no-admin-etcd]';

function fail(message: string): never {
  console.error(`${message}\n${usage}`);
  process.exit(2);
}

let values: {
  kubeconfig?: string;
  members?: string;
  name?: string;
  'no-admin-etcd'?: boolean;
  help?: boolean;
};
try {
  ({ values } = parseArgs({
    options: {
      kubeconfig: { type: 'string' },
      members: { type: 'string', default: '3' },
      name: { type: 'string', default: 'user-cluster-1' },
      'no-admin-etcd': { type: 'boolean', default: false },
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

const kubeconfigPath = resolve(values.kubeconfig);
const t0 = Date.now();
const sim = await startSimCluster({
  members,
  userClusterName: name,
  kubeconfigPath,
  adminEtcd: !values['no-admin-etcd'],
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
