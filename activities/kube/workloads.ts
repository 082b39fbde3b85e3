/**
 * StatefulSets and Deployments: read and set replica counts (H3, H7, H8), restart a
 * rollout (H6), and wait until the pods really are gone, ready, or recreated.
 */
import type { V1LabelSelector, V1Pod } from '@kubernetes/client-node';
import { type Kube, mergePatch } from './client.js';
import { type WaitOptions, waitUntil } from './wait.js';

export type WorkloadKind = 'StatefulSet' | 'Deployment';
export interface WorkloadRef {
  namespace: string;
  kind: WorkloadKind;
  name: string;
}

/** The annotation `kubectl rollout restart` sets on the pod template. */
export const RESTARTED_AT = 'kubectl.kubernetes.io/restartedAt';

interface WorkloadView {
  specReplicas: number;
  generation: number;
  observedGeneration: number;
  selector: string;
  restartedAt?: string;
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
    restartedAt: spec.template.metadata?.annotations?.[RESTARTED_AT],
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

/**
 * `kubectl rollout restart`: stamps the pod template with `restartedAt`. The caller passes
 * the stamp (a workflow-chosen time), so a retried call changes nothing more.
 */
export async function rolloutRestart(
  kube: Kube,
  ref: WorkloadRef,
  restartedAt: string,
): Promise<void> {
  const body = {
    spec: { template: { metadata: { annotations: { [RESTARTED_AT]: restartedAt } } } },
  };
  const request = { name: ref.name, namespace: ref.namespace, body };
  if (ref.kind === 'StatefulSet') await kube.apps.patchNamespacedStatefulSet(request, mergePatch);
  else await kube.apps.patchNamespacedDeployment(request, mergePatch);
}

/** Waits until every pod of the workload was recreated with the `restartedAt` stamp and is ready. */
export async function waitForRollout(
  kube: Kube,
  ref: WorkloadRef,
  restartedAt: string,
  options: WaitOptions,
): Promise<void> {
  await waitUntil(
    `${ref.kind} ${ref.namespace}/${ref.name} to finish its rollout restart`,
    async () => {
      const workload = await readWorkload(kube, ref);
      const pods = await listPods(kube, ref.namespace, workload.selector);
      const restarted = pods.filter((p) => p.metadata?.annotations?.[RESTARTED_AT] === restartedAt);
      const ready = restarted.filter(isPodReady).length;
      const done =
        workload.restartedAt === restartedAt &&
        pods.length === workload.specReplicas &&
        restarted.length === pods.length &&
        ready === workload.specReplicas;
      return {
        done,
        waitingFor: `${restarted.length}/${workload.specReplicas} pod(s) recreated, ${ready} ready`,
      };
    },
    options,
  );
}

export async function listPods(
  kube: Kube,
  namespace: string,
  labelSelector: string,
): Promise<V1Pod[]> {
  return (await kube.core.listNamespacedPod({ namespace, labelSelector })).items;
}

export function isPodReady(pod: V1Pod): boolean {
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
