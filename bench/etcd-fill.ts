/**
 * Fills a user cluster's etcd with Kubernetes-like objects: keys under
 * /registry/<resource>/<namespace>/<name>, values of varied size (most a few KiB, some tens
 * of KiB, as ConfigMaps and Secrets can be), written in transactions of many puts (one
 * etcdctl process per put would take hours for a GiB). A value is an object's JSON —
 * metadata with its own uid and timestamps, labels, managedFields, a spec of repeated
 * fields — and, for half of its size, opaque data (random base64, as Secrets hold): so it
 * compresses about as a cluster's objects do, neither as text nor as noise.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { SimClusterInfo } from './sim.js';

const RESOURCES = ['pods', 'configmaps', 'secrets', 'services', 'events', 'replicasets'];
/** etcd refuses requests over 1.5 MiB and transactions of more than 128 operations. */
const TXN_BYTES = 1_000_000;
const TXN_OPS = 128;

/** Value sizes: 80 % 1–4 KiB, 15 % 4–32 KiB, 5 % 32–128 KiB. */
function valueSize(): number {
  const r = Math.random();
  const between = (a: number, b: number) => a + Math.floor(Math.random() * (b - a));
  return r < 0.8 ? between(1024, 4096) : r < 0.95 ? between(4096, 32768) : between(32768, 131072);
}

/** One object's JSON of about `size` bytes, on one line (etcdctl txn reads a value per line). */
function objectJson(resource: string, n: number, size: number): string {
  const opaque = randomBytes(Math.ceil((size * 3) / 8)).toString('base64');
  const time = new Date(Date.UTC(2026, 10, 1) + n * 1000).toISOString();
  const field = (i: number) =>
    `{"name":"container-${i}","image":"gcr.io/gke-on-prem-release/app:1.${i % 7}.0","ports":[{"containerPort":${8000 + i},"protocol":"TCP"}],"resources":{"requests":{"cpu":"100m","memory":"128Mi"}},"imagePullPolicy":"IfNotPresent"}`;
  const head = `{"apiVersion":"v1","kind":"${resource}","metadata":{"name":"object-${n}","namespace":"ns-${n % 50}","uid":"${randomBytes(16).toString('hex')}","resourceVersion":"${n}","creationTimestamp":"${time}","labels":{"app":"app-${n % 97}","tier":"backend"},"managedFields":[{"manager":"kube-controller-manager","operation":"Update","apiVersion":"v1","time":"${time}","fieldsType":"FieldsV1"}]},"spec":{"containers":[`;
  const parts: string[] = [];
  let length = head.length + opaque.length + 40;
  for (let i = 0; length < size; i++) {
    const f = field(i);
    parts.push(f);
    length += f.length + 1;
  }
  return `${head}${parts.join(',')}]},"data":{"opaque":"${opaque}"}}`;
}

export async function fillEtcd(cluster: SimClusterInfo, bytes: number): Promise<number> {
  let written = 0;
  let keys = 0;
  const batches: string[] = [];
  while (written < bytes) {
    const lines: string[] = [];
    let size = 0;
    while (lines.length < TXN_OPS && size < TXN_BYTES && written < bytes) {
      const resource = RESOURCES[keys % RESOURCES.length] ?? 'pods';
      const value = objectJson(resource, keys, valueSize());
      lines.push(`put /registry/${resource}/ns-${keys % 50}/object-${keys} ${value}`);
      size += value.length;
      written += value.length;
      keys++;
    }
    // Compares, success operations, failure operations: each section ends with an empty line.
    batches.push(`\n${lines.join('\n')}\n\n\n`);
  }
  // Two writers at a time: the machine has two cores.
  const queue = [...batches];
  await Promise.all(
    [0, 1].map(async () => {
      for (let batch = queue.shift(); batch !== undefined; batch = queue.shift())
        await txn(cluster, batch);
    }),
  );
  return keys;
}

/** This host's etcdctl against the cluster's first member over its TLS: argv and env. */
export function hostEtcdctl(cluster: SimClusterInfo, ...args: string[]) {
  return {
    argv: [
      `--endpoints=${cluster.etcdClientUrls[0]}`,
      `--cacert=${cluster.etcdTls.caFile}`,
      `--cert=${cluster.etcdTls.certFile}`,
      `--key=${cluster.etcdTls.keyFile}`,
      ...args,
    ],
    env: { ETCDCTL_API: '3', PATH: '/usr/bin:/bin' },
  };
}

function txn(cluster: SimClusterInfo, input: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const { argv, env } = hostEtcdctl(cluster, 'txn');
    const child = spawn('/usr/bin/etcdctl', argv, { env, stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`etcdctl txn exited ${code}: ${stderr}`)),
    );
    child.stdin.end(input);
  });
}
