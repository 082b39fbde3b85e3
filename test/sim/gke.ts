/**
 * A GKE on-prem-shaped user cluster inside the simulated admin cluster (SPEC.md vocabulary),
 * and the kube-system etcd of the admin cluster itself (SPEC.md A3).
 *
 * Ports. Every etcd member is a process on this host's loopback, so members need distinct
 * ports. They come from one block per cluster, `<AB><member><XY>`: with AB=23 and XY=78,
 * member 0 serves clients on 23078 and peers on 23079, member 1 on 23178/23179, member 2 on
 * 23278/23279. So the member number sits in the URL, and the profile carries templates:
 * `etcdEndpoint` = `https://127.0.0.1:23{member}78`, `peerUrlTemplate` =
 * `https://127.0.0.1:23{member}79`. Replace `{member}` by N to reach member N from any pod
 * (including N's own etcd and utility pods; the GKE default has no `{member}`, so the
 * replacement is a no-op there).
 */

import { copyFile, mkdir } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join, posix } from 'node:path';
import { type ClusterProfile, clusterProfileSchema } from '../../workflows/contract/index.js';
import { isReady } from './controllers.js';
import { R, type SimCore } from './core.js';
import {
  type EtcdBinaries,
  type EtcdImageKind,
  type EtcdLine,
  etcdBinaries,
  etcdPathIn,
  type UtilityImageKind,
} from './images.js';
import { nodeHostDir } from './kubelet.js';
import { createCa, createLeaf } from './pki.js';
import type {
  Deployment,
  EnvVar,
  Pdb,
  Pod,
  PodTemplate,
  Probe,
  Secret,
  StatefulSet,
} from './types.js';

export const ETCD_REPOSITORY = 'gcr.io/gke-on-prem-release/etcd';
/** The default kube-etcd image (Debian's etcd 3.4 with a shell). */
export const ETCD_IMAGE = `${ETCD_REPOSITORY}:v3.4.23-0-gke.0`;
export const APISERVER_IMAGE = 'gcr.io/gke-on-prem-release/kube-apiserver:v1.31.0-gke.0';
/** GKE_ON_PREM_VERSION of the simulated cluster: the tag of its utility (etcd-util) images. */
export const GKE_ON_PREM_VERSION = '1.31.0-gke.0';
export const MAINTENANCE_IMAGE = `gcr.io/gke-on-prem-release/etcd-util:${GKE_ON_PREM_VERSION}`;
export const CERT_DIR = '/etcd.local.config/certificates';

/** The images and etcd release of a user cluster (the simulator's options). */
export interface ClusterImages {
  etcd: EtcdLine;
  etcdImage: EtcdImageKind;
  utilityImage: UtilityImageKind;
}

/** kube-etcd's image reference: the tag says the etcd version and, if so, distroless. */
export function etcdImageRef(bin: EtcdBinaries, kind: EtcdImageKind): string {
  return `${ETCD_REPOSITORY}:v${bin.version}-0-gke.0${kind === 'distroless' ? '-distroless' : ''}`;
}

/** The maintenance Deployment's utility image: GKE's tag, plus what it is when not the default. */
export function utilityImageRef(
  repository: string,
  bin: EtcdBinaries,
  kind: UtilityImageKind,
): string {
  const plain = kind === 'full' && bin.line === '3.4';
  return `${repository}:${GKE_ON_PREM_VERSION}${plain ? '' : `-${kind}-etcd${bin.version}`}`;
}

/** `ETCDCTL_API=3` where etcdctl takes it silently (3.6 warns that it is unrecognized). */
function etcdctlApiEnv(bin: EtcdBinaries): EnvVar[] {
  return bin.line === '3.6' ? [] : [{ name: 'ETCDCTL_API', value: '3' }];
}

/**
 * The readiness probe of kube-etcd (exec, so that it works in a distroless image):
 * - `local`: a serializable read, which a member answers from its own store even without
 *   quorum once it has joined its cluster (like kubeadm's `/health?serializable=true`);
 * - `quorum`: `endpoint health`, a linearizable read that needs a quorum.
 * A probe command cannot name the member's own port (the kubelet expands only static env
 * values in probe commands, `$(POD_INDEX)` would be ""), so kube-etcd also serves its
 * clients on a unix socket in its own root, `unixs://localhost:2379` (a file `/localhost:2379`),
 * which is per pod, as `https://127.0.0.1:2379` is per pod in a real cluster.
 */
