/**
 * The project's metrics, as the Prometheus endpoint of the worker shows them (beside the
 * SDK's `temporal_*`), with the labels they carry besides the SDK's `namespace`,
 * `taskQueue` and `workflowType`. docs/prometheus-alerts.yaml alerts on them.
 */
export const METRICS = {
  /** Gauge, unix seconds: when the cluster's newest backup was stored and verified. */
  backupLastSuccess: 'etcd_ha_restore_backup_last_success_timestamp_seconds',
  /** Gauge, bytes: the size of that backup's snapshot. */
  backupLastSize: 'etcd_ha_restore_backup_last_size_bytes',
  /** Gauge, seconds: how long that backup took, start to verified. */
  backupLastDuration: 'etcd_ha_restore_backup_last_duration_seconds',
  /** Counter: backups that ended, by `outcome` (succeeded, failed, cancelled, skipped-busy). */
  backups: 'etcd_ha_restore_backups',
  /** Histogram, seconds: restores that ended, by `outcome` (succeeded, failed, cancelled, handed-over). */
  restoreDuration: 'etcd_ha_restore_restore_duration_seconds',
  /** Gauge: restores waiting for an operator (outcome needs-operator), read from Temporal. */
  restoresWaiting: 'etcd_ha_restore_restores_waiting_for_operator',
  /** Gauge, unix seconds, by `admin_cluster`: when its newest admin backup (A2, A3) was stored and verified. */
  adminBackupLastSuccess: 'etcd_ha_restore_admin_backup_last_success_timestamp_seconds',
  /** Counter, by `admin_cluster` (absent when refused before the name was resolved) and `outcome`. */
  adminBackups: 'etcd_ha_restore_admin_backups',
} as const;

/** The label naming the user cluster on the user-cluster metrics above. */
export const USER_CLUSTER_LABEL = 'user_cluster';
/** The label naming the admin cluster on the admin-backup metrics. */
export const ADMIN_CLUSTER_LABEL = 'admin_cluster';
