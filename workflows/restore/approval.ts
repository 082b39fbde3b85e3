/**
 * The optional approval gate of a restore: before the first destructive step, a person
 * sees the plan (query `plan`: what will be destroyed and changed) and approves it with
 * the signal `approve` or the update `approveRestore`, saying who they are.
 */
import type { Duration } from '@temporalio/common';
import {
  ApplicationFailure,
  condition,
  defineQuery,
  defineSignal,
  defineUpdate,
  setHandler,
} from '@temporalio/workflow';
import { type Approval, approvalSchema, FailureType, problemWith } from '../contract/index.js';
import type { Progress } from '../progress.js';

/** What the restore will change and destroy: shown at the approval gate. */
export interface RestorePlan {
  backupId: string;
  snapshotRevision: number;
  members: number;
  destroys: string[];
  changes: string[];
  /**
   * The etcd the cluster runs (and where that was read), where the snapshot came from (or
   * that an import has no provenance), anything allowed by allowForeignSnapshot or
   * allowNewerEtcd, and the revision bump — or, without one, what to restart.
   */
  etcd: string[];
  /** What the plan rests on that a person should know (originals read from an earlier restore...). */
  notes: string[];
}

export const approveSignal = defineSignal<[Approval]>('approve');
export const approveUpdate = defineUpdate<string, [Approval]>('approveRestore');
export const planQuery = defineQuery<RestorePlan | undefined>('plan');

const NOT_AT_GATE = 'the restore is not at its approval gate yet';

/**
 * Installs the handlers at once (an approval sent early is refused with a reason, not
 * lost silently); `open` shows the plan, `passed` waits for the first valid approval.
 */
export class ApprovalGate {
  private plan: RestorePlan | undefined;
  private approval: Approval | undefined;

  constructor(
    private readonly required: boolean,
    private readonly progress: Progress,
  ) {
    setHandler(planQuery, () => this.plan);
    setHandler(approveSignal, (a) => {
      // An approval counts only once the plan it approves could be seen.
      const problem = this.plan
        ? problemWith(approvalSchema, a)
        : `${NOT_AT_GATE}; send it again there`;
      if (problem) progress.note(`approval signal ignored: ${problem}`);
      else this.approval ??= a;
    });
    setHandler(
      approveUpdate,
      (a: Approval) => {
        this.approval ??= a;
        return `approved by ${this.approval.approvedBy}`;
      },
      {
        validator: (a: Approval) => {
          if (!this.required) throw new Error('this restore does not wait for approval');
          const problem = problemWith(approvalSchema, a);
          if (problem) throw new Error(problem);
          if (!this.plan) throw new Error(`${NOT_AT_GATE}; try again in a moment`);
        },
      },
    );
  }

  /** The plan becomes visible (query `plan`); approvals are accepted from now on. */
  open(plan: RestorePlan): void {
    this.plan = plan;
  }

  /**
   * Waits for a person's approval if this restore requires one, at most `timeout`; then
   * the restore ends (ApprovalTimedOut), nothing changed. Resolves whether it waited.
   */
  async passed(timeout: Duration): Promise<boolean> {
    if (!this.required) return false;
    if (!this.plan) throw new Error('the approval gate was reached without a plan to approve');
    this.progress.step(
      `waiting for approval (at most ${timeout}): signal "approve" or update "approveRestore" with {"approvedBy": "..."}. ` +
        `Will destroy: ${this.plan.destroys.join('; ')}`,
    );
    if (!(await condition(() => this.approval !== undefined, timeout))) {
      throw ApplicationFailure.nonRetryable(
        `nobody approved the restore within ${timeout}; nothing was changed`,
        FailureType.ApprovalTimedOut,
      );
    }
    const { approvedBy, comment } = this.approval as Approval;
    this.progress.note(`approved by ${approvedBy}${comment ? `: ${comment}` : ''}`);
    return true;
  }
}
