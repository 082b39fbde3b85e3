/**
 * `backup start|admin|all`, and `backups list|show` (the store's own listing, as the worker
 * reads it).
 */
import type { Command } from 'commander';
import { workerTargets } from '../../activities/config/targets.js';
import { loadWorkerConfig } from '../../activities/config/worker-config.js';
import { fileSystemStores } from '../../activities/repository/fs-store.js';
import { backupIdSchema, dnsLabel, FailureType } from '../../workflows/contract/index.js';
import { InvalidInputError } from '../client.js';
import {
  type AdminBackupOptions,
  adminBackupInput,
  type BackupAllOptions,
  type BackupOptions,
  backupAllInput,
  backupInput,
  integer,
  validated,
} from './inputs.js';
import {
  type CommandContext,
  message,
  printAdminBackup,
  printBackup,
  printOutcome,
  printStarted,
} from './io.js';

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

/** `--admin-cluster`, `--repository`: an admin-cluster operation's target, by name. */
function addAdminTargetOptions(command: Command): Command {
  return command
    .option(
      '--admin-cluster <name>',
      "the admin cluster, as the worker's configuration names it (default: the worker's only one)",
    )
    .option(
      '--repository <name>',
      "the backup repository, as the worker's configuration names it (default: its only one)",
    )
    .option(
      '--keep-last <n>',
      'after the backup, keep only the newest N backups (of each cluster)',
      integer('--keep-last'),
    );
}

/** The flags of `backup all` (and of its Schedule). */
export function addBackupAllOptions(command: Command): Command {
  return addAdminTargetOptions(command)
    .option(
      '--cluster <name...>',
      "user clusters to back up (default: every user cluster of the admin cluster, as the worker's configuration or the namespaces holding kube-etcd say)",
    )
    .option(
      '--max-concurrent <n>',
      'parts (the admin backup, each user cluster) run at once (default 2)',
      integer('--max-concurrent'),
    );
}

/** The store of a repository on this machine, as the worker's configuration names it. */
function localStore(repository?: string) {
  try {
    const config = loadWorkerConfig(process.env);
    const targets = workerTargets(config);
    const name = targets.repository(repository).name;
    return { config, store: fileSystemStores(targets).forRepository({ repository: name }) };
  } catch (error) {
    throw new InvalidInputError(message(error));
  }
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

  addAdminTargetOptions(
    backup
      .command('admin')
      .description(
        'back up the admin cluster itself (SPEC A2, A3): its etcd, and the PKI of its control-plane node over SSH; prints the workflow id',
      ),
  )
    .option('--wait', 'wait for the backup to finish and print it')
    .option('--json', 'print JSON instead of lines')
    .action(
      async (
        options: AdminBackupOptions & { wait?: boolean; json?: boolean },
        command: Command,
      ) => {
        const input = adminBackupInput(options);
        const json = options.json ?? false;
        await cli.withClient(command, async (client) => {
          const handle = await client.startAdminBackup(input);
          if (!(json && options.wait)) printStarted(cli.io, 'admin backup', handle, json);
          return options.wait ? printOutcome(cli.io, handle, json) : 0;
        });
      },
    );

  addBackupAllOptions(
    backup
      .command('all')
      .description(
        "the runbook's automatic backup (SPEC A) as one run: the admin cluster and every user cluster of it; prints the workflow id",
      ),
  )
    .option('--wait', 'wait for every part and print each outcome (exit 1 if any part failed)')
    .option('--json', 'print JSON instead of lines')
    .action(
      async (options: BackupAllOptions & { wait?: boolean; json?: boolean }, command: Command) => {
        const input = backupAllInput(options);
        const json = options.json ?? false;
        await cli.withClient(command, async (client) => {
          const handle = await client.startBackupAll(input);
          if (!(json && options.wait)) printStarted(cli.io, 'backupAll', handle, json);
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
      "list the backups of a user cluster (--cluster) or of an admin cluster (--admin-cluster), newest first, as the worker reads them (run it where the worker runs: it reads the worker's configuration, ETCD_HA_RESTORE_CONFIG or BACKUP_DIR)",
    )
    .option('--cluster <name>', 'USER_CLUSTER_NAME')
    .option('--admin-cluster <name>', "the admin cluster's own backups (SPEC A2, A3)")
    .option('--repository <name>', "the repository, as the worker's configuration names it")
    .option('--json', 'print JSON instead of lines')
    .action(
      async (options: {
        cluster?: string;
        adminCluster?: string;
        repository?: string;
        json?: boolean;
      }) => {
        if ((options.cluster === undefined) === (options.adminCluster === undefined))
          throw new InvalidInputError('give either --cluster or --admin-cluster');
        const { store } = localStore(options.repository);
        if (options.adminCluster !== undefined) {
          const admin = validated(dnsLabel, options.adminCluster);
          const list = await store.admin.list(admin);
          if (options.json) cli.io.out(JSON.stringify(list, null, 2));
          else if (list.length === 0)
            cli.io.out(`no admin backups of ${admin} in ${store.location}`);
          else {
            cli.io.out(`admin backups of ${admin} in ${store.location}, newest first:`);
            for (const b of list) printAdminBackup(cli.io, b, false);
          }
          cli.setExitCode(0);
          return;
        }
        const cluster = validated(dnsLabel, options.cluster);
        const list = await store.list(cluster);
        if (options.json) cli.io.out(JSON.stringify(list, null, 2));
        else if (list.length === 0) cli.io.out(`no backups of ${cluster} in ${store.location}`);
        else {
          cli.io.out(`backups of ${cluster} in ${store.location}, newest first:`);
          for (const b of list) printBackup(cli.io, b);
        }
        cli.setExitCode(0);
      },
    );

  backups
    .command('show')
    .description(
      "show one backup: its manifest and, for an admin backup, every file with its mode on the node and how the backup is used with the vendor's admin-cluster restore procedure",
    )
    .argument('<backup-id>', 'the backup id')
    .option('--cluster <name>', 'a backup of this user cluster')
    .option(
      '--admin-cluster <name>',
      "an admin backup of this admin cluster (default: look in every admin cluster of the worker's configuration)",
    )
    .option('--repository <name>', "the repository, as the worker's configuration names it")
    .option('--json', 'print JSON instead of lines')
    .action(
      async (
        id: string,
        options: { cluster?: string; adminCluster?: string; repository?: string; json?: boolean },
      ) => {
        const backupId = validated(backupIdSchema, id);
        const { config, store } = localStore(options.repository);
        if (options.cluster !== undefined) {
          const record = await store.get({
            userClusterName: validated(dnsLabel, options.cluster),
            backupId,
          });
          if (options.json) cli.io.out(JSON.stringify(record, null, 2));
          else printBackup(cli.io, record);
          cli.setExitCode(0);
          return;
        }
        const admins =
          options.adminCluster !== undefined
            ? [validated(dnsLabel, options.adminCluster)]
            : Object.keys(config.adminClusters);
        for (const adminCluster of admins) {
          const record = await store.admin
            .get({ adminCluster, backupId })
            .catch((error: unknown) => {
              if ((error as { type?: string }).type === FailureType.BackupNotFound)
                return undefined;
              throw error;
            });
          if (!record) continue;
          if (options.json) cli.io.out(JSON.stringify(record, null, 2));
          else printAdminBackup(cli.io, record, true);
          cli.setExitCode(0);
          return;
        }
        throw new InvalidInputError(
          `no admin backup ${backupId} of ${admins.join(', ') || 'any admin cluster'} in ${store.location}; for a user cluster's backup give --cluster`,
        );
      },
    );
}
