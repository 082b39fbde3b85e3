/**
 * The simulated admin cluster without any workload: certificates, the API server, the
 * kubelet, the control loops and the reconcile loop that drives them, nodes, and the
 * kubeconfig file.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { ApiServer } from './apiserver.js';
import { Controllers, deletePod } from './controllers.js';
import { Faults, Violations } from './faults.js';
import { Images } from './images.js';
import { Kubelet, type KubeletOptions } from './kubelet.js';
import { collectOrphanMounts, unmountUnder } from './mounts.js';
import { createCa, createLeaf } from './pki.js';
import { registerTempDir, unregisterTempDir } from './sandbox.js';
import { resourceByPlural, Store } from './store.js';
import type { KObject, NodeObj, Pod } from './types.js';

export interface CoreOptions extends Partial<KubeletOptions> {
  /** Where to write the kubeconfig; default `<sim dir>/kubeconfig`. */
  kubeconfigPath?: string;
}

export function def(group: string, plural: string) {
  const d = resourceByPlural(group, plural);
  if (!d) throw new Error(`no resource ${plural}`);
  return d;
}
export const R = {
  pods: def('', 'pods'),
  nodes: def('', 'nodes'),
  namespaces: def('', 'namespaces'),
  secrets: def('', 'secrets'),
  pvcs: def('', 'persistentvolumeclaims'),
  statefulsets: def('apps', 'statefulsets'),
  deployments: def('apps', 'deployments'),
  pdbs: def('policy', 'poddisruptionbudgets'),
};

export class SimCore {
  readonly store = new Store();
  readonly faults = new Faults();
  readonly violations = new Violations();
  readonly kubelet: Kubelet;
  readonly controllers: Controllers;
  /** Which file system a container gets for its image reference. */
  readonly images: Images;
  api!: ApiServer;
  kubeconfigPath = '';
  /** CA certificate of the API server (PEM file). */
  caPath = '';
  private readonly token = randomBytes(24).toString('hex');
  private timer?: NodeJS.Timeout;
  private running = false;
  private again = false;
  private stopped = false;
  private idle: (() => void)[] = [];
  /** Errors thrown by a reconcile pass (tests may assert this stays empty). */
  readonly loopErrors: string[] = [];
  private execHooks: ((
    pod: Pod,
    container: string,
    command: string[],
  ) => (() => void) | undefined)[] = [];
  private readonly ownsKubeconfig: boolean;

  private constructor(
    readonly dir: string,
    options: CoreOptions,
  ) {
    this.images = new Images(dir);
    this.kubelet = new Kubelet(
      this.store,
      dir,
      {
        backoffInitialMs: options.backoffInitialMs ?? 1000,
        backoffMaxMs: options.backoffMaxMs ?? 10_000,
        readyAfterMs: options.readyAfterMs ?? 500,
        freshContainerOnRestart: options.freshContainerOnRestart ?? false,
      },
      () => this.kick(),
      this.images,
    );
    this.controllers = new Controllers(this.store, dir);
    this.kubeconfigPath = options.kubeconfigPath ?? join(dir, 'kubeconfig');
    this.ownsKubeconfig = options.kubeconfigPath === undefined;
  }

  static async start(options: CoreOptions = {}): Promise<SimCore> {
    await collectOrphans();
    const dir = await mkdtemp(join(tmpdir(), 'sim-k8s-'));
    registerTempDir(dir);
    await writeFile(join(dir, 'owner.pid'), `${process.pid}\n`);
    const core = new SimCore(dir, options);
    try {
      await core.init();
    } catch (e) {
      await core.stop();
      throw e;
    }
    return core;
  }

  private async init(): Promise<void> {
    const pki = join(this.dir, 'pki', 'apiserver');
    const ca = await createCa(pki, 'ca', 'sim-kubernetes-ca');
    const serving = await createLeaf(ca, pki, 'apiserver', {
      commonName: 'kube-apiserver',
      san: ['IP:127.0.0.1', 'DNS:localhost', 'DNS:kubernetes', 'DNS:kubernetes.default.svc'],
      usages: ['serverAuth'],
    });
    this.caPath = ca.certPath;
    this.api = new ApiServer(this.store, this.kubelet, this.faults, {
      cert: serving.cert,
      key: serving.key,
      token: this.token,
      onExec: (pod, container, command) => {
        const ends = this.execHooks.map((h) => h(pod, container, command));
        return () => {
          for (const e of ends) e?.();
        };
      },
    });
    const port = await this.api.listen();
    await mkdir(dirname(this.kubeconfigPath), { recursive: true });
    await writeFile(
      this.kubeconfigPath,
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters:',
        '- name: sim-admin-cluster',
        '  cluster:',
        `    server: https://127.0.0.1:${port}`,
        `    certificate-authority-data: ${Buffer.from(ca.cert).toString('base64')}`,
        'users:',
        '- name: sim-admin',
        '  user:',
        `    token: ${this.token}`,
        'contexts:',
        '- name: sim',
        '  context:',
        '    cluster: sim-admin-cluster',
        '    user: sim-admin',
        '    namespace: default',
        'current-context: sim',
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    for (const ns of ['default', 'kube-system']) {
      this.store.create(R.namespaces, { metadata: { name: ns }, status: { phase: 'Active' } });
    }
    this.store.on('change', () => this.kick());
    this.timer = setInterval(() => this.kick(), 500);
    this.timer.unref();
  }

  /** Registers a callback run at the start of every exec; its result runs at the end. */
  onExec(hook: (pod: Pod, container: string, command: string[]) => (() => void) | undefined): void {
    this.execHooks.push(hook);
  }

  /** Schedules a reconcile pass. */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    setImmediate(() => void this.loop());
  }

