/**
 * (a) Copies out of and into a pod through the simulated API server's exec WebSocket:
 * this project's copy (verification included; a process of its own, bench/copy-child.ts)
 * against `kubectl cp` and `kubectl exec -- cat` (the stream's ceiling), interleaved in one
 * run (the order rotates each round), so that the machine's noise hits all alike. With a
 * baseline revision, that revision's copy code is measured in the same run too.
 *
 * The file is etcd-snapshot-shaped (random bytes, then their sha256): out of the pod it is
 * checked as the backup checks it (`verify: 'snapshot-trailer'`), into the pod as the
 * restore checks it (sha256 in the pod against the repository's).
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connectKube } from '../activities/kube/client.js';
import { copyToPod, fileSource } from '../activities/kube/copy.js';
import { execInPodChecked } from '../activities/kube/exec.js';
import type { CopyChildResult, CopyJob } from './copy-child.js';
import { measureCommand } from './measure.js';
import { fixed, median, type Section, type Target } from './report.js';
import { startSimProcess } from './sim.js';

const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));
export const CURRENT_MODULE = join(REPO_ROOT, 'activities', 'kube', 'copy.ts');

export interface CopyBenchOptions {
  sizesMiB: number[];
  rounds: number;
  kubectl: string;
  scratch: string;
  /** A git revision whose copy code is measured beside this tree's. */
  baseline?: string;
}

export type Direction = 'out' | 'in';
export interface Sample {
  seconds: number;
  peakRssMiB: number;
  cpuSeconds: number;
  /** Peak RSS minus RSS when the copy started (our copy only). */
  growthMiB?: number;
  /** Bytes that crossed the exec stream (our copy only). */
  wireBytes?: number;
}

export const POD = { namespace: 'bench', pod: 'kube-etcd-0', container: 'kube-etcd' };

/** Whether ws finds bufferutil (its native masking) from where it is installed. */
const nativeMasking = (() => {
  try {
    const require = createRequire(import.meta.url);
    createRequire(require.resolve('ws')).resolve('bufferutil');
    return !process.env.WS_NO_BUFFER_UTIL;
  } catch {
    return false;
  }
})();

export async function benchCopies(options: CopyBenchOptions): Promise<Section> {
  const sim = await startSimProcess({ clusters: [{ name: 'bench', members: 1 }] });
  const baselineDir = options.baseline ? takeBaseline(options.baseline) : undefined;
  try {
    const { config } = connectKube(sim.kubeconfigPath);
    const { ours, kubectlCp, execCat, removeInPod } = copyRunners(
      sim.kubeconfigPath,
      options.kubectl,
      options.scratch,
    );

    const contenders: Contender[] = [
      { name: `this project${nativeMasking ? ' (bufferutil)' : ''}`, run: ours(CURRENT_MODULE) },
      // ws masks what a client sends in pure JS unless bufferutil loads.
      ...(nativeMasking
        ? [
            {
              name: 'this project, JS masking',
              run: ours(CURRENT_MODULE, { WS_NO_BUFFER_UTIL: '1' }),
            },
          ]
        : []),
      ...(baselineDir
        ? [
            {
              // Beside "this project, JS masking": the same masking, so only the code differs.
              name: `before (${options.baseline}, JS masking)`,
              run: ours(join(baselineDir, 'copy.ts'), { WS_NO_BUFFER_UTIL: '1' }),
            },
          ]
        : []),
      { name: 'kubectl cp', run: kubectlCp },
      { name: 'kubectl exec -- cat', run: execCat },
    ];

    const files: LocalFile[] = [];
    for (const mib of options.sizesMiB) {
      const file = await makeSnapshotShaped(join(options.scratch, `snapshot-${mib}.db`), mib);
      await copyToPod(config, await fileSource(file.path, file.sha256), {
        ...POD,
        path: file.podPath,
      });
      files.push(file);
    }

    const samples = new Map<string, Sample[]>();
    for (let round = 0; round < options.rounds; round++) {
      for (const file of files) {
        for await (const { direction, contender, sample } of measureRound(
          contenders,
          round,
          file,
          options.scratch,
          removeInPod,
        )) {
          addSample(samples, `${file.mib}|${direction}|${contender.name}`, sample);
          console.log(
            `bench: ${file.mib} MiB ${direction}, ${contender.name}: ${fixed(sample.seconds)} s, ` +
              `peak RSS ${fixed(sample.peakRssMiB, 0)} MiB, CPU ${fixed(sample.cpuSeconds)} s`,
          );
        }
      }
    }
    return copySection(options, files, contenders, samples);
  } finally {
    await sim.stop();
    if (baselineDir) rmSync(baselineDir, { recursive: true, force: true });
  }
}

/**
 * How each contender copies `file` out of or into the bench pod: this project's copy (a
 * process of its own, bench/copy-child.ts), `kubectl cp` and `kubectl exec -- cat`.
 */
