/**
 * Control loops: scheduler, PVC provisioner, StatefulSet, Deployment and PDB status, and
 * namespace deletion. Each pass reads the store and writes only what differs.
 */
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { pvcDir } from './kubelet.js';
import { mountSizeLimited, quantity, unmountSizeLimited } from './mounts.js';
import { ApiError, matchesSelector, resourceByPlural, type Store } from './store.js';
import {
  clone,
  type Deployment,
  type KObject,
  type NodeObj,
  type Pdb,
  type Pod,
  type PodTemplate,
  type Pvc,
  type StatefulSet,
} from './types.js';

function def(group: string, plural: string) {
  const d = resourceByPlural(group, plural);
  if (!d) throw new Error(`no resource ${plural}`);
  return d;
}
const PODS = def('', 'pods');
const NODES = def('', 'nodes');
const PVCS = def('', 'persistentvolumeclaims');
const NAMESPACES = def('', 'namespaces');
const STS = def('apps', 'statefulsets');
const DEPLOY = def('apps', 'deployments');
const PDBS = def('policy', 'poddisruptionbudgets');
const SECRETS = def('', 'secrets');
const CONFIGMAPS = def('', 'configmaps');

export const SELECTED_NODE = 'volume.kubernetes.io/selected-node';

export function isReady(pod: Pod): boolean {
  return (
    !pod.metadata.deletionTimestamp &&
    pod.status?.phase === 'Running' &&
    (pod.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True')
  );
}

/** stateful_set_utils.go isRunningAndReady: phase Running and condition Ready. */
export function isRunningAndReady(pod: Pod): boolean {
  return (
    pod.status?.phase === 'Running' &&
    (pod.status.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True')
  );
}

/** isHealthy: Running and Ready, and not terminating. */
function isHealthy(pod: Pod): boolean {
  return isRunningAndReady(pod) && !pod.metadata.deletionTimestamp;
}

/** The ordinal of `<set>-<n>`, or -1. */
function ordinalOf(podName: string, setName: string): number {
  const m = podName.match(/^(.*)-([0-9]+)$/);
  return m && m[1] === setName ? Number(m[2]) : -1;
}

function templateHash(t: PodTemplate): string {
  return createHash('sha256').update(JSON.stringify(t)).digest('hex').slice(0, 10);
}

function ownerRef(owner: KObject) {
  return {
    apiVersion: owner.apiVersion ?? '',
    kind: owner.kind ?? '',
    name: owner.metadata.name ?? '',
    uid: owner.metadata.uid ?? '',
    controller: true,
    blockOwnerDeletion: true,
  };
}

function ownedBy(o: KObject, owner: KObject): boolean {
  return (o.metadata.ownerReferences ?? []).some((r) => r.uid === owner.metadata.uid);
}

function setStatus<T extends KObject>(
  store: Store,
  d: ReturnType<typeof def>,
  obj: T,
  status: Record<string, unknown>,
): void {
  if (JSON.stringify(obj.status) === JSON.stringify(status)) return;
  const o: KObject = clone(obj);
  o.status = status;
  delete o.metadata.resourceVersion;
  try {
    store.update(d, o);
  } catch (e) {
    if (!(e instanceof ApiError)) throw e;
  }
}

export class Controllers {
  /**
   * The size of a claim's volume, if it has one (option pvcSizeBytes): the provisioner
   * then makes its directory a tmpfs of that size, which returns ENOSPC when full.
   */
  pvcSizeLimit?: (pvc: Pvc) => number | undefined;

  constructor(
    private readonly store: Store,
    private readonly root: string,
  ) {}

  async sync(): Promise<void> {
    await this.provisionPvcs();
    await this.reclaimPvcs();
    this.statefulSets();
    this.deployments();
    this.schedule();
    this.pdbs();
    this.namespaces();
  }

  /** Binds new claims to a volume: a directory, or a size-limited tmpfs (pvcSizeLimit). */
  private async provisionPvcs(): Promise<void> {
    for (const pvc of this.store.list<Pvc>(PVCS)) {
      if (pvc.status?.phase === 'Bound' || pvc.metadata.deletionTimestamp) continue;
      const spec = pvc.spec as {
        resources?: { requests?: { storage?: string } };
        accessModes?: string[];
      };
      const size = this.pvcSizeLimit?.(pvc);
      if (size !== undefined) {
        await mountSizeLimited(pvcDir(this.root, pvc), size, `PVC ${pvc.metadata.name}`);
      }
      this.knownPvcDirs.set(pvc.metadata.uid ?? '', pvcDir(this.root, pvc));
      setStatus(this.store, PVCS, pvc, {
        phase: 'Bound',
        accessModes: spec.accessModes ?? ['ReadWriteOnce'],
        capacity: {
          storage:
            size !== undefined ? quantity(size) : (spec.resources?.requests?.storage ?? '1Gi'),
        },
      });
    }
  }

  private readonly knownPvcDirs = new Map<string, string>();
  private async reclaimPvcs(): Promise<void> {
    const live = new Set<string>();
    const pods = this.store.list<Pod>(PODS);
    for (const pvc of this.store.list<Pvc>(PVCS)) {
      // kubernetes.io/pvc-protection: a deleted claim goes once no pod uses it.
      if (
        pvc.metadata.deletionTimestamp &&
        !pods.some(
          (p) =>
            p.metadata.namespace === pvc.metadata.namespace &&
            (p.spec.volumes ?? []).some(
              (v) => v.persistentVolumeClaim?.claimName === pvc.metadata.name,
            ),
        )
      ) {
        this.store.remove(PVCS, pvc.metadata.namespace, pvc.metadata.name ?? '');
        continue;
      }
      const uid = pvc.metadata.uid ?? '';
      live.add(uid);
      this.knownPvcDirs.set(uid, pvcDir(this.root, pvc));
    }
    for (const [uid, dir] of this.knownPvcDirs) {
      if (!live.has(uid)) {
        this.knownPvcDirs.delete(uid);
        await unmountSizeLimited(dir);
        await rm(dir, { recursive: true, force: true });
      }
    }
  }

  /** Binds pending pods to nodes: nodeSelector, the node a PVC lives on, required anti-affinity. */
  private schedule(): void {
    const nodes = this.store.list<NodeObj>(NODES);
    const pods = this.store.list<Pod>(PODS);
    for (const pod of pods) {
      if (pod.spec.nodeName || pod.metadata.deletionTimestamp) continue;
      const ns = pod.metadata.namespace ?? '';
      const reasons: string[] = [];
      let pinned: string | undefined;
      let missing: string | undefined;
      for (const v of pod.spec.volumes ?? []) {
        if (!v.persistentVolumeClaim) continue;
        const pvc = this.store.get<Pvc>(PVCS, ns, v.persistentVolumeClaim.claimName);
        if (!pvc) missing = v.persistentVolumeClaim.claimName;
        else pinned = pvc.metadata.annotations?.[SELECTED_NODE] ?? pinned;
      }
      const candidates = nodes.filter((n) => {
        const labels = n.metadata.labels ?? {};
        if (!Object.entries(pod.spec.nodeSelector ?? {}).every(([k, v]) => labels[k] === v)) {
          reasons.push(`${n.metadata.name}: node(s) didn't match Pod's node affinity/selector`);
          return false;
        }
        if (pinned && n.metadata.name !== pinned) {
          reasons.push(`${n.metadata.name}: node(s) had volume node affinity conflict`);
          return false;
        }
        for (const term of pod.spec.affinity?.podAntiAffinity
          ?.requiredDuringSchedulingIgnoredDuringExecution ?? []) {
          const key = term.topologyKey;
          const value = labels[key];
          const clash = pods.some(
            (other) =>
              other.metadata.uid !== pod.metadata.uid &&
              other.metadata.namespace === ns &&
              other.spec.nodeName &&
              !other.metadata.deletionTimestamp &&
              matchesSelector(term.labelSelector, other.metadata.labels) &&
              nodes.find((x) => x.metadata.name === other.spec.nodeName)?.metadata.labels?.[key] ===
                value,
          );
          if (clash) {
            reasons.push(`${n.metadata.name}: node(s) didn't match pod anti-affinity rules`);
            return false;
          }
        }
        return true;
      });
      const load = (name: string | undefined) =>
        pods.filter((p) => p.spec.nodeName === name).length;
      candidates.sort((a, b) => load(a.metadata.name) - load(b.metadata.name));
      const chosen = missing ? undefined : candidates[0];
      const current = this.store.get<Pod>(PODS, ns, pod.metadata.name ?? '');
      if (!current) continue;
      delete current.metadata.resourceVersion;
      if (!chosen) {
        const message = missing
          ? `persistentvolumeclaim "${missing}" not found`
          : `0/${nodes.length} nodes are available: ${[...new Set(reasons)].length} ${reasons.length ? 'node(s) did not fit' : 'no nodes'}.`;
        current.status = {
          phase: 'Pending',
          conditions: [
            {
              type: 'PodScheduled',
              status: 'False',
              reason: 'Unschedulable',
              message,
              lastProbeTime: null,
              lastTransitionTime:
                current.status?.conditions?.[0]?.lastTransitionTime ?? new Date().toISOString(),
            },
          ],
          qosClass: 'BestEffort',
        };
        this.store.update(PODS, current);
        continue;
      }
      current.spec.nodeName = chosen.metadata.name;
      current.status = { phase: 'Pending', qosClass: 'BestEffort' };
      this.store.update(PODS, current);
      pods.splice(
        pods.findIndex((p) => p.metadata.uid === pod.metadata.uid),
        1,
        current,
      );
      for (const v of pod.spec.volumes ?? []) {
        if (!v.persistentVolumeClaim) continue;
        const pvc = this.store.get<Pvc>(PVCS, ns, v.persistentVolumeClaim.claimName);
        if (pvc && !pvc.metadata.annotations?.[SELECTED_NODE]) {
          pvc.metadata.annotations = {
            ...pvc.metadata.annotations,
            [SELECTED_NODE]: chosen.metadata.name ?? '',
          };
          delete pvc.metadata.resourceVersion;
          this.store.update(PVCS, pvc);
        }
      }
    }
  }

  /**
   * The StatefulSet controller, as kubernetes/kubernetes pkg/controller/statefulset/
   * stateful_set_control.go (updateStatefulSet) does it. Pods with an ordinal < replicas are
   * the replicas (missing ones are created), the others are condemned (highest first).
   * `monotonic` = not Parallel (OrderedReady):
   * - processReplica, in ordinal order: a Failed/Succeeded pod is deleted (recreated next
   *   pass); a missing pod is created, and in monotonic mode nothing more happens this pass;
   *   monotonic mode also stops at a pod that is terminating or not Running and Ready. So
   *   OrderedReady scales up one pod at a time, each Running and Ready before the next.
   * - processCondemned, only if no replica stopped the pass: in monotonic mode one pod per
   *   pass, highest ordinal first, blocked by a terminating condemned pod and by a condemned
   *   pod that is not Running and Ready unless it is the first unhealthy pod (lowest
   *   ordinal, replicas before condemned). Parallel deletes all condemned pods at once.
   * - then the rolling update (RollingUpdate, partition): from the highest ordinal, delete
   *   the first pod of an old revision, stop at the first unhealthy pod.
   * minReadySeconds is taken as 0 (Available = Ready).
   */
  private statefulSets(): void {
    for (const sts of this.store.list<StatefulSet>(STS)) {
      const ns = sts.metadata.namespace ?? '';
      const name = sts.metadata.name ?? '';
      const replicaCount = sts.spec.replicas ?? 1;
      const revision = `${name}-${templateHash(sts.spec.template)}`;
      const monotonic = sts.spec.podManagementPolicy !== 'Parallel';
      const owned = this.store
        .list<Pod>(PODS, ns)
        .filter((p) => ownedBy(p, sts))
        .map((p) => ({ pod: p, ordinal: ordinalOf(p.metadata.name ?? '', name) }))
        .filter((x) => x.ordinal >= 0);
      const replicas: (Pod | undefined)[] = [...Array(replicaCount)].map(
        (_, i) => owned.find((x) => x.ordinal === i)?.pod,
      );
      const condemned = owned
        .filter((x) => x.ordinal >= replicaCount)
        .sort((a, b) => b.ordinal - a.ordinal)
        .map((x) => x.pod);
      // The first unhealthy pod: a missing replica counts (it is a new, not yet Ready pod).
      let firstUnhealthy: Pod | 'missing' | undefined;
      for (const p of replicas) {
        if (!p || !isHealthy(p)) {
          firstUnhealthy = p ?? 'missing';
          break;
        }
      }
      if (!firstUnhealthy) firstUnhealthy = [...condemned].reverse().find((p) => !isHealthy(p));

      const processReplica = (i: number): boolean => {
        let p = replicas[i];
        if (p && (p.status?.phase === 'Failed' || p.status?.phase === 'Succeeded')) {
          if (!p.metadata.deletionTimestamp) this.deletePod(p);
          return true;
        }
        if (!p) {
          p = this.createStatefulPod(sts, i, revision);
          replicas[i] = p;
          if (monotonic) return true;
        }
        if (p.metadata.deletionTimestamp && monotonic) return true;
        if (!isRunningAndReady(p) && monotonic) return true;
        return false;
      };
      const processCondemned = (p: Pod): boolean => {
        if (p.metadata.deletionTimestamp) return monotonic;
        if (!isRunningAndReady(p) && monotonic && p !== firstUnhealthy) return true;
        this.deletePod(p);
        return true;
      };
      const runForAll = <T>(items: T[], fn: (x: T, i: number) => boolean): boolean => {
        if (!monotonic) {
          for (let i = 0; i < items.length; i++) fn(items[i] as T, i);
          return false;
        }
        for (let i = 0; i < items.length; i++) if (fn(items[i] as T, i)) return true;
        return false;
      };

      const done =
        !runForAll(replicas, (_, i) => processReplica(i)) &&
        !runForAll(condemned, (p) => processCondemned(p));
      if (done && (sts.spec.updateStrategy?.type ?? 'RollingUpdate') === 'RollingUpdate') {
        const partition = Number(
          (sts.spec.updateStrategy as { rollingUpdate?: { partition?: number } } | undefined)
            ?.rollingUpdate?.partition ?? 0,
        );
        for (let target = replicas.length - 1; target >= partition; target--) {
          const p = replicas[target];
          if (!p) break;
          const stale = p.metadata.labels?.['controller-revision-hash'] !== revision;
          if (stale && !p.metadata.deletionTimestamp) {
            this.deletePod(p);
            break;
          }
          if (!isHealthy(p)) break;
        }
      }
      this.statefulSetStatus(sts, revision, [...(replicas.filter(Boolean) as Pod[]), ...condemned]);
    }
  }

  /** A replica's pod (and its claims from volumeClaimTemplates), as the controller makes it. */
  private createStatefulPod(sts: StatefulSet, i: number, revision: string): Pod {
    const ns = sts.metadata.namespace ?? '';
    const podName = `${sts.metadata.name ?? ''}-${i}`;
    const volumes = [...(sts.spec.template.spec.volumes ?? [])];
    for (const vct of sts.spec.volumeClaimTemplates ?? []) {
      const claimName = `${vct.metadata.name}-${podName}`;
      if (!this.store.get(PVCS, ns, claimName)) {
        this.store.create<Pvc>(PVCS, {
          metadata: {
            name: claimName,
            namespace: ns,
            labels: { ...(sts.spec.selector.matchLabels ?? {}) },
          },
          spec: clone((vct as Pvc).spec ?? {}),
        });
      }
      volumes.push({ name: vct.metadata.name ?? '', persistentVolumeClaim: { claimName } });
    }
    const t = clone(sts.spec.template);
    return this.store.create<Pod>(PODS, {
      metadata: {
        ...(t.metadata ?? {}),
        name: podName,
        namespace: ns,
        labels: {
          ...(t.metadata?.labels ?? {}),
          'controller-revision-hash': revision,
          'statefulset.kubernetes.io/pod-name': podName,
          'apps.kubernetes.io/pod-index': String(i),
        },
        ownerReferences: [ownerRef(sts)],
      },
      spec: { ...t.spec, volumes, hostname: podName, subdomain: sts.spec.serviceName },
      status: { phase: 'Pending', qosClass: 'BestEffort' },
    });
  }

  /** status as updateStatefulSetStatus computes it (completeRollingUpdate included). */
  private statefulSetStatus(sts: StatefulSet, revision: string, pods: Pod[]): void {
    const old = sts.status ?? {};
    const replicas = pods.length;
    const ready = pods.filter(isRunningAndReady).length;
    const live = pods.filter((p) => !p.metadata.deletionTimestamp);
    const updated = live.filter(
      (p) => p.metadata.labels?.['controller-revision-hash'] === revision,
    ).length;
    let currentRevision = (old.currentRevision as string | undefined) ?? revision;
    let current = live.filter(
      (p) => p.metadata.labels?.['controller-revision-hash'] === currentRevision,
    ).length;
    const rolling = (sts.spec.updateStrategy?.type ?? 'RollingUpdate') === 'RollingUpdate';
    if (rolling && updated === replicas && ready === replicas) {
      currentRevision = revision;
      current = updated;
    }
    setStatus(this.store, STS, sts, {
      observedGeneration: sts.metadata.generation ?? 1,
      replicas,
      readyReplicas: ready,
      currentReplicas: current,
      updatedReplicas: updated,
      availableReplicas: ready,
      currentRevision,
      updateRevision: revision,
      collisionCount: 0,
    });
  }

  private deployments(): void {
    for (const d of this.store.list<Deployment>(DEPLOY)) {
      const ns = d.metadata.namespace ?? '';
      const name = d.metadata.name ?? '';
      const replicas = d.spec.replicas ?? 1;
      const hash = templateHash(d.spec.template);
      const pods = this.store
        .list<Pod>(PODS, ns)
        .filter((p) => ownedBy(p, d) && !p.metadata.deletionTimestamp);
      for (const p of pods)
        if (p.metadata.labels?.['pod-template-hash'] !== hash) this.deletePod(p);
      const current = pods.filter((p) => p.metadata.labels?.['pod-template-hash'] === hash);
      for (let i = current.length; i < replicas; i++) {
        const t = clone(d.spec.template);
        const suffix = Math.random().toString(36).slice(2, 7).padEnd(5, 'x');
        const created = this.store.create<Pod>(PODS, {
          metadata: {
            ...(t.metadata ?? {}),
            name: `${name}-${hash}-${suffix}`,
            namespace: ns,
            labels: { ...(t.metadata?.labels ?? {}), 'pod-template-hash': hash },
            ownerReferences: [ownerRef(d)],
          },
          spec: t.spec,
          status: { phase: 'Pending', qosClass: 'BestEffort' },
        });
        current.push(created);
      }
      for (const p of current.slice(replicas)) this.deletePod(p);
      const live = current.slice(0, replicas);
      const ready = live.filter(isReady).length;
      setStatus(this.store, DEPLOY, d, {
        observedGeneration: d.metadata.generation ?? 1,
        replicas: live.length,
        updatedReplicas: live.length,
        readyReplicas: ready,
        availableReplicas: ready,
        ...(live.length - ready > 0 ? { unavailableReplicas: live.length - ready } : {}),
        conditions: [
          {
            type: 'Available',
            status: ready >= replicas ? 'True' : 'False',
            reason: ready >= replicas ? 'MinimumReplicasAvailable' : 'MinimumReplicasUnavailable',
          },
        ],
      });
    }
  }

  private pdbs(): void {
    for (const pdb of this.store.list<Pdb>(PDBS)) {
      const pods = this.store
        .list<Pod>(PODS, pdb.metadata.namespace)
        .filter(
          (p) =>
            !p.metadata.deletionTimestamp && matchesSelector(pdb.spec.selector, p.metadata.labels),
        );
      const healthy = pods.filter(isReady).length;
      const expected = pods.length;
      let desired = 0;
      const pct = (v: number | string) =>
        typeof v === 'string' && v.endsWith('%')
          ? Math.ceil((Number(v.slice(0, -1)) / 100) * expected)
          : Number(v);
      if (pdb.spec.minAvailable !== undefined) desired = pct(pdb.spec.minAvailable);
      else if (pdb.spec.maxUnavailable !== undefined)
        desired = Math.max(0, expected - pct(pdb.spec.maxUnavailable));
      setStatus(this.store, PDBS, pdb, {
        observedGeneration: pdb.metadata.generation ?? 1,
        currentHealthy: healthy,
        desiredHealthy: desired,
        expectedPods: expected,
        disruptionsAllowed: Math.max(0, healthy - desired),
      });
    }
  }

  private namespaces(): void {
    for (const ns of this.store.list(NAMESPACES)) {
      if (!ns.metadata.deletionTimestamp) continue;
      const name = ns.metadata.name ?? '';
      let remaining = 0;
      for (const d of [STS, DEPLOY, PDBS, SECRETS, CONFIGMAPS, PVCS]) {
        for (const o of this.store.list(d, name)) this.store.remove(d, name, o.metadata.name ?? '');
      }
      for (const p of this.store.list<Pod>(PODS, name)) {
        remaining++;
        this.deletePod(p);
      }
      if (remaining === 0) this.store.remove(NAMESPACES, undefined, name);
    }
  }

  /** Graceful delete, as the API does it. */
  deletePod(p: Pod, graceSeconds?: number): void {
    deletePod(this.store, p, graceSeconds);
  }
}

/** Marks a pod for graceful deletion (or removes it at once if it never reached a node). */
export function deletePod(store: Store, p: Pod, graceSeconds?: number): Pod | undefined {
  const current = store.get<Pod>(PODS, p.metadata.namespace, p.metadata.name ?? '');
  if (!current || current.metadata.uid !== p.metadata.uid) return undefined;
  if (!current.spec.nodeName) {
    store.remove(PODS, current.metadata.namespace, current.metadata.name ?? '');
    return current;
  }
  if (current.metadata.deletionTimestamp) {
    if (
      graceSeconds === undefined ||
      graceSeconds >= (current.metadata.deletionGracePeriodSeconds ?? 30)
    ) {
      return current;
    }
  }
  const grace = graceSeconds ?? current.spec.terminationGracePeriodSeconds ?? 30;
  current.metadata.deletionTimestamp = new Date(Date.now() + grace * 1000)
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z');
  current.metadata.deletionGracePeriodSeconds = grace;
  return store.markDeleted(PODS, current);
}
