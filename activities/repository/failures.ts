/**
 * How the backup store reports what retrying cannot fix: a non-retryable
 * ApplicationFailure of one of the backup failure types. Anything else it throws (file
 * system errors) is worth retrying and is left as it is.
 */
import { ApplicationFailure } from '@temporalio/common';
import { BACKUP_FAILURE_TYPES, type FailureType } from '../../workflows/contract/index.js';

export type BackupFailureType =
  | typeof FailureType.BackupNotFound
  | typeof FailureType.BackupCorrupt
  | typeof FailureType.BackupConflict
  | typeof FailureType.BackupInvalidArgument;

export function backupFailure(
  type: BackupFailureType,
  message: string,
  cause?: Error,
): ApplicationFailure {
  return ApplicationFailure.create({ message, type, nonRetryable: true, cause });
}

/** True for the store's non-retryable failures (of the given type, if any). */
export function isBackupFailure(
  error: unknown,
  type?: BackupFailureType,
): error is ApplicationFailure {
  return (
    error instanceof ApplicationFailure &&
    typeof error.type === 'string' &&
    BACKUP_FAILURE_TYPES.has(error.type) &&
    (type === undefined || error.type === type)
  );
}
