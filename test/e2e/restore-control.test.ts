/**
 * Controlling a restore (issue 6): the approval gate and cancellation, end to end (Temporal
 * dev server + simulated admin cluster with real etcd, one member).
 *
 *   - approval: a restore with `requireApproval` waits at its gate showing what it will
 *     destroy (query `plan`) with nothing changed; it is approved once with the Temporal
 *     CLI (signal `approve`), once with this project's CLI (update `approveRestore`); the
 *     update's validator refuses a bad approval, and any approval of a restore that does
 *     not wait for one;
 *   - cancellation at the gate, after reversible changes (kube-etcd scaled to 0), and after
 *     the point of no return (swapMemberData scheduled). The moments are taken from the
 *     workflow's history, never from a clock.
 *
 * Recorded histories: the runs below are recorded for test/workflows/replay.test.ts when
 * RECORD_HISTORIES is set (test/harness/histories.ts says how). Re-record only when a
 * workflow change is meant to be incompatible (see the header of workflows/restore/workflow.ts).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import {
  WorkflowFailedError,
  type WorkflowHandle,
  WorkflowUpdateFailedError,
} from '@temporalio/client';
import { CancelledFailure } from '@temporalio/common';
import type { History } from '@temporalio/common/lib/proto-utils.js';
import { connectKube } from '../../activities/kube/client.js';
import { EtcdOpsClient } from '../../client/client.js';
import {
  clusterLockId,
  type RestoreUserClusterInput,
  type RestoreUserClusterResult,
} from '../../workflows/contract/index.js';
import { type ProgressView, progressQuery } from '../../workflows/progress.js';
import type { RestorePlan } from '../../workflows/restore/approval.js';
import { stored } from '../harness/backups.js';
import { recordHistory } from '../harness/histories.js';
import {
  simWorkerConfig,
  startTemporalTestContext,
  type TemporalTestContext,
  temporalCli,
} from '../harness/temporal.js';
import { type SimCluster, startSimCluster } from '../sim/index.js';

const execFileAsync = promisify(execFile);
const ROOT = fileURLToPath(new URL('../..', import.meta.url));
/** Generous: the machine is shared; these bound a hang, they assert nothing about speed. */
const WAIT_MS = 5 * 60_000;
const TEST_TIMEOUT_MS = 10 * 60_000;

const ns = 'restore-control';
const KEYS = 10;
const AFTER_BACKUP = '/test/after-backup';

const scratch = mkdtempSync(join(tmpdir(), 'restore-control-'));
let sim: SimCluster;
let ctx: TemporalTestContext;
let client: EtcdOpsClient;
let backupId: string;
let stateBefore: ClusterState;

type HistoryEvent = NonNullable<History['events']>[number];

interface ClusterState {
  etcd?: number;
  apiserver?: number;
  maintenance?: number;
  /** The PDB's spec, or null when it does not exist. */
  pdbSpec: string | null;
  utilityPods: string[];
}

/** Replicas, PDB and utility pods, read back from the API server. */
async function clusterState(): Promise<ClusterState> {
  const kube = connectKube(sim.kubeconfigPath);
  const sts = async (name: string) =>
    (await kube.apps.readNamespacedStatefulSet({ name, namespace: ns })).spec?.replicas;
  const deploy = await kube.apps.readNamespacedDeployment({
    name: 'gke-master-etcd-maintenance',
    namespace: ns,
  });
  const pdbSpec = await kube.policy
    .readNamespacedPodDisruptionBudget({ name: 'kube-apiserver-pdb', namespace: ns })
    .then(
      (pdb) => JSON.stringify(pdb.spec),
      (error: unknown) => {
        if ((error as { code?: number }).code === 404) return null;
        throw error;
      },
    );
  const pods = await kube.core.listNamespacedPod({ namespace: ns });
  return {
    etcd: await sts('kube-etcd'),
    apiserver: await sts('kube-apiserver'),
    maintenance: deploy.spec?.replicas,
    pdbSpec,
    utilityPods: pods.items
      .map((p) => p.metadata?.name ?? '')
      .filter((n) => n.startsWith('etcd-utility'))
      .sort(),
  };
}

async function podUids(): Promise<string[]> {
  const pods = await connectKube(sim.kubeconfigPath).core.listNamespacedPod({ namespace: ns });
  return pods.items.map((p) => p.metadata?.uid ?? '').sort();
}

/** Before each restore: a ready cluster, and a key the restore must remove. */
async function prepare(): Promise<void> {
  await sim.waitReady(WAIT_MS);
  await sim.putKey(AFTER_BACKUP, 'must not survive a restore');
}

/** Restores started by the current test; one left running is terminated after it. */
let started: WorkflowHandle[] = [];

