/**
 * The project's metrics that do not come from a workflow ending (workflows/metrics.ts):
 *   - at start, the newest backup of each cluster (and admin backup of each admin cluster)
 *     in this worker's repositories, so the "no backup for 24 h" alerts see a cluster after
 *     a restart too, not only after its next backup;
 *   - every `intervalMs`, the restores waiting for an operator, as Temporal lists them
 *     (outcome needs-operator). A workflow's own metrics are emitted where it runs and never
 *     on replay, so a gauge set by the workflow would vanish with the worker that set it.
 * Both carry the labels a workflow's metrics carry, so the series are the same ones.
 */
import { readdir } from 'node:fs/promises';
import type { Client } from '@temporalio/client';
import type { MetricMeter } from '@temporalio/common';
import type { WorkerConfig } from '../activities/config/worker-config.js';
import { FileSystemBackupStore } from '../activities/repository/fs-store.js';
import {
  ADMIN_CLUSTER_LABEL,
  dnsLabel,
  METRICS,
  USER_CLUSTER_LABEL,
  UserClusterName,
} from '../workflows/contract/index.js';

/** The tags the SDK puts on a workflow's metrics, for the series a worker sets itself. */
export function workflowMetricTags(namespace: string, taskQueue: string, workflowType: string) {
  return { namespace, taskQueue, workflowType };
}

/**
 * Sets the last-backup gauges from the newest taken backup of each cluster on disk, and the
 * admin-backup gauge from the newest admin backup of each admin cluster the worker serves.
 * `meterOf(workflowType)`: the meter with the tags that workflow's own metrics carry.
 */
export async function seedBackupMetrics(
  meterOf: (workflowType: string) => MetricMeter,
  config: WorkerConfig,
): Promise<void> {
  const success = meterOf('backupUserCluster').createGauge(METRICS.backupLastSuccess, 'float');
  const size = meterOf('backupUserCluster').createGauge(METRICS.backupLastSize, 'int');
  const adminSuccess = meterOf('backupAdminCluster').createGauge(
    METRICS.adminBackupLastSuccess,
    'float',
  );
  const newest = new Map<string, { at: number; sizeBytes: number }>();
  const newestAdmin = new Map<string, number>();
  for (const { path } of Object.values(config.repositories)) {
    const store = new FileSystemBackupStore(path);
    const entries = await readdir(path, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      if (!entry.isDirectory() || !dnsLabel.safeParse(entry.name).success) continue;
      const taken = (await store.list(entry.name)).filter((b) => b.origin === 'taken');
      for (const b of taken) {
        const at = Date.parse(b.createdAt) / 1000;
        if ((newest.get(entry.name)?.at ?? 0) < at)
          newest.set(entry.name, { at, sizeBytes: b.sizeBytes });
      }
    }
    for (const adminCluster of Object.keys(config.adminClusters)) {
      for (const b of await store.admin.list(adminCluster)) {
        const at = Date.parse(b.createdAt) / 1000;
        if ((newestAdmin.get(adminCluster) ?? 0) < at) newestAdmin.set(adminCluster, at);
      }
    }
  }
  for (const [cluster, b] of newest) {
    success.set(b.at, { [USER_CLUSTER_LABEL]: cluster });
    size.set(b.sizeBytes, { [USER_CLUSTER_LABEL]: cluster });
  }
  for (const [adminCluster, at] of newestAdmin)
    adminSuccess.set(at, { [ADMIN_CLUSTER_LABEL]: adminCluster });
}

export const WAITING_RESTORES_QUERY =
  'EtcdOperation = "restore" AND EtcdOutcome = "needs-operator" AND ExecutionStatus = "Running"';

/** Counts the restores waiting for an operator, per cluster, every `intervalMs`. */
export function watchWaitingRestores(
  client: Client,
  meter: MetricMeter,
  options: { intervalMs: number; onError: (error: unknown) => void },
): { stop(): void } {
  const gauge = meter.createGauge(METRICS.restoresWaiting, 'int');
  const seen = new Set<string>();
  let stopped = false;
  const poll = async () => {
    const waiting = new Map<string, number>();
    for await (const run of client.workflow.list({ query: WAITING_RESTORES_QUERY })) {
      const cluster = run.typedSearchAttributes.get(UserClusterName) ?? 'unknown';
      waiting.set(cluster, (waiting.get(cluster) ?? 0) + 1);
    }
    for (const cluster of new Set([...seen, ...waiting.keys()])) {
      seen.add(cluster);
      gauge.set(waiting.get(cluster) ?? 0, { [USER_CLUSTER_LABEL]: cluster });
    }
  };
  let timer: NodeJS.Timeout | undefined;
  const loop = () => {
    void poll()
      .catch(options.onError)
      .finally(() => {
        if (!stopped) timer = setTimeout(loop, options.intervalMs).unref();
      });
  };
  loop();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
