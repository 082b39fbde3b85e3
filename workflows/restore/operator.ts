/**
 * After the point of no return a restore does not fail for a reason a person can fix.
 * Each step runs under `untilDone`: the activities already retry transient failures for
 * about half an hour; what still fails (a wait that timed out, 401/403, a missing object, a check that
 * did not pass) is retried a few more times after a pause — the step re-runs from its
 * start and repairs what it can (a lost utility pod, a lost snapshot) — and then the
 * restore waits for an operator, holding the cluster lock, with its outcome
 * `needs-operator` and its current details saying what failed, what is still changed and
 * what to do. The operator answers with the update (or signal) `resolveProblem`:
 * `{"action": "retry", "by": "..."}` runs the step again, `{"action": "hand-over", ...}`
 * ends the restore (outcome `handed-over`) with the list of what was not put back.
 */
import {
  condition,
  defineQuery,
  defineSignal,
  defineUpdate,
  setHandler,
  sleep,
} from '@temporalio/workflow';
import {
  FailureType,
  failureTypeOf,
  type OperatorDecision,
  operatorDecisionSchema,
  problemWith,
} from '../contract/index.js';
import { describeError, type ProblemView, type Progress } from '../progress.js';
import type { Undo } from './undo.js';

export const resolveProblemUpdate = defineUpdate<string, [OperatorDecision]>('resolveProblem');
export const resolveProblemSignal = defineSignal<[OperatorDecision]>('resolveProblem');
export const problemQuery = defineQuery<ProblemView[]>('problems');

/** Pauses before the automatic retries of a step that failed after the point of no return. */
const AUTOMATIC_RETRIES = ['10 seconds', '30 seconds', '90 seconds'] as const;

/**
 * Problems that waiting does not change (a check that did not pass, a volume not as any run
 * of ours left it, a snapshot or an image that is wrong, a full volume, a PDB someone
 * replaced): the operator is asked at once. Anything else (a wait that timed out,
 * credentials refused, a kubeconfig being replaced) is retried automatically first.
 */
const ASK_AT_ONCE: ReadonlySet<string> = new Set([
  FailureType.VerificationFailed,
  FailureType.ClusterState,
  FailureType.CorruptSnapshot,
  FailureType.NoSpace,
  FailureType.MissingTools,
  FailureType.PdbConflict,
]);

/** What a person can do about a step that keeps failing, by failure type. */
const ADVICE: Partial<Record<string, string>> = {
  [FailureType.StartedAgain]:
    'something keeps starting kube-etcd again (a reconciling controller, or a person): pause it until this restore has finished',
  [FailureType.WaitTimeout]:
    'the error says what the wait was waiting for: fix that (a node down, an image that cannot be pulled, a volume that will not attach)',
  [FailureType.KubeApiRejected]:
    "the admin cluster's API server refuses the worker: fix the credentials of the kubeconfig the worker's configuration names, or its RBAC",
  [FailureType.KubeApiUnavailable]:
    "the admin cluster's API server has not answered for a long time: bring it back (or the network to it), then retry",
  [FailureType.KubeconfigUnloadable]:
    "fix the kubeconfig file the worker's configuration names for this admin cluster (the worker's log says why it cannot be loaded)",
  [FailureType.VerificationFailed]:
    'kube-apiserver stays at 0 until the restored etcd passes: look at the members (etcdctl endpoint status, endpoint hashkv) and at what the check names',
  [FailureType.NoSpace]: "make room on the member's volume (the error says how much is needed)",
  [FailureType.MissingTools]: 'use a utility image that has the tools the error names',
};

/** An operator chose to finish by hand: the restore ends, listing what is not put back. */
export class HandedOver extends Error {
  override name = 'HandedOver';
  constructor(
    readonly decision: OperatorDecision,
    readonly notPutBack: string[],
  ) {
    super(`handed over by ${decision.by}${decision.comment ? `: ${decision.comment}` : ''}`);
  }
}

export class Operator {
  /** The problems waiting for a decision now, by the ask that raised them. */
  private readonly waiting = new Map<number, ProblemView>();
  private asks = 0;
  /** Decisions taken, in order; a decision answers every problem waiting when it comes. */
  private readonly decisions: OperatorDecision[] = [];
  private handedOver: OperatorDecision | undefined;

  constructor(
    private readonly progress: Progress,
    private readonly undo: Undo,
  ) {
    setHandler(problemQuery, () => [...this.waiting.values()]);
    setHandler(resolveProblemSignal, (d) => {
      const problem =
        this.waiting.size > 0
          ? problemWith(operatorDecisionSchema, d)
          : 'the restore is not waiting for an operator';
      if (problem) progress.note(`resolveProblem signal ignored: ${problem}`);
      else this.decide(d);
    });
    setHandler(
      resolveProblemUpdate,
      (d: OperatorDecision) => {
        this.decide(d);
        return `${d.action} by ${d.by}`;
      },
      {
        validator: (d: OperatorDecision) => {
          if (this.waiting.size === 0)
            throw new Error('the restore is not waiting for an operator');
          const problem = problemWith(operatorDecisionSchema, d);
          if (problem) throw new Error(problem);
        },
      },
    );
  }

  /**
   * Runs `run` until it succeeds; never fails for what a retry or a person can fix. The
   * operator is told what to do by the failure's type (ADVICE).
   */
  async untilDone<T>(step: string, run: () => Promise<T>): Promise<T> {
    for (let failures = 0; ; failures++) {
      if (this.handedOver) throw new HandedOver(this.handedOver, this.undo.open());
      try {
        return await run();
      } catch (error) {
        const message = describeError(error);
        const type = failureTypeOf(error);
        const pause = ASK_AT_ONCE.has(type ?? '')
          ? undefined
          : AUTOMATIC_RETRIES[failures % (AUTOMATIC_RETRIES.length + 1)];
        if (pause) {
          this.progress.note(`${step} failed (${message}); it is run again in ${pause}`);
          await sleep(pause);
          continue;
        }
        const advice = ADVICE[type ?? ''];
        await this.ask(step, message, advice ? [advice] : []);
      }
    }
  }

  private decide(d: OperatorDecision): void {
    this.decisions.push(d);
    if (d.action === 'hand-over') this.handedOver ??= d;
    this.progress.note(`${d.action} decided by ${d.by}${d.comment ? `: ${d.comment}` : ''}`);
  }

  /** Shows the problem, waits for the next decision; returns on retry, throws HandedOver on hand-over. */
  private async ask(step: string, error: string, advice: string[]): Promise<void> {
    const id = this.asks++;
    const answeredBy = this.decisions.length;
    this.waiting.set(id, {
      step,
      error,
      since: new Date().toISOString(),
      stillChanged: this.undo.open(),
      whatToDo: [
        ...advice,
        'then answer with the update (or signal) resolveProblem: {"action": "retry", "by": "<you>"} to run the step again, ' +
          'or {"action": "hand-over", "by": "<you>"} to end the restore and put back by hand what is still changed',
      ],
    });
    this.progress.problems([...this.waiting.values()]);
    await condition(() => this.decisions.length > answeredBy || this.handedOver !== undefined);
    this.waiting.delete(id);
    this.progress.problems([...this.waiting.values()]);
    if (this.handedOver) throw new HandedOver(this.handedOver, this.undo.open());
  }
}
