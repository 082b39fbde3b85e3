/**
 * Backup and restore under the hazards of real clusters (issue 10), each a switch of the
 * simulated admin cluster (test/sim/README.md, Hazards), each against real etcd:
 *
 *   compaction while backing up · OrderedReady with and without readiness probes ·
 *   a reconciling controller · a full member volume · a full repository disk on the
 *   worker · a utility pod evicted after the point of no return, its scratch data lost ·
 *   BusyBox utility image · distroless etcd image · a restore abandoned halfway ·
 *   401/403 after the point of no return · a conflicting PDB (operator retries) · a
 *   verification that fails (kube-apiserver stays at 0; operator hands over).
 *
 * Each scenario starts its own simulated cluster and a worker on its own task queue, on one
 * shared Temporal dev server. What is asserted is read back: data in etcd, replica counts
 * and the PDB from the API, files on the member volumes, the simulator's violation record.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import {
  parseWorkerConfig,
  type WorkerConfigInput,
} from '../../activities/config/worker-config.js';
import { createActivities } from '../../activities/index.js';
import { connectKube, mergePatch } from '../../activities/kube/client.js';
import { EtcdOpsClient } from '../../client/client.js';
import { activityDeps, createWorkers, repositoryHostOf } from '../../worker/create-worker.js';
import {
  type BackupRecord,
  FailureType,
  type RestoreUserClusterInput,
  type RestoreUserClusterResult,
} from '../../workflows/contract/index.js';
import { type ProgressView, progressQuery } from '../../workflows/progress.js';
import { problemQuery } from '../../workflows/restore/operator.js';
import { stored } from '../harness/backups.js';
import { type ControlPlaneState, readControlPlane } from '../harness/control-plane.js';
import {
  type DevServer,
  simWorkerConfig,
  startDevServer,
  workflowBundle,
} from '../harness/temporal.js';
import {
  type SimCluster,
  type SimClusterOptions,
  sizeLimitedDir,
  startSimCluster,
} from '../sim/index.js';

const MiB = 1024 * 1024;
const scratch = mkdtempSync(join(tmpdir(), 'restore-hazards-'));
let server: DevServer;
let env: TestWorkflowEnvironment;
const uncaught: unknown[] = [];
const onUncaught = (error: unknown) => uncaught.push(error);

before(async () => {
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUncaught);
  server = await startDevServer();
  env = await TestWorkflowEnvironment.createFromExistingServer({
    address: server.address,
    namespace: server.namespace,
  });
});
after(async () => {
  await env?.teardown();
  await server?.stop();
  rmSync(scratch, { recursive: true, force: true });
  process.off('uncaughtException', onUncaught);
  process.off('unhandledRejection', onUncaught);
});

/** One simulated cluster with its hazards, and a worker serving it on a task queue of its own. */
interface Scenario {
  sim: SimCluster;
  ns: string;
  client: EtcdOpsClient;
  backupDir: string;
  inbox: string;
  stop(): Promise<void>;
}

async function scenario(
  name: string,
  hazards: Partial<SimClusterOptions>,
  config: (dirs: { backupDir: string; inbox: string }) => Partial<WorkerConfigInput> = () => ({}),
): Promise<Scenario> {
  const ns = name;
  const sim = await startSimCluster({
    members: 3,
    userClusterName: ns,
    adminEtcd: false,
    ...hazards,
  });
  const backupDir = join(scratch, name, 'backups');
  const inbox = join(scratch, name, 'inbox');
  mkdirSync(inbox, { recursive: true });
  const taskQueue = `${name}-${randomUUID().slice(0, 8)}`;
  const repositoryHost = repositoryHostOf(taskQueue, 'test-host');
  const workers = await createWorkers({
    connection: env.nativeConnection,
    namespace: server.namespace,
    taskQueue,
    repositoryHost,
    workflowBundle: await workflowBundle(),
    activities: createActivities(
      activityDeps(
        parseWorkerConfig(
          simWorkerConfig(sim, backupDir, { importInbox: inbox, ...config({ backupDir, inbox }) }),
          name,
        ),
        repositoryHost,
      ),
    ),
  });
  const running = workers.run();
  return {
    sim,
    ns,
    client: new EtcdOpsClient(env.client, taskQueue),
    backupDir,
    inbox,
    async stop() {
      workers.shutdown();
      await running.catch(() => undefined);
      await sim.stop();
    },
  };
}

