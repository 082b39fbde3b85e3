/**
 * Activities that act on the admin cluster: the runbook's kubectl steps. Each is
 * idempotent (a retry after a crash at any instruction ends in the same state) and
 * heartbeats while it waits, so the Web UI shows what it is waiting for.
 */
import type { ClusterProfile } from '../workflows/schemas.js';
import { activityWait, type ClusterRef, kubeResolver } from './activity-kube.js';
import { readOptional } from './kube/client.js';
import {
  deletePdb as deletePdbObject,
  type PdbManifest,
  recreatePdb as recreatePdbObject,
  savePdb as savePdbObject,
} from './kube/pdb.js';
import {
  ClusterStateError,
  deletePodAndWait,
  ensurePod,
  findEtcdSecret,
  listMemberPods,
  type MemberPod,
  utilityPodManifest,
  utilityPodName,
  waitPodRunning,
} from './kube/pods.js';
import {
  readReplicas as readWorkloadReplicas,
  rolloutRestart as restartWorkload,
  scaleWorkload,
  type WorkloadKind,
  waitForReplicas,
  waitForRollout,
} from './kube/workloads.js';
import { heartbeat } from './temporal-context.js';

export type { ClusterRef };

export interface WorkloadTarget extends ClusterRef {
  kind: WorkloadKind;
  name: string;
}

/** What preflight learns of a user cluster (H1, H4, R1) before anything changes. */
export interface ClusterInventory {
  members: MemberPod[];
  secretName: string;
  /** PVC name per member, as found. */
  dataClaims: string[];
  nodes: string[];
  etcdReplicas: number;
  apiserverReplicas: number;
  maintenanceReplicas: number;
  pdbPresent: boolean;
}

export interface ClusterActivityDeps {
  defaultKubeconfig?: string;
}

