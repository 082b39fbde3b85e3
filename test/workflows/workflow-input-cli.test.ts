/**
 * Every workflow type, started with the Temporal CLI binary exactly as an operator would
 * (`temporal workflow start --type … --input '{json}'`): bad input fails the workflow at
 * once, non-retryably, naming the bad field; good input gets past validation.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
const dir = mkdtempSync(join(tmpdir(), 'workflow-input-cli-'));
/** A kubeconfig the worker cannot load, holding what must never reach workflow history. */
const SECRET = 'token: s3cr3t-bearer-token-do-not-leak';
before(async () => {
  const kubeconfig = join(dir, 'broken.kubeconfig');
  writeFileSync(
    kubeconfig,
    `apiVersion: v1\nusers:\n- name: u\n  user:\n    ${SECRET}\n  : [unbalanced\n`,
  );
  ctx = await startTemporalTestContext('workflow-input-cli', {
    config: {
      adminClusters: { admin: { kubeconfig } },
      repositories: { local: { path: join(dir, 'backups') } },
    },
  });
});
after(async () => {
  await ctx?.teardown();
  rmSync(dir, { recursive: true, force: true });
});

/** Starts `type` with the CLI binary and returns how the run failed. */
async function startWithCliAndGetFailure(
  type: string,
  input: unknown,
): Promise<{ error: WorkflowFailedError; workflowTasks: number; workflowId: string }> {
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
  return { error, workflowTasks, workflowId };
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
 * A good input gets past validation to the first activity, which resolves the names and
 * fails: this test's worker's one admin cluster has a kubeconfig that cannot be loaded. The
 * failure names the admin cluster and never quotes the file (it would land in history).
 */
async function expectPastValidation(type: string, input: unknown) {
  const { error, workflowId } = await startWithCliAndGetFailure(type, input);
  assert.ok(error.cause instanceof ActivityFailure, `expected ActivityFailure, got ${error.cause}`);
  const failure = error.cause.cause;
  assert.ok(failure instanceof ApplicationFailure, `expected ApplicationFailure, got ${failure}`);
  assert.equal(failure.type, FailureType.KubeconfigUnloadable, failure.message);
  assert.match(failure.message, /cannot load the kubeconfig of admin cluster admin/);
  const history = JSON.stringify(
    await ctx.env.client.workflow.getHandle(workflowId).fetchHistory(),
  );
  assert.equal(history.includes('s3cr3t'), false, 'the kubeconfig is not quoted into history');
  assert.equal(history.includes('broken.kubeconfig'), false, 'nor is its path');
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
    // The trust boundary: no kubeconfig, directory, image or endpoint in an input.
    [
      'a kubeconfig path',
      { ...goodBackup, adminKubeconfig: '/root/.kube/config' },
      /adminKubeconfig/,
    ],
    ['a backup directory', { ...goodBackup, backupDir: '/' }, /backupDir/],
    [
      'a profile (images, endpoints)',
      { ...goodBackup, profile: { utilityImageRepository: 'evil.example/util' } },
      /profile/,
    ],
    [
      'an admin cluster that is not a name',
      { ...goodBackup, adminCluster: '/etc' },
      /adminCluster: /,
    ],
    ['an unknown field', { ...goodBackup, extra: 1 }, /extra/],
  ];
  for (const [what, input, fieldMessage] of badInputs) {
    test(`fails at once, non-retryably, on ${what}`, () =>
      expectInvalidInput('backupUserCluster', input, fieldMessage));
  }

  test('good input passes validation, and the kubeconfig that fails to load is named, never quoted', () =>
    expectPastValidation('backupUserCluster', goodBackup));
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
      'both a backup id and an import file',
      { ...goodRestore, backup: { backupId: 'x', importFile: 'snapshot.db' } },
      /backup: give exactly one of backupId or importFile/,
    ],
    [
      'a path on the worker instead of a file name of the inbox',
      { ...goodRestore, backup: { path: '/backups/other-cluster/snapshot.db' } },
      /backup: .*path/,
    ],
    [
      'an import file name that leaves the inbox',
      { ...goodRestore, backup: { importFile: '../../etc/shadow' } },
      /backup\.importFile: must be a file name/,
    ],
    [
      'an approval timeout that is no duration',
      { ...goodRestore, approvalTimeout: 'soon' },
      /approvalTimeout: /,
    ],
    ['two members', { ...goodRestore, members: 2 }, /members: /],
  ];
  for (const [what, input, fieldMessage] of badInputs) {
    test(`fails at once, non-retryably, on ${what}`, () =>
      expectInvalidInput('restoreUserCluster', input, fieldMessage));
  }

  test('good input passes validation, and the kubeconfig that fails to load is named, never quoted', async () => {
    for (const members of [1, 3]) {
      await expectPastValidation('restoreUserCluster', { ...goodRestore, members });
    }
  });
});

describe('backupAdminCluster and backupAll started with the Temporal CLI', () => {
  const badInputs: Array<[string, string, unknown, RegExp]> = [
    ['backupAdminCluster', 'an SSH host in the input', { sshHost: '10.0.0.1' }, /sshHost/],
    [
      'backupAdminCluster',
      'a key path in the input',
      { privateKeyPath: '/root/.ssh/id_ed25519' },
      /privateKeyPath/,
    ],
    [
      'backupAdminCluster',
      'an admin cluster that is not a name',
      { adminCluster: 'a b' },
      /adminCluster: /,
    ],
    [
      'backupAll',
      'a user cluster named twice',
      { userClusterNames: ['a', 'a'] },
      /must not name a cluster twice/,
    ],
    ['backupAll', 'no user cluster in the list', { userClusterNames: [] }, /userClusterNames: /],
    ['backupAll', 'a concurrency of 0', { maxConcurrent: 0 }, /maxConcurrent: /],
    ['backupAll', 'a jump host in the input', { jumpHost: '10.0.0.2' }, /jumpHost/],
  ];
  for (const [type, what, input, fieldMessage] of badInputs) {
    test(`${type} fails at once, non-retryably, on ${what}`, () =>
      expectInvalidInput(type, input, fieldMessage));
  }

  test('good input passes validation; the unloadable kubeconfig is named, never quoted', async () => {
    await expectPastValidation('backupAdminCluster', {});
    await expectPastValidation('backupAll', { maxConcurrent: 3 });
  });
});
