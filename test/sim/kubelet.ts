/**
 * The kubelet: runs the containers of pods bound to a node as sandboxed processes, restarts
 * them with back-off, terminates them gracefully on delete, and writes pod status.
 *
 * Images do not exist here, so a container runs its manifest's `command` + `args`; a
 * container without `command` gets the entrypoint of a few known images (etcd), otherwise it
 * stays waiting with reason `CreateContainerError`.
 */
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { closeSync, openSync } from 'node:fs';
import { chmod, lstat, mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join, normalize } from 'node:path';
import {
  exited,
  kill,
  type Mount,
  preparePodRoot,
  type SandboxSpec,
  spawnSandboxed,
  terminate,
} from './sandbox.js';
import { ApiError, resourceByPlural, type Store } from './store.js';
import {
  type Container,
  type ContainerState,
  type ContainerStatus,
  now,
  type Pod,
  type PodCondition,
  type PodStatus,
  type Pvc,
  type Secret,
} from './types.js';

const PODS = resourceByPlural('', 'pods') ?? fail();
const SECRETS = resourceByPlural('', 'secrets') ?? fail();
const PVCS = resourceByPlural('', 'persistentvolumeclaims') ?? fail();
function fail(): never {
  throw new Error('resource table incomplete');
}

export interface KubeletOptions {
  /** First crash-loop back-off (real kubelet: 10 s). */
  backoffInitialMs: number;
  /** Back-off cap (real kubelet: 300 s). */
  backoffMaxMs: number;
  /** A container is Ready once it has run this long. */
  readyAfterMs: number;
}

interface ContainerRt {
  spec: Container;
  proc?: ChildProcess;
  startedAt?: string;
  startedAtMs: number;
  restartCount: number;
  starts: number;
  consecutiveFailures: number;
  lastTerminated?: NonNullable<ContainerState['terminated']>;
  nextStartAt: number;
  /** Waiting reason when not running (ContainerCreating, CrashLoopBackOff, CreateContainerError). */
  waiting?: { reason: string; message?: string };
  /** Terminated and will not be restarted (restartPolicy). */
  done: boolean;
  held: boolean;
}

interface PodRt {
  uid: string;
  namespace: string;
  name: string;
  dir: string;
  rootDir: string;
  mounts: Map<string, Mount[]>;
  prepared: boolean;
  prepareError?: string;
  containers: Map<string, ContainerRt>;
  startTime: string;
  killAt?: number;
  conditionTimes: Map<string, { status: string; at: string }>;
}

export interface ContainerEvent {
  namespace: string;
  pod: string;
  container: string;
}

/** Host directory behind a PVC (created by the provisioner, kept until the PVC is deleted). */
export function pvcDir(root: string, pvc: Pvc): string {
  return join(
    root,
    'volumes',
    pvc.metadata.namespace ?? 'default',
    `${pvc.metadata.name}-${(pvc.metadata.uid ?? '').slice(0, 8)}`,
  );
}

/** Host directory that stands for a node's `hostPath` volumes. */
export function nodeHostDir(root: string, node: string): string {
  return join(root, 'nodes', node, 'host');
}

/** Emits `start` and `exit` (ContainerEvent) when container processes start and end. */
export class Kubelet extends EventEmitter {
  private readonly pods = new Map<string, PodRt>();

  constructor(
    private readonly store: Store,
    private readonly root: string,
    private readonly options: KubeletOptions,
    private readonly kick: () => void,
  ) {
    super();
  }

  /** One pass over all bound pods. */
  async sync(): Promise<void> {
    const pods = this.store.list<Pod>(PODS).filter((p) => p.spec.nodeName);
    const seen = new Set<string>();
    for (const pod of pods) {
      const uid = pod.metadata.uid ?? '';
      seen.add(uid);
      let rt = this.pods.get(uid);
      if (!rt) {
        rt = this.newRuntime(pod);
        this.pods.set(uid, rt);
      }
      if (pod.metadata.deletionTimestamp) await this.syncTerminating(pod, rt);
      else await this.syncRunning(pod, rt);
    }
    // Pods removed from the store without termination (force delete): kill what is left.
    for (const [uid, rt] of this.pods) {
      if (!seen.has(uid)) {
        await this.teardown(rt);
        this.pods.delete(uid);
      }
    }
  }

