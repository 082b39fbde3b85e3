/**
 * Activities that move snapshots between the pods and the backup repository on the
 * worker's disk (SPEC B3–B4, R3, H5b), and read, verify and prune that repository.
 *
 * They touch this worker's files, so a deployment with several workers routes them to the
 * worker that holds the repository (one task queue per repository host).
 */
import { stat } from 'node:fs/promises';
import type { BackupRecord, BackupSource, RetentionPolicy } from '../workflows/schemas.js';
import { type ClusterRef, kubeResolver } from './activity-kube.js';
import {
  type BackupRepository,
  type CommitRequest,
  FileSystemBackupRepository,
  type VerifiedBackup,
} from './backup-repository.js';
import { type CopyResult, copyFromPod, copyToPod } from './kube/copy.js';
import { cancellationSignal, heartbeat } from './temporal-context.js';

export interface RepositoryRef {
  /** Repository directory on the worker; the worker's default if absent. */
  backupDir?: string;
}

export interface PodFileRef extends ClusterRef {
  pod: string;
  container: string;
  path: string;
}

/** A snapshot ready to be copied into pods: where it is on the worker, and what it must be. */
export interface SnapshotToRestore {
  backupId: string;
  localPath: string;
  record: BackupRecord;
  checks: string[];
}

export function createBackupActivities(deps: {
  defaultKubeconfig?: string;
  defaultBackupDir: string;
}) {
  const kubeFor = kubeResolver(deps.defaultKubeconfig);
  const repositoryFor = (ref: RepositoryRef): BackupRepository =>
    new FileSystemBackupRepository({ root: ref.backupDir ?? deps.defaultBackupDir });
  const onProgress = (step: string) => (p: { bytesDone: number; totalBytes: number }) =>
    heartbeat({ step, bytesDone: p.bytesDone, totalBytes: p.totalBytes });

  return {
    /**
     * B3: copy the snapshot out of the pod into the backup's staging file. A retry resumes
     * from the bytes already staged; the result's sha256 equals the pod's.
     */
    async copySnapshotToRepository(
      input: RepositoryRef & { source: PodFileRef; userClusterName: string; backupId: string },
    ): Promise<CopyResult> {
      const repository = repositoryFor(input);
      const staging = await repository.beginWrite({
        userClusterName: input.userClusterName,
        backupId: input.backupId,
      });
      const step = `copy ${input.source.pod}:${input.source.path} to backup ${input.backupId}`;
      return copyFromPod(kubeFor(input.source).config, input.source, staging.path, {
        onProgress: onProgress(step),
        signal: cancellationSignal(),
      });
    },

    /** B4: seal the staged snapshot into a backup with its manifest. Idempotent. */
    async commitBackup(
      input: RepositoryRef & { userClusterName: string; backupId: string; record: CommitRequest },
    ): Promise<BackupRecord> {
      return repositoryFor(input).commit(
        `${input.userClusterName}/${input.backupId}`,
        input.record,
      );
    },

    /** Drop a staged backup that will not be committed; already gone is success. */
    async abortBackup(
      input: RepositoryRef & { userClusterName: string; backupId: string },
    ): Promise<void> {
      await repositoryFor(input).abortWrite(`${input.userClusterName}/${input.backupId}`);
    },

    async listBackups(input: RepositoryRef & { userClusterName: string }): Promise<BackupRecord[]> {
      return repositoryFor(input).list(input.userClusterName);
    },

    async pruneBackups(
      input: RepositoryRef & { userClusterName: string; policy: RetentionPolicy },
    ): Promise<string[]> {
      return repositoryFor(input).prune(input.userClusterName, input.policy);
    },

    /** The backup's bytes and etcd's reading of them, checked against its manifest. */
    async verifyBackup(
      input: RepositoryRef & { userClusterName: string; backupId: string },
    ): Promise<VerifiedBackup> {
      return repositoryFor(input).verify(input.backupId, input.userClusterName);
    },

    /**
     * Before a restore changes anything: the backup to restore, verified (sha256 against its
     * manifest, `etcdctl snapshot status` against the manifest's hash and revision). A
     * snapshot file given by path is first imported into the repository under `importId`,
     * so it is verified, and restored, exactly like any other backup.
     */
    async resolveSnapshotToRestore(
      input: RepositoryRef & { userClusterName: string; backup: BackupSource; importId: string },
    ): Promise<SnapshotToRestore> {
      const repository = repositoryFor(input);
      let backupId = input.backup.backupId;
      if (backupId === undefined) {
        backupId = input.importId;
        await repository.importFile({
          userClusterName: input.userClusterName,
          backupId,
          path: input.backup.path ?? '',
        });
      }
      const { record, checks } = await repository.verify(backupId, input.userClusterName);
      return { backupId, localPath: record.snapshotPath, record, checks };
    },

    /** R3, H5b: copy the snapshot into the pod, resumable, verified by sha256 in the pod. */
    async copySnapshotIntoPod(input: {
      localPath: string;
      destination: PodFileRef;
    }): Promise<CopyResult> {
      await stat(input.localPath);
      const step = `copy ${input.localPath} into ${input.destination.pod}:${input.destination.path}`;
      return copyToPod(kubeFor(input.destination).config, input.localPath, input.destination, {
        onProgress: onProgress(step),
        signal: cancellationSignal(),
      });
    },
  };
}

export type BackupActivities = ReturnType<typeof createBackupActivities>;