export const ETCD_PROBE_ENDPOINT = 'unixs://localhost:2379';
function etcdReadinessProbe(
  etcdctl: string,
  kind: 'local' | 'quorum',
  profile: ClusterProfile,
): Probe {
  const c = profile.certificatesDir;
  const check = kind === 'local' ? ['get', 'health', '--consistency=s'] : ['endpoint', 'health'];
  return {
    exec: {
      command: [
        etcdctl,
        `--endpoints=${ETCD_PROBE_ENDPOINT}`,
        `--cacert=${c}/${profile.caFile}`,
        `--cert=${c}/${profile.certFile}`,
        `--key=${c}/${profile.keyFile}`,
        '--dial-timeout=1s',
        '--command-timeout=2s',
        ...check,
      ],
    },
    initialDelaySeconds: 0,
    periodSeconds: 1,
    timeoutSeconds: 3,
    successThreshold: 1,
    failureThreshold: 3,
  };
}

/** Host-side TLS material for talking to the user cluster's etcd with the host's etcdctl. */
export interface EtcdTls {
  caFile: string;
  certFile: string;
  keyFile: string;
}

export interface UserClusterInfo {
  name: string;
  members: 1 | 3;
  profile: ClusterProfile;
  /** Client URL of member N, as seen from any pod and from this host. */
  clientUrl: (member: number) => string;
  peerUrl: (member: number) => string;
  secretName: string;
  tls: EtcdTls;
  nodes: string[];
  /** The etcd release the pods run (host paths of its binaries). */
  etcd: EtcdBinaries;
  /** kube-etcd's image reference. */
  etcdImage: string;
  /** The maintenance Deployment's image reference (utility image repository). */
  maintenanceImage: string;
  podManagementPolicy: 'OrderedReady' | 'Parallel';
}

export interface AdminEtcdInfo {
  podName: string;
  namespace: 'kube-system';
  node: string;
  /** Client URL of the admin etcd (inside its pod and on this host). */
  endpoint: string;
  /** Host directory standing for the node's /etc/kubernetes/pki (SPEC A2). */
  nodePkiDir: string;
  /** Host paths of the kubeadm-layout files. */
  tls: EtcdTls;
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** Finds a free port block `<AB>{member}<XY>` (clients) / `<AB>{member}<XY+1>` (peers). */
export async function allocatePortBlock(
  members: number[],
): Promise<{ prefix: number; suffix: number }> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const prefix = 20 + Math.floor(Math.random() * 12);
    const suffix = 10 + 2 * Math.floor(Math.random() * 44);
    const ports = members.flatMap((m) => [
      prefix * 1000 + m * 100 + suffix,
      prefix * 1000 + m * 100 + suffix + 1,
    ]);
    let ok = true;
    for (const p of ports) {
      if (!(await portFree(p))) {
        ok = false;
        break;
      }
    }
    if (ok) return { prefix, suffix };
  }
  throw new Error('sim: no free etcd port block on 127.0.0.1');
}

/**
 * kube-apiserver stand-in: writes its key every 2 s, and (COMPACT_INTERVAL set, in seconds)
 * runs kube-apiserver's etcd compactor (k8s.io/apiserver/pkg/storage/etcd3/compact.go): every
 * interval, a transaction `if version(compact_rev_key) = <my compact time> then put
 * compact_rev_key <rev> else get compact_rev_key`; on success it compacts to `rev`, the
 * revision it saw at the previous interval (none the first time); either way it remembers
 * the key's version and the current revision. Several apiservers thus compact once per
 * interval between them, each to the revision of one interval ago.
 */
