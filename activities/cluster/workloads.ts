/**
 * StatefulSets and Deployments: read and set replica counts (H3, H7, H8) and wait until
 * the pods really are gone or ready. (H6's `rollout restart` is done by scaling: see
 * stopEtcdMembers in workflows/restore/steps.ts.)
 */
import type { V1LabelSelector, V1Pod } from '@kubernetes/client-node';
import type { WorkloadKind } from '../../workflows/contract/index.js';
import { type Kube, mergePatch } from '../kube/client.js';
import { type WaitOptions, waitUntil } from '../kube/wait.js';

export interface WorkloadRef {
  namespace: string;
  kind: WorkloadKind;
  name: string;
}

interface WorkloadView {
  specReplicas: number;
  generation: number;
  observedGeneration: number;
  selector: string;
}

async function readWorkload(kube: Kube, ref: WorkloadRef): Promise<WorkloadView> {
  const { namespace, name } = ref;
  const object =
    ref.kind === 'StatefulSet'
      ? await kube.apps.readNamespacedStatefulSet({ name, namespace })
      : await kube.apps.readNamespacedDeployment({ name, namespace });
  const spec = object.spec;
  if (!spec) throw new Error(`${ref.kind} ${namespace}/${name} has no spec`);
  return {
    specReplicas: spec.replicas ?? 1,
    generation: object.metadata?.generation ?? 0,
    observedGeneration: object.status?.observedGeneration ?? 0,
    selector: labelSelectorString(spec.selector),
  };
}

/** The replica count the workload asks for (spec.replicas). */
export async function readReplicas(kube: Kube, ref: WorkloadRef): Promise<number> {
  return (await readWorkload(kube, ref)).specReplicas;
}

/** Sets spec.replicas through the scale subresource, as `kubectl scale` does. Idempotent. */
export async function scaleWorkload(kube: Kube, ref: WorkloadRef, replicas: number): Promise<void> {
  const request = { name: ref.name, namespace: ref.namespace, body: { spec: { replicas } } };
  if (ref.kind === 'StatefulSet')
    await kube.apps.patchNamespacedStatefulSetScale(request, mergePatch);
  else await kube.apps.patchNamespacedDeploymentScale(request, mergePatch);
}

/**
 * Waits until the workload has exactly `replicas` pods, all ready — for 0, until every pod
 * is gone (not merely terminating), since a terminating etcd client may still write.
 */
export async function waitForReplicas(
  kube: Kube,
  ref: WorkloadRef,
  replicas: number,
  options: WaitOptions,
): Promise<void> {
  await waitUntil(
    `${ref.kind} ${ref.namespace}/${ref.name} to have ${replicas} ready pod(s)`,
    async () => {
      const workload = await readWorkload(kube, ref);
      const pods = await listPods(kube, ref.namespace, workload.selector);
      const ready = pods.filter(isPodReady).length;
      const done =
        workload.observedGeneration >= workload.generation &&
        pods.length === replicas &&
        ready === replicas;
      return { done, waitingFor: `${pods.length} pod(s), ${ready} ready, want ${replicas}` };
    },
    options,
  );
}

async function listPods(kube: Kube, namespace: string, labelSelector: string): Promise<V1Pod[]> {
  return (await kube.core.listNamespacedPod({ namespace, labelSelector })).items;
}

function isPodReady(pod: V1Pod): boolean {
  if (pod.metadata?.deletionTimestamp) return false;
  return pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;
}

function labelSelectorString(selector: V1LabelSelector | undefined): string {
  const labels = selector?.matchLabels ?? {};
  if (Object.keys(labels).length === 0 || (selector?.matchExpressions?.length ?? 0) > 0) {
    throw new Error('only workloads selected by matchLabels are supported');
  }
  return Object.entries(labels)
    .map(([key, value]) => `${key}=${value}`)
    .join(',');
}
