/**
 * The restore workflow's logic against mocked activities (a real Temporal dev server, no
 * cluster): what end-to-end tests cannot reach cheaply.
 *   - before the point of no return, a failure, a cancellation or a lost lock at every step
 *     puts back exactly what was changed, newest first (three members: all settle first);
 *     an undo that fails is UndoFailed naming it; an import that is not used is removed;
 *   - the approval gate refuses bad approvals, times out, and re-checks the cluster;
 *   - after the point of no return nothing fails the workflow: a transient failure is
 *     retried, a verification that does not pass keeps kube-apiserver at 0 and waits for an
 *     operator (outcome needs-operator), who retries or hands over.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Context } from '@temporalio/activity';
import {
  WorkflowFailedError,
  type WorkflowHandle,
  WorkflowUpdateFailedError,
} from '@temporalio/client';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import type { Activities } from '../../activities/index.js';
import { clusterLock } from '../../workflows/cluster-lock.js';
import {
  type ClusterInventory,
  clusterLockId,
  clusterProfileSchema,
  FailureType,
  type RestoreUserClusterInput,
  type RestoreUserClusterResult,
} from '../../workflows/contract/index.js';
import type { ProgressView } from '../../workflows/progress.js';
import { approveSignal, approveUpdate, planQuery } from '../../workflows/restore/approval.js';
import { problemQuery, resolveProblemUpdate } from '../../workflows/restore/operator.js';
import { restoreUserCluster } from '../../workflows/restore/workflow.js';
import { startTemporalTestContext, type TemporalTestContext } from '../harness/temporal.js';

const CLUSTER = 'logic';

/** One activity call as the mocks saw it. */
interface Call {
  name: string;
  input: Record<string, unknown>;
}

/** What a mocked activity does in one test: fail, block until cancelled, wait, or answer. */
interface Script {
  fail?: (call: Call) => Error | undefined;
  /** Blocks (heartbeating) until the activity is cancelled. */
  block?: (call: Call) => boolean;
  /** Waits for the promise given before answering. */
  hold?: (call: Call) => Promise<void> | undefined;
  answer?: (call: Call) => unknown;
  /** Members of the mocked cluster (1 by default). */
  members?: 1 | 3;
}

const scripts = new Map<string, Script>();
const calls = new Map<string, Call[]>();
const started = new Map<string, (call: Call) => void>();

function inventory(members: 1 | 3): ClusterInventory {
  const n = Array.from({ length: members }, (_, i) => i);
  return {
    members: n.map((i) => ({
      name: `kube-etcd-${i}`,
      member: i,
      nodeName: `node-${i}`,
      ready: false,
      restartCount: 9,
    })),
    secretName: 'kube-etcd-certs-abcde',
    dataClaims: n.map((i) => `data-kube-etcd-${i}`),
    nodes: n.map((i) => `node-${i}`),
    etcdReplicas: members,
    apiserverReplicas: 3,
    maintenanceReplicas: 1,
    ready: { etcd: 0, apiserver: 0, maintenance: 1 },
    pdbPresent: true,
    namespaceUid: 'uid-of-the-namespace',
    etcdStatefulSet: { podManagementPolicy: 'Parallel', readiness: 'none' },
  };
}

const record = {
  id: 'b1',
  userClusterName: CLUSTER,
  member: 0,
  sourcePod: 'kube-etcd-0',
  createdAt: '2026-11-27T18:30:00.000Z',
  sha256: '0'.repeat(64),
  sizeBytes: 10,
  revision: 100,
  totalKeys: 5,
  etcdHash: 1,
  keyCount: 20,
  kvHash: 4242,
  kvHashCompactRevision: 50,
  origin: 'taken',
  toolVersions: {},
};

