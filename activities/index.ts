/**
 * The activities of every workflow, built from their dependencies (the pattern of the
 * Temporal sample `activities-dependency-injection`): tests hand in the simulated
 * cluster's kubeconfig and a temporary backup directory; the worker hands in its own.
 * Every activity's errors are classified: retryable unless retrying cannot help.
 */
import { createBackupActivities } from './backup-activities.js';
import { createClusterActivities } from './cluster-activities.js';
import { withErrorClassification } from './errors.js';
import { createEtcdActivities } from './etcd-activities.js';

export interface ActivityDeps {
  /** ADMIN_CLUSTER_KUBECONFIG used when a workflow input names none. */
  defaultKubeconfig?: string;
  /** Backup repository used when a workflow input names none. */
  defaultBackupDir: string;
}

export function createActivities(deps: ActivityDeps) {
  return withErrorClassification({
    ...createClusterActivities(deps),
    ...createEtcdActivities(deps),
    ...createBackupActivities(deps),
  });
}

export type Activities = ReturnType<typeof createActivities>;
