/**
 * (b)–(f): the workflows end to end on a real Temporal dev server, with the worker as a
 * process of its own (test/harness), against the simulator in a process of its own:
 * backup vs its floor, 3-member vs 1-member restore vs the floor, orchestration overhead,
 * resume after a SIGKILL of the worker mid-copy, and a fleet of concurrent backups.
 */
import { spawn } from 'node:child_process';
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { connectKube } from '../activities/kube/client.js';
import { execInPodChecked } from '../activities/kube/exec.js';
import { EtcdOpsClient } from '../client/client.js';
import { snapshotFileIn, stored } from '../test/harness/backups.js';
import { freePort } from '../test/harness/ports.js';
import { type DevServer, startDevServer } from '../test/harness/temporal.js';
import { startWorkerProcess, type WorkerProcess } from '../test/harness/worker-process.js';
import { findKubectl } from '../test/sim/kubectl.js';
import { fillEtcd } from './etcd-fill.js';
import { type Timings, timingsOf } from './history.js';
import { measureCommand } from './measure.js';
import { fixed, type Section } from './report.js';
import { type SimClusterInfo, type SimProcess, startSimProcess } from './sim.js';

export interface WorkflowBenchOptions {
  quick: boolean;
  scratch: string;
}

const GKE_VERSION = '1.5.0-gke.0';
const MiB = 1 << 20;

export async function benchWorkflows(options: WorkflowBenchOptions): Promise<Section[]> {
  const fleetSize = options.quick ? 10 : 30;
  const fillBytes = (options.quick ? 128 : 1024) * MiB;
  const server = await startDevServer();
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection, namespace: server.namespace });
  const ops = new EtcdOpsClient(client, 'bench');
  try {
    // The fleet's clusters (their etcd members, kube-apiserver write loops) load the two
    // cores: they get a simulator of their own, after the rest.
    const main = await phase(options, server, [
      { name: 'big', members: 1 },
      { name: 'ha', members: 3 },
    ]);
    let single: Awaited<ReturnType<typeof singleCluster>>;
    try {
      single = await singleCluster(options, ops, main, fillBytes);
    } finally {
      await main.stop();
    }
    const fleetNames = Array.from({ length: fleetSize }, (_, i) => `fleet-${i + 1}`);
    const fleetPhase = await phase(
      options,
      server,
      fleetNames.map((name) => ({ name, members: 1 as const })),
    );
    let fleet: Awaited<ReturnType<typeof fleetBackups>>;
    try {
      fleet = await fleetBackups(ops, fleetNames, fleetPhase.worker());
    } finally {
      await fleetPhase.stop();
    }
    return sections(single, fleet, fleetSize);
  } finally {
    await connection.close();
    await server.stop();
  }
}

interface Phase {
  sim: SimProcess;
  backupDir: string;
  inbox: string;
  worker(): WorkerProcess;
  /** SIGKILLs the worker and starts another (ready when this resolves). */
  restartWorker(): Promise<void>;
  stop(): Promise<void>;
}

/** A simulator with these clusters, and a worker process serving them. */
async function phase(
  options: WorkflowBenchOptions,
  server: DevServer,
  clusters: { name: string; members: 1 | 3 }[],
): Promise<Phase> {
  const started = Date.now();
  const sim = await startSimProcess({ clusters });
  console.log(
    `bench: simulator with ${clusters.length} user clusters ready in ${fixed((Date.now() - started) / 1000, 0)} s`,
  );
  const dir = mkdtempSync(join(options.scratch, 'phase-'));
  const backupDir = join(dir, 'backups');
  const inbox = join(dir, 'inbox');
  mkdirSync(inbox, { recursive: true });
  const [first, ...others] = sim.clusters as [SimClusterInfo, ...SimClusterInfo[]];
  const workerOptions = {
    address: server.address,
    namespace: server.namespace,
    taskQueue: 'bench',
    configFile: join(dir, 'worker.json'),
    config: {
      adminClusters: {
        sim: {
          kubeconfig: sim.kubeconfigPath,
          profile: first.profile,
          userClusterProfiles: Object.fromEntries(others.map((o) => [o.name, o.profile])),
        },
      },
      repositories: { local: { path: backupDir } },
      importInbox: inbox,
    },
  };
  let worker = startWorkerProcess(workerOptions);
  await worker.ready;
  return {
    sim,
    backupDir,
    inbox,
    worker: () => worker,
    async restartWorker() {
      await worker.kill();
      worker = startWorkerProcess(workerOptions);
      await worker.ready;
    },
    async stop() {
      await worker.kill();
      await sim.stop();
    },
  };
}

