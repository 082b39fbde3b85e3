/**
 * Every name this project derives — from a cluster profile (pods, PVCs, member identities),
 * from a user cluster (lock, schedule and workflow ids) or from a time (backup ids) — and
 * the one rule for backup ids. Pure and deterministic: workflows, activities, the client
 * and the tests all build names here and nowhere else.
 */
import type { ClusterProfile } from './schemas.js';

/** The task queue worker and client use unless configured otherwise. */
export const DEFAULT_TASK_QUEUE = 'etcd-ha-restore';

/**
 * A repository host's id (REPOSITORY_HOST_ID, by default the host name): letters, digits,
 * ".", "_" and "-", at most 63 characters, so it fits in a task queue name.
 */
export const REPOSITORY_HOST_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

/**
 * The task queue of one repository host: the worker on that host polls it besides the main
 * queue, and a workflow runs there every activity that touches the repository, so one
 * backup or restore never reads or writes a repository on two hosts (the pattern of the
 * Temporal sample `worker-specific-task-queues`).
 */
export function repositoryHostTaskQueue(taskQueue: string, hostId: string): string {
  return `${taskQueue}-host-${hostId}`;
}

/**
 * A backup id: it names a directory or an object key, so letters, digits, ".", "_" and
 * "-", alphanumeric first (no leading dot or dash), at most 128 characters.
 */
export const BACKUP_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export function isBackupId(id: string): boolean {
  return BACKUP_ID_PATTERN.test(id);
}

/** `20261127T183000Z-1a2b3c4d`: UTC time first so ids sort by time, then a random suffix. */
export function formatBackupId(createdAt: Date, suffixHex: string): string {
  return `${compactTimestamp(createdAt)}-${suffixHex}`;
}

/** The id of a snapshot file imported by a restore (`backup.path`). */
export function importBackupId(restoreToken: string): string {
  return `import-${restoreToken}`;
}

