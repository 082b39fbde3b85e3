/**
 * The kubelet: runs the containers of pods bound to a node as sandboxed processes, restarts
 * them with back-off, terminates them gracefully on delete, runs readiness probes, and
 * writes pod status.
 *
 * A container's image (images.ts) decides its file system and the entrypoint of a container
 * without `command` (none: it stays waiting with reason `CreateContainerError`). A command
 * the image does not have fails to start as with containerd/runc (`StartError`, 128).
 */
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { closeSync, openSync } from 'node:fs';
import { chmod, lstat, mkdir, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { dirname, join, normalize } from 'node:path';
import { type ContainerView, execError, HOST_IMAGE, type ImageFs, type Images } from './images.js';
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
  type EnvVar,
  now,
  type Pod,
  type PodCondition,
  type PodStatus,
  type Probe,
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
  /** A container without a readiness probe is Ready once it has run this long. */
  readyAfterMs: number;
  /**
   * Every start of a container is a new container, as with a real runtime: its writable
   * root (files written outside volumes) is new, and exec sessions in it die with its
   * process. Default false: one root per container for the pod's life, execs outlive it.
   */
  freshContainerOnRestart: boolean;
}

/** Readiness probe state of one container start (kubelet prober worker). */
interface ProbeRt {
  epoch: number;
  ready: boolean;
  last?: boolean;
  run: number;
  busy: boolean;
  timer?: NodeJS.Timeout;
  lastOutput?: string;
}

interface ContainerRt {
  spec: Container;
  image: ImageFs;
  /** Host directory that is `/` of this container (see freshContainerOnRestart). */
  rootDir?: string;
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
  probe?: ProbeRt;
  /** Exec sessions in this container: they die with it (its PID namespace goes). */
  execs: Set<ChildProcess>;
}

interface PodRt {
  uid: string;
  namespace: string;
  name: string;
  dir: string;
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
  private probeEpoch = 0;
  private stopped = false;

