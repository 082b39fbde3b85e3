/**
 * One backup or restore per user cluster at a time, however it was started (Temporal CLI,
 * client, Schedule): each operation starts a child workflow with the fixed id
 * `etcd-lock-<cluster>`. Temporal refuses a second running workflow with that id, so the
 * second operation fails at once; the child ends when its holder releases it or closes
 * (parent close policy TERMINATE), so a lock never outlives its holder.
 *
 * A lock can also be lost: terminated by a person, or released by someone other than its
 * holder (`temporal workflow signal --name release`). The holder notices (`lost`) and
 * decides: a restore before its point of no return puts everything back and fails; after
 * it, it records the loss and finishes.
 */
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import {
  ApplicationFailure,
  CancellationScope,
  type ChildWorkflowHandle,
  condition,
  defineSignal,
  ParentClosePolicy,
  setHandler,
  startChild,
  workflowInfo,
} from '@temporalio/workflow';
import { adminClusterLockId, clusterLockId, FailureType } from './contract/index.js';

/** Release the lock; `holder` is the workflow id of who releases it. */
export const releaseSignal = defineSignal<[{ holder?: string }]>('release');

/** The lock: holds until released (or terminated with its parent); says who released it. */
export async function clusterLock(holder: {
  workflowId: string;
  operation: string;
}): Promise<{ releasedBy: string }> {
  let releasedBy: string | undefined;
  setHandler(releaseSignal, (release) => {
    releasedBy ??= release?.holder ?? 'someone who did not say';
  });
  await condition(() => releasedBy !== undefined);
  return { releasedBy: releasedBy ?? holder.workflowId };
}

export interface ClusterLock {
  /** Why the lock is no longer held by this workflow, or undefined while it is. */
  lost(): string | undefined;
  /**
   * From now on a lost lock is taken again at once, and `say` told so (a restore after its
   * point of no return keeps the cluster to itself until it has finished).
   */
  holdThroughLoss(say: (line: string) => void): void;
  /** Releases it; a lock already gone (terminated, released) is no failure. */
  release(): Promise<void>;
}

/** Takes the cluster's lock, or fails at once (ClusterBusy) if another operation holds it. */
export function acquireClusterLock(
  userClusterName: string,
  operation: string,
): Promise<ClusterLock> {
  return acquireLock(
    clusterLockId(userClusterName),
    `user cluster ${userClusterName}`,
    'another backup or restore',
    operation,
  );
}

/** Takes an admin cluster's lock (its own backup, A2–A3): one at a time, ClusterBusy otherwise. */
export function acquireAdminClusterLock(
  adminCluster: string,
  operation: string,
): Promise<ClusterLock> {
  return acquireLock(
    adminClusterLockId(adminCluster),
    `admin cluster ${adminCluster}`,
    'another backup',
    operation,
  );
}

async function acquireLock(
  workflowId: string,
  subject: string,
  others: string,
  operation: string,
): Promise<ClusterLock> {
  const holder = { workflowId: workflowInfo().workflowId, operation };
  // Not cancellable: cancelling the operation must not cancel its lock (that would free
  // the cluster while the operation still runs, and leave nothing to release).
  const start = () =>
    CancellationScope.nonCancellable(() =>
      startChild(clusterLock, {
        workflowId,
        args: [holder],
        parentClosePolicy: ParentClosePolicy.TERMINATE,
        staticSummary: `lock of ${subject}, held by ${operation} ${holder.workflowId}`,
      }),
    );
  let lock: ChildWorkflowHandle<typeof clusterLock>;
  try {
    lock = await start();
  } catch (error) {
    if (error instanceof WorkflowExecutionAlreadyStartedError) {
      throw ApplicationFailure.nonRetryable(
        `${others} of ${subject} is running (its lock workflow ${workflowId} is open; ` +
          'see which operation holds it in the Web UI); try again when it has finished',
        FailureType.ClusterBusy,
      );
    }
    throw error;
  }
  let releasing = false;
  let held = true;
  let lostBecause: string | undefined;
  let retaking: ((line: string) => void) | undefined;
  const watch = (held: ChildWorkflowHandle<typeof clusterLock>): Promise<void> =>
    held.result().then(
      ({ releasedBy }) => {
        if (!releasing || releasedBy !== holder.workflowId)
          return lose(`the lock ${workflowId} was released by ${releasedBy}`);
      },
      (error: unknown) =>
        lose(
          `the lock ${workflowId} ended: ${error instanceof Error ? error.message : String(error)}`,
        ),
    );
  const lose = async (why: string): Promise<void> => {
    held = false;
    lostBecause ??= why;
    if (!retaking || releasing) return;
    try {
      lock = await start();
      held = true;
      retaking(`${why}; taken again`);
      await watch(lock);
    } catch (error) {
      // Never a failure of the operation: it goes on without the lock, and says so.
      retaking(
        error instanceof WorkflowExecutionAlreadyStartedError
          ? `${why}; another operation has taken it since, and may act on this cluster`
          : `${why}; it could not be taken again (${error instanceof Error ? error.message : String(error)})`,
      );
    }
  };
  let closed = watch(lock);
  return {
    lost: () => lostBecause,
    holdThroughLoss(say) {
      retaking = say;
      // Lost already: take it again now.
      if (lostBecause !== undefined) closed = lose(lostBecause);
    },
    async release() {
      releasing = true;
      // Never signal a lock another operation has taken since under the same id.
      if (held)
        await lock.signal(releaseSignal, { holder: holder.workflowId }).catch(() => undefined);
      // Releasing never turns the operation's outcome into a failure.
      await closed.catch(() => undefined);
    },
  };
}
