/**
 * backupAll's own logic against mocked activities (a real dev server and worker, real
 * child workflows): every part runs, at most `maxConcurrent` at a time, each failure is
 * reported with its type and message, and none stops the others.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApplicationFailure } from '@temporalio/common';
import type { BackupAllResult, UserClusterSelection } from '../../workflows/contract/index.js';
import { startTemporalTestContext, type TemporalTestContext } from '../harness/temporal.js';

let ctx: TemporalTestContext;
let running = 0;
let maxRunning = 0;
const clusters = ['uc-1', 'uc-2', 'uc-3', 'uc-4', 'uc-5'];

/** A part's first step: counts how many run at once, then fails as a broken cluster would. */
async function firstStep(name: string): Promise<never> {
  running++;
  maxRunning = Math.max(maxRunning, running);
  await sleep(300);
  running--;
  throw ApplicationFailure.nonRetryable(`cluster ${name} is broken`, 'ClusterState');
}

before(async () => {
  ctx = await startTemporalTestContext('backup-all-logic', {
    activities: {
      async listUserClusters(input: {
        userClusterNames?: string[];
      }): Promise<UserClusterSelection> {
        return {
          adminCluster: 'admin',
          repository: 'local',
          userClusterNames: input.userClusterNames ?? clusters,
          from: 'the mock',
        };
      },
      resolveAdminTarget: () => firstStep('admin'),
      resolveTarget: (input: { userClusterName: string }) => firstStep(input.userClusterName),
    },
  });
});
after(async () => {
  await ctx?.teardown();
});

test('every part runs, at most maxConcurrent at once, each failure reported without stopping the others', async () => {
  const handle = await ctx.env.client.workflow.start('backupAll', {
    taskQueue: ctx.taskQueue,
    workflowId: `backup-all-${randomUUID()}`,
    args: [{ maxConcurrent: 2 }],
  });
  const result = (await handle.result()) as BackupAllResult;
  assert.equal(maxRunning, 2);
  assert.equal(result.outcome, 'failed');
  assert.deepEqual(
    result.parts.map((p) => [p.kind, p.name, p.outcome, p.failureType]),
    [
      ['admin', 'admin', 'failed', 'ClusterState'],
      ...clusters.map((c) => ['user-cluster', c, 'failed', 'ClusterState']),
    ],
  );
  assert.deepEqual(result.failed, ['admin:admin', ...clusters]);
  for (const p of result.parts) {
    assert.match(p.error ?? '', new RegExp(`cluster ${p.name} is broken \\[ClusterState\\]`));
    assert.equal(p.workflowId.startsWith(`${handle.workflowId}/`), true);
  }
});

test('named user clusters only, one at a time', async () => {
  maxRunning = 0;
  const result = (await ctx.env.client.workflow.execute('backupAll', {
    taskQueue: ctx.taskQueue,
    workflowId: `backup-all-${randomUUID()}`,
    args: [{ userClusterNames: ['uc-9'], maxConcurrent: 1 }],
  })) as BackupAllResult;
  assert.equal(maxRunning, 1);
  assert.deepEqual(
    result.parts.map((p) => p.name),
    ['admin', 'uc-9'],
  );
});
