/**
 * The project's command-line tool: start and watch backups and restores, approve a
 * restore, manage a cluster's backup Schedule, and list the backups on this machine.
 *
 *   npm run cli -- backup start --cluster user-cluster-1 --wait
 *   npm run cli -- --help
 *
 * Connection: as every Temporal tool (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_PROFILE
 * and the Temporal CLI's config file) plus TEMPORAL_TASK_QUEUE, overridden by --address,
 * --namespace, --task-queue. Inputs are validated with the workflows' own schemas before
 * anything connects: a bad one exits with code 2 and a message naming the field. A
 * workflow that fails exits with code 1.
 */
import { pathToFileURL } from 'node:url';
import { Command, CommanderError } from 'commander';
import { addBackupCommands } from './cli/backup-commands.js';
import {
  type CommandContext,
  describeFailure,
  EXIT_FAILED,
  EXIT_USAGE,
  type Io,
  message,
} from './cli/io.js';
import { addRestoreCommands } from './cli/restore-commands.js';
import { addScheduleCommands } from './cli/schedule-commands.js';
import { EtcdOpsClient, InvalidInputError } from './client.js';
import { type ClientConfig, loadClientConfig } from './config.js';

export { EXIT_FAILED, EXIT_USAGE } from './cli/io.js';

interface ConnectionOptions {
  address?: string;
  namespace?: string;
  taskQueue?: string;
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
      'Temporal frontend (env TEMPORAL_ADDRESS or the Temporal CLI profile, default localhost:7233)',
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

  const cli: CommandContext = {
    io,
    setExitCode,
    async withClient(command, fn) {
      let config: ClientConfig;
      try {
        config = loadClientConfig(process.env, command.optsWithGlobals<ConnectionOptions>());
      } catch (error) {
        throw new InvalidInputError(message(error));
      }
      const client = await EtcdOpsClient.connect(config);
      try {
        setExitCode(await fn(client));
      } finally {
        await client.close();
      }
    },
  };
  addBackupCommands(program, cli);
  addRestoreCommands(program, cli);
  addScheduleCommands(program, cli);
  return program;
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
  process.exitCode = await main(process.argv.slice(2));
}

/** The CLI on this process's stdio (client/bin.ts, `npm run cli`). */
export function main(argv: string[]): Promise<number> {
  return run(argv, {
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
    ...(process.stdout.isTTY ? { terminal: process.stdout } : {}),
  });
}
