/**
 * (g) Compression on the wire: a real etcd snapshot of Kubernetes-like objects (bench/
 * etcd-fill.ts) copied out of and into a pod, plain and gzipped (`compression: 'gzip'`),
 * against `kubectl cp` and `kubectl exec -- cat`, on links the simulator paces (every exec
 * stream together, as one slow link) and on the unpaced loopback. Interleaved as in (a).
 */
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { connectKube } from '../activities/kube/client.js';
import { copyToPod, fileSource } from '../activities/kube/copy.js';
import { sha256OfFile } from '../activities/repository/fs-io.js';
import {
  addSample,
  type Contender,
  CURRENT_MODULE,
  copyRunners,
  type LocalFile,
  measureRound,
  POD,
  type Sample,
} from './copy.js';
import { fillEtcd, hostEtcdctl } from './etcd-fill.js';
import { fixed, median, type Section } from './report.js';
import { type SimClusterInfo, startSimProcess } from './sim.js';

const MiB = 1024 * 1024;

export interface CompressionBenchOptions {
  /** How much object data to write into etcd before the snapshot is taken. */
  fillMiB: number;
  /** Links to measure on, MiB/s; 0 is the unpaced loopback. */
  linksMiBps: number[];
  rounds: number;
  kubectl: string;
  scratch: string;
}

export async function benchCompression(options: CompressionBenchOptions): Promise<Section> {
  const sim = await startSimProcess({ clusters: [{ name: POD.namespace, members: 1 }] });
  try {
    const cluster = sim.clusters[0] as SimClusterInfo;
    console.log(`bench: filling etcd with ${options.fillMiB} MiB of objects for (g)`);
    await fillEtcd(cluster, options.fillMiB * MiB);
    const file = await snapshotOf(cluster, join(options.scratch, 'k8s.db'));
    const { config } = connectKube(sim.kubeconfigPath);
    await copyToPod(config, await fileSource(file.path, file.sha256), {
      ...POD,
      path: file.podPath,
    });
    const gzipped = Number(
      execFileSync('sh', ['-c', 'gzip -1c < "$1" | wc -c', 'sh', file.path]).toString().trim(),
    );

    const runners = copyRunners(sim.kubeconfigPath, options.kubectl, options.scratch);
    const contenders: Contender[] = [
      { name: 'this project', run: runners.ours(CURRENT_MODULE) },
      { name: 'this project, gzip', run: runners.ours(CURRENT_MODULE, {}, 'gzip') },
      { name: 'kubectl cp', run: runners.kubectlCp },
      { name: 'kubectl exec -- cat', run: runners.execCat },
    ];
    const samples = new Map<string, Sample[]>();
    for (const link of options.linksMiBps) {
      await sim.limitExecBandwidth(link > 0 ? link * MiB : undefined);
      for (let round = 0; round < options.rounds; round++) {
        for await (const { direction, contender, sample } of measureRound(
          contenders,
          round,
          file,
          options.scratch,
          runners.removeInPod,
        )) {
          addSample(samples, `${link}|${direction}|${contender.name}`, sample);
          console.log(
            `bench: (g) ${link > 0 ? `${link} MiB/s` : 'loopback'} ${direction}, ${contender.name}: ${fixed(sample.seconds)} s`,
          );
        }
      }
    }
    await sim.limitExecBandwidth(undefined);

    const rows: string[][] = [];
    const mib = file.sizeBytes / MiB;
    for (const link of options.linksMiBps) {
      for (const direction of ['out', 'in'] as const) {
        const base = `${link}|${direction}|`;
        const secondsOf = (name: string) =>
          median((samples.get(base + name) ?? []).map((s) => s.seconds));
        const cp = secondsOf('kubectl cp');
        for (const contender of contenders) {
          const seconds = secondsOf(contender.name);
          const wire = (samples.get(base + contender.name) ?? [])
            .map((s) => s.wireBytes)
            .filter((w) => w !== undefined);
          rows.push([
            link > 0 ? `${link} MiB/s` : 'loopback (unpaced)',
            direction === 'out' ? 'out of the pod' : 'into the pod',
            contender.name,
            fixed(seconds),
            fixed(mib / seconds, 0),
            wire.length > 0 ? fixed(median(wire) / MiB, 0) : '',
            fixed(seconds / cp),
          ]);
        }
      }
    }
    return {
      title: '(g) Compression on the wire: a snapshot of Kubernetes-like objects, paced links',
      header: [
        'link',
        'direction',
        'copy',
        'seconds (median)',
        'MiB/s of the file',
        'MiB on the wire',
        'time / kubectl cp',
      ],
      rows,
      notes: [
        `A real etcd snapshot of ${fixed(mib, 0)} MiB, taken after writing ${options.fillMiB} MiB of objects (bench/etcd-fill.ts: JSON, half of each object opaque random data); \`gzip -1\` makes it ${fixed(gzipped / MiB, 0)} MiB (${fixed(file.sizeBytes / gzipped)}x).`,
        `${options.rounds} round(s) per link, contenders interleaved, order rotated each round. A paced link carries every exec stream together at that rate (test/sim/faults.ts ExecLink), as a slow link to the API server would.`,
        "Gzip on the wire: out of the pod `nice -n 19 gzip -1` in it and zlib here; into the pod zlib level 1 here and `gzip -dc` in it. Both ends hold the file's own bytes, verified as in (a).",
      ],
    };
  } finally {
    await sim.stop();
  }
}

/** `etcdctl snapshot save` of the cluster's first member, on this host, as a bench file. */
async function snapshotOf(cluster: SimClusterInfo, path: string): Promise<LocalFile> {
  const { argv, env } = hostEtcdctl(cluster, 'snapshot', 'save', path);
  execFileSync('/usr/bin/etcdctl', argv, { env, stdio: 'ignore' });
  const sizeBytes = statSync(path).size;
  return {
    mib: Math.round(sizeBytes / MiB),
    path,
    podPath: '/bench-k8s.db',
    sizeBytes,
    sha256: await sha256OfFile(path),
  };
}