/** The pace of the simulator's exec link while (e) kills the worker mid-copy. */
const RESUME_LINK_MiBps = 32;

/** (b) to (e) on one simulator: backup, its floor, resume after SIGKILL, restores. */
async function singleCluster(
  options: WorkflowBenchOptions,
  ops: EtcdOpsClient,
  main: Phase,
  fillBytes: number,
) {
  const big = main.sim.clusters[0] as SimClusterInfo;
  const ha = main.sim.clusters[1] as SimClusterInfo;
  console.log(`bench: filling ${big.name}'s etcd with ${fillBytes / MiB} MiB of objects`);
  const keys = await fillEtcd(big, fillBytes);

  // (b, d) Backup end to end, its activities, and its floor.
  const backupHandle = await ops.startBackup({ userClusterName: big.name });
  const backup = stored(await backupHandle.result());
  const backupTimings = await timingsOf(backupHandle);
  const floor = await backupFloor(main.sim, big, options.scratch);
  const snapshotMiB = backup.sizeBytes / MiB;
  console.log(
    `bench: backup of ${fixed(snapshotMiB, 0)} MiB: ${fixed(backupTimings.wallSeconds)} s, floor ${fixed(floor.total)} s`,
  );

  // (e) Resume after SIGKILL mid-copy: a second backup, the worker killed while it copies.
  const resume = await resumeAfterKill(ops, big.name, main);

  // (c) The same snapshot restored into one member (big) and three (ha).
  const snapshot = snapshotFileIn(main.backupDir, backup);
  copyFileSync(snapshot, join(main.inbox, 'snapshot.db'));
  const restoreOne = await timedRestore(ops, big.name, { backupId: backup.id });
  const restoreThree = await timedRestore(ops, ha.name, { importFile: 'snapshot.db' });
  const restoreFloor = await restoreFloorOf(main.sim, big, snapshot, options.scratch);
  const restoreFloorThree = await restoreFloorOf(main.sim, ha, snapshot, options.scratch);
  return {
    keys,
    snapshotMiB,
    backupTimings,
    floor,
    resume,
    restoreOne,
    restoreThree,
    restoreFloor,
    restoreFloorThree,
  };
}

