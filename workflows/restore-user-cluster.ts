/** SPEC.md R1–R9 (one member) and H1–H9 (three members): restore a user cluster's etcd. */
import { ApplicationFailure } from '@temporalio/common';
import { FailureType, parseInput } from './input.js';
import {
  type RestoreUserClusterInput,
  type RestoreUserClusterResult,
  restoreUserClusterInputSchema,
} from './schemas.js';

export async function restoreUserCluster(
  input: RestoreUserClusterInput,
): Promise<RestoreUserClusterResult> {
  const params = parseInput('restoreUserCluster', restoreUserClusterInputSchema, input);
  throw ApplicationFailure.nonRetryable(
    `restoreUserCluster of ${params.userClusterName}: input is valid, but the restore is not implemented yet`,
    FailureType.NotImplemented,
  );
}
