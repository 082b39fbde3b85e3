/**
 * The figures a backup or restore reports when it ends, through the SDK's workflow metric
 * meter (emitted once, when the code runs for the first time, never on replay).
 */
import { metricMeter, workflowInfo } from '@temporalio/workflow';
import {
  ADMIN_CLUSTER_LABEL,
  METRICS,
  type Operation,
  type Outcome,
  USER_CLUSTER_LABEL,
} from './contract/index.js';

/** Seconds since the workflow started, in workflow time. */
function elapsedSeconds(): number {
  return (Date.now() - workflowInfo().startTime.getTime()) / 1000;
}

/** The cluster an operation works on, as far as it is known when it ends. */
export interface MetricSubject {
  userClusterName?: string;
  adminCluster?: string;
}

/**
 * An operation ended with `outcome`: a backup counted, a restore timed, an admin backup
 * counted by admin cluster. A backupAll records nothing itself: its parts are child
 * workflows, each recording its own.
 */
export function recordEnd(operation: Operation, subject: MetricSubject, outcome: Outcome): void {
  const { userClusterName, adminCluster } = subject;
  if (operation === 'admin-backup') {
    const tags = { ...(adminCluster ? { [ADMIN_CLUSTER_LABEL]: adminCluster } : {}), outcome };
    metricMeter.createCounter(METRICS.adminBackups).add(1, tags);
    return;
  }
  if (userClusterName === undefined) return;
  const tags = { [USER_CLUSTER_LABEL]: userClusterName, outcome };
  if (operation === 'backup') metricMeter.createCounter(METRICS.backups).add(1, tags);
  if (operation === 'restore')
    metricMeter.createHistogram(METRICS.restoreDuration, 'float').record(elapsedSeconds(), tags);
}

/** An admin backup is stored and verified: when. */
export function recordAdminBackupStored(adminCluster: string): void {
  metricMeter
    .createGauge(METRICS.adminBackupLastSuccess, 'float')
    .set(Date.now() / 1000, { [ADMIN_CLUSTER_LABEL]: adminCluster });
}

/** A backup is stored and verified: when, how big, how long it took. */
export function recordBackupStored(userClusterName: string, sizeBytes: number): void {
  const tags = { [USER_CLUSTER_LABEL]: userClusterName };
  metricMeter.createGauge(METRICS.backupLastSuccess, 'float').set(Date.now() / 1000, tags);
  metricMeter.createGauge(METRICS.backupLastSize, 'int').set(sizeBytes, tags);
  metricMeter.createGauge(METRICS.backupLastDuration, 'float').set(elapsedSeconds(), tags);
}
