/**
 * restoreUserCluster finishes correctly whatever interrupts it (issue 6). The worker runs
 * as separate OS processes (`node --import tsx worker/main.ts`, configured by its
 * environment) against a Temporal dev server with a persisted database and the simulated
 * admin cluster (real etcd, two of three members corrupt):
 *
 *   1. the worker is SIGKILLed at every step boundary (each time an activity completes,
 *      the process that completed it is killed and a new one started), and inside two
 *      activities: mid-copy of the snapshot into a utility pod, and mid restore of a
 *      member's snapshot into scratch space (the swap that follows is two renames; the
 *      unit tests of the member data scripts kill it at every line);
 *   2. the Temporal server is restarted (same database, same port) after the point of no
 *      return;
 *   3. the simulated API server answers 429/500/503 and cuts exec streams, spread over the
 *      run.
 *
 * The cluster runs with compaction on (kube-apiserver's compactor) and kube-etcd
 * OrderedReady, as real clusters do, on ETCD_LINE's etcd release (test/harness/tools.ts);
 * a leg of a newer line runs the first case only (the worker killed everywhere).
 *
 * Each time the restore must end verified, with the backup's data readable from every
 * member, a key written after the backup absent, replica counts and PDB as before, and
 * no protocol violation recorded by the simulator.
 *
 * How long a kill costs. A killed worker's attempts are only noticed by Temporal through
 * timeouts: 60 s of missing heartbeats (every activity heartbeats). Waiting for those at
 * every one of ~35 boundaries would take far too long, so after a boundary kill the test plays a fast failure detector: an attempt
 * still held by a process it killed is failed by activity id (as its timeout would have
 * done) and Temporal retries it on the new worker. The two kills inside activities are
 * left to Temporal's real heartbeat timeout, and the test checks that it fired.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync, statSync, watch } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  Client,
  Connection,
  type WorkflowExecutionDescription,
  type WorkflowHandle,
} from '@temporalio/client';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';
import { EtcdOpsClient } from '../../client/client.js';
import type { RestoreUserClusterResult } from '../../workflows/contract/index.js';
import { snapshotFileIn, stored } from '../harness/backups.js';
import { type ControlPlaneState, readControlPlane } from '../harness/control-plane.js';
import { freePort } from '../harness/ports.js';
import { type DevServer, simWorkerConfig, startDevServer } from '../harness/temporal.js';
import { defaultLineOnly, etcdLineUnderTest, readTools } from '../harness/tools.js';
import {
  startWorkerProcess,
  type WorkerProcess,
  type WorkerProcessOptions,
} from '../harness/worker-process.js';
import { type SimCluster, startSimCluster } from '../sim/index.js';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;
type PendingActivity = temporal.api.workflow.v1.IPendingActivityInfo;

/** temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED */
const ACTIVITY_STARTED = 2;
const MiB = 1024 * 1024;
/** temporal.api.enums.v1.TimeoutType.TIMEOUT_TYPE_HEARTBEAT */
const HEARTBEAT_TIMEOUT = 4;

const MINUTE = 60_000;
const CORRUPT = [0, 2];
const SMALL_KEYS = 20;

const scratch = mkdtempSync(join(tmpdir(), 'restore-crash-'));
const dbFile = join(scratch, 'temporal.sqlite');
let port = 0;
let server: DevServer | undefined;
let connection: Connection | undefined;
let client: Client;
const sims: SimCluster[] = [];
const fleets: WorkerFleet[] = [];

before(async () => {
  port = await freePort();
  server = await startDevServer({ dbFile, port });
  connection = await Connection.connect({ address: server.address });
  client = new Client({ connection, namespace: server.namespace });
});

after(async () => {
  for (const fleet of fleets) await fleet.stopAll();
  await connection?.close().catch(() => undefined);
  await server?.stop();
  for (const sim of sims) await sim.stop();
  rmSync(scratch, { recursive: true, force: true });
});

// ------------------------------------------------------------------ worker processes

