/**
 * The file-system repository's layout, as tests inspect it on disk:
 * `<backupDir>/<userClusterName>/<backupId>/snapshot.db` (see activities/repository/fs-store.ts).
 */
import { join } from 'node:path';

export function snapshotFileIn(
  backupDir: string,
  backup: { userClusterName: string; id: string },
): string {
  return join(backupDir, backup.userClusterName, backup.id, 'snapshot.db');
}
