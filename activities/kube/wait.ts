/** Polling until a condition holds, with a deadline the caller sets and a tick to heartbeat on. */

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
    await new Promise((resolve) => setTimeout(resolve, options.intervalMs ?? 1000));
  }
}
