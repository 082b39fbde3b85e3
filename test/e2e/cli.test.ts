/**
 * The command-line tool (`client/cli.ts`), run as a subprocess exactly as an operator runs
 * it, against a real Temporal dev server and worker and the simulated admin cluster:
 * help texts, bad input (exit 2, the field named, nothing started), a backup with --wait,
 * listing backups, a Schedule's whole life.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  type BackupRecord,
  type BackupUserClusterResult,
  backupScheduleId,
} from '../../workflows/contract/index.js';
import { snapshotFileIn, stored } from '../harness/backups.js';
import {
  simWorkerConfig,
  startTemporalTestContext,
  type TemporalTestContext,
} from '../harness/temporal.js';
import { type SimCluster, startSimCluster } from '../sim/index.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const cluster = 'cli-cluster';

let sim: SimCluster;
let ctx: TemporalTestContext;
let scratch: string;
let backupDir: string;
let configFile: string;

before(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'cli-test-'));
  backupDir = join(scratch, 'backups');
  sim = await startSimCluster({ members: 1, userClusterName: cluster, adminEtcd: false });
  ctx = await startTemporalTestContext('cli', { config: simWorkerConfig(sim, backupDir) });
  // The worker's configuration as a file: `backups list` reads it as the worker does.
  configFile = join(scratch, 'worker.yaml');
  writeFileSync(configFile, JSON.stringify(simWorkerConfig(sim, backupDir)));
});

after(async () => {
  await ctx?.teardown();
  await sim?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** `node --import tsx client/cli.ts ...args`, connected to the test server by environment. */
function cli(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'client/cli.ts', ...args],
      {
        cwd: root,
        timeout: 180_000,
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: process.env.HOME ?? scratch,
          TEMPORAL_ADDRESS: ctx.server.address,
          TEMPORAL_NAMESPACE: ctx.server.namespace,
          TEMPORAL_TASK_QUEUE: ctx.taskQueue,
          ...env,
        },
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

async function workflowIds(): Promise<string[]> {
  const ids: string[] = [];
  for await (const w of ctx.env.client.workflow.list()) ids.push(w.workflowId);
  return ids;
}

describe('help', () => {
  test('the top level lists every command and the connection flags', async () => {
    const run = await cli(['--help']);
    assert.equal(run.code, 0, run.stderr);
    for (const word of ['backup', 'restore', 'watch', 'schedule', 'backups'])
      assert.match(run.stdout, new RegExp(`^  ${word}\\b`, 'm'), word);
    for (const flag of ['--address', '--namespace', '--task-queue'])
      assert.ok(run.stdout.includes(flag), flag);
    assert.match(run.stdout, /2 bad input/);
  });

  const commands: Array<[string[], string[]]> = [
    [
      ['backup', 'start'],
      [
        '--cluster',
        '--source-member',
        '--admin-cluster',
        '--repository',
        '--keep-last',
        '--wait',
        '--json',
      ],
    ],
    [
      ['restore', 'start'],
      [
        '--cluster',
        '--version',
        '--backup-id',
        '--import-file',
        '--members',
        '--require-approval',
        '--approval-timeout',
        '--delete-old-data-immediately',
        '--admin-cluster',
        '--repository',
        '--wait',
      ],
    ],
    [
      ['restore', 'approve'],
      ['<workflow-id>', '--by'],
    ],
    [
      ['restore', 'retry'],
      ['<workflow-id>', '--by', 'needs-operator'],
    ],
    [
      ['restore', 'hand-over'],
      ['<workflow-id>', '--by', '--comment', 'needs-operator'],
    ],
    [['watch'], ['<workflow-id>']],
    [
      ['schedule', 'create'],
      ['--cluster', '--every', '--cron', '--keep-last', '--paused'],
    ],
    [
      ['schedule', 'update'],
      ['--cluster', '--every', '--cron', '--keep-last'],
    ],
    [
      ['schedule', 'describe'],
      ['--cluster', '--json'],
    ],
    [
      ['backups', 'list'],
      ['--cluster', '--admin-cluster', '--repository', '--json', 'ETCD_HA_RESTORE_CONFIG'],
    ],
    [
      ['backups', 'show'],
      ['<backup-id>', '--cluster', '--admin-cluster', '--repository', '--json', 'vendor'],
    ],
    [
      ['backup', 'admin'],
      ['--admin-cluster', '--repository', '--keep-last', '--wait', '--json', 'SPEC A2, A3'],
    ],
    [
      ['backup', 'all'],
      ['--admin-cluster', '--cluster', '--max-concurrent', '--keep-last', '--wait', 'SPEC A'],
    ],
    [
      ['schedule', 'all', 'create'],
      ['--admin-cluster', '--cluster', '--every', '--cron', '--max-concurrent', '--paused'],
    ],
    [
      ['schedule', 'all', 'describe'],
      ['--admin-cluster', '--json'],
    ],
    [
      ['schedule', 'all', 'pause'],
      ['--admin-cluster', '--note'],
    ],
  ];
  test('each command documents its arguments and options', async () => {
    for (const [command, words] of commands) {
      const run = await cli([...command, '--help']);
      assert.equal(run.code, 0, `${command.join(' ')}: ${run.stderr}`);
      assert.match(run.stdout, new RegExp(`^Usage: etcd-ha-restore ${command.join(' ')} `));
      for (const word of words)
        assert.ok(run.stdout.includes(word), `${command.join(' ')} ${word}`);
    }
  });
});

