/** `restore start`, `restore approve`, and `watch`. */
import { type Command, Option } from 'commander';
import { InvalidInputError } from '../client.js';
import { addTargetOptions } from './backup-commands.js';
import { integer, type RestoreOptions, restoreInput } from './inputs.js';
import { type CommandContext, printStarted, watch } from './io.js';

export function addRestoreCommands(program: Command, cli: CommandContext): void {
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
    .option(
      '--import-file <name>',
      "a snapshot file in the worker's import inbox, by name: imported and verified first",
    )
    .addOption(
      new Option(
        '--members <n>',
        'etcd members: 1 (non-HA) or 3 (HA); discovered if absent',
      ).argParser(integer('--members')),
    )
    .option('--require-approval', 'wait for `restore approve` before the first destructive step')
    .option(
      '--approval-timeout <duration>',
      'how long the approval gate waits, e.g. 30m, 4h (default 4h); then the restore ends, nothing changed',
    )
    .option(
      '--delete-old-data-immediately',
      "delete each member's old data right after it is replaced, as the runbook does (default: kept until the restored cluster is verified)",
    )
    .option('--wait', 'wait for the restore to finish and print its result')
    .option('--json', 'print JSON instead of lines')
    .action(
      async (options: RestoreOptions & { wait?: boolean; json?: boolean }, command: Command) => {
        const input = restoreInput(options);
        const json = options.json ?? false;
        await cli.withClient(command, async (client) => {
          const handle = await client.startRestore(input);
          if (!(json && options.wait)) printStarted(cli.io, 'restore', handle, json);
          if (!json && options.requireApproval)
            cli.io.out(
              `it waits for approval: restore approve ${handle.workflowId} --by <your name>`,
            );
          return options.wait ? watch(cli.io, handle, json) : 0;
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
      await cli.withClient(command, async (client) => {
        cli.io.out(await client.approveRestore(workflowId, options.by));
        return 0;
      });
    });

  for (const [name, action, description] of [
    [
      'retry',
      'retry',
      'run again the step a restore waiting for an operator (outcome needs-operator) is stuck on, once you fixed its problem',
    ],
    [
      'hand-over',
      'hand-over',
      'end a restore waiting for an operator (outcome needs-operator); its result lists what is not put back, for you to do by hand',
    ],
  ] as const) {
    restore
      .command(name)
      .description(description)
      .argument('<workflow-id>', 'the restore workflow')
      .requiredOption('--by <name>', 'who decides (kept in the workflow history)')
      .option('--comment <text>', 'why')
      .action(
        async (workflowId: string, options: { by: string; comment?: string }, command: Command) => {
          if (options.by.trim() === '') throw new InvalidInputError('by: must not be empty');
          await cli.withClient(command, async (client) => {
            cli.io.out(
              await client.resolveRestoreProblem(workflowId, {
                action,
                by: options.by,
                ...(options.comment !== undefined ? { comment: options.comment } : {}),
              }),
            );
            return 0;
          });
        },
      );
  }

  program
    .command('watch')
    .description(
      'print the progress of a backup or restore as it changes, then its result or failure',
    )
    .argument('<workflow-id>', 'the workflow to watch')
    .option('--json', 'print the progress and the result as JSON lines (for scripts)')
    .action(async (workflowId: string, options: { json?: boolean }, command: Command) => {
      await cli.withClient(command, (client) =>
        watch(cli.io, client.client.workflow.getHandle(workflowId), options.json ?? false),
      );
    });
}
