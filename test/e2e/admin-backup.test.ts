/**
 * The admin-cluster backup (SPEC A2, A3) and backupAll (the runbook's automatic backup
 * script, A) end to end: a real Temporal dev server and worker, the simulated admin
 * cluster with its kube-system etcd and three user clusters (real etcd), and a real
 * OpenSSH server (Debian's sshd, as node and as jump host, on loopback ports) serving the
 * simulated node's PKI directory, which only root may read. The SSH user is a dedicated
 * test user whose only sudo right is the one `tar` the backup runs.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { chmod } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ActivityFailure, ApplicationFailure } from '@temporalio/common';
import type { WorkerConfigInput } from '../../activities/config/worker-config.js';
import { localEtcdctl } from '../../activities/etcd/local-etcdctl.js';
import { connectKube } from '../../activities/kube/client.js';
import { execInPod } from '../../activities/kube/exec.js';
import { verifyAdminBackup } from '../../activities/repository/admin-activities.js';
import { FileSystemBackupStore } from '../../activities/repository/fs-store.js';
import { verifyStoredBackup } from '../../activities/repository/verify.js';
import { EtcdOpsClient } from '../../client/client.js';
import {
  type AdminBackupRecord,
  type BackupAdminClusterResult,
  type BackupAllResult,
  EtcdOutcome,
  FailureType,
} from '../../workflows/contract/index.js';
import { progressQuery } from '../../workflows/progress.js';
import { recordHistory } from '../harness/histories.js';
import {
  ensureTestUser,
  type KeyPair,
  makeKeyPair,
  removeTestUser,
  type Sshd,
  startSshd,
  TEST_USER,
} from '../harness/sshd.js';
import {
  simWorkerConfig,
  startTemporalTestContext,
  type TemporalTestContext,
  temporalCli,
} from '../harness/temporal.js';
import { readTools } from '../harness/tools.js';
import { type SimCluster, startSimCluster } from '../sim/index.js';

const execFileAsync = promisify(execFile);

const root = fileURLToPath(new URL('../..', import.meta.url));
let sim: SimCluster;
let others: SimCluster[];
let ctx: TemporalTestContext;
let ops: EtcdOpsClient;
let node: Sshd;
let jump: Sshd;
let proxy: CuttingProxy;
let key: KeyPair;
let scratch: string;
let backupDir: string;
let configFile: string;
let nodePki: string;

/** A TCP proxy to the node's sshd that cuts its first `cuts` connections after `afterBytes` from the server. */
interface CuttingProxy {
  port: number;
  cut: number;
  close(): Promise<void>;
}