const answers: Record<string, (input: Record<string, unknown>, members: 1 | 3) => unknown> = {
  resolveTarget: () => ({
    adminCluster: 'sim',
    repository: 'local',
    profile: clusterProfileSchema.parse({}),
  }),
  resolveSnapshotToRestore: (input) => {
    const backup = input.backup as { backupId?: string };
    return backup.backupId
      ? { backupId: 'b1', record, checks: [] }
      : { backupId: input.importId, record: { ...record, origin: 'imported' }, checks: [] };
  },
  deleteImportedBackup: () => undefined,
  inspectUserCluster: (_input, members) => inventory(members),
  ensureUtilityPod: (input) => ({ pod: `etcd-utility-${input.member}`, created: true }),
  // Debian's etcd 3.4 in the utility image: no etcdutl, no revision bump.
  checkPodTools: () => ({ etcdctl: '3.4.23' }),
  // Every member broken: the version comes from the image tag (none here: unknown).
  findAnsweringMember: () => undefined,
  measureFreeSpace: () => ({ availableBytes: 1 << 30 }),
  copySnapshotIntoPod: () => ({ sizeBytes: 10, sha256: record.sha256, resumedFromBytes: 0 }),
  checkSnapshotInPod: () => ({ hash: 1, revision: 100, totalKey: 5, totalSize: 10 }),
  restoreIntoScratch: () => 'restored',
  savePdb: () => ({
    manifest: {
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: { name: 'kube-apiserver-pdb', namespace: CLUSTER },
      spec: { minAvailable: 2 },
    },
    uid: 'pdb-uid-1',
  }),
  recordRestore: (input) => input.record,
  deletePdb: () => 'deleted',
  scaleTo: () => undefined,
  stopEtcdMembers: () => [],
  swapMemberData: () => 'replaced',
  deletePod: () => 'deleted',
  waitEtcdHealthy: (_input, members) => ({
    health: Array.from({ length: members }, (_, i) => ({ endpoint: `e${i}`, health: true })),
    clusterIds: ['111'],
    memberIds: Array.from({ length: members }, (_, i) => String(i + 1)),
    revisions: Array.from({ length: members }, () => 100),
    versions: Array.from({ length: members }, () => '3.4.23'),
  }),
  readKeyspaceAt: (_input, members) => ({
    revision: 100,
    keyCount: 20,
    hashes: Array.from({ length: members }, (_, i) => ({
      endpoint: `e${i}`,
      memberId: String(i + 1),
      hash: 4242,
      compactRevision: 50,
    })),
  }),
  recreatePdb: () => 'created',
  discardOldMemberData: () => [],
  clearRestoreRecord: () => undefined,
};

/** Every activity the restore uses, answering from `answers` unless the test's script says otherwise. */
const mocks = Object.fromEntries(
  Object.keys(answers).map((name) => [
    name,
    async (input: Record<string, unknown>) => {
      const workflowId = Context.current().info.workflowExecution?.workflowId ?? '';
      const call = { name, input };
      calls.get(workflowId)?.push(call);
      started.get(workflowId)?.(call);
      const script = scripts.get(workflowId) ?? {};
      const failure = script.fail?.(call);
      if (failure) throw failure;
      if (script.block?.(call)) {
        const beat = setInterval(() => Context.current().heartbeat(), 100);
        try {
          await Context.current().cancelled;
        } finally {
          clearInterval(beat);
        }
      }
      await script.hold?.(call);
      return script.answer?.(call) ?? answers[name]?.(input, script.members ?? 1);
    },
  ]),
) as unknown as Activities;

/** A call's short form: `scaleTo kube-apiserver 0`, `deletePod etcd-utility-0`, `swapMemberData 1`. */
function describeCall({ name, input }: Call): string {
  if (name === 'scaleTo') return `scaleTo ${input.name} ${input.replicas}`;
  if (name === 'deletePod') return `deletePod ${input.name}`;
  if (input.member !== undefined && name !== 'readKeyspaceAt') return `${name} ${input.member}`;
  if (typeof input.pod === 'string' && /^etcd-utility-\d$/.test(input.pod))
    return `${name} ${input.pod.slice(-1)}`;
  return name;
}

let ctx: TemporalTestContext;
let runs = 0;

before(async () => {
  ctx = await startTemporalTestContext('restore-logic', { activities: mocks });
});
after(async () => {
  await ctx?.teardown();
});