  private newRuntime(pod: Pod): PodRt {
    const dir = join(
      this.root,
      'pods',
      `${pod.metadata.namespace}_${pod.metadata.name}_${pod.metadata.uid}`,
    );
    const rt: PodRt = {
      uid: pod.metadata.uid ?? '',
      namespace: pod.metadata.namespace ?? '',
      name: pod.metadata.name ?? '',
      dir,
      rootDir: join(dir, 'root'),
      mounts: new Map(),
      prepared: false,
      containers: new Map(),
      startTime: now(),
      conditionTimes: new Map(),
    };
    for (const c of pod.spec.containers) {
      rt.containers.set(c.name, {
        spec: c,
        startedAtMs: 0,
        restartCount: 0,
        starts: 0,
        consecutiveFailures: 0,
        nextStartAt: 0,
        waiting: { reason: 'ContainerCreating' },
        done: false,
        held: false,
      });
    }
    return rt;
  }

  private async prepare(pod: Pod, rt: PodRt): Promise<void> {
    await mkdir(join(rt.dir, 'logs'), { recursive: true });
    await mkdir(rt.rootDir, { recursive: true });
    await preparePodRoot(rt.rootDir, rt.name);
    const volumeDirs = new Map<string, { source: string; readOnly: boolean }>();
    for (const v of pod.spec.volumes ?? []) {
      if (v.persistentVolumeClaim) {
        const pvc = this.store.get<Pvc>(PVCS, rt.namespace, v.persistentVolumeClaim.claimName);
        if (!pvc)
          throw new Error(`persistentvolumeclaim "${v.persistentVolumeClaim.claimName}" not found`);
        const source = pvcDir(this.root, pvc);
        await mkdir(source, { recursive: true });
        volumeDirs.set(v.name, { source, readOnly: v.persistentVolumeClaim.readOnly === true });
      } else if (v.secret) {
        const secret = this.store.get<Secret>(SECRETS, rt.namespace, v.secret.secretName);
        if (!secret) throw new Error(`secret "${v.secret.secretName}" not found`);
        const source = join(rt.dir, 'volumes', v.name);
        await mkdir(source, { recursive: true });
        const mode = v.secret.defaultMode ?? 0o644;
        const data = secret.data ?? {};
        const items =
          v.secret.items ?? Object.keys(data).map((key) => ({ key, path: key, mode: undefined }));
        for (const item of items) {
          const value = data[item.key];
          if (value === undefined)
            throw new Error(`secret "${v.secret.secretName}" has no key "${item.key}"`);
          const file = join(source, normalize(item.path).replace(/^(\.\.(\/|$))+/, ''));
          await mkdir(dirname(file), { recursive: true });
          await writeFile(file, Buffer.from(value, 'base64'));
          await chmod(file, item.mode ?? mode);
        }
        volumeDirs.set(v.name, { source, readOnly: true });
      } else if (v.hostPath) {
        const source = join(
          nodeHostDir(this.root, pod.spec.nodeName ?? ''),
          normalize(v.hostPath.path),
        );
        await mkdir(source, { recursive: true });
        volumeDirs.set(v.name, { source, readOnly: false });
      } else {
        const source = join(rt.dir, 'volumes', v.name);
        await mkdir(source, { recursive: true });
        volumeDirs.set(v.name, { source, readOnly: false });
      }
    }
    for (const c of pod.spec.containers) {
      const mounts: Mount[] = [];
      for (const vm of c.volumeMounts ?? []) {
        const vol = volumeDirs.get(vm.name);
        if (!vol)
          throw new Error(`volume "${vm.name}" of container "${c.name}" is not in spec.volumes`);
        let source = vol.source;
        if (vm.subPath) {
          // As the real kubelet: no absolute or `..` subPaths, and no symlink that leads out.
          if (vm.subPath.startsWith('/') || vm.subPath.split('/').includes('..')) {
            throw new Error(`subPath "${vm.subPath}" must be a relative path without ".."`);
          }
          let prefix = vol.source;
          for (const part of vm.subPath.split('/').filter(Boolean)) {
            prefix = join(prefix, part);
            const st = await lstat(prefix).catch(() => undefined);
            if (st?.isSymbolicLink())
              throw new Error(`subPath "${vm.subPath}" goes through a symlink`);
            if (!st) await mkdir(prefix);
          }
          source = prefix;
        }
        mounts.push({
          source,
          target: normalize(vm.mountPath),
          readOnly: vol.readOnly || vm.readOnly === true,
        });
      }
      rt.mounts.set(c.name, mounts);
    }
    rt.prepared = true;
  }

