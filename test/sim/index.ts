/**
 * The simulated GKE on-prem admin cluster: entry points for tests and the demo.
 *
 *   const sim = await startSimCluster({ members: 3, userClusterName: 'user1' });
 *   // sim.kubeconfigPath -> point @kubernetes/client-node or kubectl at it
 *   // sim.profile        -> the ClusterProfile the workflows take as input
 *   await sim.stop();
 *
 * See README.md in this folder.
 */
import { execFile } from 'node:child_process';
import { constants, lstatSync, readdirSync } from 'node:fs';
import { lstat, open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ClusterProfile } from '../../workflows/contract/index.js';
import { type CoreOptions, R, SimCore } from './core.js';
import { Faults, type RequestInfo, type Violation } from './faults.js';
import {
  type AdminEtcdInfo,
  createAdminEtcd,
  createUserCluster,
  type EtcdTls,
  finishUserCluster,
  type UserClusterInfo,
  waitUserClusterReady,
} from './gke.js';
import type { EtcdBinaries, EtcdImageKind, EtcdLine, UtilityImageKind } from './images.js';
import { pvcDir } from './kubelet.js';
import { mountSizeLimited, quantity, requireRoot, unmountSizeLimited } from './mounts.js';
import { Reconciler, type ReconcilerControl } from './reconciler.js';
import type { Pod, Pvc, StatefulSet } from './types.js';

export type { ClusterProfile } from '../../workflows/contract/index.js';
export type { RequestInfo, RequestMatch } from './faults.js';
export type { AdminEtcdInfo, EtcdBinaries, EtcdLine, EtcdTls, ReconcilerControl, Violation };
export { Faults };

export interface SimAdminClusterOptions extends CoreOptions {}

export interface SimClusterOptions extends CoreOptions {
  /** Members of the user cluster's etcd (StatefulSet kube-etcd). */
  members: 1 | 3;
  /** USER_CLUSTER_NAME: the namespace and cluster-name label. Default `user-cluster-1`. */
  userClusterName?: string;
  /** Also run the kube-system admin etcd pod (SPEC A3). Default true. */
  adminEtcd?: boolean;
  /**
   * etcd release of the kube-etcd pods, the admin etcd pod, the utility pods and the host
   * helpers (`etcdctl`, `putKey`, ...): Debian's 3.4 (default), or provision.sh's 3.5 / 3.6.
   */
  etcd?: EtcdLine;
  /** kube-etcd's (and the admin etcd's) image: `full` (a shell and coreutils, default) or `distroless`. */
  etcdImage?: EtcdImageKind;
  /** The utility image (`profile.utilityImageRepository`, any tag): `full` (default) or `busybox`. */
  utilityImage?: UtilityImageKind;
  /**
   * kube-apiserver compacts etcd every this many ms, as its `--etcd-compaction-interval`
   * (5 min by default there): to the revision it saw one interval before. Default: never.
   */
  compactEveryMs?: number;
  /** kube-etcd's podManagementPolicy: `Parallel` (default) or `OrderedReady` (Kubernetes' default). */
  etcdPodManagementPolicy?: 'OrderedReady' | 'Parallel';
  /**
   * A readinessProbe on kube-etcd: `none` (default; Ready after readyAfterMs), `local` (a
   * serializable read of the member itself) or `quorum` (`endpoint health`, needs quorum).
   */
  etcdReadiness?: 'none' | 'local' | 'quorum';
  /**
   * A reconciling controller (GKE on-prem's user-cluster controller) puts kube-etcd's
   * spec.replicas back to `members`, `delayMs` (default 2000) after it changed. Off by
   * default; `sim.reconciler.enable()/disable()` at run time.
   */
  reconciler?: boolean | { delayMs?: number };
  /**
   * Size of kube-etcd's data volumes (all, or per member number): each PVC's directory is a
   * tmpfs of that size, which fails writes with ENOSPC when full. Needs root. etcd keeps
   * two 64 MB WAL segment files (the current one and a preallocated spare), so a member
   * needs more than 128 MiB; below that it fails as a real one would on such a disk.
   */
  pvcSizeBytes?: number | Readonly<Record<number, number>>;
}

