/**
 * The activities of every workflow, built from live dependencies (the pattern of the
 * Temporal sample `activities-dependency-injection`): the worker builds the Kubernetes
 * client factory, the backup stores and the local etcdctl once and hands them in; tests
 * hand in the simulated cluster's. Every activity heartbeats while it runs and has its
 * errors classified: retryable unless retrying cannot help.
 */

import { createClusterActivities } from './cluster/activities.js';
import { createAdminClusterActivities } from './cluster/admin-activities.js';
import type { WorkerTargets } from './config/targets.js';
import { keepAlive } from './context.js';
import { classifyActivityError } from './errors.js';
import { createEtcdActivities } from './etcd/activities.js';
import type { LocalEtcdctl } from './etcd/local-etcdctl.js';
import type { KubeClients } from './kube/client.js';
import { createRepositoryActivities } from './repository/activities.js';
import { createAdminRepositoryActivities } from './repository/admin-activities.js';
import type { BackupStores } from './repository/store.js';

export interface ActivityDeps {
  /** What the worker's configuration names: admin clusters, repositories, the import inbox. */
  targets: WorkerTargets;
  /** Clients of the admin cluster a request names. */
  kube: KubeClients;
  /** The backup store of the repository a request names. */
  backups: BackupStores;
  /** etcdctl on the worker, for snapshot files in a local store. */
  etcdctl: LocalEtcdctl;
}

export function createActivities(deps: ActivityDeps) {
  return asActivities({
    ...createClusterActivities(deps),
    ...createAdminClusterActivities(deps),
    ...createEtcdActivities(deps),
    ...createRepositoryActivities(deps),
    ...createAdminRepositoryActivities(deps),
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