  private env(pod: Pod, c: Container): Record<string, string> {
    const env: Record<string, string> = {};
    for (const e of c.env ?? []) {
      if (e.value !== undefined) env[e.name] = expand(e.value, env);
      else if (e.valueFrom?.fieldRef) env[e.name] = fieldRef(pod, e.valueFrom.fieldRef.fieldPath);
    }
    return env;
  }

  /** The sandbox of a container, for its own process or for an exec. */
  sandboxFor(pod: Pod, containerName: string, argv: string[]): SandboxSpec {
    const rt = this.pods.get(pod.metadata.uid ?? '');
    const c = pod.spec.containers.find((x) => x.name === containerName);
    if (!rt || !c || !rt.prepared) throw new Error(`container ${containerName} is not prepared`);
    return {
      rootDir: rt.rootDir,
      mounts: rt.mounts.get(containerName) ?? [],
      hostname: rt.name,
      workingDir: c.workingDir ?? '/',
      env: this.env(pod, c),
      argv,
    };
  }

  private async syncRunning(pod: Pod, rt: PodRt): Promise<void> {
    if (!rt.prepared) {
      try {
        await this.prepare(pod, rt);
        rt.prepareError = undefined;
      } catch (e) {
        rt.prepareError = e instanceof Error ? e.message : String(e);
      }
    }
    const t = Date.now();
    if (rt.prepared) {
      for (const c of rt.containers.values()) {
        if (c.proc || c.done || c.held || t < c.nextStartAt) continue;
        this.start(pod, rt, c);
      }
    }
    this.writeStatus(pod, rt);
  }

  private start(pod: Pod, rt: PodRt, c: ContainerRt): void {
    const argv = entrypoint(c.spec);
    if (!argv) {
      c.waiting = {
        reason: 'CreateContainerError',
        message: `sim: image "${c.spec.image ?? ''}" has no known entrypoint; give the container a command`,
      };
      c.nextStartAt = Number.POSITIVE_INFINITY;
      return;
    }
    const env = this.env(pod, c.spec);
    const spec = this.sandboxFor(
      pod,
      c.spec.name,
      argv.map((a) => expand(a, env)),
    );
    if (c.starts > 0) c.restartCount += 1;
    c.starts += 1;
    const logPath = join(rt.dir, 'logs', `${c.spec.name}-${c.restartCount}.log`);
    const fd = openSync(logPath, 'a');
    let proc: ChildProcess;
    try {
      proc = spawnSandboxed(spec, ['ignore', fd, fd]);
    } finally {
      closeSync(fd);
    }
    c.proc = proc;
    c.startedAt = now();
    c.startedAtMs = Date.now();
    c.waiting = undefined;
    const event: ContainerEvent = { namespace: rt.namespace, pod: rt.name, container: c.spec.name };
    this.emit('start', event);
    proc.once('exit', (code, signal) => {
      c.proc = undefined;
      const exitCode = code ?? 128 + signalNumber(signal);
      c.lastTerminated = {
        exitCode,
        reason: exitCode === 0 ? 'Completed' : 'Error',
        startedAt: c.startedAt,
        finishedAt: now(),
        containerID: `sim://${rt.uid}/${c.spec.name}/${c.restartCount}`,
      };
      const ranMs = Date.now() - c.startedAtMs;
      if (ranMs > this.options.backoffMaxMs * 2) c.consecutiveFailures = 0;
      c.consecutiveFailures += 1;
      const policy = pod.spec.restartPolicy ?? 'Always';
      if (policy === 'Never' || (policy === 'OnFailure' && exitCode === 0)) {
        c.done = true;
      } else {
        const delay = Math.min(
          this.options.backoffInitialMs * 2 ** (c.consecutiveFailures - 1),
          this.options.backoffMaxMs,
        );
        c.nextStartAt = Date.now() + delay;
        c.waiting = {
          reason: 'CrashLoopBackOff',
          message: `back-off ${Math.round(delay / 1000)}s restarting failed container=${c.spec.name} pod=${rt.name}_${rt.namespace}(${rt.uid})`,
        };
        setTimeout(this.kick, delay + 5).unref();
      }
      this.emit('exit', event);
      this.kick();
    });
  }

