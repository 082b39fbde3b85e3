/**
 * The typed client: start, watch and approve backups and restores, back up the admin cluster
 * and run the runbook's automatic backup (backupAll), and manage the backup Schedules. Inputs are validated here with the same schemas the
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
import { ADMIN_BACKUP_USE, backupAdminCluster } from '../workflows/backup/backup-admin-cluster.js';
import { BACKUP_ALL_LIMITS, backupAll } from '../workflows/backup/backup-all.js';
import { BACKUP_LIMITS, backupUserCluster } from '../workflows/backup/backup-user-cluster.js';
import {
  approvalSchema,
  type BackupAdminClusterInput,
  type BackupAllInput,
  type BackupUserClusterInput,
  backupAdminClusterInputSchema,
  backupAllInputSchema,
  backupAllScheduleId,
  backupScheduleId,
  backupUserClusterInputSchema,
  type OperatorDecision,
  operationWorkflowId,
  operatorDecisionSchema,
  parseOrFail,
  type RestoreUserClusterInput,
  restoreUserClusterInputSchema,
  scheduledBackupWorkflowId,
} from '../workflows/contract/index.js';
import { approveUpdate } from '../workflows/restore/approval.js';
import { resolveProblemUpdate } from '../workflows/restore/operator.js';
import { RESTORE_LIMITS, restoreUserCluster } from '../workflows/restore/workflow.js';
import type { ClientConfig } from './config.js';

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

export interface BackupAllScheduleOptions {
  input: BackupAllInput;
  cadence: BackupCadence;
  paused?: boolean;
  note?: string;
}

export type BackupHandle = WorkflowHandleWithFirstExecutionRunId<typeof backupUserCluster>;
export type AdminBackupHandle = WorkflowHandleWithFirstExecutionRunId<typeof backupAdminCluster>;
export type BackupAllHandle = WorkflowHandleWithFirstExecutionRunId<typeof backupAll>;
export type RestoreHandle = WorkflowHandleWithFirstExecutionRunId<typeof restoreUserCluster>;

export class EtcdOpsClient {
  constructor(
    readonly client: Client,
    readonly taskQueue: string,
  ) {}

  static async connect(config: ClientConfig): Promise<EtcdOpsClient> {
    const connection = await Connection.connect(config.connection);
    return new EtcdOpsClient(
      new Client({ connection, namespace: config.namespace }),
      config.taskQueue,
    );
  }

  async close(): Promise<void> {
    await this.client.connection.close();
  }

  /** Starts a backup (SPEC B1–B4); the id says which cluster and when. */
  async startBackup(input: BackupUserClusterInput): Promise<BackupHandle> {
    const params = validate(backupUserClusterInputSchema, input);
    return this.client.workflow.start(backupUserCluster, {
      taskQueue: this.taskQueue,
      workflowId: operationWorkflowId('backup', params.userClusterName, new Date(), suffix()),
      args: [input],
      staticSummary: `Back up etcd of user cluster ${params.userClusterName}`,
      staticDetails: BACKUP_LIMITS,
    });
  }

  /** Starts a backup of the admin cluster itself: its etcd (A3) and its node's PKI (A2). */
  async startAdminBackup(input: BackupAdminClusterInput): Promise<AdminBackupHandle> {
    const params = validate(backupAdminClusterInputSchema, input);
    const name = params.adminCluster ?? 'default';
    return this.client.workflow.start(backupAdminCluster, {
      taskQueue: this.taskQueue,
      workflowId: operationWorkflowId('backup-admin', name, new Date(), suffix()),
      args: [input],
      staticSummary: `Back up admin cluster ${name} (etcd and node PKI)`,
      staticDetails: ADMIN_BACKUP_USE,
    });
  }

  /** Starts the runbook's automatic backup (A): the admin cluster and each of its user clusters. */
  async startBackupAll(input: BackupAllInput): Promise<BackupAllHandle> {
    const params = validate(backupAllInputSchema, input);
    const name = params.adminCluster ?? 'default';
    return this.client.workflow.start(backupAll, {
      taskQueue: this.taskQueue,
      workflowId: operationWorkflowId('backup-all', name, new Date(), suffix()),
      args: [input],
      staticSummary: `Back up admin cluster ${name} and its user clusters`,
      staticDetails: BACKUP_ALL_LIMITS,
    });
  }

  /** Starts a restore (SPEC R1–R9 or H1–H9). */
  async startRestore(input: RestoreUserClusterInput): Promise<RestoreHandle> {
    const params = validate(restoreUserClusterInputSchema, input);
    const from = params.backup.backupId ?? `the imported file ${params.backup.importFile}`;
    return this.client.workflow.start(restoreUserCluster, {
      taskQueue: this.taskQueue,
      workflowId: operationWorkflowId('restore', params.userClusterName, new Date(), suffix()),
      args: [input],
      staticSummary: `Restore etcd of user cluster ${params.userClusterName} from ${from}`,
      staticDetails: RESTORE_LIMITS,
    });
  }

  /** Approves a restore waiting at its approval gate (the same as the `approve` signal). */
  async approveRestore(workflowId: string, approvedBy: string): Promise<string> {
    return this.client.workflow
      .getHandle(workflowId)
      .executeUpdate(approveUpdate, { args: [validate(approvalSchema, { approvedBy })] });
  }

  /**
   * Answers a restore that waits for an operator after its point of no return: `retry`
   * runs the failed step again, `hand-over` ends the restore and lists what is not put back.
   */
  async resolveRestoreProblem(workflowId: string, decision: OperatorDecision): Promise<string> {
    return this.client.workflow.getHandle(workflowId).executeUpdate(resolveProblemUpdate, {
      args: [validate(operatorDecisionSchema, decision)],
    });
  }

  /** Creates the backup Schedule of a cluster: overlap SKIP, one at a time. */
  async createBackupSchedule(options: BackupScheduleOptions): Promise<ScheduleHandle> {
    const params = validate(backupUserClusterInputSchema, options.input);
    return this.client.schedule.create({
      scheduleId: backupScheduleId(params.userClusterName),
      spec: cadenceSpec(options.cadence),
      action: {
        type: 'startWorkflow',
        workflowType: backupUserCluster,
        taskQueue: this.taskQueue,
        workflowId: scheduledBackupWorkflowId(params.userClusterName),
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
    await this.backupSchedule(userClusterName).update((previous) => ({
      ...previous,
      spec: change.cadence ? cadenceSpec(change.cadence) : previous.spec,
      action:
        change.input && previous.action.type === 'startWorkflow'
          ? { ...previous.action, args: [change.input] }
          : previous.action,
    }));
  }

  async pauseBackupSchedule(userClusterName: string, note?: string): Promise<void> {
    await this.backupSchedule(userClusterName).pause(note);
  }

  async unpauseBackupSchedule(userClusterName: string, note?: string): Promise<void> {
    await this.backupSchedule(userClusterName).unpause(note);
  }

  async deleteBackupSchedule(userClusterName: string): Promise<void> {
    await this.backupSchedule(userClusterName).delete();
  }

  backupSchedule(userClusterName: string): ScheduleHandle {
    return this.client.schedule.getHandle(backupScheduleId(userClusterName));
  }

  /** Creates the backupAll Schedule of an admin cluster (one per admin cluster): overlap SKIP. */
  async createBackupAllSchedule(options: BackupAllScheduleOptions): Promise<ScheduleHandle> {
    const params = validate(backupAllInputSchema, options.input);
    const scheduleId = backupAllScheduleId(params.adminCluster);
    return this.client.schedule.create({
      scheduleId,
      spec: cadenceSpec(options.cadence),
      action: {
        type: 'startWorkflow',
        workflowType: backupAll,
        taskQueue: this.taskQueue,
        workflowId: scheduleId,
        args: [options.input],
        staticSummary: `Scheduled backup of admin cluster ${params.adminCluster ?? 'default'} and its user clusters`,
        staticDetails: BACKUP_ALL_LIMITS,
      },
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '10 minutes' },
      state: { paused: options.paused ?? false, note: options.note },
    });
  }

  /** The backupAll Schedule of an admin cluster (absent: the one made without a name). */
  backupAllSchedule(adminCluster?: string): ScheduleHandle {
    return this.client.schedule.getHandle(backupAllScheduleId(adminCluster));
  }
}

function cadenceSpec(cadence: BackupCadence): ScheduleSpec {
  return 'interval' in cadence
    ? { intervals: [{ every: cadence.interval as `${number}${string}` }] }
    : { cronExpressions: cadence.cron };
}

function validate<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  return parseOrFail(schema, input, (issues) => new InvalidInputError(`invalid input: ${issues}`));
}

function suffix(): string {
  return randomUUID().slice(0, 8);
}
