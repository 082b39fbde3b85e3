/**
 * The typed client: start, watch and approve backups and restores, and manage the backup
 * Schedule of each user cluster. Inputs are validated here with the same schemas the
 * workflows use, so a typo fails before anything is started.
 */
import { randomUUID } from 'node:crypto';
import {
  Client,
  Connection,
  type ScheduleHandle,
  ScheduleOverlapPolicy,
  type ScheduleSpec,
  type WorkflowHandleWithFirstExecutionRunId,
} from '@temporalio/client';
import type { z } from 'zod';
import { BACKUP_LIMITS, type backupUserCluster } from '../workflows/backup-user-cluster.js';
import { compactTimestamp } from '../workflows/naming.js';
import { RESTORE_LIMITS } from '../workflows/restore-user-cluster.js';
import {
  type BackupUserClusterInput,
  backupUserClusterInputSchema,
  describeIssues,
  type RestoreUserClusterInput,
  restoreUserClusterInputSchema,
} from '../workflows/schemas.js';
import type { TemporalConfig } from './config.js';

/** A bad input, caught before anything was started. */
export class InvalidInputError extends Error {
  override name = 'InvalidInputError';
}

/** How often a scheduled backup runs: every `interval` (e.g. "6h"), or on `cron` expressions. */
export type BackupCadence = { interval: string } | { cron: string[] };

export interface BackupScheduleOptions {
  input: BackupUserClusterInput;
  cadence: BackupCadence;
  /** Start paused. */
  paused?: boolean;
  note?: string;
}

export function backupScheduleId(userClusterName: string): string {
  return `etcd-backup-${userClusterName}`;
}

export class EtcdOpsClient {
  constructor(
    readonly client: Client,
    readonly taskQueue: string,
  ) {}

  static async connect(config: TemporalConfig): Promise<EtcdOpsClient> {
    const connection = await Connection.connect({ address: config.address });
    return new EtcdOpsClient(
      new Client({ connection, namespace: config.namespace }),
      config.taskQueue,
    );
  }

  async close(): Promise<void> {
    await this.client.connection.close();
  }

  /** Starts a backup (SPEC B1–B4); the id says which cluster and when. */
  async startBackup(
    input: BackupUserClusterInput,
  ): Promise<WorkflowHandleWithFirstExecutionRunId<typeof backupUserCluster>> {
    const params = validate(backupUserClusterInputSchema, input);
    return this.client.workflow.start('backupUserCluster', {
      taskQueue: this.taskQueue,
      workflowId: `etcd-backup-${params.userClusterName}-${timestamp()}-${suffix()}`,
      args: [input],
      staticSummary: `Back up etcd of user cluster ${params.userClusterName}`,
      staticDetails: BACKUP_LIMITS,
    });
  }

  /** Starts a restore (SPEC R1–R9 or H1–H9). */
  async startRestore(
    input: RestoreUserClusterInput,
  ): Promise<WorkflowHandleWithFirstExecutionRunId> {
    const params = validate(restoreUserClusterInputSchema, input);
    const from = params.backup.backupId ?? params.backup.path;
    return this.client.workflow.start('restoreUserCluster', {
      taskQueue: this.taskQueue,
      workflowId: `etcd-restore-${params.userClusterName}-${timestamp()}-${suffix()}`,
      args: [input],
      staticSummary: `Restore etcd of user cluster ${params.userClusterName} from ${from}`,
      staticDetails: RESTORE_LIMITS,
    });
  }

  /** Approves a restore waiting at its approval gate (the same as the `approve` signal). */
  async approveRestore(workflowId: string, approvedBy: string): Promise<string> {
    return this.client.workflow
      .getHandle(workflowId)
      .executeUpdate('approveRestore', { args: [{ approvedBy }] });
  }

  /** Creates the backup Schedule of a cluster: overlap SKIP, one at a time. */
  async createBackupSchedule(options: BackupScheduleOptions): Promise<ScheduleHandle> {
    const params = validate(backupUserClusterInputSchema, options.input);
    return this.client.schedule.create({
      scheduleId: backupScheduleId(params.userClusterName),
      spec: cadenceSpec(options.cadence),
      action: {
        type: 'startWorkflow',
        workflowType: 'backupUserCluster',
        taskQueue: this.taskQueue,
        workflowId: `etcd-backup-${params.userClusterName}`,
        args: [options.input],
        staticSummary: `Scheduled backup of etcd of user cluster ${params.userClusterName}`,
        staticDetails: BACKUP_LIMITS,
      },
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '10 minutes' },
      state: { paused: options.paused ?? false, note: options.note },
    });
  }

  /** Replaces the cadence and/or the input (retention, profile...) of a cluster's Schedule. */
  async updateBackupSchedule(
    userClusterName: string,
    change: { cadence?: BackupCadence; input?: BackupUserClusterInput },
  ): Promise<void> {
    if (change.input) validate(backupUserClusterInputSchema, change.input);
    await this.client.schedule.getHandle(backupScheduleId(userClusterName)).update((previous) => ({
      ...previous,
      spec: change.cadence ? cadenceSpec(change.cadence) : previous.spec,
      action:
        change.input && previous.action.type === 'startWorkflow'
          ? { ...previous.action, args: [change.input] }
          : previous.action,
    }));
  }

  async pauseBackupSchedule(userClusterName: string, note?: string): Promise<void> {
    await this.client.schedule.getHandle(backupScheduleId(userClusterName)).pause(note);
  }

  async unpauseBackupSchedule(userClusterName: string, note?: string): Promise<void> {
    await this.client.schedule.getHandle(backupScheduleId(userClusterName)).unpause(note);
  }

  async deleteBackupSchedule(userClusterName: string): Promise<void> {
    await this.client.schedule.getHandle(backupScheduleId(userClusterName)).delete();
  }

  backupSchedule(userClusterName: string): ScheduleHandle {
    return this.client.schedule.getHandle(backupScheduleId(userClusterName));
  }
}

function cadenceSpec(cadence: BackupCadence): ScheduleSpec {
  return 'interval' in cadence
    ? { intervals: [{ every: cadence.interval as `${number}${string}` }] }
    : { cronExpressions: cadence.cron };
}

function validate<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success)
    throw new InvalidInputError(`invalid input: ${describeIssues(result.error)}`);
  return result.data;
}

function timestamp(): string {
  return compactTimestamp(new Date());
}

/**
 * Ids are to the second: without a suffix, two starts in the same second collide and the
 * second fails with "workflow already started" instead of the cluster lock's ClusterBusy.
 */
function suffix(): string {
  return randomUUID().slice(0, 8);
}
