/**
 * `npm run bench`: throughput, memory and event-loop delay of the snapshot copies (SPEC B3,
 * R3/H5b) through the exec WebSocket of the simulated admin cluster. Prints figures;
 * asserts nothing (these machines are shared and noisy: compare runs, not thresholds).
 *
 *   npm run bench -- [--mib 64,512] [--rounds 3] [--baseline <git revision>]
 *
 * With `--baseline`, the copy and exec modules of that revision are taken out of git into
 * a scratch directory beside this file and measured in the same run, interleaved with the
 * current ones (same cluster, same files, alternating order), so noise hits both alike.
 * The file copied is etcd-snapshot-shaped (a random body, then its sha256), so the current
 * code can be measured both as the backup runs it (`verify: 'snapshot-trailer'`, no hashing
 * in the pod) and as a generic file (`sha256sum` in the pod).
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  createWriteStream,
  mkdirSync,
  mkdtempSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { KubeConfig } from '@kubernetes/client-node';
import { connectKube } from '../activities/kube/client.js';
import * as current from '../activities/kube/copy.js';
import { execInPodChecked } from '../activities/kube/exec.js';
import { startSimCluster } from '../test/sim/index.js';

const { values } = parseArgs({
  options: {
    mib: { type: 'string', default: '1024' },
    rounds: { type: 'string', default: '1' },
    baseline: { type: 'string' },
  },
});
const sizes = String(values.mib).split(',').map(Number);
if (!sizes.every((m) => Number.isInteger(m) && m >= 1))
  throw new Error('--mib must be positive integers, comma-separated');
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds must be a positive integer');

type CopyModule = Pick<typeof current, 'copyFromPod' | 'copyToPod' | 'fileDestination'>;
interface Variant {
  name: string;
  module: CopyModule;
  /** Options for the copy out of the pod. */
  outOptions: Parameters<typeof current.copyFromPod>[3];
}

const here = dirname(fileURLToPath(import.meta.url));
let baselineDir: string | undefined;
const variants: Variant[] = [];
if (values.baseline) {
  // The baseline's modules, beside this file so that their imports (ws) resolve.
  const revision = execFileSync('git', ['rev-parse', '--short', values.baseline], { cwd: here })
    .toString()
    .trim();
  baselineDir = join(here, `.baseline-${revision}`);
  mkdirSync(join(baselineDir, 'activities', 'kube'), { recursive: true });
  for (const file of ['copy.ts', 'exec.ts']) {
    const text = execFileSync('git', ['show', `${revision}:activities/kube/${file}`], {
      cwd: here,
    });
    writeFileSync(join(baselineDir, 'activities', 'kube', file), text);
  }
  const module = (await import(join(baselineDir, 'activities', 'kube', 'copy.ts'))) as CopyModule;
  variants.push({ name: `before (${revision})`, module, outOptions: {} });
}
variants.push({
  name: 'after, snapshot',
  module: current,
  outOptions: { verify: 'snapshot-trailer' },
});
variants.push({ name: 'after, generic', module: current, outOptions: { verify: 'sha256sum' } });

const scratch = mkdtempSync(join(tmpdir(), 'bench-copy-'));
const sim = await startSimCluster({ members: 1, userClusterName: 'bench', adminEtcd: false });

interface Figure {
  seconds: number;
  peakRssMiB: number;
  maxLoopDelayMs: number;
}
const figures = new Map<string, Figure[]>();

async function measure(key: string, run: () => Promise<unknown>): Promise<void> {
  let peakRss = process.memoryUsage().rss;
  const sampler = setInterval(() => {
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }, 20);
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  const started = process.hrtime.bigint();
  await run();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  loop.disable();
  clearInterval(sampler);
  const figure = {
    seconds,
    peakRssMiB: peakRss / 1024 / 1024,
    maxLoopDelayMs: loop.max / 1e6,
  };
  figures.set(key, [...(figures.get(key) ?? []), figure]);
  console.log(
    `bench: ${key}: ${seconds.toFixed(2)} s, peak RSS ${figure.peakRssMiB.toFixed(0)} MiB, ` +
      `max event-loop delay ${figure.maxLoopDelayMs.toFixed(0)} ms`,
  );
}

