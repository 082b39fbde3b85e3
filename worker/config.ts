/**
 * The worker process's configuration, validated before anything connects: the Temporal
 * connection, read as every Temporal tool reads it (@temporalio/envconfig: TEMPORAL_ADDRESS,
 * TEMPORAL_NAMESPACE, TEMPORAL_PROFILE and the Temporal CLI's config file, TLS and API key
 * settings), its task queue, and what it may touch (activities/config/worker-config.ts).
 */
import { hostname } from 'node:os';
import type { LogLevel } from '@temporalio/common';
import { msToNumber } from '@temporalio/common/lib/time.js';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import type { NativeConnectionOptions } from '@temporalio/worker';
import { z } from 'zod';
import { loadWorkerConfig, type WorkerConfig } from '../activities/config/worker-config.js';
import {
  DEFAULT_TASK_QUEUE,
  parseOrFail,
  REPOSITORY_HOST_ID_PATTERN,
} from '../workflows/contract/index.js';

/** The worker's own variables (the Temporal connection's are envconfig's); deploy/ and compose set them. */
export const workerEnvSchema = z.object({
  /** Task queue the worker polls. */
  TEMPORAL_TASK_QUEUE: z.string().min(1).default(DEFAULT_TASK_QUEUE),
  /**
   * The host that keeps this worker's repositories: its activities that touch them run on
   * the queue `<TEMPORAL_TASK_QUEUE>-host-<id>`. Workers sharing an id must see the same
   * repository directories (the same disk); by default the host name.
   */
  REPOSITORY_HOST_ID: z
    .string()
    .regex(REPOSITORY_HOST_ID_PATTERN, 'letters, digits, ".", "_" and "-", at most 63')
    .optional(),
  /**
   * After SIGTERM or SIGINT, how long running activities get to finish before they are
   * cancelled (and retried elsewhere); then the worker exits.
   */
  WORKER_SHUTDOWN_GRACE: z
    .string()
    .default('30s')
    .transform((value, ctx) => {
      try {
        return msToNumber(value as Parameters<typeof msToNumber>[0]);
      } catch {
        ctx.addIssue({ code: 'custom', message: 'a duration such as 30s, 2m or 30000 (ms)' });
        return z.NEVER;
      }
    }),
  /** `host:port` of the Prometheus endpoint (`/metrics`), e.g. 0.0.0.0:9464; none if unset. */
  WORKER_METRICS_ADDRESS: z
    .string()
    .regex(/^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'host:port, e.g. 0.0.0.0:9464')
    .optional(),
  /** Lowest level written to the log (JSON lines on stdout). */
  WORKER_LOG_LEVEL: z.enum(['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR']).default('INFO'),
});

export interface WorkerProcessConfig {
  connection: NativeConnectionOptions;
  namespace: string;
  taskQueue: string;
  /** REPOSITORY_HOST_ID, or the host name. */
  repositoryHostId: string;
  /** WORKER_SHUTDOWN_GRACE, in milliseconds. */
  shutdownGraceMs: number;
  /** WORKER_METRICS_ADDRESS */
  metricsAddress?: string;
  logLevel: LogLevel;
  /** Admin clusters, repositories, import inbox, by name. */
  targets: WorkerConfig;
}

export function loadWorkerProcessConfig(env: NodeJS.ProcessEnv = process.env): WorkerProcessConfig {
  const vars = parseOrFail(workerEnvSchema, env, (issues) =>
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
    taskQueue: vars.TEMPORAL_TASK_QUEUE,
    repositoryHostId: vars.REPOSITORY_HOST_ID ?? hostId(hostname()),
    shutdownGraceMs: vars.WORKER_SHUTDOWN_GRACE,
    ...(vars.WORKER_METRICS_ADDRESS ? { metricsAddress: vars.WORKER_METRICS_ADDRESS } : {}),
    logLevel: vars.WORKER_LOG_LEVEL,
    targets,
  };
}

/** A host name as a host id: other characters become "-", cut to 63. */
export function hostId(name: string): string {
  const id = name
    .replace(/[^A-Za-z0-9._-]/g, '-')
    .replace(/^[^A-Za-z0-9]+/, '')
    .slice(0, 63);
  return id === '' ? 'host' : id;
}
