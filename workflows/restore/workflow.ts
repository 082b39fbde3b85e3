/**
 * SPEC.md R1–R9 (one member) and H1–H9 (three members): restore a user cluster's etcd
 * from a verified backup, and finish correctly whatever interrupts it. Each runbook step
 * is a function of steps.ts named by its ID; the R steps are the one-member case of the
 * H steps:
 *
 *   SPEC step                   steps.ts                 what the product adds or does instead
 *   (before anything)           verifyBackup             sha256 and snapshot status checked
 *   H1, R1, H4                  inspectClusterH1         checks.checkCluster: nothing changed yet
 *   (optional)                  approval.ts              a person approves the plan
 *   H2                          savePdbH2                the manifest is kept in history
 *   H3                          scaleDownH3              counts read first, not the runbook's 3, 1
 *   (R7, H6: see there)         stopEtcdMembers          kube-etcd scaled to 0 before any data
 *   H5a H5b (R2 R3)             prepareMemberH5ab        the copy is checked in the pod
 *   ── point of no return ──
 *   H5c H5d H5e H5f (R4 R5 R6)  replaceDataH5cf          scratch restore + two renames; old
 *                                                        data set aside, not rm'd, until verified
 *   H5g (R9)                    deleteUtilityPodH5g
 *   H6 (R7 R8)                  startMembersH6           scale back up instead of rollout
 *                                                        restart / pod delete; wait healthy
 *   H7 H8                       scaleUpH7H8              back to the counts read in H1
 *   H9                          recreatePdbH9
 *   (after H9)                  readBackControlPlane     checks.verifyRestore, then
 *                               discardOldData           the old data goes
 *
 * Until the point of no return (the first data replacement) everything changed has its
 * compensation (undo.ts) and is put back if the restore fails or is cancelled. After it,
 * the restore cannot stop halfway: it ignores cancellation, retries its steps until they
 * succeed, and says so. Cancellation, precisely:
 *   - the cluster lock is not cancelled with the restore (see cluster-lock.ts);
 *   - steps before the point of no return wait for their activity to acknowledge the
 *     cancellation, and all members' preparations settle, before anything is put back;
 *   - a cancellation at the approval gate ends the restore CANCELLED with nothing to undo.
 *
 * DETERMINISM. Recorded histories of this workflow are replayed by
 * test/workflows/replay.test.ts (files in test/histories/, recorded by `RECORD_HISTORIES=<date>-<change>
 * node --import tsx --test test/e2e/restore-control.test.ts`). A change that alters the
 * commands it issues (activities, their order, timers, child workflows, signals, search
 * attributes) must be guarded with `patched('<change-id>')`, or restores running while the
 * worker is upgraded fail with a non-determinism error. Re-record only while nothing is
 * deployed, and say so in the commit.
 */
import { ApplicationFailure, CancellationScope, isCancellation, uuid4 } from '@temporalio/workflow';
import { acquireClusterLock } from '../cluster-lock.js';
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
import { range, verifyRestore } from './checks.js';
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
  const ctx = step.restoreContext(params, progress, uuid4().replace(/-/g, '').slice(0, 12));
  const gate = new ApprovalGate(params.requireApproval, progress);
  let outcomeShown = false;
  const finish = (outcome: Outcome, line: string) => {
    outcomeShown = true;
    progress.finish(outcome, line);
  };

  progress.step('lock: one backup or restore of this cluster at a time');
  const release = await acquireClusterLock(userClusterName, 'restore');
  try {
    // ── Checks: nothing is changed until they all pass ──
    const snapshot = await step.verifyBackup(ctx);
    const inspection = await step.inspectClusterH1(ctx);
    const { members } = inspection;
    gate.open(step.planRestore(ctx, snapshot, inspection));

    // ── Reversible changes: each one registers how to put it back ──
    const undo = new Undo();
    let pdb: Awaited<ReturnType<typeof step.savePdbH2>>;
    try {
      await gate.passed();
      pdb = await step.savePdbH2(ctx, undo);
      await step.scaleDownH3(ctx, inspection, undo);
      await step.stopEtcdMembers(ctx, inspection, undo);
      progress.step('H5a H5b prepare each member: utility pod, snapshot copied in and checked');
      // Every member's preparation settles before the first failure is acted on.
      await settleAll(
        range(members).map((n) => step.prepareMemberH5ab(ctx, n, inspection, snapshot, undo)),
      );
    } catch (error) {
      const cancelled = isCancellation(error);
      const what = cancelled ? 'cancelled' : 'failed';
      progress.step(`${what} before the point of no return: putting everything back`);
      const notUndone = await undo.unwind(progress);
      if (notUndone.length > 0) {
        finish('failed', `failed, and could not put back: ${notUndone.join('; ')}`);
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
    const verified = await CancellationScope.nonCancellable(async () => {
      progress.step(
        'point of no return — H5c H5d H5e: restore each member with its identity and swap its data',
      );
      await Promise.all(
        range(members).map(async (n) => {
          await step.replaceDataH5cf(ctx, n, members);
          await step.deleteUtilityPodH5g(ctx, n);
        }),
      );
      const restored = await step.startMembersH6(ctx, inspection, snapshot);
      await step.scaleUpH7H8(ctx, inspection);
      if (pdb) {
        progress.step(`H9 re-create PodDisruptionBudget ${params.profile.apiserverPdb}`);
        await step.recreatePdbH9(ctx, pdb);
      }
      const after = await step.readBackControlPlane(ctx);
      const lines = verifyRestore({
        members,
        record: snapshot.record,
        ...restored,
        before: inspection.inventory,
        after,
        pdbSaved: pdb !== undefined,
        profile: params.profile,
      });
      if (!params.deleteOldDataImmediately) await step.discardOldData(ctx, members);
      return lines;
    });

    if (root.consideredCancelled) {
      verified.push(
        'cancellation was requested after the point of no return: a restore cannot stop halfway, so it was finished',
      );
    }
    for (const line of verified) progress.note(line);
    finish('succeeded', `restored from ${snapshot.backupId} and verified`);
    return { userClusterName, backupId: snapshot.backupId, members: range(members), verified };
  } catch (error) {
    // The Web UI must not list a restore that ended as running.
    if (!outcomeShown) {
      finish(
        isCancellation(error) ? 'cancelled' : 'failed',
        `not restored: ${describeError(error)}`,
      );
    }
    throw error;
  } finally {
    await CancellationScope.nonCancellable(release);
  }
}

/** Like Promise.all, but rejects (with the first failure) only once every promise settled. */
async function settleAll<T>(promises: Array<Promise<T>>): Promise<T[]> {
  const settled = await Promise.allSettled(promises);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
}