describe('bad input', () => {
  const cases: Array<[string, string[], RegExp]> = [
    [
      'a cluster name that is not a DNS label',
      ['--cluster', 'User_1'],
      /userClusterName: must be a DNS label/,
    ],
    ['a member out of range', ['--cluster', cluster, '--source-member', '7'], /sourceMember: /],
    ['keep-last that is no number', ['--cluster', cluster, '--keep-last', 'x'], /--keep-last/],
    ['keep-last 0', ['--cluster', cluster, '--keep-last', '0'], /retention\.keepLast: /],
    [
      'an admin cluster name that is not a name',
      ['--cluster', cluster, '--admin-cluster', '/root/.kube/config'],
      /adminCluster: must be a DNS label.*\(check --admin-cluster\)/,
    ],
    ['a path as the repository', ['--cluster', cluster, '--repository', '/'], /repository: /],
    [
      'a flag that names a path',
      ['--cluster', cluster, '--backup-dir', '/tmp'],
      /unknown option '--backup-dir'/,
    ],
    ['no cluster', [], /--cluster/],
  ];
  for (const [name, args, expected] of cases) {
    test(`backup start with ${name}: exit 2, the field named`, async () => {
      const run = await cli(['backup', 'start', ...args]);
      assert.equal(run.code, 2, `${run.stdout}\n${run.stderr}`);
      assert.match(run.stderr, expected);
      assert.equal(run.stdout, '');
    });
  }

  test('restore start and schedule create refuse bad input the same way', async () => {
    const restore = await cli([
      'restore',
      'start',
      '--cluster',
      cluster,
      '--version',
      '1.5.0-gke.0',
    ]);
    assert.equal(restore.code, 2);
    assert.match(restore.stderr, /backup: give exactly one of backupId or importFile/);
    const version = await cli([
      'restore',
      'start',
      '--cluster',
      cluster,
      '--version',
      'v 1',
      '--backup-id',
      'x',
    ]);
    assert.equal(version.code, 2);
    assert.match(version.stderr, /gkeOnPremVersion: must be a container image tag/);
    const noCadence = await cli(['schedule', 'create', '--cluster', cluster]);
    assert.equal(noCadence.code, 2);
    assert.match(noCadence.stderr, /cadence: give --every/);
    const badEvery = await cli(['schedule', 'create', '--cluster', cluster, '--every', 'often']);
    assert.equal(badEvery.code, 2);
    assert.match(badEvery.stderr, /every: must be a duration/);
  });

  test('nothing was started by any of them', async () => {
    assert.deepEqual(await workflowIds(), []);
    const schedules: string[] = [];
    for await (const s of ctx.env.client.schedule.list()) schedules.push(s.scheduleId);
    assert.deepEqual(schedules, []);
  });
});

