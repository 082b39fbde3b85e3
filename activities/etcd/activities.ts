/**
 * Activities that run etcdctl inside the etcd and utility pods: snapshot save (B2) and
 * status, member data replacement (R4–R6, H5c–H5e), and the health checks the runbook
 * leaves to the operator.
 */

import type { KubeConfig } from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import {
  type ClusterProfile,
  type EndpointHealth,
  type EtcdHealthReport,
  FailureType,
  type KeyspaceAt,
  type PodRef,
  type ReplaceState,
  type SnapshotInPod,
  type SnapshotStatus,
} from '../../workflows/contract/index.js';
import { activityWait, cancellationSignal, heartbeat } from '../context.js';
import type { KubeClients } from '../kube/client.js';
import { type PodFile, statPodFile } from '../kube/copy.js';
import { CommandFailedError, execInPod, execInPodChecked } from '../kube/exec.js';
import { waitUntil } from '../kube/wait.js';
import {
  type EndpointStatus,
  endpointHealthCommand,
  endpointStatusCommand,
  hashKvCommand,
  keyCountCommand,
  parseEndpointHealth,
  parseEndpointStatus,
  parseHashKv,
  parseKeyCount,
  parseSnapshotStatus,
  snapshotRestoreCommand,
  snapshotSaveCommand,
  snapshotStatusCommand,
  withEnvArgv,
} from './commands.js';
import {
  discardOldMemberDataArgv,
  memberDataPaths,
  parseReplaceState,
  RESTORE_INCOMPLETE_EXIT,
  replaceMemberDataArgv,
  UNEXPECTED_STATE_EXIT,
} from './member-data.js';

/** `endpoint health` and `endpoint status` of every member, asked from inside an etcd pod. */
async function readClusterState(
  config: KubeConfig,
  target: PodFile & { profile: ClusterProfile },
): Promise<{ health: EndpointHealth[]; status: EndpointStatus[] }> {
  const run = (argv: string[]) =>
    execInPod(config, { ...target, argv, signal: cancellationSignal() });
  // Both exit 1 when a member is unhealthy or silent, and still print JSON for the others.
  const health = await run(withEnvArgv(endpointHealthCommand(target.profile, { cluster: true })));
  const status = await run(withEnvArgv(endpointStatusCommand(target.profile, { cluster: true })));
  if (health.stdout.trim() === '')
    throw new CommandFailedError(['etcdctl', 'endpoint', 'health'], health.exitCode, health.stderr);
  if (status.stdout.trim() === '')
    throw new CommandFailedError(['etcdctl', 'endpoint', 'status'], status.exitCode, status.stderr);
  return { health: parseEndpointHealth(health.stdout), status: parseEndpointStatus(status.stdout) };
}

