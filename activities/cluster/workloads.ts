/**
 * StatefulSets and Deployments: read and set replica counts (H3, H7, H8), wait until the
 * pods really are gone or ready, and stop a StatefulSet's pods even where its controller
 * will not (OrderedReady does not scale down past a pod that is not Ready: a crash-looping
 * etcd member). H6's `rollout restart` is done by scaling: see workflows/restore/steps.ts.
 */
import type { V1LabelSelector, V1Pod, V1Probe, V1StatefulSet } from '@kubernetes/client-node';
import type { EtcdStatefulSetShape, WorkloadKind } from '../../workflows/contract/index.js';
import { type Kube, mergePatch, readOptional } from '../kube/client.js';
import { type WaitOptions, waitUntil } from '../kube/wait.js';
import { ClusterStateError, deletePodAndWait } from './pods.js';

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

/**
 * The replica count the workload asks for and its pods Ready now. A workload that does not
 * exist is a ClusterStateError: the runbook cannot run without it, and no retry brings it.
 */
export async function readReplicas(
  kube: Kube,
  ref: WorkloadRef,
): Promise<{ replicas: number; ready: number }> {
  const workload = await readOptional(() => readWorkload(kube, ref));
  if (!workload) {
    throw new ClusterStateError(`${ref.kind} ${ref.namespace}/${ref.name} does not exist`);
  }
  const pods = await listPods(kube, ref.namespace, workload.selector);
  return { replicas: workload.specReplicas, ready: pods.filter(isPodReady).length };
}

/** How kube-etcd's pods are started and probed (H6 depends on it). */
export async function readStatefulSetShape(
  kube: Kube,
  ref: WorkloadRef,
  container: string,
): Promise<EtcdStatefulSetShape> {
  const sts: V1StatefulSet = await kube.apps.readNamespacedStatefulSet({
    name: ref.name,
    namespace: ref.namespace,
  });
  const probe = sts.spec?.template.spec?.containers.find(
    (c) => c.name === container,
  )?.readinessProbe;
  return {
    podManagementPolicy: sts.spec?.podManagementPolicy === 'Parallel' ? 'Parallel' : 'OrderedReady',
    ...classifyReadiness(probe),
  };
}

/**
 * Whether a restored member can pass a readiness probe before its cluster has a quorum. Only
 * probes that do not go through etcd's client API can (`alone`): a TCP port, and etcd's HTTP
 * `/health?serializable=true` (kubeadm's) or `/livez`. A member that starts without a quorum
 * answers no client request — not even a serializable read — until its cluster has a
 * leader, so every other probe, and any we cannot read, is taken to need quorum.
 */
export function classifyReadiness(
  probe: V1Probe | undefined,
): Pick<EtcdStatefulSetShape, 'readiness' | 'readinessProbe'> {
  if (!probe) return { readiness: 'none' };
  if (probe.tcpSocket) return { readiness: 'alone', readinessProbe: `tcp ${probe.tcpSocket.port}` };
  if (probe.httpGet) {
    const path = probe.httpGet.path ?? '/';
    const alone = /serializable=true/.test(path) || path.startsWith('/livez');
    return { readiness: alone ? 'alone' : 'quorum', readinessProbe: `http ${path}` };
  }
  return {
    readiness: 'quorum',
    readinessProbe: `exec ${probe.exec?.command?.join(' ') ?? JSON.stringify(probe)}`,
  };
}

/** Sets spec.replicas through the scale subresource, as `kubectl scale` does. Idempotent. */
export async function scaleWorkload(kube: Kube, ref: WorkloadRef, replicas: number): Promise<void> {
  const request = { name: ref.name, namespace: ref.namespace, body: { spec: { replicas } } };
  if (ref.kind === 'StatefulSet')
    await kube.apps.patchNamespacedStatefulSetScale(request, mergePatch);
  else await kube.apps.patchNamespacedDeploymentScale(request, mergePatch);
}

/**
 * Waits until the workload has exactly `replicas` pods, at least `minReady` of them ready
 * (all, unless told otherwise) — for 0, until every pod is gone (not merely terminating),
 * since a terminating etcd client may still write.
 */
export async function waitForReplicas(
  kube: Kube,
  ref: WorkloadRef,
  replicas: number,
  options: WaitOptions & { minReady?: number },
): Promise<void> {
  const minReady = Math.min(options.minReady ?? replicas, replicas);
  await waitUntil(
    `${ref.kind} ${ref.namespace}/${ref.name} to have ${replicas} pod(s), ${minReady} ready`,
    async () => {
      const workload = await readWorkload(kube, ref);
      const pods = await listPods(kube, ref.namespace, workload.selector);
      const ready = pods.filter(isPodReady).length;
      const done =
        workload.observedGeneration >= workload.generation &&
        pods.length === replicas &&
        ready >= minReady;
      return {
        done,
        waitingFor: `${pods.length} pod(s), ${ready} ready, want ${replicas} with ${minReady} ready`,
      };
    },
    options,
  );
}

/** Something else started a StatefulSet again that had to stay stopped. */
export class StartedAgainError extends Error {
  override name = 'StartedAgainError';
}

/**
 * Stops every pod of a StatefulSet: replicas 0, then each pod still there deleted, highest
 * ordinal first, and waited out — an OrderedReady StatefulSet does not delete past a pod
 * that is not Running and Ready, and a crash-looping etcd member is not. With replicas 0
 * the controller does not re-create them; something else may (a reconciling controller):
 * with `staysStoppedMs` it is watched that long, and StartedAgainError says if it comes
 * back. Returns the pods deleted here.
 */
export async function stopStatefulSet(
  kube: Kube,
  ref: WorkloadRef,
  options: WaitOptions & { staysStoppedMs?: number },
): Promise<string[]> {
  await scaleWorkload(kube, ref, 0);
  const workload = await readWorkload(kube, ref);
  const pods = await listPods(kube, ref.namespace, workload.selector);
  const ordinal = (p: V1Pod) => Number(/-(\d+)$/.exec(p.metadata?.name ?? '')?.[1] ?? -1);
  const deleted: string[] = [];
  for (const pod of pods.sort((a, b) => ordinal(b) - ordinal(a))) {
    const name = pod.metadata?.name ?? '';
    if ((await deletePodAndWait(kube, ref.namespace, name, options)) === 'deleted') {
      deleted.push(name);
    }
  }
  await waitForReplicas(kube, ref, 0, options);
  const until = Date.now() + (options.staysStoppedMs ?? 0);
  while (Date.now() < until) {
    options.signal?.throwIfAborted();
    options.onTick?.(`${ref.name} to stay at 0 replicas`);
    await new Promise((resolve) => setTimeout(resolve, Math.min(500, until - Date.now())));
    await assertStopped(kube, ref);
  }
  return deleted;
}

/**
 * Fails with StartedAgainError unless the StatefulSet asks for no pod and has none: checked
 * right before and after each member's swap, so data is never swapped under a running etcd.
 */
export async function assertStopped(kube: Kube, ref: WorkloadRef): Promise<void> {
  const workload = await readWorkload(kube, ref);
  const pods = await listPods(kube, ref.namespace, workload.selector);
  if (workload.specReplicas === 0 && pods.length === 0) return;
  const names = pods.map((p) => p.metadata?.name).join(', ') || 'none yet';
  throw new StartedAgainError(
    `${ref.kind} ${ref.namespace}/${ref.name} was started again by something else ` +
      `(replicas ${workload.specReplicas}, pods: ${names}) while the restore needs it stopped`,
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
