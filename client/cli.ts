/**
 * The project's command-line tool: start and watch backups and restores, approve a
 * restore, manage a cluster's backup Schedule, and list the backups on this machine.
 *
 *   npm run cli -- backup start --cluster user-cluster-1 --wait
 *   npm run cli -- --help
 *
 * Connection: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_TASK_QUEUE (as the worker),
 * overridden by --address, --namespace, --task-queue. Inputs are validated with the
 * workflows' own schemas before anything connects: a bad one exits with code 2 and a
 * message naming the field. A workflow that fails exits with code 1.
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import {
  type ScheduleDescription,
  WorkflowFailedError,
  type WorkflowHandle,
} from '@temporalio/client';
import { ApplicationFailure, TemporalFailure } from '@temporalio/common';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import type { z } from 'zod';
import { FileSystemBackupRepository } from '../activities/backup-repository.js';
import { loadWorkerConfig } from '../worker/config.js';
import {
  type BackupRecord,
  type BackupUserClusterInput,
  backupUserClusterInputSchema,
  describeIssues,
  dnsLabel,
  type RestoreUserClusterInput,
  restoreUserClusterInputSchema,
} from '../workflows/schemas.js';
import {
  type BackupCadence,
  backupScheduleId,
  EtcdOpsClient,
  InvalidInputError,
} from './client.js';
import { loadTemporalConfig, type TemporalConfig } from './config.js';
import { followProgress } from './watch.js';

/** Exit codes: 0 done, 1 the operation or the connection failed, 2 bad input (nothing started). */
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

interface ConnectionOptions {
  address?: string;
  namespace?: string;
  taskQueue?: string;
}

interface TargetOptions {
  cluster: string;
  kubeconfig?: string;
  backupDir?: string;
  profileJson?: string;
}

interface BackupOptions extends TargetOptions {
  sourceMember?: number;
  keepLast?: number;
}

function integer(name: string) {
  return (value: string): number => {
    if (!/^-?\d+$/.test(value)) throw new InvalidArgumentError(`${name} must be an integer.`);
    return Number(value);
  };
}

/** `--profile-json '{"etcdEndpoint":...}'` or `--profile-json @profile.json`. */
function readProfile(value: string | undefined): unknown {
  if (value === undefined) return undefined;
  let text = value;
  if (value.startsWith('@')) {
    try {
      text = readFileSync(value.slice(1), 'utf8');
    } catch (error) {
      throw new InvalidInputError(`profile: cannot read ${value.slice(1)}: ${message(error)}`);
    }
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new InvalidInputError(`profile: not valid JSON: ${message(error)}`);
  }
}

/** The flag each input field comes from, so a message names both. */
const FLAG_OF: Record<string, string> = {
  userClusterName: '--cluster',
  adminKubeconfig: '--kubeconfig',
  backupDir: '--backup-dir',
  profile: '--profile-json',
  sourceMember: '--source-member',
  retention: '--keep-last',
  gkeOnPremVersion: '--version',
  backup: '--backup-id/--backup-path',
  members: '--members',
};

function validated<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) {
    const flags = [
      ...new Set(result.error.issues.map((i) => FLAG_OF[String(i.path[0])]).filter(Boolean)),
    ];
    const hint = flags.length > 0 ? ` (check ${flags.join(', ')})` : '';
    throw new InvalidInputError(`invalid input: ${describeIssues(result.error)}${hint}`);
  }
  return result.data;
}

function backupInput(o: BackupOptions): BackupUserClusterInput {
  const input = {
    userClusterName: o.cluster,
    ...(o.sourceMember !== undefined ? { sourceMember: o.sourceMember } : {}),
    ...(o.kubeconfig !== undefined ? { adminKubeconfig: o.kubeconfig } : {}),
    ...(o.backupDir !== undefined ? { backupDir: o.backupDir } : {}),
    ...(o.keepLast !== undefined ? { retention: { keepLast: o.keepLast } } : {}),
    ...(o.profileJson !== undefined ? { profile: readProfile(o.profileJson) } : {}),
  };
  validated(backupUserClusterInputSchema, input);
  return input as BackupUserClusterInput;
}

