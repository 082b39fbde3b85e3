/**
 * Operating the worker (issue 12), with worker processes as an operator runs them:
 *   - metrics: after a backup (and a failed backup and a failed restore), the worker's
 *     Prometheus endpoint has Temporal's figures and the project's: last successful backup
 *     time, size and duration of the cluster, backups by outcome, restore duration by outcome;
 *   - graceful shutdown: SIGTERM while an activity runs (its exec held up by the simulated
 *     API server) — with a grace time longer than the activity it completes on that worker,
 *     which then exits 0; with a shorter one it is cancelled when the grace time is over and
 *     its retry completes on the other worker; the worker exits 0 either way;
 *   - logs: every line a worker writes on stdout is a JSON object; activity lines carry the
 *     workflow's and the activity's ids, workflow lines the workflow's.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { EtcdOpsClient } from '../../client/client.js';
import { METRICS } from '../../workflows/contract/index.js';
import { stored } from '../harness/backups.js';
import { freePort } from '../harness/ports.js';
import { type DevServer, simWorkerConfig, startDevServer } from '../harness/temporal.js';
import { startWorkerProcess, type WorkerProcess } from '../harness/worker-process.js';
import { type SimCluster, startSimCluster } from '../sim/index.js';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;
/** temporal.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED */
const STARTED = 2;

const cluster = 'ops';
const scratch = mkdtempSync(join(tmpdir(), 'worker-operations-'));
const taskQueue = `worker-operations-${randomBytes(4).toString('hex')}`;
let server: DevServer;
let connection: Connection;
let ops: EtcdOpsClient;
let sim: SimCluster;
const workers: WorkerProcess[] = [];

before(async () => {
  server = await startDevServer();
  connection = await Connection.connect({ address: server.address });
  ops = new EtcdOpsClient(new Client({ connection, namespace: server.namespace }), taskQueue);
  sim = await startSimCluster({ members: 1, userClusterName: cluster, adminEtcd: false });
  for (let i = 0; i < 10; i++) await sim.putKey(`/test/${i}`, `value-${i}`);
});

after(async () => {
  await Promise.all(workers.map((w) => w.kill()));
  await connection?.close().catch(() => undefined);
  await server?.stop();
  await sim?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

/** A worker process; all of them share one repository host (one disk). */
function startWorker(env: Record<string, string> = {}): WorkerProcess {
  const worker = startWorkerProcess({
    address: server.address,
    namespace: server.namespace,
    taskQueue,
    config: simWorkerConfig(sim, join(scratch, 'backups')),
    configFile: join(scratch, `worker-${workers.length}.yaml`),
    env: { REPOSITORY_HOST_ID: 'ops-host', ...env },
  });
  workers.push(worker);
  return worker;
}

/** Every stdout line of a worker, parsed: each must be a JSON object. */
function logLines(worker: WorkerProcess): Array<Record<string, unknown>> {
  return worker
    .stdout()
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const parsed: unknown = JSON.parse(line);
      assert.ok(parsed !== null && typeof parsed === 'object', line);
      return parsed as Record<string, unknown>;
    });
}

/** The Prometheus text of `address`, as `name{labels} value` samples. */
async function scrape(
  address: string,
): Promise<Array<{ name: string; labels: string; value: number }>> {
  const response = await fetch(`http://${address}/metrics`);
  assert.equal(response.status, 200);
  const samples: Array<{ name: string; labels: string; value: number }> = [];
  for (const line of (await response.text()).split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)/.exec(line);
    if (m?.[1] && m[3]) samples.push({ name: m[1], labels: m[2] ?? '', value: Number(m[3]) });
  }
  return samples;
}

function sample(
  samples: Array<{ name: string; labels: string; value: number }>,
  name: string,
  ...labels: string[]
): number | undefined {
  return samples.find((s) => s.name === name && labels.every((l) => s.labels.includes(l)))?.value;
}

/** The activity ids, types and completing workers of a workflow's history. */
function completions(events: HistoryEvent[]) {
  const scheduled = new Map<string, { activityId: string; type: string }>();
  const done: Array<{ activityId: string; type: string; identity: string; attempt: number }> = [];
  const started = new Map<string, number>();
  for (const e of events) {
    const s = e.activityTaskScheduledEventAttributes;
    if (s)
      scheduled.set(String(e.eventId), {
        activityId: s.activityId ?? '',
        type: s.activityType?.name ?? '',
      });
    const st = e.activityTaskStartedEventAttributes;
    if (st) started.set(String(st.scheduledEventId), st.attempt ?? 0);
    const c = e.activityTaskCompletedEventAttributes;
    const run = c && scheduled.get(String(c.scheduledEventId));
    if (c && run)
      done.push({
        ...run,
        identity: c.identity ?? '',
        attempt: started.get(String(c.scheduledEventId)) ?? 0,
      });
  }
  return done;
}

/** Waits until `worker` runs an attempt of activity `type`; returns its activity id. */
async function runningOn(handle: WorkflowHandle, worker: WorkerProcess, type: string) {
  for (;;) {
    const d = await handle.describe();
    const p = (d.raw.pendingActivities ?? []).find(
      (a) =>
        a.state === STARTED &&
        a.lastWorkerIdentity === worker.identity &&
        a.activityType?.name === type,
    );
    if (p) return { activityId: p.activityId ?? '', type: p.activityType?.name ?? '' };
    if (d.status.name !== 'RUNNING') throw new Error(`the workflow ended: ${d.status.name}`);
    await sleep(100);
  }
}