export function createEtcdActivities(deps: { kube: KubeClients }) {
  const kubeFor = (ref: PodRef) => deps.kube.forCluster(ref);
  const podFile = (input: PodRef, path: string): PodFile => ({
    namespace: input.namespace,
    pod: input.pod,
    container: input.container,
    path,
  });

  /** `snapshot status` of a file in the pod; a file etcdctl cannot read is corrupt. */
  async function snapshotStatusInPod(input: PodRef, path: string): Promise<SnapshotStatus> {
    const kube = kubeFor(input);
    const result = await execInPod(kube.config, {
      ...podFile(input, path),
      argv: withEnvArgv(snapshotStatusCommand(path)),
      signal: cancellationSignal(),
    });
    if (result.exitCode !== 0) {
      throw ApplicationFailure.nonRetryable(
        `snapshot ${input.pod}:${path} is not a valid etcd snapshot: ${result.stderr.trim().slice(-500)}`,
        FailureType.CorruptSnapshot,
      );
    }
    return parseSnapshotStatus(result.stdout);
  }

  return {
    /**
     * B1–B2: `etcdctl snapshot save` in the etcd pod, to a path unique to this backup. A
     * retry finds a snapshot already saved there (etcdctl renames it into place only when
     * complete) and describes it instead of saving another.
     */
    async saveSnapshotInPod(
      input: PodRef & { profile: ClusterProfile; path: string },
    ): Promise<SnapshotInPod> {
      const kube = kubeFor(input);
      heartbeat({ step: `etcdctl snapshot save in ${input.pod}` });
      let file = await statPodFile(kube.config, podFile(input, input.path), cancellationSignal());
      if (!file) {
        await execInPodChecked(kube.config, {
          ...podFile(input, input.path),
          argv: withEnvArgv(snapshotSaveCommand(input.profile, input.path)),
          signal: cancellationSignal(),
        });
        file = await statPodFile(kube.config, podFile(input, input.path), cancellationSignal());
        if (!file)
          throw new Error(
            `etcdctl snapshot save succeeded but ${input.path} is missing in ${input.pod}`,
          );
      }
      const status = await snapshotStatusInPod(input, input.path);
      return { path: input.path, ...file, status };
    },

    /**
     * Before anything is destroyed: the snapshot in the pod is the backup, byte for byte
     * (sha256) and by etcd's own reading (hash, revision). Anything else is corrupt.
     */
    async checkSnapshotInPod(
      input: PodRef & {
        path: string;
        expected: { sha256: string; etcdHash: number; revision: number };
      },
    ): Promise<SnapshotStatus> {
      const kube = kubeFor(input);
      const file = await statPodFile(kube.config, podFile(input, input.path), cancellationSignal());
      if (file?.sha256 !== input.expected.sha256) {
        throw ApplicationFailure.nonRetryable(
          `snapshot ${input.pod}:${input.path} has sha256 ${file?.sha256 ?? '(missing)'}, the backup ${input.expected.sha256}`,
          FailureType.CorruptSnapshot,
        );
      }
      const status = await snapshotStatusInPod(input, input.path);
      if (status.hash !== input.expected.etcdHash || status.revision !== input.expected.revision) {
        throw ApplicationFailure.nonRetryable(
          `snapshot ${input.pod}:${input.path} reads as hash ${status.hash} revision ${status.revision}; ` +
            `the backup says hash ${input.expected.etcdHash} revision ${input.expected.revision}`,
          FailureType.CorruptSnapshot,
        );
      }
      return status;
    },

    /** Removes a file in a pod (H5f `rm snapshot.db`; the backup's file after the copy); gone is success. */
    async removeFileInPod(input: PodRef & { path: string }): Promise<void> {
      await execInPodChecked(kubeFor(input).config, {
        ...podFile(input, input.path),
        argv: ['rm', '-f', input.path],
        signal: cancellationSignal(),
      });
    },

    /**
     * R4–R6, H5c–H5e in one restartable step (see member-data.ts): restore the snapshot
     * with the member's identity into scratch space on its volume, then swap it in.
     */
    async replaceMemberData(
      input: PodRef & {
        profile: ClusterProfile;
        member: number;
        members: number;
        snapshotPath: string;
        token: string;
        dropOldData: boolean;
      },
    ): Promise<ReplaceState> {
      const kube = kubeFor(input);
      heartbeat({ step: `replace data of member ${input.member} in ${input.pod}` });
      const paths = memberDataPaths(input.profile.dataDir, input.token);
      const restore = snapshotRestoreCommand(input.profile, {
        file: input.snapshotPath,
        member: input.member,
        members: input.members,
        dataDir: paths.scratch,
      });
      try {
        const { stdout } = await execInPodChecked(kube.config, {
          ...podFile(input, input.snapshotPath),
          argv: replaceMemberDataArgv({
            paths,
            dropOldData: input.dropOldData,
            restoreArgv: withEnvArgv(restore),
          }),
          signal: cancellationSignal(),
        });
        return parseReplaceState(stdout);
      } catch (error) {
        if (
          error instanceof CommandFailedError &&
          (error.exitCode === UNEXPECTED_STATE_EXIT || error.exitCode === RESTORE_INCOMPLETE_EXIT)
        ) {
          throw ApplicationFailure.nonRetryable(error.message, FailureType.ClusterState);
        }
        throw error;
      }
    },

    /** After verification: remove the old data set aside by `replaceMemberData`. */
    async discardOldMemberData(
      input: PodRef & { profile: ClusterProfile; token: string },
    ): Promise<void> {
      const paths = memberDataPaths(input.profile.dataDir, input.token);
      await execInPodChecked(kubeFor(input).config, {
        ...podFile(input, paths.oldAside),
        argv: discardOldMemberDataArgv(paths),
        signal: cancellationSignal(),
      });
    },

    /**
     * The keyspace at `revision` as seen from inside an etcd pod: its key count, and the
     * hashkv of the pod's own member or, with `cluster`, of every member.
     */
    async readKeyspaceAt(
      input: PodRef & { profile: ClusterProfile; revision: number; cluster: boolean },
    ): Promise<KeyspaceAt> {
      const kube = kubeFor(input);
      const run = (argv: string[]) =>
        execInPodChecked(kube.config, {
          ...podFile(input, '/'),
          argv,
          signal: cancellationSignal(),
        });
      const count = await run(withEnvArgv(keyCountCommand(input.profile, input.revision)));
      const hashes = await run(
        withEnvArgv(hashKvCommand(input.profile, input.revision, { cluster: input.cluster })),
      );
      return {
        revision: input.revision,
        keyCount: parseKeyCount(count.stdout),
        hashes: parseHashKv(hashes.stdout),
      };
    },

    /**
     * R8: waits until `members` members answer healthy, asked from inside an etcd pod
     * (`endpoint health --cluster`, `endpoint status --cluster`), heartbeating what it sees.
     */
    async waitEtcdHealthy(
      input: PodRef & { profile: ClusterProfile; members: number; timeoutMs: number },
    ): Promise<EtcdHealthReport> {
      const kube = kubeFor(input);
      let report: EtcdHealthReport | undefined;
      await waitUntil(
        `${input.members} healthy etcd members`,
        async () => {
          const state = await readClusterState(kube.config, {
            ...podFile(input, '/'),
            profile: input.profile,
          }).catch((error: unknown) => (error instanceof Error ? error : new Error(String(error))));
          if (state instanceof Error)
            return { done: false, waitingFor: state.message.slice(0, 300) };
          const healthy = state.health.filter((h) => h.health).length;
          report = {
            health: state.health,
            clusterIds: [...new Set(state.status.map((s) => s.clusterId))],
            revisions: state.status.map((s) => s.revision),
          };
          const done = healthy === input.members && state.status.length === input.members;
          return {
            done,
            waitingFor: `${healthy}/${input.members} healthy, ${state.status.length} answering status`,
          };
        },
        activityWait('wait for healthy etcd', input.timeoutMs),
      );
      return report as EtcdHealthReport;
    },
  };
}
