/** What an activity needs from Temporal: heartbeats the Web UI can show, and cancellation. */
import { Context } from '@temporalio/activity';

/** Details shown as the activity's last heartbeat; also keeps a long wait alive. */
export interface Progress {
  step: string;
  bytesDone?: number;
  totalBytes?: number;
  waitingFor?: string;
}

/** The last progress each running activity reported, for the keep-alive to repeat. */
const lastProgress = new WeakMap<Context, Progress>();

/** Heartbeats when running as an activity; a no-op when called directly (unit tests). */
export function heartbeat(progress: Progress): void {
  const context = currentContext();
  if (!context) return;
  lastProgress.set(context, progress);
  context.heartbeat(progress);
}

/**
 * Runs an activity, repeating its last progress as a heartbeat every 10 s: a long command
 * (snapshot save, restore) is not taken for a dead worker, and a dead worker still is.
 */
export async function keepAlive<T>(work: () => Promise<T>): Promise<T> {
  const context = currentContext();
  if (!context) return work();
  const timer = setInterval(() => context.heartbeat(lastProgress.get(context)), 10_000);
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
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