/** Keys the backup holds, a backup, then a key it does not hold. */
async function backUp(s: Scenario, repository?: string): Promise<BackupRecord> {
  for (let i = 0; i < 10; i++) await s.sim.putKey(`/test/before/${i}`, `value-${i}`);
  const result = await (
    await s.client.startBackup({
      userClusterName: s.ns,
      ...(repository ? { repository } : {}),
    })
  ).result();
  await s.sim.putKey('/test/after-backup', 'must not survive the restore');
  return stored(result);
}

/** Members 0 and 2 corrupt and crash-looping: no quorum, as in SPEC H. */
async function breakTwo(s: Scenario): Promise<void> {
  for (const n of [0, 2]) await s.sim.corruptMember(n);
  await s.sim.waitFor(
    'members 0 and 2 to crash-loop',
    () =>
      [0, 2].every((n) =>
        s.sim
          .pod(s.ns, `kube-etcd-${n}`)
          ?.status?.containerStatuses?.some((c) => (c.restartCount ?? 0) > 0),
      ),
    60_000,
  );
}

function startRestore(
  s: Scenario,
  backup: RestoreUserClusterInput['backup'],
  extra: Partial<RestoreUserClusterInput> = {},
) {
  return s.client.startRestore({
    userClusterName: s.ns,
    gkeOnPremVersion: '1.5.0-gke.0',
    backup,
    ...extra,
  });
}

/** The backup's keys on every member, the later key on none, no violation. */
async function assertRestored(
  s: Scenario,
  result: RestoreUserClusterResult,
  before: ControlPlaneState,
) {
  assert.equal(result.outcome, 'restored', JSON.stringify(result));
  for (let m = 0; m < 3; m++) {
    assert.equal(await s.sim.memberHealthy(m), true, `member ${m} healthy`);
    for (let i = 0; i < 10; i++)
      assert.equal(await s.sim.getKey(`/test/before/${i}`, { member: m }), `value-${i}`);
    assert.equal(await s.sim.getKey('/test/after-backup', { member: m }), undefined);
  }
  assert.deepEqual(await readControlPlane(s.sim, s.ns), before, 'replicas and PDB as before');
  assert.deepEqual(s.sim.violations, [], 'no protocol violation');
  assert.deepEqual(s.sim.loopErrors, []);
}

/** The ApplicationFailure a failed workflow ended with (its own, or its activity's). */
async function failureOf(handle: WorkflowHandle): Promise<ApplicationFailure> {
  const error = await handle.result().then(
    () => assert.fail('the workflow was expected to fail'),
    (e: unknown) => e,
  );
  assert.ok(error instanceof WorkflowFailedError, String(error));
  for (let e: unknown = error.cause; e instanceof Error; e = e.cause) {
    if (e instanceof ApplicationFailure && e.type) return e;
  }
  assert.fail(`no typed failure in ${String(error.cause)}`);
}

async function progressOf(handle: WorkflowHandle): Promise<ProgressView> {
  return handle.query(progressQuery);
}

/** Waits until the restore's log has a line matching `line`. */
async function untilLogged(handle: WorkflowHandle, line: RegExp, timeoutMs = 240_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const p = await progressOf(handle);
    if (p.log.some((l) => line.test(l)) || line.test(p.step)) return;
    if (Date.now() > deadline) assert.fail(`never logged ${line}: ${p.log.join('\n')}`);
    await sleep(200);
  }
}

