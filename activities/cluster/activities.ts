/**
 * Activities that act on the admin cluster: the runbook's kubectl steps, and the names a
 * workflow gives resolved against the worker's configuration. Each is idempotent (a retry
 * after a crash at any instruction ends in the same state) and heartbeats while it waits,
 * so the Web UI shows what it is waiting for.
 */
import { ApplicationFailure } from '@temporalio/common';
import {
  type ClusterInventory,
  type ClusterProfile,
  type ClusterRef,
  FailureType,
  type MemberPod,
  memberPodName,
  type PdbManifest,
  type ResolvedTarget,
  type RestoreRecord,
  type SavedPdb,
  type SnapshotSource,
  utilityPodName,
  type WorkloadTarget,
} from '../../workflows/contract/index.js';
import type { WorkerTargets } from '../config/targets.js';
import { activityWait, heartbeat } from '../context.js';
import { type Kube, type KubeClients, readOptional } from '../kube/client.js';
import {
  deletePdb as deletePdbObject,
  recreatePdb as recreatePdbObject,
  savePdb as savePdbObject,
} from './pdb.js';
import {
  ClusterStateError,
  deletePodAndWait,
  ensurePod,
  findEtcdSecret,
  listMemberPods,
  utilityPodManifest,
  waitPodRunning,
} from './pods.js';
import { deleteRestoreRecord, readRestoreRecord, writeRestoreRecord } from './restore-record.js';
import {
  readReplicas,
  readStatefulSetShape,
  scaleWorkload,
  stopStatefulSet,
  waitForReplicas,
} from './workloads.js';

