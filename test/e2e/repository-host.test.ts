/**
 * One worker per repository host (issue 12): two worker processes poll the main task queue,
 * each on its own "host" (REPOSITORY_HOST_ID a or b) with its own repository directory,
 * both named `local` — as two machines with local disks. A backup asks the main queue once
 * which host keeps the repository, then runs every repository activity on that host's
 * queue. The worker of the chosen host is SIGKILLed right after it answered: the other
 * worker carries on with what is not host-bound, but never takes the copy, the commit or
 * the verification; once the host's worker is back the backup commits once, verified, in
 * that host's repository, and the other host's repository holds nothing.
 *
 * Without host queues the copy, the commit and the verification would go to the surviving
 * worker, and the backup would end up in the other host's repository (or split across both).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import type { temporal } from '@temporalio/proto';
import { localEtcdctl } from '../../activities/etcd/local-etcdctl.js';
import { REPOSITORY_ACTIVITIES } from '../../activities/index.js';
import { FileSystemBackupStore } from '../../activities/repository/fs-store.js';
import { verifyStoredBackup } from '../../activities/repository/verify.js';
import { EtcdOpsClient } from '../../client/client.js';
import { repositoryHostTaskQueue } from '../../workflows/contract/index.js';
import { stored } from '../harness/backups.js';
import { type DevServer, simWorkerConfig, startDevServer } from '../harness/temporal.js';
import { startWorkerProcess, type WorkerProcess } from '../harness/worker-process.js';
import { type SimCluster, startSimCluster } from '../sim/index.js';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;
/** temporal.api.enums.v1.PendingActivityState */
const SCHEDULED = 1;
const STARTED = 2;
const HOST_BOUND = new Set<string>(REPOSITORY_ACTIVITIES);

const cluster = 'host-queues';
const scratch = mkdtempSync(join(tmpdir(), 'repository-host-'));
const taskQueue = `repository-host-${randomBytes(4).toString('hex')}`;
let server: DevServer;
let connection: Connection;
let client: Client;
let sim: SimCluster;
const workers: WorkerProcess[] = [];

before(async () => {
  server = await startDevServer();
  connection = await Connection.connect({ address: server.address });
  client = new Client({ connection, namespace: server.namespace });
  sim = await startSimCluster({ members: 1, userClusterName: cluster, adminEtcd: false });
});

