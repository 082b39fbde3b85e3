/** What an activity needs from Temporal: heartbeats the Web UI can show, and cancellation. */
import { Context } from '@temporalio/activity';

/** Details shown as the activity's last heartbeat; also keeps a long wait alive. */
export interface Progress {
  step: string;
  bytesDone?: number;
  totalBytes?: number;
  waitingFor?: string;
}

/** Heartbeats when running as an activity; a no-op when called directly (unit tests). */
export function heartbeat(progress: Progress): void {
  const context = currentContext();
  context?.heartbeat(progress);
}

/** Aborts when Temporal cancels the activity (or its heartbeat times out). */
export function cancellationSignal(): AbortSignal | undefined {
  return currentContext()?.cancellationSignal;
}

function currentContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}
