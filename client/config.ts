/** Where the Temporal server is, read from the environment the same way by worker and client. */
import { z } from 'zod';
import { describeIssues } from '../workflows/schemas.js';

export const DEFAULT_TASK_QUEUE = 'etcd-ha-restore';

export const temporalConfigSchema = z.object({
  /** host:port of the Temporal frontend. */
  TEMPORAL_ADDRESS: z.string().min(1).default('localhost:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  /** Task queue the worker polls and the client starts workflows on. */
  TEMPORAL_TASK_QUEUE: z.string().min(1).default(DEFAULT_TASK_QUEUE),
});

export interface TemporalConfig {
  address: string;
  namespace: string;
  taskQueue: string;
}

/** Reads `schema` from `env`; a bad value stops the program with a message naming the variable. */
export function parseEnv<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv): z.output<S> {
  const result = schema.safeParse(env);
  if (!result.success) {
    throw new Error(`invalid configuration in the environment: ${describeIssues(result.error)}`);
  }
  return result.data;
}

export function loadTemporalConfig(env: NodeJS.ProcessEnv = process.env): TemporalConfig {
  const parsed = parseEnv(temporalConfigSchema, env);
  return {
    address: parsed.TEMPORAL_ADDRESS,
    namespace: parsed.TEMPORAL_NAMESPACE,
    taskQueue: parsed.TEMPORAL_TASK_QUEUE,
  };
}
