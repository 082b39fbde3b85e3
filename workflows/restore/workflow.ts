/**
 * SPEC.md R1–R9 (one member) and H1–H9 (three members): restore a user cluster's etcd
 * from a verified backup, and finish correctly whatever interrupts it. Each runbook step
 * is a function of steps.ts named by its ID; the R steps are the one-member case of the
 * H steps:
 *
 *   SPEC step                  steps.ts                   what the product adds or does instead
 *   (names)                    resolveNames               the worker resolves admin cluster, repository
 *   (before anything)          checkBackup                sha256 and snapshot status checked
 *   H1, R1, H4                 inspectClusterH1           checks.checkCluster: nothing changed yet
 *   (optional)                 approval.ts                a person approves the plan, within a timeout
 *   H5a H5b H5c (R2 R3 R4)     prepareMemberH5abc         done first, control plane still up: tools,
 *                                                         free space, copy, restore into scratch space
 *   H2                         savePdbH2, recordOriginals the originals also recorded on the cluster
 *   H3                         scaleDownH3                counts read first, not the runbook's 3, 1
 *   (R7, H6: see there)        stopEtcdMembers            kube-etcd stopped before any data changes
 *   ── point of no return ──
 *   H5d H5e H5f (R5 R6)        swapDataH5def              two renames; old data set aside, not rm'd
 *   H5g (R9)                   deleteUtilityPodH5g
 *   H6 (R7 R8)                 startMembersH6             scale back up instead of rollout restart /
 *                                                         pod delete; wait healthy
 *   (before H7)                checks.verifyRestoredEtcd  verify, then unveil: apiserver stays at 0
 *                                                         until the restored etcd is right
 *   H7 H8                      scaleUpH7H8                back to the original counts
 *   H9                         recreatePdbH9
 *   (after H9)                 verifyControlPlaneAfterH9, cleanUpAfterVerification
 *
 * Before the point of no return everything changed is in the Undo ledger (undo.ts) and is
 * put back if the restore fails, is cancelled, or loses its cluster lock. After it, the
 * restore cannot stop halfway: it ignores cancellation, and each step runs under the
 * Operator (operator.ts) — retried, repaired, or waiting for a person with the lock held
 * and outcome `needs-operator` — so it never fails for what a person can fix.
 *
 * DETERMINISM. Recorded histories of this workflow are replayed by
 * test/workflows/replay.test.ts (test/histories/, recorded as test/harness/histories.ts
 * says). A change that alters the
 * commands it issues must be guarded with `patched('<change-id>')`, or restores running
 * while the worker is upgraded fail with a non-determinism error. Re-record only while
 * nothing is deployed, and say so in the commit; keep histories running workflows may have.
 */
import type { Duration } from '@temporalio/common';
import { ApplicationFailure, CancellationScope, isCancellation, uuid4 } from '@temporalio/workflow';
import { acquireClusterLock, type ClusterLock } from '../cluster-lock.js';
import {
  FailureType,
  type Outcome,
  parseWorkflowInput,
  type RestoreUserClusterInput,
  type RestoreUserClusterResult,
  restoreUserClusterInputSchema,
} from '../contract/index.js';
import { describeError, Progress } from '../progress.js';
import { ApprovalGate } from './approval.js';
import { range, settleAll, stopIsPointOfNoReturn, verifyRestoredEtcd } from './checks.js';
import { HandedOver, Operator } from './operator.js';
import * as step from './steps.js';
import { Undo } from './undo.js';

/** The runbook's preconditions and limits of a restore, shown with every restore. */
export const RESTORE_LIMITS =
  'Diagnose and fix the cluster before restoring: restoring a broken cluster can recreate or worsen problems. ' +
  'A cluster cannot be restored after a failed upgrade, and a deleted cluster cannot be restored this way. ' +
  'Workloads scheduled after the backup are not restored.';

