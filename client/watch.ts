/** Follows a running workflow's `progress` query and reports what changed, until it closes. */
import { setTimeout as sleep } from 'node:timers/promises';
import type { WorkflowHandle } from '@temporalio/client';
import { type ProgressView, progressQuery } from '../workflows/progress.js';

/** Calls `print` with each new step, member state and fact; resolves when the run closes. */
export async function followProgress(
  handle: WorkflowHandle,
  print: (line: string) => void,
  intervalMs = 1000,
): Promise<void> {
  let last: ProgressView | undefined;
  for (;;) {
    const progress = await handle.query(progressQuery).catch(() => undefined);
    if (progress) {
      if (progress.step !== last?.step) print(`step: ${progress.step}`);
      for (const [m, s] of Object.entries(progress.members)) {
        if (last?.members[m] !== s) print(`  member ${m}: ${s}`);
      }
      for (const [k, v] of Object.entries(progress.facts)) {
        if (last?.facts[k] !== v) print(`  ${k}: ${v}`);
      }
      last = progress;
    }
    const { status } = await handle.describe();
    if (status.name !== 'RUNNING') return;
    await sleep(intervalMs);
  }
}
