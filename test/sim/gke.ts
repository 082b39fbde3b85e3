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
import { join } from 'node:path';
import { type ClusterProfile, clusterProfileSchema } from '../../workflows/contract/index.js';
import { isReady } from './controllers.js';
import { R, type SimCore } from './core.js';
import { nodeHostDir } from './kubelet.js';
import { createCa, createLeaf } from './pki.js';
import type { Deployment, Pdb, Pod, PodTemplate, Secret, StatefulSet } from './types.js';

export const ETCD_IMAGE = 'gcr.io/gke-on-prem-release/etcd:v3.4.23-0-gke.0';
export const APISERVER_IMAGE = 'gcr.io/gke-on-prem-release/kube-apiserver:v1.31.0-gke.0';
export const MAINTENANCE_IMAGE = 'gcr.io/gke-on-prem-release/etcd-util:1.31.0-gke.0';
export const CERT_DIR = '/etcd.local.config/certificates';

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

const ETCD_SCRIPT = `
n="\${POD_NAME##*-}"
sub() { printf '%s' "$1" | sed "s/{member}/$2/g"; }
client=$(sub "$MEMBER_CLIENT_URL_TEMPLATE" "$n")
peer=$(sub "$MEMBER_PEER_URL_TEMPLATE" "$n")
c=${CERT_DIR}
exec /usr/bin/etcd --name "$POD_NAME" --data-dir /var/lib/etcd \\
  --listen-client-urls "$client" --advertise-client-urls "$client" \\
  --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \\
  --initial-cluster "$INITIAL_CLUSTER" --initial-cluster-token "$INITIAL_CLUSTER_TOKEN" \\
  --initial-cluster-state new \\
  --client-cert-auth --trusted-ca-file "$c/etcdCA.crt" --cert-file "$c/etcd.crt" --key-file "$c/etcd.key" \\
  --peer-client-cert-auth --peer-trusted-ca-file "$c/etcdCA.crt" --peer-cert-file "$c/etcd.crt" --peer-key-file "$c/etcd.key"
`.trim();

const APISERVER_SCRIPT = `
c=${CERT_DIR}
i=0
while :; do
  i=$((i+1))
  if etcdctl --endpoints="$ETCD_ENDPOINTS" --cacert="$c/etcdCA.crt" --cert="$c/etcd.crt" --key="$c/etcd.key" \\
      --dial-timeout=2s --command-timeout=3s put "/registry/sim-apiserver/$POD_NAME" "$i" >/dev/null; then
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

export async function createUserCluster(
  core: SimCore,
  options: { name: string; members: 1 | 3; startApiserver?: boolean },
): Promise<UserClusterInfo> {
  const { name, members } = options;
  const { prefix, suffix } = await allocatePortBlock([0, 1, 2]);
  const clientTemplate = `https://127.0.0.1:${prefix}{member}${suffix}`;
  const peerTemplate = `https://127.0.0.1:${prefix}{member}${suffix + 1}`;
  const clientUrl = (m: number) => clientTemplate.replace('{member}', String(m));
  const peerUrl = (m: number) => peerTemplate.replace('{member}', String(m));
  const profile = clusterProfileSchema.parse({
    etcdEndpoint: clientTemplate,
    peerUrlTemplate: peerTemplate,
  });

  const pkiDir = join(core.dir, 'pki', name);
  const ca = await createCa(pkiDir, 'etcdCA', `${name}-etcd-ca`);
  const leaf = await createLeaf(ca, pkiDir, 'etcd', {
    commonName: 'kube-etcd',
    san: ['IP:127.0.0.1', 'DNS:localhost', ...[0, 1, 2].map((i) => `DNS:kube-etcd-${i}.kube-etcd`)],
  });
  const tls: EtcdTls = { caFile: ca.certPath, certFile: leaf.certPath, keyFile: leaf.keyPath };

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
  const etcdTemplate: PodTemplate = {
    metadata: { labels: { component: 'kube-etcd', app: 'kube-etcd' } },
    spec: {
      containers: [
        {
          name: profile.etcdContainer,
          image: ETCD_IMAGE,
          command: ['/bin/sh', '-ec', ETCD_SCRIPT],
          env: [
            { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
            { name: 'ETCDCTL_API', value: '3' },
            { name: 'MEMBER_CLIENT_URL_TEMPLATE', value: clientTemplate },
            { name: 'MEMBER_PEER_URL_TEMPLATE', value: peerTemplate },
            { name: 'INITIAL_CLUSTER', value: initialCluster },
            { name: 'INITIAL_CLUSTER_TOKEN', value: profile.initialClusterToken },
          ],
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
      podManagementPolicy: 'Parallel',
      updateStrategy: { type: 'RollingUpdate' },
      template: etcdTemplate,
      volumeClaimTemplates: [
        {
          metadata: { name: 'data' },
          spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '5Gi' } } },
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
              image: MAINTENANCE_IMAGE,
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
  return { name, members, profile, clientUrl, peerUrl, secretName, tls, nodes };
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
export async function createAdminEtcd(core: SimCore): Promise<AdminEtcdInfo> {
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
          image: 'registry.k8s.io/etcd:3.5.15-0',
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
          env: [{ name: 'ETCDCTL_API', value: '3' }],
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
