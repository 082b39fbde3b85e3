/**
 * SPEC A2 and A3, the admin-cluster half of the runbook's automatic backup script, as one
 * backup of kind `admin` in the repository: the PKI directory of the admin control-plane
 * node (A2), streamed over SSH with its host key checked and nothing changed on the node,
 * and a snapshot of the admin cluster's own etcd (A3), copied and verified as a user
 * cluster's is. The manifest lists every file with its size, its mode on the node and its
 * sha256.
 *
 * This product does not restore an admin cluster: the backup is what the vendor's
 * admin-cluster restore procedure needs (see ADMIN_BACKUP_USE).
 */
import { CancellationScope, isCancellation, uuid4 } from '@temporalio/workflow';
import {
  LONG_ATTEMPTS,
  long,
  quick,
  type RepositoryProxies,
  repositoryHost,
} from '../activities.js';
import { acquireAdminClusterLock, type ClusterLock } from '../cluster-lock.js';
import {
  ADMIN_SNAPSHOT_FILE,
  type AdminBackupEntry,
  type AdminTarget,
  type BackupAdminClusterInput,
  type BackupAdminClusterResult,
  backupAdminClusterInputSchema,
  backupSnapshotLeftovers,
  chooseEtcdTools,
  ETCD_POD_BACKUP_TOOLS,
  FailureType,
  failureTypeOf,
  formatBackupId,
  parseWorkflowInput,
} from '../contract/index.js';
import { recordAdminBackupStored } from '../metrics.js';
import { describeError, Progress } from '../progress.js';
import { skipsWhenBusy } from './backup-user-cluster.js';

/** What an admin backup is for, shown wherever a person looks at one. */
export const ADMIN_BACKUP_USE =
  "Holds the admin cluster's etcd snapshot (admin-cluster_snapshot.db) and the PKI of its " +
  "control-plane node (pki/): what the vendor's admin-cluster restore procedure needs. " +
  'This product does not restore an admin cluster.';