export function copyRunners(kubeconfigPath: string, kubectl: string, scratch: string) {
  const { config } = connectKube(kubeconfigPath);
  const kubectlHome = join(scratch, 'kubectl-home');
  mkdirSync(kubectlHome, { recursive: true });
  const kubectlEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: kubectlHome };
  const k = (...args: string[]) => [
    kubectl,
    `--kubeconfig=${kubeconfigPath}`,
    `--cache-dir=${join(kubectlHome, 'cache')}`,
    ...args,
  ];
  const removeInPod = (path: string) =>
    execInPodChecked(config, { ...POD, argv: ['rm', '-f', path, `${path}.part`] });

  const ours =
    (module: string, env?: NodeJS.ProcessEnv, compression?: 'gzip') =>
    async (direction: Direction, file: LocalFile) => {
      const job: CopyJob = {
        module,
        kubeconfigPath,
        direction,
        pod: POD,
        podPath: direction === 'out' ? file.podPath : '/bench-in.db',
        localPath: direction === 'out' ? join(scratch, 'out.db') : file.path,
        sha256: file.sha256,
        ...(compression ? { compression } : {}),
      };
      const run = await measureCommand(
        [process.execPath, '--import', 'tsx', 'bench/copy-child.ts', JSON.stringify(job)],
        { cwd: REPO_ROOT, env: { ...process.env, ...env } },
      );
      const child = JSON.parse(run.stdout.trim().split('\n').at(-1) ?? '{}') as CopyChildResult;
      return {
        seconds: child.seconds,
        peakRssMiB: run.peakRssMiB,
        cpuSeconds: child.cpuSeconds,
        growthMiB: child.peakRssMiB - child.startRssMiB,
        ...(child.wireBytes !== undefined ? { wireBytes: child.wireBytes } : {}),
      };
    };
  const kubectlCp = async (direction: Direction, file: LocalFile) => {
    const remote = `${POD.namespace}/${POD.pod}:${direction === 'out' ? file.podPath : '/bench-in.db'}`;
    const local = direction === 'out' ? join(scratch, 'out.db') : file.path;
    const args = direction === 'out' ? [remote, local] : [local, remote];
    return sampleOf(
      await measureCommand(k('cp', '-c', POD.container, ...args), { env: kubectlEnv }),
    );
  };
  const execCat = async (direction: Direction, file: LocalFile) => {
    const exec = ['exec', '-n', POD.namespace, POD.pod, '-c', POD.container];
    const run =
      direction === 'out'
        ? await measureCommand(k(...exec, '--', 'cat', file.podPath), {
            env: kubectlEnv,
            stdoutFile: join(scratch, 'out.db'),
          })
        : await measureCommand(
            k(...exec, '-i', '--', 'sh', '-c', 'cat > "$1"', 'sh', '/bench-in.db'),
            { env: kubectlEnv, stdinFile: file.path },
          );
    return sampleOf(run);
  };

  return { ours, kubectlCp, execCat, removeInPod };
}

export interface Contender {
  name: string;
  run: (direction: Direction, file: LocalFile) => Promise<Sample>;
}

/**
 * One round over `file`: every contender copies it out of the pod, then every one into it,
 * in the order of `round` (no contender always runs first, or last). After each measured
 * copy, what it copied is checked (out: the size) and removed, so the next one starts from
 * the same state.
 */
export async function* measureRound(
  contenders: readonly Contender[],
  round: number,
  file: LocalFile,
  scratch: string,
  removeInPod: (path: string) => Promise<unknown>,
): AsyncGenerator<{ direction: Direction; contender: Contender; sample: Sample }> {
  const order = contenders.map((_, i) => contenders[(i + round) % contenders.length] as Contender);
  for (const direction of ['out', 'in'] as const) {
    for (const contender of order) {
      const sample = await contender.run(direction, file);
      if (direction === 'out') {
        const size = statSync(join(scratch, 'out.db')).size;
        if (size !== file.sizeBytes)
          throw new Error(`${contender.name}: copied ${size} bytes, not ${file.sizeBytes}`);
        rmSync(join(scratch, 'out.db'), { force: true });
      } else {
        await removeInPod('/bench-in.db');
      }
      yield { direction, contender, sample };
    }
  }
}

/** Adds a sample to the ones kept under `key`. */
export function addSample(samples: Map<string, Sample[]>, key: string, sample: Sample): void {
  samples.set(key, [...(samples.get(key) ?? []), sample]);
}

export interface LocalFile {
  mib: number;
  path: string;
  podPath: string;
  sizeBytes: number;
  sha256: string;
}

function sampleOf(run: { wallSeconds: number; peakRssMiB: number; cpuSeconds: number }): Sample {
  return { seconds: run.wallSeconds, peakRssMiB: run.peakRssMiB, cpuSeconds: run.cpuSeconds };
}

