/**
 * The backup workflow (SPEC B1–B4) end to end: a real Temporal dev server and worker, the
 * simulated admin cluster with a real three-member etcd. The stored snapshot is restored
 * into a scratch etcd to read the keys back; started from the project client, the
 * Temporal CLI and Schedules; a copy cut mid-way still ends verified; a missing
 * namespace or Secret fails at once, non-retryably; a second operation on the same
 * cluster is refused with ClusterBusy.
 *
 * The etcd release is ETCD_LINE's (test/harness/tools.ts): the first backup, read back
 * with that release's own tools, and its manifest (where it came from, which tool counted
 * its keys) run on every line; a leg of a newer line skips the rest.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { V1Secret } from '@kubernetes/client-node';
import {
  type ScheduleDescription,
  type WorkflowExecutionDescription,
  WorkflowFailedError,
  type WorkflowHandle,
} from '@temporalio/client';
import { ActivityFailure, ApplicationFailure } from '@temporalio/common';
import { localEtcdctl } from '../../activities/etcd/local-etcdctl.js';
import { connectKube } from '../../activities/kube/client.js';
import { execInPod } from '../../activities/kube/exec.js';
import { FileSystemBackupStore } from '../../activities/repository/fs-store.js';
import { verifyStoredBackup } from '../../activities/repository/verify.js';
import { EtcdOpsClient } from '../../client/client.js';
import {
  type BackupUserClusterInput,
  type BackupUserClusterResult,
  clusterLockId,
  EtcdOperation,
  EtcdOutcome,
  FailureType,
  UserClusterName,
} from '../../workflows/contract/index.js';
import { progressQuery } from '../../workflows/progress.js';
import { snapshotFileIn, stored } from '../harness/backups.js';
import { freePort, makeTlsFiles, startEtcd, stopAllEtcd, waitUntil } from '../harness/etcd-tls.js';
import {
  simWorkerConfig,
  startTemporalTestContext,
  type TemporalTestContext,
  temporalCli,
} from '../harness/temporal.js';
import { defaultLineOnly, etcdLineUnderTest } from '../harness/tools.js';
import { type SimCluster, startSimCluster } from '../sim/index.js';

const line = etcdLineUnderTest();
const execFileAsync = promisify(execFile);
const cluster = 'user-cluster-1';

let sim: SimCluster;
let ctx: TemporalTestContext;
let ops: EtcdOpsClient;
let scratch: string;
let backupDir: string;

before(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'backup-workflow-'));
  backupDir = join(scratch, 'backups');
  sim = await startSimCluster({
    members: 3,
    userClusterName: cluster,
    adminEtcd: false,
    etcd: line,
  });
  ctx = await startTemporalTestContext('backup-workflow', {
    config: simWorkerConfig(sim, backupDir, {
      repositories: {
        local: { path: backupDir },
        scheduled: { path: join(scratch, 'scheduled') },
        'cli-scheduled': { path: join(scratch, 'cli-scheduled') },
      },
    }),
  });
  ops = new EtcdOpsClient(ctx.env.client, ctx.taskQueue);
});

after(async () => {
  await stopAllEtcd();
  await ctx?.teardown();
  await sim?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

const input = (extra: Partial<BackupUserClusterInput> = {}): BackupUserClusterInput => ({
  userClusterName: cluster,
  repository: 'local',
  ...extra,
});

const repository = (root = backupDir) => new FileSystemBackupStore(root);
const verifyBackup = (id: string) =>
  verifyStoredBackup(repository(), localEtcdctl(), { userClusterName: cluster, backupId: id });
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** Activity attempts by activity type, from the workflow's history. */
async function activityAttempts(handle: WorkflowHandle): Promise<Map<string, number[]>> {
  const { events } = await handle.fetchHistory();
  const typeOf = new Map<string, string>();
  const attempts = new Map<string, number[]>();
  for (const e of events ?? []) {
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled) typeOf.set(String(e.eventId), scheduled.activityType?.name ?? '?');
    const started = e.activityTaskStartedEventAttributes;
    if (started) {
      const type = typeOf.get(String(started.scheduledEventId)) ?? '?';
      attempts.set(type, [...(attempts.get(type) ?? []), started.attempt ?? 0]);
    }
  }
  return attempts;
}

