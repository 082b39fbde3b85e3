/** `backup start`, and `backups list` (the store's own listing, as the worker reads it). */
import type { Command } from 'commander';
import {
  FileSystemBackupStore,
  repositoryRootFromEnv,
} from '../../activities/repository/fs-store.js';
import { absolutePath, dnsLabel } from '../../workflows/contract/index.js';
import { InvalidInputError } from '../client.js';
import { type BackupOptions, backupInput, integer, validated } from './inputs.js';
import { type CommandContext, message, printBackup, printOutcome, printStarted } from './io.js';

/** `--cluster`, `--kubeconfig`, `--backup-dir`, `--profile-json`: every operation's target. */
export function addTargetOptions(command: Command): Command {
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
    .description('list the backups of a cluster, newest first, as the worker reads them')
    .requiredOption('--cluster <name>', 'USER_CLUSTER_NAME')
    .option('--backup-dir <path>', 'repository directory (env BACKUP_DIR, as the worker)')
    .option('--json', 'print JSON instead of lines')
    .action(async (options: { cluster: string; backupDir?: string; json?: boolean }) => {
      validated(dnsLabel, options.cluster);
      let root: string;
      try {
        root = options.backupDir ?? repositoryRootFromEnv(process.env);
      } catch (error) {
        throw new InvalidInputError(message(error));
      }
      if (!absolutePath.safeParse(root).success)
        throw new InvalidInputError('backup-dir: must be an absolute path');
      const store = new FileSystemBackupStore(root);
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