export interface EtcdctlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** An admin cluster with nodes and nothing else (for API-level tests). */
export interface SimAdminCluster {
  kubeconfigPath: string;
  /** The simulator's temporary directory (pods, volumes, certificates); removed by stop(). */
  dir: string;
  /** API server URL, e.g. https://127.0.0.1:40123 */
  server: string;
  /** Fault injection: failNext, dropExecAfterBytes, addLatency, clear. */
  faults: Faults;
  /** Every API request served so far, in order (verb, resource, subresource, namespace, name, as). */
  requests: readonly RequestInfo[];
  /** Protocol violations seen so far (tests assert this is empty). */
  violations: readonly Violation[];
  /** Errors inside the simulator's control loops (should stay empty). */
  loopErrors: readonly string[];
  addNode(name: string, labels?: Record<string, string>): void;
  /** The stored pod, straight from the simulator (no HTTP). */
  pod(namespace: string, name: string): Pod | undefined;
  /** Gracefully deletes a pod, as an eviction would. */
  evictPod(namespace: string, name: string, graceSeconds?: number): void;
  /**
   * Kills a container's process (SIGKILL, like an OOM kill; default the pod's first
   * container); the kubelet restarts it per restartPolicy. Resolves once it has exited.
   */
  restartContainer(namespace: string, pod: string, container?: string): Promise<void>;
  /** Host directory behind a PVC (for tests that inspect data). */
  pvcHostDir(namespace: string, claim: string): string | undefined;
  /** Host directory that is `/` of a container (default the first) as of its current start. */
  podRootDir(namespace: string, pod: string, container?: string): string | undefined;
  waitFor<T>(
    what: string,
    check: () => T | undefined | false | Promise<T | undefined | false>,
    timeoutMs?: number,
  ): Promise<T>;
  /** Kills every process, closes the server, removes every temporary file. Idempotent. */
  stop(): Promise<void>;
}

export interface SimCluster extends SimAdminCluster {
  userClusterName: string;
  members: 1 | 3;
  /** The ClusterProfile for the workflows (endpoint and peer URL templates contain `{member}`). */
  profile: ClusterProfile;
  /** Name of the Secret `kube-etcd-certs-<suffix>`. */
  etcdSecretName: string;
  /** Client URL of member N (same inside pods and on this host). */
  etcdClientUrl(member: number): string;
  /** Host paths of the user cluster's etcd CA, certificate and key. */
  etcdTls: EtcdTls;
  /** The kube-system etcd (undefined when `adminEtcd: false`). */
  adminEtcd?: AdminEtcdInfo;
  /** The etcd release the pods run: line, exact version, host paths of its binaries. */
  etcd: EtcdBinaries;
  /** kube-etcd's image reference (its tag says the version, and `-distroless`). */
  etcdImage: string;
  /** The maintenance Deployment's image (the utility image repository). */
  utilityImage: string;
  /** Runs the release's etcdctl on this host against the user cluster (all members, or one). */
  etcdctl(
    args: string[],
    options?: { member?: number; timeoutMs?: number },
  ): Promise<EtcdctlResult>;
  /** Runs the release's etcdutl on this host (3.5 and later; e.g. `snapshot status`). */
  etcdutl(args: string[], options?: { timeoutMs?: number }): Promise<EtcdctlResult>;
  putKey(key: string, value: string, options?: { member?: number }): Promise<void>;
  getKey(key: string, options?: { member?: number }): Promise<string | undefined>;
  /** Whether member N answers `endpoint health`. */
  memberHealthy(member: number): Promise<boolean>;
  /** Whether a write through any member succeeds (i.e. the cluster has quorum). */
  hasQuorum(): Promise<boolean>;
  /**
   * Corrupts member N's data like a broken disk would: stops its etcd, overwrites the bbolt
   * database header and the WAL head with garbage, lets the kubelet restart it. The member
   * then crash-loops until its data is restored.
   */
  corruptMember(member: number): Promise<void>;
  /** Waits until every pod of the user cluster is Running and Ready. */
  waitReady(timeoutMs?: number): Promise<void>;
  /** The reconciling controller of kube-etcd's replicas (see the `reconciler` option). */
  reconciler: ReconcilerControl;
  /**
   * Another user cluster in the same admin cluster (its own namespace, nodes, etcd on ports
   * of its own, so its own `profile`), Running and Ready when this resolves. The handle's
   * `stop` stops the whole simulator.
   */
  addUserCluster(options: { name: string; members: 1 | 3 }): Promise<SimCluster>;
}

