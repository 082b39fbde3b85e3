/**
 * The restore's checks, as pure functions of what the activities read: whether the
 * cluster is as the runbook expects before anything changes (`checkCluster`), whether it
 * is still as the approved plan saw it (`changesSince`), whether the restored etcd is
 * right before kube-apiserver comes back (`verifyRestoredEtcd`), and whether the control
 * plane is back as it was (`verifyControlPlane`). Each check passed is one line of the
 * result; a line claims only what was checked.
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
  type ReplicaCounts,
} from '../contract/index.js';

/** Member numbers 0..n-1. */
export function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/**
 * The replica counts to put back: those an earlier, abandoned restore recorded on the
 * cluster (it left the workloads at 0), else those read now.
 */
export function originalReplicas(inventory: ClusterInventory): ReplicaCounts {
  return (
    inventory.previousRestore?.replicas ?? {
      etcd: inventory.etcdReplicas,
      apiserver: inventory.apiserverReplicas,
      maintenance: inventory.maintenanceReplicas,
    }
  );
}

/**
 * The node member N runs on: its pod's, or — when kube-etcd was stopped by a restore that
 * did not finish — the one that restore recorded.
 */
export function memberNode(inventory: ClusterInventory, n: number): string | undefined {
  return (
    inventory.members.find((m) => m.member === n)?.nodeName ??
    inventory.previousRestore?.memberNodes[String(n)]
  );
}

/**
 * Whether stopping kube-etcd can be undone. OrderedReady starts pods in order, each once the
 * one before is Ready: if a member that was not Ready (corrupt, crash-looping) has a lower
 * number than one that was, scaling back starts the broken one and never the healthy one
 * above it. Then stopping etcd is the restore's point of no return, and comes after it.
 */
export function stopIsPointOfNoReturn(inventory: ClusterInventory, members: number): boolean {
  if (inventory.etcdStatefulSet.podManagementPolicy !== 'OrderedReady') return false;
  const ready = (n: number) => inventory.members.find((m) => m.member === n)?.ready === true;
  return range(members).some((i) => !ready(i) && range(members).some((j) => j > i && ready(j)));
}

/**
 * The number of members to restore, after checking the cluster is as the runbook expects:
 * 1 or 3 members, each with a pod on its own existing node, and each with its PVC; and a
 * kube-etcd the restore can start again (OrderedReady with a readiness probe that goes
 * through etcd's client API cannot: kube-etcd-0 never becomes Ready alone, so kube-etcd-1
 * is never created — such a StatefulSet cannot have been created with three members either).
 * Fails (ClusterState, non-retryable) listing every problem; nothing has been changed then.
 */
export function checkCluster(
  inventory: ClusterInventory,
  asked: 1 | 3 | undefined,
  profile: ClusterProfile,
): number {
  const originals = originalReplicas(inventory);
  const members = asked ?? originals.etcd;
  const etcd = profile.etcdStatefulSet;
  const problems: string[] = [];
  if (members !== 1 && members !== 3)
    problems.push(`${etcd} has ${members} replicas; only 1 or 3 can be restored`);
  if (asked !== undefined && asked !== originals.etcd) {
    problems.push(
      `members: the input says ${asked}, the ${etcd} StatefulSet has ${originals.etcd}`,
    );
  }
  for (const n of range(members)) {
    const name = memberPodName(profile, n);
    const node = memberNode(inventory, n);
    if (!node) problems.push(`${name} has no pod on a node: its node cannot be known`);
    else if (!inventory.nodes.includes(node))
      problems.push(`node ${node} of ${name} does not exist`);
    const claim = dataClaimName(profile, n);
    if (!inventory.dataClaims.includes(claim)) problems.push(`PVC ${claim} does not exist`);
  }
  const nodes = range(members).map((n) => memberNode(inventory, n));
  if (new Set(nodes).size !== nodes.length) problems.push('two members run on the same node');
  const shape = inventory.etcdStatefulSet;
  if (members > 1 && shape.podManagementPolicy === 'OrderedReady' && shape.readiness === 'quorum') {
    problems.push(
      `${etcd} has podManagementPolicy OrderedReady and a readiness probe a member cannot pass before its cluster has a quorum (${shape.readinessProbe}): ` +
        `after a restore ${memberPodName(profile, 0)} serves no client until a second member runs, ` +
        `and the StatefulSet does not create ${memberPodName(profile, 1)} before ${memberPodName(profile, 0)} is Ready. ` +
        'Give it podManagementPolicy Parallel (the field is immutable: delete the StatefulSet with --cascade=orphan and re-create it) ' +
        "or a probe a member passes alone (a TCP check, or etcd's /health?serializable=true on etcd 3.5 and later, as kubeadm has), then restore",
    );
  }
  if (problems.length > 0) {
    throw ApplicationFailure.nonRetryable(
      `the cluster is not as the runbook expects; nothing was changed: ${problems.join('; ')}`,
      FailureType.ClusterState,
    );
  }
  return members;
}

/** What differs between the cluster the plan was made for and the cluster now. */
export function changesSince(
  planned: ClusterInventory,
  now: ClusterInventory,
  members: number,
): string[] {
  const differences: string[] = [];
  const same = (what: string, a: unknown, b: unknown) => {
    if (JSON.stringify(a) !== JSON.stringify(b))
      differences.push(`${what}: ${JSON.stringify(a)} then, ${JSON.stringify(b)} now`);
  };
  same('replicas', originalReplicas(planned), originalReplicas(now));
  same('etcd Secret', planned.secretName, now.secretName);
  same('PVCs', planned.dataClaims, now.dataClaims);
  same('PodDisruptionBudget present', planned.pdbPresent, now.pdbPresent);
  same('kube-etcd pod management and probe', planned.etcdStatefulSet, now.etcdStatefulSet);
  same(
    'stopping kube-etcd can be undone',
    !stopIsPointOfNoReturn(planned, members),
    !stopIsPointOfNoReturn(now, members),
  );
  for (const n of range(members)) {
    const node = (i: ClusterInventory) => memberNode(i, n);
    same(`node of member ${n}`, node(planned), node(now));
  }
  return differences;
}

