/**
 * Both workflow types, started with the Temporal CLI binary exactly as an operator would
 * (`temporal workflow start --type … --input '{json}'`): bad input fails the workflow at
 * once, non-retryably, naming the bad field; good input gets past validation.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../../workflows/contract/index.js';
import {
  startTemporalTestContext,
  type TemporalTestContext,
  temporalCli,
} from '../harness/temporal.js';

let ctx: TemporalTestContext;
before(async () => {
  ctx = await startTemporalTestContext('workflow-input-cli');
});
after(async () => {
  await ctx?.teardown();
});

/** Starts `type` with the CLI binary and returns how the run failed. */
async function startWithCliAndGetFailure(
  type: string,
  input: unknown,
): Promise<{ error: WorkflowFailedError; workflowTasks: number }> {
  const workflowId = `${type}-${randomUUID()}`;
  const out = await temporalCli(ctx.server, [
    'workflow',
    'start',
    '--type',
    type,
    '--task-queue',
    ctx.taskQueue,
    '--workflow-id',
    workflowId,
    '--input',
    JSON.stringify(input),
  ]);
  assert.match(out, new RegExp(workflowId));
  const handle = ctx.env.client.workflow.getHandle(workflowId);
  const error = await handle.result().then(
    () => assert.fail(`${type} was expected to fail`),
    (e: unknown) => e,
  );
  assert.ok(
    error instanceof WorkflowFailedError,
    `expected WorkflowFailedError, got ${String(error)}`,
  );
  const { events } = await handle.fetchHistory();
  const workflowTasks = (events ?? []).filter((e) => e.workflowTaskStartedEventAttributes).length;
  return { error, workflowTasks };
}

/** A bad input fails the run at once: in its first workflow task, non-retryably. */
async function expectInvalidInput(type: string, input: unknown, fieldMessage: RegExp) {
  const { error, workflowTasks } = await startWithCliAndGetFailure(type, input);
  assert.equal(workflowTasks, 1, 'the workflow must fail in its first workflow task');
  const failure = error.cause;
  assert.ok(failure instanceof ApplicationFailure, `expected ApplicationFailure, got ${failure}`);
  assert.equal(failure.type, FailureType.InvalidInput);
  assert.equal(failure.nonRetryable, true);
  assert.match(failure.message, fieldMessage);
}

/**
 * A good input gets past validation to the first activity, which fails for a reason of
 * the environment (this test's worker has no cluster and no backups).
 */
async function expectPastValidation(type: string, input: unknown, activityFailureType: string) {
  const { error } = await startWithCliAndGetFailure(type, input);
  assert.ok(error.cause instanceof ActivityFailure, `expected ActivityFailure, got ${error.cause}`);
  const failure = error.cause.cause;
  assert.ok(failure instanceof ApplicationFailure, `expected ApplicationFailure, got ${failure}`);
  assert.equal(failure.type, activityFailureType, failure.message);
}

const goodBackup = { userClusterName: 'user-cluster-1' };
const goodRestore = {
  userClusterName: 'user-cluster-1',
  gkeOnPremVersion: '1.5.0-gke.0',
  backup: { backupId: '20261127T000000Z-0123abcd' },
};

describe('backupUserCluster started with the Temporal CLI', () => {
  const badInputs: Array<[string, unknown, RegExp]> = [
    [
      'a name that is not a DNS label',
      { userClusterName: 'User_Cluster;rm -rf /' },
      /userClusterName: must be a DNS label/,
    ],
    ['a missing name', {}, /userClusterName: /],
    ['a member out of range', { ...goodBackup, sourceMember: 3 }, /sourceMember: /],
    [
      'a relative kubeconfig path',
      { ...goodBackup, adminKubeconfig: 'kube/config' },
      /adminKubeconfig: must be an absolute path/,
    ],
    ['an unknown field', { ...goodBackup, extra: 1 }, /extra/],
    [
      'a bad profile value',
      { ...goodBackup, profile: { peerUrlTemplate: 'https://x:2380' } },
      /profile\.peerUrlTemplate: must contain \{member\}/,
    ],
  ];
  for (const [what, input, fieldMessage] of badInputs) {
    test(`fails at once, non-retryably, on ${what}`, () =>
      expectInvalidInput('backupUserCluster', input, fieldMessage));
  }

  test('good input passes validation (and reaches the cluster: none is configured here)', () =>
    expectPastValidation('backupUserCluster', goodBackup, 'MissingKubeconfig'));
});

describe('restoreUserCluster started with the Temporal CLI', () => {
  const badInputs: Array<[string, unknown, RegExp]> = [
    [
      'a bad version tag',
      { ...goodRestore, gkeOnPremVersion: '1.5.0 gke' },
      /gkeOnPremVersion: must be a container image tag/,
    ],
    ['no backup', { ...goodRestore, backup: undefined }, /backup: /],
    [
      'both backup id and path',
      { ...goodRestore, backup: { backupId: 'x', path: '/b/snapshot.db' } },
      /backup: give exactly one of backupId or path/,
    ],
    [
      'a backup path with ..',
      { ...goodRestore, backup: { path: '/backups/../etc/shadow' } },
      /backup\.path: must not contain "\.\." segments/,
    ],
    ['two members', { ...goodRestore, members: 2 }, /members: /],
  ];
  for (const [what, input, fieldMessage] of badInputs) {
    test(`fails at once, non-retryably, on ${what}`, () =>
      expectInvalidInput('restoreUserCluster', input, fieldMessage));
  }

  test('good input passes validation (and looks for the backup: there is none here)', async () => {
    for (const members of [1, 3]) {
      await expectPastValidation(
        'restoreUserCluster',
        { ...goodRestore, members },
        'BackupNotFound',
      );
    }
  });
});
