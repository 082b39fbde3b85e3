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
  type AnsweringMember,
  type BackupRecord,
  BUMP_REVISION_SINCE,
  type ClusterInventory,
  type ClusterProfile,
  type CompactionProbe,
  compareEtcdVersions,
  dataClaimName,
  type EtcdHealthReport,
  etcdMinor,
  FailureType,
  hasBumpRevision,
  type KeyspaceAt,
  memberPodName,
  parseEtcdVersion,
  type ReplicaCounts,
  type RestoreUserClusterParams,
  type RevisionBump,
  revisionBump,
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

// ---------------------------------------------------------------------------------------
// Which etcd the cluster runs, where the snapshot came from, and the revision bump

/** The etcd version the cluster to restore runs, and how that is known (H1, H4). */
export interface TargetEtcd {
  version?: string;
  /** Where the version was read, for people. */
  from: string;
  /** The newest revision a member still reports: how far its clients may have seen. */
  liveRevision?: number;
}

/**
 * The version a member still answering says it runs (`endpoint status`), else the one the
 * kube-etcd image's tag names (a hint: a tag is a name), else unknown.
 */
export function targetEtcd(
  inventory: ClusterInventory,
  answering: AnsweringMember | undefined,
): TargetEtcd {
  if (answering)
    return {
      version: answering.version,
      from: `${answering.pod} reports it (endpoint status)`,
      liveRevision: answering.revision,
    };
  const member = inventory.members.find((m) => m.image !== undefined);
  const image = member?.image ?? '';
  const name = image.split('@')[0] ?? '';
  const tag =
    name.lastIndexOf(':') > name.lastIndexOf('/') ? name.slice(name.lastIndexOf(':') + 1) : '';
  const version = parseEtcdVersion(tag);
  if (member && version)
    return {
      version: `${version.major}.${version.minor}.${version.patch}`,
      from: `the image tag of ${member.name} (${image}) says so; no member answered endpoint status`,
    };
  return { from: 'unknown: no member answered endpoint status and the image tag names no version' };
}

/**
 * Before anything changes: the backup was taken from this cluster (same admin cluster, same
 * namespace uid) and from an etcd minor no newer than the one the cluster runs. Refused
 * (ForeignSnapshot, NewerEtcd; non-retryable) naming the difference, unless the input
 * allows it; returns the lines for the plan and the result: what was checked, what was
 * allowed, and what could not be checked (an import has no provenance).
 */
export function checkProvenance(
  record: BackupRecord,
  here: { adminCluster: string; namespaceUid: string; userClusterName: string },
  target: TargetEtcd,
  allow: Pick<RestoreUserClusterParams, 'allowForeignSnapshot' | 'allowNewerEtcd'>,
): { checked: string[]; notes: string[] } {
  const checked: string[] = [];
  const notes: string[] = [];
  const p = record.provenance;
  const runs = target.version
    ? `etcd ${target.version} (${target.from})`
    : `etcd of unknown version (${target.from})`;
  if (!p) {
    notes.push(
      record.origin === 'imported'
        ? `an imported snapshot has no provenance: which cluster and etcd version it came from was not checked; the cluster runs ${runs}`
        : `backup ${record.id} records no provenance (taken before it was recorded): its cluster and etcd version were not checked; the cluster runs ${runs}`,
    );
    return { checked, notes };
  }
  const foreign: string[] = [];
  if (p.adminCluster !== here.adminCluster)
    foreign.push(`it was taken in admin cluster ${p.adminCluster}, this is ${here.adminCluster}`);
  if (p.namespaceUid !== here.namespaceUid)
    foreign.push(
      `it was taken from namespace uid ${p.namespaceUid}, namespace ${here.userClusterName} now has uid ${here.namespaceUid} (deleted and made again, or another cluster)`,
    );
  if (foreign.length > 0) {
    if (!allow.allowForeignSnapshot)
      throw ApplicationFailure.nonRetryable(
        `backup ${record.id} is from another cluster: ${foreign.join('; ')}. Nothing was changed; ` +
          'restore it anyway with allowForeignSnapshot: true',
        FailureType.ForeignSnapshot,
      );
    notes.push(
      `allowed by allowForeignSnapshot: backup ${record.id} is from another cluster: ${foreign.join('; ')}`,
    );
  } else {
    checked.push(
      `backup ${record.id} was taken from this cluster (admin cluster ${p.adminCluster}, namespace uid ${p.namespaceUid})`,
    );
  }
  const from = parseEtcdVersion(p.etcdVersion);
  const to = parseEtcdVersion(target.version);
  if (!from || !to) {
    notes.push(
      `the snapshot is from etcd ${p.etcdVersion}; the cluster runs ${runs}: not compared`,
    );
  } else if (compareEtcdVersions({ ...from, patch: 0 }, { ...to, patch: 0 }) > 0) {
    const why = `the snapshot is from etcd ${p.etcdVersion}, a newer minor than the ${runs} of the cluster`;
    if (!allow.allowNewerEtcd)
      throw ApplicationFailure.nonRetryable(
        `${why}: etcd ${etcdMinor(to)} may not read data of ${etcdMinor(from)}. Nothing was changed; ` +
          'upgrade the cluster first, or restore it anyway with allowNewerEtcd: true',
        FailureType.NewerEtcd,
      );
    notes.push(`allowed by allowNewerEtcd: ${why}`);
  } else {
    checked.push(
      `the snapshot is from etcd ${p.etcdVersion}, not newer than the cluster's ${runs}`,
    );
  }
  return { checked, notes };
}

