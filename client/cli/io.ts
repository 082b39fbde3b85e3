/** What every command of the CLI shares: output, exit codes, how results and failures print. */
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, TemporalFailure } from '@temporalio/common';
import type { Command } from 'commander';
import {
  ADMIN_PKI_DIR,
  ADMIN_SNAPSHOT_FILE,
  type AdminBackupRecord,
  type BackupAllResult,
  type BackupRecord,
} from '../../workflows/contract/index.js';
import type { EtcdOpsClient } from '../client.js';
import { watchWorkflow } from '../watch.js';
import { jsonView, plainView, terminalView } from './watch-view.js';

/** Exit codes: 0 done, 1 the operation or the connection failed, 2 bad input (nothing started). */
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;

export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
  /** stdout when it is a terminal: `watch` then draws a step list and progress bars. */
  terminal?: NodeJS.WriteStream;
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

/** How an admin backup is used: this product does not restore an admin cluster. */
export const ADMIN_RESTORE_GUIDANCE = [
  "This product does not restore an admin cluster: use this backup with the vendor's",
  'admin-cluster restore procedure for your GKE on-prem version. What it needs is here:',
  `  ${ADMIN_SNAPSHOT_FILE}: the admin etcd snapshot; restored, with etcd stopped (its static`,
  '    pod manifest moved out of /etc/kubernetes/manifests), by `etcdctl snapshot restore`',
  '    (`etcdutl snapshot restore` from etcd 3.5) into a new data directory that replaces',
  "    etcd's; the manifest's etcd version, cluster id and revision say which etcd it came from.",
  `  ${ADMIN_PKI_DIR}/: the node's /etc/kubernetes/pki, to put back on the control-plane node with`,
  '    the owner and mode listed for each file (every file is 0600 in the repository).',
  'Check the files first: every size and sha256 is listed above (sha256sum them).',
];

export function printAdminBackup(io: Io, b: AdminBackupRecord, detailed: boolean): void {
  io.out(`admin backup ${b.id} of admin cluster ${b.adminCluster}, ${b.createdAt}`);
  const e = b.etcd;
  io.out(
    `  etcd: ${e.sourcePod}${e.nodeName ? ` on ${e.nodeName}` : ''}, etcd ${e.etcdVersion}, revision ${e.revision}, ${e.totalKeys} keys, ${e.sizeBytes} bytes`,
  );
  io.out(
    `  PKI: ${b.pki.fileCount} files, ${b.pki.totalBytes} bytes, from ${b.pki.directory}${b.pki.viaJumpHost ? ' (through the jump host)' : ''}`,
  );
  if (!detailed) return;
  if (b.kubernetesVersion)
    io.out(`  Kubernetes ${b.kubernetesVersion}; etcd image ${e.image ?? '?'}`);
  io.out(`  etcd cluster id ${e.clusterId}, member id ${e.memberId}, hash ${e.etcdHash}`);
  io.out('  files (mode and owner on the node):');
  const width = Math.max(...b.files.map((f) => f.path.length));
  for (const f of b.files) {
    const what =
      f.type === 'file'
        ? `${f.sizeBytes} bytes  sha256 ${f.sha256}`
        : f.type === 'directory'
          ? 'directory'
          : `${f.type} -> ${f.linkTarget}`;
    io.out(`    ${f.path.padEnd(width)}  ${f.mode}  ${f.owner ?? '?'}  ${what}`);
  }
  io.out('');
  for (const line of ADMIN_RESTORE_GUIDANCE) io.out(line);
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

/**
 * Shows the progress until the workflow closes, then its result: JSON lines with `json`
 * (progress events, then `{"event":"result"}` or `{"event":"failure"}`), a step list and
 * progress bars on a terminal, else a line for each change.
 */
export async function watch(io: Io, handle: WorkflowHandle, json: boolean): Promise<number> {
  const view = json
    ? jsonView(io.out)
    : io.terminal
      ? terminalView(io.terminal)
      : plainView(io.out);
  try {
    for await (const snapshot of watchWorkflow(handle)) view.show(snapshot);
  } finally {
    view.end();
  }
  return printOutcome(io, handle, json, json);
}

/** The result (or failure) of a workflow; with `json`, one JSON document (one line with `jsonLines`). */
export async function printOutcome(
  io: Io,
  handle: WorkflowHandle,
  json: boolean,
  jsonLines = false,
): Promise<number> {
  const { workflowId } = handle;
  try {
    const result: unknown = await handle.result();
    const all = isBackupAllResult(result) ? result : undefined;
    if (jsonLines) io.out(JSON.stringify({ event: 'result', workflowId, result }));
    else if (json) io.out(JSON.stringify({ workflowId, result }, null, 2));
    else if (all) {
      io.out(
        `backupAll of admin cluster ${all.adminCluster}: ${all.outcome} (user clusters: ${all.userClustersFrom})`,
      );
      for (const p of all.parts) {
        const label = p.kind === 'admin' ? `admin ${p.name}` : p.name;
        io.out(
          `  ${label}: ${p.outcome}${p.backupId ? ` ${p.backupId}` : ''}${p.error ? `: ${p.error}` : ''}`,
        );
      }
    } else if (isBackupResult(result)) {
      if ('kind' in result.backup) printAdminBackup(io, result.backup, false);
      else printBackup(io, result.backup);
      if (result.prunedBackupIds.length > 0)
        io.out(`  retention removed: ${result.prunedBackupIds.join(', ')}`);
    } else io.out(`result: ${JSON.stringify(result, null, 2)}`);
    // A backupAll with a failed part is a failure for scripts, whatever the others did.
    return all && all.failed.length > 0 ? EXIT_FAILED : 0;
  } catch (error) {
    const failure = describeFailure(error);
    if (jsonLines) io.out(JSON.stringify({ event: 'failure', workflowId, failure }));
    else if (json) io.out(JSON.stringify({ workflowId, failure }));
    io.err(`${workflowId} failed: ${failure}`);
    return EXIT_FAILED;
  }
}

function isBackupAllResult(value: unknown): value is BackupAllResult {
  return typeof value === 'object' && value !== null && 'parts' in value && 'failed' in value;
}

function isBackupResult(
  value: unknown,
): value is { backup: BackupRecord | AdminBackupRecord; prunedBackupIds: string[] } {
  return (
    typeof value === 'object' &&
    value !== null &&
    'backup' in value &&
    'prunedBackupIds' in value &&
    Array.isArray(value.prunedBackupIds)
  );
}
