/**
 * The restore workflow's logic against mocked activities (a real Temporal dev server, no
 * cluster): what end-to-end tests cannot reach cheaply. A failure and a cancellation at
 * every step before the point of no return put back exactly what was changed, newest
 * first; an undo that fails is reported as UndoFailed naming it; a verification that fails
 * after the point of no return is VerificationFailed; the approval gate refuses bad
 * approvals and approvals it is not waiting for.
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
import {
  type ClusterInventory,
  FailureType,
  type RestoreUserClusterInput,
} from '../../workflows/contract/index.js';
import { approveSignal, approveUpdate, planQuery } from '../../workflows/restore/approval.js';
import { startTemporalTestContext, type TemporalTestContext } from '../harness/temporal.js';

const CLUSTER = 'logic';

/** One activity call as the mocks saw it. */
interface Call {
  name: string;
  input: Record<string, unknown>;
}

/** What a mocked activity does in one test: fail, block until cancelled, or answer. */
interface Script {
  fail?: (call: Call) => Error | undefined;
  /** Blocks (heartbeating) until the activity is cancelled. */
  block?: (call: Call) => boolean;
  /** Waits for the promise given before answering. */
  hold?: (call: Call) => Promise<void> | undefined;
  answer?: (call: Call) => unknown;
}

const scripts = new Map<string, Script>();
const calls = new Map<string, Call[]>();
const started = new Map<string, (call: Call) => void>();

function inventory(): ClusterInventory {
  return {
    members: [
      { name: 'kube-etcd-0', member: 0, nodeName: 'node-0', ready: false, restartCount: 9 },
    ],
    secretName: 'kube-etcd-certs-abcde',
    dataClaims: ['data-kube-etcd-0'],
    nodes: ['node-0'],
    etcdReplicas: 1,
    apiserverReplicas: 3,
    maintenanceReplicas: 1,
    pdbPresent: true,
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
  toolVersions: {},
};

const answers: Record<string, (input: Record<string, unknown>) => unknown> = {
  resolveSnapshotToRestore: () => ({ backupId: 'b1', record, checks: [] }),
  inspectUserCluster: () => inventory(),
  savePdb: () => ({
    apiVersion: 'policy/v1',
    kind: 'PodDisruptionBudget',
    metadata: { name: 'kube-apiserver-pdb', namespace: CLUSTER },
    spec: { minAvailable: 2 },
  }),
  deletePdb: () => 'deleted',
  scaleTo: () => undefined,
  ensureUtilityPod: () => ({ pod: 'etcd-utility-0', created: true }),
  copySnapshotIntoPod: () => ({ sizeBytes: 10, sha256: record.sha256, resumedFromBytes: 0 }),
  checkSnapshotInPod: () => ({ hash: 1, revision: 100, totalKey: 5, totalSize: 10 }),
  replaceMemberData: () => 'replaced',
  deletePod: () => 'deleted',
  waitEtcdHealthy: () => ({
    health: [{ endpoint: 'e0', health: true }],
    clusterIds: ['111'],
    revisions: [100],
  }),
  readKeyspaceAt: () => ({
    revision: 100,
    keyCount: 20,
    hashes: [{ endpoint: 'e0', memberId: '1', hash: 4242 }],
  }),
  recreatePdb: () => 'created',
  discardOldMemberData: () => undefined,
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
      return script.answer?.(call) ?? answers[name]?.(input);
    },
  ]),
) as unknown as Activities;