const APISERVER_SCRIPT = `
c=${CERT_DIR}
ctl() {
  etcdctl --endpoints="$ETCD_ENDPOINTS" --cacert="$c/etcdCA.crt" --cert="$c/etcd.crt" --key="$c/etcd.key" \\
    --dial-timeout=2s --command-timeout=3s "$@"
}
if [ -n "$COMPACT_INTERVAL" ]; then
  (
    t=0; rev=0
    while :; do
      sleep "$COMPACT_INTERVAL"
      out=$(printf 'ver("compact_rev_key") = "%s"\n\nput compact_rev_key "%s"\n\nget compact_rev_key\n\n' "$t" "$rev" | ctl txn -w json) ||
        { echo "etcd: compact failed: txn" >&2; continue; }
      cur=$(printf '%s' "$out" | sed -n 's/^{"header":{[^}]*"revision":\\([0-9]*\\).*/\\1/p')
      [ -n "$cur" ] || { echo "etcd: compact failed: no revision in $out" >&2; continue; }
      case $out in
      *'"succeeded":true'*)
        t=$((t + 1))
        if [ "$rev" != 0 ]; then
          if ctl compact "$rev" >/dev/null; then echo "etcd: compacted rev ($rev)"; else echo "etcd: compact $rev failed" >&2; fi
        fi ;;
      *) t=$(printf '%s' "$out" | sed -n 's/.*"version":\\([0-9]*\\).*/\\1/p') ;;
      esac
      rev=$cur
    done
  ) &
fi
i=0
while :; do
  i=$((i+1))
  if ctl put "/registry/sim-apiserver/$POD_NAME" "$i" >/dev/null; then
    echo "write $i ok"
  else
    echo "write $i failed" >&2
  fi
  sleep 2
done
`.trim();

function randomSuffix(): string {
  const a = 'bcdfghjklmnpqrstvwxz2456789';
  let s = '';
  for (let i = 0; i < 5; i++) s += a[Math.floor(Math.random() * a.length)];
  return s;
}

export interface UserClusterOptions {
  name: string;
  members: 1 | 3;
  images?: Partial<ClusterImages>;
  etcdPodManagementPolicy?: 'OrderedReady' | 'Parallel';
  etcdReadiness?: 'none' | 'local' | 'quorum';
  /** kube-apiserver's `--etcd-compaction-interval`, in ms; undefined: no compaction. */
  compactEveryMs?: number;
  /** `resources.requests.storage` of the data claims (default 5Gi). */
  dataClaimStorage?: string;
  /** Size of member N's data volume (a size-limited tmpfs), if it has one. */
  dataVolumeSize?: (member: number) => number | undefined;
}