async function startRestore(extra: Partial<RestoreUserClusterInput> = {}) {
  const handle = await client.startRestore({
    userClusterName: ns,
    gkeOnPremVersion: '1.5.0-gke.0',
    backup: { backupId },
    ...extra,
  });
  started.push(handle);
  return handle;
}

/** The data is the backup's, the cluster as before, and no protocol violation. */
async function assertRestored(result: RestoreUserClusterResult): Promise<void> {
  assert.deepEqual(result.members, [0]);
  assert.equal(result.outcome, 'restored');
  assert.ok(
    result.verified.some((l) =>
      /every member has hashkv \d+ at revision \d+, as recorded at backup/.test(l),
    ),
    result.verified.join('\n'),
  );
  assert.equal(await sim.memberHealthy(0), true);
  for (let i = 0; i < KEYS; i++) assert.equal(await sim.getKey(`/test/before/${i}`), `value-${i}`);
  assert.equal(await sim.getKey(AFTER_BACKUP), undefined, 'the data is the backup’s');
  assert.deepEqual(await clusterState(), stateBefore, 'replicas, PDB as before; no utility pod');
  assert.deepEqual(sim.violations, [], 'no protocol violation');
}

/** Nothing of the restore is left: same replicas, PDB spec, no utility pod, old data kept. */
async function assertUntouched(): Promise<void> {
  assert.deepEqual(await clusterState(), stateBefore, 'replicas, PDB as before; no utility pod');
  await sim.waitReady(WAIT_MS);
  assert.equal(await sim.memberHealthy(0), true);
  assert.equal(await sim.getKey(AFTER_BACKUP), 'must not survive a restore', 'data not replaced');
  for (let i = 0; i < KEYS; i++) assert.equal(await sim.getKey(`/test/before/${i}`), `value-${i}`);
  assert.deepEqual(sim.violations, [], 'no protocol violation');
}

async function waitFor<T>(what: string, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(250);
  }
}

function decodeInput(e: HistoryEvent): unknown {
  const data = e.activityTaskScheduledEventAttributes?.input?.payloads?.[0]?.data;
  return data ? (JSON.parse(Buffer.from(data).toString('utf8')) as unknown) : undefined;
}

interface ActivityRecord {
  type: string;
  input: unknown;
  completed: boolean;
}

/** The activities of a workflow's history, in the order they were scheduled. */
async function activities(handle: WorkflowHandle): Promise<ActivityRecord[]> {
  const { events } = await handle.fetchHistory();
  const byId = new Map<string, ActivityRecord>();
  for (const e of events ?? []) {
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled) {
      byId.set(String(e.eventId), {
        type: scheduled.activityType?.name ?? '?',
        input: decodeInput(e),
        completed: false,
      });
    }
    const done = e.activityTaskCompletedEventAttributes;
    const record = done && byId.get(String(done.scheduledEventId));
    if (record) record.completed = true;
  }
  return [...byId.values()];
}

/** Waits until the restore sits at its approval gate; returns its plan. */
async function waitAtGate(handle: WorkflowHandle): Promise<RestorePlan> {
  return waitFor('the approval gate', async () => {
    const progress = await handle.query(progressQuery).catch(() => undefined);
    if (!progress?.step.startsWith('waiting for approval')) return undefined;
    return (await handle.query<RestorePlan | undefined>('plan')) ?? undefined;
  });
}

/** Runs a command expected to fail; resolves with its stderr and stdout. */
async function failingCommand(run: () => Promise<unknown>): Promise<string> {
  const error = await run().then(
    (out) => assert.fail(`expected the command to fail; it printed ${JSON.stringify(out)}`),
    (e: unknown) => e,
  );
  const { stderr = '', stdout = '' } = error as { stderr?: string; stdout?: string };
  return `${stderr}\n${stdout}`;
}