export async function backupAdminCluster(
  input: BackupAdminClusterInput,
): Promise<BackupAdminClusterResult> {
  const params = parseWorkflowInput('backupAdminCluster', backupAdminClusterInputSchema, input);
  const progress = new Progress(
    'admin-backup',
    undefined,
    `Backup of admin cluster ${params.adminCluster ?? "(the worker's only one)"}`,
    ADMIN_BACKUP_USE,
  );
  const backupId = formatBackupId(new Date(), uuid4().slice(0, 8));
  progress.fact('backup id', backupId);
  const warnings: string[] = [];

  let target: AdminTarget;
  let lock: ClusterLock;
  try {
    progress.step('which admin cluster, repository and node: the worker resolves the names');
    target = await quick.resolveAdminTarget.executeWithOptions({ summary: 'resolve the names' }, [
      { adminCluster: params.adminCluster, repository: params.repository },
    ]);
    progress.adminCluster(target.adminCluster);
    progress.fact('repository', target.repository);
    progress.step('lock: one backup of this admin cluster at a time');
    lock = await acquireAdminClusterLock(target.adminCluster, 'admin-backup');
  } catch (error) {
    if (
      skipsWhenBusy(params.onBusy) &&
      (error as { type?: string }).type === FailureType.ClusterBusy
    ) {
      progress.finish('skipped-busy', `skipped: ${describeError(error)}`);
      return { outcome: 'skipped-busy', prunedBackupIds: [], warnings: [describeError(error)] };
    }
    progress.finish('failed', `admin backup refused: ${describeError(error)}`);
    throw error;
  }

  const backup = { repository: target.repository, adminCluster: target.adminCluster, backupId };
  // Every file the save's attempts may leave in the pod: removed at the end, whatever happens.
  const leftovers = backupSnapshotLeftovers(target.etcd, backupId, LONG_ATTEMPTS);
  // A2, A3's copy, the commit, verification and retention run on the host that keeps the repository.
  const repository = repositoryHost(target.repository);
  let etcdPod: { pod: string; container: string } | undefined;
  try {
    const repo = await repository();
    if (repo.host) progress.fact('repository host', repo.host);
    const pki = await copyPkiA2(target, backup, progress, repo);
    const etcd = await snapshotAdminEtcdA3(
      target,
      backup,
      progress,
      repo,
      (pod) => {
        etcdPod = pod;
      },
      (warning) => warnings.push(warning),
    );

    progress.step('store the admin backup, with its manifest');
    const snapshotEntry: AdminBackupEntry = {
      path: ADMIN_SNAPSHOT_FILE,
      type: 'file',
      mode: '0600',
      sizeBytes: etcd.record.sizeBytes,
      sha256: etcd.record.sha256,
    };
    const record = await repo.long.commitAdminBackup.executeWithOptions(
      { summary: `store admin backup ${backupId}` },
      [
        {
          ...backup,
          record: {
            createdAt: new Date().toISOString(),
            ...(etcd.kubernetesVersion ? { kubernetesVersion: etcd.kubernetesVersion } : {}),
            etcd: etcd.record,
            pki: {
              directory: pki.directory,
              viaJumpHost: pki.viaJumpHost,
              fileCount: pki.fileCount,
              totalBytes: pki.totalBytes,
            },
            files: [snapshotEntry, ...pki.entries],
            toolVersions: { workflow: 'backupAdminCluster/1' },
          },
        },
      ],
    );
    const verified = await repo.long.verifyAdminBackup.executeWithOptions(
      { summary: `verify admin backup ${backupId}` },
      [backup],
    );
    for (const check of verified.checks) progress.note(`verified: ${check}`);

    progress.step(`remove the snapshot from ${etcd.record.sourcePod}`);
    if (etcdPod) {
      const pod = {
        adminCluster: target.adminCluster,
        namespace: target.etcd.namespace,
        ...etcdPod,
      };
      await quick.removeFilesInPod({ ...pod, paths: leftovers }).catch((error: unknown) => {
        warnings.push(`the snapshot may be left in ${pod.pod}: ${describeError(error)}`);
      });
      etcdPod = undefined;
    }

    let prunedBackupIds: string[] = [];
    if (params.retention) {
      progress.step(`retention: keep the newest ${params.retention.keepLast} admin backups`);
      prunedBackupIds = await repo.quick.pruneAdminBackups({
        repository: target.repository,
        adminCluster: target.adminCluster,
        policy: params.retention,
      });
      progress.fact('pruned', prunedBackupIds.join(', ') || 'none');
    }
    const lost = lock.lost();
    if (lost) warnings.push(`the admin cluster's lock was lost during the backup: ${lost}`);
    for (const warning of warnings) progress.note(`warning: ${warning}`);
    recordAdminBackupStored(target.adminCluster);
    progress.finish('succeeded', `admin backup ${backupId} stored and verified`);
    return { outcome: 'stored', backup: record, prunedBackupIds, warnings };
  } catch (error) {
    progress.finish(
      isCancellation(error) ? 'cancelled' : 'failed',
      `admin backup failed: ${describeError(error)}`,
    );
    await CancellationScope.nonCancellable(async () => {
      if (etcdPod) {
        await quick
          .removeFilesInPod({
            adminCluster: target.adminCluster,
            namespace: target.etcd.namespace,
            ...etcdPod,
            paths: leftovers,
          })
          .catch(() => {});
      }
      await repository()
        .then((repo) => repo.quick.abortAdminBackup(backup))
        .catch(() => {});
    });
    throw error;
  } finally {
    await CancellationScope.nonCancellable(() => lock.release());
  }
}

type AdminBackupRefOf = { repository: string; adminCluster: string; backupId: string };

/** A2: the node's PKI directory, over SSH as a tar stream, into the backup. */
async function copyPkiA2(
  target: AdminTarget,
  backup: AdminBackupRefOf,
  progress: Progress,
  repo: RepositoryProxies,
) {
  progress.step(
    `A2 copy ${target.pki.directory} of the admin control-plane node over SSH${target.pki.viaJumpHost ? ' through the jump host' : ''}`,
  );
  const pki = await repo.long.copyAdminPkiToRepository.executeWithOptions(
    { summary: `A2 stream ${target.pki.directory} of the admin node over SSH (tar)` },
    [backup],
  );
  progress.fact('PKI', `${pki.fileCount} files, ${pki.totalBytes} bytes, from ${pki.directory}`);
  return pki;
}

