/**
 * The worker's configuration, from the environment, validated before anything connects.
 * The Temporal connection is read as every Temporal tool reads it (@temporalio/envconfig:
 * TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_PROFILE, TLS and API key settings).
 */
import { loadClientConnectConfig } from '@temporalio/envconfig';
import type { NativeConnectionOptions } from '@temporalio/worker';
import { z } from 'zod';
import { repositoryRootFromEnv } from '../activities/repository/fs-store.js';
import { absolutePath, DEFAULT_TASK_QUEUE, parseOrFail } from '../workflows/contract/index.js';

const workerEnvSchema = z.object({
  /** Task queue the worker polls. */
  TEMPORAL_TASK_QUEUE: z.string().min(1).default(DEFAULT_TASK_QUEUE),
  /** Admin cluster kubeconfig used when a workflow input names none. */
  ADMIN_CLUSTER_KUBECONFIG: absolutePath.optional(),
});

export interface WorkerConfig {
  connection: NativeConnectionOptions;
  namespace: string;
  taskQueue: string;
  adminKubeconfig?: string;
  /** Backup repository on this worker's disk (SPEC B4: outside the cluster). */
  backupDir: string;
}

export function loadWorkerConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const parsed = parseOrFail(workerEnvSchema, env, (issues) =>
    Error(`invalid configuration in the environment: ${issues}`),
  );
  const temporal = loadClientConnectConfig({ overrideEnvVars: definedOnly(env) });
  return {
    connection: temporal.connectionOptions,
    namespace: temporal.namespace ?? 'default',
    taskQueue: parsed.TEMPORAL_TASK_QUEUE,
    adminKubeconfig: parsed.ADMIN_CLUSTER_KUBECONFIG,
    backupDir: repositoryRootFromEnv(env),
  };
}

function definedOnly(env: NodeJS.ProcessEnv): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined),
  );
}