function cadenceOf(
  o: { every?: string; cron?: string },
  required: boolean,
): BackupCadence | undefined {
  if (o.every !== undefined && o.cron !== undefined)
    throw new InvalidInputError('cadence: give either --every or --cron, not both');
  if (o.every !== undefined) {
    if (!/^\d+(\.\d+)?(ms|s|m|h|d)$/.test(o.every))
      throw new InvalidInputError(
        `every: must be a duration such as 30m, 6h or 1d, got ${JSON.stringify(o.every)}`,
      );
    return { interval: o.every };
  }
  if (o.cron !== undefined) {
    if (o.cron.trim().split(/\s+/).length !== 5)
      throw new InvalidInputError(
        `cron: must have 5 fields (minute hour day month weekday), got ${JSON.stringify(o.cron)}`,
      );
    return { cron: [o.cron.trim()] };
  }
  if (required)
    throw new InvalidInputError('cadence: give --every (e.g. 6h) or --cron (e.g. "0 */6 * * *")');
  return undefined;
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The failure of a workflow, down to its root cause, in one line. */
function describeFailure(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error instanceof WorkflowFailedError ? error.cause : error;
  while (current instanceof Error) {
    const type = current instanceof ApplicationFailure && current.type ? ` [${current.type}]` : '';
    parts.push(`${current.message}${type}`);
    current =
      current instanceof TemporalFailure || current instanceof Error ? current.cause : undefined;
  }
  return parts.filter((p) => p !== '').join(': ') || message(error);
}

function printBackup(io: Io, b: BackupRecord): void {
  io.out(`backup ${b.id} of ${b.userClusterName} from ${b.sourcePod}, ${b.createdAt}`);
  io.out(`  file: ${b.snapshotPath}`);
  io.out(`  ${b.sizeBytes} bytes, sha256 ${b.sha256}, revision ${b.revision}, ${b.totalKeys} keys`);
}

function describeSchedule(d: ScheduleDescription) {
  const args = d.action.type === 'startWorkflow' ? (d.action.args ?? []) : [];
  return {
    scheduleId: d.scheduleId,
    paused: d.state.paused,
    note: d.state.note,
    intervals: (d.spec.intervals ?? []).map((i) => ({ everyMs: Number(i.every) })),
    calendars: d.spec.calendars ?? [],
    input: args[0],
    nextActionTimes: d.info.nextActionTimes.map((t) => t.toISOString()),
    recentActions: d.info.recentActions.map((a) => ({
      workflowId: a.action.workflow.workflowId,
      runId: a.action.workflow.firstExecutionRunId,
      scheduledAt: a.scheduledAt.toISOString(),
    })),
    runningActions: d.info.runningActions.map((a) => a.workflow.workflowId),
  };
}

function formatMs(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

/** Prints the `progress` query as it changes until the workflow closes; then its result. */
async function watch(io: Io, handle: WorkflowHandle, json: boolean): Promise<number> {
  await followProgress(handle, io.out);
  return printOutcome(io, handle, json);
}

async function printOutcome(io: Io, handle: WorkflowHandle, json: boolean): Promise<number> {
  try {
    const result: unknown = await handle.result();
    if (json) io.out(JSON.stringify({ workflowId: handle.workflowId, result }, null, 2));
    else if (isBackupResult(result)) {
      printBackup(io, result.backup);
      if (result.prunedBackupIds.length > 0)
        io.out(`  retention removed: ${result.prunedBackupIds.join(', ')}`);
    } else io.out(`result: ${JSON.stringify(result, null, 2)}`);
    return 0;
  } catch (error) {
    if (json)
      io.out(JSON.stringify({ workflowId: handle.workflowId, failure: describeFailure(error) }));
    io.err(`${handle.workflowId} failed: ${describeFailure(error)}`);
    return EXIT_FAILED;
  }
}

function isBackupResult(
  value: unknown,
): value is { backup: BackupRecord; prunedBackupIds: string[] } {
  return (
    typeof value === 'object' &&
    value !== null &&
    'backup' in value &&
    'prunedBackupIds' in value &&
    Array.isArray(value.prunedBackupIds)
  );
}

function addTargetOptions(command: Command): Command {
  return command
    .requiredOption(
      '--cluster <name>',
      'USER_CLUSTER_NAME: the user cluster (its namespace in the admin cluster)',
    )
    .option(
      '--kubeconfig <path>',
      "admin cluster kubeconfig on the worker (default: the worker's ADMIN_CLUSTER_KUBECONFIG)",
    )
    .option(
      '--backup-dir <path>',
      "backup repository on the worker (default: the worker's BACKUP_DIR)",
    )
    .option(
      '--profile-json <json|@file>',
      'cluster profile overrides as JSON, or @file to read them from a file',
    );
}

function addBackupOptions(command: Command): Command {
  return addTargetOptions(command)
    .option(
      '--source-member <n>',
      'etcd member to snapshot (default: kube-etcd-0, else the first ready member)',
      integer('--source-member'),
    )
    .option(
      '--keep-last <n>',
      'after the backup, keep only the newest N backups of the cluster',
      integer('--keep-last'),
    );
}

/** Builds the program; `run` executes it. Exported for tests of the help text. */
export function buildProgram(io: Io, setExitCode: (code: number) => void): Command {
  const program = new Command('etcd-ha-restore')
    .description(
      'Back up and restore the etcd of a GKE on-prem user cluster with durable Temporal workflows.\n' +
        'Exit codes: 0 done, 1 the workflow or the connection failed, 2 bad input (nothing started).',
    )
    .option(
      '--address <host:port>',
      'Temporal frontend (env TEMPORAL_ADDRESS, default localhost:7233)',
    )
    .option('--namespace <name>', 'Temporal namespace (env TEMPORAL_NAMESPACE, default default)')
    .option(
      '--task-queue <name>',
      "the worker's task queue (env TEMPORAL_TASK_QUEUE, default etcd-ha-restore)",
    )
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.out(s.replace(/\n$/, '')),
      writeErr: (s) => io.err(s.replace(/\n$/, '')),
    })
    .showHelpAfterError('(add --help for usage)');

  const connect = async (command: Command): Promise<EtcdOpsClient> => {
    const flags = command.optsWithGlobals<ConnectionOptions>();
    let config: TemporalConfig;
    try {
      config = loadTemporalConfig(process.env);
    } catch (error) {
      throw new InvalidInputError(message(error));
    }
    return EtcdOpsClient.connect({
      address: flags.address ?? config.address,
      namespace: flags.namespace ?? config.namespace,
      taskQueue: flags.taskQueue ?? config.taskQueue,
    });
  };
  /** Connects, runs `fn`, sets the exit code it returns, and closes the connection. */
  const withClient = async (
    command: Command,
    fn: (client: EtcdOpsClient) => Promise<number>,
  ): Promise<void> => {
    const client = await connect(command);
    try {
      setExitCode(await fn(client));
    } finally {
      await client.close();
    }
  };

  // backup start
  const backup = program
    .command('backup')
    .description('back up the etcd of a user cluster (SPEC B1–B4)');
  addBackupOptions(
    backup.command('start').description('start a backup workflow; prints its workflow id'),
  )
    .option('--wait', 'wait for the backup to finish and print it')
    .option('--json', 'print JSON instead of lines')
    .action(
      async (options: BackupOptions & { wait?: boolean; json?: boolean }, command: Command) => {
        const input = backupInput(options);
        await withClient(command, async (client) => {
          const handle = await client.startBackup(input);
          if (options.json && !options.wait)
            io.out(
              JSON.stringify({ workflowId: handle.workflowId, runId: handle.firstExecutionRunId }),
            );
          else if (!options.json)
            io.out(`started backup ${handle.workflowId} (run ${handle.firstExecutionRunId})`);
          return options.wait ? printOutcome(io, handle, options.json ?? false) : 0;
        });
      },
    );

  // restore start | approve
  const restore = program
    .command('restore')
    .description('restore the etcd of a user cluster from a backup (SPEC R1–R9, H1–H9)');
  addTargetOptions(
    restore.command('start').description('start a restore workflow; prints its workflow id'),
  )
    .requiredOption(
      '--version <gke-on-prem-version>',
      'GKE_ON_PREM_VERSION: tag of the etcd-util image, e.g. 1.5.0-gke.0',
    )
    .option('--backup-id <id>', 'a backup in the repository (see `backups list`)')
    .option('--backup-path <path>', 'a snapshot file on the worker, imported and verified first')
    .addOption(
      new Option(
        '--members <n>',
        'etcd members: 1 (non-HA) or 3 (HA); discovered if absent',
      ).argParser(integer('--members')),
    )
    .option('--require-approval', 'wait for `restore approve` before the first destructive step')
    .option(
      '--delete-old-data-immediately',
      "delete each member's old data right after it is replaced, as the runbook does (default: kept until the restored cluster is verified)",
    )
    .option('--wait', 'wait for the restore to finish and print its result')
    .option('--json', 'print JSON instead of lines')
    .action(
      async (
        options: TargetOptions & {
          version: string;
          backupId?: string;
          backupPath?: string;
          members?: number;
          requireApproval?: boolean;
          deleteOldDataImmediately?: boolean;
          wait?: boolean;
          json?: boolean;
        },
        command: Command,
      ) => {
        const input = {
          userClusterName: options.cluster,
          gkeOnPremVersion: options.version,
          backup: {
            ...(options.backupId !== undefined ? { backupId: options.backupId } : {}),
            ...(options.backupPath !== undefined ? { path: options.backupPath } : {}),
          },
          ...(options.members !== undefined ? { members: options.members } : {}),
          requireApproval: options.requireApproval ?? false,
          deleteOldDataImmediately: options.deleteOldDataImmediately ?? false,
          ...(options.kubeconfig !== undefined ? { adminKubeconfig: options.kubeconfig } : {}),
          ...(options.backupDir !== undefined ? { backupDir: options.backupDir } : {}),
          ...(options.profileJson !== undefined
            ? { profile: readProfile(options.profileJson) }
            : {}),
        };
        validated(restoreUserClusterInputSchema, input);
        await withClient(command, async (client) => {
          const handle = await client.startRestore(input as RestoreUserClusterInput);
          if (options.json && !options.wait)
            io.out(
              JSON.stringify({ workflowId: handle.workflowId, runId: handle.firstExecutionRunId }),
            );
          else if (!options.json) {
            io.out(`started restore ${handle.workflowId} (run ${handle.firstExecutionRunId})`);
            if (options.requireApproval)
              io.out(
                `it waits for approval: restore approve ${handle.workflowId} --by <your name>`,
              );
          }
          return options.wait ? watch(io, handle, options.json ?? false) : 0;
        });
      },
    );
  restore
    .command('approve')
    .description('approve a restore waiting at its approval gate')
    .argument('<workflow-id>', 'the restore workflow')
    .requiredOption('--by <name>', 'who approves (kept in the workflow history)')
    .action(async (workflowId: string, options: { by: string }, command: Command) => {
      if (options.by.trim() === '') throw new InvalidInputError('by: must not be empty');
      await withClient(command, async (client) => {
        io.out(await client.approveRestore(workflowId, options.by));
        return 0;
      });
    });

  // watch
  program
    .command('watch')
    .description(
      'print the progress of a backup or restore as it changes, then its result or failure',
    )
    .argument('<workflow-id>', 'the workflow to watch')
    .option('--json', 'print the result as JSON')
    .action(async (workflowId: string, options: { json?: boolean }, command: Command) => {
      await withClient(command, (client) =>
        watch(io, client.client.workflow.getHandle(workflowId), options.json ?? false),
      );
    });

  // schedule create | update | pause | unpause | delete | describe
  const schedule = program
    .command('schedule')
    .description("manage a user cluster's backup Schedule (one per cluster)");
  addBackupOptions(
    schedule.command('create').description('create the backup Schedule of a cluster'),
  )
    .option('--every <duration>', 'run every interval, e.g. 6h, 30m, 1d')
    .option('--cron <expression>', 'run on a cron expression (UTC), e.g. "0 */6 * * *"')
    .option('--paused', 'create it paused')
    .option('--note <text>', 'a note shown with the Schedule')
    .option('--json', 'print JSON instead of lines')
    .action(
      async (
        options: BackupOptions & {
          every?: string;
          cron?: string;
          paused?: boolean;
          note?: string;
          json?: boolean;
        },
        command: Command,
      ) => {
        const cadence = cadenceOf(options, true) as BackupCadence;
        const input = backupInput(options);
        await withClient(command, async (client) => {
          const handle = await client.createBackupSchedule({
            input,
            cadence,
            paused: options.paused ?? false,
            ...(options.note !== undefined ? { note: options.note } : {}),
          });
          if (options.json) io.out(JSON.stringify({ scheduleId: handle.scheduleId }));
          else io.out(`created schedule ${handle.scheduleId}${options.paused ? ' (paused)' : ''}`);
          return 0;
        });
      },
    );
  schedule
    .command('update')
    .description(
      'change the cadence and/or the backup options of a Schedule (options not given are kept)',
    )
    .requiredOption('--cluster <name>', 'USER_CLUSTER_NAME')
    .option('--every <duration>', 'run every interval, e.g. 6h')
    .option('--cron <expression>', 'run on a cron expression (UTC)')
    .option('--kubeconfig <path>', 'admin cluster kubeconfig on the worker')
    .option('--backup-dir <path>', 'backup repository on the worker')
    .option('--profile-json <json|@file>', 'cluster profile overrides as JSON, or @file')
    .option('--source-member <n>', 'etcd member to snapshot', integer('--source-member'))
    .option(
      '--keep-last <n>',
      'keep only the newest N backups of the cluster',
      integer('--keep-last'),
    )
    .action(
      async (options: BackupOptions & { every?: string; cron?: string }, command: Command) => {
        validated(dnsLabel, options.cluster);
        const cadence = cadenceOf(options, false);
        const changesInput = [
          options.kubeconfig,
          options.backupDir,
          options.profileJson,
          options.sourceMember,
          options.keepLast,
        ].some((v) => v !== undefined);
        if (!cadence && !changesInput)
          throw new InvalidInputError('nothing to update: give --every, --cron or a backup option');
        if (changesInput) readProfile(options.profileJson);
        await withClient(command, async (client) => {
          let input: BackupUserClusterInput | undefined;
          if (changesInput) {
            const current = await client.backupSchedule(options.cluster).describe();
            const previous = (
              current.action.type === 'startWorkflow' ? current.action.args?.[0] : {}
            ) as Record<string, unknown>;
            input = validatedMerge(previous, options);
          }
          await client.updateBackupSchedule(options.cluster, {
            ...(cadence ? { cadence } : {}),
            ...(input ? { input } : {}),
          });
          io.out(`updated schedule ${backupScheduleId(options.cluster)}`);
          return 0;
        });
      },
    );
  for (const [name, description] of [
    ['pause', 'pause the backup Schedule of a cluster'],
    ['unpause', 'resume the backup Schedule of a cluster'],
  ] as const) {
    schedule
      .command(name)
      .description(description)
      .requiredOption('--cluster <name>', 'USER_CLUSTER_NAME')
      .option('--note <text>', 'why (shown with the Schedule)')
      .action(async (options: { cluster: string; note?: string }, command: Command) => {
        validated(dnsLabel, options.cluster);
        await withClient(command, async (client) => {
          if (name === 'pause') await client.pauseBackupSchedule(options.cluster, options.note);
          else await client.unpauseBackupSchedule(options.cluster, options.note);
          io.out(`${name}d schedule ${backupScheduleId(options.cluster)}`);
          return 0;
        });
      });
  }
  schedule
    .command('delete')
    .description('delete the backup Schedule of a cluster (backups already taken stay)')
    .requiredOption('--cluster <name>', 'USER_CLUSTER_NAME')
    .action(async (options: { cluster: string }, command: Command) => {
      validated(dnsLabel, options.cluster);
      await withClient(command, async (client) => {
        await client.deleteBackupSchedule(options.cluster);
        io.out(`deleted schedule ${backupScheduleId(options.cluster)}`);
        return 0;
      });
    });
  schedule
    .command('describe')
    .description(
      'show the backup Schedule of a cluster: cadence, state, input, recent and next runs',
    )
    .requiredOption('--cluster <name>', 'USER_CLUSTER_NAME')
    .option('--json', 'print JSON instead of lines')
    .action(async (options: { cluster: string; json?: boolean }, command: Command) => {
      validated(dnsLabel, options.cluster);
      await withClient(command, async (client) => {
        const d = describeSchedule(await client.backupSchedule(options.cluster).describe());
        if (options.json) {
          io.out(JSON.stringify(d, null, 2));
          return 0;
        }
        io.out(
          `schedule ${d.scheduleId}: ${d.paused ? 'paused' : 'active'}${d.note ? ` (${d.note})` : ''}`,
        );
        for (const i of d.intervals) io.out(`  every ${formatMs(i.everyMs)}`);
        for (const c of d.calendars) io.out(`  calendar ${JSON.stringify(c)}`);
        io.out(`  input: ${JSON.stringify(d.input)}`);
        for (const a of d.recentActions) io.out(`  ran ${a.scheduledAt}: ${a.workflowId}`);
        for (const w of d.runningActions) io.out(`  running: ${w}`);
        for (const t of d.nextActionTimes.slice(0, 3)) io.out(`  next: ${t}`);
        return 0;
      });
    });

  // backups list
  const backups = program
    .command('backups')
    .description('the backups in a repository on this machine');
  backups
    .command('list')
    .description(
      'list the backups of a cluster, newest first (reads the repository directory directly)',
    )
    .requiredOption('--cluster <name>', 'USER_CLUSTER_NAME')
    .option('--backup-dir <path>', 'repository directory (env BACKUP_DIR, as the worker)')
    .option('--json', 'print JSON instead of lines')
    .action(async (options: { cluster: string; backupDir?: string; json?: boolean }) => {
      validated(dnsLabel, options.cluster);
      let root = options.backupDir;
      if (root === undefined) {
        try {
          root = loadWorkerConfig(process.env).backupDir;
        } catch (error) {
          throw new InvalidInputError(message(error));
        }
      } else if (!root.startsWith('/'))
        throw new InvalidInputError('backup-dir: must be an absolute path');
      const list = await new FileSystemBackupRepository({ root }).list(options.cluster);
      if (options.json) io.out(JSON.stringify(list, null, 2));
      else if (list.length === 0) io.out(`no backups of ${options.cluster} in ${root}`);
      else for (const b of list) printBackup(io, b);
      setExitCode(0);
    });

  return program;
}

