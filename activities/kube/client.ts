/** Kubernetes API clients of an admin cluster, and how API errors are read. */
import { existsSync } from 'node:fs';
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
import type { WorkerTargets } from '../config/targets.js';
import type { AdminClusterConfig } from '../config/worker-config.js';
import { activityLog } from '../context.js';

export interface Kube {
  config: KubeConfig;
  core: CoreV1Api;
  apps: AppsV1Api;
  policy: PolicyV1Api;
  /** How snapshot copies cross the wire to this admin cluster (its configuration's). */
  copyCompression?: 'none' | 'gzip';
}

/** The clients of the admin cluster a request names: the dependency activities get. */
export interface KubeClients {
  forCluster(ref: Pick<ClusterRef, 'adminCluster'>): Kube;
}

/**
 * Clients of the admin clusters the worker's configuration names. The kubeconfig is read
 * afresh on each call: a rotated credential is picked up on retry. One that cannot be
 * loaded is reported by the admin cluster's name only — the loader's message can quote
 * the file, and it would land in workflow history — and logged in full on the worker.
 */
export function kubeClientsOf(targets: WorkerTargets): KubeClients {
  return {
    forCluster({ adminCluster }) {
      const { config } = targets.adminCluster(adminCluster);
      try {
        return { ...connectKube(config), copyCompression: config.copyCompression };
      } catch (error) {
        activityLog().error(
          `cannot load the kubeconfig of admin cluster ${adminCluster} (${config.kubeconfig ?? 'in-cluster service account'}): ${String(error)}`,
          { adminCluster },
        );
        throw ApplicationFailure.nonRetryable(
          `cannot load the kubeconfig of admin cluster ${adminCluster}; the worker's log says why`,
          FailureType.KubeconfigUnloadable,
        );
      }
    },
  };
}

/** Where an admin cluster's credentials come from: a kubeconfig file or the pod's service account. */
export type KubeSource = Pick<AdminClusterConfig, 'kubeconfig' | 'inCluster'>;

/** Clients of one admin cluster, from a kubeconfig path or a KubeSource. */
export function connectKube(source: string | KubeSource): Kube {
  const { kubeconfig } = typeof source === 'string' ? { kubeconfig: source } : source;
  let config: KubeConfig;
  if (kubeconfig !== undefined) {
    config = new KubeConfig();
    config.loadFromFile(kubeconfig);
  } else {
    config = inClusterKubeConfig();
  }
  return {
    config,
    core: config.makeApiClient(CoreV1Api),
    apps: config.makeApiClient(AppsV1Api),
    policy: config.makeApiClient(PolicyV1Api),
  };
}

const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/**
 * The pod's service account, as client-node's loadFromCluster reads it (the token file is
 * re-read as the kubelet rotates it). Checked first: client-node would otherwise talk to
 * `https://undefined:undefined`, or fail later on a missing token. `pathPrefix` is for tests.
 */
export function inClusterKubeConfig(pathPrefix = ''): KubeConfig {
  if (!process.env.KUBERNETES_SERVICE_HOST || !process.env.KUBERNETES_SERVICE_PORT) {
    throw new Error(
      'inCluster: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set: the worker is not running in a pod',
    );
  }
  if (!existsSync(`${pathPrefix}${SERVICE_ACCOUNT_TOKEN}`)) {
    throw new Error(
      `inCluster: no service account token at ${pathPrefix}${SERVICE_ACCOUNT_TOKEN} (automountServiceAccountToken false?)`,
    );
  }
  const config = new KubeConfig();
  config.loadFromCluster(pathPrefix);
  return config;
}

/** client-node sends JSON patch by default; our patches are merge patches. */
export const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** A list of names and metadata only (no Secret data, no spec), as `kubectl get -o name` asks. */
export const metadataOnly = setHeaderOptions(
  'Accept',
  'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1',
);

/** HTTP status of a failed API call, if it got that far. */
export function httpStatusOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { code, httpStatus } = error as { code?: unknown; httpStatus?: unknown };
  if (typeof code === 'number') return code;
  if (typeof httpStatus === 'number') return httpStatus;
  return undefined;
}

/**
 * A Kubernetes API error (client-node's ApiException: status, headers, body) in one line,
 * `HTTP 403 Forbidden: <the Status object's message>`, for workflow history and people;
 * undefined for anything else.
 */
export function kubeApiErrorMessage(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { code, body } = error as { code?: unknown; body?: unknown };
  if (typeof code !== 'number' || body === undefined) return undefined;
  let status: { reason?: unknown; message?: unknown } = {};
  try {
    status = (typeof body === 'string' ? JSON.parse(body) : body) as typeof status;
  } catch {
    status = { message: String(body).slice(0, 300) };
  }
  const reason = typeof status.reason === 'string' ? ` ${status.reason}` : '';
  const message = typeof status.message === 'string' ? `: ${status.message.slice(0, 500)}` : '';
  return `HTTP ${code}${reason}${message}`;
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
