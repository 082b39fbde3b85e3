/** Kubernetes API clients for one admin cluster kubeconfig. */
import {
  AppsV1Api,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  PolicyV1Api,
  setHeaderOptions,
} from '@kubernetes/client-node';

export interface Kube {
  config: KubeConfig;
  core: CoreV1Api;
  apps: AppsV1Api;
  policy: PolicyV1Api;
}

/** Reads the kubeconfig file afresh each time: a rotated credential is picked up on retry. */
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
