/**
 * Backup ids: `20261127T183000Z-1a2b3c4d` — UTC time first so ids sort by time, then random
 * hex so two backups in the same second differ. They name directories, so they are checked
 * before they touch a path.
 */
import { randomBytes } from 'node:crypto';
import { formatBackupId } from '../workflows/naming.js';
import { dnsLabel } from '../workflows/schemas.js';
import { BackupFailureType, backupFailure } from './backup-repository-errors.js';

const BACKUP_ID = /^[A-Za-z0-9._-]+$/;

export function newBackupId(createdAt: Date = new Date()): string {
  return formatBackupId(createdAt, randomBytes(4).toString('hex'));
}

/** A backup id safe to use as one path segment (no `/`, not `.` or `..`, no leading dot). */
export function checkBackupId(id: string): string {
  if (!BACKUP_ID.test(id) || id.startsWith('.') || id.length > 128) {
    throw backupFailure(
      BackupFailureType.InvalidArgument,
      `invalid backup id ${JSON.stringify(id)}: must match ${BACKUP_ID} and not start with "."`,
    );
  }
  return id;
}

/** A user cluster name as used for its directory: a DNS label, as the schemas require. */
export function checkClusterName(name: string): string {
  if (!dnsLabel.safeParse(name).success) {
    throw backupFailure(
      BackupFailureType.InvalidArgument,
      `invalid user cluster name ${JSON.stringify(name)}: must be a DNS label`,
    );
  }
  return name;
}
