/**
 * Pods of the runbook: the etcd Secret (R1), the etcd members' pods and nodes (H1, H4),
 * and the utility pod of SPEC.md's manifest (R2, H5a, H5g).
 */
import type { V1Pod } from '@kubernetes/client-node';
import {
  type ClusterProfile,
  dataClaimName,
  type MemberPod,
  memberNumberOf,
  utilityPodName,
} from '../../workflows/contract/index.js';
import {
  isAlreadyExists,
  isNotFound,
  type Kube,
  metadataOnly,
  readOptional,
} from '../kube/client.js';
import { type WaitOptions, waitUntil } from '../kube/wait.js';

/** The cluster is not in the state the runbook expects; retrying will not change that. */
export class ClusterStateError extends Error {
  override name = 'ClusterStateError';
}

/** R1: the one Secret whose name starts with the profile's prefix; only names are read. */
export async function findEtcdSecret(
  kube: Kube,
  namespace: string,
  prefix: string,
): Promise<string> {
  // Metadata only: the worker never receives the Secrets' keys to learn one name.
  const secrets = (await kube.core.listNamespacedSecret({ namespace }, metadataOnly)).items;
  const names = secrets.map((s) => s.metadata?.name ?? '').filter((n) => n.startsWith(prefix));
  if (names.length !== 1) {
    throw new ClusterStateError(
      names.length === 0
        ? `no Secret in namespace ${namespace} starts with ${prefix}`
        : `more than one Secret in namespace ${namespace} starts with ${prefix}: ${names.join(', ')}`,
    );
  }
  return names[0] as string;
}

/** H1/H4: the etcd member pods with their nodes and images, by member number. */
export async function listMemberPods(
  kube: Kube,
  namespace: string,
  profile: ClusterProfile,
): Promise<MemberPod[]> {
  const pods = (await kube.core.listNamespacedPod({ namespace })).items;
  return pods
    .filter((p) => memberNumberOf(profile, p.metadata?.name ?? '') !== undefined)
    .map((p) => describeMemberPod(p, profile))
    .sort((a, b) => a.member - b.member);
}

function describeMemberPod(pod: V1Pod, profile: ClusterProfile): MemberPod {
  const name = pod.metadata?.name ?? '';
  const container = pod.spec?.containers.find((c) => c.name === profile.etcdContainer);
  const status = pod.status?.containerStatuses?.find((c) => c.name === profile.etcdContainer);
  return {
    name,
    member: memberNumberOf(profile, name) as number,
    nodeName: pod.spec?.nodeName,
    image: container?.image,
    phase: pod.status?.phase,
    ready: status?.ready ?? false,
    restartCount: status?.restartCount ?? 0,
    waitingReason: status?.state?.waiting?.reason,
    uid: pod.metadata?.uid,
  };
}

export interface UtilityPodParams {
  namespace: string;
  member: number;
  nodeName: string;
  gkeOnPremVersion: string;
  secretName: string;
  profile: ClusterProfile;
  /** `backup`: without the member's data volume (a backup reads the member over the network). */
  purpose?: 'restore' | 'backup';
}

/** SPEC.md's utility pod manifest, with the runbook's placeholders filled in. */
export function utilityPodManifest(params: UtilityPodParams): V1Pod {
  const { namespace, member, nodeName, gkeOnPremVersion, secretName, profile } = params;
  const withData = params.purpose !== 'backup';
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: utilityPodName(profile, member), namespace },
    spec: {
      containers: [
        {
          command: ['/bin/sh'],
          args: ['-ec', "while :; do echo '.'; sleep 5 ; done"],
          image: `${profile.utilityImageRepository}:${gkeOnPremVersion}`,
          name: profile.utilityContainer,
          volumeMounts: [
            ...(withData ? [{ mountPath: profile.dataDir, name: 'data' }] : []),
            { mountPath: profile.certificatesDir, name: 'etcd-certs' },
          ],
        },
      ],
      nodeSelector: {
        [profile.clusterNameLabel]: namespace,
        'kubernetes.io/hostname': nodeName,
      },
      tolerations: [
        {
          effect: 'NoExecute',
          key: 'node.kubernetes.io/not-ready',
          operator: 'Exists',
          tolerationSeconds: 300,
        },
        {
          effect: 'NoExecute',
          key: 'node.kubernetes.io/unreachable',
          operator: 'Exists',
          tolerationSeconds: 300,
        },
        { effect: 'NoSchedule', key: 'node.kubernetes.io/unschedulable', operator: 'Exists' },
      ],
      volumes: [
        ...(withData
          ? [{ name: 'data', persistentVolumeClaim: { claimName: dataClaimName(profile, member) } }]
          : []),
        { name: 'etcd-certs', secret: { defaultMode: 420, secretName } },
      ],
    },
  };
}

