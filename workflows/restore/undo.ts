/**
 * What a restore has changed and not yet put back, keyed by the step that changed it, with
 * its compensation (the `saga` pattern). A step records a change before it makes it, and
 * settles it once it is put back. Before the point of no return, a failure or a
 * cancellation runs every compensation still open, newest first; after it, the open
 * changes are what an operator is shown, and what a hand-over lists as not put back.
 */
import { CancellationScope } from '@temporalio/workflow';
import { describeError, type Progress } from '../progress.js';

/**
 * The steps that change something: the backup imported, the record on the cluster, H2
 * (PDB), H3 (two workloads), stopping etcd, H5a (a pod per member), H5c (scratch data per
 * member), H5e (a member's data replaced).
 */
export type ChangeId =
  | 'import'
  | 'record'
  | 'H2'
  | 'H3-apiserver'
  | 'H3-maintenance'
  | 'stop-etcd'
  | `H5a-member-${number}`
  | `H5c-member-${number}`
  | `H5e-member-${number}`;

interface Change {
  /** What is changed and how a person puts it back, for the operator. */
  what: string;
  /** Puts it back (before the point of no return); absent for changes only a person can settle. */
  undo?: () => Promise<unknown>;
  /** Why it is kept, instead of undone, when an undo before it left something changed. */
  keptWhileOthersRemain?: string;
}

export class Undo {
  private readonly changes = new Map<ChangeId, Change>();

  /**
   * Records a change before it is made, with how to put it back. With
   * `keptWhileOthersRemain`, the undo runs only if every undo before it succeeded.
   */
  register(
    id: ChangeId,
    what: string,
    undo?: () => Promise<unknown>,
    keptWhileOthersRemain?: string,
  ): void {
    this.changes.delete(id);
    this.changes.set(id, {
      what,
      ...(undo ? { undo } : {}),
      ...(keptWhileOthersRemain ? { keptWhileOthersRemain } : {}),
    });
  }

  /** The change is put back (or no longer needs to be): it is no longer open. */
  settle(id: ChangeId): void {
    this.changes.delete(id);
  }

  /** What is changed and not put back, oldest first. */
  open(): string[] {
    return [...this.changes.values()].map((c) => c.what);
  }

  /**
   * Runs every open compensation, newest first, not cancellable, each one even if one
   * before it failed: leave as little changed as possible. Returns what could not be put back.
   */
  async unwind(progress: Progress): Promise<string[]> {
    const notUndone: string[] = [];
    await CancellationScope.nonCancellable(async () => {
      for (const [id, { what, undo, keptWhileOthersRemain }] of [
        ...this.changes.entries(),
      ].reverse()) {
        progress.note(`undo: ${what}`);
        if (!undo) {
          notUndone.push(what);
          continue;
        }
        if (keptWhileOthersRemain && notUndone.length > 0) {
          notUndone.push(`${what} (kept: ${keptWhileOthersRemain})`);
          continue;
        }
        await undo().then(
          () => this.changes.delete(id),
          (error: unknown) => notUndone.push(`${what} (${describeError(error)})`),
        );
      }
    });
    return notUndone;
  }
}
