/**
 * One copy with this project's copy code, in a process of its own (as a worker runs it),
 * so that its peak RSS and CPU time are the copy's alone. Started by bench/copy.ts:
 *
 *   tsx bench/copy-child.ts '<CopyJob as JSON>'
 *
 * Prints one JSON line (`CopyChildResult`). The time is taken around the copy only: a
 * worker has its modules loaded before an activity starts.
 */
import { pathToFileURL } from 'node:url';
import { connectKube } from '../activities/kube/client.js';
import type * as copyModule from '../activities/kube/copy.js';

export interface CopyJob {
  /** The copy module to load (this branch's, or a baseline's taken out of git). */
  module: string;
  kubeconfigPath: string;
  direction: 'out' | 'in';
  pod: { namespace: string; pod: string; container: string };
  podPath: string;
  localPath: string;
  /** For `in`: the local file's sha256, known as the repository knows it. */
  sha256?: string;
  compression?: 'gzip';
}

export interface CopyChildResult {
  seconds: number;
  /** User + system CPU time of the process during the copy. */
  cpuSeconds: number;
  /** RSS when the copy started, and the process's peak (MiB). */
  startRssMiB: number;
  peakRssMiB: number;
  /** Bytes that crossed the exec stream (absent from copy code that does not say). */
  wireBytes?: number;
}

const job = JSON.parse(process.argv[2] ?? '{}') as CopyJob;
const copy = (await import(pathToFileURL(job.module).href)) as typeof copyModule;
const { config } = connectKube(job.kubeconfigPath);
const file = { ...job.pod, path: job.podPath };

const startRssMiB = process.memoryUsage().rss / 1048576;
const cpuBefore = process.cpuUsage();
const started = process.hrtime.bigint();
const compression = job.compression ? { compression: job.compression } : {};
const copied =
  job.direction === 'out'
    ? await copy.copyFromPod(config, file, copy.fileDestination(job.localPath), {
        verify: 'snapshot-trailer',
        ...compression,
      })
    : await copy.copyToPod(
        config,
        await copy.fileSource(job.localPath, job.sha256),
        file,
        compression,
      );
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
const cpu = process.cpuUsage(cpuBefore);
const result: CopyChildResult = {
  seconds,
  cpuSeconds: (cpu.user + cpu.system) / 1e6,
  startRssMiB,
  peakRssMiB: process.resourceUsage().maxRSS / 1024,
  ...('wireBytes' in copied && typeof copied.wireBytes === 'number'
    ? { wireBytes: copied.wireBytes }
    : {}),
};
console.log(JSON.stringify(result));
