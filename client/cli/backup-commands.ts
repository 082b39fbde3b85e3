/** `backup start`, and `backups list` (the store's own listing, as the worker reads it). */
import type { Command } from 'commander';
import { workerTargets } from '../../activities/config/targets.js';
import { loadWorkerConfig } from '../../activities/config/worker-config.js';
import { fileSystemStores } from '../../activities/repository/fs-store.js';
import type { BackupStore } from '../../activities/repository/store.js';
import { dnsLabel } from '../../workflows/contract/index.js';
import { InvalidInputError } from '../client.js';
import { type BackupOptions, backupInput, integer, validated } from './inputs.js';
import { type CommandContext, message, printBackup, printOutcome, printStarted } from './io.js';

/** `--cluster`, `--admin-cluster`, `--repository`: every operation's target, by name. */
export function addTargetOptions(command: Command): Command {
  return command
    .requiredOption(
      '--cluster <name>',
      'USER_CLUSTER_NAME: the user cluster (its namespace in the admin cluster)',
    )
    .option(
      '--admin-cluster <name>',
      "the admin cluster, as the worker's configuration names it (default: the worker's only one)",
    )
    .option(
      '--repository <name>',
      "the backup repository, as the worker's configuration names it (default: its only one)",
    );
}

/** The target flags plus `--source-member` and `--keep-last`: a backup's flags. */
export function addBackupOptions(command: Command): Command {
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

export function addBackupCommands(program: Command, cli: CommandContext): void {
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
        const json = options.json ?? false;
        await cli.withClient(command, async (client) => {
          const handle = await client.startBackup(input);
          if (!(json && options.wait)) printStarted(cli.io, 'backup', handle, json);
          return options.wait ? printOutcome(cli.io, handle, json) : 0;
        });
      },
    );

  const backups = program
    .command('backups')
    .description('the backups in a repository on this machine');
  backups
    .command('list')
    .description(
      "list the backups of a cluster, newest first, as the worker reads them (run it where the worker runs: it reads the worker's configuration, ETCD_HA_RESTORE_CONFIG or BACKUP_DIR)",
    )
    .requiredOption('--cluster <name>', 'USER_CLUSTER_NAME')
    .option('--repository <name>', "the repository, as the worker's configuration names it")
    .option('--json', 'print JSON instead of lines')
    .action(async (options: { cluster: string; repository?: string; json?: boolean }) => {
      validated(dnsLabel, options.cluster);
      let store: BackupStore;
      try {
        const targets = workerTargets(loadWorkerConfig(process.env));
        const repository = targets.repository(options.repository).name;
        store = fileSystemStores(targets).forRepository({ repository });
      } catch (error) {
        throw new InvalidInputError(message(error));
      }
      const list = await store.list(options.cluster);
      if (options.json) cli.io.out(JSON.stringify(list, null, 2));
      else if (list.length === 0)
        cli.io.out(`no backups of ${options.cluster} in ${store.location}`);
      else {
        cli.io.out(`backups of ${options.cluster} in ${store.location}, newest first:`);
        for (const b of list) printBackup(cli.io, b);
      }
      cli.setExitCode(0);
    });
}