function baseApi(core: SimCore): SimAdminCluster {
  return {
    kubeconfigPath: core.kubeconfigPath,
    dir: core.dir,
    server: `https://127.0.0.1:${core.api.port}`,
    faults: core.faults,
    requests: core.api.requests,
    violations: core.violations.list,
    loopErrors: core.loopErrors,
    addNode: (name, labels) => core.addNode(name, labels),
    pod: (ns, name) => core.pod(ns, name),
    evictPod: (ns, name, grace) => core.evictPod(ns, name, grace),
    restartContainer: (ns, name, container) => core.kubelet.restartContainer(ns, name, container),
    pvcHostDir: (ns, claim) => {
      const pvc = core.store.get<Pvc>(R.pvcs, ns, claim);
      return pvc ? pvcDir(core.dir, pvc) : undefined;
    },
    podRootDir: (ns, name, container) => core.kubelet.podRootDir(ns, name, container),
    waitFor: (what, check, timeoutMs) => core.waitFor(what, check, timeoutMs),
    stop: () => core.stop(),
  };
}

/** A directory on this host that fails writes with ENOSPC once it holds `bytes`. */
export interface SizeLimitedDir {
  path: string;
  /** Unmounts it (the contents go with the tmpfs), removes it if it was made. Idempotent. */
  release(): Promise<void>;
}

/**
 * Makes `path` (missing or empty) a size-limited directory: a tmpfs of `bytes`, e.g. a
 * worker's backup directory that fills up. Needs root. Unmounted by release(), at process
 * exit, or (after a SIGKILL) by the next simulator that starts.
 */
export async function sizeLimitedDir(path: string, bytes: number): Promise<SizeLimitedDir> {
  await mountSizeLimited(path, bytes, 'sizeLimitedDir');
  return { path, release: () => unmountSizeLimited(path) };
}

/** Starts an admin cluster with three plain nodes (`node-0..2`) and no workloads. */
export async function startSimAdminCluster(
  options: SimAdminClusterOptions = {},
): Promise<SimAdminCluster> {
  const core = await SimCore.start(options);
  for (let i = 0; i < 3; i++) core.addNode(`node-${i}`);
  return baseApi(core);
}

/**
 * Starts the admin cluster with a GKE on-prem user cluster in it (SPEC.md): nodes,
 * namespace, etcd Secret, StatefulSets kube-etcd (real etcd with TLS) and kube-apiserver
 * (writes to etcd), Deployment gke-master-etcd-maintenance, PDB kube-apiserver-pdb, and the
 * kube-system etcd. Resolves once everything is Running and Ready and etcd has quorum.
 */
