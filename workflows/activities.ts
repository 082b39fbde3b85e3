/**
 * The workflows' handles on the activities (types only: activity code never enters the
 * workflow bundle), with the timeouts and retry policies each kind of step needs.
 *
 * Every activity heartbeats (a keep-alive every 10 s, real progress where there is some),
 * so every activity has a heartbeat timeout: a worker killed in any step is noticed within
 * it and the step resumes on another worker. 60 s fits the SDK's heartbeat throttling
 * (it sends at most one heartbeat per 80% of the timeout, 48 s here).
 */
import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';

/** Retryable failures (429, 5xx, network, a dropped exec stream) back off up to 30 s. */
const retry = { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds' };
const heartbeatTimeout = '60 seconds';

/** API calls and short commands. */
export const quick = proxyActivities<Activities>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout,
  retry: { ...retry, maximumAttempts: 10 },
});

/** How many times a long activity is attempted (a backup cleans up after each of its attempts). */
export const LONG_ATTEMPTS = 10;

/** Copies, hashing, restores and waits: long, with progress in their heartbeats. */
export const long = proxyActivities<Activities>({
  startToCloseTimeout: '2 hours',
  heartbeatTimeout,
  retry: { ...retry, maximumAttempts: LONG_ATTEMPTS },
});

/**
 * After the point of no return a restore must finish: its steps retry transient failures
 * for about half an hour (30 attempts, at most a minute apart), however the API server
 * flaps; what retrying does not fix by then reaches the workflow, which re-runs the step and
 * then waits for an operator (workflows/restore/operator.ts) — so an outage that lasts is
 * shown to a person instead of being retried unseen for ever.
 */
export const persistent = proxyActivities<Activities>({
  startToCloseTimeout: '2 hours',
  heartbeatTimeout,
  retry: { ...retry, maximumInterval: '1 minute', maximumAttempts: 30 },
});