/** The worker processes of one test: started, SIGKILLed, replaced. */
class WorkerFleet {
  readonly started: WorkerProcess[] = [];
  /** Identities of the workers this test killed on purpose (not in teardown). */
  readonly killed = new Set<string>();
  private stopping = false;

  constructor(private readonly options: WorkerProcessOptions) {
    fleets.push(this);
  }

  start(): WorkerProcess {
    const worker = startWorkerProcess(this.options);
    this.started.push(worker);
    return worker;
  }

  live(): WorkerProcess[] {
    return this.started.filter((w) => !w.exited());
  }

  /** Starts a worker unless one is alive (one may have died with the server). */
  ensureOne(): void {
    if (!this.stopping && this.live().length === 0) this.start();
  }

  /** SIGKILLs every live worker; returns their identities. */
  async killAll(): Promise<string[]> {
    const victims = this.live();
    for (const w of victims) this.killed.add(w.identity);
    await Promise.all(victims.map((w) => w.kill()));
    return victims.map((w) => w.identity);
  }

  /** Workers that exited without being killed by the test. */
  unexpectedExits(): WorkerProcess[] {
    return this.started.filter((w) => w.exited() && !this.killed.has(w.identity));
  }

  async stopAll(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.started.map((w) => w.kill()));
  }
}

// ------------------------------------------------------------------ the cluster

interface PreparedCluster {
  sim: SimCluster;
  ns: string;
  taskQueue: string;
  fleet: WorkerFleet;
  ops: EtcdOpsClient;
  backupId: string;
  /** The backup's snapshot file in the repository. */
  snapshotPath: string;
  big: Map<string, string>;
  replicasBefore: ControlPlaneState;
}

/** `etcdctl put KEY` with the value on stdin (values too big for argv). */
function putFromStdin(sim: SimCluster, key: string, value: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      readTools().etcdctl,
      [
        `--endpoints=${sim.etcdClientUrl(1)}`,
        `--cacert=${sim.etcdTls.caFile}`,
        `--cert=${sim.etcdTls.certFile}`,
        `--key=${sim.etcdTls.keyFile}`,
        '--command-timeout=30s',
        'put',
        key,
      ],
      { env: { ETCDCTL_API: '3', PATH: process.env.PATH ?? '/usr/bin:/bin' }, timeout: 60_000 },
      (error, _stdout, stderr) => {
        if (error) reject(new Error(`etcdctl put ${key}: ${stderr || error.message}`));
        else resolve();
      },
    );
    child.stdin?.end(value);
  });
}

/**
 * A 3-member user cluster with data, a verified backup of it, a key written after the
 * backup, and then members 0 and 2 corrupt and crash-looping (no quorum): SPEC H.
 */
async function prepareCluster(
  name: string,
  options: { bigValues?: number } = {},
): Promise<PreparedCluster> {
  const ns = `crash-${name}`;
  // The real world's defaults: kube-apiserver compacts etcd (every 2 s here, 5 min there),
  // and kube-etcd is OrderedReady (Kubernetes' default podManagementPolicy).
  const sim = await startSimCluster({
    members: 3,
    userClusterName: ns,
    adminEtcd: false,
    compactEveryMs: 2000,
    etcdPodManagementPolicy: 'OrderedReady',
    etcd: etcdLineUnderTest(),
  });
  sims.push(sim);
  const taskQueue = `restore-crash-${name}-${randomBytes(4).toString('hex')}`;
  const fleet = new WorkerFleet({
    address: server?.address ?? '',
    namespace: 'default',
    taskQueue,
    config: simWorkerConfig(sim, join(scratch, `backups-${name}`)),
    configFile: join(scratch, `worker-${name}.yaml`),
  });
  fleet.start();
  const ops = new EtcdOpsClient(client, taskQueue);

  for (let i = 0; i < SMALL_KEYS; i++) await sim.putKey(`/test/before/${i}`, `value-${i}`);
  // Big values make the snapshot big enough for a copy to be caught half-way.
  const big = new Map<string, string>();
  for (let i = 0; i < (options.bigValues ?? 0); i++) {
    const value = randomBytes(675_000).toString('base64'); // 900 000 characters
    await putFromStdin(sim, `/test/big/${i}`, value);
    big.set(`/test/big/${i}`, value);
  }
  const backup = stored(await (await ops.startBackup({ userClusterName: ns })).result());
  await sim.putKey('/test/after-backup', 'must not survive the restore');
  const replicasBefore = await readControlPlane(sim, ns);

  for (const n of CORRUPT) await sim.corruptMember(n);
  await sim.waitFor(
    'the corrupt members to crash-loop',
    () =>
      CORRUPT.every((n) =>
        sim
          .pod(ns, `kube-etcd-${n}`)
          ?.status?.containerStatuses?.some((c) => (c.restartCount ?? 0) > 0),
      ),
    2 * MINUTE,
  );
  assert.equal(await sim.hasQuorum(), false, 'with two members corrupt there is no quorum');
  return {
    sim,
    ns,
    taskQueue,
    fleet,
    ops,
    backupId: backup.id,
    snapshotPath: snapshotFileIn(join(scratch, `backups-${name}`), backup),
    big,
    replicasBefore,
  };
}

