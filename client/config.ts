/**
 * Where the Temporal server is, for the client and the CLI: read as every Temporal tool
 * reads it (@temporalio/envconfig: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_PROFILE,
 * TEMPORAL_CONFIG_FILE, TLS and API key settings), plus the task queue the worker polls.
 */
import type { ConnectionOptions } from '@temporalio/client';
import { loadClientConnectConfig } from '@temporalio/envconfig';
import { z } from 'zod';
import { DEFAULT_TASK_QUEUE, parseOrFail } from '../workflows/contract/index.js';

export interface ClientConfig {
  connection: ConnectionOptions;
  namespace: string;
  taskQueue: string;
}

const taskQueueEnv = z.object({
  TEMPORAL_TASK_QUEUE: z.string().min(1).default(DEFAULT_TASK_QUEUE),
});

/** The connection from the environment (and the Temporal CLI's profiles); flags override. */
export function loadClientConfig(
  env: NodeJS.ProcessEnv = process.env,
  overrides: { address?: string; namespace?: string; taskQueue?: string } = {},
): ClientConfig {
  const { TEMPORAL_TASK_QUEUE } = parseOrFail(taskQueueEnv, env, (issues) =>
    Error(`invalid configuration in the environment: ${issues}`),
  );
  const vars = Object.fromEntries(
    Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined),
  );
  const { connectionOptions, namespace } = loadClientConnectConfig({ overrideEnvVars: vars });
  return {
    connection: {
      ...(connectionOptions as ConnectionOptions),
      ...(overrides.address ? { address: overrides.address } : {}),
    },
    namespace: overrides.namespace ?? namespace ?? 'default',
    taskQueue: overrides.taskQueue ?? TEMPORAL_TASK_QUEUE,
  };
}
