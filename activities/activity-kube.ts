/** The admin cluster connection and wait options every cluster-facing activity uses. */
import { ApplicationFailure } from '@temporalio/common';
import { ActivityFailureType } from './errors.js';
import { connectKube, type Kube } from './kube/client.js';
import type { WaitOptions } from './kube/wait.js';
import { cancellationSignal, heartbeat } from './temporal-context.js';

/** Which admin cluster and which user cluster namespace. */
export interface ClusterRef {
  /** Kubeconfig path on the worker; the worker's default if absent. */
  adminKubeconfig?: string;
  namespace: string;
}

/** Connects to the admin cluster the input names, else the worker's default. */
export function kubeResolver(defaultKubeconfig: string | undefined): (ref: ClusterRef) => Kube {
  return (ref) => {
    const path = ref.adminKubeconfig ?? defaultKubeconfig;
    if (!path) {
      throw ApplicationFailure.nonRetryable(
        'no admin cluster kubeconfig: give adminKubeconfig in the workflow input or set ADMIN_CLUSTER_KUBECONFIG on the worker',
        ActivityFailureType.MissingKubeconfig,
      );
    }
    return connectKube(path);
  };
}

/** Waits that heartbeat what they wait for and stop when the activity is cancelled. */
export function activityWait(step: string, timeoutMs: number): WaitOptions {
  return {
    timeoutMs,
    intervalMs: 500,
    onTick: (waitingFor) => heartbeat({ step, waitingFor }),
    signal: cancellationSignal(),
  };
}