function startRestore(c: PreparedCluster): Promise<WorkflowHandle> {
  return c.ops.startRestore({
    userClusterName: c.ns,
    gkeOnPremVersion: '1.5.0-gke.0',
    backup: { backupId: c.backupId },
  });
}

/** What every test asserts once the restore has ended. */
async function assertRestored(c: PreparedCluster, result: RestoreUserClusterResult) {
  const { sim, ns } = c;
  assert.deepEqual(result.members, [0, 1, 2]);
  assert.equal(result.backupId, c.backupId);
  assert.ok(Array.isArray(result.verified) && result.verified.length > 0, 'verified is present');
  assert.equal(result.outcome, 'restored');
  for (const pattern of [
    /3\/3 members healthy/,
    /one cluster ID/,
    /3 distinct member IDs/,
    /every member has hashkv/,
  ]) {
    assert.ok(
      result.verified.some((line) => pattern.test(line)),
      `${pattern}: ${result.verified.join('\n')}`,
    );
  }

  assert.equal(await sim.hasQuorum(), true, 'the cluster has quorum again');
  for (let m = 0; m < 3; m++) {
    assert.equal(await sim.memberHealthy(m), true, `member ${m} healthy`);
    for (let i = 0; i < SMALL_KEYS; i++) {
      assert.equal(
        await sim.getKey(`/test/before/${i}`, { member: m }),
        `value-${i}`,
        `member ${m}: /test/before/${i}`,
      );
    }
    for (const [key, value] of c.big) {
      const got = await sim.getKey(key, { member: m });
      assert.ok(got === value, `member ${m}: ${key} holds the backup's value`);
    }
    assert.equal(
      await sim.getKey('/test/after-backup', { member: m }),
      undefined,
      `member ${m}: the key written after the backup is gone`,
    );
    // The replacement finished and cleaned up: its marker, no scratch, no old data left.
    const entries = readdirSync(sim.pvcHostDir(ns, `data-kube-etcd-${m}`) ?? '/nonexistent');
    assert.ok(
      entries.some((e) => e.startsWith('.restored-')),
      `member ${m}: ${entries.join(' ')}`,
    );
    assert.ok(
      !entries.some((e) => e.startsWith('.restore-') || e.startsWith('.old-')),
      `member ${m}: scratch or old data left: ${entries.join(' ')}`,
    );
  }
  sim.faults.clear();
  assert.deepEqual(await readControlPlane(sim, ns), c.replicasBefore, 'replicas and PDB as before');
  assert.deepEqual(sim.violations, [], 'no protocol violation');
  assert.deepEqual(sim.loopErrors, []);
}

// ------------------------------------------------------------------ watching the workflow

function decode(payloads: temporal.api.common.v1.IPayloads | null | undefined): unknown {
  const first = payloads?.payloads?.[0];
  return first ? defaultPayloadConverter.fromPayload(first as Payload) : undefined;
}

