/**
 * SPEC.md B1–B4 (and A1, the runbook's "automatic backup"): snapshot a user cluster's
 * etcd and keep it outside the cluster, verified, with a manifest; then apply retention.
 */
import { CancellationScope, isCancellation, uuid4 } from '@temporalio/workflow';
import { long, quick } from '../activities.js';
import { acquireClusterLock } from '../cluster-lock.js';
import {
  type BackupUserClusterInput,
  type BackupUserClusterResult,
  backupSnapshotPathInPod,
  backupUserClusterInputSchema,
  formatBackupId,
  memberProfile,
  parseWorkflowInput,
} from '../contract/index.js';
import { describeError, Progress } from '../progress.js';

/** The runbook's limits, shown wherever a person looks at a backup. */
export const BACKUP_LIMITS =
  'Not in this backup: application data and PersistentVolumes of the user cluster. ' +
  'Workloads scheduled after it are not restored by it.';

export async function backupUserCluster(
  input: BackupUserClusterInput,
): Promise<BackupUserClusterResult> {
  const params = parseWorkflowInput('backupUserCluster', backupUserClusterInputSchema, input);
  const { userClusterName, profile } = params;
  const progress = new Progress(
    'backup',
    userClusterName,
    `Backup of user cluster ${userClusterName}`,
    BACKUP_LIMITS,
  );
  const cluster = { adminKubeconfig: params.adminKubeconfig, namespace: userClusterName };
  const repository = { backupDir: params.backupDir, userClusterName };
  const backupId = formatBackupId(new Date(), uuid4().slice(0, 8));
  progress.fact('backup id', backupId);

  progress.step('lock: one backup or restore of this cluster at a time');
  let release: () => Promise<void>;
  try {
    release = await acquireClusterLock(userClusterName, 'backup');
  } catch (error) {
    // Refused (ClusterBusy): say so, or the Web UI would list this run as running forever.
    progress.finish('failed', `backup refused: ${describeError(error)}`);
    throw error;
  }
  let snapshotInPod: { pod: string; path: string } | undefined;
  try {
    progress.step('B1 preflight: namespace, etcd Secret, a ready member to snapshot');
    const source = await quick.findSnapshotSource.executeWithOptions(
      { summary: 'B1 find a ready etcd member' },
      [{ ...cluster, profile, member: params.sourceMember }],
    );
    progress.fact('source', `${source.pod} on node ${source.nodeName ?? '?'} (${source.reason})`);
    const pod = { ...cluster, pod: source.pod, container: profile.etcdContainer };
    // etcdctl in the pod talks to its own member (see memberProfile).
    const sourceProfile = memberProfile(profile, source.member);

    progress.step(`B2 etcdctl snapshot save in ${source.pod}`);
    const path = backupSnapshotPathInPod(profile, backupId);
    snapshotInPod = { pod: source.pod, path };
    const snapshot = await long.saveSnapshotInPod.executeWithOptions(
      { summary: `B2 etcdctl snapshot save ${path} in ${source.pod}` },
      [{ ...pod, profile: sourceProfile, path }],
    );
    const { revision, totalKey, hash } = snapshot.status;
    progress.fact(
      'snapshot',
      `revision ${revision}, ${totalKey} keys, ${snapshot.sizeBytes} bytes, sha256 ${snapshot.sha256}`,
    );
    const keyspace = await quick.readKeyspaceAt.executeWithOptions(
      { summary: `keyspace of ${source.pod} at revision ${revision}` },
      [{ ...pod, profile: sourceProfile, revision, cluster: false }],
    );

    progress.step('B3 copy the snapshot out of the pod');
    const copy = await long.copySnapshotToRepository.executeWithOptions(
      { summary: `B3 copy ${source.pod}:${path} to backup ${backupId}` },
      [{ ...repository, backupId, source: { ...pod, path } }],
    );
    progress.fact('copied', `${copy.sizeBytes} bytes (resumed from ${copy.resumedFromBytes})`);

    progress.step('B4 store the backup outside the cluster, with its manifest');
    const backup = await quick.commitBackup.executeWithOptions(
      { summary: `B4 store backup ${backupId}` },
      [
        {
          ...repository,
          backupId,
          record: {
            member: source.member,
            sourcePod: source.pod,
            createdAt: new Date().toISOString(),
            sha256: snapshot.sha256,
            sizeBytes: snapshot.sizeBytes,
            revision,
            totalKeys: totalKey,
            etcdHash: hash,
            keyCount: keyspace.keyCount,
            kvHash: keyspace.hashes[0]?.hash,
            toolVersions: { workflow: 'backupUserCluster/1' },
          },
        },
      ],
    );
    const verified = await quick.verifyBackup.executeWithOptions(
      { summary: `verify backup ${backupId}` },
      [{ ...repository, backupId }],
    );
    for (const check of verified.checks) progress.note(`verified: ${check}`);

    progress.step(`remove ${path} from ${source.pod}`);
    await quick.removeFileInPod({ ...pod, path });
    snapshotInPod = undefined;

    let prunedBackupIds: string[] = [];
    if (params.retention) {
      progress.step(`retention: keep the newest ${params.retention.keepLast}`);
      prunedBackupIds = await quick.pruneBackups({ ...repository, policy: params.retention });
      progress.fact('pruned', prunedBackupIds.join(', ') || 'none');
    }
    progress.finish('succeeded', `backup ${backupId} stored and verified`);
    return { backup, prunedBackupIds };
  } catch (error) {
    progress.finish(
      isCancellation(error) ? 'cancelled' : 'failed',
      `backup failed: ${describeError(error)}`,
    );
    await CancellationScope.nonCancellable(async () => {
      // Leave nothing behind: the snapshot file in the pod, a half-copied staging file.
      if (snapshotInPod) {
        await quick
          .removeFileInPod({ ...cluster, ...snapshotInPod, container: profile.etcdContainer })
          .catch(() => {});
      }
      await quick.abortBackup({ ...repository, backupId }).catch(() => {});
    });
    throw error;
  } finally {
    await CancellationScope.nonCancellable(release);
  }
}
