/** SPEC.md B1–B4: snapshot a user cluster's etcd and keep it outside the cluster. */
import { ApplicationFailure } from '@temporalio/common';
import { FailureType, parseInput } from './input.js';
import {
  type BackupUserClusterInput,
  type BackupUserClusterResult,
  backupUserClusterInputSchema,
} from './schemas.js';

export async function backupUserCluster(
  input: BackupUserClusterInput,
): Promise<BackupUserClusterResult> {
  const params = parseInput('backupUserCluster', backupUserClusterInputSchema, input);
  throw ApplicationFailure.nonRetryable(
    `backupUserCluster of ${params.userClusterName}: input is valid, but the backup is not implemented yet`,
    FailureType.NotImplemented,
  );
}
