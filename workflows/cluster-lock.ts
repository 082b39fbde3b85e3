/**
 * One backup or restore per user cluster at a time, however it was started (Temporal CLI,
 * client, Schedule): each operation starts a child workflow with the fixed id
 * `etcd-lock-<cluster>`. Temporal refuses a second running workflow with that id, so the
 * second operation fails at once; the child ends when its parent releases it or closes
 * (parent close policy TERMINATE), so a lock never outlives its holder.
 */

import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  defineSignal,
  ParentClosePolicy,
  setHandler,
  startChild,
  workflowInfo,
} from '@temporalio/workflow';
import { clusterLockId, FailureType } from './contract/index.js';

export const releaseSignal = defineSignal('release');

/** The lock: holds until released (or terminated with its parent). */
export async function clusterLock(holder: {
  workflowId: string;
  operation: string;
}): Promise<string> {
  let released = false;
  setHandler(releaseSignal, () => {
    released = true;
  });
  await condition(() => released);
  return `released by ${holder.operation} ${holder.workflowId}`;
}

/** Takes the cluster's lock; resolves to the release function. */
export async function acquireClusterLock(
  userClusterName: string,
  operation: string,
): Promise<() => Promise<void>> {
  const workflowId = clusterLockId(userClusterName);
  const holder = { workflowId: workflowInfo().workflowId, operation };
  try {
    // Not cancellable: cancelling the operation must not cancel its lock (that would free
    // the cluster while the operation still runs, and leave nothing to release).
    const lock = await CancellationScope.nonCancellable(() =>
      startChild(clusterLock, {
        workflowId,
        args: [holder],
        parentClosePolicy: ParentClosePolicy.TERMINATE,
        staticSummary: `lock of user cluster ${userClusterName}, held by ${operation} ${holder.workflowId}`,
      }),
    );
    return async () => {
      await lock.signal(releaseSignal);
      await lock.result();
    };
  } catch (error) {
    if (error instanceof WorkflowExecutionAlreadyStartedError) {
      throw ApplicationFailure.nonRetryable(
        `another backup or restore of user cluster ${userClusterName} is running (its lock workflow ${workflowId} is open; ` +
          'see which operation holds it in the Web UI); try again when it has finished',
        FailureType.ClusterBusy,
      );
    }
    throw error;
  }
}
