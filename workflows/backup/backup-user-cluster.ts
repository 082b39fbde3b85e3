/**
 * SPEC.md B1–B4 (and A1, the runbook's "automatic backup"): snapshot a user cluster's
 * etcd and keep it outside the cluster, verified, with a manifest; then apply retention.
 *
 * The keyspace fingerprint a restore checks against (key count and hashkv at the
 * snapshot's revision) is recorded with the compact revision hashkv reports: a compaction
 * between the snapshot and the hash changes the hash, and a restore compares only hashes
 * taken at the same compact revision (see workflows/restore/checks.ts).
 */
import { CancellationScope, isCancellation, uuid4, workflowInfo } from '@temporalio/workflow';
import { LONG_ATTEMPTS, long, quick, repositoryHost } from '../activities.js';
import { acquireClusterLock, type ClusterLock } from '../cluster-lock.js';
import {
  type BackupUserClusterInput,
  type BackupUserClusterResult,
  backupSnapshotLeftovers,
  backupUserClusterInputSchema,
  ETCD_POD_BACKUP_TOOLS,
  FailureType,
  failureTypeOf,
  formatBackupId,
  memberProfile,
  type OnBusy,
  parseWorkflowInput,
  TemporalScheduledById,
} from '../contract/index.js';
import { recordBackupStored } from '../metrics.js';
import { describeError, Progress } from '../progress.js';

/** Whether a busy cluster is skipped (`onBusy`; by default only in a run a Schedule started). */
export function skipsWhenBusy(onBusy: OnBusy | undefined): boolean {
  return onBusy
    ? onBusy === 'skip'
    : workflowInfo().typedSearchAttributes.get(TemporalScheduledById) !== undefined;
}

/** The runbook's limits, shown wherever a person looks at a backup. */
export const BACKUP_LIMITS =
  'Not in this backup: application data and PersistentVolumes of the user cluster. ' +
  'Workloads scheduled after it are not restored by it.';

