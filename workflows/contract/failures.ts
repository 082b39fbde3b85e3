/**
 * Every `ApplicationFailure.type` this project raises: what callers, operators and the
 * workflows match on. One list, so a type is never spelled two ways.
 */
import { ApplicationFailure } from '@temporalio/common';

export const FailureType = {
  /** A workflow input is wrong; the message names the field. Never retried. */
  InvalidInput: 'InvalidInput',
  /** Another backup or restore of the same user cluster holds its lock. */
  ClusterBusy: 'ClusterBusy',
  /** The cluster is not in the state the runbook expects; retrying will not change that. */
  ClusterState: 'ClusterState',
  /** A restore failed before the point of no return and could not put everything back. */
  UndoFailed: 'UndoFailed',
  /**
   * The backup was taken from another cluster (admin cluster or namespace uid differ) and
   * the restore does not allow it (`allowForeignSnapshot`); nothing was changed.
   */
  ForeignSnapshot: 'ForeignSnapshot',
  /**
   * The snapshot comes from a newer etcd minor than the cluster runs and the restore does
   * not allow it (`allowNewerEtcd`); nothing was changed.
   */
  NewerEtcd: 'NewerEtcd',
  /** The restored cluster did not pass the end-of-restore checks. */
  VerificationFailed: 'VerificationFailed',
  /** Nobody approved the restore within its approval timeout; nothing was changed. */
  ApprovalTimedOut: 'ApprovalTimedOut',
  /** The cluster lock was terminated or released by someone else before the point of no return. */
  LockLost: 'LockLost',
  /** An image lacks a tool the product needs (named in the message); nothing was changed by it. */
  MissingTools: 'MissingTools',
  /** A volume has too little room for what must be written on it. */
  NoSpace: 'NoSpace',
  /** The PodDisruptionBudget present differs from the one saved before the restore. */
  PdbConflict: 'PdbConflict',
  /**
   * Something else (a reconciling controller, a person) started kube-etcd again while the
   * restore needs it stopped: nothing was swapped under a running etcd.
   */
  StartedAgain: 'StartedAgain',
  /** A wait for pods, replicas or etcd health ran out of time. */
  WaitTimeout: 'WaitTimeout',
  /**
   * The pod a command was to run in is gone (evicted, deleted). The activity does not retry
   * into nothing: the workflow's step runs again from its start, which makes the pod again.
   */
  PodGone: 'PodGone',
  /** The API server answered 429 or 5xx (or a 404 while things move): retried. */
  KubeApiUnavailable: 'KubeApiUnavailable',
  /** The API server refused the request for good (400, 401, 403, 405, 415, 422). */
  KubeApiRejected: 'KubeApiRejected',
  /** The kubeconfig the worker's configuration gives an admin cluster cannot be loaded. */
  KubeconfigUnloadable: 'KubeconfigUnloadable',
  /** A snapshot in a pod is not the backup, or not a valid etcd snapshot. */
  CorruptSnapshot: 'CorruptSnapshot',
  /** etcd has compacted the revision asked for: what it held then cannot be read any more. */
  RevisionCompacted: 'RevisionCompacted',
  /** etcdctl printed something that cannot be read; another try prints the same. */
  EtcdctlOutput: 'EtcdctlOutput',
  /**
   * An SSH host key that is not the one the worker's configuration trusts (unknown, changed
   * or revoked); the message names the host and the fingerprint seen. Never retried.
   */
  HostKeyMismatch: 'HostKeyMismatch',
  /** The SSH server refused the worker's key for the configured user. */
  SshAuthRejected: 'SshAuthRejected',
  /** A command on the admin node exited non-zero (sudo refused, no such directory...). */
  RemoteCommandFailed: 'RemoteCommandFailed',
  /** The worker's configuration lacks what the operation needs (an admin cluster's ssh section). */
  NotConfigured: 'NotConfigured',
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

/** The failure type of an error or of its causes (an activity's failure is its cause). */
export function failureTypeOf(error: unknown): string | undefined {
  for (let e: unknown = error; e instanceof Error; e = e.cause) {
    if (e instanceof ApplicationFailure && e.type) return e.type;
  }
  return undefined;
}
