/**
 * The activities of every workflow, built from their dependencies (the pattern of the
 * Temporal sample `activities-dependency-injection`): tests hand in the simulated
 * cluster's kubeconfig and a temporary backup directory; the worker hands in its own.
 */

export interface ActivityDeps {
  /** ADMIN_CLUSTER_KUBECONFIG used when a workflow input names none. */
  defaultKubeconfig?: string;
  /** Backup repository used when a workflow input names none. */
  defaultBackupDir: string;
}

export function createActivities(_deps: ActivityDeps) {
  return {};
}

export type Activities = ReturnType<typeof createActivities>;
