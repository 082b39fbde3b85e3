/**
 * The workflows' handles on the activities (types only: activity code never enters the
 * workflow bundle), with the timeouts and retry policies each kind of step needs.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';

/** Retryable failures (429, 5xx, network, a dropped exec stream) back off up to 30 s. */
const retry = { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds' };

/** API calls and short commands. */
export const quick = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  retry: { ...retry, maximumAttempts: 10 },
});

/**
 * Copies, restores and waits: long, heartbeating, so a dead worker is noticed within the
 * heartbeat timeout and the step resumes on another one.
 */
export const long = proxyActivities<Activities>({
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '30 seconds',
  retry: { ...retry, maximumAttempts: 10 },
});

/**
 * After the point of no return a restore must finish: its steps retry until they succeed
 * or fail for good (non-retryable), however long the API server flaps.
 */
export const persistent = proxyActivities<Activities>({
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '30 seconds',
  retry: { ...retry, maximumInterval: '1 minute' }, // no maximumAttempts: unlimited
});