export async function startSimCluster(options: SimClusterOptions): Promise<SimCluster> {
  if (options.pvcSizeBytes !== undefined) requireRoot('pvcSizeBytes');
  const core = await SimCore.start(options);
  try {
    const name = options.userClusterName ?? 'user-cluster-1';
    const sizes = options.pvcSizeBytes;
    const sizeOf = (member: number): number | undefined =>
      typeof sizes === 'number' ? sizes : sizes?.[member];
    const images = {
      ...(options.etcd ? { etcd: options.etcd } : {}),
      ...(options.etcdImage ? { etcdImage: options.etcdImage } : {}),
      ...(options.utilityImage ? { utilityImage: options.utilityImage } : {}),
    };
    const info = await createUserCluster(core, {
      name,
      members: options.members,
      images,
      ...(options.etcdPodManagementPolicy
        ? { etcdPodManagementPolicy: options.etcdPodManagementPolicy }
        : {}),
      ...(options.etcdReadiness ? { etcdReadiness: options.etcdReadiness } : {}),
      ...(options.compactEveryMs ? { compactEveryMs: options.compactEveryMs } : {}),
      // The claims ask for what they get (the smallest, when sizes differ per member).
      ...(sizes !== undefined
        ? {
            dataVolumeSize: sizeOf,
            dataClaimStorage: quantity(
              Math.min(...[0, 1, 2].map(sizeOf).filter((x): x is number => x !== undefined)),
            ),
          }
        : {}),
    });
    const adminEtcd = options.adminEtcd === false ? undefined : await createAdminEtcd(core, images);
    watchDataChanges(core, info);
    const reconciler = new Reconciler(core, info.name, info.profile.etcdStatefulSet, info.members);
    const sim = userApi(core, info, adminEtcd, reconciler, images);
    await sim.waitReady();
    await core.waitFor('etcd quorum', () => sim.hasQuorum(), 60_000);
    finishUserCluster(core, info);
    if (options.reconciler) {
      reconciler.enable(options.reconciler === true ? undefined : options.reconciler.delayMs);
    }
    if (adminEtcd) {
      await core.waitFor('admin etcd', () => {
        const p = core.pod('kube-system', adminEtcd.podName);
        return p?.status?.containerStatuses?.[0]?.ready === true;
      });
    }
    return sim;
  } catch (e) {
    await core.stop();
    throw e;
  }
}

function userApi(
  core: SimCore,
  info: UserClusterInfo,
  adminEtcd: AdminEtcdInfo | undefined,
  reconciler: Reconciler,
  images: Parameters<typeof createUserCluster>[1]['images'],
): SimCluster {
  // 3.4 wants ETCDCTL_API=3 for nothing (v3 is its default); 3.6 warns about it.
  const env = {
    ...(info.etcd.line === '3.4' ? { ETCDCTL_API: '3' } : {}),
    PATH: process.env.PATH ?? '/usr/bin:/bin',
  };
  const run = (binary: string, args: string[], timeoutMs: number): Promise<EtcdctlResult> =>
    new Promise((resolve) => {
      execFile(binary, args, { env, timeout: timeoutMs + 5000 }, (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolve({ code, stdout, stderr });
      });
    });
  const etcdctl = (
    args: string[],
    options: { member?: number; timeoutMs?: number } = {},
  ): Promise<EtcdctlResult> => {
    const endpoints =
      options.member !== undefined
        ? info.clientUrl(options.member)
        : [...Array(info.members).keys()].map(info.clientUrl).join(',');
    const timeoutMs = options.timeoutMs ?? 5000;
    return run(
      info.etcd.etcdctl,
      [
        `--endpoints=${endpoints}`,
        `--cacert=${info.tls.caFile}`,
        `--cert=${info.tls.certFile}`,
        `--key=${info.tls.keyFile}`,
        '--dial-timeout=2s',
        `--command-timeout=${Math.ceil(timeoutMs / 1000)}s`,
        ...args,
      ],
      timeoutMs,
    );
  };
  const sim: SimCluster = {
    ...baseApi(core),
    stop: async () => {
      reconciler.stop();
      await core.stop();
    },
    reconciler,
    userClusterName: info.name,
    members: info.members,
    profile: info.profile,
    etcdSecretName: info.secretName,
    etcdClientUrl: info.clientUrl,
    etcdTls: info.tls,
    ...(adminEtcd ? { adminEtcd } : {}),
    etcd: info.etcd,
    etcdImage: info.etcdImage,
    utilityImage: info.maintenanceImage,
    etcdctl,
    etcdutl(args, options = {}) {
      const etcdutl = info.etcd.etcdutl;
      if (!etcdutl)
        throw new Error(`sim: etcd ${info.etcd.version} has no etcdutl (3.5 and later)`);
      return run(etcdutl, args, options.timeoutMs ?? 10_000);
    },
    async putKey(key, value, options = {}) {
      const r = await etcdctl(['put', key, value], options);
      if (r.code !== 0) throw new Error(`etcdctl put ${key} failed: ${r.stderr.trim()}`);
    },
    async getKey(key, options = {}) {
      const r = await etcdctl(['get', key, '--print-value-only'], options);
      if (r.code !== 0) throw new Error(`etcdctl get ${key} failed: ${r.stderr.trim()}`);
      return r.stdout === '' ? undefined : r.stdout.replace(/\n$/, '');
    },
    async memberHealthy(member) {
      const r = await etcdctl(['endpoint', 'health'], { member, timeoutMs: 3000 });
      return r.code === 0;
    },
    async hasQuorum() {
      // A write through any one member commits only with a quorum behind it. Members are
      // tried one by one so that a dead endpoint cannot fail the check.
      for (let m = 0; m < info.members; m++) {
        const r = await etcdctl(['put', '/sim/quorum-check', new Date().toISOString()], {
          member: m,
          timeoutMs: 3000,
        });
        if (r.code === 0) return true;
      }
      return false;
    },
    async corruptMember(member) {
      const podName = `${info.profile.etcdStatefulSet}-${member}`;
      const pvc = core.store.get<Pvc>(
        R.pvcs,
        info.name,
        `${info.profile.dataClaimPrefix}-${member}`,
      );
      if (!pvc) throw new Error(`no PVC for member ${member}`);
      const release = await core.kubelet.hold(info.name, podName, info.profile.etcdContainer);
      try {
        const dir = pvcDir(core.dir, pvc);
        await scribble(join(dir, 'member/snap/db'));
        const walDir = join(dir, 'member/wal');
        for (const f of await readdir(walDir).catch(() => [])) {
          if (f.endsWith('.wal')) await scribble(join(walDir, f));
        }
      } finally {
        release();
      }
    },
    waitReady: (timeoutMs) => waitUserClusterReady(core, info, timeoutMs),
    async addUserCluster({ name, members }) {
      const other = await createUserCluster(core, { name, members, ...(images ? { images } : {}) });
      watchDataChanges(core, other);
      const otherReconciler = new Reconciler(
        core,
        other.name,
        other.profile.etcdStatefulSet,
        members,
      );
      const added = userApi(core, other, adminEtcd, otherReconciler, images);
      added.stop = sim.stop;
      await added.waitReady();
      await core.waitFor(`etcd quorum of ${name}`, () => added.hasQuorum(), 60_000);
      finishUserCluster(core, other);
      return added;
    },
  };
  return sim;
}

