/**
 * The activities of every workflow, built from live dependencies (the pattern of the
 * Temporal sample `activities-dependency-injection`): the worker builds the Kubernetes
 * client factory, the backup stores and the local etcdctl once and hands them in; tests
 * hand in the simulated cluster's. Every activity heartbeats while it runs and has its
 * errors classified: retryable unless retrying cannot help.
 */
import { log } from '@temporalio/activity';
import type { RepositoryHost, RepositoryRef } from '../workflows/contract/index.js';
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
  /** This worker's host, which keeps its repositories, and the task queue it polls for them. */
  repositoryHost: RepositoryHost;
}

export function createActivities(deps: ActivityDeps) {
  return asActivities({
    ...createClusterActivities(deps),
    ...createAdminClusterActivities(deps),
    ...createEtcdActivities(deps),
    ...createRepositoryActivities(deps),
    ...createAdminRepositoryActivities(deps),
    /**
     * Which host keeps the repository: asked once per workflow on the main queue, answered
     * by whichever worker takes it with its own host; the workflow then runs every
     * repository activity on that host's queue. An unknown repository fails here.
     */
    async repositoryHostQueue(input: RepositoryRef): Promise<RepositoryHost> {
      deps.targets.repository(input.repository);
      return deps.repositoryHost;
    },
  });
}

export type Activities = ReturnType<typeof createActivities>;

/**
 * The activities that read or write a repository on the worker's disk (B3 copy out of the
 * pod, B4 commit, verify, retention, import, R3/H5b copy into the pod; for an admin backup
 * A2's PKI stream, A3's copy out of the pod, its commit, verify and retention): a worker
 * registers them on its host's queue too, and workflows run them there.
 */
export const REPOSITORY_ACTIVITIES = [
  'copySnapshotToRepository',
  'commitBackup',
  'abortBackup',
  'pruneBackups',
  'verifyBackup',
  'resolveSnapshotToRestore',
  'deleteImportedBackup',
  'copySnapshotIntoPod',
  'copyAdminSnapshotToRepository',
  'copyAdminPkiToRepository',
  'commitAdminBackup',
  'abortAdminBackup',
  'verifyAdminBackup',
  'pruneAdminBackups',
] as const satisfies ReadonlyArray<keyof RepositoryModuleActivities>;
export type RepositoryActivityName = (typeof REPOSITORY_ACTIVITIES)[number];
type RepositoryModuleActivities = ReturnType<typeof createRepositoryActivities> &
  ReturnType<typeof createAdminRepositoryActivities>;
// Fails to compile if an activity of repository/activities.ts or admin-activities.ts is
// missing from the list.
const everyRepositoryActivityListed: Record<
  Exclude<keyof RepositoryModuleActivities, RepositoryActivityName>,
  never
> = {};
void everyRepositoryActivityListed;

type ActivityFunctions = Record<string, (...args: never[]) => Promise<unknown>>;

/**
 * The conventions every activity follows: keep-alive heartbeats, classified errors, and a
 * log line when it starts and when it completes (the SDK adds the workflow's and the
 * activity's ids; it logs failures itself).
 */
function asActivities<T extends ActivityFunctions>(activities: T): T {
  const wrapped: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(activities)) {
    wrapped[name] = async (...args: never[]) => {
      const started = Date.now();
      log.info(`${name} started`);
      const result = await keepAlive(() => fn(...args)).catch((error: unknown) => {
        throw classifyActivityError(error);
      });
      log.info(`${name} completed`, { durationMs: Date.now() - started });
      return result;
    };
  }
  return wrapped as T;
}