/** A3: snapshot the admin etcd in its pod (kubeadm's paths), read its facts, copy it out. */
async function snapshotAdminEtcdA3(
  target: AdminTarget,
  backup: AdminBackupRefOf,
  progress: Progress,
  repo: RepositoryProxies,
  saved: (pod: { pod: string; container: string }) => void,
  warn: (warning: string) => void,
) {
  progress.step(
    `A3 find the admin etcd pod (${target.etcd.podLabelSelector} in ${target.etcd.namespace})`,
  );
  const source = await quick.findAdminEtcdSource.executeWithOptions(
    { summary: 'A3 find the admin etcd pod' },
    [{ adminCluster: target.adminCluster, etcd: target.etcd }],
  );
  progress.fact(
    'admin etcd',
    `${source.pod} on node ${source.nodeName ?? '?'} (${source.image ?? 'image ?'})`,
  );
  const pod = {
    adminCluster: target.adminCluster,
    namespace: target.etcd.namespace,
    pod: source.pod,
    container: source.container,
  };

  // The admin etcd is kubeadm's static pod: its image has a shell as the copy needs, and the
  // etcd binaries its version brings (etcdutl for `snapshot status` from 3.5 on).
  const versions = await quick.checkPodTools.executeWithOptions(
    { summary: `A3 the tools a backup runs in ${source.pod}` },
    [{ ...pod, tools: ETCD_POD_BACKUP_TOOLS }],
  );
  const choice = chooseEtcdTools(versions, `the image of ${source.pod}`);
  progress.fact('etcd tools', `${source.pod}: ${choice.description}`);

  progress.step(`A3 etcdctl snapshot save in ${source.pod}`);
  saved({ pod: source.pod, container: source.container });
  const snapshot = await long.saveSnapshotInPod.executeWithOptions(
    { summary: `A3 etcdctl snapshot save in ${source.pod}` },
    [{ ...pod, profile: target.etcd, backupId: backup.backupId, tools: choice.tools }],
  );
  const pathInPod = snapshot.path;
  const { revision, totalKey, hash } = snapshot.status;
  progress.fact(
    'snapshot',
    `${pathInPod}: revision ${revision}, ${totalKey} keys, ${snapshot.sizeBytes} bytes`,
  );
  // Read at once: the admin cluster's kube-apiserver compacts old revisions too.
  const keyspace = await long.readKeyspaceAt
    .executeWithOptions({ summary: `keyspace of ${source.pod} at revision ${revision}` }, [
      { ...pod, profile: target.etcd, revision, cluster: false },
    ])
    .catch((error: unknown) => {
      if (failureTypeOf(error) !== FailureType.RevisionCompacted) throw error;
      warn(
        `revision ${revision} of the admin etcd was compacted before its keyspace could be read: ` +
          'the backup records no key count and no hash',
      );
      return undefined;
    });
  const member = await quick.readEtcdMemberStatus.executeWithOptions(
    { summary: `etcdctl endpoint status in ${source.pod}` },
    [{ ...pod, profile: target.etcd }],
  );
  progress.fact(
    'etcd',
    `version ${member.version}, cluster id ${member.clusterId}, member id ${member.memberId}`,
  );

  progress.step(`A3 copy the snapshot out of ${source.pod}`);
  const copy = await repo.long.copyAdminSnapshotToRepository.executeWithOptions(
    { summary: `A3 copy ${source.pod}:${pathInPod} to admin backup ${backup.backupId}` },
    [{ ...backup, source: { ...pod, path: pathInPod } }],
  );
  progress.fact(
    'copied',
    `${copy.sizeBytes} bytes, sha256 ${copy.sha256} (resumed from ${copy.resumedFromBytes})`,
  );
  const fingerprint = keyspace?.hashes[0];
  return {
    ...(source.kubernetesVersion ? { kubernetesVersion: source.kubernetesVersion } : {}),
    record: {
      path: ADMIN_SNAPSHOT_FILE,
      sourcePod: source.pod,
      ...(source.nodeName ? { nodeName: source.nodeName } : {}),
      ...(source.image ? { image: source.image } : {}),
      sha256: copy.sha256,
      sizeBytes: copy.sizeBytes,
      revision,
      totalKeys: totalKey,
      totalKeysCountedBy: choice.offline,
      etcdHash: hash,
      ...(keyspace ? { keyCount: keyspace.keyCount } : {}),
      ...(fingerprint
        ? { kvHash: fingerprint.hash, kvHashCompactRevision: fingerprint.compactRevision }
        : {}),
      etcdVersion: member.version,
      clusterId: member.clusterId,
      memberId: member.memberId,
    },
  };
}
