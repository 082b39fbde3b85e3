/**
 * SPEC.md B1–B4 (and A1, the runbook's "automatic backup"): snapshot a user cluster's
 * etcd and keep it outside the cluster, verified, with a manifest; then apply retention.
 *
 * Where the snapshot is taken. As the runbook does, in the member's etcd pod (exec,
 * etcdctl against its own member, then a copy out with `tail`) when its image has a shell
 * and the tools (ETCD_POD_BACKUP_TOOLS). Upstream etcd images from 3.5 on are distroless:
 * no shell, so nothing can be copied out of them nor removed in them. Then the snapshot is
 * taken from a utility pod (the runbook's R2 manifest without the data volume, on the
 * member's node, the etcd Secret mounted) over the member's client URL, copied out of it
 * the same way (verified by the snapshot's own sha256 trailer), and the pod deleted — also
 * when the backup fails or is cancelled. Which etcd binary runs what follows the versions
 * found in the pod that runs it (chooseEtcdTools: etcdutl for `snapshot status` from 3.5).
 *
 * The manifest records where the snapshot came from (provenance: admin cluster, namespace
 * uid, the member's etcd version, cluster and member ids), so that a restore can refuse a
 * snapshot of another cluster or of a newer etcd, and the revisions per second the member
 * made meanwhile, which sizes the restore's revision bump.
 *
 * The keyspace fingerprint a restore checks against (key count and hashkv at the
 * snapshot's revision) is recorded with the compact revision hashkv reports: a compaction
 * between the snapshot and the hash changes the hash, and a restore compares only hashes
 * taken at the same compact revision (see workflows/restore/checks.ts).
 */
import {
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import { LONG_ATTEMPTS, long, quick, repositoryHost } from '../activities.js';
import { acquireClusterLock, type ClusterLock } from '../cluster-lock.js';
import {
  type BackupUserClusterInput,
  type BackupUserClusterParams,
  type BackupUserClusterResult,
  backupSnapshotLeftovers,
  backupUserClusterInputSchema,
  type ClusterProfile,
  type ClusterRef,
  chooseEtcdTools,
  ETCD_POD_BACKUP_TOOLS,
  type EtcdToolChoice,
  type EtcdToolVersions,
  FailureType,
  failureTypeOf,
  formatBackupId,
  memberClientProfile,
  memberProfile,
  type OnBusy,
  type PodRef,
  parseWorkflowInput,
  type SnapshotSource,
  TemporalScheduledById,
  UTILITY_POD_BACKUP_TOOLS,
  utilityPodName,
} from '../contract/index.js';
import { recordBackupStored } from '../metrics.js';
import { describeError, Progress } from '../progress.js';

/** How long a utility pod may take to start, or to go. */
const WAIT_MS = 10 * 60_000;

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
  // What to clean up, set before it exists: a file in the etcd pod, or a utility pod.
  let cleanUp: (() => Promise<unknown>) | undefined;
  // B3, B4, verification and retention all run on the host that keeps the repository.
  const repository = repositoryHost(target.repository);
  try {
    progress.step('B1 preflight: namespace, etcd Secret, a ready member to snapshot');
    const source = await quick.findSnapshotSource.executeWithOptions(
      { summary: 'B1 find a ready etcd member' },
      [{ ...cluster, profile, member: params.sourceMember }],
    );
    progress.fact('source', `${source.pod} on node ${source.nodeName ?? '?'} (${source.reason})`);
    const runner = await whereToSnapshot(
      params,
      backupId,
      profile,
      cluster,
      source,
      progress,
      (c) => {
        cleanUp = c;
      },
    );
    const { pod, connection, choice } = runner;
    progress.fact('etcd tools', `${pod.pod}: ${choice.description}`);

    // What the member says of itself: provenance, and the first reading of its revision rate.
    const before = await quick.readEtcdMemberStatus.executeWithOptions(
      { summary: `etcdctl endpoint status and member list of ${source.pod}` },
      [{ ...pod, profile: connection, memberList: true }],
    );
    const startedAt = Date.now();
    progress.fact(
      'etcd',
      `version ${before.version}, cluster id ${before.clusterId}, member id ${before.memberId}, revision ${before.revision}`,
    );

    progress.step(`B2 etcdctl snapshot save in ${pod.pod}`);
    const snapshot = await long.saveSnapshotInPod.executeWithOptions(
      { summary: `B2 etcdctl snapshot save in ${pod.pod}` },
      [{ ...pod, profile: connection, backupId, tools: choice.tools }],
    );
    const pathInPod = snapshot.path;
    const { revision, totalKey, hash } = snapshot.status;
    progress.fact(
      'snapshot',
      `${pathInPod}: revision ${revision}, ${totalKey} keys (${choice.offline}), ${snapshot.sizeBytes} bytes`,
    );
    // Read at once: kube-apiserver compacts revisions older than its interval (5 min).
    const keyspace = await long.readKeyspaceAt
      .executeWithOptions({ summary: `keyspace of ${source.pod} at revision ${revision}` }, [
        { ...pod, profile: connection, revision, cluster: false },
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
      { summary: `B3 copy ${pod.pod}:${pathInPod} to backup ${backupId}` },
      [{ ...backup, source: { ...pod, path: pathInPod } }],
    );
    progress.fact(
      'copied',
      `${copy.sizeBytes} bytes, sha256 ${copy.sha256} (resumed from ${copy.resumedFromBytes})`,
    );
    const after = await quick.readEtcdMemberStatus.executeWithOptions(
      { summary: `etcdctl endpoint status of ${source.pod}: its revision now` },
      [{ ...pod, profile: connection }],
    );
    const seconds = (Date.now() - startedAt) / 1000;
    const revisionsPerSecond =
      seconds > 0 ? Math.max(0, after.revision - before.revision) / seconds : undefined;

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
            provenance: {
              adminCluster: target.adminCluster,
              namespaceUid: source.namespaceUid,
              etcdVersion: before.version,
              clusterId: before.clusterId,
              memberId: before.memberId,
              memberIds: before.memberIds ?? [before.memberId],
            },
            ...(revisionsPerSecond !== undefined ? { revisionsPerSecond } : {}),
            totalKeysCountedBy: choice.offline,
            toolVersions: {
              workflow: 'backupUserCluster/3',
              snapshotTakenIn: runner.where,
              ...runner.versions,
            },
          },
        },
      ],
    );
    const verified = await repo.long.verifyBackup.executeWithOptions(
      { summary: `verify backup ${backupId}` },
      [backup],
    );
    for (const check of verified.checks) progress.note(`verified: ${check}`);

    progress.step(`remove ${pathInPod} from ${pod.pod}`);
    // The backup is stored and verified: a file or pod left behind is worth a warning, not a failure.
    await cleanUp?.().catch((error: unknown) => {
      warnings.push(`${pathInPod} may be left in ${pod.pod}: ${describeError(error)}`);
    });
    cleanUp = undefined;

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
      // Leave nothing behind: the snapshot file (or its .part) in the pod, a utility pod, a staged copy.
      await cleanUp?.().catch(() => {});
      await repository()
        .then((repo) => repo.quick.abortBackup(backup))
        .catch(() => {});
    });
    throw error;
  } finally {
    await CancellationScope.nonCancellable(() => lock.release());
  }
}

