/** A workflow's wall time and its activities' own durations, read from its history. */
import type { WorkflowHandle } from '@temporalio/client';

export interface Timings {
  wallSeconds: number;
  /** Per activity type: the sum of its attempts' start-to-close times. */
  activitySeconds: Map<string, number>;
  activityTotalSeconds: number;
  /** Per activity type: the result of its last completed attempt (JSON payloads). */
  results: Map<string, unknown>;
}

const seconds = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) =>
  t ? Number(t.seconds ?? 0) + (t.nanos ?? 0) / 1e9 : 0;

export async function timingsOf(handle: WorkflowHandle): Promise<Timings> {
  const { events } = await handle.fetchHistory();
  const typeOf = new Map<string, string>();
  const startedAt = new Map<string, number>();
  const activitySeconds = new Map<string, number>();
  const results = new Map<string, unknown>();
  let first = 0;
  let last = 0;
  for (const e of events ?? []) {
    const at = seconds(e.eventTime);
    if (first === 0) first = at;
    last = at;
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled) typeOf.set(String(e.eventId), scheduled.activityType?.name ?? '?');
    const started = e.activityTaskStartedEventAttributes;
    if (started) startedAt.set(String(started.scheduledEventId), at);
    const ended =
      e.activityTaskCompletedEventAttributes ??
      e.activityTaskFailedEventAttributes ??
      e.activityTaskTimedOutEventAttributes;
    if (ended) {
      const id = String(ended.scheduledEventId);
      const type = typeOf.get(id) ?? '?';
      activitySeconds.set(type, (activitySeconds.get(type) ?? 0) + at - (startedAt.get(id) ?? at));
      const data = e.activityTaskCompletedEventAttributes?.result?.payloads?.[0]?.data;
      // void results are `binary/null` payloads without data
      if (data && data.length > 0)
        results.set(type, JSON.parse(Buffer.from(data).toString('utf8')));
    }
  }
  return {
    wallSeconds: last - first,
    activitySeconds,
    activityTotalSeconds: [...activitySeconds.values()].reduce((a, b) => a + b, 0),
    results,
  };
}
