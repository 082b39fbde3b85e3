/**
 * What an activity needs from Temporal: heartbeats the Web UI can show, cancellation, and
 * waits that report what they wait for. These run inside an activity (tests use the SDK's
 * MockActivityEnvironment); the functions they call take plain callbacks and signals.
 */
import { Context } from '@temporalio/activity';
import type { Logger } from '@temporalio/common';
import type { WaitOptions } from './kube/wait.js';

/** Details shown as the activity's last heartbeat; also keeps a long wait alive. */
export interface Progress {
  step: string;
  bytesDone?: number;
  totalBytes?: number;
  waitingFor?: string;
}

/** The last progress each running activity reported, for the keep-alive to repeat. */
const lastProgress = new WeakMap<Context, Progress>();

export function heartbeat(progress: Progress): void {
  const context = Context.current();
  lastProgress.set(context, progress);
  context.heartbeat(progress);
}

/**
 * Runs an activity, repeating its last progress as a heartbeat every 10 s: a long command
 * (snapshot save, restore) is not taken for a dead worker, and a dead worker still is.
 */
export async function keepAlive<T>(work: () => Promise<T>): Promise<T> {
  const context = Context.current();
  const timer = setInterval(() => context.heartbeat(lastProgress.get(context)), 10_000);
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}

/** The running activity's logger (the worker's JSON log, with the ids); stderr outside one. */
export function activityLog(): Pick<Logger, 'error' | 'warn' | 'info'> {
  try {
    return Context.current().log;
  } catch {
    return {
      error: (message) => console.error(message),
      warn: (message) => console.error(message),
      info: (message) => console.error(message),
    };
  }
}

/** Aborts when Temporal cancels the activity (or its heartbeat times out). */
export function cancellationSignal(): AbortSignal {
  return Context.current().cancellationSignal;
}

/** Which attempt of its activity this is (1 for the first). */
export function activityAttempt(): number {
  return Context.current().info.attempt;
}

/** Waits that heartbeat what they wait for and stop when the activity is cancelled. */
export function activityWait(step: string, timeoutMs: number): WaitOptions {
  return {
    timeoutMs,
    intervalMs: 500,
    onTick: (waitingFor) => heartbeat({ step, waitingFor }),
    signal: cancellationSignal(),
  };
}

/** A copy's progress callback that heartbeats the bytes moved. */
export function copyProgress(step: string) {
  return (p: { bytesDone: number; totalBytes: number }) =>
    heartbeat({ step, bytesDone: p.bytesDone, totalBytes: p.totalBytes });
}
