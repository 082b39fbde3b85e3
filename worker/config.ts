/** The worker's configuration, from the environment, validated before anything connects. */
import { homedir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { loadTemporalConfig, parseEnv, type TemporalConfig } from '../client/config.js';
import { absolutePath } from '../workflows/schemas.js';

const workerEnvSchema = z.object({
  /** Admin cluster kubeconfig used when a workflow input names none. */
  ADMIN_CLUSTER_KUBECONFIG: absolutePath.optional(),
  /** Backup repository on this worker's disk (SPEC B4: outside the cluster). */
  BACKUP_DIR: absolutePath.optional(),
  XDG_DATA_HOME: absolutePath.optional(),
});

export interface WorkerConfig extends TemporalConfig {
  adminKubeconfig?: string;
  backupDir: string;
}

export function loadWorkerConfig(env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  const parsed = parseEnv(workerEnvSchema, env);
  const dataHome = parsed.XDG_DATA_HOME ?? join(env.HOME ?? homedir(), '.local', 'share');
  return {
    ...loadTemporalConfig(env),
    adminKubeconfig: parsed.ADMIN_CLUSTER_KUBECONFIG,
    backupDir: parsed.BACKUP_DIR ?? join(dataHome, 'etcd-ha-restore', 'backups'),
  };
}