/** `mib` MiB of random bytes, then their sha256: the shape `etcdctl snapshot save` writes. */
async function makeSnapshotShaped(path: string, mib: number): Promise<void> {
  const out = createWriteStream(path);
  const hash = createHash('sha256');
  for (let i = 0; i < mib; i++) {
    const chunk = randomBytes(1024 * 1024);
    hash.update(chunk);
    if (!out.write(chunk)) await new Promise<void>((resolve) => out.once('drain', () => resolve()));
  }
  out.end(hash.digest());
  await new Promise<void>((resolve, reject) =>
    out.on('close', () => resolve()).on('error', reject),
  );
}

try {
  const kube = connectKube(sim.kubeconfigPath);
  const config: KubeConfig = kube.config;
  const pod = { namespace: 'bench', pod: 'kube-etcd-0', container: 'kube-etcd' };
  for (const mib of sizes) {
    const original = join(scratch, `original-${mib}.db`);
    await makeSnapshotShaped(original, mib);
    const source = await current.fileSource(original);
    await current.copyToPod(config, source, { ...pod, path: `/bench-${mib}.db` });
    console.log(`bench: ${mib} MiB snapshot-shaped file in ${pod.pod} (${source.sizeBytes} bytes)`);
  }
  for (let round = 1; round <= rounds; round++) {
    for (const mib of sizes) {
      const path = `/bench-${mib}.db`;
      const source = await current.fileSource(join(scratch, `original-${mib}.db`));
      // Alternate the order each round.
      const order = round % 2 === 1 ? variants : [...variants].reverse();
      for (const variant of order) {
        const local = join(scratch, 'out.db');
        rmSync(local, { force: true });
        await measure(`${mib} MiB out of the pod (B3), ${variant.name}`, () =>
          variant.module.copyFromPod(
            config,
            { ...pod, path },
            variant.module.fileDestination(local),
            variant.outOptions,
          ),
        );
        if (statSync(local).size !== source.sizeBytes) throw new Error('copy out: wrong size');
        rmSync(local, { force: true });
        if (variant.name === 'after, generic') continue; // copyToPod has one mode
        const into = `/bench-in-${mib}.db`;
        await measure(
          `${mib} MiB into the pod (R3/H5b), ${variant.name.replace(', snapshot', '')}`,
          () => variant.module.copyToPod(config, source, { ...pod, path: into }),
        );
        await execInPodChecked(config, { ...pod, argv: ['rm', '-f', into, `${into}.part`] });
      }
    }
  }

  console.log(
    `\nbench: ${rounds} round(s); seconds (MiB/s) as min / median / max; peak RSS and event-loop delay: max`,
  );
  for (const [key, list] of figures) {
    const mib = Number(key.split(' ')[0]);
    const seconds = list.map((f) => f.seconds).sort((a, b) => a - b);
    const median = seconds[Math.floor(seconds.length / 2)] as number;
    const show = (s: number) => `${s.toFixed(2)} (${(mib / s).toFixed(0)})`;
    console.log(
      `  ${key.padEnd(58)} ${show(seconds[0] as number)} / ${show(median)} / ${show(seconds.at(-1) as number)}` +
        `  RSS ${Math.max(...list.map((f) => f.peakRssMiB)).toFixed(0)} MiB` +
        `  loop ${Math.max(...list.map((f) => f.maxLoopDelayMs)).toFixed(0)} ms`,
    );
  }
} finally {
  await sim.stop();
  rmSync(scratch, { recursive: true, force: true });
  if (baselineDir) rmSync(baselineDir, { recursive: true, force: true });
}