export async function createUserCluster(
  core: SimCore,
  options: UserClusterOptions,
): Promise<UserClusterInfo> {
  const { name, members } = options;
  const images: ClusterImages = {
    etcd: options.images?.etcd ?? '3.4',
    etcdImage: options.images?.etcdImage ?? 'full',
    utilityImage: options.images?.utilityImage ?? 'full',
  };
  const bin = etcdBinaries(images.etcd);
  const { prefix, suffix } = await allocatePortBlock([0, 1, 2]);
  const clientTemplate = `https://127.0.0.1:${prefix}{member}${suffix}`;
  const peerTemplate = `https://127.0.0.1:${prefix}{member}${suffix + 1}`;
  const clientUrl = (m: number) => clientTemplate.replace('{member}', String(m));
  const peerUrl = (m: number) => peerTemplate.replace('{member}', String(m));
  const profile = clusterProfileSchema.parse({
    etcdEndpoint: clientTemplate,
    // Another pod reaches member N where its own pods do: the loopback port (GKE: the
    // headless Service name, which the certificate also carries).
    memberClientUrlTemplate: clientTemplate,
    peerUrlTemplate: peerTemplate,
  });

  const pkiDir = join(core.dir, 'pki', name);
  const ca = await createCa(pkiDir, 'etcdCA', `${name}-etcd-ca`);
  const leaf = await createLeaf(ca, pkiDir, 'etcd', {
    commonName: 'kube-etcd',
    san: ['IP:127.0.0.1', 'DNS:localhost', ...[0, 1, 2].map((i) => `DNS:kube-etcd-${i}.kube-etcd`)],
  });
  const tls: EtcdTls = { caFile: ca.certPath, certFile: leaf.certPath, keyFile: leaf.keyPath };

  const sizeOf = options.dataVolumeSize;
  if (sizeOf) {
    const prefix = `${profile.dataClaimPrefix}-`;
    core.controllers.pvcSizeLimit = (pvc) => {
      const claim = pvc.metadata.name ?? '';
      if (pvc.metadata.namespace !== name || !claim.startsWith(prefix)) return undefined;
      const member = Number(claim.slice(prefix.length));
      return Number.isInteger(member) ? sizeOf(member) : undefined;
    };
  }

  const etcdImage = etcdImageRef(bin, images.etcdImage);
  const etcdFs = await core.images.etcdImage(bin, images.etcdImage);
  core.images.register(etcdImage, etcdFs);
  core.images.registerRepository(ETCD_REPOSITORY, etcdFs);
  core.images.registerRepository(
    profile.utilityImageRepository,
    await core.images.utilityImage(bin, images.utilityImage),
  );
  const maintenanceImage = utilityImageRef(
    profile.utilityImageRepository,
    bin,
    images.utilityImage,
  );

  const nodes = [0, 1, 2].map((i) => `${name}-node-${i}`);
  for (const n of nodes) core.addNode(n, { [profile.clusterNameLabel]: name });
  core.store.create(R.namespaces, { metadata: { name }, status: { phase: 'Active' } });
  const secretName = `${profile.etcdSecretPrefix}-${randomSuffix()}`;
  core.store.create<Secret>(R.secrets, {
    metadata: { name: secretName, namespace: name },
    type: 'Opaque',
    data: {
      [profile.caFile]: Buffer.from(ca.cert).toString('base64'),
      [profile.certFile]: Buffer.from(leaf.cert).toString('base64'),
      [profile.keyFile]: Buffer.from(leaf.key).toString('base64'),
    },
  });
  const initialCluster = [...Array(members).keys()]
    .map((i) => `kube-etcd-${i}=${peerUrl(i)}`)
    .join(',');
  const certVolume = { name: 'etcd-certs', secret: { secretName, defaultMode: 0o644 } };
  // No shell (the image may be distroless): the member's URLs come from its ordinal, the
  // pod-index label (Kubernetes >= 1.28) through the downward API and `$(VAR)` expansion.
  const ownClient = clientTemplate.replace('{member}', '$(POD_INDEX)');
  const ownPeer = peerTemplate.replace('{member}', '$(POD_INDEX)');
  const readiness = options.etcdReadiness ?? 'none';
  const etcdPath = etcdPathIn(bin, images.etcdImage);
  const c = CERT_DIR;
  const etcdTemplate: PodTemplate = {
    metadata: { labels: { component: 'kube-etcd', app: 'kube-etcd' } },
    spec: {
      containers: [
        {
          name: profile.etcdContainer,
          image: etcdImage,
          command: [etcdPath],
          args: [
            '--name=$(POD_NAME)',
            `--data-dir=${profile.dataDir}`,
            `--listen-client-urls=${ownClient}${readiness === 'none' ? '' : `,${ETCD_PROBE_ENDPOINT}`}`,
            `--advertise-client-urls=${ownClient}`,
            `--listen-peer-urls=${ownPeer}`,
            `--initial-advertise-peer-urls=${ownPeer}`,
            '--initial-cluster=$(INITIAL_CLUSTER)',
            '--initial-cluster-token=$(INITIAL_CLUSTER_TOKEN)',
            '--initial-cluster-state=new',
            '--client-cert-auth',
            `--trusted-ca-file=${c}/etcdCA.crt`,
            `--cert-file=${c}/etcd.crt`,
            `--key-file=${c}/etcd.key`,
            '--peer-client-cert-auth',
            `--peer-trusted-ca-file=${c}/etcdCA.crt`,
            `--peer-cert-file=${c}/etcd.crt`,
            `--peer-key-file=${c}/etcd.key`,
          ],
          env: [
            { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
            {
              name: 'POD_INDEX',
              valueFrom: {
                fieldRef: { fieldPath: "metadata.labels['apps.kubernetes.io/pod-index']" },
              },
            },
            ...etcdctlApiEnv(bin),
            { name: 'MEMBER_CLIENT_URL_TEMPLATE', value: clientTemplate },
            { name: 'MEMBER_PEER_URL_TEMPLATE', value: peerTemplate },
            { name: 'INITIAL_CLUSTER', value: initialCluster },
            { name: 'INITIAL_CLUSTER_TOKEN', value: profile.initialClusterToken },
          ],
          ...(readiness === 'none'
            ? {}
            : {
                readinessProbe: etcdReadinessProbe(
                  posix.join(posix.dirname(etcdPath), 'etcdctl'),
                  readiness,
                  profile,
                ),
              }),
          volumeMounts: [
            { name: 'data', mountPath: profile.dataDir },
            { name: 'etcd-certs', mountPath: profile.certificatesDir },
          ],
        },
      ],
      volumes: [certVolume],
      nodeSelector: { [profile.clusterNameLabel]: name },
      affinity: {
        podAntiAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: [
            {
              labelSelector: { matchLabels: { component: 'kube-etcd' } },
              topologyKey: 'kubernetes.io/hostname',
            },
          ],
        },
      },
      terminationGracePeriodSeconds: 10,
    },
  };
  core.store.create<StatefulSet>(R.statefulsets, {
    metadata: {
      name: profile.etcdStatefulSet,
      namespace: name,
      labels: { component: 'kube-etcd' },
    },
    spec: {
      replicas: members,
      selector: { matchLabels: { component: 'kube-etcd' } },
      serviceName: 'kube-etcd',
      podManagementPolicy: bootstrapPolicy(options),
      updateStrategy: { type: 'RollingUpdate' },
      template: etcdTemplate,
      volumeClaimTemplates: [
        {
          metadata: { name: 'data' },
          spec: {
            accessModes: ['ReadWriteOnce'],
            resources: { requests: { storage: options.dataClaimStorage ?? '5Gi' } },
          },
        },
      ],
    },
  });

  const endpoints = [...Array(members).keys()].map(clientUrl).join(',');
  const apiserverTemplate: PodTemplate = {
    metadata: { labels: { component: 'kube-apiserver', app: 'kube-apiserver' } },
    spec: {
      containers: [
        {
          name: 'kube-apiserver',
          image: APISERVER_IMAGE,
          command: ['/bin/sh', '-c', APISERVER_SCRIPT],
          env: [
            { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
            { name: 'ETCDCTL_API', value: '3' },
            { name: 'ETCD_ENDPOINTS', value: endpoints },
            ...(options.compactEveryMs
              ? [{ name: 'COMPACT_INTERVAL', value: String(options.compactEveryMs / 1000) }]
              : []),
          ],
          volumeMounts: [{ name: 'etcd-certs', mountPath: profile.certificatesDir }],
        },
      ],
      volumes: [certVolume],
      nodeSelector: { [profile.clusterNameLabel]: name },
      terminationGracePeriodSeconds: 5,
    },
  };
  core.store.create<StatefulSet>(R.statefulsets, {
    metadata: {
      name: profile.apiserverStatefulSet,
      namespace: name,
      labels: { component: 'kube-apiserver' },
    },
    spec: {
      replicas: 3,
      selector: { matchLabels: { component: 'kube-apiserver' } },
      serviceName: 'kube-apiserver',
      podManagementPolicy: 'Parallel',
      updateStrategy: { type: 'RollingUpdate' },
      template: apiserverTemplate,
    },
  });
  core.store.create<Deployment>(R.deployments, {
    metadata: {
      name: profile.maintenanceDeployment,
      namespace: name,
      labels: { app: profile.maintenanceDeployment },
    },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: profile.maintenanceDeployment } },
      template: {
        metadata: { labels: { app: profile.maintenanceDeployment } },
        spec: {
          containers: [
            {
              name: 'etcd-maintenance',
              image: maintenanceImage,
              command: ['/bin/sh', '-c', 'while :; do sleep 5; done'],
              volumeMounts: [{ name: 'etcd-certs', mountPath: profile.certificatesDir }],
            },
          ],
          volumes: [certVolume],
          nodeSelector: { [profile.clusterNameLabel]: name },
          terminationGracePeriodSeconds: 5,
        },
      },
    },
  });
  core.store.create<Pdb>(R.pdbs, {
    metadata: {
      name: profile.apiserverPdb,
      namespace: name,
      labels: { component: 'kube-apiserver' },
    },
    spec: { minAvailable: 2, selector: { matchLabels: { component: 'kube-apiserver' } } },
  });
  return {
    name,
    members,
    profile,
    clientUrl,
    peerUrl,
    secretName,
    tls,
    nodes,
    etcd: bin,
    etcdImage,
    maintenanceImage,
    podManagementPolicy: options.etcdPodManagementPolicy ?? 'Parallel',
  };
}