async function scribble(file: string): Promise<void> {
  const st = await lstat(file).catch(() => undefined);
  if (!st?.isFile()) return;
  // O_NOFOLLOW: a pod could have replaced the file with a symlink to a host file.
  const fh = await open(file, constants.O_RDWR | constants.O_NOFOLLOW);
  try {
    const junk = Buffer.alloc(Math.min(16384, Math.max(st.size, 1)));
    for (let i = 0; i < junk.length; i++) junk[i] = (i * 7919 + 13) & 0xff;
    await fh.write(junk, 0, junk.length, 0);
  } finally {
    await fh.close();
  }
}

// ---------------------------------------------------------------- protocol violations

interface Fingerprint {
  ids: string;
  contents: string;
  roots: string;
}

/**
 * etcd's own data inside a data directory: `member/` (wal and snap). Other entries next to
 * it (a restore's scratch or set-aside directories) are not the member's data.
 */
function memberDataDir(dataDir: string): string {
  return join(dataDir, 'member');
}

function fingerprint(dir: string): Fingerprint {
  const ids: string[] = [];
  const contents: string[] = [];
  const walk = (d: string, rel: string): void => {
    let entries: string[] = [];
    try {
      entries = readdirSync(d);
    } catch {
      return;
    }
    for (const e of entries.sort()) {
      const p = join(d, e);
      let st: ReturnType<typeof lstatSync> | undefined;
      try {
        st = lstatSync(p);
      } catch {
        continue;
      }
      if (!st) continue;
      ids.push(`${rel}${e}:${st.ino}`);
      if (st.isDirectory()) walk(p, `${rel}${e}/`);
      else contents.push(`${rel}${e}:${st.size}:${st.mtimeMs}`);
    }
  };
  walk(dir, '');
  // What etcd itself never replaces while it runs (it adds and removes WAL and snap files):
  // the member directory, its snap and wal directories, and the database.
  const roots = ['', 'snap', 'wal', 'snap/db'].map((rel) => {
    try {
      return `${rel}:${lstatSync(join(dir, rel)).ino}`;
    } catch {
      return `${rel}:-`;
    }
  });
  return { ids: ids.join('\n'), contents: contents.join('\n'), roots: roots.join('\n') };
}