async function startCuttingProxy(
  target: number,
  cuts: number,
  afterBytes: number,
): Promise<CuttingProxy> {
  let connections = 0;
  const state = { cut: 0 };
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const index = connections++;
    const upstream = connect(target, '127.0.0.1');
    sockets.add(client);
    sockets.add(upstream);
    let fromServer = 0;
    upstream.on('data', (chunk: Buffer) => {
      fromServer += chunk.length;
      if (index < cuts && fromServer > afterBytes) {
        state.cut++;
        client.destroy();
        upstream.destroy();
        return;
      }
      client.write(chunk);
    });
    client.pipe(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address && typeof address === 'object');
  return {
    port: address.port,
    get cut() {
      return state.cut;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** mode, owner and ctime of every entry under `dir` (ctime changes with any chmod or chown). */
function metadataOf(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const visit = (path: string) => {
    const st = lstatSync(path);
    out.set(
      relative(dir, path) || '.',
      `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid} ${st.ctimeMs}`,
    );
    if (st.isDirectory()) for (const e of readdirSync(path)) visit(join(path, e));
  };
  visit(dir);
  return out;
}

/** Regular files under `dir`, relative path → bytes. */
function filesOf(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const visit = (path: string) => {
    const st = lstatSync(path);
    if (st.isDirectory()) for (const e of readdirSync(path)) visit(join(path, e));
    else if (st.isFile()) out.set(relative(dir, path), readFileSync(path));
  };
  visit(dir);
  return out;
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const adminBackupDir = (admin: string, id: string) => join(backupDir, '.admin', admin, id);

before(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'admin-backup-'));
  backupDir = join(scratch, 'backups');
  sim = await startSimCluster({ members: 1, userClusterName: 'uc-a' });
  others = [
    await sim.addUserCluster({ name: 'uc-b', members: 1 }),
    await sim.addUserCluster({ name: 'uc-c', members: 1 }),
  ];
  const adminEtcd = sim.adminEtcd;
  assert.ok(adminEtcd);
  // The node's PKI, as kubeadm leaves it (keys 0600, certificates 0644), in a directory
  // only root may enter; a symlink, which is recorded and not followed.
  nodePki = adminEtcd.nodePkiDir;
  symlinkSync('apiserver.crt', join(nodePki, 'apiserver-current.crt'));
  for (const [path] of filesOf(nodePki))
    await chmod(join(nodePki, path), path.endsWith('.key') ? 0o600 : 0o644);
  await chmod(nodePki, 0o700);

  key = await makeKeyPair(join(scratch, 'worker_ed25519'), 'etcd-ha-restore worker');
  await removeTestUser();
  await ensureTestUser([nodePki]);
  node = await startSshd({ authorizedKeys: [key.publicKey], allowTcpForwarding: false });
  jump = await startSshd({ authorizedKeys: [key.publicKey], allowTcpForwarding: true });
  proxy = await startCuttingProxy(node.port, 2, 6000);

  const knownHosts = join(scratch, 'known_hosts');
  // One hashed name, as `ssh-keygen -H` writes them, and one plain.
  writeFileSync(
    knownHosts,
    `# the admin node and its jump host\n${node.knownHostsLine}\n${jump.knownHostsLine}\n[127.0.0.1]:${proxy.port} ${node.knownHostsLine.split(' ').slice(1).join(' ')}\n`,
  );
  const strangers = join(scratch, 'known_hosts.strangers');
  writeFileSync(strangers, `${jump.knownHostsLine}\n`);
  const ssh = {
    host: node.host,
    port: node.port,
    user: TEST_USER,
    privateKeyPath: key.privateKeyPath,
    knownHostsPath: knownHosts,
    pkiDir: nodePki,
  };
  const base = simWorkerConfig(sim, backupDir).adminClusters.sim;
  assert.ok(base);
  const admin = (extra: Partial<NonNullable<WorkerConfigInput['adminClusters'][string]>>) => ({
    ...base,
    userClusterProfiles: Object.fromEntries(others.map((o) => [o.userClusterName, o.profile])),
    adminEtcd: { etcdEndpoint: adminEtcd.endpoint },
    ...extra,
  });
  const config: WorkerConfigInput = {
    adminClusters: {
      sim: admin({ ssh }),
      'sim-jump': admin({
        ssh: {
          ...ssh,
          jumpHost: {
            host: jump.host,
            port: jump.port,
            user: TEST_USER,
            privateKeyPath: key.privateKeyPath,
            hostKeyFingerprint: jump.hostKeyFingerprint,
          },
        },
      }),
      'sim-unknown': admin({ ssh: { ...ssh, knownHostsPath: strangers } }),
      'sim-changed': admin({
        ssh: { ...ssh, knownHostsPath: undefined, hostKeyFingerprint: jump.hostKeyFingerprint },
      }),
      'sim-bad-jump': admin({
        ssh: {
          ...ssh,
          jumpHost: {
            host: jump.host,
            port: jump.port,
            user: TEST_USER,
            privateKeyPath: key.privateKeyPath,
            hostKeyFingerprint: node.hostKeyFingerprint,
          },
        },
      }),
      'sim-cut': admin({ ssh: { ...ssh, port: proxy.port } }),
    },
    repositories: { local: { path: backupDir } },
  };
  configFile = join(scratch, 'worker.json');
  writeFileSync(configFile, JSON.stringify(config));
  ctx = await startTemporalTestContext('admin-backup', { config });
  ops = new EtcdOpsClient(ctx.env.client, ctx.taskQueue);
});

after(async () => {
  await ctx?.teardown();
  await proxy?.close();
  await node?.stop();
  await jump?.stop();
  await removeTestUser();
  await sim?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

/** The failure a workflow ended with, unwrapped to its ApplicationFailure. */
async function failureOf(handle: WorkflowHandle): Promise<ApplicationFailure> {
  const error = await handle.result().then(
    () => assert.fail(`${handle.workflowId} was expected to fail`),
    (e: unknown) => e,
  );
  assert.ok(error instanceof WorkflowFailedError, `expected WorkflowFailedError, got ${error}`);
  let cause: unknown = error.cause;
  if (cause instanceof ActivityFailure) cause = cause.cause;
  assert.ok(cause instanceof ApplicationFailure, `expected ApplicationFailure, got ${cause}`);
  return cause;
}

/** Attempts of one activity type, from a workflow's history. */
async function attemptsOf(handle: WorkflowHandle, activity: string): Promise<number[]> {
  const { events } = await handle.fetchHistory();
  const scheduled = new Set<string>();
  const attempts: number[] = [];
  for (const e of events ?? []) {
    if (e.activityTaskScheduledEventAttributes?.activityType?.name === activity)
      scheduled.add(String(e.eventId));
    const started = e.activityTaskStartedEventAttributes;
    if (started && scheduled.has(String(started.scheduledEventId)))
      attempts.push(started.attempt ?? 0);
  }
  return attempts;
}

/** A workflow's whole history as text, payloads decoded (they are bytes in the history). */
async function historyText(handle: WorkflowHandle): Promise<string> {
  const history = await handle.fetchHistory();
  // Payload bytes come as base64 strings in `data` fields (or as bytes): decoded, and kept too.
  return JSON.stringify(history, (key, value: unknown) => {
    if (value instanceof Uint8Array) return Buffer.from(value).toString('utf8');
    if (key === 'data' && typeof value === 'string')
      return `${value} ${Buffer.from(value, 'base64').toString('utf8')}`;
    return value;
  });
}

function storedAdmin(result: BackupAdminClusterResult): AdminBackupRecord {
  assert.equal(result.outcome, 'stored', JSON.stringify(result));
  assert.ok(result.backup);
  return result.backup;
}

let firstBackup: AdminBackupRecord;

test('A2+A3: the admin etcd snapshot and the node PKI, byte-identical, modes recorded, nothing changed on the node, no secret in history', async () => {
  const before = metadataOf(nodePki);
  const nodeFiles = filesOf(nodePki);
  assert.ok(nodeFiles.has('ca.key') && nodeFiles.has('etcd/healthcheck-client.key'));
  // A key in the admin etcd (as kube-apiserver's objects would be), to find in the snapshot.
  const a = sim.adminEtcd;
  assert.ok(a);
  await execFileAsync(
    readTools().etcdctl,
    [
      `--endpoints=${a.endpoint}`,
      `--cacert=${a.tls.caFile}`,
      `--cert=${a.tls.certFile}`,
      `--key=${a.tls.keyFile}`,
      'put',
      '/registry/test/admin-marker',
      'here',
    ],
    { env: { ETCDCTL_API: '3', PATH: '/usr/bin:/bin' } },
  );
  const handle = await ops.startAdminBackup({ adminCluster: 'sim' });
  const backup = storedAdmin(await handle.result());
  firstBackup = backup;
  await recordHistory('backup-admin-cluster', handle);
  assert.deepEqual(metadataOf(nodePki), before, 'no mode, owner or ctime changed on the node');

  // Every PKI file is in the backup byte for byte, its mode on the node in the manifest.
  const dir = adminBackupDir('sim', backup.id);
  for (const [path, bytes] of nodeFiles) {
    const stored = join(dir, 'pki', path);
    assert.ok(readFileSync(stored).equals(bytes), path);
    assert.equal(lstatSync(stored).mode & 0o777, 0o600, `${path} is 0600 in the repository`);
    const entry = backup.files.find((f) => f.path === `pki/${path}`);
    assert.ok(entry, path);
    assert.equal(entry.mode, `0${(lstatSync(join(nodePki, path)).mode & 0o777).toString(8)}`);
    assert.equal(entry.sha256, sha256(bytes));
    assert.equal(entry.sizeBytes, bytes.length);
    assert.equal(entry.owner, 'root:root');
  }
  assert.equal(backup.pki.fileCount, nodeFiles.size);
  const top = backup.files.find((f) => f.path === 'pki');
  assert.deepEqual([top?.type, top?.mode], ['directory', '0700']);
  for (const d of backup.files.filter((f) => f.type === 'directory'))
    assert.equal(lstatSync(join(dir, d.path)).mode & 0o777, 0o700, d.path);
  const link = backup.files.find((f) => f.path === 'pki/apiserver-current.crt');
  assert.deepEqual([link?.type, link?.linkTarget], ['symlink', 'apiserver.crt']);
  assert.throws(
    () => lstatSync(join(dir, 'pki/apiserver-current.crt')),
    'links are recorded, not stored',
  );
  const manifest = JSON.parse(
    readFileSync(join(dir, 'manifest.json'), 'utf8'),
  ) as AdminBackupRecord;
  assert.deepEqual(manifest, backup);

  // A3: the admin etcd snapshot, verified as a user-cluster backup is.
  const snapshot = readFileSync(join(dir, 'admin-cluster_snapshot.db'));
  assert.equal(sha256(snapshot), backup.etcd.sha256);
  assert.equal(backup.etcd.sourcePod, sim.adminEtcd?.podName);
  assert.ok(backup.etcd.totalKeys >= 1 && backup.etcd.revision >= 2, JSON.stringify(backup.etcd));
  assert.equal(backup.etcd.keyCount, 1, 'the key written before the backup');
  assert.match(backup.etcd.etcdVersion, /^3\.\d+\.\d+$/);
  assert.match(backup.etcd.clusterId, /^\d+$/);
  assert.match(backup.etcd.image ?? '', /etcd/);
  const status = await localEtcdctl().snapshotStatus(join(dir, 'admin-cluster_snapshot.db'));
  assert.equal(status.hash, backup.etcd.etcdHash);
  const store = new FileSystemBackupStore(backupDir);
  const verified = await verifyAdminBackup(store.admin, localEtcdctl(), {
    adminCluster: 'sim',
    backupId: backup.id,
  });
  assert.equal(verified.checks.length, 3);
  assert.deepEqual(
    (await store.admin.list('sim')).map((b) => b.id),
    [backup.id],
  );
  const leftover = await execInPod(connectKube(sim.kubeconfigPath).config, {
    namespace: 'kube-system',
    pod: sim.adminEtcd?.podName ?? '',
    container: 'etcd',
    argv: ['sh', '-c', 'ls / | grep "^snapshot-" || true'],
  });
  assert.equal(leftover.stdout, '', 'the snapshot file is gone from the admin etcd pod');
  const saved = (await handle.query(progressQuery)).facts.snapshot ?? '';
  assert.ok(saved.startsWith(`/snapshot-${backup.id}.1.db:`), `saved in the pod's / (${saved})`);

  // History: names, sizes and hashes, never a key or a PKI file's contents, nor how SSH gets there.
  const history = await historyText(handle);
  assert.ok(
    history.includes('pki/ca.key') && history.includes(backup.etcd.sha256),
    'payloads were decoded',
  );
  const secrets = [
    readFileSync(key.privateKeyPath, 'utf8'),
    ...[...nodeFiles.values()].map((b) => b.toString('utf8')),
  ];
  for (const secret of secrets) {
    // The PEM body's lines (any one would be a leak), and the whole text in base64.
    for (const line of secret.split('\n').filter((l) => l.length > 20 && !l.startsWith('-----')))
      assert.equal(
        history.includes(line),
        false,
        `a line of a secret is in the history: ${line.slice(0, 12)}…`,
      );
    assert.equal(history.includes(Buffer.from(secret).toString('base64').slice(0, 40)), false);
  }
  for (const configured of [key.privateKeyPath, TEST_USER, `:${node.port}`, `${nodePki}/`])
    assert.equal(history.includes(configured), false, `${configured} is in the history`);
  assert.equal((await handle.describe()).typedSearchAttributes.get(EtcdOutcome), 'succeeded');
});

test('A2 through the jump host: both host keys checked, the same PKI', async () => {
  const backup = storedAdmin(
    await (await ops.startAdminBackup({ adminCluster: 'sim-jump' })).result(),
  );
  assert.equal(backup.pki.viaJumpHost, true);
  const pkiOf = (b: AdminBackupRecord) => b.files.filter((f) => f.path.startsWith('pki'));
  assert.deepEqual(pkiOf(backup), pkiOf(firstBackup));
});

test('an unknown or changed host key, of the node or of the jump host, is refused at once, naming the host and the key seen', async () => {
  const cases: Array<[string, Sshd, RegExp]> = [
    ['sim-unknown', node, /it is not in the known_hosts file/],
    ['sim-changed', node, /it is not the hostKeyFingerprint/],
    ['sim-bad-jump', jump, /jump host .*it is not the hostKeyFingerprint/],
  ];
  for (const [adminCluster, server, why] of cases) {
    const handle = await ops.startAdminBackup({ adminCluster });
    const failure = await failureOf(handle);
    assert.equal(failure.type, FailureType.HostKeyMismatch, failure.message);
    assert.equal(failure.nonRetryable, true);
    assert.match(failure.message, why);
    assert.ok(failure.message.includes(`127.0.0.1:${server.port}`), failure.message);
    assert.ok(failure.message.includes(server.hostKeyFingerprint), failure.message);
    assert.deepEqual(await attemptsOf(handle, 'copyAdminPkiToRepository'), [1]);
    const staging = join(backupDir, '.admin', adminCluster, '.staging');
    assert.deepEqual(existsSync(staging) ? readdirSync(staging) : [], [], 'nothing staged is left');
  }
});

test('a PKI copy cut mid-stream is retried and ends byte-identical', async () => {
  const handle = await ops.startAdminBackup({ adminCluster: 'sim-cut' });
  const backup = storedAdmin(await handle.result());
  assert.ok(proxy.cut >= 1, 'the proxy cut the stream');
  const attempts = await attemptsOf(handle, 'copyAdminPkiToRepository');
  assert.ok(
    attempts.some((a) => a > 1),
    `attempts ${attempts.join(', ')}`,
  );
  for (const [path, bytes] of filesOf(nodePki))
    assert.ok(
      readFileSync(join(adminBackupDir('sim-cut', backup.id), 'pki', path)).equals(bytes),
      path,
    );
});

test('backupAll over three user clusters, one broken: two verified backups, the admin backup, a clear failure for the third', async () => {
  const [, broken] = others;
  assert.ok(broken);
  await broken.corruptMember(0);
  await sim.waitFor(
    'uc-c crash-looping',
    () => {
      const s = sim.pod('uc-c', 'kube-etcd-0')?.status?.containerStatuses?.[0];
      return s?.state.waiting?.reason === 'CrashLoopBackOff' && !s.ready;
    },
    60_000,
  );

  const handle = await ops.startBackupAll({ adminCluster: 'sim', maxConcurrent: 2 });
  const result: BackupAllResult = await handle.result();
  await recordHistory('backup-all', handle);
  assert.equal(result.outcome, 'partly-failed');
  assert.equal(result.userClustersFrom, 'the namespaces holding a StatefulSet kube-etcd');
  assert.deepEqual(result.failed, ['uc-c']);
  const byName = new Map(result.parts.map((p) => [`${p.kind}:${p.name}`, p]));
  assert.deepEqual(
    [...byName.keys()],
    ['admin:sim', 'user-cluster:uc-a', 'user-cluster:uc-b', 'user-cluster:uc-c'],
  );
  const store = new FileSystemBackupStore(backupDir);
  for (const cluster of ['uc-a', 'uc-b']) {
    const part = byName.get(`user-cluster:${cluster}`);
    assert.equal(part?.outcome, 'stored', JSON.stringify(part));
    await verifyStoredBackup(store, localEtcdctl(), {
      userClusterName: cluster,
      backupId: part?.backupId ?? '',
    });
  }
  const admin = byName.get('admin:sim');
  assert.equal(admin?.outcome, 'stored');
  await verifyAdminBackup(store.admin, localEtcdctl(), {
    adminCluster: 'sim',
    backupId: admin?.backupId ?? '',
  });
  const failed = byName.get('user-cluster:uc-c');
  assert.equal(failed?.outcome, 'failed');
  assert.equal(failed?.failureType, FailureType.ClusterState);
  assert.match(failed?.error ?? '', /no etcd member of uc-c is ready/);
  assert.equal((await store.list('uc-c')).length, 0);

  // What a person sees: each part in the current details, the outcome in the search attributes.
  const progress = await handle.query(progressQuery);
  assert.match(progress.parts?.['uc-c'] ?? '', /^failed: .*no etcd member of uc-c is ready/);
  assert.match(progress.parts?.['admin sim'] ?? '', /^stored /);
  const metadata = (await handle.query('__temporal_workflow_metadata')) as {
    currentDetails?: string;
  };
  assert.match(metadata.currentDetails ?? '', /\| uc-c \| failed: /);
  assert.match(metadata.currentDetails ?? '', /\| uc-a \| stored /);
  assert.equal((await handle.describe()).typedSearchAttributes.get(EtcdOutcome), 'partly-failed');
});

test('backupAll started with the Temporal CLI binary', async () => {
  const workflowId = `cli-backup-all-${randomUUID()}`;
  await temporalCli(ctx.server, [
    'workflow',
    'start',
    '--type',
    'backupAll',
    '--task-queue',
    ctx.taskQueue,
    '--workflow-id',
    workflowId,
    '--input',
    JSON.stringify({ adminCluster: 'sim', userClusterNames: ['uc-a'] }),
  ]);
  const result = (await ctx.env.client.workflow.getHandle(workflowId).result()) as BackupAllResult;
  assert.equal(result.outcome, 'stored', JSON.stringify(result));
  assert.deepEqual(
    result.parts.map((p) => [p.name, p.outcome]),
    [
      ['sim', 'stored'],
      ['uc-a', 'stored'],
    ],
  );
  assert.equal(result.userClustersFrom, 'named in the input');
});

/** Waits until the schedule has started a run, then returns that run's result. */
async function firstScheduledResult(
  describe: () => Promise<{
    info: {
      recentActions: Array<{
        action: { workflow: { workflowId: string; firstExecutionRunId: string } };
      }>;
    };
  }>,
): Promise<BackupAllResult> {
  for (let i = 0; i < 600; i++) {
    const run = (await describe()).info.recentActions[0]?.action.workflow;
    if (run)
      return (await ctx.env.client.workflow
        .getHandle(run.workflowId, run.firstExecutionRunId)
        .result()) as BackupAllResult;
    await sleep(500);
  }
  assert.fail('the schedule started no run in 300 s');
}

test('backupAll on a Schedule: from the typed client and from `temporal schedule create`', async () => {
  const schedule = await ops.createBackupAllSchedule({
    input: { adminCluster: 'sim', userClusterNames: ['uc-b'] },
    cadence: { interval: '1h' },
    paused: true,
  });
  try {
    assert.equal(schedule.scheduleId, 'etcd-backup-all.sim');
    await schedule.trigger();
    const result = await firstScheduledResult(() => schedule.describe());
    assert.equal(result.outcome, 'stored', JSON.stringify(result));
    assert.equal(result.parts.length, 2);
  } finally {
    await schedule.delete();
  }

  const scheduleId = `cli-backup-all-${randomUUID().slice(0, 8)}`;
  await temporalCli(ctx.server, [
    'schedule',
    'create',
    '--schedule-id',
    scheduleId,
    '--interval',
    '1h',
    '--paused',
    '--overlap-policy',
    'Skip',
    '--task-queue',
    ctx.taskQueue,
    '--type',
    'backupAll',
    '--workflow-id',
    scheduleId,
    '--input',
    JSON.stringify({ adminCluster: 'sim-jump', userClusterNames: ['uc-a'] }),
  ]);
  try {
    await temporalCli(ctx.server, ['schedule', 'trigger', '--schedule-id', scheduleId]);
    const handle = ctx.env.client.schedule.getHandle(scheduleId);
    const result = await firstScheduledResult(() => handle.describe());
    assert.equal(result.outcome, 'stored', JSON.stringify(result));
  } finally {
    await temporalCli(ctx.server, ['schedule', 'delete', '--schedule-id', scheduleId]);
  }
});

test('the CLI shows an admin backup: what it holds and how the vendor procedure uses it', async () => {
  const run = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      [
        '--import',
        'tsx',
        'client/cli.ts',
        'backups',
        'show',
        firstBackup.id,
        '--admin-cluster',
        'sim',
      ],
      {
        cwd: root,
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: scratch,
          ETCD_HA_RESTORE_CONFIG: configFile,
        },
      },
      (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, new RegExp(`admin backup ${firstBackup.id} of admin cluster sim`));
  assert.match(run.stdout, /admin-cluster_snapshot\.db/);
  assert.match(run.stdout, /pki\/ca\.key\s+0600/);
  assert.match(run.stdout, /does not restore an admin cluster/);
  assert.match(run.stdout, /etcdctl snapshot restore/);
});

test('the simulator saw no protocol violation and no control-loop error', () => {
  assert.deepEqual(sim.violations, []);
  assert.deepEqual(sim.loopErrors, []);
});