/**
 * How kube-etcd is created. OrderedReady with a readiness probe cannot bootstrap a
 * 3-member cluster: kube-etcd-0 serves no client (so fails any probe) until its cluster
 * has a quorum, and kube-etcd-1 is only created once kube-etcd-0 is Ready. So such a
 * cluster is created Parallel and switched to OrderedReady once up (finishUserCluster), as
 * `kubectl delete sts --cascade=orphan` and a re-create would do.
 */
function bootstrapPolicy(options: UserClusterOptions): 'OrderedReady' | 'Parallel' {
  const policy = options.etcdPodManagementPolicy ?? 'Parallel';
  const probed = (options.etcdReadiness ?? 'none') !== 'none';
  return policy === 'OrderedReady' && probed && options.members > 1 ? 'Parallel' : policy;
}

/** After the cluster is up: kube-etcd gets its final podManagementPolicy. */
export function finishUserCluster(core: SimCore, info: UserClusterInfo): void {
  const sts = core.store.get<StatefulSet>(R.statefulsets, info.name, info.profile.etcdStatefulSet);
  if (!sts || sts.spec.podManagementPolicy === info.podManagementPolicy) return;
  sts.spec.podManagementPolicy = info.podManagementPolicy;
  delete sts.metadata.resourceVersion;
  core.store.update(R.statefulsets, sts);
}