function copySection(
  options: CopyBenchOptions,
  files: LocalFile[],
  contenders: { name: string }[],
  samples: Map<string, Sample[]>,
): Section {
  const rows: string[][] = [];
  const targets: Target[] = [];
  const ourName = contenders[0]?.name ?? '';
  const medianOf = (key: string, pick: (s: Sample) => number) =>
    median((samples.get(key) ?? []).map(pick));
  for (const file of files) {
    for (const direction of ['out', 'in'] as const) {
      const base = `${file.mib}|${direction}|`;
      const cp = medianOf(`${base}kubectl cp`, (s) => s.seconds);
      const cat = medianOf(`${base}kubectl exec -- cat`, (s) => s.seconds);
      for (const contender of contenders) {
        const key = base + contender.name;
        const seconds = medianOf(key, (s) => s.seconds);
        const list = samples.get(key) ?? [];
        const growth = list.map((s) => s.growthMiB).filter((g) => g !== undefined);
        rows.push([
          `${file.mib} MiB`,
          direction === 'out' ? 'out of the pod' : 'into the pod',
          contender.name,
          fixed(seconds),
          fixed(file.mib / seconds, 0),
          fixed(Math.max(...list.map((s) => s.peakRssMiB)), 0),
          growth.length > 0 ? fixed(Math.max(...growth), 0) : '',
          fixed(medianOf(key, (s) => s.cpuSeconds)),
          fixed(seconds / cp),
          fixed(seconds / cat),
        ]);
        if (contender.name !== ourName) continue;
        if (file.mib >= 512) {
          targets.push({
            target: `${file.mib} MiB ${direction === 'out' ? 'out of' : 'into'} a pod, verified, at least as fast as kubectl cp`,
            measured: `${fixed(seconds / cp)}x kubectl cp's time`,
            met: seconds <= cp,
          });
        }
        targets.push({
          target: `${file.mib} MiB ${direction}: the copying process's memory growth under 64 MiB`,
          measured: `${fixed(Math.max(...growth), 0)} MiB`,
          met: Math.max(...growth) < 64,
        });
      }
    }
  }
  return {
    title: '(a) Copies out of and into a pod',
    header: [
      'size',
      'direction',
      'copy',
      'seconds (median)',
      'MiB/s',
      'peak RSS MiB',
      'RSS growth MiB',
      'CPU s',
      'time / kubectl cp',
      'time / exec cat',
    ],
    rows,
    notes: [
      `${options.rounds} round(s), contenders interleaved, order rotated each round; the simulator runs in a process of its own.`,
      "This project's copy includes its verification: out of the pod the whole file is hashed on the way and its etcd sha256 trailer checked (as the backup does); into the pod the pod's sha256 of what arrived is compared with the repository's before the rename (as the restore does). `kubectl cp` and `kubectl exec -- cat` verify nothing.",
      "This project's time and CPU are taken around the copy in a process whose modules are loaded (as in a worker); kubectl's are its whole process's (its start-up is a few tens of ms). Peak RSS is the whole process's (GNU time; ours includes Node and tsx, about 240 MiB before the copy starts); RSS growth is peak RSS minus RSS when the copy started.",
      'time / kubectl cp ≤ 1.00 means at least as fast as kubectl cp.',
    ],
    targets,
  };
}

/** `mib` MiB of random bytes, then their sha256: the shape `etcdctl snapshot save` writes. */
async function makeSnapshotShaped(path: string, mib: number): Promise<LocalFile> {
  const out = createWriteStream(path);
  const body = createHash('sha256');
  const whole = createHash('sha256');
  for (let i = 0; i < mib; i++) {
    const chunk = randomBytes(1 << 20);
    body.update(chunk);
    whole.update(chunk);
    if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', resolve));
  }
  const trailer = body.digest();
  whole.update(trailer);
  out.end(trailer);
  await new Promise<void>((resolve, reject) => out.on('close', resolve).on('error', reject));
  return {
    mib,
    path,
    podPath: `/bench-${mib}.db`,
    sizeBytes: mib * 1048576 + trailer.length,
    sha256: whole.digest('hex'),
  };
}

/** The copy and exec modules of `revision`, taken out of git beside this file (so `ws` resolves). */
function takeBaseline(revision: string): string {
  const short = execFileSync('git', ['rev-parse', '--short', revision], { cwd: REPO_ROOT })
    .toString()
    .trim();
  const dir = join(REPO_ROOT, 'bench', `.baseline-${short}`);
  mkdirSync(dir, { recursive: true });
  for (const file of ['copy.ts', 'exec.ts']) {
    writeFileSync(
      join(dir, file),
      execFileSync('git', ['show', `${short}:activities/kube/${file}`], { cwd: REPO_ROOT }),
    );
  }
  return dir;
}