/** The parts of a pod spec that make it "the same pod" for ensurePod. */
function podIdentity(pod: V1Pod): string {
  const spec = pod.spec;
  return JSON.stringify({
    containers: spec?.containers.map((c) => ({
      name: c.name,
      image: c.image,
      command: c.command,
      args: c.args,
    })),
    nodeSelector: spec?.nodeSelector,
    volumes: spec?.volumes?.map((v) => ({
      name: v.name,
      claim: v.persistentVolumeClaim?.claimName,
      secret: v.secret?.secretName,
    })),
  });
}

/**
 * Creates the pod. One already there with the same spec is success; one still
 * terminating is waited out and created again; a different one is a clear failure.
 */
export async function ensurePod(
  kube: Kube,
  manifest: V1Pod,
  options: WaitOptions,
): Promise<'created' | 'present'> {
  const namespace = manifest.metadata?.namespace ?? '';
  const name = manifest.metadata?.name ?? '';
  for (;;) {
    try {
      await kube.core.createNamespacedPod({ namespace, body: manifest });
      return 'created';
    } catch (error) {
      if (!isAlreadyExists(error)) throw error;
    }
    const present = await readOptional(() => kube.core.readNamespacedPod({ name, namespace }));
    if (!present) continue;
    if (present.metadata?.deletionTimestamp) {
      await waitPodGone(kube, namespace, name, present.metadata.uid, options);
      continue;
    }
    // A pod that ended (evicted, its node lost, its container exited) is no utility pod.
    if (present.status?.phase === 'Failed' || present.status?.phase === 'Succeeded') {
      await deletePodAndWait(kube, namespace, name, options);
      continue;
    }
    if (podIdentity(present) === podIdentity(manifest)) return 'present';
    throw new ClusterStateError(
      `pod ${namespace}/${name} already exists with a different spec; delete it or let the workflow's owner decide`,
    );
  }
}

/** Waits until the pod is Running with its containers ready (a utility pod has no probe). */
export async function waitPodRunning(
  kube: Kube,
  namespace: string,
  name: string,
  options: WaitOptions,
): Promise<V1Pod> {
  let running: V1Pod | undefined;
  await waitUntil(
    `pod ${namespace}/${name} to be Running`,
    async () => {
      const pod = await readOptional(() => kube.core.readNamespacedPod({ name, namespace }));
      const ready = pod?.status?.containerStatuses?.every((c) => c.ready) ?? false;
      const done = pod?.status?.phase === 'Running' && ready && !pod.metadata?.deletionTimestamp;
      if (done) running = pod;
      const waiting = pod?.status?.containerStatuses?.find((c) => c.state?.waiting)?.state?.waiting
        ?.reason;
      return {
        done,
        waitingFor: pod
          ? `phase ${pod.status?.phase ?? '?'}${waiting ? `, ${waiting}` : ''}`
          : 'pod absent',
      };
    },
    options,
  );
  return running as V1Pod;
}

/** Deletes the pod (gone already is success) and waits until that pod, by uid, is gone. */
export async function deletePodAndWait(
  kube: Kube,
  namespace: string,
  name: string,
  options: WaitOptions,
): Promise<'deleted' | 'absent'> {
  const pod = await readOptional(() => kube.core.readNamespacedPod({ name, namespace }));
  if (!pod) return 'absent';
  try {
    await kube.core.deleteNamespacedPod({ name, namespace });
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
  await waitPodGone(kube, namespace, name, pod.metadata?.uid, options);
  return 'deleted';
}

/** Gone = 404, or a pod of that name with another uid (a StatefulSet recreated it). */
async function waitPodGone(
  kube: Kube,
  namespace: string,
  name: string,
  uid: string | undefined,
  options: WaitOptions,
): Promise<void> {
  await waitUntil(
    `pod ${namespace}/${name} to be gone`,
    async () => {
      const pod = await readOptional(() => kube.core.readNamespacedPod({ name, namespace }));
      const done = !pod || (uid !== undefined && pod.metadata?.uid !== uid);
      return { done, waitingFor: 'pod still terminating' };
    },
    options,
  );
}