export async function backupUserCluster(
  input: BackupUserClusterInput,
): Promise<BackupUserClusterResult> {
  const params = parseWorkflowInput('backupUserCluster', backupUserClusterInputSchema, input);
  const { userClusterName } = params;
  const progress = new Progress(
    'backup',
    userClusterName,
    `Backup of user cluster ${userClusterName}`,
    BACKUP_LIMITS,
  );
  const backupId = formatBackupId(new Date(), uuid4().slice(0, 8));
  progress.fact('backup id', backupId);
  const warnings: string[] = [];

  let lock: ClusterLock;
  let target: Awaited<ReturnType<typeof quick.resolveTarget>>;
  try {
    progress.step('which admin cluster and repository: the worker resolves the names');
    target = await quick.resolveTarget.executeWithOptions({ summary: 'resolve the names' }, [
      {
        adminCluster: params.adminCluster,
        repository: params.repository,
        userClusterName,
      },
    ]);
    progress.fact('admin cluster', target.adminCluster);
    progress.fact('repository', target.repository);
    progress.step('lock: one backup or restore of this cluster at a time');
    lock = await acquireClusterLock(userClusterName, 'backup');
  } catch (error) {
    // A scheduled run that finds the cluster busy (a restore, a manual backup) skips: the
    // schedule is not painted red by a restore; any other refusal is a failure.
    if (
      skipsWhenBusy(params.onBusy) &&
      (error as { type?: string }).type === FailureType.ClusterBusy
    ) {
      progress.finish('skipped-busy', `skipped: ${describeError(error)}`);
      return { outcome: 'skipped-busy', prunedBackupIds: [], warnings: [describeError(error)] };
    }
    // Say so, or the Web UI would list this run as running for ever.
    progress.finish('failed', `backup refused: ${describeError(error)}`);
    throw error;
  }
  const { profile } = target;
  const cluster = { adminCluster: target.adminCluster, namespace: userClusterName };
  const backup = { repository: target.repository, userClusterName, backupId };
  // Every file the save's attempts may leave in the pod: removed at the end, whatever happens.
  const leftovers = backupSnapshotLeftovers(profile, backupId, LONG_ATTEMPTS);
  // B3, B4, verification and retention all run on the host that keeps the repository.
  const repository = repositoryHost(target.repository);
  let sourcePod: { pod: string; container: string } | undefined;
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
    await quick.checkPodTools.executeWithOptions(
      { summary: `B2 the tools a backup runs in ${source.pod}` },
      [{ ...pod, tools: ETCD_POD_BACKUP_TOOLS }],
    );
    // From here the pod may hold this backup's files: they are removed whatever happens.
    sourcePod = { pod: source.pod, container: profile.etcdContainer };

    progress.step(`B2 etcdctl snapshot save in ${source.pod}`);
    const snapshot = await long.saveSnapshotInPod.executeWithOptions(
      { summary: `B2 etcdctl snapshot save in ${source.pod}` },
      [{ ...pod, profile: sourceProfile, backupId }],
    );
    const pathInPod = snapshot.path;
    const { revision, totalKey, hash } = snapshot.status;
    progress.fact(
      'snapshot',
      `${pathInPod}: revision ${revision}, ${totalKey} keys, ${snapshot.sizeBytes} bytes`,
    );
    // Read at once: kube-apiserver compacts revisions older than its interval (5 min).
    const keyspace = await long.readKeyspaceAt
      .executeWithOptions({ summary: `keyspace of ${source.pod} at revision ${revision}` }, [
        { ...pod, profile: sourceProfile, revision, cluster: false },
      ])
      .catch((error: unknown) => {
        if (failureTypeOf(error) !== FailureType.RevisionCompacted) throw error;
        warnings.push(
          `revision ${revision} was compacted before its keyspace could be read: the backup records no key count ` +
            'and no hash, and a restore from it cannot compare them',
        );
        return undefined;
      });
    const fingerprint = keyspace?.hashes[0];
    if (keyspace)
      progress.fact(
        'keyspace',
        `${keyspace.keyCount} keys at revision ${revision}, hashkv ${fingerprint?.hash} at compact revision ${fingerprint?.compactRevision}`,
      );

    progress.step('B3 copy the snapshot out of the pod, hashing it on the way');
    const repo = await repository();
    if (repo.host) progress.fact('repository host', repo.host);
    const copy = await repo.long.copySnapshotToRepository.executeWithOptions(
      { summary: `B3 copy ${source.pod}:${pathInPod} to backup ${backupId}` },
      [{ ...backup, source: { ...pod, path: pathInPod } }],
    );
    progress.fact(
      'copied',
      `${copy.sizeBytes} bytes, sha256 ${copy.sha256} (resumed from ${copy.resumedFromBytes})`,
    );

    progress.step('B4 store the backup outside the cluster, with its manifest');
    const record = await repo.long.commitBackup.executeWithOptions(
      { summary: `B4 store backup ${backupId}` },
      [
        {
          ...backup,
          record: {
            member: source.member,
            sourcePod: source.pod,
            createdAt: new Date().toISOString(),
            sha256: copy.sha256,
            sizeBytes: copy.sizeBytes,
            revision,
            totalKeys: totalKey,
            etcdHash: hash,
            ...(keyspace ? { keyCount: keyspace.keyCount } : {}),
            ...(fingerprint
              ? { kvHash: fingerprint.hash, kvHashCompactRevision: fingerprint.compactRevision }
              : {}),
            origin: 'taken',
            toolVersions: { workflow: 'backupUserCluster/2' },
          },
        },
      ],
    );
    const verified = await repo.long.verifyBackup.executeWithOptions(
      { summary: `verify backup ${backupId}` },
      [backup],
    );
    for (const check of verified.checks) progress.note(`verified: ${check}`);

    progress.step(`remove ${pathInPod} from ${source.pod}`);
    // The backup is stored and verified: a file left in the pod is worth a warning, not a failure.
    await quick.removeFilesInPod({ ...pod, paths: leftovers }).catch((error: unknown) => {
      warnings.push(`${pathInPod} may be left in ${source.pod}: ${describeError(error)}`);
    });
    sourcePod = undefined;

    let prunedBackupIds: string[] = [];
    if (params.retention) {
      progress.step(`retention: keep the newest ${params.retention.keepLast}`);
      prunedBackupIds = await repo.quick.pruneBackups({ ...backup, policy: params.retention });
      progress.fact('pruned', prunedBackupIds.join(', ') || 'none');
    }
    const lost = lock.lost();
    if (lost) warnings.push(`the cluster lock was lost during the backup: ${lost}`);
    for (const warning of warnings) progress.note(`warning: ${warning}`);
    recordBackupStored(userClusterName, record.sizeBytes);
    progress.finish('succeeded', `backup ${backupId} stored and verified`);
    return { outcome: 'stored', backup: record, prunedBackupIds, warnings };
  } catch (error) {
    progress.finish(
      isCancellation(error) ? 'cancelled' : 'failed',
      `backup failed: ${describeError(error)}`,
    );
    await CancellationScope.nonCancellable(async () => {
      // Leave nothing behind: the snapshot file (or its .part) in the pod, a staged copy.
      if (sourcePod) {
        await quick
          .removeFilesInPod({ ...cluster, ...sourcePod, paths: leftovers })
          .catch(() => {});
      }
      await repository()
        .then((repo) => repo.quick.abortBackup(backup))
        .catch(() => {});
    });
    throw error;
  } finally {
    await CancellationScope.nonCancellable(() => lock.release());
  }
}