async function assertCancelled(handle: WorkflowHandle): Promise<void> {
  const error = await handle.result().then(
    () => assert.fail('the restore was expected to end cancelled'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof WorkflowFailedError, String(error));
  assert.ok(error.cause instanceof CancelledFailure, String(error.cause));
  const description = await handle.describe();
  assert.equal(description.status.name, 'CANCELLED');
  assert.deepEqual(description.searchAttributes.EtcdOutcome, ['cancelled']);
}

describe('restore control: approval gate and cancellation', { timeout: 60 * 60_000 }, () => {
  before(async () => {
    sim = await startSimCluster({ members: 1, userClusterName: ns, adminEtcd: false });
    ctx = await startTemporalTestContext('restore-control', {
      config: simWorkerConfig(sim, join(scratch, 'backups')),
    });
    client = new EtcdOpsClient(ctx.env.client, ctx.taskQueue);
    await sim.waitReady(WAIT_MS);
    for (let i = 0; i < KEYS; i++) await sim.putKey(`/test/before/${i}`, `value-${i}`);
    const handle = await client.startBackup({ userClusterName: ns });
    backupId = stored(await handle.result()).id;
    await recordHistory('backup-user-cluster', handle);
    stateBefore = await clusterState();
    assert.equal(stateBefore.pdbSpec !== null, true, 'the cluster has its PDB');
    assert.deepEqual(stateBefore.utilityPods, []);
  });
  afterEach(async () => {
    // A failed test must not leave a restore holding the cluster lock for the next one.
    sim?.faults.clear();
    for (const handle of started) {
      const { status } = await handle.describe();
      if (status.name === 'RUNNING') await handle.terminate('test over');
    }
    started = [];
  });
  after(async () => {
    await ctx?.teardown();
    await sim?.stop();
    rmSync(scratch, { recursive: true, force: true });
  });

  test('waits at the gate showing what it destroys, nothing changed; approved with the Temporal CLI', {
    timeout: TEST_TIMEOUT_MS,
  }, async () => {
    await prepare();
    const uids = await podUids();
    const handle = await startRestore({ requireApproval: true });
    const plan = await waitAtGate(handle);

    assert.equal(plan.backupId, backupId);
    assert.equal(plan.members, 1);
    assert.equal(plan.destroys.length, 1);
    assert.match(plan.destroys[0] ?? '', /etcd data of member 0 \(PVC data-kube-etcd-0\)/);
    assert.ok(plan.changes.some((c) => /PodDisruptionBudget kube-apiserver-pdb/.test(c)));
    const n = stateBefore.apiserver;
    assert.ok(plan.changes.includes(`kube-apiserver ${n} → 0 → ${n}`), plan.changes.join('\n'));
    // Debian's etcd 3.4: the plan says the revision is not raised, and what to restart.
    assert.match(plan.etcd.join('\n'), /the revision is not raised .* kubelet on every node/);
    // Nothing changed yet: in the cluster, and in the history (only the checks ran).
    assert.deepEqual(await clusterState(), stateBefore);
    assert.deepEqual(await podUids(), uids, 'no pod created, deleted or restarted');
    assert.equal(await sim.getKey(AFTER_BACKUP), 'must not survive a restore');
    assert.deepEqual(
      (await activities(handle)).map((a) => a.type),
      [
        'resolveTarget',
        'repositoryHostQueue',
        'resolveSnapshotToRestore',
        'inspectUserCluster',
        'findAnsweringMember',
      ],
    );

    // The update's validator refuses an approval that names nobody; the restore still waits.
    const refused = await failingCommand(() =>
      temporalCli(ctx.server, [
        'workflow',
        'update',
        'execute',
        '--workflow-id',
        handle.workflowId,
        '--name',
        'approveRestore',
        '--input',
        '{"approvedBy":" "}',
      ]),
    );
    assert.match(refused, /approvedBy: must name who decides/);
    assert.equal((await handle.describe()).status.name, 'RUNNING');

    await temporalCli(ctx.server, [
      'workflow',
      'signal',
      '--workflow-id',
      handle.workflowId,
      '--name',
      'approve',
      '--input',
      '{"approvedBy":"sre","comment":"ticket 42"}',
    ]);
    const result: RestoreUserClusterResult = await handle.result();
    await assertRestored(result);
    const progress: ProgressView = await handle.query(progressQuery);
    assert.ok(
      progress.log.some((l) => /approved by sre: ticket 42/.test(l)),
      progress.log.join('\n'),
    );
    await recordHistory('restore-approved-signal', handle);
  });

  test('approved with the project CLI (update approveRestore)', {
    timeout: TEST_TIMEOUT_MS,
  }, async () => {
    await prepare();
    const handle = await startRestore({ requireApproval: true });
    await waitAtGate(handle);
    assert.deepEqual(await clusterState(), stateBefore);

    const { stdout } = await execFileAsync(
      process.execPath,
      ['--import', 'tsx', 'client/cli.ts', 'restore', 'approve', handle.workflowId, '--by', 'sre'],
      {
        cwd: ROOT,
        timeout: WAIT_MS,
        env: {
          ...process.env,
          TEMPORAL_ADDRESS: ctx.server.address,
          TEMPORAL_NAMESPACE: ctx.server.namespace,
          TEMPORAL_TASK_QUEUE: ctx.taskQueue,
        },
      },
    );
    assert.match(stdout, /approved by sre/);
    await assertRestored(await handle.result());
    await recordHistory('restore-approved-update', handle);
  });

  test('the update is refused when the restore does not require approval', {
    timeout: TEST_TIMEOUT_MS,
  }, async () => {
    await prepare();
    // Hold the restore at H2 (deleting the PDB answers 503, retried) so that it is
    // certainly running when the update arrives; released below.
    const injected = sim.faults.injected;
    sim.faults.failNext(1_000_000, 503, {
      verb: 'delete',
      resource: 'poddisruptionbudgets',
      namespace: ns,
    });
    let handle: WorkflowHandle;
    try {
      handle = await startRestore();
      await waitFor('the restore to try deleting the PDB', async () =>
        sim.faults.injected > injected ? true : undefined,
      );
      const refused = await failingCommand(() =>
        temporalCli(ctx.server, [
          'workflow',
          'update',
          'execute',
          '--workflow-id',
          handle.workflowId,
          '--name',
          'approveRestore',
          '--input',
          '{"approvedBy":"sre"}',
        ]),
      );
      assert.match(refused, /this restore does not wait for approval/);
      const error = await client.approveRestore(handle.workflowId, 'sre').then(
        () => assert.fail('the update must be refused'),
        (e: unknown) => e,
      );
      assert.ok(error instanceof WorkflowUpdateFailedError, String(error));
      assert.match(String(error.cause?.message), /this restore does not wait for approval/);
    } finally {
      sim.faults.clear();
    }
    await assertRestored(await handle.result());
    await recordHistory('restore-1-member', handle);
  });

  test('cancelled at the approval gate: nothing changed, CANCELLED', {
    timeout: TEST_TIMEOUT_MS,
  }, async () => {
    await prepare();
    const uids = await podUids();
    const handle = await startRestore({ requireApproval: true });
    await waitAtGate(handle);
    await handle.cancel();
    await assertCancelled(handle);
    assert.deepEqual(await podUids(), uids, 'no pod created, deleted or restarted');
    await assertUntouched();
    assert.deepEqual(
      (await activities(handle)).map((a) => a.type),
      [
        'resolveTarget',
        'repositoryHostQueue',
        'resolveSnapshotToRestore',
        'inspectUserCluster',
        'findAnsweringMember',
      ],
    );
    await recordHistory('restore-cancelled-at-gate', handle);
  });

  test('cancelled after reversible changes: everything put back, CANCELLED', {
    timeout: TEST_TIMEOUT_MS,
  }, async () => {
    await prepare();
    // Held at its last step before the point of no return, stopping etcd (the scale of
    // kube-etcd answers 503, retried), with everything else already changed.
    sim.faults.failNext(1_000_000, 503, {
      verb: 'patch',
      resource: 'statefulsets',
      subresource: 'scale',
      name: 'kube-etcd',
    });
    const handle = await startRestore();
    await waitFor('stopping etcd, everything else changed', async () =>
      (await activities(handle)).some((a) => a.type === 'stopEtcdMembers') ? true : undefined,
    );
    await handle.cancel();
    sim.faults.clear(); // the undo scales kube-etcd back
    await assertCancelled(handle);

    const done = await activities(handle);
    assert.equal(
      done.some((a) => a.type === 'swapMemberData'),
      false,
      'no data was replaced',
    );
    const progress: ProgressView = await handle.query(progressQuery);
    for (const undo of [
      'PodDisruptionBudget kube-apiserver-pdb deleted',
      'kube-etcd at 0 replicas',
      'restored data in scratch space',
      'utility pod etcd-utility-0 exists',
      'ConfigMap',
    ])
      assert.ok(
        progress.log.some((l) => l.includes(`undo: ${undo}`)),
        `${undo}: ${progress.log.join('\n')}`,
      );
    await assertUntouched();
    await recordHistory('restore-cancelled-before-ponr', handle);
  });

  test('cancelled after the point of no return: the restore finishes, verified, and says so', {
    timeout: TEST_TIMEOUT_MS,
  }, async () => {
    await prepare();
    const handle = await startRestore();
    await waitFor('swapMemberData scheduled', async () =>
      (await activities(handle)).some((a) => a.type === 'swapMemberData') ? true : undefined,
    );
    await handle.cancel();
    const result: RestoreUserClusterResult = await handle.result();
    assert.ok(
      result.notes.some((l) => /cancellation was requested after the point of no return/.test(l)),
      result.notes.join('\n'),
    );
    const description = await handle.describe();
    assert.equal(description.status.name, 'COMPLETED');
    assert.deepEqual(description.searchAttributes.EtcdOutcome, ['succeeded']);
    await assertRestored(result);
    // The cluster lock was held to the end and released, not cancelled with the restore.
    const lock = await ctx.env.client.workflow.getHandle(clusterLockId(ns)).describe();
    assert.equal(lock.status.name, 'COMPLETED');
    await recordHistory('restore-cancel-refused-after-ponr', handle);
  });
});