export interface RestoredEtcd {
  members: number;
  /** What the backup recorded: its revision and, if measured, its keyspace fingerprint. */
  record: { revision: number; keyCount?: number; kvHash?: number; kvHashCompactRevision?: number };
  health: EtcdHealthReport;
  /** The restored members' keyspace at the snapshot's revision. */
  keyspace: Pick<KeyspaceAt, 'keyCount' | 'hashes'>;
}

/**
 * Before H7: every member healthy, one cluster ID, as many distinct member IDs as members,
 * revision at least the snapshot's, the snapshot's key count, every member the same hash —
 * and the backup's hash where it is comparable: hashkv covers the revisions after the
 * compact revision it reports, so it is compared only when the restored members and the
 * backup's reading report the same one (a compaction between the snapshot and the reading
 * would make a correct restore look wrong). The first check that fails ends the step as
 * VerificationFailed, saying what was found.
 */
export function verifyRestoredEtcd(v: RestoredEtcd): string[] {
  const lines: string[] = [];
  const healthy = v.health.health.filter((h) => h.health).length;
  if (healthy !== v.members) fail(`${healthy} of ${v.members} members healthy`);
  lines.push(`${healthy}/${v.members} members healthy`);
  if (new Set(v.health.clusterIds).size !== 1)
    fail(`members report cluster IDs ${v.health.clusterIds.join(', ')}`);
  lines.push(`one cluster ID (${v.health.clusterIds[0]})`);
  const memberIds = new Set(v.health.memberIds);
  if (memberIds.size !== v.members)
    fail(`${memberIds.size} distinct member IDs for ${v.members} members`);
  lines.push(`${v.members} distinct member IDs`);
  const lowest = Math.min(...v.health.revisions);
  const { revision } = v.record;
  if (lowest < revision) fail(`revision ${lowest} is below the snapshot's ${revision}`);
  lines.push(`revision ${lowest} ≥ the snapshot's ${revision}`);

  if (v.record.keyCount !== undefined) {
    if (v.keyspace.keyCount !== v.record.keyCount)
      fail(
        `${v.keyspace.keyCount} keys at revision ${revision}, the backup recorded ${v.record.keyCount}`,
      );
    lines.push(`${v.keyspace.keyCount} keys at revision ${revision}, as recorded at backup`);
  } else {
    lines.push(
      `${v.keyspace.keyCount} keys at revision ${revision} (the backup recorded no count to compare)`,
    );
  }

  const { hashes } = v.keyspace;
  const distinct = new Set(hashes.map((h) => `${h.hash}@${h.compactRevision}`));
  if (hashes.length !== v.members || distinct.size !== 1)
    fail(`members disagree on the keyspace at revision ${revision}: ${JSON.stringify(hashes)}`);
  const [{ hash, compactRevision } = { hash: 0, compactRevision: 0 }] = hashes;
  const sameKeyspace = `every member has hashkv ${hash} at revision ${revision}`;
  if (v.record.kvHash === undefined) {
    lines.push(
      `${sameKeyspace}; not compared with the backup: it recorded no hash (an imported snapshot)`,
    );
  } else if (v.record.kvHashCompactRevision !== compactRevision) {
    lines.push(
      `${sameKeyspace}; not compared with the backup's: it was read at compact revision ${v.record.kvHashCompactRevision ?? 'unknown'}, ` +
        `the restored members are at ${compactRevision} (a compaction ran between the snapshot and the reading)`,
    );
  } else {
    if (hash !== v.record.kvHash)
      fail(
        `keyspace hash ${hash} at revision ${revision} differs from the backup's ${v.record.kvHash} (both at compact revision ${compactRevision})`,
      );
    lines.push(`${sameKeyspace}, as recorded at backup (compact revision ${compactRevision})`);
  }
  return lines;
}

/** After H9: the workloads back to the counts they had, and the PDB back if there was one. */
export function verifyControlPlane(v: {
  originals: ReplicaCounts;
  after: ClusterInventory;
  pdbSaved: boolean;
  profile: ClusterProfile;
}): string[] {
  const lines: string[] = [];
  const { profile, originals, after } = v;
  for (const [what, before, now] of [
    [profile.etcdStatefulSet, originals.etcd, after.etcdReplicas],
    [profile.apiserverStatefulSet, originals.apiserver, after.apiserverReplicas],
    [profile.maintenanceDeployment, originals.maintenance, after.maintenanceReplicas],
  ] as const) {
    if (before !== now) fail(`${what} has ${now} replicas, had ${before}`);
    lines.push(`${what} back to ${now} replicas`);
  }
  if (v.pdbSaved && !after.pdbPresent) fail('the PodDisruptionBudget is missing');
  if (v.pdbSaved)
    lines.push('PodDisruptionBudget present again (re-created from the one saved at H2)');
  return lines;
}

function fail(message: string): never {
  throw ApplicationFailure.nonRetryable(
    `restore verification failed: ${message}`,
    FailureType.VerificationFailed,
  );
}

/**
 * Like Promise.all, but rejects (with the first failure) only once every promise settled:
 * a step over several members never re-runs while one of them is still at work.
 */
export async function settleAll<T>(promises: Array<Promise<T>>): Promise<T[]> {
  const settled = await Promise.allSettled(promises);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
}