/** Where B2 and B3 run, and how etcdctl there reaches the member. */
interface SnapshotRunner {
  pod: PodRef;
  connection: ClusterProfile;
  choice: EtcdToolChoice;
  versions: EtcdToolVersions;
  where: 'etcd pod' | 'utility pod';
}

/**
 * B2's first question: can the member's etcd pod take the snapshot itself (a shell, the
 * copy's tools, an etcdctl — and etcdutl where etcdctl has no `snapshot status`)? Then
 * there, as the runbook does. If not (MissingTools: a distroless image), from a utility
 * pod on the member's node over its client URL; its image is checked the same way, and
 * what it lacks fails the backup before anything is saved. `cleanUp` is handed what
 * removes the backup's traces: the snapshot files in the etcd pod, or the utility pod.
 */
async function whereToSnapshot(
  params: BackupUserClusterParams,
  backupId: string,
  profile: ClusterProfile,
  cluster: ClusterRef,
  source: SnapshotSource,
  progress: Progress,
  cleanUp: (c: () => Promise<unknown>) => void,
): Promise<SnapshotRunner> {
  const etcdPod = { ...cluster, pod: source.pod, container: profile.etcdContainer };
  progress.step(`B2 can ${source.pod} take the snapshot itself: the tools of its image`);
  const inEtcdPod = await quick.checkPodTools
    .executeWithOptions({ summary: `B2 the tools a backup runs in ${source.pod}` }, [
      { ...etcdPod, tools: ETCD_POD_BACKUP_TOOLS },
    ])
    .then((versions) => ({
      versions,
      choice: chooseEtcdTools(versions, `the image of ${source.pod}`),
    }))
    .catch((error: unknown) => {
      if (failureTypeOf(error) !== FailureType.MissingTools) throw error;
      return describeError(error);
    });
  if (typeof inEtcdPod !== 'string') {
    cleanUp(() =>
      quick.removeFilesInPod({
        ...etcdPod,
        paths: backupSnapshotLeftovers(profile, backupId, LONG_ATTEMPTS),
      }),
    );
    return {
      pod: etcdPod,
      // etcdctl in the pod talks to its own member (see memberProfile).
      connection: memberProfile(profile, source.member),
      ...inEtcdPod,
      where: 'etcd pod',
    };
  }

  const name = utilityPodName(profile, source.member);
  const tag = params.gkeOnPremVersion ?? source.utilityImageTag;
  if (tag === undefined || source.nodeName === undefined) {
    throw ApplicationFailure.nonRetryable(
      `${inEtcdPod}; a utility pod could take the snapshot instead, but ${
        tag === undefined
          ? `the input names no gkeOnPremVersion and ${profile.maintenanceDeployment} runs no ${profile.utilityImageRepository} image to take the tag from`
          : `${source.pod} has no node`
      }`,
      FailureType.MissingTools,
    );
  }
  progress.note(`${inEtcdPod}: the snapshot is taken from utility pod ${name} instead`);
  progress.step(
    `B2 utility pod ${name} on ${source.nodeName}: it reads ${source.pod} over its client URL`,
  );
  const deletePod = () =>
    quick.deletePod.executeWithOptions({ summary: `delete utility pod ${name}` }, [
      { ...cluster, name, timeoutMs: WAIT_MS },
    ]);
  cleanUp(deletePod);
  await quick.ensureUtilityPod.executeWithOptions({ summary: `B2 utility pod ${name}` }, [
    {
      ...cluster,
      member: source.member,
      nodeName: source.nodeName,
      gkeOnPremVersion: tag,
      secretName: source.secretName,
      profile,
      timeoutMs: WAIT_MS,
      purpose: 'backup',
    },
  ]);
  const pod = { ...cluster, pod: name, container: profile.utilityContainer };
  const versions = await quick.checkPodTools.executeWithOptions(
    { summary: `B2 the tools a backup runs in ${name}` },
    [{ ...pod, tools: UTILITY_POD_BACKUP_TOOLS }],
  );
  return {
    pod,
    connection: memberClientProfile(profile, source.member),
    versions,
    choice: chooseEtcdTools(versions, `the utility image of ${name}`),
    where: 'utility pod',
  };
}