interface ActivityRun {
  activityId: string;
  type: string;
  input: unknown;
  result?: unknown;
  /** Worker identity that completed it. */
  completedBy?: string;
}

/** The activities of the workflow, in schedule order, from its history. */
function activitiesOf(events: HistoryEvent[]): ActivityRun[] {
  const byScheduledId = new Map<string, ActivityRun>();
  for (const e of events) {
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled) {
      byScheduledId.set(String(e.eventId), {
        activityId: scheduled.activityId ?? '',
        type: scheduled.activityType?.name ?? '',
        input: decode(scheduled.input),
      });
    }
    const completed = e.activityTaskCompletedEventAttributes;
    if (completed) {
      const run = byScheduledId.get(String(completed.scheduledEventId));
      if (run) {
        run.result = decode(completed.result);
        run.completedBy = completed.identity ?? '';
      }
    }
  }
  return [...byScheduledId.values()];
}

async function historyEvents(handle: WorkflowHandle): Promise<HistoryEvent[]> {
  return (await handle.fetchHistory()).events ?? [];
}

/** The pod an activity's input names (utility pod or etcd pod), if any. */
function podOf(input: unknown): string | undefined {
  if (typeof input !== 'object' || input === null) return undefined;
  const record = input as { pod?: unknown; destination?: { pod?: unknown } };
  const pod = record.pod ?? record.destination?.pod;
  return typeof pod === 'string' ? pod : undefined;
}

function isRunning(d: WorkflowExecutionDescription): boolean {
  return d.status.name === 'RUNNING';
}

/** Describes the workflow, or undefined while the server cannot answer. */
async function tryDescribe(handle: WorkflowHandle) {
  try {
    return await handle.describe();
  } catch {
    return undefined;
  }
}

/**
 * Fails, by activity id, every started attempt held by a worker the test killed (unless
 * `spare` keeps it for Temporal's own heartbeat timeout), as its timeout would have.
 */
async function failAttemptsOfDeadWorkers(
  handle: WorkflowHandle,
  d: WorkflowExecutionDescription,
  dead: Set<string>,
  spare: (p: PendingActivity) => boolean,
): Promise<number> {
  let failed = 0;
  for (const p of d.raw.pendingActivities ?? []) {
    if (p.state !== ACTIVITY_STARTED || !dead.has(p.lastWorkerIdentity ?? '') || spare(p)) continue;
    try {
      await client.activity.fail(
        { workflowId: handle.workflowId, runId: d.runId, activityId: p.activityId ?? '' },
        new Error(`attempt ${p.attempt} was held by worker ${p.lastWorkerIdentity}, SIGKILLed`),
      );
      failed += 1;
    } catch {
      // it timed out or completed meanwhile
    }
  }
  return failed;
}

/** Waits for the workflow to close (tolerating an unreachable server) and returns its result. */
async function resultOf(handle: WorkflowHandle, fleet: WorkerFleet): Promise<unknown> {
  for (;;) {
    fleet.ensureOne();
    const d = await tryDescribe(handle);
    if (d && !isRunning(d)) return handle.result();
    await sleep(500);
  }
}

function partSize(sim: SimCluster, ns: string, pod: string): number | undefined {
  const root = sim.podRootDir(ns, pod);
  if (!root) return undefined;
  try {
    return statSync(join(root, 'snapshot.db.part')).size;
  } catch {
    return undefined;
  }
}

/** Members whose restore into scratch space is under way (an attempt directory, nothing swapped). */
function membersMidReplacement(sim: SimCluster, ns: string): number[] {
  return [0, 1, 2].filter((m) => {
    const dir = sim.pvcHostDir(ns, `data-kube-etcd-${m}`);
    if (!dir) return false;
    let entries: string[] = [];
    try {
      entries = readdirSync(dir);
    } catch {
      return false;
    }
    return (
      entries.some((e) => e.startsWith('.restore-')) &&
      !entries.some((e) => e.startsWith('.restored-'))
    );
  });
}

// ------------------------------------------------------------------ the tests

