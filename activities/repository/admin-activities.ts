/**
 * Activities that fill, seal, verify and prune admin-cluster backups (SPEC A2, A3): the
 * admin etcd snapshot copied out of its pod as a user-cluster snapshot is (B3), the node's
 * PKI streamed over SSH (activities/ssh/pki.ts). Workflows name the backup by admin cluster
 * and id; the bytes, the SSH host, user and key stay on the worker.
 */
import { createHash } from 'node:crypto';
import {
  ADMIN_PKI_DIR,
  ADMIN_SNAPSHOT_FILE,
  type AdminBackupRecord,
  type AdminBackupRef,
  type AdminCommitRequest,
  type CopyResult,
  FailureType,
  type PkiCopyResult,
  type PodFileRef,
  type RetentionPolicy,
  retentionPolicySchema,
  type VerifiedBackup,
} from '../../workflows/contract/index.js';
import type { WorkerTargets } from '../config/targets.js';
import { cancellationSignal, copyProgress, heartbeat } from '../context.js';
import { type LocalEtcdctl, SnapshotUnreadableError } from '../etcd/local-etcdctl.js';
import type { KubeClients } from '../kube/client.js';
import { copyFromPod } from '../kube/copy.js';
import { copyPkiTree } from '../ssh/pki.js';
import { backupFailure } from './failures.js';
import { backupsToKeep } from './retention.js';
import type { AdminBackupKey, AdminBackupStore, BackupStores } from './store.js';
import { compareSnapshotStatus } from './verify.js';

export interface AdminRepositoryActivityDeps {
  kube: KubeClients;
  backups: BackupStores;
  etcdctl: LocalEtcdctl;
  targets: WorkerTargets;
}

export function createAdminRepositoryActivities(deps: AdminRepositoryActivityDeps) {
  const storeOf = (ref: AdminBackupRef) => deps.backups.forRepository(ref).admin;
  const keyOf = (ref: AdminBackupRef): AdminBackupKey => ({
    adminCluster: ref.adminCluster,
    backupId: ref.backupId,
  });

  return {
    /** A3: copy the admin etcd snapshot out of its pod into the backup; resumable, verified by its trailer. */
    async copyAdminSnapshotToRepository(
      input: AdminBackupRef & { source: PodFileRef },
    ): Promise<CopyResult> {
      const store = storeOf(input);
      const key = keyOf(input);
      const kube = deps.kube.forCluster(input.source);
      return copyFromPod(
        kube.config,
        input.source,
        {
          name: `admin backup ${input.backupId}`,
          size: () => store.stagedFileBytes(key, ADMIN_SNAPSHOT_FILE),
          readExisting: () => store.readStagedFile(key, ADMIN_SNAPSHOT_FILE),
          writeFrom: (offset) => store.stageFile(key, ADMIN_SNAPSHOT_FILE, offset),
        },
        {
          onProgress: copyProgress(`A3 copy ${input.source.pod}:${input.source.path}`),
          signal: cancellationSignal(),
          // Checked by the snapshot's own sha256 trailer: nothing is hashed in the live etcd pod.
          verify: 'snapshot-trailer',
          compression: kube.copyCompression,
        },
      );
    },

    /**
     * A2: the PKI directory of the admin control-plane node, streamed over SSH (host keys
     * checked, through the jump host when configured) into the backup, nothing changed on
     * the node. Each attempt starts the tree again; the result lists the entries (names,
     * modes, sizes, sha256), never their contents.
     */
    async copyAdminPkiToRepository(input: AdminBackupRef): Promise<PkiCopyResult> {
      const ssh = deps.targets.adminCluster(input.adminCluster).ssh();
      const store = storeOf(input);
      const key = keyOf(input);
      const step = 'A2 copy the PKI of the admin control-plane node over SSH';
      heartbeat({ step });
      const copy = await copyPkiTree(
        ssh,
        {
          reset: () => store.discardStaged(key, ADMIN_PKI_DIR),
          directory: (path) => store.stageDirectory(key, path),
          file: (path) => store.stageFile(key, path, 0),
        },
        {
          adminCluster: input.adminCluster,
          signal: cancellationSignal(),
          onProgress: (bytes) => heartbeat({ step, bytesDone: bytes }),
        },
      );
      return {
        directory: ssh.pkiDir,
        viaJumpHost: ssh.jumpHost !== undefined,
        entries: copy.entries,
        fileCount: copy.fileCount,
        totalBytes: copy.totalBytes,
      };
    },

    /** Seals the staged files into the admin backup, each checked against the list. Idempotent. */
    async commitAdminBackup(
      input: AdminBackupRef & { record: AdminCommitRequest },
    ): Promise<AdminBackupRecord> {
      return storeOf(input).commit(keyOf(input), input.record);
    },

    async abortAdminBackup(input: AdminBackupRef): Promise<void> {
      await storeOf(input).abort(keyOf(input));
    },

    /** Every file against the manifest (size, sha256), and etcd's reading of the snapshot. */
    async verifyAdminBackup(input: AdminBackupRef): Promise<VerifiedAdminBackup> {
      return verifyAdminBackup(storeOf(input), deps.etcdctl, keyOf(input));
    },

    /** Deletes the admin backups of the admin cluster the policy does not keep; returns their ids. */
    async pruneAdminBackups(input: {
      repository: string;
      adminCluster: string;
      policy: RetentionPolicy;
    }): Promise<string[]> {
      const store = deps.backups.forRepository(input).admin;
      const backups = await store.list(input.adminCluster);
      const keep = backupsToKeep(backups, retentionPolicySchema.parse(input.policy));
      const deleted: string[] = [];
      for (const b of backups) {
        if (keep.has(b.id)) continue;
        await store.delete({ adminCluster: input.adminCluster, backupId: b.id });
        deleted.push(b.id);
      }
      return deleted;
    },
  };
}