function sections(
  single: Awaited<ReturnType<typeof singleCluster>>,
  fleet: Awaited<ReturnType<typeof fleetBackups>>,
  fleetSize: number,
): Section[] {
  const {
    keys,
    snapshotMiB,
    backupTimings,
    floor,
    resume,
    restoreOne,
    restoreThree,
    restoreFloor,
    restoreFloorThree,
  } = single;
  return [
    {
      title: '(b) Backup end to end vs its floor',
      header: ['what', 'seconds'],
      rows: [
        [
          `backup workflow (${keys} keys, snapshot ${fixed(snapshotMiB, 0)} MiB)`,
          fixed(backupTimings.wallSeconds),
        ],
        ['floor: `etcdctl snapshot save` in the pod', fixed(floor.save)],
        ['floor: one raw copy out (`kubectl exec -- cat`)', fixed(floor.copy)],
        ['floor total', fixed(floor.total)],
        ['ratio backup / floor (target ≤ 1.3)', fixed(backupTimings.wallSeconds / floor.total)],
      ],
      targets: [
        {
          target: 'backup wall time at most 1.3x its floor',
          measured: `${fixed(backupTimings.wallSeconds / floor.total)}x`,
          met: backupTimings.wallSeconds <= 1.3 * floor.total,
        },
      ],
      notes: [
        'The backup also reads the keyspace at the snapshot revision, verifies the stored file (sha256, `snapshot status`) and takes and releases the cluster lock: work the floor does not do.',
      ],
    },
    {
      title: '(c) Restore: three members vs one, vs the floor',
      header: ['what', 'seconds'],
      rows: [
        ['restore, 1 member', fixed(restoreOne.wallSeconds)],
        ['restore, 3 members', fixed(restoreThree.wallSeconds)],
        ['ratio 3 / 1 (target ≤ 1.3)', fixed(restoreThree.wallSeconds / restoreOne.wallSeconds)],
        ['floor: one raw copy into a pod (`kubectl exec -i -- cat`)', fixed(restoreFloor.copy)],
        ['floor: one `etcdctl snapshot restore`', fixed(restoreFloor.restore)],
        ['floor: etcd start until healthy', fixed(restoreFloor.start)],
        ['floor total', fixed(restoreFloor.total)],
        ['ratio 1-member restore / floor', fixed(restoreOne.wallSeconds / restoreFloor.total)],
        ['floor, 3 members at once: raw copies into the three pods', fixed(restoreFloorThree.copy)],
        [
          'floor, 3 members at once: three `etcdctl snapshot restore`',
          fixed(restoreFloorThree.restore),
        ],
        [
          'floor, 3 members at once: the three started until healthy',
          fixed(restoreFloorThree.start),
        ],
        ['floor total, 3 members', fixed(restoreFloorThree.total)],
        [
          'ratio 3-member restore / its floor',
          fixed(restoreThree.wallSeconds / restoreFloorThree.total),
        ],
        ['ratio of the floors, 3 / 1', fixed(restoreFloorThree.total / restoreFloor.total)],
        ['activities, summed per type (1 member / 3 members; parallel ones overlap):', ''],
        ...activityRows(restoreOne, restoreThree),
      ],
      targets: [
        {
          target: 'three-member restore at most 1.3x a one-member restore',
          measured: `${fixed(restoreThree.wallSeconds / restoreOne.wallSeconds)}x`,
          met: restoreThree.wallSeconds <= 1.3 * restoreOne.wallSeconds,
        },
      ],
      notes: [
        `Snapshot of ${fixed(snapshotMiB, 0)} MiB. The restore also stops and restarts kube-apiserver and the maintenance Deployment, verifies the snapshot and the restored cluster (health, members, revision, keys) before kube-apiserver comes back.`,
        'The floor runs `snapshot restore` and etcd on this host (same disk and binaries as the pods). On this machine all three members share its two cores and one disk: the 3-member floor says how much of the 3 / 1 ratio is that, not the restore.',
      ],
    },
    {
      title: '(d) Orchestration overhead (backup of (b))',
      header: ['what', 'seconds'],
      rows: [
        ['workflow wall time', fixed(backupTimings.wallSeconds)],
        ['sum of its activities’ durations', fixed(backupTimings.activityTotalSeconds)],
        [
          'overhead (wall − activities)',
          fixed(backupTimings.wallSeconds - backupTimings.activityTotalSeconds),
        ],
        ...[...backupTimings.activitySeconds].map(([type, s]) => [`  ${type}`, fixed(s)]),
      ],
      notes: [
        'Durations from the workflow history (activity started → completed event times); the overhead includes the lock workflow’s signals and each task’s round trip through the dev server.',
      ],
    },
    {
      title: '(e) Resume after SIGKILL of the worker mid-copy',
      header: ['what', 'seconds'],
      rows: [
        ['worker killed at byte', String(resume.killedAtBytes)],
        ['kill → new worker makes progress in the copy', fixed(resume.secondsToProgress)],
        ['heartbeat timeout of the copy activity', '60'],
        ['the new attempt resumed from byte', String(resume.resumedFromBytes)],
        ['the backup then stored', resume.stored ? 'yes' : 'no'],
      ],
      notes: [
        'A new worker starts at once; Temporal hands the copy to it only when the dead worker’s heartbeat times out, then the retry resumes from the bytes already on disk.',
        `The exec link is paced to ${RESUME_LINK_MiBps} MiB/s during this backup, so that the kill lands mid-copy whatever the snapshot's size.`,
      ],
    },
    {
      title: `(f) Fleet: ${fleetSize} user clusters backed up concurrently by one worker`,
      header: ['what', 'value'],
      rows: [
        ['total time, s', fixed(fleet.totalSeconds)],
        ['slowest / median backup, s', `${fixed(fleet.slowest)} / ${fixed(fleet.median)}`],
        ['worker peak RSS, MiB', fixed(fleet.workerPeakRssMiB, 0)],
        ['failures', String(fleet.failures.length)],
        ...fleet.failures.slice(0, 3).map((f) => ['  failure', f]),
      ],
      notes: [
        'Each fleet cluster has one member and a small keyspace; the simulator’s own load (its etcd members and kube-apiserver write loops) runs on the same two cores.',
      ],
    },
  ];
}