/** `20261127T183000Z`: UTC, to the second, usable in ids and file names. */
export function compactTimestamp(date: Date): string {
  return date
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

/** A path in a pod: `dir` and `name` joined with one slash (node's path module is not in the sandbox). */
export function podJoin(dir: string, name: string): string {
  return `${dir.replace(/\/+$/, '')}/${name}`;
}

/** Member N's pod, which is also its etcd member name: `kube-etcd-N`. */
export function memberPodName(profile: ClusterProfile, member: number): string {
  return `${profile.etcdStatefulSet}-${member}`;
}

/** The member number of a pod name, or undefined if it is not `kube-etcd-N`. */
export function memberNumberOf(profile: ClusterProfile, podName: string): number | undefined {
  const prefix = `${profile.etcdStatefulSet}-`;
  const rest = podName.startsWith(prefix) ? podName.slice(prefix.length) : '';
  return /^\d+$/.test(rest) ? Number(rest) : undefined;
}

/** Member N's data PVC: `data-kube-etcd-N`. */
export function dataClaimName(profile: ClusterProfile, member: number): string {
  return `${profile.dataClaimPrefix}-${member}`;
}

/** Utility pod N of the runbook's manifest (R2, H5a): `etcd-utility-N`. */
export function utilityPodName(profile: ClusterProfile, member: number): string {
  return `${profile.utilityPodPrefix}-${member}`;
}

/** Member N's peer URL, from the profile's template (H5c). */
export function peerUrl(profile: ClusterProfile, member: number): string {
  return profile.peerUrlTemplate.replaceAll('{member}', String(member));
}

/** `kube-etcd-0=<peer0>,kube-etcd-1=<peer1>,...` for members 0..members-1 (H5c). */
export function initialCluster(profile: ClusterProfile, members: number): string {
  return Array.from(
    { length: members },
    (_, n) => `${memberPodName(profile, n)}=${peerUrl(profile, n)}`,
  ).join(',');
}

/** The profile as seen from member N's pods: `{member}` in the endpoint replaced by N. */
export function memberProfile(profile: ClusterProfile, member: number): ClusterProfile {
  return { ...profile, etcdEndpoint: profile.etcdEndpoint.replaceAll('{member}', String(member)) };
}

/**
 * How another pod (a utility pod) reaches member N's etcd: the profile's member client URL
 * template, and the TLS files as mounted in every utility pod.
 */
export function memberClientProfile(profile: ClusterProfile, member: number): ClusterProfile {
  return {
    ...profile,
    etcdEndpoint: profile.memberClientUrlTemplate.replaceAll('{member}', String(member)),
  };
}

/** Where the runbook's restore writes by default: `<workDir>/<name>.etcd` (H5c). */
export function defaultRestoreDataDir(profile: ClusterProfile, member: number): string {
  return podJoin(profile.workDir, `${memberPodName(profile, member)}.etcd`);
}

/**
 * B2: the snapshot file attempt N of a backup's save writes in the etcd pod. Unique to the
 * attempt: an abandoned attempt's etcdctl may still be writing its own file in the pod,
 * and two etcdctl writing one `.part` would make a snapshot of neither.
 */
export function backupSnapshotPathInPod(
  profile: Pick<ClusterProfile, 'workDir'>,
  backupId: string,
  attempt: number,
): string {
  return podJoin(profile.workDir, `snapshot-${backupId}.${attempt}.db`);
}

/** Every file attempts 1..`attempts` of a backup's save may leave in the pod, `.part` files included. */
export function backupSnapshotLeftovers(
  profile: Pick<ClusterProfile, 'workDir'>,
  backupId: string,
  attempts: number,
): string[] {
  return Array.from({ length: attempts }, (_, i) => {
    const path = backupSnapshotPathInPod(profile, backupId, i + 1);
    return [path, `${path}.part`];
  }).flat();
}

/** R3, H5b: where the snapshot to restore is copied in the utility pod (`/snapshot.db`). */
export function restoreSnapshotPathInPod(profile: ClusterProfile): string {
  return podJoin(profile.workDir, 'snapshot.db');
}

/** The ConfigMap in the user cluster's namespace where a restore records the originals. */
export const RESTORE_RECORD_CONFIGMAP = 'etcd-ha-restore-record';

/** The lock workflow of a user cluster: one backup or restore at a time. */
export function clusterLockId(userClusterName: string): string {
  return `etcd-lock-${userClusterName}`;
}

/**
 * The lock of an admin cluster's own backup. The dot keeps it apart from every user
 * cluster's lock: a user cluster's name is a DNS label, which has no dot.
 */
export function adminClusterLockId(adminCluster: string): string {
  return `etcd-lock-admin.${adminCluster}`;
}

/** The file of the admin etcd snapshot inside an admin backup (the runbook's name, A3). */
export const ADMIN_SNAPSHOT_FILE = 'admin-cluster_snapshot.db';

/** The PKI tree's top directory inside an admin backup (the runbook's `BACKUP_DIR/pki/`, A2). */
export const ADMIN_PKI_DIR = 'pki';

/** The Schedule of backupAll for an admin cluster (or the worker's only one); dot as above. */
export function backupAllScheduleId(adminCluster?: string): string {
  return adminCluster === undefined ? 'etcd-backup-all' : `etcd-backup-all.${adminCluster}`;
}

/** The child workflow of one part of a backupAll run. */
export function backupAllPartWorkflowId(
  parentWorkflowId: string,
  part: { kind: 'admin' | 'user-cluster'; name: string },
): string {
  return part.kind === 'admin'
    ? `${parentWorkflowId}/admin`
    : `${parentWorkflowId}/user-cluster/${part.name}`;
}

/** The backup Schedule of a user cluster (one per cluster). */
export function backupScheduleId(userClusterName: string): string {
  return `etcd-backup-${userClusterName}`;
}

/** The workflow id the Schedule gives its runs (Temporal appends the scheduled time). */
export function scheduledBackupWorkflowId(userClusterName: string): string {
  return `etcd-backup-${userClusterName}`;
}

/**
 * Workflow ids of backups and restores started by the client: cluster, time to the second,
 * and a random suffix, so two starts in the same second do not collide (the second would
 * fail with "workflow already started" instead of the cluster lock's ClusterBusy).
 */
export function operationWorkflowId(
  operation: 'backup' | 'restore' | 'backup-admin' | 'backup-all',
  /** The user cluster; for backup-admin and backup-all, the admin cluster. */
  name: string,
  at: Date,
  suffix: string,
): string {
  return `etcd-${operation}-${name}-${compactTimestamp(at)}-${suffix}`;
}