/** Waits until the restore waits for an operator (search attribute and query agree). */
async function untilNeedsOperator(handle: WorkflowHandle, timeoutMs = 300_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const description = await handle.describe();
    if (description.searchAttributes.EtcdOutcome?.[0] === 'needs-operator') {
      const problems = await handle.query(problemQuery);
      assert.ok(problems.length > 0);
      return problems;
    }
    if (description.status.name !== 'RUNNING') assert.fail(`ended ${description.status.name}`);
    if (Date.now() > deadline) assert.fail('never asked for an operator');
    await sleep(500);
  }
}

/** What restores leave on the member volumes next to member/: nothing, once verified. */
function leftOnVolumes(s: Scenario): string[] {
  return [0, 1, 2].flatMap((n) => {
    const dir = s.sim.pvcHostDir(s.ns, `data-kube-etcd-${n}`);
    return dir
      ? readdirSync(dir).filter((e) => e.startsWith('.old-') || e.startsWith('.restore-'))
      : [];
  });
}

async function podUids(s: Scenario): Promise<string[]> {
  const pods = await connectKube(s.sim.kubeconfigPath).core.listNamespacedPod({ namespace: s.ns });
  return pods.items.map((p) => p.metadata?.uid ?? '').sort();
}

describe('compaction while backing up', () => {
  let s: Scenario;
  before(async () => {
    s = await scenario('compaction', { compactEveryMs: 1000 });
  });
  after(() => s?.stop());

  test('the backup records its hash with the compact revision it was read at; the restore verifies', async () => {
    // Compaction really runs before the backup: hashkv reports a compact revision.
    await s.sim.waitFor(
      'a first compaction',
      async () => {
        const { stdout } = await s.sim.etcdctl(['endpoint', 'hashkv', '-w', 'json'], { member: 1 });
        return (JSON.parse(stdout)[0]?.HashKV?.compact_revision ?? 0) > 0;
      },
      30_000,
    );
    const backup = await backUp(s);
    assert.ok(
      backup.kvHashCompactRevision === undefined || backup.kvHashCompactRevision > 0,
      `compact revision ${backup.kvHashCompactRevision}`,
    );
    const before = await readControlPlane(s.sim, s.ns);
    await breakTwo(s);
    const result = await (await startRestore(s, { backupId: backup.id })).result();
    await assertRestored(s, result, before);
    assert.ok(
      result.verified.some((l) =>
        /every member has hashkv \d+ at revision \d+(, as recorded at backup|; not compared)/.test(
          l,
        ),
      ),
      result.verified.join('\n'),
    );
  });
});

describe('podManagementPolicy and readiness probes', () => {
  test('OrderedReady without a probe: members are stopped highest first and restored', async () => {
    const s = await scenario('ordered', { etcdPodManagementPolicy: 'OrderedReady' });
    try {
      const backup = await backUp(s);
      const before = await readControlPlane(s.sim, s.ns);
      await breakTwo(s);
      const result = await (await startRestore(s, { backupId: backup.id })).result();
      await assertRestored(s, result, before);
      const sts = await connectKube(s.sim.kubeconfigPath).apps.readNamespacedStatefulSet({
        name: 'kube-etcd',
        namespace: s.ns,
      });
      assert.equal(sts.spec?.podManagementPolicy, 'OrderedReady');
    } finally {
      await s.stop();
    }
  });

  test('Parallel with a probe that needs quorum: restored (members start together)', async () => {
    const s = await scenario('parallel-quorum', { etcdReadiness: 'quorum' });
    try {
      const backup = await backUp(s);
      const before = await readControlPlane(s.sim, s.ns);
      await breakTwo(s);
      const result = await (await startRestore(s, { backupId: backup.id })).result();
      await assertRestored(s, result, before);
    } finally {
      await s.stop();
    }
  });

  for (const readiness of ['local', 'quorum'] as const) {
    test(`OrderedReady with a ${readiness} probe: refused up front, naming the fix; nothing changed`, async () => {
      const s = await scenario(`ordered-${readiness}`, {
        etcdPodManagementPolicy: 'OrderedReady',
        etcdReadiness: readiness,
      });
      try {
        const backup = await backUp(s);
        await breakTwo(s);
        const before = await readControlPlane(s.sim, s.ns);
        const uids = await podUids(s);
        const failure = await failureOf(await startRestore(s, { backupId: backup.id }));
        assert.equal(failure.type, FailureType.ClusterState);
        assert.match(failure.message, /nothing was changed/);
        assert.match(
          failure.message,
          /OrderedReady and a readiness probe a member cannot pass before its cluster has a quorum/,
        );
        assert.match(failure.message, /podManagementPolicy Parallel/);
        assert.deepEqual(await readControlPlane(s.sim, s.ns), before);
        assert.deepEqual(await podUids(s), uids, 'no pod created or deleted');
      } finally {
        await s.stop();
      }
    });
  }
});