  private async loop(): Promise<void> {
    try {
      do {
        this.again = false;
        try {
          await this.controllers.sync();
          await this.kubelet.sync();
        } catch (e) {
          this.loopErrors.push(e instanceof Error ? (e.stack ?? e.message) : String(e));
        }
      } while (this.again && !this.stopped);
    } finally {
      this.running = false;
      for (const f of this.idle.splice(0)) f();
    }
  }

  addNode(name: string, labels: Record<string, string> = {}): void {
    this.store.create<NodeObj>(R.nodes, {
      metadata: {
        name,
        labels: {
          'kubernetes.io/hostname': name,
          'kubernetes.io/os': 'linux',
          'kubernetes.io/arch': 'amd64',
          ...labels,
        },
      },
      spec: {},
      status: {
        conditions: [
          {
            type: 'Ready',
            status: 'True',
            reason: 'KubeletReady',
            message: 'kubelet is posting ready status',
            lastHeartbeatTime: new Date().toISOString(),
            lastTransitionTime: new Date().toISOString(),
          },
        ],
        addresses: [
          { type: 'InternalIP', address: '127.0.0.1' },
          { type: 'Hostname', address: name },
        ],
        nodeInfo: {
          kubeletVersion: 'v1.31.0-sim',
          containerRuntimeVersion: 'bwrap://0.8',
          operatingSystem: 'linux',
          architecture: 'amd64',
          osImage: 'Debian (simulated node)',
          kernelVersion: '',
          kubeProxyVersion: 'v1.31.0-sim',
          machineID: '',
          systemUUID: '',
          bootID: '',
        },
        capacity: { cpu: '2', memory: '8Gi', pods: '110' },
        allocatable: { cpu: '2', memory: '8Gi', pods: '110' },
      },
    });
  }

  pod(namespace: string, name: string): Pod | undefined {
    return this.store.get<Pod>(R.pods, namespace, name);
  }

  get<T extends KObject>(
    d: (typeof R)[keyof typeof R],
    namespace: string | undefined,
    name: string,
  ): T | undefined {
    return this.store.get<T>(d, namespace, name);
  }

  /** Evicts (gracefully deletes) a pod, as a node drain or the eviction API would. */
  evictPod(namespace: string, name: string, graceSeconds?: number): void {
    const p = this.pod(namespace, name);
    if (p) deletePod(this.store, p, graceSeconds);
  }

  /** Polls `check` (after reconcile passes) until it returns a value other than undefined/false. */
  async waitFor<T>(
    what: string,
    check: () => T | undefined | false | Promise<T | undefined | false>,
    timeoutMs = 60_000,
    describe?: () => string,
  ): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await check();
      if (v !== undefined && v !== false) return v;
      if (Date.now() > deadline) {
        const extra = [describe?.() ?? '', ...this.loopErrors.slice(-3)].filter(Boolean).join('\n');
        throw new Error(
          `sim: timed out after ${timeoutMs} ms waiting for ${what}${extra ? `\n${extra}` : ''}`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.running) await new Promise<void>((r) => this.idle.push(r));
    await this.api?.close();
    await this.kubelet.stopAll();
    await unmountUnder(this.dir);
    unregisterTempDir(this.dir);
    // SIM_KEEP_DIR=1 keeps the pods' files and logs for a post-mortem.
    if (process.env.SIM_KEEP_DIR === '1') console.error(`sim: kept ${this.dir}`);
    else await rm(this.dir, { recursive: true, force: true });
    if (!this.ownsKubeconfig) await rm(this.kubeconfigPath, { force: true });
  }
}

/**
 * Removes simulator directories left by a process that was SIGKILLed (no exit handler ran;
 * its sandboxes died with it through --die-with-parent), after unmounting its size-limited
 * directories. Only directories with an `owner.pid` whose process is gone are touched.
 */
async function collectOrphans(): Promise<void> {
  await collectOrphanMounts();
  const base = tmpdir();
  for (const name of await readdir(base).catch(() => [] as string[])) {
    if (!name.startsWith('sim-k8s-')) continue;
    const dir = join(base, name);
    const pid = Number((await readFile(join(dir, 'owner.pid'), 'utf8').catch(() => '')).trim());
    if (!Number.isInteger(pid) || pid <= 0) continue;
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch (e) {
      alive = (e as NodeJS.ErrnoException).code === 'EPERM';
    }
    if (!alive) await rm(dir, { recursive: true, force: true });
  }
}