/** Waits until every pod of the user cluster is Running and Ready. */
export async function waitUserClusterReady(
  core: SimCore,
  info: UserClusterInfo,
  timeoutMs = 20_000,
): Promise<void> {
  await core.waitFor(
    `user cluster ${info.name} to be ready`,
    () => {
      const pods = core.store.list<Pod>(R.pods, info.name);
      const etcd = pods.filter((p) => p.metadata.labels?.component === 'kube-etcd');
      const apiserver = pods.filter((p) => p.metadata.labels?.component === 'kube-apiserver');
      return etcd.length === info.members && apiserver.length === 3 && pods.every(isReady);
    },
    timeoutMs,
    () => describePods(core, info.name),
  );
}

/** The admin cluster's own etcd: a kubeadm-style static pod in kube-system. */
export async function createAdminEtcd(
  core: SimCore,
  options: { etcd?: EtcdLine; etcdImage?: EtcdImageKind } = {},
): Promise<AdminEtcdInfo> {
  const bin = etcdBinaries(options.etcd ?? '3.4');
  const kind = options.etcdImage ?? 'full';
  // kubeadm's image; its tag says the release (and when it is the distroless variant).
  const image = `registry.k8s.io/etcd:${bin.version}-0${kind === 'distroless' ? '-distroless' : ''}`;
  core.images.register(image, await core.images.etcdImage(bin, kind));
  const node = 'admin-master';
  core.addNode(node, { 'node-role.kubernetes.io/control-plane': '' });
  const { prefix, suffix } = await allocatePortBlock([9]);
  const endpoint = `https://127.0.0.1:${prefix * 1000 + 900 + suffix}`;
  const peer = `https://127.0.0.1:${prefix * 1000 + 900 + suffix + 1}`;
  const hostRoot = nodeHostDir(core.dir, node);
  const pkiDir = join(hostRoot, 'etc/kubernetes/pki');
  const etcdPki = join(pkiDir, 'etcd');
  const ca = await createCa(etcdPki, 'ca', 'etcd-ca');
  const san = ['IP:127.0.0.1', 'DNS:localhost', `DNS:${node}`];
  await createLeaf(ca, etcdPki, 'server', { commonName: node, san });
  await createLeaf(ca, etcdPki, 'peer', { commonName: node, san });
  const hc = await createLeaf(ca, etcdPki, 'healthcheck-client', {
    commonName: 'kube-etcd-healthcheck-client',
    san: [],
    usages: ['clientAuth'],
  });
  await mkdir(pkiDir, { recursive: true });
  const apiCa = join(core.dir, 'pki', 'apiserver');
  await copyFile(join(apiCa, 'ca.crt'), join(pkiDir, 'ca.crt'));
  await copyFile(join(apiCa, 'ca.key'), join(pkiDir, 'ca.key'));
  await copyFile(join(apiCa, 'apiserver.crt'), join(pkiDir, 'apiserver.crt'));
  await copyFile(join(apiCa, 'apiserver.key'), join(pkiDir, 'apiserver.key'));
  const p = '/etc/kubernetes/pki/etcd';
  core.store.create<Pod>(R.pods, {
    metadata: {
      name: `etcd-${node}`,
      namespace: 'kube-system',
      labels: { component: 'etcd', tier: 'control-plane' },
      annotations: { 'kubeadm.kubernetes.io/etcd.advertise-client-urls': endpoint },
    },
    spec: {
      nodeName: node,
      priorityClassName: 'system-node-critical',
      restartPolicy: 'Always',
      terminationGracePeriodSeconds: 10,
      containers: [
        {
          name: 'etcd',
          image,
          command: [
            'etcd',
            `--name=${node}`,
            '--data-dir=/var/lib/etcd',
            `--listen-client-urls=${endpoint}`,
            `--advertise-client-urls=${endpoint}`,
            `--listen-peer-urls=${peer}`,
            `--initial-advertise-peer-urls=${peer}`,
            `--initial-cluster=${node}=${peer}`,
            '--client-cert-auth=true',
            `--trusted-ca-file=${p}/ca.crt`,
            `--cert-file=${p}/server.crt`,
            `--key-file=${p}/server.key`,
            '--peer-client-cert-auth=true',
            `--peer-trusted-ca-file=${p}/ca.crt`,
            `--peer-cert-file=${p}/peer.crt`,
            `--peer-key-file=${p}/peer.key`,
          ],
          env: etcdctlApiEnv(bin),
          volumeMounts: [
            { name: 'etcd-data', mountPath: '/var/lib/etcd' },
            { name: 'etcd-certs', mountPath: p },
          ],
        },
      ],
      volumes: [
        { name: 'etcd-data', hostPath: { path: '/var/lib/etcd', type: 'DirectoryOrCreate' } },
        { name: 'etcd-certs', hostPath: { path: p, type: 'DirectoryOrCreate' } },
      ],
    },
    status: { phase: 'Pending' },
  });
  return {
    podName: `etcd-${node}`,
    namespace: 'kube-system',
    node,
    endpoint,
    nodePkiDir: pkiDir,
    tls: { caFile: ca.certPath, certFile: hc.certPath, keyFile: hc.keyPath },
  };
}

/** One line per pod: name, node, phase, container states (for timeout messages). */
export function describePods(core: SimCore, namespace: string): string {
  return core.store
    .list<Pod>(R.pods, namespace)
    .map((p) => {
      const cs = (p.status?.containerStatuses ?? [])
        .map(
          (c) =>
            `${c.name}:${Object.keys(c.state)[0] ?? '?'}${c.state.waiting ? `(${c.state.waiting.reason}: ${c.state.waiting.message ?? ''})` : ''} restarts=${c.restartCount} ready=${c.ready}`,
        )
        .join(' ');
      return `${p.metadata.name} node=${p.spec.nodeName ?? '-'} phase=${p.status?.phase ?? '-'} ${cs} ${p.status?.conditions?.find((c) => c.type === 'PodScheduled' && c.status === 'False')?.message ?? ''}`;
    })
    .join('\n');
}