describe('a reconciling controller puts kube-etcd back', () => {
  test('found before the point of no return: everything put back, the controller named, no data swapped', async () => {
    const s = await scenario('reconciler', { reconciler: { delayMs: 1000 } });
    try {
      const backup = await backUp(s);
      const before = await readControlPlane(s.sim, s.ns);
      await breakTwo(s);
      const failure = await failureOf(await startRestore(s, { backupId: backup.id }));
      assert.equal(failure.type, FailureType.StartedAgain, failure.message);
      assert.match(failure.message, /started again by something else/);
      await s.sim.waitFor(
        'kube-apiserver back',
        async () => (await readControlPlane(s.sim, s.ns)).apiserver === before.apiserver,
        60_000,
      );
      assert.deepEqual(await readControlPlane(s.sim, s.ns), before, 'replicas and PDB put back');
      assert.deepEqual(s.sim.violations, [], 'no data changed under a running etcd');
      // Nothing was restored: the corrupt members still crash-loop on their old data.
      assert.equal(await s.sim.memberHealthy(0), false);
      assert.equal(await s.sim.memberHealthy(2), false);
    } finally {
      await s.stop();
    }
  });

  test('OrderedReady, a broken member below a Ready one, and the controller: the stop comes after the point of no return and is done again until it holds', async () => {
    const s = await scenario('ordered-reconciler', {
      etcdPodManagementPolicy: 'OrderedReady',
      reconciler: { delayMs: 1000 },
    });
    try {
      const backup = await backUp(s);
      const before = await readControlPlane(s.sim, s.ns);
      await breakTwo(s); // member 0 broken below member 1, which is Ready
      const handle = await startRestore(s, { backupId: backup.id });
      await untilLogged(handle, /point of no return — stop every etcd member/);
      // The controller starts kube-etcd again: past the point of no return that is no
      // failure of the restore, which stops it again (and, if it keeps at it, asks a person).
      await untilLogged(handle, /started again|StartedAgain/);
      s.sim.reconciler.disable();
      const waiting = await handle.query(problemQuery);
      if (waiting.length > 0)
        await s.client.resolveRestoreProblem(handle.workflowId, {
          action: 'retry',
          by: 'sre',
          comment: 'paused the controller',
        });
      const result = await handle.result();
      await assertRestored(s, result, before);
      const log = (await progressOf(handle)).log;
      const stop = log.findIndex((l) => /point of no return — stop every etcd member/.test(l));
      const scaledDown = log.findIndex((l) => /H3 scale/.test(l));
      assert.ok(
        scaledDown >= 0 && scaledDown < stop,
        'stopped after H3, past the point of no return',
      );
      assert.equal(
        log.findIndex((l) => /^\S+ stop every etcd member: scale/.test(l) && log.indexOf(l) < stop),
        -1,
        'not stopped before the point of no return',
      );
    } finally {
      await s.stop();
    }
  });
});

