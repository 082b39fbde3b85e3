/**
 * Command-line flags → workflow inputs, validated with the workflows' own schemas before
 * anything connects; a bad one names the field and the flag it came from.
 */
import { InvalidArgumentError } from 'commander';
import type { z } from 'zod';
import {
  type BackupAdminClusterInput,
  type BackupAllInput,
  type BackupUserClusterInput,
  backupAdminClusterInputSchema,
  backupAllInputSchema,
  backupUserClusterInputSchema,
  parseOrFail,
  type RestoreUserClusterInput,
  restoreUserClusterInputSchema,
} from '../../workflows/contract/index.js';
import { type BackupCadence, InvalidInputError } from '../client.js';

/** Flags every operation on a cluster takes: names, which the worker resolves. */
export interface TargetOptions {
  cluster: string;
  adminCluster?: string;
  repository?: string;
}

export interface BackupOptions extends TargetOptions {
  sourceMember?: number;
  keepLast?: number;
}

export interface AdminBackupOptions {
  adminCluster?: string;
  repository?: string;
  keepLast?: number;
}

export interface BackupAllOptions extends AdminBackupOptions {
  cluster?: string[];
  maxConcurrent?: number;
}

export interface RestoreOptions extends TargetOptions {
  version: string;
  backupId?: string;
  importFile?: string;
  members?: number;
  requireApproval?: boolean;
  approvalTimeout?: string;
  deleteOldDataImmediately?: boolean;
}

/** The flag each input field comes from, so a message names both. */
const FLAG_OF: Record<string, string> = {
  userClusterName: '--cluster',
  adminCluster: '--admin-cluster',
  repository: '--repository',
  sourceMember: '--source-member',
  retention: '--keep-last',
  gkeOnPremVersion: '--version',
  backup: '--backup-id/--import-file',
  members: '--members',
  approvalTimeout: '--approval-timeout',
  userClusterNames: '--cluster',
  maxConcurrent: '--max-concurrent',
};

export function validated<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  return parseOrFail(schema, input, (issues, error) => {
    const flags = [...new Set(error.issues.map((i) => FLAG_OF[String(i.path[0])]).filter(Boolean))];
    const hint = flags.length > 0 ? ` (check ${flags.join(', ')})` : '';
    return new InvalidInputError(`invalid input: ${issues}${hint}`);
  });
}

export function integer(name: string) {
  return (value: string): number => {
    if (!/^-?\d+$/.test(value)) throw new InvalidArgumentError(`${name} must be an integer.`);
    return Number(value);
  };
}

/** The input fields the target flags give, over `base` (a Schedule's current input). */
function targetFields(o: TargetOptions, base: Record<string, unknown> = {}) {
  return {
    ...base,
    userClusterName: o.cluster,
    ...(o.adminCluster !== undefined ? { adminCluster: o.adminCluster } : {}),
    ...(o.repository !== undefined ? { repository: o.repository } : {}),
  };
}

/**
 * A backup's input from its flags. With `base` (the Schedule's current input), only the
 * flags given change it; `--keep-last` keeps the retention's other settings.
 */
export function backupInput(
  o: BackupOptions,
  base: Record<string, unknown> = {},
): BackupUserClusterInput {
  const retention =
    typeof base.retention === 'object' && base.retention !== null ? base.retention : {};
  const input = {
    ...targetFields(o, base),
    ...(o.sourceMember !== undefined ? { sourceMember: o.sourceMember } : {}),
    ...(o.keepLast !== undefined ? { retention: { ...retention, keepLast: o.keepLast } } : {}),
  };
  validated(backupUserClusterInputSchema, input);
  return input as BackupUserClusterInput;
}

function adminFields(o: AdminBackupOptions, base: Record<string, unknown>) {
  const retention =
    typeof base.retention === 'object' && base.retention !== null ? base.retention : {};
  return {
    ...base,
    ...(o.adminCluster !== undefined ? { adminCluster: o.adminCluster } : {}),
    ...(o.repository !== undefined ? { repository: o.repository } : {}),
    ...(o.keepLast !== undefined ? { retention: { ...retention, keepLast: o.keepLast } } : {}),
  };
}

export function adminBackupInput(o: AdminBackupOptions): BackupAdminClusterInput {
  const input = adminFields(o, {});
  validated(backupAdminClusterInputSchema, input);
  return input as BackupAdminClusterInput;
}

/** backupAll's input from its flags; over `base` (a Schedule's input) only the flags given change it. */
export function backupAllInput(
  o: BackupAllOptions,
  base: Record<string, unknown> = {},
): BackupAllInput {
  const input = {
    ...adminFields(o, base),
    ...(o.cluster !== undefined ? { userClusterNames: o.cluster } : {}),
    ...(o.maxConcurrent !== undefined ? { maxConcurrent: o.maxConcurrent } : {}),
  };
  validated(backupAllInputSchema, input);
  return input as BackupAllInput;
}

export function restoreInput(o: RestoreOptions): RestoreUserClusterInput {
  const input = {
    ...targetFields(o),
    gkeOnPremVersion: o.version,
    backup: {
      ...(o.backupId !== undefined ? { backupId: o.backupId } : {}),
      ...(o.importFile !== undefined ? { importFile: o.importFile } : {}),
    },
    ...(o.members !== undefined ? { members: o.members } : {}),
    requireApproval: o.requireApproval ?? false,
    ...(o.approvalTimeout !== undefined ? { approvalTimeout: o.approvalTimeout } : {}),
    deleteOldDataImmediately: o.deleteOldDataImmediately ?? false,
  };
  validated(restoreUserClusterInputSchema, input);
  return input as RestoreUserClusterInput;
}

/** Whether any flag that changes a backup's input was given (schedule update). */
export function changesBackupInput(o: BackupOptions): boolean {
  return [o.adminCluster, o.repository, o.sourceMember, o.keepLast].some((v) => v !== undefined);
}

export function cadenceOf(
  o: { every?: string; cron?: string },
  required: boolean,
): BackupCadence | undefined {
  if (o.every !== undefined && o.cron !== undefined)
    throw new InvalidInputError('cadence: give either --every or --cron, not both');
  if (o.every !== undefined) {
    if (!/^\d+(\.\d+)?(ms|s|m|h|d)$/.test(o.every))
      throw new InvalidInputError(
        `every: must be a duration such as 30m, 6h or 1d, got ${JSON.stringify(o.every)}`,
      );
    return { interval: o.every };
  }
  if (o.cron !== undefined) {
    if (o.cron.trim().split(/\s+/).length !== 5)
      throw new InvalidInputError(
        `cron: must have 5 fields (minute hour day month weekday), got ${JSON.stringify(o.cron)}`,
      );
    return { cron: [o.cron.trim()] };
  }
  if (required)
    throw new InvalidInputError('cadence: give --every (e.g. 6h) or --cron (e.g. "0 */6 * * *")');
  return undefined;
}