export function createClusterActivities(deps: ClusterActivityDeps) {
  const kubeFor = kubeResolver(deps.defaultKubeconfig);

  return {
    /** H1, H4, R1 and the checks before any change: members, nodes, Secret, PVCs, replicas, PDB. */
    async inspectUserCluster(
      input: ClusterRef & { profile: ClusterProfile },
    ): Promise<ClusterInventory> {
      const kube = kubeFor(input);
      const { namespace, profile } = input;
      const ns = await readOptional(() => kube.core.readNamespace({ name: namespace }));
      if (!ns)
        throw new ClusterStateError(`namespace ${namespace} does not exist in the admin cluster`);
      const etcdRef = { namespace, kind: 'StatefulSet' as const, name: profile.etcdStatefulSet };
      const [
        members,
        secretName,
        claims,
        nodes,
        etcdReplicas,
        apiserverReplicas,
        maintenanceReplicas,
        pdb,
      ] = await Promise.all([
        listMemberPods(kube, namespace, profile),
        findEtcdSecret(kube, namespace, profile.etcdSecretPrefix),
        kube.core.listNamespacedPersistentVolumeClaim({ namespace }),
        kube.core.listNode({}),
        readWorkloadReplicas(kube, etcdRef),
        readWorkloadReplicas(kube, {
          namespace,
          kind: 'StatefulSet',
          name: profile.apiserverStatefulSet,
        }),
        readWorkloadReplicas(kube, {
          namespace,
          kind: 'Deployment',
          name: profile.maintenanceDeployment,
        }),
        savePdbObject(kube, namespace, profile.apiserverPdb),
      ]);
      return {
        members,
        secretName,
        dataClaims: claims.items
          .map((c) => c.metadata?.name ?? '')
          .filter((n) => n.startsWith(`${profile.dataClaimPrefix}-`))
          .sort(),
        nodes: nodes.items.map((n) => n.metadata?.name ?? '').sort(),
        etcdReplicas,
        apiserverReplicas,
        maintenanceReplicas,
        pdbPresent: pdb !== undefined,
      };
    },

    /**
     * Backup preflight (B1): the namespace, the etcd Secret, and a ready member to take
     * the snapshot from — the one asked for, or kube-etcd-0 as the runbook does, or else
     * the first ready member, saying why.
     */
    async findSnapshotSource(
      input: ClusterRef & { profile: ClusterProfile; member?: number },
    ): Promise<{
      member: number;
      pod: string;
      nodeName?: string;
      secretName: string;
      reason: string;
    }> {
      const kube = kubeFor(input);
      const { namespace, profile } = input;
      const ns = await readOptional(() => kube.core.readNamespace({ name: namespace }));
      if (!ns)
        throw new ClusterStateError(`namespace ${namespace} does not exist in the admin cluster`);
      const secretName = await findEtcdSecret(kube, namespace, profile.etcdSecretPrefix);
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
        return { ...sourceOf(chosen), secretName, reason: `member ${input.member} as asked` };
      }
      const first = members.find((m) => m.member === 0);
      if (first?.ready)
        return { ...sourceOf(first), secretName, reason: 'kube-etcd-0, as the runbook does' };
      const ready = members.find((m) => m.ready);
      if (!ready) {
        throw new ClusterStateError(
          `no etcd member of ${namespace} is ready: ${members.map(describe).join(', ')}`,
        );
      }
      return {
        ...sourceOf(ready),
        secretName,
        reason: `${ready.name}: ${first ? describe(first) : 'kube-etcd-0 has no pod'}, so the first ready member`,
      };
    },

    /** The replica count a workload asks for; read before scaling it down (H3). */
    async readReplicas(input: WorkloadTarget): Promise<number> {
      return readWorkloadReplicas(kubeFor(input), input);
    },

    /** H3, H7, H8: scale and wait until the pods are really gone or ready. */
    async scaleTo(input: WorkloadTarget & { replicas: number; timeoutMs: number }): Promise<void> {
      const kube = kubeFor(input);
      const step = `scale ${input.kind} ${input.name} to ${input.replicas}`;
      heartbeat({ step });
      await scaleWorkload(kube, input, input.replicas);
      await waitForReplicas(kube, input, input.replicas, activityWait(step, input.timeoutMs));
    },

    /** H6: `kubectl rollout restart`, stamped with the workflow's time, then wait for every pod. */
    async rolloutRestart(
      input: WorkloadTarget & { restartedAt: string; timeoutMs: number },
    ): Promise<void> {
      const kube = kubeFor(input);
      const step = `rollout restart ${input.kind} ${input.name}`;
      heartbeat({ step });
      await restartWorkload(kube, input, input.restartedAt);
      await waitForRollout(kube, input, input.restartedAt, activityWait(step, input.timeoutMs));
    },

    /** H2 (first half): the PDB as a manifest for the workflow's history; undefined if none. */
    async savePdb(input: ClusterRef & { name: string }): Promise<PdbManifest | undefined> {
      return savePdbObject(kubeFor(input), input.namespace, input.name);
    },

    /** H2 (second half): delete the PDB; already gone is success. */
    async deletePdb(input: ClusterRef & { name: string }): Promise<'deleted' | 'absent'> {
      return deletePdbObject(kubeFor(input), input.namespace, input.name);
    },

    /** H9: re-create the PDB from the saved manifest; present with the same spec is success. */
    async recreatePdb(
      input: ClusterRef & { manifest: PdbManifest },
    ): Promise<'created' | 'present'> {
      return recreatePdbObject(kubeFor(input), input.manifest);
    },

    /** R2, H5a: the utility pod of SPEC.md's manifest on the member's node, Running. */
    async ensureUtilityPod(
      input: ClusterRef & {
        member: number;
        nodeName: string;
        gkeOnPremVersion: string;
        secretName: string;
        profile: ClusterProfile;
        timeoutMs: number;
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

    /** R7, R9, H5g: delete a pod and wait until it is gone (already gone is success). */
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

export type ClusterActivities = ReturnType<typeof createClusterActivities>;
