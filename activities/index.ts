/**
 * The activities of every workflow, built from their dependencies (the pattern of the
 * Temporal sample `activities-dependency-injection`): tests hand in the simulated
 * cluster's kubeconfig and a temporary backup directory; the worker hands in its own.
 * Every activity heartbeats while it runs and has its errors classified: retryable unless
 * retrying cannot help.
 */
import { createBackupActivities } from './backup-activities.js';
import { createClusterActivities } from './cluster-activities.js';
import { classifyActivityError } from './errors.js';
import { createEtcdActivities } from './etcd-activities.js';
import { keepAlive } from './temporal-context.js';

export interface ActivityDeps {
  /** ADMIN_CLUSTER_KUBECONFIG used when a workflow input names none. */
  defaultKubeconfig?: string;
  /** Backup repository used when a workflow input names none. */
  defaultBackupDir: string;
}

export function createActivities(deps: ActivityDeps) {
  return asActivities({
    ...createClusterActivities(deps),
    ...createEtcdActivities(deps),
    ...createBackupActivities(deps),
  });
}

export type Activities = ReturnType<typeof createActivities>;

type ActivityFunctions = Record<string, (...args: never[]) => Promise<unknown>>;

/** The conventions every activity follows: keep-alive heartbeats, classified errors. */
function asActivities<T extends ActivityFunctions>(activities: T): T {
  const wrapped: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(activities)) {
    wrapped[name] = (...args: never[]) =>
      keepAlive(() => fn(...args)).catch((error: unknown) => {
        throw classifyActivityError(error);
      });
  }
  return wrapped as T;
}
