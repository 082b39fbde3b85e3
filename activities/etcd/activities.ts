/**
 * Activities that run etcdctl (and the member data scripts) inside the etcd and utility
 * pods: snapshot save (B2), the checks before a restore destroys anything (tools, free
 * space, the snapshot in the pod, the restore into scratch space: H5c), the swap after the
 * point of no return (H5d–H5f), and the health and keyspace checks the runbook leaves to
 * the operator.
 */
import { randomBytes } from 'node:crypto';
import type { KubeConfig } from '@kubernetes/client-node';
import { ApplicationFailure } from '@temporalio/common';
import {
  type AnsweringMember,
  backupSnapshotLeftovers,
  backupSnapshotPathInPod,
  type ClusterProfile,
  type ClusterRef,
  type CompactionProbe,
  type EndpointHealth,
  type EtcdConnection,
  type EtcdHealthReport,
  type EtcdMemberStatus,
  type EtcdTools,
  type EtcdToolVersions,
  FailureType,
  type KeyspaceAt,
  type MemberPod,
  memberProfile,
  type PodRef,
  type ReplaceState,
  type SnapshotInPod,
  type SnapshotStatus,
} from '../../workflows/contract/index.js';
import { assertStopped } from '../cluster/workloads.js';
import { activityAttempt, activityWait, cancellationSignal, heartbeat } from '../context.js';
import type { KubeClients } from '../kube/client.js';
import { type PodFile, podFileSize, statPodFile } from '../kube/copy.js';
import { CommandFailedError, ExecTimeoutError, execInPod, execInPodChecked } from '../kube/exec.js';
import { waitUntil } from '../kube/wait.js';
import {
  COMPACTED,
  type EndpointStatus,
  endpointHealthCommand,
  endpointStatusCommand,
  hashKvCommand,
  isCommandHelp,
  keyCountCommand,
  memberListCommand,
  parseEndpointHealth,
  parseEndpointStatus,
  parseHashKv,
  parseKeyCount,
  parseMemberList,
  parseSnapshotStatus,
  parseToolVersion,
  SCAN_TIMEOUT_S,
  snapshotRestoreCommand,
  snapshotSaveCommand,
  snapshotStatusCommand,
  versionCommand,
  watchFromRevisionCommand,
} from './commands.js';
import {
  attemptDir,
  discardOldMemberDataArgv,
  MemberDataExit,
  memberDataPaths,
  parseRemoved,
  parseState,
  restoreIntoScratchArgv,
  swapMemberDataArgv,
} from './member-data.js';

/** etcdctl's --command-timeout for a snapshot save: a save that cannot finish ends, and is retried. */
const SNAPSHOT_SAVE_TIMEOUT_S = 1800;

/** How long a command in a pod may run: a keyspace scan's etcdctl timeout, and a minute more. */
const COMMAND_TIMEOUT_MS = (SCAN_TIMEOUT_S + 60) * 1000;
/** `snapshot restore` writes the whole database (and fsyncs it) on the member's volume. */
const RESTORE_TIMEOUT_MS = 60 * 60_000;

/** How a container runtime refuses to exec a command the image does not have. */
const NOT_IN_IMAGE = /executable file not found|no such file or directory/i;

/**
 * How long a watch at a revision a restore should have compacted may stay open before it
 * counts as accepted: etcd cancels one on a compacted revision at once (well under a second
 * here), so this only bounds the case that fails the check.
 */
const WATCH_PROBE_MS = 30_000;

/** How long a member that may be down gets to answer `endpoint status` (H1). */
const MEMBER_STATUS_TIMEOUT_MS = 15_000;

/** The member's data PVC has room for the restored data beside the old (restore into scratch). */
export interface VolumeSpace {
  availableBytes: number;
}