/**
 * Without a revision bump the restored revision is the snapshot's, below what the
 * cluster's clients have seen: a watch resumed from a newer resourceVersion waits, then
 * skips the events numbered up to it (kubernetes #107457, #118501). kube-apiserver itself
 * is restarted by the restore (scaled to 0 and back), so its watch cache starts over.
 */
export function noBumpAdvice(revision: number, why: string): string {
  return (
    `the revision is not raised (${why}): etcd is back at revision ${revision}, below the resourceVersions the user cluster's clients have seen, ` +
    'and informers resuming from those may miss events silently (kubernetes #107457, #118501). kube-apiserver was restarted by the restore; ' +
    'restart everything else that watches the user cluster: kube-controller-manager, kube-scheduler, the kubelet on every node ' +
    '(systemctl restart kubelet), kube-proxy, the CNI and DNS pods, and every controller and operator, so they list again'
  );
}

/** Whether, and how far, this restore raises the revision (decided before approval). */
export interface RevisionPlan {
  /** The bump to use where the utility image's etcdutl can (absent: none, see `line`). */
  bump?: RevisionBump;
  /** The cluster runs etcd ≥ 3.5.10: a utility image that cannot bump is refused (MissingTools). */
  required: boolean;
  /** For the plan: what will be done and what it means. */
  line: string;
}

/**
 * The revision bump: on etcd 3.5.10 and later `etcdutl snapshot restore --bump-revision N
 * --mark-compacted`, N from `revisionBump`; on older etcd none (its restore tools have no
 * such flags); for an etcd of unknown version, if the utility image's etcdutl can.
 */
export function planRevision(record: BackupRecord, target: TargetEtcd, now: number): RevisionPlan {
  const version = parseEtcdVersion(target.version);
  const bump = revisionBump({
    snapshotRevision: record.revision,
    takenAt: record.origin === 'taken' ? record.createdAt : undefined,
    revisionsPerSecond: record.revisionsPerSecond,
    liveRevision: target.liveRevision,
    now,
  });
  const sized = `by ${bump.amount} (${bump.reasons.join('; ')}) and marked compacted (etcdutl snapshot restore --bump-revision --mark-compacted)`;
  if (version && !hasBumpRevision(version))
    return {
      required: false,
      line: noBumpAdvice(
        record.revision,
        `etcd ${target.version} has no --bump-revision; it came with etcdutl ${BUMP_REVISION_SINCE}`,
      ),
    };
  if (version)
    return {
      bump,
      required: true,
      line: `the revision is raised from ${record.revision} ${sized}: clients' older resourceVersions are refused as compacted, and they list again`,
    };
  return {
    bump,
    required: false,
    line: `the revision is raised from ${record.revision} ${sized} if the utility image's etcdutl is ${BUMP_REVISION_SINCE} or later (checked in its pod before anything is destroyed); if not, ${noBumpAdvice(record.revision, 'no etcdutl that can')}`,
  };
}

export interface RestoredEtcd {
  members: number;
  /** What the backup recorded: its revision and, if measured, its keyspace fingerprint. */
  record: { revision: number; keyCount?: number; kvHash?: number; kvHashCompactRevision?: number };
  health: EtcdHealthReport;
  /**
   * The restored members' keyspace: at the snapshot's revision, or — after a revision
   * bump, which compacts everything below the bumped revision — at the current one.
   */
  keyspace: Pick<KeyspaceAt, 'keyCount' | 'hashes'>;
  /** The bump the restore used (etcdutl --bump-revision N --mark-compacted); absent: none. */
  bump?: number;
  /** Reads and watches at revisions between the snapshot's and the bumped one (compactionProbeRevisions). */
  probes?: CompactionProbe[];
}