/** Starts a restore with its own script; resolves with its handle and the calls it makes. */
async function start(script: Script, extra: Partial<RestoreUserClusterInput> = {}) {
  const workflowId = `restore-logic-${++runs}`;
  const seen: Call[] = [];
  calls.set(workflowId, seen);
  scripts.set(workflowId, script);
  const waiters: Array<{ pred: (c: Call) => boolean; resolve: (c: Call) => void }> = [];
  started.set(workflowId, (call) => {
    for (const w of [...waiters]) {
      if (w.pred(call)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(call);
      }
    }
  });
  const handle = await ctx.env.client.workflow.start(restoreUserCluster, {
    taskQueue: ctx.taskQueue,
    workflowId,
    args: [
      {
        userClusterName: CLUSTER,
        gkeOnPremVersion: '1.5.0-gke.0',
        backup: { backupId: 'b1' },
        ...extra,
      },
    ],
  });
  const next = (pred: (c: Call) => boolean) =>
    new Promise<Call>((resolve) => {
      const already = seen.find(pred);
      if (already) resolve(already);
      else waiters.push({ pred, resolve });
    });
  return { handle, calls: seen, next };
}

/** A failure and its causes in one line. */
function describeError(error: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = error; e instanceof Error; e = e.cause) parts.push(e.message);
  return parts.join(': ');
}

