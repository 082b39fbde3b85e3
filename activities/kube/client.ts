/** Kubernetes API clients of an admin cluster, and how API errors are read. */
import {
  AppsV1Api,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  PolicyV1Api,
  setHeaderOptions,
} from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import { type ClusterRef, FailureType } from '../../workflows/contract/index.js';

export interface Kube {
  config: KubeConfig;
  core: CoreV1Api;
  apps: AppsV1Api;
  policy: PolicyV1Api;
}

/** The clients of the admin cluster a request names: the dependency activities get. */
export interface KubeClients {
  forCluster(ref: Pick<ClusterRef, 'adminKubeconfig'>): Kube;
}

/**
 * Clients from the kubeconfig a request names, else the worker's default. The file is read
 * afresh on each call: a rotated credential is picked up on retry.
 */
export function kubeconfigClients(defaultKubeconfig: string | undefined): KubeClients {
  return {
    forCluster(ref) {
      const path = ref.adminKubeconfig ?? defaultKubeconfig;
      if (!path) {
        throw ApplicationFailure.nonRetryable(
          'no admin cluster kubeconfig: give adminKubeconfig in the workflow input or set ADMIN_CLUSTER_KUBECONFIG on the worker',
          FailureType.MissingKubeconfig,
        );
      }
      return connectKube(path);
    },
  };
}

export function connectKube(kubeconfigPath: string): Kube {
  const config = new KubeConfig();
  config.loadFromFile(kubeconfigPath);
  return {
    config,
    core: config.makeApiClient(CoreV1Api),
    apps: config.makeApiClient(AppsV1Api),
    policy: config.makeApiClient(PolicyV1Api),
  };
}

/** client-node sends JSON patch by default; our patches are merge patches. */
export const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** HTTP status of a failed API call, if it got that far. */
export function httpStatusOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { code, httpStatus } = error as { code?: unknown; httpStatus?: unknown };
  if (typeof code === 'number') return code;
  if (typeof httpStatus === 'number') return httpStatus;
  return undefined;
}

export const isNotFound = (error: unknown) => httpStatusOf(error) === 404;
export const isAlreadyExists = (error: unknown) => httpStatusOf(error) === 409;

/** Reads an object, or undefined when the API says 404. */
export async function readOptional<T>(read: () => Promise<T>): Promise<T | undefined> {
  try {
    return await read();
  } catch (error) {
    if (isNotFound(error)) return undefined;
    throw error;
  }
}
