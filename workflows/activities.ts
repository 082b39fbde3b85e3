/**
 * The workflows' handles on the activities (types only: activity code never enters the
 * workflow bundle), with the timeouts and retry policies each kind of step needs.
 *
 * Every activity heartbeats (a keep-alive every 10 s, real progress where there is some),
 * so every activity has a heartbeat timeout: a worker killed in any step is noticed within
 * it and the step resumes on another worker. 60 s fits the SDK's heartbeat throttling
 * (it sends at most one heartbeat per 80% of the timeout, 48 s here).
 */
import {
  type ActivityInterfaceFor,
  type ActivityOptions,
  patched,
  proxyActivities,
} from '@temporalio/workflow';
import type { Activities, RepositoryActivityName } from '../activities/index.js';

/** Retryable failures (429, 5xx, network, a dropped exec stream) back off up to 30 s. */
const retry = { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds' };
const heartbeatTimeout = '60 seconds';

/** API calls and short commands. */
const QUICK: ActivityOptions = {
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout,
  retry: { ...retry, maximumAttempts: 10 },
};
export const quick = proxyActivities<Activities>(QUICK);

/** How many times a long activity is attempted (a backup cleans up after each of its attempts). */
export const LONG_ATTEMPTS = 10;

/** Copies, hashing, restores and waits: long, with progress in their heartbeats. */
const LONG: ActivityOptions = {
  startToCloseTimeout: '2 hours',
  heartbeatTimeout,
  retry: { ...retry, maximumAttempts: LONG_ATTEMPTS },
};
export const long = proxyActivities<Activities>(LONG);

/**
 * After the point of no return a restore must finish: its steps retry transient failures
 * for about half an hour (30 attempts, at most a minute apart), however the API server
 * flaps; what retrying does not fix by then reaches the workflow, which re-runs the step and
 * then waits for an operator (workflows/restore/operator.ts) — so an outage that lasts is
 * shown to a person instead of being retried unseen for ever.
 */
const PERSISTENT: ActivityOptions = {
  startToCloseTimeout: '2 hours',
  heartbeatTimeout,
  retry: { ...retry, maximumInterval: '1 minute', maximumAttempts: 30 },
};
export const persistent = proxyActivities<Activities>(PERSISTENT);

type RepositoryActivities = ActivityInterfaceFor<Pick<Activities, RepositoryActivityName>>;

/** The activities that touch one repository, with the timeouts and retries of each kind. */
export interface RepositoryProxies {
  /** The host that keeps the repository (absent in runs from before host queues). */
  host?: string;
  quick: RepositoryActivities;
  long: RepositoryActivities;
  persistent: RepositoryActivities;
  /** The repository's proxy with the same timeouts and retries as `main` (quick, long or persistent). */
  like(main: typeof long): RepositoryActivities;
}

/**
 * Only the repository's host can run its activities. A host whose worker is not back within
 * this long fails the step instead of holding the workflow for ever (Temporal does not
 * retry a schedule-to-start timeout): a backup fails, a restore before its point of no
 * return puts everything back, after it waits for an operator.
 */
const HOST_WAIT = '10 minutes';

/** Changes the commands a workflow issues: runs recorded before it keep the main queue. */
export const REPOSITORY_HOST_PATCH = 'repository-host-queue';

/**
 * The activities of `repository`, on the task queue of the host that keeps it: asked of the
 * main queue once, at the first use (so one backup or restore never touches a repository
 * on two hosts, even with several workers on the main queue for availability).
 */
export function repositoryHost(repository: string): () => Promise<RepositoryProxies> {
  let proxies: Promise<RepositoryProxies> | undefined;
  const ask = async (): Promise<RepositoryProxies> => {
    if (!patched(REPOSITORY_HOST_PATCH)) return proxiesOn({ quick, long, persistent });
    const { host, taskQueue } = await quick.repositoryHostQueue.executeWithOptions(
      { summary: `which host keeps repository ${repository}` },
      [{ repository }],
    );
    const on = (options: ActivityOptions) =>
      proxyActivities<Pick<Activities, RepositoryActivityName>>({
        ...options,
        taskQueue,
        scheduleToStartTimeout: HOST_WAIT,
      });
    return { host, ...proxiesOn({ quick: on(QUICK), long: on(LONG), persistent: on(PERSISTENT) }) };
  };
  return () => {
    proxies ??= ask();
    return proxies;
  };
}

function proxiesOn(p: Omit<RepositoryProxies, 'like' | 'host'>): RepositoryProxies {
  return {
    ...p,
    like: (main) => (main === persistent ? p.persistent : main === quick ? p.quick : p.long),
  };
}
