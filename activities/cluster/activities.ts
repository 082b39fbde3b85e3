/**
 * Activities that act on the admin cluster: the runbook's kubectl steps. Each is
 * idempotent (a retry after a crash at any instruction ends in the same state) and
 * heartbeats while it waits, so the Web UI shows what it is waiting for.
 */
import {
  type ClusterInventory,
  type ClusterProfile,
  type ClusterRef,
  type MemberPod,
  type PdbManifest,
  type SnapshotSource,
  utilityPodName,
  type WorkloadTarget,
} from '../../workflows/contract/index.js';
import { activityWait, heartbeat } from '../context.js';
import { type KubeClients, readOptional } from '../kube/client.js';
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
import { readReplicas, scaleWorkload, waitForReplicas } from './workloads.js';

export function createClusterActivities(deps: { kube: KubeClients }) {
  const kubeFor = (ref: ClusterRef) => deps.kube.forCluster(ref);

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
        readReplicas(kube, etcdRef),
        readReplicas(kube, {
          namespace,
          kind: 'StatefulSet',
          name: profile.apiserverStatefulSet,
        }),
        readReplicas(kube, {
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
    ): Promise<SnapshotSource> {
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

    /** H3, H7, H8: scale and wait until the pods are really gone or ready. */
    async scaleTo(input: WorkloadTarget & { replicas: number; timeoutMs: number }): Promise<void> {
      const kube = kubeFor(input);
      const step = `scale ${input.kind} ${input.name} to ${input.replicas}`;
      heartbeat({ step });
      await scaleWorkload(kube, input, input.replicas);
      await waitForReplicas(kube, input, input.replicas, activityWait(step, input.timeoutMs));
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
