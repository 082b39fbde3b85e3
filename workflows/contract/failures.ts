/**
 * Every `ApplicationFailure.type` this project raises: what callers, operators and the
 * workflows match on. One list, so a type is never spelled two ways.
 */
export const FailureType = {
  /** A workflow input is wrong; the message names the field. Never retried. */
  InvalidInput: 'InvalidInput',
  /** Another backup or restore of the same user cluster holds its lock. */
  ClusterBusy: 'ClusterBusy',
  /** The cluster is not in the state the runbook expects; retrying will not change that. */
  ClusterState: 'ClusterState',
  /** A restore failed before the point of no return and could not put everything back. */
  UndoFailed: 'UndoFailed',
  /** The restored cluster did not pass the end-of-restore checks. */
  VerificationFailed: 'VerificationFailed',
  /** The PodDisruptionBudget present differs from the one saved before the restore. */
  PdbConflict: 'PdbConflict',
  /** A wait for pods, replicas or etcd health ran out of time. */
  WaitTimeout: 'WaitTimeout',
  /** The API server refused the request for good (400, 401, 403, 405, 415, 422). */
  KubeApiRejected: 'KubeApiRejected',
  /** No admin cluster kubeconfig: neither the input nor the worker names one. */
  MissingKubeconfig: 'MissingKubeconfig',
  /** A snapshot in a pod is not the backup, or not a valid etcd snapshot. */
  CorruptSnapshot: 'CorruptSnapshot',
  /** etcdctl printed something that cannot be read; another try prints the same. */
  EtcdctlOutput: 'EtcdctlOutput',
  /** Backup store: no such backup, or no such staged write. */
  BackupNotFound: 'BackupNotFound',
  /** Backup store: stored bytes or manifest do not match what was recorded. */
  BackupCorrupt: 'BackupCorrupt',
  /** Backup store: the id is taken by a different backup, or the request contradicts it. */
  BackupConflict: 'BackupConflict',
  /** Backup store: a malformed id, name or argument. */
  BackupInvalidArgument: 'BackupInvalidArgument',
} as const;
export type FailureType = (typeof FailureType)[keyof typeof FailureType];

/** The failure types of the backup store. */
export const BACKUP_FAILURE_TYPES: ReadonlySet<string> = new Set([
  FailureType.BackupNotFound,
  FailureType.BackupCorrupt,
  FailureType.BackupConflict,
  FailureType.BackupInvalidArgument,
]);