/** The failure a workflow ended with, unwrapped to its ApplicationFailure. */
async function failureOf(handle: WorkflowHandle): Promise<ApplicationFailure> {
  const error = await handle.result().then(
    () => assert.fail(`${handle.workflowId} was expected to fail`),
    (e: unknown) => e,
  );
  assert.ok(error instanceof WorkflowFailedError, `expected WorkflowFailedError, got ${error}`);
  let cause: unknown = error.cause;
  if (cause instanceof ActivityFailure) cause = cause.cause;
  assert.ok(cause instanceof ApplicationFailure, `expected ApplicationFailure, got ${cause}`);
  return cause;
}

function keyword(description: WorkflowExecutionDescription, key: typeof UserClusterName) {
  return description.typedSearchAttributes.get(key);
}

test('a backup holds the keys written before it, not after; manifest, file mode, pod cleaned', async () => {
  const keys = { '/registry/test/alpha': 'one', '/registry/test/beta': 'two' };
  for (const [k, v] of Object.entries(keys)) await sim.putKey(k, v);

  const handle = await ops.startBackup(input());
  const result: BackupUserClusterResult = await handle.result();
  await sim.putKey('/registry/test/after', 'too late');

  const backup = stored(result);
  assert.equal(backup.userClusterName, cluster);
  assert.equal(backup.sourcePod, 'kube-etcd-0');
  assert.deepEqual(result.prunedBackupIds, []);

  // B4: the file on the worker's disk is what the manifest says, readable by its owner only.
  const data = readFileSync(snapshotFileIn(backupDir, backup));
  assert.equal(sha256(data), backup.sha256);
  assert.equal(data.length, backup.sizeBytes);
  assert.equal(statSync(snapshotFileIn(backupDir, backup)).mode & 0o777, 0o600);
  const manifest = JSON.parse(
    readFileSync(join(backupDir, cluster, backup.id, 'manifest.json'), 'utf8'),
  ) as { sha256: string; id: string };
  assert.equal(manifest.sha256, backup.sha256);
  assert.equal(manifest.id, backup.id);
  assert.deepEqual(
    (await repository().list(cluster)).map((b) => b.id),
    [backup.id],
  );

  // The snapshot file was removed from the pod once stored.
  const probe = await execInPod(connectKube(sim.kubeconfigPath).config, {
    namespace: cluster,
    pod: 'kube-etcd-0',
    container: 'kube-etcd',
    argv: ['sh', '-c', 'test -e "$1"', 'sh', `/snapshot-${backup.id}.db`],
  });
  assert.equal(probe.exitCode, 1, 'the snapshot file is gone from the pod');
  const leftovers = await execInPod(connectKube(sim.kubeconfigPath).config, {
    namespace: cluster,
    pod: 'kube-etcd-0',
    container: 'kube-etcd',
    argv: ['sh', '-c', 'ls / | grep "^snapshot-" || true'],
  });
  assert.equal(leftovers.stdout, '');

  // Where it came from, and which tool counted its keys (etcdutl 3.6 counts them its own way).
  const uid = (await connectKube(sim.kubeconfigPath).core.readNamespace({ name: cluster })).metadata
    ?.uid;
  assert.equal(backup.provenance?.etcdVersion, sim.etcd.version);
  assert.equal(backup.provenance?.namespaceUid, uid);
  assert.equal(backup.provenance?.memberIds.length, 3);
  assert.ok(backup.provenance?.memberIds.includes(backup.provenance.memberId));
  assert.match(backup.provenance?.clusterId ?? '', /^\d+$/);
  assert.equal(
    backup.totalKeysCountedBy,
    `${line === '3.4' ? 'etcdctl' : 'etcdutl'} ${sim.etcd.version}`,
  );
  assert.equal(typeof backup.revisionsPerSecond, 'number');
  assert.equal(backup.toolVersions.snapshotTakenIn, 'etcd pod');

  // Restore the stored snapshot into a scratch etcd on this host, with the tools of the
  // cluster's release, and read the keys back.
  const dir = join(scratch, 'restored');
  mkdirSync(dir);
  const tls = await makeTlsFiles(join(dir, 'tls'), ['127.0.0.1']);
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const peerUrl = `https://127.0.0.1:${peerPort}`;
  const clientUrl = `https://127.0.0.1:${clientPort}`;
  await execFileAsync(
    sim.etcd.etcdutl ?? sim.etcd.etcdctl,
    [
      'snapshot',
      'restore',
      snapshotFileIn(backupDir, backup),
      `--data-dir=${join(dir, 'data')}`,
      '--name=scratch',
      `--initial-cluster=scratch=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
    ],
    { env: { PATH: '/usr/bin:/bin' } },
  );
  const etcd = startEtcd({
    binary: sim.etcd.etcd,
    name: 'scratch',
    dataDir: join(dir, 'data'),
    clientUrl,
    peerUrl,
    initialCluster: `scratch=${peerUrl}`,
    tls,
  });
  const get = async (key: string) => {
    const { stdout } = await execFileAsync(
      sim.etcd.etcdctl,
      [
        `--endpoints=${clientUrl}`,
        `--cacert=${join(tls.dir, tls.caFile)}`,
        `--cert=${join(tls.dir, tls.certFile)}`,
        `--key=${join(tls.dir, tls.keyFile)}`,
        'get',
        key,
        '--print-value-only',
      ],
      { env: { PATH: '/usr/bin:/bin' } },
    );
    return stdout.replace(/\n$/, '');
  };
  try {
    await waitUntil('scratch etcd to answer', () => get('/registry/test/alpha'), [etcd]);
    for (const [k, v] of Object.entries(keys)) assert.equal(await get(k), v, k);
    assert.equal(await get('/registry/test/after'), '', 'a key written after the backup');
  } finally {
    await etcd.stop();
  }
  assert.equal(await sim.getKey('/registry/test/after'), 'too late', 'the live cluster has it');

  // What a person sees: search attributes and the progress query.
  const description = await handle.describe();
  assert.equal(keyword(description, UserClusterName), cluster);
  assert.equal(keyword(description, EtcdOperation), 'backup');
  assert.equal(keyword(description, EtcdOutcome), 'succeeded');
  const progress = await handle.query(progressQuery);
  assert.equal(progress.outcome, 'succeeded');
  assert.equal(progress.operation, 'backup');
  assert.match(progress.step, new RegExp(`backup ${backup.id} stored and verified`));
  assert.ok(
    progress.log.some((l) =>
      / B3 copy the snapshot out of the pod, hashing it on the way$/.test(l),
    ),
  );
});

test(
  'started with the Temporal CLI binary, it succeeds and the backup is listed',
  defaultLineOnly(),
  async () => {
    const workflowId = `cli-backup-${randomUUID()}`;
    const out = await temporalCli(ctx.server, [
      'workflow',
      'start',
      '--type',
      'backupUserCluster',
      '--task-queue',
      ctx.taskQueue,
      '--workflow-id',
      workflowId,
      '--input',
      JSON.stringify(input({ sourceMember: 1 })),
    ]);
    assert.match(out, new RegExp(workflowId));
    const result = (await ctx.env.client.workflow
      .getHandle(workflowId)
      .result()) as BackupUserClusterResult;
    const backup = stored(result);
    assert.equal(backup.sourcePod, 'kube-etcd-1');
    const listed = await repository().list(cluster);
    assert.ok(listed.some((b) => b.id === backup.id && b.sha256 === backup.sha256));
    await verifyBackup(backup.id);
  },
);

/** Waits until the schedule has started `count` workflows and none of them is running. */
async function waitForScheduledRuns(
  describe: () => Promise<ScheduleDescription>,
  count: number,
): Promise<ScheduleDescription> {
  for (let i = 0; i < 600; i++) {
    const d = await describe();
    if (d.info.recentActions.length >= count) return d;
    await sleep(500);
  }
  assert.fail(`the schedule did not start ${count} workflows in 300 s`);
}

async function waitNoRunningActions(describe: () => Promise<ScheduleDescription>) {
  for (let i = 0; i < 600; i++) {
    const d = await describe();
    if (d.info.runningActions.length === 0) return d;
    await sleep(500);
  }
  assert.fail('scheduled workflows still running after 300 s');
}

async function scheduledResults(d: ScheduleDescription): Promise<BackupUserClusterResult[]> {
  return Promise.all(
    d.info.recentActions.map((a) =>
      ctx.env.client.workflow
        .getHandle(a.action.workflow.workflowId, a.action.workflow.firstExecutionRunId)
        .result(),
    ),
  ) as Promise<BackupUserClusterResult[]>;
}

test(
  'a Schedule fires repeatedly, retention keeps 2; pause, update and delete show in describe()',
  defaultLineOnly(),
  async () => {
    const dir = join(scratch, 'scheduled');
    const schedule = await ops.createBackupSchedule({
      input: input({ repository: 'scheduled', retention: { keepLast: 2 } }),
      cadence: { interval: '5s' },
      note: 'test schedule',
    });
    const describe = () => schedule.describe();
    try {
      await waitForScheduledRuns(describe, 3);
      await ops.pauseBackupSchedule(cluster, 'paused by the test');
      const paused = await waitNoRunningActions(describe);
      assert.equal(paused.state.paused, true);
      assert.equal(paused.state.note, 'paused by the test');

      const results = await scheduledResults(paused);
      assert.ok(results.length >= 3);
      for (const r of results) assert.equal(stored(r).userClusterName, cluster);
      const kept = await repository(dir).list(cluster);
      assert.equal(kept.length, 2, 'retention keepLast 2');
      const newestTwo = results
        .map((r) => stored(r).id)
        .sort()
        .slice(-2)
        .reverse();
      assert.deepEqual(
        kept.map((b) => b.id),
        newestTwo,
      );
      const pruned = results.flatMap((r) => r.prunedBackupIds);
      assert.ok(pruned.length >= results.length - 2, `pruned ${pruned.join(', ')}`);

      // Scheduled runs carry the same search attributes.
      const first = paused.info.recentActions[0]?.action.workflow;
      assert.ok(first);
      const runDescription = await ctx.env.client.workflow
        .getHandle(first.workflowId, first.firstExecutionRunId)
        .describe();
      assert.equal(keyword(runDescription, EtcdOutcome), 'succeeded');

      await ops.updateBackupSchedule(cluster, {
        cadence: { interval: '7h' },
        input: input({ repository: 'scheduled', retention: { keepLast: 3 } }),
      });
      const updated = await describe();
      assert.equal(updated.spec.intervals?.[0]?.every, 7 * 3600 * 1000);
      assert.equal(updated.action.type, 'startWorkflow');
      if (updated.action.type === 'startWorkflow') {
        const [args] = updated.action.args as [BackupUserClusterInput];
        assert.deepEqual(args.retention, { keepLast: 3 });
      }
      await ops.unpauseBackupSchedule(cluster, 'resumed by the test');
      assert.equal((await describe()).state.paused, false);
    } finally {
      await ops.pauseBackupSchedule(cluster).catch(() => undefined);
      await waitNoRunningActions(describe).catch(() => undefined);
      await ops.deleteBackupSchedule(cluster).catch(() => undefined);
    }
    await assert.rejects(describe(), /not found|ScheduleNotFound/i);

    // The same with `temporal schedule create` from the CLI binary.
    const scheduleId = `cli-schedule-${randomUUID().slice(0, 8)}`;
    await temporalCli(ctx.server, [
      'schedule',
      'create',
      '--schedule-id',
      scheduleId,
      '--interval',
      '5s',
      '--overlap-policy',
      'Skip',
      '--workflow-id',
      `cli-scheduled-backup-${cluster}`,
      '--task-queue',
      ctx.taskQueue,
      '--type',
      'backupUserCluster',
      '--input',
      JSON.stringify(input({ repository: 'cli-scheduled' })),
    ]);
    const cliSchedule = ctx.env.client.schedule.getHandle(scheduleId);
    try {
      await waitForScheduledRuns(() => cliSchedule.describe(), 1);
      await cliSchedule.pause();
      const d = await waitNoRunningActions(() => cliSchedule.describe());
      const [result] = await scheduledResults(d);
      assert.ok(result);
      assert.equal(stored(result).userClusterName, cluster);
      assert.ok((await repository(join(scratch, 'cli-scheduled')).list(cluster)).length >= 1);
    } finally {
      await cliSchedule.pause().catch(() => undefined);
      await waitNoRunningActions(() => cliSchedule.describe()).catch(() => undefined);
      await temporalCli(ctx.server, ['schedule', 'delete', '--schedule-id', scheduleId]);
    }
  },
);

test(
  'a copy cut mid-way is retried, resumed, and the backup still verifies',
  defaultLineOnly(),
  async () => {
    // Enough data that the snapshot is several times the cut size.
    const value = 'x'.repeat(8192);
    for (let i = 0; i < 48; i++) await sim.putKey(`/registry/bulk/${i}`, value);
    const cutAfter = 16 * 1024;
    // Every exec into kube-etcd-0 counts; the ones before the copy print little. The big
    // `tail -c +N` of the copy is cut after cutAfter bytes each time it is among them.
    sim.faults.dropExecAfterBytes(cutAfter, { namespace: cluster, pod: 'kube-etcd-0', count: 12 });
    try {
      const handle = await ops.startBackup(input({ sourceMember: 0 }));
      const backup = stored(await handle.result());
      assert.ok(backup.sizeBytes > 3 * cutAfter, `snapshot of ${backup.sizeBytes} bytes`);

      const attempts = (await activityAttempts(handle)).get('copySnapshotToRepository') ?? [];
      assert.ok(
        attempts.some((a) => a > 1),
        `copySnapshotToRepository attempts: ${attempts.join(', ')}`,
      );
      const progress = await handle.query(progressQuery);
      const copied = progress.facts.copied ?? '';
      const resumedFrom = Number(/resumed from (\d+)/.exec(copied)?.[1]);
      assert.ok(resumedFrom > 0, `the last attempt resumed (${copied})`);

      assert.equal(sha256(readFileSync(snapshotFileIn(backupDir, backup))), backup.sha256);
      const verified = await verifyBackup(backup.id);
      assert.equal(verified.record.sha256, backup.sha256);
    } finally {
      sim.faults.clear();
    }
  },
);

test(
  'a cluster that is not a user cluster, or a missing etcd Secret, fails at once, non-retryably, saying why',
  defaultLineOnly(),
  async () => {
    // Not a user cluster of the admin cluster: refused by the worker before anything runs.
    const missing = await ops.startBackup({ ...input(), userClusterName: 'no-such-cluster' });
    const failure = await failureOf(missing);
    assert.equal(failure.nonRetryable, true);
    assert.equal(failure.type, 'InvalidInput');
    assert.match(
      failure.message,
      /no-such-cluster is not a user cluster of admin cluster sim: there is no such namespace/,
    );
    assert.deepEqual([...(await activityAttempts(missing)).keys()], ['resolveTarget']);
    const described = await missing.describe();
    assert.equal(keyword(described, EtcdOutcome), 'failed');
    assert.equal((await missing.query(progressQuery)).outcome, 'failed');

    const kube = connectKube(sim.kubeconfigPath);
    const secret: V1Secret = await kube.core.readNamespacedSecret({
      namespace: cluster,
      name: sim.etcdSecretName,
    });
    await kube.core.deleteNamespacedSecret({ namespace: cluster, name: sim.etcdSecretName });
    try {
      const noSecret = await ops.startBackup(input());
      const f = await failureOf(noSecret);
      assert.equal(f.nonRetryable, true);
      assert.equal(f.type, 'ClusterState');
      assert.match(
        f.message,
        new RegExp(`no Secret in namespace ${cluster} starts with kube-etcd-certs`),
      );
      assert.deepEqual((await activityAttempts(noSecret)).get('findSnapshotSource'), [1]);
    } finally {
      await kube.core.createNamespacedSecret({
        namespace: cluster,
        body: {
          metadata: { name: sim.etcdSecretName, labels: secret.metadata?.labels },
          type: secret.type,
          data: secret.data,
        },
      });
    }
    // With the Secret back, a backup works again.
    const backup = stored(await (await ops.startBackup(input())).result());
    assert.equal(backup.userClusterName, cluster);
  },
);

test(
  'a second backup of the cluster while one runs is refused with ClusterBusy',
  defaultLineOnly(),
  async () => {
    // Slow every exec in the cluster (B1's tool check, B2, B3) so the first one holds the lock
    // for a while, then start the second once the first holds it.
    sim.faults.addLatency(3000, { verb: 'exec', namespace: cluster });
    let first: WorkflowHandle | undefined;
    try {
      first = await ops.startBackup(input());
      await waitUntil('the first backup to hold the lock', async () => {
        const lock = await ctx.env.client.workflow.getHandle(clusterLockId(cluster)).describe();
        if (lock.status.name !== 'RUNNING') throw new Error(lock.status.name);
      });
      const second = await ops.startBackup(input());
      assert.notEqual(second.workflowId, first.workflowId);
      const failure = await failureOf(second);
      assert.equal(failure.type, FailureType.ClusterBusy);
      assert.equal(failure.nonRetryable, true);
      assert.match(
        failure.message,
        new RegExp(`another backup or restore of user cluster ${cluster} is running`),
      );
      assert.equal(keyword(await second.describe(), EtcdOutcome), 'failed');
      assert.equal((await first.describe()).status.name, 'RUNNING', 'refused while the first ran');
    } finally {
      sim.faults.clear();
    }
    const backup = stored(await first.result());
    assert.equal(backup.userClusterName, cluster);
  },
);

test(
  'a scheduled run that finds the cluster busy is a success that says skipped-busy, not a red run',
  defaultLineOnly(),
  async () => {
    // Another operation holds the cluster's lock (a lock workflow with the cluster's lock id).
    const lock = await ctx.env.client.workflow.start('clusterLock', {
      taskQueue: ctx.taskQueue,
      workflowId: clusterLockId(cluster),
      args: [{ workflowId: 'a-restore', operation: 'restore' }],
    });
    const schedule = await ops.createBackupSchedule({
      input: input({ repository: 'scheduled' }),
      cadence: { interval: '1h' },
      paused: true,
    });
    try {
      await schedule.trigger();
      const d = await waitForScheduledRuns(() => schedule.describe(), 1);
      const run = d.info.recentActions[0]?.action.workflow;
      assert.ok(run);
      const handle = ctx.env.client.workflow.getHandle(run.workflowId, run.firstExecutionRunId);
      const result = (await handle.result()) as BackupUserClusterResult;
      assert.equal(result.outcome, 'skipped-busy');
      assert.equal(result.backup, undefined);
      assert.match(result.warnings.join(' '), /another backup or restore of user cluster/);
      const description = await handle.describe();
      assert.equal(description.status.name, 'COMPLETED');
      assert.equal(keyword(description, EtcdOutcome), 'skipped-busy');
    } finally {
      await lock.terminate('test over');
      await ops.deleteBackupSchedule(cluster).catch(() => undefined);
    }
  },
);

test('the backup records its keyspace fingerprint with the compact revision hashkv reports', async () => {
  const backup = stored(await (await ops.startBackup(input())).result());
  assert.equal(typeof backup.kvHash, 'number');
  assert.equal(typeof backup.kvHashCompactRevision, 'number');
  assert.equal(backup.origin, 'taken');
  assert.equal(typeof backup.keyCount, 'number');
});

test('the simulator saw no protocol violation and no control-loop error', () => {
  assert.deepEqual(sim.violations, []);
  assert.deepEqual(sim.loopErrors, []);
});
