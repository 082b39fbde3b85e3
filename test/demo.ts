/**
 * `npm run demo`: the whole runbook on the simulated admin cluster, watched in the Web UI.
 *
 *   1. a Temporal dev server with its Web UI, the simulated admin cluster with a
 *      three-member user cluster (real etcd), and a worker;
 *   2. keys written into the user cluster's etcd, then backupUserCluster (SPEC B1–B4);
 *   3. one more key written after the backup, then two of the three members corrupted:
 *      they crash-loop and the cluster loses quorum (the runbook's HA case);
 *   4. restoreUserCluster (SPEC H1–H9), followed step by step;
 *   5. the keys read back: the backup's are there, the later one is not.
 * It prints the Web UI's and Temporal's addresses, and Temporal CLI commands to paste
 * against it (list, describe, show, start another backup with the right --input, its result).
 * Then it keeps everything running for the Web UI until Ctrl-C (`--exit` ends at once).
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { parseWorkerConfig } from '../activities/config/worker-config.js';
import { createActivities } from '../activities/index.js';
import { EtcdOpsClient } from '../client/client.js';
import { followProgress } from '../client/watch.js';
import { activityDeps, createWorkers, repositoryHostOf } from '../worker/create-worker.js';
import { startDevServer } from './harness/temporal.js';
import { readTools } from './harness/tools.js';
import { startSimCluster } from './sim/index.js';

const { values } = parseArgs({
  options: { exit: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } },
});
if (values.help) {
  console.log(
    'usage: npm run demo [-- --exit]   (--exit: stop when the demo is done instead of waiting for Ctrl-C)',
  );
  process.exit(0);
}

const say = (line: string) => console.log(`demo: ${line}`);
const cluster = 'user-cluster-1';
const scratch = mkdtempSync(join(tmpdir(), 'etcd-ha-restore-demo-'));
const cleanups: Array<() => Promise<unknown>> = [
  async () => rmSync(scratch, { recursive: true, force: true }),
];
const cleanUp = async () => {
  for (const step of cleanups.reverse()) await step().catch(() => undefined);
};
process.once('SIGINT', () => void cleanUp().then(() => process.exit(130)));
process.once('SIGTERM', () => void cleanUp().then(() => process.exit(143)));

try {
  say('starting a Temporal dev server with the Web UI...');
  const server = await startDevServer({ ui: true, dbFile: join(scratch, 'temporal.db') });
  cleanups.push(() => server.stop());
  say(`Web UI: ${server.uiUrl}/namespaces/default/workflows`);
  say(`Temporal: ${server.address} (namespace ${server.namespace})`);

  say('starting the simulated admin cluster (3 etcd members, real etcd with TLS)...');
  const sim = await startSimCluster({
    members: 3,
    userClusterName: cluster,
    kubeconfigPath: join(scratch, 'kubeconfig'),
  });
  cleanups.push(() => sim.stop());
  say(`admin cluster kubeconfig: ${sim.kubeconfigPath}`);

  const backupDir = join(scratch, 'backups');
  const nativeConnection = await NativeConnection.connect({ address: server.address });
  const taskQueue = 'etcd-ha-restore';
  const repositoryHost = repositoryHostOf(taskQueue, 'demo');
  const worker = await createWorkers({
    connection: nativeConnection,
    namespace: server.namespace,
    taskQueue,
    repositoryHost,
    activities: createActivities(
      activityDeps(
        parseWorkerConfig(
          {
            adminClusters: { demo: { kubeconfig: sim.kubeconfigPath, profile: sim.profile } },
            repositories: { local: { path: backupDir } },
          },
          'the demo',
        ),
        repositoryHost,
      ),
    ),
  });
  const running = worker.run();
  cleanups.push(async () => {
    worker.shutdown();
    await running;
    await nativeConnection.close();
  });
  const connection = await Connection.connect({ address: server.address });
  cleanups.push(() => connection.close());
  const client = new EtcdOpsClient(new Client({ connection }), taskQueue);

  say('writing 10 keys into the user cluster etcd');
  for (let i = 0; i < 10; i++) await sim.putKey(`/demo/key-${i}`, `value-${i}`);

  say('backupUserCluster (B1–B4):');
  const backupRun = await client.startBackup({ userClusterName: cluster });
  await followProgress(backupRun, (line) => say(`  ${line}`));
  const { backup } = await backupRun.result();
  if (!backup) throw new Error('the backup stored nothing');
  say(
    `backup ${backup.id}: revision ${backup.revision}, ${backup.sizeBytes} bytes, in ${backupDir}`,
  );

  await sim.putKey('/demo/written-after-the-backup', 'the restore will not bring this back');
  say('corrupting members 0 and 2: they crash-loop, the cluster loses quorum');
  await sim.corruptMember(0);
  await sim.corruptMember(2);
  await sim.waitFor('the cluster to lose quorum', async () => !(await sim.hasQuorum()), 60_000);

  say('restoreUserCluster (H1–H9):');
  const restoreRun = await client.startRestore({
    userClusterName: cluster,
    gkeOnPremVersion: '1.5.0-gke.0',
    backup: { backupId: backup.id },
  });
  await followProgress(restoreRun, (line) => say(`  ${line}`));
  const restored = await restoreRun.result();
  for (const line of restored.verified) say(`verified: ${line}`);

  const keys = await Promise.all(
    Array.from({ length: 10 }, (_, i) => sim.getKey(`/demo/key-${i}`)),
  );
  const later = await sim.getKey('/demo/written-after-the-backup');
  const ok = keys.every((v, i) => v === `value-${i}`) && later === undefined;
  say(
    `read back: ${keys.filter((v) => v !== undefined).length}/10 backup keys; the later key is ${later === undefined ? 'absent' : 'PRESENT'}`,
  );
  if (!ok) throw new Error('the data read back is not the backup');
  say(`protocol violations recorded by the simulated cluster: ${sim.violations.length}`);

  printTemporalCommands(server.address, taskQueue, backupRun.workflowId, restoreRun.workflowId);

  if (values.exit) {
    await cleanUp();
    say('done');
    process.exit(0);
  }
  say(
    `done. Browse the workflows at ${server.uiUrl}/namespaces/default/workflows ; Ctrl-C to stop.`,
  );
} catch (error) {
  console.error(`demo: failed: ${error instanceof Error ? error.message : String(error)}`);
  await cleanUp();
  process.exit(1);
}

/** Temporal CLI commands against this demo, to paste into another terminal while it runs. */
function printTemporalCommands(
  address: string,
  taskQueue: string,
  backupId: string,
  restoreId: string,
): void {
  const cli = onPath('temporal') ? 'temporal' : readTools().temporal;
  const to = `--address ${address} --namespace default`;
  const input = JSON.stringify({ userClusterName: cluster });
  say('Temporal CLI against this demo (paste into another terminal while it runs):');
  for (const line of [
    `${cli} workflow list ${to} --query 'UserClusterName="${cluster}"'`,
    `${cli} workflow describe ${to} --workflow-id ${restoreId}`,
    `${cli} workflow show ${to} --workflow-id ${backupId}`,
    `${cli} workflow start ${to} --task-queue ${taskQueue} --type backupUserCluster --workflow-id demo-backup-2 --input '${input}'`,
    `${cli} workflow result ${to} --workflow-id demo-backup-2`,
  ])
    console.log(`  ${line}`);
  say(`the project's CLI: TEMPORAL_ADDRESS=${address} npm run cli -- watch demo-backup-2`);
}

function onPath(command: string): boolean {
  return (process.env.PATH ?? '')
    .split(':')
    .some((dir) => dir !== '' && existsSync(join(dir, command)));
}