  private async syncTerminating(pod: Pod, rt: PodRt): Promise<void> {
    const t = Date.now();
    if (rt.killAt === undefined) {
      const grace = pod.metadata.deletionGracePeriodSeconds ?? 30;
      rt.killAt = t + grace * 1000;
      for (const c of rt.containers.values()) {
        c.done = true;
        if (c.proc) {
          if (grace === 0) kill(c.proc);
          else terminate(c.proc);
        }
      }
      setTimeout(this.kick, grace * 1000 + 10).unref();
    } else if (t >= rt.killAt || pod.metadata.deletionGracePeriodSeconds === 0) {
      for (const c of rt.containers.values()) if (c.proc) kill(c.proc);
    }
    const running = [...rt.containers.values()].some((c) => c.proc);
    if (!running) {
      await this.teardown(rt);
      this.pods.delete(rt.uid);
      try {
        const current = this.store.get<Pod>(PODS, rt.namespace, rt.name);
        if (current && current.metadata.uid === rt.uid)
          this.store.remove(PODS, rt.namespace, rt.name);
      } catch (e) {
        if (!(e instanceof ApiError)) throw e;
      }
    } else {
      this.writeStatus(pod, rt);
    }
  }

  private async teardown(rt: PodRt): Promise<void> {
    for (const c of rt.containers.values()) {
      if (c.proc) {
        kill(c.proc);
        await exited(c.proc);
      }
    }
    await rm(rt.dir, { recursive: true, force: true });
  }

  /** Kills every container now (simulator shutdown). */
  async stopAll(): Promise<void> {
    for (const rt of this.pods.values()) {
      for (const c of rt.containers.values()) {
        c.done = true;
        if (c.proc) kill(c.proc);
      }
    }
    for (const rt of this.pods.values()) {
      for (const c of rt.containers.values()) if (c.proc) await exited(c.proc);
    }
  }

  /** Whether the container's process is running now. */
  isRunning(namespace: string, pod: string, container: string): boolean {
    for (const rt of this.pods.values()) {
      if (rt.namespace === namespace && rt.name === pod)
        return rt.containers.get(container)?.proc !== undefined;
    }
    return false;
  }

  /**
   * Stops a container and keeps it stopped until `release` is called (used to corrupt data
   * while etcd is down). Resolves once the process has exited.
   */
  async hold(namespace: string, pod: string, container: string): Promise<() => void> {
    const c = this.findContainer(namespace, pod, container);
    c.held = true;
    if (c.proc) {
      const p = c.proc;
      kill(p);
      await exited(p);
    }
    return () => {
      c.held = false;
      this.kick();
    };
  }

  /** Path of the container's current log file, if the pod runs here. */
  logPath(
    namespace: string,
    pod: string,
    container: string,
    previous: boolean,
  ): string | undefined {
    for (const rt of this.pods.values()) {
      if (rt.namespace !== namespace || rt.name !== pod) continue;
      const c = rt.containers.get(container);
      if (!c) return undefined;
      const n = previous ? c.restartCount - 1 : c.restartCount;
      return n < 0 ? undefined : join(rt.dir, 'logs', `${container}-${n}.log`);
    }
    return undefined;
  }

  /** Pod root directory on the host (tests use it to check isolation). */
  podRootDir(namespace: string, pod: string): string | undefined {
    for (const rt of this.pods.values())
      if (rt.namespace === namespace && rt.name === pod) return rt.rootDir;
    return undefined;
  }

  private findContainer(namespace: string, pod: string, container: string): ContainerRt {
    for (const rt of this.pods.values()) {
      if (rt.namespace === namespace && rt.name === pod) {
        const c = rt.containers.get(container);
        if (c) return c;
      }
    }
    throw new Error(`container ${namespace}/${pod}/${container} not found on any node`);
  }