describe('full volumes', () => {
  test("a member volume without room for the restored data beside the old: NoSpace before any change to the control plane's data", async () => {
    // 160 MiB: etcd's two 64 MB WAL files fit, a restored copy beside them does not.
    const s = await scenario('full-pvc', { pvcSizeBytes: { 1: 160 * MiB } });
    try {
      const backup = await backUp(s);
      const before = await readControlPlane(s.sim, s.ns);
      await breakTwo(s);
      const failure = await failureOf(await startRestore(s, { backupId: backup.id }));
      assert.equal(failure.type, FailureType.NoSpace, failure.message);
      assert.match(failure.message, /data-kube-etcd-1|member 1/);
      assert.deepEqual(await readControlPlane(s.sim, s.ns), before, 'nothing left changed');
      assert.deepEqual(leftOnVolumes(s), [], 'no scratch data left');
      assert.deepEqual(s.sim.violations, []);
    } finally {
      await s.stop();
    }
  });

  test('the repository disk fills up mid-copy: the backup fails clearly (NoSpace), nothing staged is left, the worker lives on', async () => {
    const tinyPath = join(scratch, 'tiny-repository');
    const tiny = await sizeLimitedDir(tinyPath, 4 * MiB);
    const s = await scenario('full-repo', {}, ({ backupDir }) => ({
      repositories: { local: { path: backupDir }, tiny: { path: tinyPath } },
    }));
    try {
      // About 6 MiB of data: more than the tiny repository holds.
      const value = 'x'.repeat(100_000);
      for (let i = 0; i < 60; i++) await s.sim.putKey(`/test/big/${i}`, value);
      const handle = await s.client.startBackup({ userClusterName: s.ns, repository: 'tiny' });
      const failure = await failureOf(handle);
      assert.equal(failure.type, FailureType.NoSpace, failure.message);
      assert.match(failure.message, /no space left on device/);
      const files = readdirSync(tinyPath, { recursive: true, withFileTypes: true });
      assert.deepEqual(
        files.filter((e) => e.isFile()).map((f) => f.name),
        [],
        'no staged copy left behind',
      );
      // The same worker goes on: a backup to the other repository succeeds.
      const ok = stored(
        await (await s.client.startBackup({ userClusterName: s.ns, repository: 'local' })).result(),
      );
      assert.ok(ok.sizeBytes > 6 * MiB);
      assert.deepEqual(uncaught, [], 'nothing escaped to the process');
    } finally {
      await s.stop();
      await tiny.release();
    }
  });
});

