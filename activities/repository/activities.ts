/**
 * Activities that move snapshots between the pods and the backup store (SPEC B3–B4, R3,
 * H5b), and verify and prune the store. They name backups by cluster and id; where the
 * bytes are is the store's business, never a path in workflow history.
 *
 * A store on this worker's disk makes these activities host-bound: a deployment with
 * several workers routes them to the worker that holds the repository.
 */
import {
  type BackupRecord,
  type BackupRef,
  type BackupSource,
  type CommitRequest,
  type CopyResult,
  FailureType,
  type PodFileRef,
  type RepositoryRef,
  type RetentionPolicy,
  type SnapshotToRestore,
  type VerifiedBackup,
} from '../../workflows/contract/index.js';
import type { WorkerTargets } from '../config/targets.js';
import { cancellationSignal, copyProgress, heartbeat } from '../context.js';
import type { LocalEtcdctl } from '../etcd/local-etcdctl.js';
import type { KubeClients } from '../kube/client.js';
import { type CopyDestination, copyFromPod, copyToPod } from '../kube/copy.js';
import { backupFailure, isBackupFailure } from './failures.js';
import { importSnapshotFile } from './import.js';
import { pruneBackups } from './retention.js';
import type { BackupKey, BackupStore, BackupStores } from './store.js';
import { verifyStoredBackup } from './verify.js';

export interface RepositoryActivityDeps {
  kube: KubeClients;
  backups: BackupStores;
  etcdctl: LocalEtcdctl;
  targets: WorkerTargets;
}

export function createRepositoryActivities(deps: RepositoryActivityDeps) {
  const storeOf = (ref: RepositoryRef) => deps.backups.forRepository(ref);
  const keyOf = (ref: BackupRef): BackupKey => ({
    userClusterName: ref.userClusterName,
    backupId: ref.backupId,
  });

  return {
    /**
     * B3: copy the snapshot out of the pod into the backup's staged write. A retry resumes
     * from the bytes already staged. Nothing is hashed in the (live etcd) pod: the copy
     * hashes the whole file on the way and checks the snapshot's own sha256 trailer.
     */
    async copySnapshotToRepository(input: BackupRef & { source: PodFileRef }): Promise<CopyResult> {
      const step = `copy ${input.source.pod}:${input.source.path} to backup ${input.backupId}`;
      const kube = deps.kube.forCluster(input.source);
      return copyFromPod(
        kube.config,
        input.source,
        stagingDestination(storeOf(input), keyOf(input)),
        {
          onProgress: copyProgress(step),
          signal: cancellationSignal(),
          verify: 'snapshot-trailer',
          compression: kube.copyCompression,
        },
      );
    },

    /** B4: seal the staged snapshot into a backup with its manifest. Idempotent. */
    async commitBackup(input: BackupRef & { record: CommitRequest }): Promise<BackupRecord> {
      return storeOf(input).commit(keyOf(input), input.record);
    },

    /** Drop a staged backup that will not be committed; already gone is success. */
    async abortBackup(input: BackupRef): Promise<void> {
      await storeOf(input).abort(keyOf(input));
    },

    /**
     * Deletes the taken backups the policy does not keep (never the newest); returns their
     * ids. Imported snapshots are not taken backups: retention neither counts nor deletes them.
     */
    async pruneBackups(
      input: RepositoryRef & { userClusterName: string; policy: RetentionPolicy },
    ): Promise<string[]> {
      return pruneBackups(storeOf(input), input.userClusterName, input.policy);
    },

    /** The backup's bytes and etcd's reading of them, checked against its manifest. */
    async verifyBackup(input: BackupRef): Promise<VerifiedBackup> {
      return verifyStoredBackup(storeOf(input), deps.etcdctl, keyOf(input), {
        onProgress: copyProgress(`verify backup ${input.backupId}`),
        signal: cancellationSignal(),
      });
    },

    /**
     * Before a restore changes anything: the backup to restore, verified (sha256 against its
     * manifest, `etcdctl snapshot status` against the manifest's hash and revision). A
     * snapshot file from the import inbox is first imported into the store under
     * `importId` (marked as an import), so it is verified, and restored, like any backup.
     */
    async resolveSnapshotToRestore(
      input: RepositoryRef & { userClusterName: string; backup: BackupSource; importId: string },
    ): Promise<SnapshotToRestore> {
      const store = storeOf(input);
      const key = {
        userClusterName: input.userClusterName,
        backupId: input.backup.backupId ?? input.importId,
      };
      const { importFile } = input.backup;
      if (importFile !== undefined) {
        heartbeat({ step: `import ${importFile} from the import inbox` });
        await importSnapshotFile(store, deps.etcdctl, key, {
          name: importFile,
          path: deps.targets.importFile(importFile),
          signal: cancellationSignal(),
        });
      }
      const { record, checks } = await verifyStoredBackup(store, deps.etcdctl, key, {
        onProgress: copyProgress(`verify backup ${key.backupId}`),
        signal: cancellationSignal(),
      });
      return { backupId: key.backupId, record, checks };
    },

    /**
     * A snapshot a restore imported and then did not use (it failed or was cancelled before
     * the point of no return): removed, so imports do not pile up. Refuses taken backups.
     */
    async deleteImportedBackup(input: BackupRef): Promise<void> {
      const store = storeOf(input);
      const key = keyOf(input);
      const record = await store.get(key).catch((error: unknown) => {
        if (isBackupFailure(error, FailureType.BackupNotFound)) return undefined;
        throw error;
      });
      // An import cut off before its commit leaves only staged bytes: drop them.
      if (!record) return store.abort(key);
      if (record.origin !== 'imported') {
        throw backupFailure(
          FailureType.BackupInvalidArgument,
          `backup ${record.id} of ${record.userClusterName} was taken, not imported: it is not deleted`,
        );
      }
      await store.delete(key);
    },

    /** R3, H5b: copy the snapshot into the pod, resumable, verified by sha256 in the pod. */
    async copySnapshotIntoPod(input: {
      backup: BackupRef;
      destination: PodFileRef;
    }): Promise<CopyResult> {
      const store = storeOf(input.backup);
      const key = keyOf(input.backup);
      const record = await store.get(key);
      const { destination } = input;
      const name = `backup ${record.id}`;
      const kube = deps.kube.forCluster(destination);
      return copyToPod(
        kube.config,
        {
          name,
          sizeBytes: record.sizeBytes,
          sha256: record.sha256,
          read: (offset) => store.read(key, offset),
        },
        destination,
        {
          onProgress: copyProgress(`copy ${name} into ${destination.pod}:${destination.path}`),
          signal: cancellationSignal(),
          compression: kube.copyCompression,
        },
      );
    },
  };
}

/** A backup's staged write as the destination of a resumable copy out of a pod. */
function stagingDestination(store: BackupStore, key: BackupKey): CopyDestination {
  return {
    name: `the staged snapshot of backup ${key.backupId} in ${store.location}`,
    size: () => store.stagedBytes(key),
    readExisting: () => store.readStaged(key),
    writeFrom: (offset) => store.stage(key, offset),
  };
}