/** The activity types that took longest, summed per type: one restore's beside the other's. */
function activityRows(one: Timings, three: Timings): string[][] {
  const types = [...new Set([...one.activitySeconds.keys(), ...three.activitySeconds.keys()])];
  const seconds = (t: Timings, type: string) => t.activitySeconds.get(type) ?? 0;
  return types
    .sort((a, b) => seconds(three, b) - seconds(three, a))
    .slice(0, 8)
    .map((type) => [`  ${type}`, `${fixed(seconds(one, type))} / ${fixed(seconds(three, type))}`]);
}

/** `etcdctl snapshot save` in the pod, then one raw `kubectl exec -- cat` out. */
async function backupFloor(sim: SimProcess, target: SimClusterInfo, scratch: string) {
  const { config } = connectKube(sim.kubeconfigPath);
  const p = target.profile;
  const pod = { namespace: target.name, pod: 'kube-etcd-0', container: p.etcdContainer };
  const dir = p.certificatesDir;
  const saveStarted = Date.now();
  await execInPodChecked(config, {
    ...pod,
    argv: [
      'env',
      'ETCDCTL_API=3',
      'etcdctl',
      `--endpoints=${p.etcdEndpoint.replace('{member}', '0')}`,
      `--cacert=${dir}/${p.caFile}`,
      `--cert=${dir}/${p.certFile}`,
      `--key=${dir}/${p.keyFile}`,
      'snapshot',
      'save',
      '/floor.db',
    ],
  });
  const save = (Date.now() - saveStarted) / 1000;
  const kubectl = await findKubectl();
  if (!('path' in kubectl)) throw new Error(kubectl.missing);
  const out = join(scratch, 'floor.db');
  const run = await measureCommand(
    [
      kubectl.path,
      `--kubeconfig=${sim.kubeconfigPath}`,
      'exec',
      '-n',
      pod.namespace,
      pod.pod,
      '-c',
      pod.container,
      '--',
      'cat',
      '/floor.db',
    ],
    { stdoutFile: out, env: { PATH: '/usr/bin:/bin', HOME: scratch } },
  );
  await execInPodChecked(config, { ...pod, argv: ['rm', '-f', '/floor.db'] });
  rmSync(out, { force: true });
  return { save, copy: run.wallSeconds, total: save + run.wallSeconds };
}

/**
 * The physical floor of a restore of `target`'s members: a raw copy into each member's pod,
 * a `snapshot restore` for each, and the members started until healthy — for several
 * members all at once, as the restore runs them, on this host's cores and disk.
 */