export type VerifiedAdminBackup = Omit<VerifiedBackup, 'record'> & { record: AdminBackupRecord };

export async function verifyAdminBackup(
  store: AdminBackupStore,
  etcdctl: LocalEtcdctl,
  key: AdminBackupKey,
): Promise<VerifiedAdminBackup> {
  const record = await store.get(key);
  const corrupt = (message: string) =>
    backupFailure(
      FailureType.BackupCorrupt,
      `admin backup ${record.id} of ${record.adminCluster} is corrupt: ${message}`,
    );
  let files = 0;
  let bytes = 0;
  for (const entry of record.files) {
    if (entry.type !== 'file') continue;
    const hash = createHash('sha256');
    let size = 0;
    for await (const chunk of await store.read(key, entry.path)) {
      size += (chunk as Buffer).length;
      hash.update(chunk as Buffer);
    }
    const sha256 = hash.digest('hex');
    if (size !== entry.sizeBytes || sha256 !== entry.sha256) {
      throw corrupt(
        `${entry.path} has ${size} bytes, sha256 ${sha256}; the manifest says ${entry.sizeBytes}, ${entry.sha256}`,
      );
    }
    files++;
    bytes += size;
  }
  if (!store.localFile) throw new Error('this store cannot hand etcdctl a local snapshot file');
  const status = await etcdctl
    .snapshotStatus(await store.localFile(key, ADMIN_SNAPSHOT_FILE))
    .catch((error: unknown) => {
      throw error instanceof SnapshotUnreadableError ? corrupt(error.message) : error;
    });
  const { etcd } = record;
  const { mismatch, line: statusLine } = compareSnapshotStatus(status, await etcdctl.tool(), {
    hash: etcd.etcdHash,
    revision: etcd.revision,
    totalKeys: etcd.totalKeys,
    ...(etcd.totalKeysCountedBy ? { countedBy: etcd.totalKeysCountedBy } : {}),
  });
  if (mismatch) throw corrupt(mismatch);
  return {
    record,
    checks: [
      `${files} files, ${bytes} bytes, each with the size and sha256 of the manifest`,
      `${ADMIN_SNAPSHOT_FILE}: ${statusLine}`,
      `PKI: ${record.pki.fileCount} files of ${record.pki.directory}, with their modes on the node recorded`,
    ],
  };
}
