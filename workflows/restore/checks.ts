/**
 * The restore's checks, as pure functions of what the activities read: whether the
 * cluster is as the runbook expects before anything changes (`checkCluster`), and whether
 * the restored cluster is right before the restore reports success (`verifyRestore`).
 */
import { ApplicationFailure } from '@temporalio/common';
import {
  type ClusterInventory,
  type ClusterProfile,
  dataClaimName,
  type EtcdHealthReport,
  FailureType,
  type KeyspaceAt,
  memberPodName,
} from '../contract/index.js';

/** Member numbers 0..n-1. */
export function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/**
 * The number of members to restore, after checking the cluster is as the runbook expects:
 * 1 or 3 members, each with a pod on its own existing node, and each with its PVC. Fails
 * (ClusterState, non-retryable) listing every problem; nothing has been changed then.
 */
export function checkCluster(
  inventory: ClusterInventory,
  asked: 1 | 3 | undefined,
  profile: ClusterProfile,
): number {
  const members = asked ?? inventory.etcdReplicas;
  const etcd = profile.etcdStatefulSet;
  const problems: string[] = [];
  if (members !== 1 && members !== 3)
    problems.push(`${etcd} has ${members} replicas; only 1 or 3 can be restored`);
  if (asked !== undefined && asked !== inventory.etcdReplicas) {
    problems.push(
      `members: the input says ${asked}, the ${etcd} StatefulSet has ${inventory.etcdReplicas}`,
    );
  }
  for (const n of range(members)) {
    const pod = inventory.members.find((m) => m.member === n);
    const name = memberPodName(profile, n);
    if (!pod?.nodeName) problems.push(`${name} has no pod on a node: its node cannot be known`);
    else if (!inventory.nodes.includes(pod.nodeName))
      problems.push(`node ${pod.nodeName} of ${name} does not exist`);
    const claim = dataClaimName(profile, n);
    if (!inventory.dataClaims.includes(claim)) problems.push(`PVC ${claim} does not exist`);
  }
  const nodes = range(members).map((n) => inventory.members.find((m) => m.member === n)?.nodeName);
  if (new Set(nodes).size !== nodes.length) problems.push('two members run on the same node');
  if (problems.length > 0) {
    throw ApplicationFailure.nonRetryable(
      `the cluster is not as the runbook expects; nothing was changed: ${problems.join('; ')}`,
      FailureType.ClusterState,
    );
  }
  return members;
}

export interface VerifyInput {
  members: number;
  /** What the backup recorded: the snapshot's revision and, if measured, its keyspace. */
  record: { revision: number; keyCount?: number; kvHash?: number };
  health: EtcdHealthReport;
  keyspace: Pick<KeyspaceAt, 'keyCount' | 'hashes'>;
  before: ClusterInventory;
  after: ClusterInventory;
  pdbSaved: boolean;
  profile: ClusterProfile;
}

/**
 * The end-of-restore checks; each passed check is one line of the result. The first that
 * fails ends the restore as VerificationFailed (non-retryable), saying what was found.
 */
export function verifyRestore(v: VerifyInput): string[] {
  const lines: string[] = [];
  const fail = (message: string): never => {
    throw ApplicationFailure.nonRetryable(
      `restore verification failed: ${message}`,
      FailureType.VerificationFailed,
    );
  };
  const healthy = v.health.health.filter((h) => h.health).length;
  if (healthy !== v.members) fail(`${healthy} of ${v.members} members healthy`);
  lines.push(`${healthy}/${v.members} members healthy`);
  if (new Set(v.health.clusterIds).size !== 1)
    fail(`members report cluster IDs ${v.health.clusterIds.join(', ')}`);
  lines.push(`one cluster ID (${v.health.clusterIds[0]})`);
  const lowest = Math.min(...v.health.revisions);
  if (lowest < v.record.revision)
    fail(`revision ${lowest} is below the snapshot's ${v.record.revision}`);
  lines.push(`revision ${lowest} ≥ the snapshot's ${v.record.revision}`);
  const hashes = new Set(v.keyspace.hashes.map((h) => h.hash));
  if (v.keyspace.hashes.length !== v.members || hashes.size !== 1) {
    fail(
      `members disagree on the keyspace at revision ${v.record.revision}: ${JSON.stringify(v.keyspace.hashes)}`,
    );
  }
  if (v.record.kvHash !== undefined && !hashes.has(v.record.kvHash)) {
    fail(
      `keyspace hash ${[...hashes][0]} at revision ${v.record.revision} differs from the backup's ${v.record.kvHash}`,
    );
  }
  lines.push(
    `every member holds the snapshot's keyspace at revision ${v.record.revision} (hashkv ${[...hashes][0]}${v.record.kvHash !== undefined ? ', as recorded at backup' : ''})`,
  );
  if (v.record.keyCount !== undefined && v.keyspace.keyCount !== v.record.keyCount) {
    fail(
      `${v.keyspace.keyCount} keys at revision ${v.record.revision}, the backup recorded ${v.record.keyCount}`,
    );
  }
  lines.push(`${v.keyspace.keyCount} keys at revision ${v.record.revision}`);
  const { profile } = v;
  for (const [what, before, after] of [
    [profile.etcdStatefulSet, v.before.etcdReplicas, v.after.etcdReplicas],
    [profile.apiserverStatefulSet, v.before.apiserverReplicas, v.after.apiserverReplicas],
    [profile.maintenanceDeployment, v.before.maintenanceReplicas, v.after.maintenanceReplicas],
  ] as const) {
    if (before !== after) fail(`${what} has ${after} replicas, had ${before}`);
    lines.push(`${what} back to ${after} replicas`);
  }
  if (v.pdbSaved && !v.after.pdbPresent) fail('the PodDisruptionBudget is missing');
  if (v.pdbSaved) lines.push('PodDisruptionBudget re-created with its saved spec');
  return lines;
}
