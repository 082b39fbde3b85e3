/**
 * Which failures Temporal should retry. An activity error that is not an
 * `ApplicationFailure` marked non-retryable is retried under the workflow's retry policy:
 * that is right for 429, 5xx, network errors, dropped exec streams and copies that did not
 * verify. Wrong input, a cluster in a state the runbook does not expect, rejected
 * credentials or a corrupt snapshot will not get better by retrying: they fail at once.
 */
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from '../workflows/contract/index.js';
import { PdbConflictError } from './cluster/pdb.js';
import { ClusterStateError } from './cluster/pods.js';
import { StartedAgainError } from './cluster/workloads.js';
import { EtcdctlOutputError } from './etcd/commands.js';
import { httpStatusOf, kubeApiErrorMessage } from './kube/client.js';
import { ExecStreamError } from './kube/exec.js';
import { WaitTimeoutError } from './kube/wait.js';
import { SshAuthenticationError, SshConfigurationError } from './ssh/client.js';
import { HostKeyRejectedError } from './ssh/host-keys.js';
import { RemoteCommandError } from './ssh/pki.js';

/** HTTP statuses a retry cannot cure: bad request, credentials, permissions, invalid object. */
const PERMANENT_HTTP = new Set([400, 401, 403, 405, 415, 422]);

/** Maps a thrown error to what Temporal should do with it. */
export function classifyActivityError(error: unknown): unknown {
  if (error instanceof ApplicationFailure) return error;
  const apiMessage = kubeApiErrorMessage(error);
  const message = apiMessage ?? (error instanceof Error ? error.message : String(error));
  const permanent = (type: FailureType) => ApplicationFailure.nonRetryable(message, type);
  if (error instanceof ClusterStateError) return permanent(FailureType.ClusterState);
  if (error instanceof PdbConflictError) return permanent(FailureType.PdbConflict);
  // Retrying the same call changes nothing: the workflow stops it again, or asks a person.
  if (error instanceof StartedAgainError) return permanent(FailureType.StartedAgain);
  if (error instanceof WaitTimeoutError) return permanent(FailureType.WaitTimeout);
  // A full disk on the worker (the repository) stays full until someone makes room.
  const errno = (error as { code?: unknown }).code;
  if (errno === 'ENOSPC' || errno === 'EDQUOT') return permanent(FailureType.NoSpace);
  // etcdctl printed something we cannot read: another try prints the same.
  if (error instanceof EtcdctlOutputError) return permanent(FailureType.EtcdctlOutput);
  // SSH: a key that is not the trusted one, a refused login, a file the configuration names.
  if (error instanceof HostKeyRejectedError) return permanent(FailureType.HostKeyMismatch);
  if (error instanceof SshAuthenticationError) return permanent(FailureType.SshAuthRejected);
  if (error instanceof SshConfigurationError) return permanent(FailureType.NotConfigured);
  if (error instanceof RemoteCommandError) return permanent(FailureType.RemoteCommandFailed);
  const status = httpStatusOf(error);
  // An exec into a pod that no longer exists: the step that makes the pod must run again.
  if (error instanceof ExecStreamError && status === 404) return permanent(FailureType.PodGone);
  // An exec the API server refuses with 400 ("unable to upgrade connection: container not
  // found") is about the pod's state — restarting, being replaced — not the request: retried.
  if (error instanceof ExecStreamError && status === 400) return error;
  if (status !== undefined && PERMANENT_HTTP.has(status)) {
    return permanent(FailureType.KubeApiRejected);
  }
  // A 429 or 5xx is retried; its message, like every one, kept to one line.
  if (apiMessage) return ApplicationFailure.retryable(apiMessage, FailureType.KubeApiUnavailable);
  return error;
}
