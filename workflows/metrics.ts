/**
 * The figures a backup or restore reports when it ends, through the SDK's workflow metric
 * meter (emitted once, when the code runs for the first time, never on replay).
 */
import { metricMeter, workflowInfo } from '@temporalio/workflow';
import { METRICS, type Operation, type Outcome, USER_CLUSTER_LABEL } from './contract/index.js';

/** Seconds since the workflow started, in workflow time. */
function elapsedSeconds(): number {
  return (Date.now() - workflowInfo().startTime.getTime()) / 1000;
}

/** A user cluster's backup or restore ended with `outcome`: counted (backups) or timed (restores). */
export function recordEnd(operation: Operation, userClusterName: string, outcome: Outcome): void {
  const tags = { [USER_CLUSTER_LABEL]: userClusterName, outcome };
  if (operation === 'backup') metricMeter.createCounter(METRICS.backups).add(1, tags);
  if (operation === 'restore')
    metricMeter.createHistogram(METRICS.restoreDuration, 'float').record(elapsedSeconds(), tags);
}

/** A backup is stored and verified: when, how big, how long it took. */
export function recordBackupStored(userClusterName: string, sizeBytes: number): void {
  const tags = { [USER_CLUSTER_LABEL]: userClusterName };
  metricMeter.createGauge(METRICS.backupLastSuccess, 'float').set(Date.now() / 1000, tags);
  metricMeter.createGauge(METRICS.backupLastSize, 'int').set(sizeBytes, tags);
  metricMeter.createGauge(METRICS.backupLastDuration, 'float').set(elapsedSeconds(), tags);
}
