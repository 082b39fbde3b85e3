/** What every command of the CLI shares: output, exit codes, how results and failures print. */
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, TemporalFailure } from '@temporalio/common';
import type { Command } from 'commander';
import type { BackupRecord } from '../../workflows/contract/index.js';
import type { EtcdOpsClient } from '../client.js';
import { followProgress } from '../watch.js';

/** Exit codes: 0 done, 1 the operation or the connection failed, 2 bad input (nothing started). */
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

/** What a command's action gets: output, and a connected client for as long as it runs. */
export interface CommandContext {
  io: Io;
  /** Connects with the global options, runs `fn`, sets its exit code, closes. */
  withClient(command: Command, fn: (client: EtcdOpsClient) => Promise<number>): Promise<void>;
  setExitCode(code: number): void;
}

export function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The failure of a workflow, down to its root cause, in one line. */
export function describeFailure(error: unknown): string {
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

export function printBackup(io: Io, b: BackupRecord): void {
  io.out(`backup ${b.id} of ${b.userClusterName} from ${b.sourcePod}, ${b.createdAt}`);
  io.out(`  ${b.sizeBytes} bytes, sha256 ${b.sha256}, revision ${b.revision}, ${b.totalKeys} keys`);
}

/** Prints a started workflow's id, as a line or as JSON. */
export function printStarted(
  io: Io,
  what: string,
  handle: { workflowId: string; firstExecutionRunId: string },
  json: boolean,
): void {
  if (json)
    io.out(JSON.stringify({ workflowId: handle.workflowId, runId: handle.firstExecutionRunId }));
  else io.out(`started ${what} ${handle.workflowId} (run ${handle.firstExecutionRunId})`);
}

/** Prints the `progress` query as it changes until the workflow closes; then its result. */
export async function watch(io: Io, handle: WorkflowHandle, json: boolean): Promise<number> {
  await followProgress(handle, io.out);
  return printOutcome(io, handle, json);
}

export async function printOutcome(io: Io, handle: WorkflowHandle, json: boolean): Promise<number> {
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