function validatedMerge(
  previous: Record<string, unknown>,
  o: BackupOptions,
): BackupUserClusterInput {
  const input: Record<string, unknown> = { ...previous, userClusterName: o.cluster };
  if (o.kubeconfig !== undefined) input.adminKubeconfig = o.kubeconfig;
  if (o.backupDir !== undefined) input.backupDir = o.backupDir;
  if (o.sourceMember !== undefined) input.sourceMember = o.sourceMember;
  if (o.keepLast !== undefined) {
    const retention =
      typeof previous.retention === 'object' && previous.retention !== null
        ? previous.retention
        : {};
    input.retention = { ...retention, keepLast: o.keepLast };
  }
  if (o.profileJson !== undefined) input.profile = readProfile(o.profileJson);
  validated(backupUserClusterInputSchema, input);
  return input as BackupUserClusterInput;
}

/** Runs the CLI; resolves to the exit code. */
export async function run(argv: string[], io: Io): Promise<number> {
  let exitCode = 0;
  const program = buildProgram(io, (code) => {
    exitCode = code;
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end here with 0; usage errors were printed by commander.
      return error.exitCode === 0 ? 0 : EXIT_USAGE;
    }
    if (error instanceof InvalidInputError) {
      io.err(`error: ${error.message}`);
      return EXIT_USAGE;
    }
    io.err(`error: ${describeFailure(error)}`);
    return EXIT_FAILED;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const code = await run(process.argv.slice(2), {
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
  });
  process.exitCode = code;
}