/**
 * Where to prove that old resourceVersions are refused after a bump: the first revision
 * after the snapshot's, and the newest one the broken cluster had reached (the live
 * member's revision, when one answered H1), else the last one below the bumped revision.
 * --mark-compacted compacts at one revision, below which all are gone: the two ends of the
 * range clients can hold stand for everything between.
 */
export function compactionProbeRevisions(
  snapshotRevision: number,
  bump: number,
  preRestoreRevision: number | undefined,
): number[] {
  const bumped = snapshotRevision + bump;
  const newest =
    preRestoreRevision !== undefined &&
    preRestoreRevision > snapshotRevision &&
    preRestoreRevision < bumped
      ? preRestoreRevision
      : bumped - 1;
  return [...new Set([snapshotRevision + 1, newest])];
}

/**
 * Before H7: every member healthy, one cluster ID, as many distinct member IDs as members,
 * the revision where it must be, the backup's key count, every member the same hash — and
 * the backup's hash where it is comparable: hashkv covers the revisions after the compact
 * revision it reports, so it is compared only when the restored members and the backup's
 * reading report the same one (a compaction between the snapshot and the reading would
 * make a correct restore look wrong). After a revision bump the members are compacted at
 * the bumped revision, so the keyspace is read at the current revision (nothing writes:
 * kube-apiserver and maintenance are at 0), its hash is not comparable with the backup's,
 * and a read below the bumped revision must be refused as compacted. The first check that
 * fails ends the step as VerificationFailed, saying what was found.
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
  const bumped = v.bump !== undefined ? revision + v.bump : undefined;
  if (bumped === undefined) {
    if (lowest < revision) fail(`revision ${lowest} is below the snapshot's ${revision}`);
    lines.push(`revision ${lowest} ≥ the snapshot's ${revision}`);
  } else {
    if (lowest < bumped)
      fail(`revision ${lowest} is below the snapshot's ${revision} + the bump ${v.bump}`);
    lines.push(
      `revision ${lowest} ≥ the snapshot's ${revision} + ${v.bump} (raised by etcdutl --bump-revision)`,
    );
  }
  const at = bumped === undefined ? `revision ${revision}` : `the current revision ${lowest}`;

  if (v.record.keyCount !== undefined) {
    if (v.keyspace.keyCount !== v.record.keyCount)
      fail(`${v.keyspace.keyCount} keys at ${at}, the backup recorded ${v.record.keyCount}`);
    lines.push(
      bumped === undefined
        ? `${v.keyspace.keyCount} keys at revision ${revision}, as recorded at backup`
        : `${v.keyspace.keyCount} keys at ${at} (kube-apiserver and maintenance at 0: nothing writes), as recorded at backup at revision ${revision}`,
    );
  } else {
    lines.push(`${v.keyspace.keyCount} keys at ${at} (the backup recorded no count to compare)`);
  }

  const { hashes } = v.keyspace;
  const distinct = new Set(hashes.map((h) => `${h.hash}@${h.compactRevision}`));
  if (hashes.length !== v.members || distinct.size !== 1)
    fail(`members disagree on the keyspace at ${at}: ${JSON.stringify(hashes)}`);
  const [{ hash, compactRevision } = { hash: 0, compactRevision: 0 }] = hashes;
  const sameKeyspace = `every member has hashkv ${hash} at ${at}`;
  if (bumped !== undefined) {
    if (compactRevision < bumped)
      fail(
        `the members' compact revision is ${compactRevision}, not the bumped ${bumped} (--mark-compacted)`,
      );
    lines.push(
      `${sameKeyspace}, compacted at ${compactRevision} (--mark-compacted); not compared with the backup's: ` +
        'a hash covers the revisions after the compact revision, and the restored members are compacted at the bumped one',
    );
    const probes = v.probes ?? [];
    if (probes.length === 0) fail('no read or watch below the bumped revision was tried');
    for (const p of probes) {
      if (!p.read.refused || !p.watch.refused)
        fail(
          `at revision ${p.revision}, below the bumped ${bumped}, etcd did not refuse as compacted: ` +
            `a read ${p.read.refused ? 'was refused' : `was not (${p.read.detail})`}, a watch ${p.watch.refused ? 'was refused' : `was not (${p.watch.detail})`}`,
        );
      lines.push(
        `a read and a watch at revision ${p.revision}, between the snapshot's ${revision} and the bumped ${bumped}, ` +
          `are refused as compacted (${p.watch.detail}): clients holding older resourceVersions list again`,
      );
    }
  } else if (v.record.kvHash === undefined) {
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