  constructor(
    private readonly store: Store,
    private readonly root: string,
    private readonly options: KubeletOptions,
    private readonly kick: () => void,
    private readonly images?: Images,
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
      mounts: new Map(),
      prepared: false,
      containers: new Map(),
      startTime: now(),
      conditionTimes: new Map(),
    };
    for (const c of pod.spec.containers) {
      rt.containers.set(c.name, {
        spec: c,
        image: this.images?.resolve(c.image) ?? HOST_IMAGE,
        startedAtMs: 0,
        restartCount: 0,
        starts: 0,
        consecutiveFailures: 0,
        nextStartAt: 0,
        waiting: { reason: 'ContainerCreating' },
        done: false,
        held: false,
        execs: new Set(),
      });
    }
    return rt;
  }

  private async prepare(pod: Pod, rt: PodRt): Promise<void> {
    await mkdir(join(rt.dir, 'logs'), { recursive: true });
    const volumeDirs = new Map<string, { source: string; readOnly: boolean }>();
    for (const v of pod.spec.volumes ?? []) {
      if (v.persistentVolumeClaim) {
        const pvc = this.store.get<Pvc>(PVCS, rt.namespace, v.persistentVolumeClaim.claimName);
        if (!pvc)
          throw new Error(`persistentvolumeclaim "${v.persistentVolumeClaim.claimName}" not found`);
        // The kubelet mounts a volume only once its claim is bound (provisioned).
        if (pvc.status?.phase !== 'Bound')
          throw new Error(`persistentvolumeclaim "${pvc.metadata.name}" is not bound`);
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
    const crt = rt?.containers.get(containerName);
    if (!rt || !c || !rt.prepared || !crt?.rootDir)
      throw new Error(`container ${containerName} is not prepared`);
    return {
      rootDir: crt.rootDir,
      image: crt.image,
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
        if (!entrypointOf(c.spec, c.image)) {
          this.start(pod, rt, c);
          continue;
        }
        try {
          await this.prepareRoot(rt, c);
        } catch (e) {
          rt.prepareError = e instanceof Error ? e.message : String(e);
          continue;
        }
        this.start(pod, rt, c);
      }
    }
    this.writeStatus(pod, rt);
  }

  /**
   * The container's writable root: kept for the pod's life, or (freshContainerOnRestart)
   * made anew at every start, the previous one removed, as a container runtime does.
   */
  private async prepareRoot(rt: PodRt, c: ContainerRt): Promise<void> {
    if (c.rootDir && !this.options.freshContainerOnRestart) return;
    const old = c.rootDir;
    const index = [...rt.containers.values()].indexOf(c);
    const dir = this.options.freshContainerOnRestart
      ? join(rt.dir, 'rootfs', `${index}.${c.starts}`)
      : join(rt.dir, 'rootfs', String(index));
    if (old) await rm(old, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    await preparePodRoot(dir, rt.name, c.image);
    c.rootDir = dir;
  }

  /** How the runtime would fail to exec `argv0` in the container, if it would. */
  execProblem(pod: Pod, containerName: string, argv0: string): string | undefined {
    const rt = this.pods.get(pod.metadata.uid ?? '');
    const c = rt?.containers.get(containerName);
    if (!rt || !c?.rootDir) return undefined;
    const env = this.env(pod, c.spec);
    return execError(this.viewOf(rt, c), argv0, env.PATH ?? c.image.path);
  }

  /** Registers an exec session's process: it is killed when the container's process ends. */
  attachExec(pod: Pod, containerName: string, child: ChildProcess): void {
    const c = this.pods.get(pod.metadata.uid ?? '')?.containers.get(containerName);
    if (!c) return;
    c.execs.add(child);
    child.once('exit', () => c.execs.delete(child));
    child.once('error', () => c.execs.delete(child));
  }

  private viewOf(rt: PodRt, c: ContainerRt): ContainerView {
    return { image: c.image, rootDir: c.rootDir ?? '', mounts: rt.mounts.get(c.spec.name) ?? [] };
  }

  private start(pod: Pod, rt: PodRt, c: ContainerRt): void {
    const argv = entrypointOf(c.spec, c.image);
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
    const problem = execError(this.viewOf(rt, c), spec.argv[0] ?? '', env.PATH ?? c.image.path);
    if (problem) {
      this.startFailed(pod, rt, c, problem);
      return;
    }
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
    this.startProbe(rt, c);
    const event: ContainerEvent = { namespace: rt.namespace, pod: rt.name, container: c.spec.name };
    this.emit('start', event);
    proc.once('exit', (code, signal) => {
      c.proc = undefined;
      this.stopProbe(c);
      if (this.options.freshContainerOnRestart) for (const x of c.execs) kill(x);
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
      this.afterExit(pod, rt, c, exitCode);
      this.emit('exit', event);
      this.kick();
    });
  }

  /** What the kubelet does when a container ended: restart (with back-off) or not. */
  private afterExit(pod: Pod, rt: PodRt, c: ContainerRt, exitCode: number, waiting?: string): void {
    c.consecutiveFailures += 1;
    const policy = pod.spec.restartPolicy ?? 'Always';
    if (policy === 'Never' || (policy === 'OnFailure' && exitCode === 0)) {
      c.done = true;
      return;
    }
    const delay = Math.min(
      this.options.backoffInitialMs * 2 ** (c.consecutiveFailures - 1),
      this.options.backoffMaxMs,
    );
    c.nextStartAt = Date.now() + delay;
    c.waiting =
      waiting && c.consecutiveFailures === 1
        ? { reason: 'RunContainerError', message: waiting }
        : {
            reason: 'CrashLoopBackOff',
            message: `back-off ${Math.round(delay / 1000)}s restarting failed container=${c.spec.name} pod=${rt.name}_${rt.namespace}(${rt.uid})`,
          };
    setTimeout(this.kick, delay + 5).unref();
  }

  /**
   * The runtime could not start the command (runc: no such file): the container "ran" and
   * exited 128 with reason StartError, as containerd reports it, and is restarted per
   * restartPolicy with back-off.
   */
  private startFailed(pod: Pod, rt: PodRt, c: ContainerRt, problem: string): void {
    const message = `failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: error during container init: ${problem}: unknown`;
    c.lastTerminated = {
      exitCode: 128,
      reason: 'StartError',
      message,
      startedAt: '1970-01-01T00:00:00Z',
      finishedAt: now(),
      containerID: `sim://${rt.uid}/${c.spec.name}/${c.restartCount}`,
    };
    this.afterExit(pod, rt, c, 128, message);
    this.kick();
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
      this.stopProbe(c);
      if (c.proc) {
        kill(c.proc);
        await exited(c.proc);
      }
    }
    await rm(rt.dir, { recursive: true, force: true });
  }

  /** Kills every container now (simulator shutdown). */
  async stopAll(): Promise<void> {
    this.stopped = true;
    for (const rt of this.pods.values()) {
      for (const c of rt.containers.values()) {
        this.stopProbe(c);
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

  /**
   * Kills a container's process (SIGKILL to its whole process group, as an OOM kill or a
   * crash would end it); the kubelet then restarts it per restartPolicy. Without `container`,
   * the pod's first container. Resolves once the process has exited.
   */
  async restartContainer(namespace: string, pod: string, container?: string): Promise<void> {
    const rt = [...this.pods.values()].find((r) => r.namespace === namespace && r.name === pod);
    const c = container ? rt?.containers.get(container) : rt?.containers.values().next().value;
    if (!rt || !c)
      throw new Error(`container ${namespace}/${pod}/${container ?? ''} not found on any node`);
    const p = c.proc;
    if (!p) throw new Error(`container ${namespace}/${pod}/${c.spec.name} is not running`);
    kill(p);
    await exited(p);
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

  /**
   * Host directory that is `/` of a container of the pod (default: its first container),
   * as of its current start (tests use it to check isolation).
   */
  podRootDir(namespace: string, pod: string, container?: string): string | undefined {
    for (const rt of this.pods.values()) {
      if (rt.namespace !== namespace || rt.name !== pod) continue;
      const c = container ? rt.containers.get(container) : rt.containers.values().next().value;
      return c?.rootDir;
    }
    return undefined;
  }

  // ---------------------------------------------------------------- readiness probes

  /**
   * Starts the prober for a container that was just started (kubelet's prober worker):
   * Ready only after `successThreshold` consecutive successes, NotReady after
   * `failureThreshold` consecutive failures; the first probe after `initialDelaySeconds`,
   * then one per `periodSeconds` (a probe that takes longer delays the next, as the worker
   * runs them one at a time); a probe taking longer than `timeoutSeconds` fails.
   */
  private startProbe(rt: PodRt, c: ContainerRt): void {
    this.stopProbe(c);
    const spec = c.spec.readinessProbe;
    if (!spec) return;
    const probe: ProbeRt = { epoch: ++this.probeEpoch, ready: false, run: 0, busy: false };
    c.probe = probe;
    const period = Math.max(1, spec.periodSeconds ?? 10) * 1000;
    const tick = async () => {
      if (c.probe?.epoch !== probe.epoch || !c.proc || this.stopped) return;
      const started = Date.now();
      probe.busy = true;
      const { ok, output } = await this.runProbe(rt, c, spec).catch((e: unknown) => ({
        ok: false,
        output: e instanceof Error ? e.message : String(e),
      }));
      probe.busy = false;
      if (c.probe?.epoch !== probe.epoch) return;
      probe.lastOutput = output;
      if (probe.last === ok) probe.run += 1;
      else {
        probe.last = ok;
        probe.run = 1;
      }
      const threshold = ok ? (spec.successThreshold ?? 1) : (spec.failureThreshold ?? 3);
      if (probe.run >= threshold && probe.ready !== ok) {
        probe.ready = ok;
        this.kick();
      }
      const elapsed = Date.now() - started;
      probe.timer = setTimeout(() => void tick(), period - (elapsed % period));
      probe.timer.unref();
    };
    probe.timer = setTimeout(() => void tick(), Math.max(0, spec.initialDelaySeconds ?? 0) * 1000);
    probe.timer.unref();
  }

  private stopProbe(c: ContainerRt): void {
    if (c.probe?.timer) clearTimeout(c.probe.timer);
    c.probe = undefined;
  }

  private async runProbe(
    rt: PodRt,
    c: ContainerRt,
    spec: Probe,
  ): Promise<{ ok: boolean; output: string }> {
    const timeoutMs = Math.max(1, spec.timeoutSeconds ?? 1) * 1000;
    if (spec.exec) {
      const pod = this.store.get<Pod>(PODS, rt.namespace, rt.name);
      if (!pod || pod.metadata.uid !== rt.uid) return { ok: false, output: 'pod gone' };
      // kubelet: ExpandContainerCommandOnlyStatic — only `value:` env vars, unexpanded;
      // a `valueFrom` variable expands to "".
      const command = spec.exec.command.map((a) => expandStatic(a, c.spec.env ?? []));
      const problem = this.execProblem(pod, c.spec.name, command[0] ?? '');
      if (problem) {
        return {
          ok: false,
          output: `OCI runtime exec failed: exec failed: unable to start container process: ${problem}: unknown`,
        };
      }
      const child = spawnSandboxed(this.sandboxFor(pod, c.spec.name, command), [
        'ignore',
        'pipe',
        'pipe',
      ]);
      let output = '';
      const collect = (d: Buffer) => {
        if (output.length < 10_240) output += d.toString('utf8');
      };
      child.stdout?.on('data', collect);
      child.stderr?.on('data', collect);
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        kill(child);
      }, timeoutMs);
      const code = await new Promise<number | null>((resolve) => {
        child.once('close', (x) => resolve(x));
        child.once('error', () => resolve(null));
      });
      clearTimeout(timer);
      if (timedOut) return { ok: false, output: `command timed out after ${timeoutMs / 1000}s` };
      return { ok: code === 0, output };
    }
    const port = (p: number | string | undefined): number =>
      typeof p === 'number'
        ? p
        : (c.spec.ports?.find((x) => x.name === p)?.containerPort ?? Number(p ?? 0));
    if (spec.tcpSocket) {
      const target = { host: spec.tcpSocket.host ?? '127.0.0.1', port: port(spec.tcpSocket.port) };
      return new Promise((resolve) => {
        const s = connect(target);
        s.setTimeout(timeoutMs, () => {
          s.destroy();
          resolve({ ok: false, output: 'timeout' });
        });
        s.once('connect', () => {
          s.destroy();
          resolve({ ok: true, output: '' });
        });
        s.once('error', (e) => resolve({ ok: false, output: e.message }));
      });
    }
    if (spec.httpGet) {
      const g = spec.httpGet;
      const https = (g.scheme ?? 'HTTP').toUpperCase() === 'HTTPS';
      return new Promise((resolve) => {
        const req = (https ? httpsRequest : httpRequest)(
          {
            host: g.host ?? '127.0.0.1',
            port: port(g.port),
            path: g.path ?? '/',
            method: 'GET',
            timeout: timeoutMs,
            ...(https ? { rejectUnauthorized: false } : {}),
          },
          (res) => {
            res.resume();
            const code = res.statusCode ?? 0;
            resolve({ ok: code >= 200 && code < 400, output: `HTTP ${code}` });
          },
        );
        req.once('timeout', () => req.destroy(new Error('timeout')));
        req.once('error', (e) => resolve({ ok: false, output: e.message }));
        req.end();
      });
    }
    return { ok: false, output: 'sim: probe has no exec, httpGet or tcpSocket' };
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
      const ready =
        running &&
        (c.spec.readinessProbe
          ? c.probe?.ready === true
          : t - c.startedAtMs >= this.options.readyAfterMs);
      if (running && !ready && !c.spec.readinessProbe)
        setTimeout(this.kick, this.options.readyAfterMs + 10).unref();
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

/** The argv a container runs: its command + args, or its image's entrypoint + args. */
export function entrypointOf(c: Container, image: ImageFs): string[] | undefined {
  if (c.command && c.command.length > 0) return [...c.command, ...(c.args ?? [])];
  if (image.entrypoint) return [...image.entrypoint, ...(c.args ?? [])];
  return undefined;
}

/** kubelet's ExpandContainerCommandOnlyStatic: `$(VAR)` from `value:` env entries only. */
export function expandStatic(s: string, env: EnvVar[]): string {
  const map: Record<string, string> = {};
  for (const e of env) map[e.name] = e.value ?? '';
  return expand(s, map);
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