/**
 * Records a violation when an exec session in any pod that mounts member N's data PVC
 * changes that data while (a) StatefulSet kube-apiserver has replicas > 0, or (b) member N's
 * etcd process is running. Changes are detected by comparing the files of etcd's data,
 * `member/` in the PVC (names and inodes; sizes and times too when etcd was not running,
 * since a running etcd writes its own files), at the start and at the end of the session.
 */
function watchDataChanges(core: SimCore, info: UserClusterInfo): void {
  const starts = new Map<string, number>();
  core.kubelet.on('start', (e: { namespace: string; pod: string }) => {
    const k = `${e.namespace}/${e.pod}`;
    starts.set(k, (starts.get(k) ?? 0) + 1);
  });
  const apiserverUp = () => {
    const sts = core.store.get<StatefulSet>(
      R.statefulsets,
      info.name,
      info.profile.apiserverStatefulSet,
    );
    const pods = core.store
      .list<Pod>(R.pods, info.name)
      .filter((p) => p.metadata.labels?.component === 'kube-apiserver');
    return (sts?.spec.replicas ?? 0) > 0 || pods.length > 0;
  };
  core.onExec((pod) => {
    if (pod.metadata.namespace !== info.name) return undefined;
    const claims = (pod.spec.volumes ?? [])
      .map((v) => v.persistentVolumeClaim?.claimName)
      .filter((c): c is string => c?.startsWith(`${info.profile.dataClaimPrefix}-`) === true);
    if (claims.length === 0) return undefined;
    const watched = claims.flatMap((claim) => {
      const member = Number(claim.slice(info.profile.dataClaimPrefix.length + 1));
      const pvc = core.store.get<Pvc>(R.pvcs, info.name, claim);
      if (!pvc || !Number.isInteger(member)) return [];
      const etcdPod = `${info.profile.etcdStatefulSet}-${member}`;
      const key = `${info.name}/${etcdPod}`;
      return [
        {
          member,
          dir: pvcDir(core.dir, pvc),
          etcdPod,
          startCount: starts.get(key) ?? 0,
          key,
          runningAtStart: core.kubelet.isRunning(info.name, etcdPod, info.profile.etcdContainer),
          before: fingerprint(memberDataDir(pvcDir(core.dir, pvc))),
        },
      ];
    });
    const apiAtStart = apiserverUp();
    return () => {
      for (const w of watched) {
        const before = w.before;
        const after = fingerprint(memberDataDir(w.dir));
        const etcdRan =
          w.runningAtStart ||
          core.kubelet.isRunning(info.name, w.etcdPod, info.profile.etcdContainer) ||
          (starts.get(w.key) ?? 0) !== w.startCount;
        // In the member's own pod, with its etcd running, the files etcd writes itself are not
        // an exec's doing: only a replaced member/, snap/, wal/ or database is.
        const ownEtcdRunning = pod.metadata.name === w.etcdPod && etcdRan;
        const changed = ownEtcdRunning
          ? before.roots !== after.roots
          : before.ids !== after.ids || (!etcdRan && before.contents !== after.contents);
        if (!changed) continue;
        const by = `exec in pod ${pod.metadata.name}`;
        if (apiAtStart || apiserverUp()) {
          core.violations.record(
            'data-changed-while-apiserver-up',
            `member ${w.member}'s data (${info.profile.dataClaimPrefix}-${w.member}) changed by ${by} while ${info.profile.apiserverStatefulSet} had replicas > 0`,
          );
        }
        if (etcdRan) {
          core.violations.record(
            'data-changed-while-etcd-running',
            `member ${w.member}'s data changed by ${by} while its etcd process (${w.etcdPod}) was running`,
          );
        }
      }
    };
  });
}
