/**
 * Polling until a condition holds, with a deadline the caller sets and a tick to heartbeat
 * on. An aborted signal (activity cancellation) rejects with its reason at once, also
 * between polls.
 */

export interface WaitOptions {
  timeoutMs: number;
  /** Between polls; 1 s by default. */
  intervalMs?: number;
  /** Called each poll with what is still awaited (activities heartbeat it). */
  onTick?: (waitingFor: string) => void;
  signal?: AbortSignal;
}

/** The condition did not hold in time. Retrying the same wait rarely helps: the caller decides. */
export class WaitTimeoutError extends Error {
  override name = 'WaitTimeoutError';
}

/**
 * Polls `check` until it returns `done: true`. `check` says what it is waiting for, so a
 * timeout message tells the operator what never happened.
 */
export async function waitUntil(
  what: string,
  check: () => Promise<{ done: boolean; waitingFor: string }>,
  options: WaitOptions,
): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    options.signal?.throwIfAborted();
    const { done, waitingFor } = await check();
    if (done) return;
    options.onTick?.(waitingFor);
    if (Date.now() >= deadline) {
      throw new WaitTimeoutError(
        `timed out after ${options.timeoutMs} ms waiting for ${what}: ${waitingFor}`,
      );
    }
    await sleep(options.intervalMs ?? 1000, options.signal);
  }
}

/** Resolves after `ms`; rejects at once with the signal's reason when it is aborted. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
