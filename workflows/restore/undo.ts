/**
 * Compensations of a restore's reversible steps (the `saga` pattern), keyed by the step
 * that registered them. A step registers how to put back what it is about to change
 * before it changes it; if the restore fails or is cancelled before the point of no
 * return, every registered compensation runs, newest first.
 */
import { CancellationScope } from '@temporalio/workflow';
import { describeError, type Progress } from '../progress.js';

/** The reversible steps: H2 (PDB), H3 (two workloads), stopping etcd, H5a (one pod per member). */
export type UndoStepId =
  | 'H2'
  | 'H3-apiserver'
  | 'H3-maintenance'
  | 'stop-etcd'
  | `H5a-member-${number}`;

interface Compensation {
  what: string;
  run: () => Promise<unknown>;
}

export class Undo {
  private readonly compensations = new Map<UndoStepId, Compensation>();

  /** How to put back what step `id` changes; registered before the change is made. */
  register(id: UndoStepId, what: string, run: () => Promise<unknown>): void {
    this.compensations.set(id, { what, run });
  }

  /**
   * Runs every compensation, newest first, not cancellable, each one even if one before it
   * failed: leave as little changed as possible. Returns what could not be put back.
   */
  async unwind(progress: Progress): Promise<string[]> {
    const notUndone: string[] = [];
    await CancellationScope.nonCancellable(async () => {
      for (const { what, run } of [...this.compensations.values()].reverse()) {
        progress.note(`undo: ${what}`);
        await run().catch((error: unknown) => {
          notUndone.push(`${what} (${describeError(error)})`);
        });
      }
    });
    return notUndone;
  }
}
