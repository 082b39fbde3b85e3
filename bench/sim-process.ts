/**
 * The simulated admin cluster in a process of its own, so that the benchmark's figures
 * (CPU, memory) are the copying process's and not the simulator's. Started by bench/sim.ts:
 *
 *   tsx bench/sim-process.ts '{"clusters":[{"name":"bench","members":1}],"kubeconfigPath":"..."}'
 *
 * When every cluster is Ready it prints one JSON line (`SimInfo`) on stdout, then runs until
 * SIGTERM, when it stops the simulator (every process and file it made). A line
 * `{"execBandwidthBytesPerSecond":N}` on stdin paces every exec stream to N bytes/s (0 lifts
 * the limit); it answers `limited`.
 */
import { createInterface } from 'node:readline';
import { type SimCluster, startSimCluster } from '../test/sim/index.js';
import type { SimInfo, SimRequest } from './sim.js';

const request = JSON.parse(process.argv[2] ?? '{}') as SimRequest;
const [first, ...others] = request.clusters;
if (!first) throw new Error('sim-process: no cluster asked for');

const sim = await startSimCluster({
  members: first.members,
  userClusterName: first.name,
  kubeconfigPath: request.kubeconfigPath,
  adminEtcd: false,
});
let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await sim.stop();
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());

const clusters: SimCluster[] = [sim];
// One at a time: the simulator starts each cluster's etcd and pods; in parallel they would
// only compete for the same two cores.
for (const other of others) clusters.push(await sim.addUserCluster(other));

const info: SimInfo = {
  kubeconfigPath: sim.kubeconfigPath,
  clusters: clusters.map((c) => ({
    name: c.userClusterName,
    members: c.members,
    profile: c.profile,
    etcdClientUrls: Array.from({ length: c.members }, (_, i) => c.etcdClientUrl(i)),
    etcdTls: c.etcdTls,
  })),
};
console.log(JSON.stringify(info));

createInterface({ input: process.stdin }).on('line', (line) => {
  const { execBandwidthBytesPerSecond: limit } = JSON.parse(line) as {
    execBandwidthBytesPerSecond: number;
  };
  sim.faults.limitExecBandwidth(limit > 0 ? limit : undefined);
  console.log('limited');
});