describe('operating the worker', { timeout: 10 * 60_000 }, () => {
  test('metrics: Temporal figures and the project figures after backups and a restore', async () => {
    const t0 = Date.now();
    const address = `127.0.0.1:${await freePort()}`;
    const worker = startWorker({ WORKER_METRICS_ADDRESS: address });
    await worker.ready;

    const backup = stored(await (await ops.startBackup({ userClusterName: cluster })).result());
    await assert.rejects((await ops.startBackup({ userClusterName: 'no-such-cluster' })).result());
    const restore = await ops.startRestore({
      userClusterName: cluster,
      gkeOnPremVersion: '1.5.0-gke.0',
      backup: { backupId: 'no-such-backup' },
    });
    await assert.rejects(restore.result());

    // Workflow metrics go out with the workflow task's completion: poll until they show.
    let samples = await scrape(address);
    while (sample(samples, `${METRICS.restoreDuration}_count`) === undefined) {
      await sleep(200);
      samples = await scrape(address);
    }
    const c = `user_cluster="${cluster}"`;
    const at = sample(samples, METRICS.backupLastSuccess, c);
    assert.ok(
      at !== undefined && Math.abs(at - Date.parse(backup.createdAt) / 1000) < 600,
      `${at}`,
    );
    assert.equal(sample(samples, METRICS.backupLastSize, c), backup.sizeBytes);
    assert.ok((sample(samples, METRICS.backupLastDuration, c) ?? 0) > 0);
    assert.equal(sample(samples, `${METRICS.backups}_total`, c, 'outcome="succeeded"'), 1);
    assert.equal(
      sample(
        samples,
        `${METRICS.backups}_total`,
        'user_cluster="no-such-cluster"',
        'outcome="failed"',
      ),
      1,
    );
    assert.equal(sample(samples, `${METRICS.restoreDuration}_count`, c, 'outcome="failed"'), 1);
    assert.ok(
      samples.some((s) => s.name.startsWith('temporal_') && s.labels.includes(taskQueue)),
      'the SDK metrics of the task queue',
    );
    // No restore waits for an operator: the gauge is absent or 0, never above.
    assert.ok((sample(samples, METRICS.restoresWaiting) ?? 0) === 0);

    // A restarted worker reads the last backup back from its repository.
    await worker.terminate();
    const restarted = startWorker({ WORKER_METRICS_ADDRESS: address });
    await restarted.ready;
    const again = await scrape(address);
    assert.equal(sample(again, METRICS.backupLastSize, c), backup.sizeBytes);
    assert.equal(sample(again, METRICS.backupLastSuccess, c), Date.parse(backup.createdAt) / 1000);
    await restarted.terminate();
    console.log(`metrics: ${Math.round((Date.now() - t0) / 1000)} s`);
  });

  for (const { grace, latencyMs, finishesOn } of [
    { grace: '60s', latencyMs: 3_000, finishesOn: 'the same worker' },
    // 6 s: the exec notices its cancellation only once its WebSocket is open (after the
    // latency), and must stop before the worker gives up on it (grace + 10 s).
    { grace: '1s', latencyMs: 6_000, finishesOn: 'the other worker' },
  ] as const) {
    test(`SIGTERM with grace ${grace}: the running activity completes on ${finishesOn}; the worker exits 0; JSON logs`, async () => {
      const t0 = Date.now();
      const first = startWorker({ WORKER_SHUTDOWN_GRACE: grace });
      await first.ready;
      // Every exec into the etcd pod waits: the backup's activities run for a while.
      sim.faults.addLatency(latencyMs, { verb: 'exec', namespace: cluster });
      let exit: Awaited<ReturnType<WorkerProcess['terminate']>>;
      let handle: WorkflowHandle;
      let running: { activityId: string; type: string };
      let second: WorkerProcess;
      try {
        handle = await ops.startBackup({ userClusterName: cluster });
        // B2 runs on the first worker (one exec, held up): SIGTERM now.
        running = await runningOn(handle, first, 'saveSnapshotInPod');
        const exiting = first.terminate();
        second = startWorker();
        exit = await exiting;
      } finally {
        sim.faults.clear();
      }
      stored(await handle.result());
      assert.deepEqual(exit, { code: 0, signal: null }, first.output());

      const done = completions((await handle.fetchHistory()).events ?? []);
      const run = done.find((d) => d.activityId === running.activityId);
      assert.ok(run, `${running.type} completed`);
      if (grace === '60s') {
        assert.equal(run.identity, first.identity, `${run.type} completed where it ran`);
        assert.equal(run.attempt, 1);
      } else {
        assert.equal(run.identity, second.identity, `${run.type} retried on the other worker`);
        assert.ok(run.attempt > 1, `attempt ${run.attempt}`);
      }

      const lines = logLines(first);
      const ids = { workflowId: handle.workflowId, activityId: running.activityId };
      assert.ok(
        lines.some(
          (l) =>
            l.message === `${running.type} started` &&
            l.workflowId === ids.workflowId &&
            l.activityId === ids.activityId &&
            l.activityType === running.type,
        ),
        `an activity line with the ids ${JSON.stringify(ids)}`,
      );
      assert.ok(
        lines.some((l) => l.workflowId === handle.workflowId && l.sdkComponent === 'workflow'),
        'a workflow line with its id',
      );
      assert.ok(lines.every((l) => typeof l.time === 'string' && typeof l.level === 'string'));
      assert.ok(lines.some((l) => l.message === 'worker: stopped'));
      await second.terminate();
      console.log(`SIGTERM with grace ${grace}: ${Math.round((Date.now() - t0) / 1000)} s`);
    });
  }
});
