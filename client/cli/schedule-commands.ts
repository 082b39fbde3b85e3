/**
 * `schedule create|update|pause|unpause|delete|describe`: one backup Schedule per user
 * cluster; `schedule all ...`: one backupAll Schedule per admin cluster.
 */
import type { ScheduleDescription } from '@temporalio/client';
import type { Command } from 'commander';
import { backupAllScheduleId, backupScheduleId, dnsLabel } from '../../workflows/contract/index.js';
import { type BackupCadence, InvalidInputError } from '../client.js';
import { addBackupAllOptions, addBackupOptions } from './backup-commands.js';
import {
  type BackupAllOptions,
  type BackupOptions,
  backupAllInput,
  backupInput,
  cadenceOf,
  changesBackupInput,
  validated,
} from './inputs.js';
import type { CommandContext } from './io.js';

export function addScheduleCommands(program: Command, cli: CommandContext): void {
  const schedule = program
    .command('schedule')
    .description("manage a user cluster's backup Schedule (one per cluster)");
  const cadenceOptions = (command: Command) =>
    command
      .option('--every <duration>', 'run every interval, e.g. 6h, 30m, 1d')
      .option('--cron <expression>', 'run on a cron expression (UTC), e.g. "0 */6 * * *"');

  cadenceOptions(
    addBackupOptions(
      schedule.command('create').description('create the backup Schedule of a cluster'),
    ),
  )
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
        await cli.withClient(command, async (client) => {
          const handle = await client.createBackupSchedule({
            input,
            cadence,
            paused: options.paused ?? false,
            ...(options.note !== undefined ? { note: options.note } : {}),
          });
          if (options.json) cli.io.out(JSON.stringify({ scheduleId: handle.scheduleId }));
          else
            cli.io.out(`created schedule ${handle.scheduleId}${options.paused ? ' (paused)' : ''}`);
          return 0;
        });
      },
    );

  cadenceOptions(
    addBackupOptions(
      schedule
        .command('update')
        .description(
          'change the cadence and/or the backup options of a Schedule (options not given are kept)',
        ),
    ),
  ).action(async (options: BackupOptions & { every?: string; cron?: string }, command: Command) => {
    validated(dnsLabel, options.cluster);
    const cadence = cadenceOf(options, false);
    const changesInput = changesBackupInput(options);
    if (!cadence && !changesInput)
      throw new InvalidInputError('nothing to update: give --every, --cron or a backup option');
    await cli.withClient(command, async (client) => {
      let input: ReturnType<typeof backupInput> | undefined;
      if (changesInput) {
        const current = await client.backupSchedule(options.cluster).describe();
        const previous = (
          current.action.type === 'startWorkflow' ? current.action.args?.[0] : {}
        ) as Record<string, unknown>;
        input = backupInput(options, previous);
      }
      await client.updateBackupSchedule(options.cluster, {
        ...(cadence ? { cadence } : {}),
        ...(input ? { input } : {}),
      });
      cli.io.out(`updated schedule ${backupScheduleId(options.cluster)}`);
      return 0;
    });
  });

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
        await cli.withClient(command, async (client) => {
          if (name === 'pause') await client.pauseBackupSchedule(options.cluster, options.note);
          else await client.unpauseBackupSchedule(options.cluster, options.note);
          cli.io.out(`${name}d schedule ${backupScheduleId(options.cluster)}`);
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
      await cli.withClient(command, async (client) => {
        await client.deleteBackupSchedule(options.cluster);
        cli.io.out(`deleted schedule ${backupScheduleId(options.cluster)}`);
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
      await cli.withClient(command, async (client) =>
        printSchedule(cli, await client.backupSchedule(options.cluster).describe(), options.json),
      );
    });

  addBackupAllSchedule(schedule, cli, cadenceOptions);
}

/** `schedule all create|pause|unpause|delete|describe`: backupAll on a Schedule, one per admin cluster. */
function addBackupAllSchedule(
  schedule: Command,
  cli: CommandContext,
  cadenceOptions: (command: Command) => Command,
): void {
  const all = schedule
    .command('all')
    .description(
      "manage the Schedule of backupAll (the runbook's automatic backup: the admin cluster and its user clusters), one per admin cluster",
    );
  const adminOption = (command: Command) =>
    command.option(
      '--admin-cluster <name>',
      "the admin cluster, as the worker's configuration names it (default: the worker's only one)",
    );
  const admin = (o: { adminCluster?: string }) =>
    o.adminCluster === undefined ? undefined : validated(dnsLabel, o.adminCluster);

  cadenceOptions(
    addBackupAllOptions(all.command('create').description('create the backupAll Schedule')),
  )
    .option('--paused', 'create it paused')
    .option('--note <text>', 'a note shown with the Schedule')
    .action(
      async (
        options: BackupAllOptions & {
          every?: string;
          cron?: string;
          paused?: boolean;
          note?: string;
        },
        command: Command,
      ) => {
        const cadence = cadenceOf(options, true) as BackupCadence;
        const input = backupAllInput(options);
        await cli.withClient(command, async (client) => {
          const handle = await client.createBackupAllSchedule({
            input,
            cadence,
            paused: options.paused ?? false,
            ...(options.note !== undefined ? { note: options.note } : {}),
          });
          cli.io.out(`created schedule ${handle.scheduleId}${options.paused ? ' (paused)' : ''}`);
          return 0;
        });
      },
    );
  for (const [name, description] of [
    ['pause', 'pause the backupAll Schedule'],
    ['unpause', 'resume the backupAll Schedule'],
    ['delete', 'delete the backupAll Schedule (backups already taken stay)'],
  ] as const) {
    adminOption(all.command(name).description(description))
      .option('--note <text>', 'why (shown with the Schedule)')
      .action(async (options: { adminCluster?: string; note?: string }, command: Command) => {
        await cli.withClient(command, async (client) => {
          const h = client.backupAllSchedule(admin(options));
          if (name === 'pause') await h.pause(options.note);
          else if (name === 'unpause') await h.unpause(options.note);
          else await h.delete();
          cli.io.out(`${name}d schedule ${backupAllScheduleId(admin(options))}`);
          return 0;
        });
      });
  }
  adminOption(
    all.command('describe').description('show the backupAll Schedule: cadence, state, input, runs'),
  )
    .option('--json', 'print JSON instead of lines')
    .action(async (options: { adminCluster?: string; json?: boolean }, command: Command) => {
      const id = admin(options);
      await cli.withClient(command, async (client) =>
        printSchedule(cli, await client.backupAllSchedule(id).describe(), options.json),
      );
    });
}

function printSchedule(
  cli: CommandContext,
  description: ScheduleDescription,
  json?: boolean,
): number {
  const d = describeSchedule(description);
  if (json) {
    cli.io.out(JSON.stringify(d, null, 2));
    return 0;
  }
  const out = cli.io.out;
  out(`schedule ${d.scheduleId}: ${d.paused ? 'paused' : 'active'}${d.note ? ` (${d.note})` : ''}`);
  for (const i of d.intervals) out(`  every ${formatMs(i.everyMs)}`);
  for (const c of d.calendars) out(`  calendar ${JSON.stringify(c)}`);
  out(`  input: ${JSON.stringify(d.input)}`);
  for (const a of d.recentActions) out(`  ran ${a.scheduledAt}: ${a.workflowId}`);
  for (const w of d.runningActions) out(`  running: ${w}`);
  for (const t of d.nextActionTimes.slice(0, 3)) out(`  next: ${t}`);
  return 0;
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
