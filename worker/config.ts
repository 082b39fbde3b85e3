/**
 * The worker process's configuration, validated before anything connects: the Temporal
 * connection, read as every Temporal tool reads it (@temporalio/envconfig: TEMPORAL_ADDRESS,
 * TEMPORAL_NAMESPACE, TEMPORAL_PROFILE and the Temporal CLI's config file, TLS and API key
 * settings), its task queue, and what it may touch (activities/config/worker-config.ts).
 */
import { loadClientConnectConfig } from '@temporalio/envconfig';
import type { NativeConnectionOptions } from '@temporalio/worker';
import { z } from 'zod';
import { loadWorkerConfig, type WorkerConfig } from '../activities/config/worker-config.js';
import { DEFAULT_TASK_QUEUE, parseOrFail } from '../workflows/contract/index.js';

const workerEnvSchema = z.object({
  /** Task queue the worker polls. */
  TEMPORAL_TASK_QUEUE: z.string().min(1).default(DEFAULT_TASK_QUEUE),
});

export interface WorkerProcessConfig {
  connection: NativeConnectionOptions;
  namespace: string;
  taskQueue: string;
  /** Admin clusters, repositories, import inbox, by name. */
  targets: WorkerConfig;
}

export function loadWorkerProcessConfig(env: NodeJS.ProcessEnv = process.env): WorkerProcessConfig {
  const { TEMPORAL_TASK_QUEUE } = parseOrFail(workerEnvSchema, env, (issues) =>
    Error(`invalid configuration in the environment: ${issues}`),
  );
  const targets = loadWorkerConfig(env);
  if (Object.keys(targets.adminClusters).length === 0) {
    throw new Error(
      'the worker serves no admin cluster: set ADMIN_CLUSTER_KUBECONFIG, or name adminClusters in the file ETCD_HA_RESTORE_CONFIG',
    );
  }
  const temporal = loadClientConnectConfig({ overrideEnvVars: env as Record<string, string> });
  return {
    connection: temporal.connectionOptions,
    namespace: temporal.namespace ?? 'default',
    taskQueue: TEMPORAL_TASK_QUEUE,
    targets,
  };
}