export function createClusterActivities(deps: { kube: KubeClients; targets: WorkerTargets }) {
  const kubeFor = (ref: ClusterRef) => deps.kube.forCluster(ref);

  /**
   * The user cluster's namespace, which must exist (not a lasting 404 retried for ever):
   * its uid, which says which cluster this is.
   */
  async function requireNamespace(kube: Kube, namespace: string): Promise<string> {
    const ns = await readOptional(() => kube.core.readNamespace({ name: namespace }));
    if (!ns)
      throw new ClusterStateError(`namespace ${namespace} does not exist in the admin cluster`);
    return ns.metadata?.uid ?? '';
  }

  /** The tag of the utility image gke-master-etcd-maintenance runs, if it runs that image. */
  async function maintenanceUtilityTag(
    kube: Kube,
    namespace: string,
    profile: ClusterProfile,
  ): Promise<string | undefined> {
    const deployment = await readOptional(() =>
      kube.apps.readNamespacedDeployment({ name: profile.maintenanceDeployment, namespace }),
    );
    for (const c of deployment?.spec?.template.spec?.containers ?? []) {
      const prefix = `${profile.utilityImageRepository}:`;
      if (c.image?.startsWith(prefix)) return c.image.slice(prefix.length);
    }
    return undefined;
  }

  return {
    /**
     * The names a workflow was given, resolved on this worker: the admin cluster and
     * repository (or the only ones), the admin cluster's profile; and checked: its
     * kubeconfig loads, and the user cluster is one of its user clusters. Refused at once
     * (InvalidInput) otherwise, before anything is done.
     */
    async resolveTarget(input: {
      adminCluster?: string;
      repository?: string;
      userClusterName: string;
    }): Promise<ResolvedTarget> {
      const admin = deps.targets.adminCluster(input.adminCluster);
      const repository = deps.targets.repository(input.repository).name;
      const kube = kubeFor({ adminCluster: admin.name, namespace: input.userClusterName });
      const namespace = input.userClusterName;
      const ns = await readOptional(() => kube.core.readNamespace({ name: namespace }));
      const rule = admin.config.userClusters;
      const notOne = (why: string) =>
        ApplicationFailure.nonRetryable(
          `userClusterName: ${namespace} is not a user cluster of admin cluster ${admin.name}: ${why}`,
          FailureType.InvalidInput,
        );
      if (!ns) throw notOne('there is no such namespace');
      if (rule && 'namespaces' in rule) {
        if (!rule.namespaces.includes(namespace))
          throw notOne(`the worker's configuration lists ${rule.namespaces.join(', ')}`);
      } else if (rule && 'labelSelector' in rule) {
        const matching = await kube.core.listNamespace({ labelSelector: rule.labelSelector });
        if (!matching.items.some((n) => n.metadata?.name === namespace))
          throw notOne(`its labels do not match ${rule.labelSelector}`);
      } else {
        const sts = await readOptional(() =>
          kube.apps.readNamespacedStatefulSet({ name: admin.profile.etcdStatefulSet, namespace }),
        );
        if (!sts) throw notOne(`it holds no StatefulSet ${admin.profile.etcdStatefulSet}`);
      }
      return {
        adminCluster: admin.name,
        repository,
        profile: admin.userClusterProfile(namespace),
      };
    },

    /**
     * H1, H4, R1 and the checks before any change: members, nodes, Secret, PVCs, replicas
     * and ready pods, how kube-etcd starts its pods, the PDB, and the record an abandoned
     * restore left. A required object that is missing fails at once (ClusterState).
     */
    async inspectUserCluster(
      input: ClusterRef & { profile: ClusterProfile },
    ): Promise<ClusterInventory> {
      const kube = kubeFor(input);
      const { namespace, profile } = input;
      const namespaceUid = await requireNamespace(kube, namespace);
      const ref = (kind: 'StatefulSet' | 'Deployment', name: string) => ({ namespace, kind, name });
      const etcdRef = ref('StatefulSet', profile.etcdStatefulSet);
      const [members, secretName, claims, nodes, etcd, apiserver, maintenance, pdb, shape, record] =
        await Promise.all([
          listMemberPods(kube, namespace, profile),
          findEtcdSecret(kube, namespace, profile.etcdSecretPrefix),
          kube.core.listNamespacedPersistentVolumeClaim({ namespace }),
          kube.core.listNode({}),
          readReplicas(kube, etcdRef),
          readReplicas(kube, ref('StatefulSet', profile.apiserverStatefulSet)),
          readReplicas(kube, ref('Deployment', profile.maintenanceDeployment)),
          savePdbObject(kube, namespace, profile.apiserverPdb),
          readStatefulSetShape(kube, etcdRef, profile.etcdContainer),
          readRestoreRecord(kube, namespace),
        ]);
      return {
        members,
        secretName,
        dataClaims: claims.items
          .map((c) => c.metadata?.name ?? '')
          .filter((n) => n.startsWith(`${profile.dataClaimPrefix}-`))
          .sort(),
        nodes: nodes.items.map((n) => n.metadata?.name ?? '').sort(),
        etcdReplicas: etcd.replicas,
        apiserverReplicas: apiserver.replicas,
        maintenanceReplicas: maintenance.replicas,
        ready: { etcd: etcd.ready, apiserver: apiserver.ready, maintenance: maintenance.ready },
        pdbPresent: pdb !== undefined,
        etcdStatefulSet: shape,
        namespaceUid,
        ...(record ? { previousRestore: record } : {}),
      };
    },

    /**
     * Backup preflight (B1): the namespace (and its uid), the etcd Secret, and a ready
     * member to take the snapshot from — the one asked for, or kube-etcd-0 as the runbook
     * does, or else the first ready member, saying why; and the utility image's tag the
     * cluster runs, should the backup need a utility pod.
     */
    async findSnapshotSource(
      input: ClusterRef & { profile: ClusterProfile; member?: number },
    ): Promise<SnapshotSource> {
      const kube = kubeFor(input);
      const { namespace, profile } = input;
      const namespaceUid = await requireNamespace(kube, namespace);
      const secretName = await findEtcdSecret(kube, namespace, profile.etcdSecretPrefix);
      const tag = await maintenanceUtilityTag(kube, namespace, profile);
      const found = { secretName, namespaceUid, ...(tag ? { utilityImageTag: tag } : {}) };
      const members = await listMemberPods(kube, namespace, profile);
      if (members.length === 0) {
        throw new ClusterStateError(
          `no ${profile.etcdStatefulSet}-N pod in namespace ${namespace}`,
        );
      }
      const describe = (m: MemberPod) =>
        `${m.name} (${m.waitingReason ?? m.phase ?? 'unknown'}${m.ready ? ', ready' : ''})`;
      if (input.member !== undefined) {
        const chosen = members.find((m) => m.member === input.member);
        if (!chosen?.ready) {
          throw new ClusterStateError(
            `member ${input.member} was asked for, but ${chosen ? `${describe(chosen)} is not ready` : 'it has no pod'}`,
          );
        }
        return { ...sourceOf(chosen), ...found, reason: `member ${input.member} as asked` };
      }
      const first = members.find((m) => m.member === 0);
      const firstName = memberPodName(profile, 0);
      if (first?.ready)
        return { ...sourceOf(first), ...found, reason: `${firstName}, as the runbook does` };
      const ready = members.find((m) => m.ready);
      if (!ready) {
        throw new ClusterStateError(
          `no etcd member of ${namespace} is ready: ${members.map(describe).join(', ')}`,
        );
      }
      return {
        ...sourceOf(ready),
        ...found,
        reason: `${ready.name}: ${first ? describe(first) : `${firstName} has no pod`}, so the first ready member`,
      };
    },

    /**
     * H3, H7, H8: scale and wait until the pods are gone, or there and `minReady` of them
     * ready (all by default; an undo waits only for what was ready at inspection).
     */
    async scaleTo(
      input: WorkloadTarget & { replicas: number; minReady?: number; timeoutMs: number },
    ): Promise<void> {
      const kube = kubeFor(input);
      const step = `scale ${input.kind} ${input.name} to ${input.replicas}`;
      heartbeat({ step });
      await scaleWorkload(kube, input, input.replicas);
      await waitForReplicas(kube, input, input.replicas, {
        ...activityWait(step, input.timeoutMs),
        ...(input.minReady !== undefined ? { minReady: input.minReady } : {}),
      });
    },

    /**
     * Stops every etcd member and keeps them stopped: kube-etcd at 0 and each member pod
     * deleted and gone, also where OrderedReady would not scale down past a crash-looping
     * member. Returns the pods it had to delete (none when they were already gone).
     */
    async stopEtcdMembers(
      input: WorkloadTarget & { timeoutMs: number; staysStoppedMs?: number },
    ): Promise<string[]> {
      const step = `stop StatefulSet ${input.name}`;
      heartbeat({ step });
      return stopStatefulSet(kubeFor(input), input, {
        ...activityWait(step, input.timeoutMs),
        ...(input.staysStoppedMs !== undefined ? { staysStoppedMs: input.staysStoppedMs } : {}),
      });
    },

    /** H2 (first half): the PDB as a manifest for the workflow's history; undefined if none. */
    async savePdb(input: ClusterRef & { name: string }): Promise<SavedPdb | undefined> {
      return savePdbObject(kubeFor(input), input.namespace, input.name);
    },

    /** H2 (second half): delete the PDB that was saved (by uid); already gone is success. */
    async deletePdb(
      input: ClusterRef & { name: string; uid?: string },
    ): Promise<'deleted' | 'absent'> {
      return deletePdbObject(kubeFor(input), input.namespace, input.name, input.uid);
    },

    /** H9: re-create the PDB from the saved manifest; present with the same spec is success. */
    async recreatePdb(
      input: ClusterRef & { manifest: PdbManifest },
    ): Promise<'created' | 'present'> {
      return recreatePdbObject(kubeFor(input), input.manifest);
    },

    /**
     * Before the first change: the originals (replica counts, the PDB) recorded on the
     * cluster. A record an abandoned restore left is kept, not overwritten: returned as it is.
     */
    async recordRestore(input: ClusterRef & { record: RestoreRecord }): Promise<RestoreRecord> {
      return writeRestoreRecord(kubeFor(input), input.namespace, input.record);
    },

    /** Everything is back as recorded: the record goes. */
    async clearRestoreRecord(input: ClusterRef): Promise<void> {
      await deleteRestoreRecord(kubeFor(input), input.namespace);
    },

    /**
     * R2, H5a: the utility pod of SPEC.md's manifest on the member's node, Running. One that
     * ended (evicted, failed) is replaced; one that is still there is kept. For a backup
     * (`purpose: 'backup'`) the same pod without the member's data volume: it only reads
     * the member over the network.
     */
    async ensureUtilityPod(
      input: ClusterRef & {
        member: number;
        nodeName: string;
        gkeOnPremVersion: string;
        secretName: string;
        profile: ClusterProfile;
        timeoutMs: number;
        purpose?: 'restore' | 'backup';
      },
    ): Promise<{ pod: string; created: boolean }> {
      const kube = kubeFor(input);
      const manifest = utilityPodManifest({ ...input, namespace: input.namespace });
      const pod = utilityPodName(input.profile, input.member);
      const step = `utility pod ${pod}`;
      heartbeat({ step });
      const outcome = await ensurePod(kube, manifest, activityWait(step, input.timeoutMs));
      await waitPodRunning(kube, input.namespace, pod, activityWait(step, input.timeoutMs));
      return { pod, created: outcome === 'created' };
    },

    /** R9, H5g: delete a pod and wait until it is gone (already gone is success). */
    async deletePod(
      input: ClusterRef & { name: string; timeoutMs: number },
    ): Promise<'deleted' | 'absent'> {
      return deletePodAndWait(
        kubeFor(input),
        input.namespace,
        input.name,
        activityWait(`delete pod ${input.name}`, input.timeoutMs),
      );
    },
  };
}

function sourceOf(m: MemberPod) {
  return { member: m.member, pod: m.name, nodeName: m.nodeName };
}
