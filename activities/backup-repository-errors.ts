/**
 * How the backup repository reports what retrying cannot fix: a Temporal
 * `ApplicationFailure` marked non-retryable, with a `type` callers can test. Anything else
 * it throws (file system errors) is worth retrying and is left as it is.
 */
import { ApplicationFailure } from '@temporalio/common';

export const BackupFailureType = {
  /** No such backup, or no such staging write. */
  NotFound: 'BackupNotFound',
  /** Stored bytes or manifest do not match what was recorded. */
  Corrupt: 'BackupCorrupt',
  /** The id is already taken by a different backup, or the request contradicts it. */
  Conflict: 'BackupConflict',
  /** A malformed id, name or argument. */
  InvalidArgument: 'BackupInvalidArgument',
} as const;
export type BackupFailureType = (typeof BackupFailureType)[keyof typeof BackupFailureType];

const TYPES: ReadonlySet<string> = new Set(Object.values(BackupFailureType));

export function backupFailure(
  type: BackupFailureType,
  message: string,
  cause?: Error,
): ApplicationFailure {
  return ApplicationFailure.create({ message, type, nonRetryable: true, cause });
}

/** True for the repository's non-retryable failures (of the given type, if any). */
export function isBackupFailure(
  error: unknown,
  type?: BackupFailureType,
): error is ApplicationFailure {
  return (
    error instanceof ApplicationFailure &&
    typeof error.type === 'string' &&
    TYPES.has(error.type) &&
    (type === undefined || error.type === type)
  );
}