describe('against the simulated cluster', () => {
  let backup: BackupRecord;
  let workflowId: string;

  test('backup start --wait prints the stored backup; --json gives the result', async () => {
    const run = await cli(['backup', 'start', '--cluster', cluster, '--wait']);
    assert.equal(run.code, 0, run.stderr);
    const started = /^started backup (\S+) \(run \S+\)$/m.exec(run.stdout);
    assert.ok(started, run.stdout);
    assert.match(run.stdout, new RegExp(`^backup \\S+ of ${cluster} from kube-etcd-0, `, 'm'));
    assert.match(run.stdout, /sha256 [0-9a-f]{64}, revision \d+, \d+ keys/);

    const json = await cli(['backup', 'start', '--cluster', cluster, '--wait', '--json']);
    assert.equal(json.code, 0, json.stderr);
    const parsed = JSON.parse(json.stdout) as {
      workflowId: string;
      result: BackupUserClusterResult;
    };
    backup = stored(parsed.result);
    workflowId = parsed.workflowId;
    assert.equal(backup.userClusterName, cluster);
    assert.ok(existsSync(snapshotFileIn(backupDir, backup)));
  });

  test("backups list reads the repository the worker's configuration names, or BACKUP_DIR", async () => {
    const byFile = await cli(['backups', 'list', '--cluster', cluster], {
      ETCD_HA_RESTORE_CONFIG: configFile,
    });
    assert.equal(byFile.code, 0, byFile.stderr);
    assert.match(byFile.stdout, new RegExp(`^backup ${backup.id} of ${cluster}`, 'm'));
    assert.ok(byFile.stdout.includes(backup.sha256));
    const named = await cli(['backups', 'list', '--cluster', cluster, '--repository', 'local'], {
      ETCD_HA_RESTORE_CONFIG: configFile,
    });
    assert.equal(named.code, 0, named.stderr);
    const unknown = await cli(['backups', 'list', '--cluster', cluster, '--repository', 'nfs'], {
      ETCD_HA_RESTORE_CONFIG: configFile,
    });
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /no repository named "nfs" \(it serves: local\)/);

    const byEnv = await cli(['backups', 'list', '--cluster', cluster, '--json'], {
      BACKUP_DIR: backupDir,
    });
    assert.equal(byEnv.code, 0, byEnv.stderr);
    const list = JSON.parse(byEnv.stdout) as BackupRecord[];
    assert.equal(list.length, 2);
    assert.equal(list[0]?.id, backup.id, 'newest first');

    const other = await cli(['backups', 'list', '--cluster', 'other'], { BACKUP_DIR: backupDir });
    assert.equal(other.code, 0);
    assert.match(other.stdout, /no backups of other/);
  });

  test('watch prints the steps and the result of a workflow', async () => {
    const run = await cli(['watch', workflowId]);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /^step: backup \S+ stored and verified$/m);
    assert.match(run.stdout, new RegExp(`^backup ${backup.id} of ${cluster}`, 'm'));
    const missing = await cli(['watch', 'no-such-workflow']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /not found/i);
  });

  test('schedule create, describe, update, pause, unpause, delete', async () => {
    const created = await cli([
      'schedule',
      'create',
      '--cluster',
      cluster,
      '--every',
      '6h',
      '--keep-last',
      '3',
      '--repository',
      'local',
      '--paused',
      '--note',
      'made by the test',
    ]);
    assert.equal(created.code, 0, created.stderr);
    assert.match(
      created.stdout,
      new RegExp(`created schedule ${backupScheduleId(cluster)} \\(paused\\)`),
    );

    const describeJson = async () => {
      const run = await cli(['schedule', 'describe', '--cluster', cluster, '--json']);
      assert.equal(run.code, 0, run.stderr);
      return JSON.parse(run.stdout) as {
        paused: boolean;
        note?: string;
        intervals: Array<{ everyMs: number }>;
        input: { retention?: { keepLast: number }; repository?: string };
      };
    };
    let d = await describeJson();
    assert.equal(d.paused, true);
    assert.equal(d.note, 'made by the test');
    assert.deepEqual(d.intervals, [{ everyMs: 6 * 3600_000 }]);
    assert.deepEqual(d.input.retention, { keepLast: 3 });
    assert.equal(d.input.repository, 'local');

    const lines = await cli(['schedule', 'describe', '--cluster', cluster]);
    assert.equal(lines.code, 0, lines.stderr);
    assert.match(lines.stdout, /: paused \(made by the test\)$/m);
    assert.match(lines.stdout, /^ {2}every 6h$/m);

    const updated = await cli([
      'schedule',
      'update',
      '--cluster',
      cluster,
      '--every',
      '12h',
      '--keep-last',
      '5',
    ]);
    assert.equal(updated.code, 0, updated.stderr);
    d = await describeJson();
    assert.deepEqual(d.intervals, [{ everyMs: 12 * 3600_000 }]);
    assert.deepEqual(d.input.retention, { keepLast: 5 });
    assert.equal(d.input.repository, 'local', 'options not given are kept');

    const badUpdate = await cli(['schedule', 'update', '--cluster', cluster, '--keep-last', '0']);
    assert.equal(badUpdate.code, 2);
    assert.match(badUpdate.stderr, /retention\.keepLast/);

    assert.equal((await cli(['schedule', 'unpause', '--cluster', cluster])).code, 0);
    assert.equal((await describeJson()).paused, false);
    assert.equal(
      (await cli(['schedule', 'pause', '--cluster', cluster, '--note', 'hold'])).code,
      0,
    );
    d = await describeJson();
    assert.equal(d.paused, true);
    assert.equal(d.note, 'hold');

    const deleted = await cli(['schedule', 'delete', '--cluster', cluster]);
    assert.equal(deleted.code, 0, deleted.stderr);
    const gone = await cli(['schedule', 'describe', '--cluster', cluster]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /not found/i);
  });

  test('the simulator saw no protocol violation and no control-loop error', () => {
    assert.deepEqual(sim.violations, []);
    assert.deepEqual(sim.loopErrors, []);
  });
});