describe('after the point of no return', () => {
  test('kube-etcd started again between the stop and the swaps: stopped again before any data is swapped', async () => {
    const s = await scenario('started-before-swap', {});
    try {
      const backup = await backUp(s);
      const before = await readControlPlane(s.sim, s.ns);
      await breakTwo(s);
      const handle = await startRestore(s, { backupId: backup.id });
      await untilLogged(handle, /stop every etcd member/);
      // Every member step after the point of no return first makes sure of its utility pod:
      // hold those requests so the start below comes before any member's check.
      s.sim.faults.addLatency(4000, { verb: 'create', resource: 'pods', namespace: s.ns });
      await untilLogged(handle, /point of no return — H5d/);
      await connectKube(s.sim.kubeconfigPath).apps.patchNamespacedStatefulSetScale(
        { name: 'kube-etcd', namespace: s.ns, body: { spec: { replicas: 3 } } },
        mergePatch,
      );
      s.sim.faults.clear();
      const result = await handle.result();
      await assertRestored(s, result, before); // violations: no data swapped under a running etcd
      const { log } = await progressOf(handle);
      assert.ok(
        log.some((l) =>
          /before member \d's swap: .* had been started again by someone; stopped/.test(l),
        ),
        log.join('\n'),
      );
    } finally {
      await s.stop();
    }
  });

  test('a utility pod evicted and its scratch data lost: made again, the snapshot copied again, restored', async () => {
    const s = await scenario('evicted', { freshContainerOnRestart: true });
    try {
      const backup = await backUp(s);
      const before = await readControlPlane(s.sim, s.ns);
      await breakTwo(s);
      const handle = await startRestore(s, { backupId: backup.id });
      await untilLogged(handle, /stop every etcd member/);
      // Hold member 1's swap long enough to take its utility pod and scratch data away.
      s.sim.faults.addLatency(4000, { verb: 'exec', name: 'etcd-utility-1' });
      await untilLogged(handle, /point of no return/);
      s.sim.evictPod(s.ns, 'etcd-utility-1', 0);
      const volume = s.sim.pvcHostDir(s.ns, 'data-kube-etcd-1') ?? assert.fail('no volume');
      for (const e of readdirSync(volume).filter((n) => n.startsWith('.restore-')))
        rmSync(join(volume, e), { recursive: true, force: true });
      s.sim.faults.clear();
      const result = await handle.result();
      await assertRestored(s, result, before);
      const { log } = await progressOf(handle);
      assert.ok(
        log.some((l) =>
          /member 1: the restored data is gone from its volume; copying the snapshot in and restoring it again/.test(
            l,
          ),
        ),
        log.join('\n'),
      );
      assert.deepEqual(leftOnVolumes(s), []);
    } finally {
      await s.stop();
    }
  });

  test('403 from the API server while scaling kube-apiserver back: run again, restored', async () => {
    const s = await scenario('forbidden', {});
    try {
      const backup = await backUp(s);
      const before = await readControlPlane(s.sim, s.ns);
      await breakTwo(s);
      const handle = await startRestore(s, { backupId: backup.id });
      await untilLogged(handle, /point of no return/);
      s.sim.faults.failNext(1, 403, {
        verb: 'patch',
        resource: 'statefulsets',
        subresource: 'scale',
        name: 'kube-apiserver',
      });
      const result = await handle.result();
      await assertRestored(s, result, before);
      const { log } = await progressOf(handle);
      assert.ok(
        log.some((l) =>
          /H7 H8 .* failed \(.*HTTP 403 Forbidden: statefulsets "kube-apiserver" is forbidden.*\); it is run again in 10 seconds$/.test(
            l,
          ),
        ),
        log.join('\n'),
      );
    } finally {
      await s.stop();
    }
  });

  test('a PDB of the same name someone created meanwhile: the restore waits for an operator, who removes it and retries', async () => {
    const s = await scenario('pdb-conflict', {});
    try {
      const backup = await backUp(s);
      const before = await readControlPlane(s.sim, s.ns);
      await breakTwo(s);
      const handle = await startRestore(s, { backupId: backup.id });
      await untilLogged(handle, /point of no return/);
      const kube = connectKube(s.sim.kubeconfigPath);
      await kube.policy.createNamespacedPodDisruptionBudget({
        namespace: s.ns,
        body: {
          metadata: { name: 'kube-apiserver-pdb' },
          spec: { minAvailable: 1, selector: { matchLabels: { component: 'kube-apiserver' } } },
        },
      });
      const problems = await untilNeedsOperator(handle);
      assert.match(problems[0]?.step ?? '', /H9/);
      assert.ok(
        problems[0]?.stillChanged.some((c) => /PodDisruptionBudget|PDB/.test(c)),
        JSON.stringify(problems),
      );
      assert.ok(problems[0]?.whatToDo.some((w) => /resolveProblem/.test(w)));
      await kube.policy.deleteNamespacedPodDisruptionBudget({
        name: 'kube-apiserver-pdb',
        namespace: s.ns,
      });
      await s.client.resolveRestoreProblem(handle.workflowId, {
        action: 'retry',
        by: 'sre',
        comment: 'removed the stray PDB',
      });
      const result = await handle.result();
      await assertRestored(s, result, before);
      assert.deepEqual((await handle.describe()).searchAttributes.EtcdOutcome, ['succeeded']);
    } finally {
      await s.stop();
    }
  });

  test('verification fails: kube-apiserver stays at 0, the restore waits; handed over, it lists what is not put back', async () => {
    const s = await scenario('verify-fails', {});
    try {
      const backup = await backUp(s);
      // The manifest now claims one key more than the snapshot holds.
      const manifest = join(s.backupDir, s.ns, backup.id, 'manifest.json');
      const record = JSON.parse(readFileSync(manifest, 'utf8')) as BackupRecord;
      writeFileSync(manifest, JSON.stringify({ ...record, keyCount: (record.keyCount ?? 0) + 1 }));
      await breakTwo(s);
      const handle = await startRestore(s, { backupId: backup.id });
      const problems = await untilNeedsOperator(handle);
      assert.match(problems[0]?.error ?? '', /restore verification failed/);
      const apiserver = await connectKube(s.sim.kubeconfigPath).apps.readNamespacedStatefulSet({
        name: 'kube-apiserver',
        namespace: s.ns,
      });
      assert.equal(apiserver.spec?.replicas, 0, 'not unveiled');
      await s.client.resolveRestoreProblem(handle.workflowId, { action: 'hand-over', by: 'sre' });
      const result = await handle.result();
      assert.equal(result.outcome, 'handed-over');
      assert.ok(
        result.notPutBack.some((l) => /kube-apiserver at 0 replicas/.test(l)),
        result.notPutBack.join('\n'),
      );
      assert.ok(
        result.notPutBack.some((l) => /PodDisruptionBudget|PDB/.test(l)),
        result.notPutBack.join('\n'),
      );
      assert.deepEqual((await handle.describe()).searchAttributes.EtcdOutcome, ['handed-over']);
    } finally {
      await s.stop();
    }
  });
});