/** A call's short form: `scaleTo kube-apiserver 0`, `deletePod etcd-utility-0`. */
function describeCall({ name, input }: Call): string {
  if (name === 'scaleTo') return `scaleTo ${input.name} ${input.replicas}`;
  if (name === 'deletePod') return `deletePod ${input.name}`;
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

/** Starts a restore with its own script; resolves with its handle and its calls so far. */
async function start(
  script: Script,
  extra: Partial<RestoreUserClusterInput> = {},
): Promise<{
  handle: WorkflowHandle;
  calls: Call[];
  next: (pred: (c: Call) => boolean) => Promise<Call>;
}> {
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
  const handle = await ctx.env.client.workflow.start('restoreUserCluster', {
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

/** The steps before the point of no return, in order, with what they change. */
const STEPS: Array<{ step: string; is: (c: Call) => boolean; undo: string[] }> = [
  { step: 'H2 save the PDB', is: (c) => c.name === 'savePdb', undo: [] },
  { step: 'H2 delete the PDB', is: (c) => c.name === 'deletePdb', undo: ['recreatePdb'] },
  {
    step: 'H3 scale kube-apiserver to 0',
    is: (c) => describeCall(c) === 'scaleTo kube-apiserver 0',
    undo: ['scaleTo kube-apiserver 3', 'recreatePdb'],
  },
  {
    step: 'H3 scale gke-master-etcd-maintenance to 0',
    is: (c) => describeCall(c) === 'scaleTo gke-master-etcd-maintenance 0',
    undo: ['scaleTo gke-master-etcd-maintenance 1', 'scaleTo kube-apiserver 3', 'recreatePdb'],
  },
  {
    step: 'stop etcd',
    is: (c) => describeCall(c) === 'scaleTo kube-etcd 0',
    undo: [
      'scaleTo kube-etcd 1',
      'scaleTo gke-master-etcd-maintenance 1',
      'scaleTo kube-apiserver 3',
      'recreatePdb',
    ],
  },
  ...['ensureUtilityPod', 'copySnapshotIntoPod', 'checkSnapshotInPod'].map((name) => ({
    step: `H5 ${name}`,
    is: (c: Call) => c.name === name,
    undo: [
      'deletePod etcd-utility-0',
      'scaleTo kube-etcd 1',
      'scaleTo gke-master-etcd-maintenance 1',
      'scaleTo kube-apiserver 3',
      'recreatePdb',
    ],
  })),
];

/** The calls after the step under test: the undo, newest first. */
function undoCalls(seen: Call[], is: (c: Call) => boolean): string[] {
  return seen.slice(seen.findIndex(is) + 1).map(describeCall);
}

test('a restore through mocks succeeds and verifies what it read', async () => {
  const { handle, calls: seen } = await start({});
  const result = await handle.result();
  assert.deepEqual(result.members, [0]);
  assert.ok(result.verified.includes('1/1 members healthy'), result.verified.join('\n'));
  assert.deepEqual(seen.map(describeCall), [
    'resolveSnapshotToRestore',
    'inspectUserCluster',
    'savePdb',
    'deletePdb',
    'scaleTo kube-apiserver 0',
    'scaleTo gke-master-etcd-maintenance 0',
    'scaleTo kube-etcd 0',
    'ensureUtilityPod',
    'copySnapshotIntoPod',
    'checkSnapshotInPod',
    'replaceMemberData',
    'deletePod etcd-utility-0',
    'scaleTo kube-etcd 1',
    'waitEtcdHealthy',
    'readKeyspaceAt',
    'scaleTo kube-apiserver 3',
    'scaleTo gke-master-etcd-maintenance 1',
    'recreatePdb',
    'inspectUserCluster',
    'discardOldMemberData',
  ]);
});

describe('a failure before the point of no return puts back what was changed, newest first', () => {
  for (const { step, is, undo } of STEPS) {
    test(step, async () => {
      const boom = ApplicationFailure.nonRetryable(`${step} broke`, 'TestFailure');
      const { handle, calls: seen } = await start({ fail: (c) => (is(c) ? boom : undefined) });
      const cause = await failureOf(handle);
      assert.match(describeError(cause), /broke/);
      assert.deepEqual(undoCalls(seen, is), undo);
      assert.equal(
        seen.some((c) => c.name === 'replaceMemberData'),
        false,
        'no data touched',
      );
      const { searchAttributes } = await handle.describe();
      assert.deepEqual(searchAttributes.EtcdOutcome, ['failed']);
    });
  }
});

describe('a cancellation during any step before the point of no return ends CANCELLED, put back', () => {
  for (const { step, is, undo } of STEPS) {
    test(step, async () => {
      const { handle, calls: seen, next } = await start({ block: is });
      await next(is);
      await handle.cancel();
      const cause = await failureOf(handle);
      assert.ok(cause instanceof CancelledFailure, String(cause));
      assert.deepEqual(undoCalls(seen, is), undo);
      const description = await handle.describe();
      assert.equal(description.status.name, 'CANCELLED');
      assert.deepEqual(description.searchAttributes.EtcdOutcome, ['cancelled']);
    });
  }
});

test('an undo that fails is reported as UndoFailed naming it, and the other undos still run', async () => {
  const { handle, calls: seen } = await start({
    fail: (c) => {
      if (c.name === 'checkSnapshotInPod')
        return ApplicationFailure.nonRetryable('snapshot broke', 'TestFailure');
      if (describeCall(c) === 'scaleTo kube-etcd 1')
        return ApplicationFailure.nonRetryable('the API server refused', 'TestFailure');
      return undefined;
    },
  });
  const cause = await failureOf(handle);
  assert.ok(cause instanceof ApplicationFailure);
  assert.equal(cause.type, FailureType.UndoFailed);
  assert.match(cause.message, /a person must: scale kube-etcd back/);
  assert.deepEqual(
    undoCalls(seen, (c) => c.name === 'checkSnapshotInPod'),
    [
      'deletePod etcd-utility-0',
      'scaleTo kube-etcd 1',
      'scaleTo gke-master-etcd-maintenance 1',
      'scaleTo kube-apiserver 3',
      'recreatePdb',
    ],
  );
});

test('a restored keyspace unlike the backup fails as VerificationFailed', async () => {
  const { handle } = await start({
    answer: (c) =>
      c.name === 'readKeyspaceAt'
        ? { revision: 100, keyCount: 20, hashes: [{ endpoint: 'e0', memberId: '1', hash: 7 }] }
        : undefined,
  });
  const cause = await failureOf(handle);
  assert.ok(cause instanceof ApplicationFailure);
  assert.equal(cause.type, FailureType.VerificationFailed);
  assert.match(cause.message, /differs from the backup's 4242/);
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
    await waitUntil(async () => (await handle.query(planQuery)) !== undefined);
    const plan = await handle.query(planQuery);
    assert.deepEqual(plan?.destroys, [
      'etcd data of member 0 (PVC data-kube-etcd-0), replaced by revision 100',
    ]);
    await refused(handle, { approvedBy: '  ' }, /approvedBy must name who approves/);
    await refused(handle, { approvedBy: 'sre', comment: 7 }, /comment must be a string/);
    await handle.signal(approveSignal, { approvedBy: '' });
    assert.equal(
      seen.some((c) => c.name === 'savePdb'),
      false,
      'still waiting: nothing changed',
    );
    assert.equal(
      await handle.executeUpdate(approveUpdate, { args: [{ approvedBy: 'sre', comment: 'go' }] }),
      'approved by sre',
    );
    await handle.result();
    const { log } = await handle.query<{ log: string[] }>('progress');
    assert.ok(
      log.some((l) => /approval signal ignored: the restore is not at its approval gate/.test(l)),
    );
    assert.ok(
      log.some((l) => /approval signal ignored: approvedBy must name who approves/.test(l)),
    );
    assert.ok(log.some((l) => /approved by sre: go/.test(l)));
  });

  test('a restore that does not wait for approval refuses one', async () => {
    const { handle, open } = await heldAtInspection({ requireApproval: false });
    await refused(handle, { approvedBy: 'sre' }, /does not wait for approval/);
    open();
    await handle.result();
  });
});

async function waitUntil(check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('timed out');
}