async function restoreFloorOf(
  sim: SimProcess,
  target: SimClusterInfo,
  snapshot: string,
  parent: string,
) {
  const kubectl = await findKubectl();
  if (!('path' in kubectl)) throw new Error(kubectl.missing);
  const scratch = mkdtempSync(join(parent, 'restore-floor-'));
  const members = Array.from({ length: target.members }, (_, i) => i);
  const { config } = connectKube(sim.kubeconfigPath);
  const pod = (i: number) => ({
    namespace: target.name,
    pod: `kube-etcd-${i}`,
    container: target.profile.etcdContainer,
  });
  const timed = async (run: () => Promise<unknown>) => {
    const began = Date.now();
    await run();
    return (Date.now() - began) / 1000;
  };
  const copy = await timed(() =>
    Promise.all(
      members.map((i) =>
        measureCommand(
          [
            kubectl.path,
            `--kubeconfig=${sim.kubeconfigPath}`,
            'exec',
            '-i',
            '-n',
            target.name,
            pod(i).pod,
            '-c',
            target.profile.etcdContainer,
            '--',
            'sh',
            '-c',
            'cat > /floor-in.db',
          ],
          { stdinFile: snapshot, env: { PATH: '/usr/bin:/bin', HOME: scratch } },
        ),
      ),
    ),
  );
  for (const i of members)
    await execInPodChecked(config, { ...pod(i), argv: ['rm', '-f', '/floor-in.db'] });
  // One after another: ports asked for at once could be handed out twice.
  const ports: { client: number; peer: number }[] = [];
  for (const _ of members) ports.push({ client: await freePort(), peer: await freePort() });
  const peerUrl = (i: number) => `http://127.0.0.1:${ports[i]?.peer}`;
  const initialCluster = members.map((i) => `floor${i}=${peerUrl(i)}`).join(',');
  const restore = await timed(() =>
    Promise.all(
      members.map((i) =>
        measureCommand(
          [
            '/usr/bin/etcdctl',
            'snapshot',
            'restore',
            snapshot,
            `--data-dir=${join(scratch, `data${i}`)}`,
            `--name=floor${i}`,
            `--initial-cluster=${initialCluster}`,
            `--initial-advertise-peer-urls=${peerUrl(i)}`,
          ],
          { env: { ETCDCTL_API: '3', PATH: '/usr/bin:/bin' } },
        ),
      ),
    ),
  );
  const startBegan = Date.now();
  const etcds = members.map((i) =>
    spawn(
      '/usr/bin/etcd',
      [
        `--name=floor${i}`,
        `--data-dir=${join(scratch, `data${i}`)}`,
        `--listen-client-urls=http://127.0.0.1:${ports[i]?.client}`,
        `--advertise-client-urls=http://127.0.0.1:${ports[i]?.client}`,
        `--listen-peer-urls=${peerUrl(i)}`,
        `--initial-advertise-peer-urls=${peerUrl(i)}`,
        `--initial-cluster=${initialCluster}`,
      ],
      { stdio: 'ignore' },
    ),
  );
  try {
    for (const i of members) {
      for (;;) {
        const healthy = await fetch(`http://127.0.0.1:${ports[i]?.client}/health`)
          .then(async (r) => ((await r.json()) as { health?: string }).health === 'true')
          .catch(() => false);
        if (healthy) break;
        if (Date.now() - startBegan > 120_000) throw new Error('the floor etcd did not start');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  } finally {
    for (const etcd of etcds) etcd.kill('SIGKILL');
  }
  const start = (Date.now() - startBegan) / 1000;
  rmSync(scratch, { recursive: true, force: true });
  return { copy, restore, start, total: copy + restore + start };
}

async function timedRestore(
  ops: EtcdOpsClient,
  userClusterName: string,
  backup: { backupId: string } | { importFile: string },
) {
  console.log(`bench: restoring ${userClusterName}`);
  const handle = await ops.startRestore({ userClusterName, gkeOnPremVersion: GKE_VERSION, backup });
  await handle.result();
  return timingsOf(handle);
}

/**
 * Starts a backup, SIGKILLs the worker a few seconds into the copy (bytes on disk), starts
 * another at once, and measures until the copy moves again on the new worker.
 */
async function resumeAfterKill(ops: EtcdOpsClient, userClusterName: string, main: Phase) {
  // Paced, so that the kill lands mid-copy whatever the snapshot's size (a quick run's is
  // copied in under a second); lifted once the new worker copies.
  await main.sim.limitExecBandwidth(RESUME_LINK_MiBps * MiB);
  const handle = await ops.startBackup({ userClusterName });
  const copying = await waitForCopy(handle, (a) => a.bytes > 0, 600_000);
  // Heartbeats after the first are throttled (one per 48 s): the disk says how far it got.
  await new Promise((resolve) => setTimeout(resolve, 500));
  const killedAt = Date.now();
  // Where the file-system repository stages a backup until it is committed.
  const onDisk = largestFileBytes(join(main.backupDir, userClusterName, '.staging'));
  await main.restartWorker();
  await waitForCopy(handle, (a) => a.attempt > copying.attempt && a.bytes > 0, 600_000, true);
  const secondsToProgress = (Date.now() - killedAt) / 1000;
  await main.sim.limitExecBandwidth(undefined);
  const result = await handle.result();
  const copyResult = (await timingsOf(handle)).results.get('copySnapshotToRepository') as
    | { resumedFromBytes?: number }
    | undefined;
  return {
    killedAtBytes: onDisk,
    secondsToProgress,
    resumedFromBytes: copyResult?.resumedFromBytes ?? 0,
    stored: result.outcome === 'stored',
  };
}

/** The size of the largest file under `dir` (the partial snapshot of a copy under way). */
function largestFileBytes(dir: string): number {
  let largest = 0;
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    largest = Math.max(largest, statSync(join(entry.parentPath, entry.name)).size);
  }
  return largest;
}

interface CopyState {
  attempt: number;
  bytes: number;
}

/** Polls the workflow's pending copy activity until `done` holds for its heartbeat details. */
async function waitForCopy(
  handle: WorkflowHandle,
  done: (state: CopyState) => boolean,
  timeoutMs: number,
  /** The copy is known to be under way already: its absence means it ended. */
  alreadySeen = false,
): Promise<CopyState> {
  const deadline = Date.now() + timeoutMs;
  let seen = alreadySeen;
  for (;;) {
    const { raw } = await handle.describe();
    const pending = raw.pendingActivities?.find(
      (a) => a.activityType?.name === 'copySnapshotToRepository',
    );
    if (pending) {
      const payload = pending.heartbeatDetails?.payloads?.[0]?.data;
      const details = payload
        ? (JSON.parse(Buffer.from(payload).toString()) as { bytesDone?: number })
        : {};
      const bytes = details.bytesDone ?? 0;
      const state: CopyState = {
        attempt: pending.attempt ?? 1,
        bytes,
      };
      if (done(state)) return state;
      seen = true;
    } else if (seen) {
      throw new Error('the copy ended before the expected state (too small a snapshot?)');
    }
    if (Date.now() > deadline) throw new Error('the copy did not reach the expected state');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function fleetBackups(ops: EtcdOpsClient, names: string[], worker: WorkerProcess) {
  const peak = { rssKiB: 0 };
  const sampler = setInterval(() => {
    const rss = vmHwmKiB(worker.pid);
    if (rss > peak.rssKiB) peak.rssKiB = rss;
  }, 200);
  const started = Date.now();
  const failures: string[] = [];
  const durations: number[] = [];
  await Promise.all(
    names.map(async (userClusterName) => {
      try {
        await (await ops.startBackup({ userClusterName })).result();
        durations.push((Date.now() - started) / 1000);
      } catch (error) {
        failures.push(`${userClusterName}: ${String(error).slice(0, 200)}`);
      }
    }),
  );
  clearInterval(sampler);
  const sorted = durations.sort((a, b) => a - b);
  return {
    totalSeconds: (Date.now() - started) / 1000,
    slowest: sorted.at(-1) ?? 0,
    median: sorted[Math.floor(sorted.length / 2)] ?? 0,
    workerPeakRssMiB: Math.max(peak.rssKiB, vmHwmKiB(worker.pid)) / 1024,
    failures,
  };
}

/** The process's peak RSS so far (VmHWM), 0 if it is gone. */
function vmHwmKiB(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  } catch {
    return 0;
  }
}
