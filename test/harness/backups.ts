/**
 * The file-system repository's layout, as tests inspect it on disk:
 * `<backupDir>/<userClusterName>/<backupId>/snapshot.db` (see activities/repository/fs-store.ts).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { BackupRecord, BackupUserClusterResult } from '../../workflows/contract/index.js';

export function snapshotFileIn(
  backupDir: string,
  backup: { userClusterName: string; id: string },
): string {
  return join(backupDir, backup.userClusterName, backup.id, 'snapshot.db');
}

/** The backup a run stored; fails the test if it stored none (skipped). */
export function stored(result: BackupUserClusterResult): BackupRecord {
  assert.equal(result.outcome, 'stored', JSON.stringify(result));
  assert.ok(result.backup);
  return result.backup;
}