/** `endpoint health` and `endpoint status` of every member, asked from inside an etcd pod. */
async function readClusterState(
  config: KubeConfig,
  target: PodFile & { profile: ClusterProfile },
): Promise<{ health: EndpointHealth[]; status: EndpointStatus[] }> {
  const run = (argv: string[]) =>
    execInPod(config, {
      ...target,
      argv,
      signal: cancellationSignal(),
      timeoutMs: COMMAND_TIMEOUT_MS,
    });
  // Both exit 1 when a member is unhealthy or silent, and still print JSON for the others.
  const health = await run(endpointHealthCommand(target.profile, { cluster: true }));
  const status = await run(endpointStatusCommand(target.profile, { cluster: true }));
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
  // Every command is bounded: one that hangs (a stuck volume, an etcd that never answers)
  // fails and is retried instead of holding the step for the activity's two hours.
  const exec = (input: PodRef, argv: string[], timeoutMs = COMMAND_TIMEOUT_MS) =>
    execInPodChecked(kubeFor(input).config, {
      ...podFile(input, '/'),
      argv,
      signal: cancellationSignal(),
      timeoutMs,
    });

  /**
   * `snapshot status` of a file in the pod; a file etcd cannot read is corrupt. A tool that
   * answers with its help (etcdctl 3.6, exit code 0) has no such command: MissingTools.
   */
  async function snapshotStatusInPod(
    input: PodRef,
    path: string,
    tools: EtcdTools,
  ): Promise<SnapshotStatus> {
    const kube = kubeFor(input);
    const argv = snapshotStatusCommand(path, tools);
    const result = await execInPod(kube.config, {
      ...podFile(input, path),
      argv,
      signal: cancellationSignal(),
      timeoutMs: COMMAND_TIMEOUT_MS,
    });
    if (result.exitCode !== 0) {
      throw ApplicationFailure.nonRetryable(
        `snapshot ${input.pod}:${path} is not a valid etcd snapshot: ${result.stderr.trim().slice(-500)}`,
        FailureType.CorruptSnapshot,
      );
    }
    if (isCommandHelp(result.stdout)) {
      throw ApplicationFailure.nonRetryable(
        `${argv[0]} in ${input.pod} has no 'snapshot status' (it printed its help): the image needs etcdutl`,
        FailureType.MissingTools,
      );
    }
    return parseSnapshotStatus(result.stdout);
  }

  /** `etcdctl version` / `etcdutl version` run directly (no shell); undefined if not in the image. */
  async function toolVersion(
    input: PodRef,
    binary: 'etcdctl' | 'etcdutl',
  ): Promise<string | undefined> {
    try {
      const result = await execInPod(kubeFor(input).config, {
        ...podFile(input, '/'),
        argv: versionCommand(binary),
        signal: cancellationSignal(),
      });
      return result.exitCode === 0 ? parseToolVersion(binary, result.stdout) : undefined;
    } catch (error) {
      if (NOT_IN_IMAGE.test(String(error))) return undefined;
      throw error;
    }
  }

  /** `endpoint status` of the member the profile's endpoint names, and `member list` if asked. */
  async function memberStatus(
    input: PodRef & { profile: EtcdConnection; tools?: EtcdTools; memberList?: boolean },
    timeoutMs?: number,
  ): Promise<EtcdMemberStatus> {
    const run = (argv: string[]) =>
      execInPodChecked(kubeFor(input).config, {
        ...podFile(input, '/'),
        argv,
        signal: cancellationSignal(),
        ...(timeoutMs !== undefined ? { timeoutMs } : {}),
      });
    const { stdout } = await run(endpointStatusCommand(input.profile, {}, input.tools));
    const [status] = parseEndpointStatus(stdout);
    if (!status) throw new Error(`etcdctl endpoint status in ${input.pod} printed no member`);
    const members = input.memberList
      ? parseMemberList((await run(memberListCommand(input.profile, input.tools))).stdout)
      : undefined;
    return {
      version: status.version,
      clusterId: status.clusterId,
      memberId: status.memberId,
      revision: status.revision,
      dbSize: status.dbSize,
      ...(members ? { memberIds: members.memberIds } : {}),
    };
  }

  return {
    /**
     * B1–B2: `etcdctl snapshot save` in the etcd pod, to a file of this attempt's own
     * (backupSnapshotPathInPod): an abandoned attempt's etcdctl may still be writing its
     * file, so each attempt first removes what the earlier ones left and then writes its
     * own. Nothing is hashed in the pod (the copy out hashes it on the way, B3); etcd's
     * `snapshot status` reads the revision the keyspace fingerprint is taken at.
     */
    async saveSnapshotInPod(
      input: PodRef & {
        profile: EtcdConnection & Pick<ClusterProfile, 'workDir'>;
        backupId: string;
        tools: EtcdTools;
      },
    ): Promise<SnapshotInPod> {
      const kube = kubeFor(input);
      const attempt = activityAttempt();
      const path = backupSnapshotPathInPod(input.profile, input.backupId, attempt);
      heartbeat({ step: `etcdctl snapshot save ${path} in ${input.pod}` });
      const earlier = backupSnapshotLeftovers(input.profile, input.backupId, attempt - 1);
      if (earlier.length > 0) await exec(input, ['rm', '-f', '--', ...earlier]);
      let sizeBytes = await podFileSize(kube.config, podFile(input, path), {
        signal: cancellationSignal(),
      });
      if (sizeBytes === undefined) {
        await execInPodChecked(kube.config, {
          ...podFile(input, path),
          name: 'etcdctl snapshot save',
          argv: snapshotSaveCommand(input.profile, path, input.tools, SNAPSHOT_SAVE_TIMEOUT_S),
          signal: cancellationSignal(),
          // etcdctl gives up at its --command-timeout; the exec a minute later.
          timeoutMs: (SNAPSHOT_SAVE_TIMEOUT_S + 60) * 1000,
        });
        sizeBytes = await podFileSize(kube.config, podFile(input, path), {
          signal: cancellationSignal(),
        });
        if (sizeBytes === undefined)
          throw new Error(`etcdctl snapshot save succeeded but ${path} is missing in ${input.pod}`);
      }
      const status = await snapshotStatusInPod(input, path, input.tools);
      return { path, sizeBytes, status };
    },

    /**
     * Before anything is destroyed: the snapshot in the pod is the backup, byte for byte
     * (sha256) and by etcd's own reading (hash, revision). Anything else is corrupt.
     */
    async checkSnapshotInPod(
      input: PodRef & {
        path: string;
        expected: { sha256: string; etcdHash: number; revision: number };
        tools: EtcdTools;
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
      const status = await snapshotStatusInPod(input, input.path, input.tools);
      if (status.hash !== input.expected.etcdHash || status.revision !== input.expected.revision) {
        throw ApplicationFailure.nonRetryable(
          `snapshot ${input.pod}:${input.path} reads as hash ${status.hash} revision ${status.revision}; ` +
            `the backup says hash ${input.expected.etcdHash} revision ${input.expected.revision}`,
          FailureType.CorruptSnapshot,
        );
      }
      return status;
    },

    /** Removes files in a pod (the backup's snapshot and its `.part`); gone is success. */
    async removeFilesInPod(input: PodRef & { paths: string[] }): Promise<void> {
      await exec(input, ['rm', '-f', '--', ...input.paths]);
    },

    /**
     * Before anything is changed: the tools a backup or restore will run in this pod are all
     * there, and which etcdctl and etcdutl the image has, with their versions (asked
     * directly, so also in an image without a shell). MissingTools (non-retryable) names
     * every tool that is not there; an image without `sh` is reported as missing `sh`.
     * Which etcd binary runs what is the workflow's decision (`chooseEtcdTools`).
     */
    async checkPodTools(input: PodRef & { tools: readonly string[] }): Promise<EtcdToolVersions> {
      const script = 'for t; do command -v "$t" >/dev/null 2>&1 || echo "$t"; done';
      const generic = input.tools.filter((t) => t !== 'etcdctl' && t !== 'etcdutl');
      let missing: string[];
      try {
        const { stdout } = await exec(input, ['sh', '-c', script, 'check-tools', ...generic]);
        missing = stdout.split('\n').filter((t) => t !== '');
      } catch (error) {
        if (!NOT_IN_IMAGE.test(String(error))) throw error;
        missing = ['sh'];
      }
      const etcdctl = await toolVersion(input, 'etcdctl');
      const etcdutl = await toolVersion(input, 'etcdutl');
      for (const [name, version] of [
        ['etcdctl', etcdctl],
        ['etcdutl', etcdutl],
      ] as const)
        if (input.tools.includes(name) && version === undefined) missing.push(name);
      if (missing.length > 0) {
        throw ApplicationFailure.nonRetryable(
          `the image of ${input.namespace}/${input.pod} (container ${input.container}) lacks ${missing.join(', ')}; ` +
            `it needs ${input.tools.join(', ')} there. Nothing was changed by this check.`,
          FailureType.MissingTools,
        );
      }
      return {
        ...(etcdctl !== undefined ? { etcdctl } : {}),
        ...(etcdutl !== undefined ? { etcdutl } : {}),
      };
    },

    /** Free space on the file system that holds `path` in the pod (`df -Pk`, BusyBox's too). */
    async measureFreeSpace(input: PodRef & { path: string }): Promise<VolumeSpace> {
      const { stdout } = await exec(input, ['df', '-Pk', input.path]);
      const fields = stdout.trim().split('\n').at(-1)?.split(/\s+/) ?? [];
      const availableKiB = Number(fields[3]);
      if (!Number.isSafeInteger(availableKiB)) {
        throw new Error(`df -Pk ${input.path} printed no free space: ${stdout.slice(0, 300)}`);
      }
      return { availableBytes: availableKiB * 1024 };
    },

    /**
     * H5c (R4), before the point of no return: `snapshot restore` with member N's identity
     * into scratch space on its volume, next to the live data, which is not touched. Each
     * attempt writes its own directory; only a complete, checked restore becomes the
     * scratch directory the swap uses. A full volume or a snapshot etcd refuses fails here.
     */
    async restoreIntoScratch(
      input: PodRef & {
        profile: ClusterProfile;
        member: number;
        members: number;
        snapshotPath: string;
        token: string;
        tools: EtcdTools;
        /** etcdutl 3.5.10+: raise the revision by this much and mark it compacted. */
        bumpRevision?: number;
      },
    ): Promise<'restored' | 'already-restored' | 'already-replaced'> {
      heartbeat({ step: `restore the snapshot for member ${input.member} into scratch space` });
      const paths = memberDataPaths(input.profile.dataDir, input.token);
      const attempt = attemptDir(paths, randomBytes(6).toString('hex'));
      const restore = snapshotRestoreCommand(
        input.profile,
        {
          file: input.snapshotPath,
          member: input.member,
          members: input.members,
          dataDir: attempt,
          ...(input.bumpRevision !== undefined ? { bumpRevision: input.bumpRevision } : {}),
        },
        input.tools,
      );
      try {
        const { stdout } = await exec(
          input,
          restoreIntoScratchArgv({ paths, attempt, restoreArgv: restore }),
          RESTORE_TIMEOUT_MS,
        );
        return parseState(stdout, ['restored', 'already-restored', 'already-replaced'] as const);
      } catch (error) {
        if (error instanceof CommandFailedError && /no space left/i.test(error.stderr)) {
          throw ApplicationFailure.nonRetryable(
            `the volume of member ${input.member} (${input.profile.dataDir} in ${input.pod}) has no room for the restored data: ${error.stderr.trim().slice(-300)}`,
            FailureType.NoSpace,
          );
        }
        if (error instanceof CommandFailedError && error.exitCode !== 0) {
          throw ApplicationFailure.nonRetryable(
            `etcd could not restore the snapshot for member ${input.member}: ${error.stderr.trim().slice(-500)}`,
            FailureType.CorruptSnapshot,
          );
        }
        throw error;
      }
    },

    /**
     * H5d–H5f (R5, R6), after the point of no return: the old data aside, the restored data
     * in place, with two renames (see member-data.ts). `scratch-missing` when no complete
     * restored data is there (a wiped volume): the workflow restores into scratch again.
     */
    async swapMemberData(
      input: PodRef & {
        profile: ClusterProfile;
        member: number;
        token: string;
        dropOldData: boolean;
      },
    ): Promise<ReplaceState | 'scratch-missing'> {
      heartbeat({ step: `swap the data of member ${input.member} in ${input.pod}` });
      const paths = memberDataPaths(input.profile.dataDir, input.token);
      // No etcd may run on the volume while its data is swapped: checked right before and
      // right after (a pod started in between would be seen after, and stopped by the retry).
      const etcd = {
        namespace: input.namespace,
        kind: 'StatefulSet' as const,
        name: input.profile.etcdStatefulSet,
      };
      await assertStopped(kubeFor(input), etcd);
      try {
        const { stdout } = await exec(input, swapMemberDataArgv(paths, input.dropOldData));
        await assertStopped(kubeFor(input), etcd);
        return parseState(stdout, ['replaced', 'already-replaced'] as const);
      } catch (error) {
        if (!(error instanceof CommandFailedError)) throw error;
        if (error.exitCode === MemberDataExit.ScratchMissing) return 'scratch-missing';
        if (error.exitCode === MemberDataExit.UnexpectedState) {
          throw ApplicationFailure.nonRetryable(error.message, FailureType.ClusterState);
        }
        throw error;
      }
    },

    /**
     * Removes this restore's scratch data and the old data its swap set aside — the undo of
     * a restore into scratch, or the clean-up after verification, when `abandoned` also
     * removes what abandoned restores left on the volume (`.old-*`, `.restore-*`). Returns
     * the directories removed.
     */
    async discardOldMemberData(
      input: PodRef & { profile: ClusterProfile; token: string; abandoned: boolean },
    ): Promise<string[]> {
      const paths = memberDataPaths(input.profile.dataDir, input.token);
      const { stdout } = await exec(input, discardOldMemberDataArgv(paths, input.abandoned));
      return parseRemoved(stdout);
    },

    /**
     * The keyspace as seen from inside an etcd pod, at `revision` (0: the current one): its
     * key count, and the hashkv (with its compact revision) of the pod's own member or, with
     * `cluster`, of every member.
     */
    async readKeyspaceAt(
      input: PodRef & { profile: EtcdConnection; revision: number; cluster: boolean },
    ): Promise<KeyspaceAt> {
      // A compacted revision stays compacted: said at once, not retried.
      const atRevision = (argv: string[]) =>
        exec(input, argv).catch((error: unknown) => {
          if (
            error instanceof CommandFailedError &&
            /required revision has been compacted/.test(error.stderr)
          )
            throw ApplicationFailure.nonRetryable(
              `revision ${input.revision} has been compacted in ${input.pod}: ${error.message}`,
              FailureType.RevisionCompacted,
            );
          throw error;
        });
      const count = await atRevision(keyCountCommand(input.profile, input.revision));
      const hashes = await atRevision(
        hashKvCommand(input.profile, input.revision, { cluster: input.cluster }),
      );
      return {
        revision: input.revision,
        keyCount: parseKeyCount(count.stdout),
        hashes: parseHashKv(hashes.stdout),
      };
    },

    /**
     * What the member the profile's endpoint names says of itself (`endpoint status`):
     * version, identity, revision; with `memberList`, every member's id (`member list`).
     */
    async readEtcdMemberStatus(
      input: PodRef & { profile: EtcdConnection; memberList?: boolean },
    ): Promise<EtcdMemberStatus> {
      return memberStatus(input);
    },

    /**
     * H1, before anything changes: the first member pod, in member order, whose etcd still
     * answers `endpoint status` on its own endpoint — the version the cluster really runs,
     * and its revision (how far clients may have seen). Undefined when none answers (every
     * member crash-looping): the image tag is then all there is.
     */
    async findAnsweringMember(
      input: ClusterRef & { profile: ClusterProfile; members: MemberPod[] },
    ): Promise<AnsweringMember | undefined> {
      for (const m of input.members) {
        if (m.phase !== 'Running' || m.waitingReason !== undefined) continue;
        heartbeat({ step: `etcdctl endpoint status in ${m.name}` });
        const pod = { ...input, pod: m.name, container: input.profile.etcdContainer };
        const status = await memberStatus(
          { ...pod, profile: memberProfile(input.profile, m.member) },
          MEMBER_STATUS_TIMEOUT_MS,
        ).catch(() => undefined);
        if (status) return { ...status, pod: m.name };
      }
      return undefined;
    },

    /**
     * After a restore with --mark-compacted: whether a read (`get --rev=R`, what a list at a
     * resourceVersion does) and a watch from R (what an informer resuming does) are refused
     * as compacted, asked from inside a pod. A watch etcd accepts stays open: it is ended
     * after WATCH_PROBE_MS and reported as not refused.
     */
    async probeCompactedRevision(
      input: PodRef & { profile: EtcdConnection; revision: number },
    ): Promise<CompactionProbe> {
      const config = kubeFor(input).config;
      const read = await execInPod(config, {
        ...podFile(input, '/'),
        argv: keyCountCommand(input.profile, input.revision),
        signal: cancellationSignal(),
        timeoutMs: COMMAND_TIMEOUT_MS,
      });
      const readAnswer = (() => {
        if (read.exitCode === 0)
          return { refused: false, detail: `answered: ${parseKeyCount(read.stdout)} keys` };
        const m = COMPACTED.exec(read.stderr);
        if (m) return { refused: true, detail: m[0] };
        throw new CommandFailedError('etcdctl get', read.exitCode, read.stderr);
      })();
      const watchAnswer = await execInPod(config, {
        ...podFile(input, '/'),
        argv: watchFromRevisionCommand(input.profile, input.revision),
        signal: cancellationSignal(),
        timeoutMs: WATCH_PROBE_MS,
      }).then(
        (watch) => {
          const m = COMPACTED.exec(`${watch.stdout}\n${watch.stderr}`);
          if (m) return { refused: true, detail: `watch canceled: ${m[0]}` };
          throw new CommandFailedError('etcdctl watch', watch.exitCode, watch.stderr);
        },
        (error: unknown) => {
          if (!(error instanceof ExecTimeoutError)) throw error;
          return {
            refused: false,
            detail: `the watch was still open after ${WATCH_PROBE_MS / 1000} s`,
          };
        },
      );
      return { revision: input.revision, read: readAnswer, watch: watchAnswer };
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
            memberIds: state.status.map((s) => s.memberId),
            revisions: state.status.map((s) => s.revision),
            versions: state.status.map((s) => s.version),
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