after(async () => {
  await Promise.all(workers.map((w) => w.kill()));
  await connection?.close().catch(() => undefined);
  await server?.stop();
  await sim?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

const backupDir = (host: string) => join(scratch, `host-${host}`, 'backups');

/** A worker process on host `host`: its own repository directory, named `local`. */
function startWorker(host: string): WorkerProcess {
  const worker = startWorkerProcess({
    address: server.address,
    namespace: server.namespace,
    taskQueue,
    config: simWorkerConfig(sim, backupDir(host)),
    configFile: join(scratch, `worker-${host}-${workers.length}.yaml`),
    env: { REPOSITORY_HOST_ID: host },
  });
  workers.push(worker);
  return worker;
}

interface ActivityRun {
  activityId: string;
  type: string;
  taskQueue: string;
  result?: unknown;
  completedBy?: string;
}

function decode(payloads: temporal.api.common.v1.IPayloads | null | undefined): unknown {
  const first = payloads?.payloads?.[0];
  return first ? defaultPayloadConverter.fromPayload(first as Payload) : undefined;
}

function activitiesOf(events: HistoryEvent[]): ActivityRun[] {
  const runs = new Map<string, ActivityRun>();
  for (const e of events) {
    const scheduled = e.activityTaskScheduledEventAttributes;
    if (scheduled) {
      runs.set(String(e.eventId), {
        activityId: scheduled.activityId ?? '',
        type: scheduled.activityType?.name ?? '',
        taskQueue: scheduled.taskQueue?.name ?? '',
      });
    }
    const completed = e.activityTaskCompletedEventAttributes;
    const run = completed && runs.get(String(completed.scheduledEventId));
    if (run) {
      run.result = decode(completed?.result);
      run.completedBy = completed?.identity ?? '';
    }
  }
  return [...runs.values()];
}

async function activities(handle: WorkflowHandle): Promise<ActivityRun[]> {
  return activitiesOf((await handle.fetchHistory()).events ?? []);
}

test('a backup stays on the host that answered, though the other worker polls the main queue', {
  timeout: 10 * 60_000,
}, async () => {
  const t0 = Date.now();
  for (let i = 0; i < 20; i++) await sim.putKey(`/test/${i}`, `value-${i}`);
  const byHost = new Map([
    ['a', startWorker('a')],
    ['b', startWorker('b')],
  ]);
  await Promise.all([...byHost.values()].map((w) => w.ready));

  const ops = new EtcdOpsClient(client, taskQueue);
  const handle = await ops.startBackup({ userClusterName: cluster });

  // The host question, answered by one of the two workers.
  let answer: { host: string; taskQueue: string } | undefined;
  while (!answer) {
    const asked = (await activities(handle)).find((a) => a.type === 'repositoryHostQueue');
    answer = asked?.result as typeof answer;
    if (!answer) await sleep(100);
  }
  const host = answer.host;
  const other = host === 'a' ? 'b' : 'a';
  assert.equal(answer.taskQueue, repositoryHostTaskQueue(taskQueue, host));
  const first = byHost.get(host) as WorkerProcess;
  const survivor = byHost.get(other) as WorkerProcess;

  // Mid-backup: the chosen host's worker dies. Its started attempts are failed by id, as
  // their heartbeat timeout would after 60 s, so that Temporal retries them at once.
  await first.kill();
  let waiting: string | undefined;
  while (!waiting) {
    const d = await handle.describe();
    for (const p of d.raw.pendingActivities ?? []) {
      const type = p.activityType?.name ?? '';
      if (p.state === STARTED && p.lastWorkerIdentity === first.identity) {
        await client.activity
          .fail(
            { workflowId: handle.workflowId, runId: d.runId, activityId: p.activityId ?? '' },
            new Error(`attempt held by worker ${first.identity}, SIGKILLed`),
          )
          .catch(() => undefined);
      } else if (HOST_BOUND.has(type) && p.state === STARTED) {
        assert.fail(`${type} was started by ${p.lastWorkerIdentity}, not on host ${host}`);
      } else if (HOST_BOUND.has(type) && p.state === SCHEDULED) {
        waiting = type;
      }
    }
    if (!waiting) await sleep(200);
  }
  assert.equal(survivor.exited(), false, `host ${other}'s worker polls the main queue`);

  // The host is back (same id, same disk): the backup finishes there.
  const second = startWorker(host);
  const backup = stored(await handle.result());

  const runs = await activities(handle);
  const hostIdentities = new Set([first.identity, second.identity]);
  for (const run of runs.filter((r) => HOST_BOUND.has(r.type))) {
    assert.equal(run.taskQueue, answer.taskQueue, `${run.type} scheduled on host ${host}'s queue`);
    if (run.completedBy !== undefined)
      assert.ok(hostIdentities.has(run.completedBy), `${run.type} completed by ${run.completedBy}`);
  }
  const commits = runs.filter((r) => r.type === 'commitBackup' && r.completedBy !== undefined);
  assert.equal(commits.length, 1, 'committed once');
  assert.ok(
    runs.some((r) => r.type === 'verifyBackup' && r.completedBy !== undefined),
    'verified by the workflow',
  );

  // On disk: the backup in the host's repository, verified again; nothing on the other host.
  const store = new FileSystemBackupStore(backupDir(host));
  assert.deepEqual(
    (await store.list(cluster)).map((b) => b.id),
    [backup.id],
  );
  const verified = await verifyStoredBackup(store, localEtcdctl(), {
    userClusterName: cluster,
    backupId: backup.id,
  });
  assert.equal(verified.record.sha256, backup.sha256);
  const otherDir = join(backupDir(other), cluster);
  const leftovers = existsSync(otherDir) ? readdirSync(otherDir, { recursive: true }) : [];
  assert.deepEqual(leftovers, [], `host ${other}'s repository holds nothing`);
  console.log(
    `repository host: backup on host ${host} while ${other} polled too; ${waiting} waited for the host; ${Math.round((Date.now() - t0) / 1000)} s`,
  );
});