describe('a restore interrupted anywhere finishes and verifies', { timeout: 25 * MINUTE }, () => {
  test('worker SIGKILLed at every step boundary, mid-copy and mid restore into scratch space', {
    timeout: 15 * MINUTE,
  }, async () => {
    const c = await prepareCluster('kill', { bigValues: 28 });
    const { sim, ns, fleet } = c;
    const backupSize = statSync(c.snapshotPath).size;

    let seenCompletions = 0;
    let boundaryKills = 0;
    let attemptsFailed = 0;
    const midActivity: string[] = [];
    /** Attempts left to Temporal's heartbeat timeout: activity id → attempt. */
    const spared = new Map<string, number>();
    let heartbeatTimeouts = 0;
    let midCopyPart: { pod: string; size: number; total: number } | undefined;
    let midReplaceMembers: number[] | undefined;

    const killAndReplace = async () => {
      const dead = await fleet.killAll();
      fleet.start();
      return dead;
    };
    /** Worker → the activity it was killed inside: those attempts are left to the heartbeat timeout. */
    const killedInside = new Map<string, string>();
    const killInside = (activityType: string) => {
      for (const w of fleet.live()) killedInside.set(w.identity, activityType);
      return killAndReplace();
    };
    const spare = (p: PendingActivity) =>
      spared.has(p.activityId ?? '') ||
      killedInside.get(p.lastWorkerIdentity ?? '') === p.activityType?.name;

    // Both kills inside an activity must land there on any machine: a fast one copies
    // 35 MiB and restores it between two polls. The link is paced so that a copy into a
    // pod lasts seconds, and a restore into scratch space is caught by inotify the moment
    // its attempt directory (`.restore-<token>.<nonce>`) appears.
    sim.faults.limitExecBandwidth(8 * MiB);
    const watchers = [0, 1, 2].map((m) =>
      watch(sim.pvcHostDir(ns, `data-kube-etcd-${m}`) ?? '', (_event, name) => {
        if (midReplaceMembers || !name || !/^\.restore-[^.]+\./.test(name)) return;
        midReplaceMembers = membersMidReplacement(sim, ns);
        midActivity.push(
          `restoreIntoScratch with members ${midReplaceMembers.join(',')} half-done`,
        );
        void killInside('restoreIntoScratch');
      }),
    );
    const t0 = Date.now();
    const handle = await startRestore(c);

    try {
      for (;;) {
        await sleep(150);
        fleet.ensureOne();
        const d = await tryDescribe(handle);
        if (!d) continue;
        const pending = d.raw.pendingActivities ?? [];

        // An attempt held by a worker killed inside it: noted with its attempt number.
        for (const p of pending)
          if (p.state === ACTIVITY_STARTED && spare(p) && !spared.has(p.activityId ?? ''))
            spared.set(p.activityId ?? '', p.attempt ?? 0);
        // Temporal's own heartbeat timeout of the attempts left to it.
        for (const [id, attempt] of spared) {
          const p = pending.find((x) => x.activityId === id);
          if (!p) spared.delete(id);
          else if ((p.attempt ?? 0) > attempt) {
            if (p.lastFailure?.timeoutFailureInfo?.timeoutType === HEARTBEAT_TIMEOUT)
              heartbeatTimeouts += 1;
            spared.delete(id);
          }
        }

        // Inside an activity: the snapshot half-copied into a utility pod.
        if (!midCopyPart && isRunning(d)) {
          for (const p of pending) {
            if (p.activityType?.name !== 'copySnapshotIntoPod' || p.state !== ACTIVITY_STARTED)
              continue;
            const pod = activitiesOf(await historyEvents(handle)).find(
              (a) => a.activityId === p.activityId,
            );
            const podName = podOf(pod?.input);
            const size = podName ? partSize(sim, ns, podName) : undefined;
            if (!podName || !size || size >= backupSize) continue;
            await killInside('copySnapshotIntoPod');
            midCopyPart = { pod: podName, size, total: backupSize };
            midActivity.push(`copySnapshotIntoPod ${podName} at ${size}/${backupSize} bytes`);
            break;
          }
        }

        // Step boundaries: an activity completed; kill the worker that completed it.
        const completions = (await historyEvents(handle)).filter(
          (e) => e.activityTaskCompletedEventAttributes,
        ).length;
        if (completions > seenCompletions) {
          seenCompletions = completions;
          boundaryKills += 1;
          await killAndReplace();
        }
        if (!isRunning(d)) break;

        attemptsFailed += await failAttemptsOfDeadWorkers(handle, d, fleet.killed, spare);
      }
    } finally {
      for (const w of watchers) w.close();
      sim.faults.clear();
    }

    const result = (await handle.result()) as RestoreUserClusterResult;
    const seconds = Math.round((Date.now() - t0) / 1000);
    const runs = activitiesOf(await historyEvents(handle));
    const completed = runs.filter((r) => r.completedBy !== undefined);
    console.log(
      `restore under kills: ${seconds} s; ${completed.length} activities completed; ` +
        `${boundaryKills} kills at step boundaries, ${midActivity.length} inside activities ` +
        `(${midActivity.join('; ')}); ${fleet.started.length} worker processes; ` +
        `${attemptsFailed} attempts of killed workers failed by id; ${heartbeatTimeouts} heartbeat timeouts` +
        `; snapshot ${backupSize} bytes`,
    );

    await assertRestored(c, result);
    // Every step boundary was crossed by a worker that was then SIGKILLed.
    for (const r of completed) {
      assert.ok(
        r.completedBy && fleet.killed.has(r.completedBy),
        `${r.type} (${r.activityId}) completed by ${r.completedBy}, a worker not killed after it`,
      );
    }
    assert.ok(completed.length >= 25, `${completed.length} activities completed`);
    assert.ok(midCopyPart, 'the worker was killed half-way through a copy into a pod');
    assert.ok(
      midReplaceMembers,
      'the worker was killed half-way through a restore into scratch space',
    );
    assert.ok(
      heartbeatTimeouts >= 2,
      `Temporal's heartbeat timeout retried the attempts killed mid-activity (${heartbeatTimeouts})`,
    );
    // The copy killed half-way resumed from the bytes already in the pod.
    const copy = completed.find(
      (r) => r.type === 'copySnapshotIntoPod' && podOf(r.input) === midCopyPart?.pod,
    );
    const resumed = (copy?.result as { resumedFromBytes?: number } | undefined)?.resumedFromBytes;
    assert.ok(
      resumed !== undefined && resumed > 0,
      `copy into ${midCopyPart?.pod} resumed from ${resumed}`,
    );
    assert.deepEqual(
      fleet.unexpectedExits().map((w) => w.output()),
      [],
      'no worker died by itself',
    );
  });

  test('Temporal server restarted after the point of no return', {
    timeout: 10 * MINUTE,
    ...defaultLineOnly(),
  }, async () => {
    const c = await prepareCluster('server');
    const { fleet } = c;
    const t0 = Date.now();
    const handle = await startRestore(c);

    // Wait for the point of no return: a swap of member data scheduled.
    let before: HistoryEvent[] = [];
    for (;;) {
      before = await historyEvents(handle);
      const ponr = activitiesOf(before).some((a) => a.type === 'swapMemberData');
      if (ponr) break;
      const d = await tryDescribe(handle);
      assert.ok(
        !d || isRunning(d),
        `the restore ended (${d?.status.name}) before the point of no return was seen`,
      );
      await sleep(200);
    }
    const workersBefore = fleet.live().map((w) => w.identity);

    assert.ok(server);
    await server.stop();
    server = undefined;
    await sleep(2_000);
    server = await startDevServer({ dbFile, port });
    const diedWithServer = fleet.started.filter((w) => w.exited()).length;

    const result = (await resultOf(handle, fleet)) as RestoreUserClusterResult;
    const seconds = Math.round((Date.now() - t0) / 1000);
    const afterEvents = await historyEvents(handle);
    console.log(
      `restore across a server restart: ${seconds} s; restarted at event ${before.length} of ` +
        `${afterEvents.length}; ${diedWithServer} of ${workersBefore.length} workers died with the server; ` +
        `${fleet.started.length} worker processes in all`,
    );
    assert.ok(afterEvents.length > before.length, 'the restore went on after the restart');
    assert.ok(
      afterEvents.some((e) => e.workflowExecutionCompletedEventAttributes),
      'the restore completed',
    );
    await assertRestored(c, result);
  });

  test(
    'API faults (429, 500, 503, exec streams cut) spread over the run',
    defaultLineOnly(),
    async () => {
      const c = await prepareCluster('faults');
      const { sim, ns, fleet } = c;
      const t0 = Date.now();
      let armed = 0;
      const failNext = (
        count: number,
        code: 429 | 500 | 503,
        match: Parameters<SimCluster['faults']['failNext']>[2],
      ) => {
        sim.faults.failNext(count, code, match);
        armed += count;
      };
      const drop = (afterBytes: number, pod: string, direction: 'in' | 'out' = 'out') => {
        sim.faults.dropExecAfterBytes(afterBytes, { namespace: ns, pod, direction });
        armed += 1;
      };

      // Before the point of no return: checks, H2, utility pods, copies.
      failNext(2, 429, { verb: 'get', resource: 'statefulsets', namespace: ns });
      failNext(1, 503, { verb: 'delete', resource: 'poddisruptionbudgets', namespace: ns });
      failNext(2, 500, { verb: 'create', resource: 'pods', namespace: ns });
      failNext(2, 500, { verb: 'exec', namespace: ns });
      // The upload into etcd-utility-0 (its only exec with stdin) is cut after 4 KiB.
      const copyDrop = 'etcd-utility-0';
      drop(4096, copyDrop, 'in');
      const handle = await startRestore(c);

      let replaceDrop: string | undefined;
      let afterPonr = false;
      for (;;) {
        await sleep(100);
        const d = await tryDescribe(handle);
        if (!d) continue;
        if (!isRunning(d)) break;
        const runs = activitiesOf(await historyEvents(handle));
        // A member whose snapshot is checked while others' are not: its next exec is the restore into scratch.
        if (!replaceDrop) {
          const checked = runs.filter(
            (r) => r.type === 'checkSnapshotInPod' && r.completedBy !== undefined,
          );
          const pod = podOf(checked[0]?.input);
          if (checked.length < 3 && pod) {
            drop(1, pod);
            replaceDrop = pod;
          }
        }
        // After the point of no return: scaling back, H9, etcd commands.
        if (!afterPonr && runs.some((r) => r.type === 'swapMemberData')) {
          afterPonr = true;
          failNext(2, 500, {
            verb: 'patch',
            resource: 'statefulsets',
            subresource: 'scale',
            namespace: ns,
          });
          failNext(1, 429, { verb: 'create', resource: 'poddisruptionbudgets', namespace: ns });
          failNext(2, 503, { verb: 'exec', namespace: ns });
        }
      }
      const result = (await handle.result()) as RestoreUserClusterResult;
      const seconds = Math.round((Date.now() - t0) / 1000);
      console.log(
        `restore under API faults: ${seconds} s; ${sim.faults.injected} faults injected of ${armed} armed ` +
          `(exec cut in ${copyDrop ?? 'no pod'} during its copy, in ${replaceDrop ?? 'no pod'} before its replacement)`,
      );
      assert.ok(sim.faults.injected > 0, 'faults were injected');
      assert.ok(afterPonr, 'faults were armed after the point of no return');
      // Every failure armed was answered, and the cut during the copy happened. (The cut armed
      // for a data replacement may come too late, if every member was prepared meanwhile.)
      assert.ok(
        sim.faults.injected >= armed - (replaceDrop ? 1 : 0) && sim.faults.injected <= armed,
        `${sim.faults.injected} of ${armed} armed faults hit`,
      );
      assert.equal(fleet.started.length, 1, 'one worker did it all');
      await assertRestored(c, result);
    },
  );
});