async function failureOf(handle: WorkflowHandle): Promise<Error> {
  const error = await handle.result().then(
    () => assert.fail('the restore was expected to fail'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof WorkflowFailedError, String(error));
  return error.cause as Error;
}

async function waitUntil(what: string, check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 1200; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const progressOf = (handle: WorkflowHandle) => handle.query<ProgressView>('progress');

const UNDO_PREPARED = ['deletePod etcd-utility-0'];
const UNDO_RESTORED = ['ensureUtilityPod 0', 'discardOldMemberData 0', ...UNDO_PREPARED];
const UNDO_RECORDED = ['clearRestoreRecord', ...UNDO_RESTORED];
const UNDO_PDB = ['recreatePdb', ...UNDO_RECORDED];

/** The steps before the point of no return, in order, with what each one's failure puts back. */
const STEPS: Array<{ step: string; call: string; undo: string[] }> = [
  { step: 'H5a the utility pod', call: 'ensureUtilityPod 0', undo: UNDO_PREPARED },
  { step: 'H5a the image has the tools', call: 'checkPodTools 0', undo: UNDO_PREPARED },
  { step: 'H5a room on the volume', call: 'measureFreeSpace 0', undo: UNDO_PREPARED },
  { step: 'H5b copy the snapshot', call: 'copySnapshotIntoPod', undo: UNDO_PREPARED },
  { step: 'H5b check it in the pod', call: 'checkSnapshotInPod 0', undo: UNDO_PREPARED },
  { step: 'H5c restore into scratch', call: 'restoreIntoScratch 0', undo: UNDO_RESTORED },
  { step: 'H2 save the PDB', call: 'savePdb', undo: UNDO_RESTORED },
  { step: 'record the originals', call: 'recordRestore', undo: UNDO_RECORDED },
  { step: 'H2 delete the PDB', call: 'deletePdb', undo: UNDO_PDB },
  {
    step: 'H3 scale kube-apiserver to 0',
    call: 'scaleTo kube-apiserver 0',
    undo: ['scaleTo kube-apiserver 3', ...UNDO_PDB],
  },
  {
    step: 'H3 scale gke-master-etcd-maintenance to 0',
    call: 'scaleTo gke-master-etcd-maintenance 0',
    undo: ['scaleTo gke-master-etcd-maintenance 1', 'scaleTo kube-apiserver 3', ...UNDO_PDB],
  },
  {
    step: 'stop etcd',
    call: 'stopEtcdMembers',
    undo: [
      'scaleTo kube-etcd 1',
      'scaleTo gke-master-etcd-maintenance 1',
      'scaleTo kube-apiserver 3',
      ...UNDO_PDB,
    ],
  },
];

const is = (call: string) => (c: Call) => describeCall(c) === call;

/** The calls after the step under test: the undo, newest first. */
function undoCalls(seen: Call[], call: string): string[] {
  return seen.slice(seen.findIndex(is(call)) + 1).map(describeCall);
}

test('a restore through mocks: preparation first, then the point of no return, verified before H7', async () => {
  const { handle, calls: seen } = await start({});
  const result = await handle.result();
  assert.equal(result.outcome, 'restored');
  assert.deepEqual(result.members, [0]);
  assert.ok(result.verified.includes('1/1 members healthy'), result.verified.join('\n'));
  assert.deepEqual(seen.map(describeCall), [
    'resolveTarget',
    'resolveSnapshotToRestore',
    'inspectUserCluster',
    'findAnsweringMember',
    'ensureUtilityPod 0',
    'checkPodTools 0',
    'measureFreeSpace 0',
    'copySnapshotIntoPod',
    'checkSnapshotInPod 0',
    'restoreIntoScratch 0',
    'inspectUserCluster',
    'findAnsweringMember',
    'savePdb',
    'recordRestore',
    'deletePdb',
    'scaleTo kube-apiserver 0',
    'scaleTo gke-master-etcd-maintenance 0',
    'stopEtcdMembers',
    'ensureUtilityPod 0',
    'stopEtcdMembers',
    'swapMemberData 0',
    'deletePod etcd-utility-0',
    'scaleTo kube-etcd 1',
    'waitEtcdHealthy',
    'readKeyspaceAt',
    'scaleTo kube-apiserver 3',
    'scaleTo gke-master-etcd-maintenance 1',
    'recreatePdb',
    'inspectUserCluster',
    'ensureUtilityPod 0',
    'discardOldMemberData 0',
    'deletePod etcd-utility-0',
    'clearRestoreRecord',
  ]);
  const deletePdb = seen.find(is('deletePdb'));
  assert.equal(deletePdb?.input.uid, 'pdb-uid-1', 'only the PDB saved is deleted');
});

test('a member that stops being Ready during the preparation: the restore notices before H2 and puts everything back', async () => {
  let inspections = 0;
  const { handle, calls: seen } = await start({
    members: 3,
    answer: (c) => {
      if (c.name !== 'inspectUserCluster') return undefined;
      // OrderedReady, every member Ready at first; member 1 breaks while preparing, so
      // scaling kube-etcd back would no longer start member 2.
      const now = inventory(3);
      return {
        ...now,
        etcdStatefulSet: { podManagementPolicy: 'OrderedReady', readiness: 'none' },
        members: now.members.map((m) => ({
          ...m,
          ready: m.member !== 1 || ++inspections === 1,
        })),
      };
    },
  });
  const cause = await failureOf(handle);
  assert.ok(cause instanceof ApplicationFailure);
  assert.equal(cause.type, FailureType.ClusterState);
  assert.match(
    cause.message,
    /while the members were prepared; everything is put back.*stopping kube-etcd can be undone/,
  );
  const names = seen.map(describeCall);
  assert.equal(names.includes('savePdb'), false, 'nothing of the control plane changed');
  assert.equal(names.includes('stopEtcdMembers'), false);
  assert.ok(names.includes('deletePod etcd-utility-1'), 'the preparation is put back');
});

describe('a failure before the point of no return puts back what was changed, newest first', () => {
  for (const { step, call, undo } of STEPS) {
    test(step, async () => {
      const boom = ApplicationFailure.nonRetryable(`${step} broke`, 'TestFailure');
      const { handle, calls: seen } = await start({
        fail: (c) => (is(call)(c) ? boom : undefined),
      });
      const cause = await failureOf(handle);
      assert.match(describeError(cause), /broke/);
      assert.deepEqual(undoCalls(seen, call), undo);
      assert.equal(
        seen.some((c) => c.name === 'swapMemberData'),
        false,
        'no data touched',
      );
      const { searchAttributes } = await handle.describe();
      assert.deepEqual(searchAttributes.EtcdOutcome, ['failed']);
    });
  }
});

describe('a cancellation during any step before the point of no return ends CANCELLED, put back', () => {
  for (const { step, call, undo } of STEPS) {
    test(step, async () => {
      const { handle, calls: seen, next } = await start({ block: is(call) });
      await next(is(call));
      await handle.cancel();
      const cause = await failureOf(handle);
      assert.ok(cause instanceof CancelledFailure, String(cause));
      assert.deepEqual(undoCalls(seen, call), undo);
      const description = await handle.describe();
      assert.equal(description.status.name, 'CANCELLED');
      assert.deepEqual(description.searchAttributes.EtcdOutcome, ['cancelled']);
    });
  }

  test('at the approval gate: nothing to put back', async () => {
    const { handle, calls: seen } = await start({}, { requireApproval: true });
    await waitUntil('the gate', async () => (await handle.query(planQuery)) !== undefined);
    // No member answered and no image tag: the plan says both cases of the revision bump.
    const etcd = (await handle.query(planQuery))?.etcd.join('\n') ?? '';
    assert.match(etcd, /the cluster runs etcd \(version unknown\)/);
    assert.match(etcd, /records no provenance/);
    assert.match(
      etcd,
      /raised from 100 by 1000000000 .* if the utility image's etcdutl is 3\.5\.10 or later/,
    );
    assert.match(
      etcd,
      /if not, the revision is not raised .* restart everything else that watches/,
    );
    await handle.cancel();
    assert.ok((await failureOf(handle)) instanceof CancelledFailure);
    assert.deepEqual(seen.map(describeCall), [
      'resolveTarget',
      'resolveSnapshotToRestore',
      'inspectUserCluster',
      'findAnsweringMember',
    ]);
  });
});

test('three members: every member settles before the undo, which puts back all three', async () => {
  const { handle, calls: seen } = await start({
    members: 3,
    hold: (c) =>
      describeCall(c) === 'restoreIntoScratch 2'
        ? new Promise((resolve) => setTimeout(resolve, 1500))
        : undefined,
    fail: (c) =>
      describeCall(c) === 'checkSnapshotInPod 1'
        ? ApplicationFailure.nonRetryable('member 1 broke', 'TestFailure')
        : undefined,
  });
  await failureOf(handle);
  const names = seen.map(describeCall);
  // The first undo discards a member's scratch data, after making sure its pod is there.
  const firstUndo =
    names.findIndex((n) => n.startsWith('discardOldMemberData') || n.startsWith('deletePod')) - 1;
  assert.match(names[firstUndo] ?? '', /^ensureUtilityPod /);
  assert.ok(
    names.indexOf('restoreIntoScratch 2') < firstUndo,
    'member 2 finished its restore before anything was put back',
  );
  assert.deepEqual(names.slice(firstUndo).sort(), [
    'deletePod etcd-utility-0',
    'deletePod etcd-utility-1',
    'deletePod etcd-utility-2',
    'discardOldMemberData 0',
    'discardOldMemberData 2',
    'ensureUtilityPod 0',
    'ensureUtilityPod 2',
  ]);
});

test('an undo that fails is reported as UndoFailed naming it, and the other undos still run', async () => {
  const { handle, calls: seen } = await start({
    fail: (c) => {
      if (c.name === 'stopEtcdMembers')
        return ApplicationFailure.nonRetryable('stopping broke', 'TestFailure');
      if (describeCall(c) === 'scaleTo kube-apiserver 3')
        return ApplicationFailure.nonRetryable('the API server refused', 'TestFailure');
      return undefined;
    },
  });
  const cause = await failureOf(handle);
  assert.ok(cause instanceof ApplicationFailure);
  assert.equal(cause.type, FailureType.UndoFailed);
  assert.match(
    cause.message,
    /a person must: kube-apiserver at 0 replicas \(was 3\): kubectl -n logic scale statefulset kube-apiserver --replicas=3/,
  );
  // The record stays: it holds kube-apiserver's original count for whoever puts it back.
  assert.deepEqual(
    undoCalls(seen, 'stopEtcdMembers'),
    STEPS.at(-1)?.undo.filter((call) => call !== 'clearRestoreRecord'),
  );
  assert.match(cause.message, /etcd-ha-restore-record with the originals \(kept: /);
});

test('a snapshot imported for a restore that fails before the point of no return is removed', async () => {
  const { handle, calls: seen } = await start(
    {
      fail: (c) =>
        c.name === 'checkPodTools'
          ? ApplicationFailure.nonRetryable('no sh', 'MissingTools')
          : undefined,
    },
    { backup: { importFile: 'snap.db' } },
  );
  await failureOf(handle);
  const deleted = seen.find((c) => c.name === 'deleteImportedBackup');
  assert.ok(deleted, seen.map(describeCall).join(', '));
  assert.match(String(deleted.input.backupId), /^import-/);
  assert.equal(seen.at(-1)?.name, 'deleteImportedBackup', 'the import goes last');
});

test('a lost lock before the point of no return puts everything back and fails (LockLost)', async () => {
  const {
    handle,
    calls: seen,
    next,
  } = await start({
    hold: (c) =>
      describeCall(c) === 'restoreIntoScratch 0'
        ? new Promise((r) => setTimeout(r, 2000))
        : undefined,
  });
  await next(is('restoreIntoScratch 0'));
  await ctx.env.client.workflow.getHandle(clusterLockId(CLUSTER)).terminate('an operator freed it');
  const cause = await failureOf(handle);
  assert.ok(cause instanceof ApplicationFailure);
  assert.equal(cause.type, FailureType.LockLost);
  assert.deepEqual(undoCalls(seen, 'restoreIntoScratch 0'), UNDO_RESTORED);
});

test('a lock lost after the point of no return is taken again at once, and released at the end', async () => {
  let released = () => {};
  const healthyWaits = new Promise<void>((resolve) => {
    released = resolve;
  });
  const { handle, next } = await start({
    hold: (c) => (c.name === 'waitEtcdHealthy' ? healthyWaits : undefined),
  });
  await next((c) => c.name === 'waitEtcdHealthy');
  const lockHandle = ctx.env.client.workflow.getHandle(clusterLockId(CLUSTER));
  const firstRun = (await lockHandle.describe()).runId;
  await lockHandle.signal('release', { holder: 'someone else' });
  // The restore holds the cluster again (a new run of the lock) while it still works on it.
  await waitUntil('the lock taken again', async () => {
    const now = await ctx.env.client.workflow.getHandle(clusterLockId(CLUSTER)).describe();
    return now.runId !== firstRun && now.status.name === 'RUNNING';
  });
  released();
  const result = await handle.result();
  assert.equal(result.outcome, 'restored');
  assert.ok(
    result.notes.some((n) =>
      /point of no return, the lock .* was released by someone else; taken again/.test(n),
    ),
    result.notes.join('\n'),
  );
  const after = await ctx.env.client.workflow.getHandle(clusterLockId(CLUSTER)).describe();
  assert.equal(after.status.name, 'COMPLETED', 'released when the restore finished');
});

test('a restore refused because the cluster is busy ends with outcome failed, not running', async () => {
  const holder = await ctx.env.client.workflow.start(clusterLock, {
    taskQueue: ctx.taskQueue,
    workflowId: clusterLockId(CLUSTER),
    args: [{ workflowId: 'another-backup', operation: 'backup' }],
  });
  try {
    const { handle, calls: seen } = await start({});
    const cause = await failureOf(handle);
    assert.ok(cause instanceof ApplicationFailure);
    assert.equal(cause.type, FailureType.ClusterBusy);
    assert.deepEqual((await handle.describe()).searchAttributes.EtcdOutcome, ['failed']);
    assert.deepEqual(seen.map(describeCall), ['resolveTarget'], 'only the names were resolved');
  } finally {
    await holder.terminate('test over');
  }
});

describe('the approval gate', () => {
  /** A restore held in its inspection until `open()` lets it reach the gate. */
  async function heldAtInspection(extra: Partial<RestoreUserClusterInput>) {
    let open = () => {};
    const opened = new Promise<void>((resolve) => {
      open = resolve;
    });
    const run = await start(
      { hold: (c) => (c.name === 'inspectUserCluster' ? opened : undefined) },
      extra,
    );
    await run.next((c) => c.name === 'inspectUserCluster');
    return { ...run, open };
  }

  const refused = (handle: WorkflowHandle, approval: unknown, reason: RegExp) =>
    assert.rejects(
      handle.executeUpdate(approveUpdate, { args: [approval as { approvedBy: string }] }),
      (e: unknown) =>
        e instanceof WorkflowUpdateFailedError && reason.test(String(e.cause?.message)),
    );

  test('refuses approvals before the plan is shown and without a name; a good one passes', async () => {
    const { handle, calls: seen, open } = await heldAtInspection({ requireApproval: true });
    await refused(handle, { approvedBy: 'sre' }, /not at its approval gate yet/);
    await handle.signal(approveSignal, { approvedBy: 'too early' });
    open();
    await waitUntil('the gate', async () => (await handle.query(planQuery)) !== undefined);
    const plan = await handle.query(planQuery);
    assert.deepEqual(plan?.destroys, [
      'etcd data of member 0 (PVC data-kube-etcd-0), replaced by revision 100',
    ]);
    await refused(handle, { approvedBy: '  ' }, /approvedBy: must name who decides/);
    await refused(
      handle,
      { approvedBy: 'sre', comment: 7 },
      /comment: Invalid input: expected string/,
    );
    await handle.signal(approveSignal, { approvedBy: '' });
    assert.equal(
      seen.some((c) => c.name === 'ensureUtilityPod'),
      false,
      'still waiting: nothing changed',
    );
    assert.equal(
      await handle.executeUpdate(approveUpdate, { args: [{ approvedBy: 'sre', comment: 'go' }] }),
      'approved by sre',
    );
    await handle.result();
    const { log } = await progressOf(handle);
    assert.ok(
      log.some((l) => /approval signal ignored: the restore is not at its approval gate/.test(l)),
    );
    assert.ok(
      log.some((l) => /approval signal ignored: approvedBy: must name who decides/.test(l)),
    );
    assert.ok(log.some((l) => /approved by sre: go/.test(l)));
    assert.equal(
      seen.filter((c) => c.name === 'inspectUserCluster').length,
      4,
      'inspected at the start, after approval, after the preparation, and after H9',
    );
  });

  test('a restore that does not wait for approval refuses one', async () => {
    const { handle, open } = await heldAtInspection({ requireApproval: false });
    await refused(handle, { approvedBy: 'sre' }, /does not wait for approval/);
    open();
    await handle.result();
  });

  test('nobody approves within the timeout: the restore ends, nothing changed (ApprovalTimedOut)', async () => {
    const { handle, calls: seen } = await start(
      {},
      { requireApproval: true, approvalTimeout: '2s' },
    );
    const cause = await failureOf(handle);
    assert.ok(cause instanceof ApplicationFailure);
    assert.equal(cause.type, FailureType.ApprovalTimedOut);
    assert.deepEqual(seen.map(describeCall), [
      'resolveTarget',
      'resolveSnapshotToRestore',
      'inspectUserCluster',
      'findAnsweringMember',
    ]);
  });

  test('a cluster that changed while it waited is refused after approval, nothing changed', async () => {
    let inspections = 0;
    const { handle, calls: seen } = await start(
      {
        answer: (c) =>
          c.name === 'inspectUserCluster' && ++inspections > 1
            ? { ...inventory(1), apiserverReplicas: 5 }
            : undefined,
      },
      { requireApproval: true },
    );
    await waitUntil('the gate', async () => (await handle.query(planQuery)) !== undefined);
    await handle.executeUpdate(approveUpdate, { args: [{ approvedBy: 'sre' }] });
    const cause = await failureOf(handle);
    assert.ok(cause instanceof ApplicationFailure);
    assert.equal(cause.type, FailureType.ClusterState);
    assert.match(cause.message, /changed while the restore waited for approval.*replicas/);
    assert.equal(
      seen.some((c) => c.name === 'ensureUtilityPod'),
      false,
    );
  });
});

describe('after the point of no return nothing fails the workflow', () => {
  test('a transient failure (a wait that timed out) is retried and the restore finishes', async () => {
    let failed = false;
    const { handle } = await start({
      fail: (c) => {
        if (c.name !== 'waitEtcdHealthy' || failed) return undefined;
        failed = true;
        return ApplicationFailure.nonRetryable(
          'timed out waiting for 1 healthy etcd members',
          FailureType.WaitTimeout,
        );
      },
    });
    const result = await handle.result();
    assert.equal(result.outcome, 'restored');
    const { log } = await progressOf(handle);
    assert.ok(
      log.some((l) =>
        /H6 start etcd and verify it \(before H7\) failed .* run again in 10 seconds/.test(l),
      ),
    );
  });

  test('a verification that does not pass keeps kube-apiserver at 0 and waits for an operator; retry finishes', async () => {
    let hash = 7;
    const { handle, calls: seen } = await start({
      answer: (c) =>
        c.name === 'readKeyspaceAt'
          ? {
              revision: 100,
              keyCount: 20,
              hashes: [{ endpoint: 'e0', memberId: '1', hash, compactRevision: 50 }],
            }
          : undefined,
    });
    await waitUntil(
      'needs-operator',
      async () => (await handle.describe()).searchAttributes.EtcdOutcome?.[0] === 'needs-operator',
    );
    assert.equal(seen.some(is('scaleTo kube-apiserver 3')), false, 'kube-apiserver stays at 0');
    const [problem] = await handle.query(problemQuery);
    assert.match(problem?.error ?? '', /differs from the backup's 4242/);
    assert.ok(
      problem?.stillChanged.some((c) => /kube-apiserver at 0 replicas \(was 3\)/.test(c)),
      problem?.stillChanged.join('\n'),
    );
    assert.ok(
      problem?.stillChanged.some((c) => /PodDisruptionBudget kube-apiserver-pdb deleted/.test(c)),
    );
    await assert.rejects(
      handle.executeUpdate(resolveProblemUpdate, { args: [{ action: 'retry', by: '' }] }),
      (e: unknown) =>
        e instanceof WorkflowUpdateFailedError &&
        /by: must name who decides/.test(String(e.cause?.message)),
    );
    hash = 4242; // the operator fixed what made the keyspace differ
    assert.equal(
      await handle.executeUpdate(resolveProblemUpdate, { args: [{ action: 'retry', by: 'sre' }] }),
      'retry by sre',
    );
    const result: RestoreUserClusterResult = await handle.result();
    assert.equal(result.outcome, 'restored');
    assert.ok(seen.some(is('scaleTo kube-apiserver 3')));
    const { searchAttributes } = await handle.describe();
    assert.deepEqual(searchAttributes.EtcdOutcome, ['succeeded']);
  });

  test('after the point of no return members settle together: a hand-over waits for the swap still running on another member', async () => {
    let finishSwap1 = () => {};
    const swap1 = new Promise<void>((resolve) => {
      finishSwap1 = resolve;
    });
    let swap1Done = false;
    const { handle, next } = await start({
      members: 3,
      fail: (c) =>
        describeCall(c) === 'swapMemberData 0'
          ? ApplicationFailure.nonRetryable('both member/ exist', FailureType.ClusterState)
          : undefined,
      hold: (c) =>
        describeCall(c) === 'swapMemberData 1'
          ? swap1.then(() => {
              swap1Done = true;
            })
          : undefined,
    });
    await next(is('swapMemberData 1'));
    await waitUntil(
      'needs-operator',
      async () => (await handle.describe()).searchAttributes.EtcdOutcome?.[0] === 'needs-operator',
    );
    await handle.executeUpdate(resolveProblemUpdate, {
      args: [{ action: 'hand-over', by: 'sre' }],
    });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.equal((await handle.describe()).status.name, 'RUNNING', 'member 1 is still mid-swap');
    finishSwap1();
    const result: RestoreUserClusterResult = await handle.result();
    assert.equal(result.outcome, 'handed-over');
    assert.ok(swap1Done, "member 1's swap finished before the restore ended");
  });

  test('a hand-over ends the restore (handed-over) with the list of what is not put back', async () => {
    const { handle } = await start({
      fail: (c) =>
        c.name === 'swapMemberData'
          ? ApplicationFailure.nonRetryable('both member/ exist', FailureType.ClusterState)
          : undefined,
    });
    await waitUntil(
      'needs-operator',
      async () => (await handle.describe()).searchAttributes.EtcdOutcome?.[0] === 'needs-operator',
    );
    await handle.executeUpdate(resolveProblemUpdate, {
      args: [{ action: 'hand-over', by: 'sre', comment: 'fixing member 0 by hand' }],
    });
    const result: RestoreUserClusterResult = await handle.result();
    assert.equal(result.outcome, 'handed-over');
    for (const expected of [
      /kube-apiserver at 0 replicas/,
      /kube-etcd at 0 replicas/,
      /PodDisruptionBudget/,
      /utility pod etcd-utility-0 exists/,
    ]) {
      assert.ok(
        result.notPutBack.some((l) => expected.test(l)),
        `${expected}: ${result.notPutBack.join('\n')}`,
      );
    }
    const { searchAttributes, status } = await handle.describe();
    assert.equal(status.name, 'COMPLETED');
    assert.deepEqual(searchAttributes.EtcdOutcome, ['handed-over']);
  });
});
