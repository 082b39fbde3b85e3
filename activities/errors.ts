/**
 * Which failures Temporal should retry. An activity error that is not an
 * `ApplicationFailure` marked non-retryable is retried under the workflow's retry policy:
 * that is right for 429, 5xx, network errors, dropped exec streams and copies that did not
 * verify. Wrong input, a cluster in a state the runbook does not expect, rejected
 * credentials or a corrupt snapshot will not get better by retrying: they fail at once.
 */
import { ApplicationFailure } from '@temporalio/common';
import { EtcdctlOutputError } from './etcd-commands.js';
import { httpStatusOf } from './kube/client.js';
import { PdbConflictError } from './kube/pdb.js';
import { ClusterStateError } from './kube/pods.js';
import { WaitTimeoutError } from './kube/wait.js';

/** `ApplicationFailure.type` values the workflows and operators can match on. */
export const ActivityFailureType = {
  ClusterState: 'ClusterState',
  PdbConflict: 'PdbConflict',
  WaitTimeout: 'WaitTimeout',
  KubeApiRejected: 'KubeApiRejected',
  MissingKubeconfig: 'MissingKubeconfig',
  CorruptSnapshot: 'CorruptSnapshot',
  EtcdctlOutput: 'EtcdctlOutput',
} as const;

/** HTTP statuses a retry cannot cure: bad request, credentials, permissions, invalid object. */
const PERMANENT_HTTP = new Set([400, 401, 403, 405, 415, 422]);

/** Maps a thrown error to what Temporal should do with it. */
export function classifyActivityError(error: unknown): unknown {
  if (error instanceof ApplicationFailure) return error;
  const message = error instanceof Error ? error.message : String(error);
  const permanent = (type: string) => ApplicationFailure.nonRetryable(message, type);
  if (error instanceof ClusterStateError) return permanent(ActivityFailureType.ClusterState);
  if (error instanceof PdbConflictError) return permanent(ActivityFailureType.PdbConflict);
  if (error instanceof WaitTimeoutError) return permanent(ActivityFailureType.WaitTimeout);
  // etcdctl printed something we cannot read: another try prints the same.
  if (error instanceof EtcdctlOutputError) return permanent(ActivityFailureType.EtcdctlOutput);
  const status = httpStatusOf(error);
  if (status !== undefined && PERMANENT_HTTP.has(status)) {
    return permanent(ActivityFailureType.KubeApiRejected);
  }
  return error;
}