  private writeStatus(pod: Pod, rt: PodRt): void {
    const t = Date.now();
    const statuses: ContainerStatus[] = [];
    for (const c of rt.containers.values()) {
      const running = c.proc !== undefined;
      const ready = running && t - c.startedAtMs >= this.options.readyAfterMs;
      if (running && !ready) setTimeout(this.kick, this.options.readyAfterMs + 10).unref();
      let state: ContainerState;
      if (running) state = { running: { startedAt: c.startedAt ?? now() } };
      else if (c.done && c.lastTerminated) state = { terminated: c.lastTerminated };
      else if (rt.prepareError && !rt.prepared)
        state = { waiting: { reason: 'ContainerCreating', message: rt.prepareError } };
      else state = { waiting: c.waiting ?? { reason: 'ContainerCreating' } };
      statuses.push({
        name: c.spec.name,
        image: c.spec.image ?? '',
        imageID: c.spec.image ? `${c.spec.image}@sim` : '',
        ...(c.starts > 0
          ? { containerID: `sim://${rt.uid}/${c.spec.name}/${c.restartCount}` }
          : {}),
        ready,
        started: running,
        restartCount: c.restartCount,
        state,
        lastState:
          c.lastTerminated && !(c.done && !running) ? { terminated: c.lastTerminated } : {},
      });
    }
    const all = [...rt.containers.values()];
    const policy = pod.spec.restartPolicy ?? 'Always';
    let phase: PodStatus['phase'] = 'Pending';
    if (all.every((c) => c.done && c.lastTerminated) && policy !== 'Always') {
      phase = all.every((c) => c.lastTerminated?.exitCode === 0) ? 'Succeeded' : 'Failed';
    } else if (all.some((c) => c.starts > 0)) phase = 'Running';
    const allReady = statuses.every((s) => s.ready);
    const cond = (type: string, ok: boolean, reason?: string): PodCondition => {
      const status = ok ? 'True' : 'False';
      const prev = rt.conditionTimes.get(type);
      let at = prev?.at ?? rt.startTime;
      if (!prev || prev.status !== status) {
        at = prev ? now() : rt.startTime;
        rt.conditionTimes.set(type, { status, at });
      }
      return {
        type,
        status,
        lastProbeTime: null,
        lastTransitionTime: at,
        ...(ok || !reason ? {} : { reason }),
      };
    };
    const status: PodStatus = {
      phase,
      conditions: [
        cond('PodReadyToStartContainers', rt.prepared),
        cond('Initialized', true),
        cond('Ready', allReady, 'ContainersNotReady'),
        cond('ContainersReady', allReady, 'ContainersNotReady'),
        cond('PodScheduled', true),
      ],
      hostIP: '127.0.0.1',
      podIP: '127.0.0.1',
      podIPs: [{ ip: '127.0.0.1' }],
      startTime: rt.startTime,
      containerStatuses: statuses,
      qosClass: 'BestEffort',
    };
    if (JSON.stringify(pod.status) === JSON.stringify(status)) return;
    const current = this.store.get<Pod>(PODS, rt.namespace, rt.name);
    if (!current || current.metadata.uid !== rt.uid) return;
    current.status = status;
    delete current.metadata.resourceVersion;
    this.store.update(PODS, current);
  }
}

/** The argv a container runs: its command + args, or a known image's entrypoint. */
export function entrypoint(c: Container): string[] | undefined {
  if (c.command && c.command.length > 0) return [...c.command, ...(c.args ?? [])];
  const image = c.image ?? '';
  if (/(^|\/)etcd(:|$)/.test(image) || /(^|\/)etcd-[^/]*:/.test(image)) {
    if (/etcd-util/.test(image)) return undefined;
    return ['/usr/bin/etcd', ...(c.args ?? [])];
  }
  return undefined;
}

/** Kubernetes `$(VAR)` expansion: defined variables are replaced, `$$` escapes. */
export function expand(s: string, env: Record<string, string>): string {
  return s.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name: string | undefined) => {
    if (m === '$$') return '$';
    return name !== undefined && env[name] !== undefined ? env[name] : m;
  });
}

function fieldRef(pod: Pod, path: string): string {
  switch (path) {
    case 'metadata.name':
      return pod.metadata.name ?? '';
    case 'metadata.namespace':
      return pod.metadata.namespace ?? '';
    case 'metadata.uid':
      return pod.metadata.uid ?? '';
    case 'spec.nodeName':
      return pod.spec.nodeName ?? '';
    case 'status.podIP':
    case 'status.hostIP':
      return '127.0.0.1';
    default: {
      const m = path.match(/^metadata\.(labels|annotations)\['(.+)'\]$/);
      if (m)
        return (
          (m[1] === 'labels' ? pod.metadata.labels : pod.metadata.annotations)?.[m[2] ?? ''] ?? ''
        );
      return '';
    }
  }
}

function signalNumber(signal: NodeJS.Signals | null): number {
  const table: Record<string, number> = {
    SIGKILL: 9,
    SIGTERM: 15,
    SIGINT: 2,
    SIGHUP: 1,
    SIGABRT: 6,
    SIGSEGV: 11,
  };
  return signal ? (table[signal] ?? 1) : 0;
}