export async function restoreUserCluster(
  input: RestoreUserClusterInput,
): Promise<RestoreUserClusterResult> {
  const params = parseWorkflowInput('restoreUserCluster', restoreUserClusterInputSchema, input);
  const { userClusterName } = params;
  const progress = new Progress(
    'restore',
    userClusterName,
    `Restore of user cluster ${userClusterName}`,
    RESTORE_LIMITS,
  );
  const token = uuid4().replace(/-/g, '').slice(0, 12);
  const gate = new ApprovalGate(params.requireApproval, progress);
  const undo = new Undo();
  const operator = new Operator(progress, undo);
  const notes: string[] = [];
  let backupId = '';
  let finished = false;
  const finish = (outcome: Outcome, line: string) => {
    finished = true;
    progress.finish(outcome, line);
  };
  let lock: ClusterLock | undefined;
  try {
    const target = await step.resolveNames(params, progress);
    progress.step('lock: one backup or restore of this cluster at a time');
    lock = await acquireClusterLock(userClusterName, 'restore');
    const ctx = step.restoreContext(params, target, progress, token);

    // ── Checks, then the reversible changes: each one recorded with how to put it back ──
    let inspection: step.Inspection;
    let snapshot: Awaited<ReturnType<typeof step.checkBackup>>;
    let pdb: Awaited<ReturnType<typeof step.savePdbH2>>;
    let bump: number | undefined;
    try {
      snapshot = await step.checkBackup(ctx, undo);
      backupId = snapshot.backupId;
      inspection = await step.inspectClusterH1(ctx);
      const origin = step.checkOriginH1(ctx, snapshot, inspection);
      gate.open(step.planRestore(ctx, snapshot, inspection, origin));
      if (await gate.passed(params.approvalTimeout as Duration))
        inspection = await step.inspectAgainH1(
          ctx,
          inspection,
          'while the restore waited for approval; nothing was changed',
        );
      checkLock(lock);
      progress.step(
        'H5a H5b H5c prepare each member: utility pod, tools, room, snapshot copied in and restored into scratch space',
      );
      // Every member's preparation settles before the first failure is acted on.
      await settleAll(
        range(inspection.members).map((n) =>
          step.prepareMemberH5abc(ctx, n, inspection, snapshot, undo),
        ),
      );
      bump = step.restoredBump(ctx, inspection.members);
      checkLock(lock);
      // Copies take a while: how etcd is stopped is decided on the cluster as it is now.
      inspection = await step.inspectAgainH1(
        ctx,
        inspection,
        'while the members were prepared; everything is put back',
      );
      pdb = await step.savePdbH2(ctx, inspection, undo);
      await step.scaleDownH3(ctx, inspection, undo);
      if (!stopIsPointOfNoReturn(inspection.inventory, inspection.members))
        await step.stopEtcdMembers(ctx, inspection, undo, true);
      checkLock(lock);
      // A cancellation that arrived with the last step still puts everything back.
      if (CancellationScope.current().consideredCancelled)
        await CancellationScope.current().cancelRequested;
    } catch (error) {
      const cancelled = isCancellation(error);
      const what = cancelled ? 'cancelled' : 'failed';
      progress.step(`${what} before the point of no return: putting everything back`);
      const notUndone = await undo.unwind(progress);
      if (notUndone.length > 0) {
        finish('failed', `${what}, and could not put back: ${notUndone.join('; ')}`);
        throw ApplicationFailure.nonRetryable(
          `restore ${cancelled ? 'cancelled' : `failed (${describeError(error)})`} before the point of no return, ` +
            `and these changes could not be put back; a person must: ${notUndone.join('; ')}`,
          FailureType.UndoFailed,
        );
      }
      finish(what, `${what}; the cluster is as it was`);
      throw error;
    }

    // ── Point of no return: from here the restore finishes whatever happens ──
    const root = CancellationScope.current();
    // From here the cluster stays locked until the restore has finished, even if freed.
    lock.holdThroughLoss((line) => notes.push(`after the point of no return, ${line}`));
    const result = await CancellationScope.nonCancellable(async () => {
      const members = range(inspection.members);
      undo.settle('import');
      if (stopIsPointOfNoReturn(inspection.inventory, inspection.members)) {
        progress.step(
          'point of no return — stop every etcd member (OrderedReady: it cannot be undone)',
        );
        await operator.untilDone('stop every etcd member', () =>
          step.stopEtcdMembers(ctx, inspection, undo, false),
        );
      }
      progress.step('point of no return — H5d H5e H5f: swap the restored data in on each member');
      await settleAll(
        members.map((n) =>
          operator.untilDone(`member ${n}'s swap (H5d–H5f)`, () =>
            step.swapDataH5def(ctx, n, inspection, snapshot, undo),
          ),
        ),
      );
      await settleAll(
        members.map((n) =>
          operator.untilDone(`H5g delete utility pod ${n}`, () =>
            step.deleteUtilityPodH5g(ctx, n, undo),
          ),
        ),
      );
      const verified = await operator.untilDone(
        'H6 start etcd and verify it (before H7)',
        async () =>
          verifyRestoredEtcd({
            members: inspection.members,
            record: snapshot.record,
            ...(await step.startMembersH6(ctx, inspection, snapshot, undo, bump)),
          }),
      );
      await operator.untilDone('H7 H8 scale the control plane back', () =>
        step.scaleUpH7H8(ctx, inspection, undo),
      );
      if (pdb)
        await operator.untilDone('H9 re-create the PDB', () => step.recreatePdbH9(ctx, pdb, undo));
      verified.push(
        ...(await operator.untilDone('read back replicas and PDB', () =>
          step.verifyControlPlaneAfterH9(ctx, inspection, pdb !== undefined),
        )),
      );
      notes.push(
        ...(await operator.untilDone('remove the old data', () =>
          step.cleanUpAfterVerification(ctx, inspection, undo),
        )),
      );
      return verified;
    });

    if (root.consideredCancelled)
      notes.push(
        'cancellation was requested after the point of no return: a restore cannot stop halfway, so it was finished',
      );
    result.unshift(...(ctx.origin?.checked ?? []));
    notes.unshift(...step.originNotes(ctx, snapshot, bump));
    for (const line of [...result, ...notes]) progress.note(line);
    finish('succeeded', `restored from ${snapshot.backupId} and verified`);
    return {
      outcome: 'restored',
      userClusterName,
      backupId: snapshot.backupId,
      members: range(inspection.members),
      verified: result,
      notPutBack: [],
      notes,
    };
  } catch (error) {
    if (error instanceof HandedOver) {
      finish(
        'handed-over',
        `${error.message}; not put back: ${error.notPutBack.join('; ') || 'nothing'}`,
      );
      return {
        outcome: 'handed-over',
        userClusterName,
        backupId,
        members: [],
        verified: [],
        notPutBack: error.notPutBack,
        notes: [...notes, error.message],
      };
    }
    // The Web UI must not list a restore that ended as running.
    if (!finished)
      finish(
        isCancellation(error) ? 'cancelled' : 'failed',
        `not restored: ${describeError(error)}`,
      );
    throw error;
  } finally {
    if (lock) await CancellationScope.nonCancellable(() => (lock as ClusterLock).release());
  }
}

/** Before the point of no return, a lost lock stops the restore (everything is put back). */
function checkLock(lock: ClusterLock): void {
  const lost = lock.lost();
  if (lost)
    throw ApplicationFailure.nonRetryable(
      `the cluster lock was lost: ${lost}`,
      FailureType.LockLost,
    );
}
