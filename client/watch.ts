/**
 * Follows a running workflow until it closes: its `progress` query (step, members, facts,
 * the log of steps) and the copies its activities report in their heartbeats (bytes done
 * of total). The CLI's `watch` renders these as plain lines, as JSON lines, or on a
 * terminal as a step list with a progress bar per copy (client/cli/watch-view.ts).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import { type ProgressView, progressQuery } from '../workflows/progress.js';

/** An activity moving bytes (a copy into or out of a pod), from its last heartbeat. */
export interface CopyProgress {
  activityId: string;
  step: string;
  bytesDone: number;
  totalBytes: number;
}

export interface WatchSnapshot {
  /** Absent while the workflow cannot answer the query yet. */
  progress?: ProgressView;
  copies: CopyProgress[];
  /** RUNNING, COMPLETED, FAILED, ... */
  status: string;
}

/** Yields the workflow's state every `intervalMs`; the last one is taken once it closed. */
export async function* watchWorkflow(
  handle: WorkflowHandle,
  intervalMs = 1000,
): AsyncGenerator<WatchSnapshot> {
  for (;;) {
    const progress = await handle.query(progressQuery).catch(() => undefined);
    const d = await handle.describe();
    const copies: CopyProgress[] = [];
    for (const p of d.raw.pendingActivities ?? []) {
      const first = p.heartbeatDetails?.payloads?.[0];
      const details: unknown = first ? defaultPayloadConverter.fromPayload(first as Payload) : {};
      const { step, bytesDone, totalBytes } = (details ?? {}) as Partial<CopyProgress>;
      if (typeof bytesDone === 'number' && typeof totalBytes === 'number' && totalBytes > 0)
        copies.push({
          activityId: p.activityId ?? '',
          step: step ?? p.activityType?.name ?? 'copy',
          bytesDone,
          totalBytes,
        });
    }
    yield { ...(progress ? { progress } : {}), copies, status: d.status.name };
    if (d.status.name !== 'RUNNING') return;
    await sleep(intervalMs);
  }
}

/**
 * The lines that say what changed from `last` to `now`: new step, member states, the parts
 * of a backupAll run, facts.
 */
export function changedLines(last: ProgressView | undefined, now: ProgressView): string[] {
  const lines: string[] = [];
  if (now.step !== last?.step) lines.push(`step: ${now.step}`);
  for (const [m, s] of Object.entries(now.members)) {
    if (last?.members[m] !== s) lines.push(`  member ${m}: ${s}`);
  }
  for (const [p, s] of Object.entries(now.parts ?? {})) {
    if (last?.parts?.[p] !== s) lines.push(`  part ${p}: ${s}`);
  }
  for (const [k, v] of Object.entries(now.facts)) {
    if (last?.facts[k] !== v) lines.push(`  ${k}: ${v}`);
  }
  return lines;
}

/** Calls `print` with each new step, member state and fact; resolves when the run closes. */
export async function followProgress(
  handle: WorkflowHandle,
  print: (line: string) => void,
  intervalMs = 1000,
): Promise<void> {
  let last: ProgressView | undefined;
  for await (const { progress } of watchWorkflow(handle, intervalMs)) {
    if (!progress) continue;
    for (const line of changedLines(last, progress)) print(line);
    last = progress;
  }
}