describe('a restore abandoned halfway', () => {
  test('the next restore puts back the first originals (recorded on the cluster), not the zeros it finds', async () => {
    const s = await scenario('abandoned', {});
    try {
      const backup = await backUp(s);
      const before = await readControlPlane(s.sim, s.ns);
      await breakTwo(s);
      const first = await startRestore(s, { backupId: backup.id });
      await untilLogged(first, /stop every etcd member/);
      await first.terminate('abandoned by the test: a worker fleet lost, a person gave up');
      const halfway = await readControlPlane(s.sim, s.ns);
      assert.equal(halfway.apiserver, 0, 'the abandoned restore left kube-apiserver at 0');

      const second = await startRestore(s, { backupId: backup.id });
      const result = await second.result();
      await assertRestored(s, result, before);
      const { log } = await progressOf(second);
      assert.ok(
        log.some((l) => /earlier restore|abandoned|recorded by/.test(l)),
        log.join('\n'),
      );
      assert.deepEqual(leftOnVolumes(s), [], "the abandoned restore's scratch data removed too");
      const record = await connectKube(s.sim.kubeconfigPath)
        .core.readNamespacedConfigMap({ name: 'etcd-ha-restore-record', namespace: s.ns })
        .catch(() => undefined);
      assert.equal(record, undefined, 'the record is gone once everything is back');
    } finally {
      await s.stop();
    }
  });
});

describe('lean images', () => {
  test('a BusyBox utility image (no flock, no mv -T, no stat): restored', async () => {
    const s = await scenario('busybox', { utilityImage: 'busybox' });
    try {
      const backup = await backUp(s);
      const before = await readControlPlane(s.sim, s.ns);
      await breakTwo(s);
      const result = await (await startRestore(s, { backupId: backup.id })).result();
      await assertRestored(s, result, before);
    } finally {
      await s.stop();
    }
  });

  test("a distroless etcd image: the backup is taken from a utility pod over the member's client URL, and restored", async () => {
    const s = await scenario('distroless', { etcdImage: 'distroless' });
    try {
      for (let i = 0; i < 10; i++) await s.sim.putKey(`/test/before/${i}`, `value-${i}`);
      const result = await (await s.client.startBackup({ userClusterName: s.ns })).result();
      const backup = stored(result);
      assert.equal(backup.toolVersions.snapshotTakenIn, 'utility pod');
      assert.equal(backup.provenance?.etcdVersion, s.sim.etcd.version);
      // The utility pod it used is gone, and kube-etcd-0 was only read.
      assert.equal(s.sim.pod(s.ns, 'etcd-utility-0'), undefined);
      await s.sim.putKey('/test/after-backup', 'must not survive the restore');
      const before = await readControlPlane(s.sim, s.ns);
      await breakTwo(s);
      const restored = await (await startRestore(s, { backupId: backup.id })).result();
      await assertRestored(s, restored, before);
    } finally {
      await s.stop();
    }
  });
});

test('nothing escaped to the process in any scenario', () => {
  assert.deepEqual(uncaught, []);
});
