/**
 * Both workflow types, started with the Temporal CLI binary exactly as an operator would
 * (`temporal workflow start --type … --input '{json}'`): bad input fails the workflow at
 * once, non-retryably, naming the bad field; good input gets past validation.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../workflows/input.js';
import {
  startTemporalTestContext,
  type TemporalTestContext,
  temporalCli,
} from './harness/temporal.js';

let ctx: TemporalTestContext;
before(async () => {
  ctx = await startTemporalTestContext('workflow-input-cli');
});
after(async () => {
  await ctx?.teardown();
});

/** Starts `type` with the CLI and returns the ApplicationFailure it ended with. */
async function startWithCliAndGetFailure(
  type: string,
  input: unknown,
): Promise<ApplicationFailure> {
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
  assert.ok(
    error.cause instanceof ApplicationFailure,
    `expected ApplicationFailure, got ${String(error.cause)}`,
  );
  // "At once": the first workflow task ended the run; nothing was retried.
  const { events } = await handle.fetchHistory();
  const workflowTasks = (events ?? []).filter((e) => e.workflowTaskStartedEventAttributes).length;
  assert.equal(workflowTasks, 1, 'the workflow must fail in its first workflow task');
  return error.cause;
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
    test(`fails at once, non-retryably, on ${what}`, async () => {
      const failure = await startWithCliAndGetFailure('backupUserCluster', input);
      assert.equal(failure.type, FailureType.InvalidInput);
      assert.equal(failure.nonRetryable, true);
      assert.match(failure.message, fieldMessage);
    });
  }

  test('good input passes validation', async () => {
    const failure = await startWithCliAndGetFailure('backupUserCluster', goodBackup);
    assert.equal(failure.type, FailureType.NotImplemented, failure.message);
    assert.match(failure.message, /user-cluster-1: input is valid/);
  });
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
    test(`fails at once, non-retryably, on ${what}`, async () => {
      const failure = await startWithCliAndGetFailure('restoreUserCluster', input);
      assert.equal(failure.type, FailureType.InvalidInput);
      assert.equal(failure.nonRetryable, true);
      assert.match(failure.message, fieldMessage);
    });
  }

  test('good input passes validation (one and three members)', async () => {
    for (const members of [1, 3]) {
      const failure = await startWithCliAndGetFailure('restoreUserCluster', {
        ...goodRestore,
        members,
      });
      assert.equal(failure.type, FailureType.NotImplemented, failure.message);
      assert.match(failure.message, /user-cluster-1: input is valid/);
    }
  });
});
