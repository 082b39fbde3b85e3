/**
 * `npm run bench`: throughput and memory of the snapshot copies (SPEC B3, R3/H5b) through
 * the exec WebSocket of the simulated admin cluster. Prints figures; asserts nothing
 * (these machines are shared and noisy: compare runs, not thresholds).
 *
 *   npm run bench -- [--mib 1024]
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { connectKube } from '../activities/kube/client.js';
import { copyFromPod, copyToPod, fileDestination, fileSource } from '../activities/kube/copy.js';
import { execInPodChecked } from '../activities/kube/exec.js';
import { startSimCluster } from '../test/sim/index.js';

const { values } = parseArgs({ options: { mib: { type: 'string', default: '1024' } } });
const mib = Number(values.mib);
if (!Number.isInteger(mib) || mib < 1) throw new Error('--mib must be a positive integer');

const scratch = mkdtempSync(join(tmpdir(), 'bench-copy-'));
const sim = await startSimCluster({ members: 1, userClusterName: 'bench', adminEtcd: false });
try {
  const kube = connectKube(sim.kubeconfigPath);
  const pod = { namespace: 'bench', pod: 'kube-etcd-0', container: 'kube-etcd' };
  console.log(`bench: making a ${mib} MiB file in ${pod.pod}...`);
  await execInPodChecked(kube.config, {
    ...pod,
    argv: ['sh', '-c', 'head -c "$1" /dev/urandom > /bench.bin', 'sh', String(mib * 1024 * 1024)],
  });

  const measure = async (what: string, run: () => Promise<unknown>) => {
    let peakRss = process.memoryUsage().rss;
    const sampler = setInterval(() => {
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
    }, 50);
    const started = process.hrtime.bigint();
    await run();
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    clearInterval(sampler);
    console.log(
      `bench: ${what}: ${mib} MiB in ${seconds.toFixed(1)} s = ${(mib / seconds).toFixed(0)} MiB/s, ` +
        `peak RSS ${(peakRss / 1024 / 1024).toFixed(0)} MiB (includes hashing on both sides)`,
    );
  };

  const local = join(scratch, 'bench.bin');
  await measure('copy out of the pod (B3)', () =>
    copyFromPod(kube.config, { ...pod, path: '/bench.bin' }, fileDestination(local)),
  );
  if (statSync(local).size !== mib * 1024 * 1024) throw new Error('copy out: wrong size');
  const source = await fileSource(local);
  await measure('copy into the pod (R3/H5b)', () =>
    copyToPod(kube.config, source, { ...pod, path: '/bench-in.bin' }),
  );
} finally {
  await sim.stop();
  rmSync(scratch, { recursive: true, force: true });
}
