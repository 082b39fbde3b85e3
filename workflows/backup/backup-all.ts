/**
 * The runbook's automatic backup script (SPEC A) as one durable run: the admin cluster's
 * backup (A2, A3) and a backup of every user cluster of that admin cluster (A1 = B1–B4),
 * each a child workflow — `backupAdminCluster`, `backupUserCluster` — with its own history,
 * its own lock and its own current details, at most `maxConcurrent` at a time.
 *
 * One part failing neither stops nor hides the others: every part runs, and the result
 * lists each part's outcome and which failed (outcome `partly-failed` or `failed` then, in
 * the search attributes too). The script's BACKUP_DIR is the repository; its "must not
 * exist yet" is each backup's own id.
 */
import {
  ApplicationFailure,
  executeChild,
  isCancellation,
  ParentClosePolicy,
  workflowInfo,
} from '@temporalio/workflow';
import { quick } from '../activities.js';
import {
  type BackupAllInput,
  type BackupAllPart,
  type BackupAllResult,
  backupAllInputSchema,
  backupAllPartWorkflowId,
  parseWorkflowInput,
  TemporalScheduledById,
} from '../contract/index.js';
import { describeError, Progress } from '../progress.js';
import { ADMIN_BACKUP_USE, backupAdminCluster } from './backup-admin-cluster.js';
import { BACKUP_LIMITS, backupUserCluster } from './backup-user-cluster.js';

export const BACKUP_ALL_LIMITS = `${ADMIN_BACKUP_USE} ${BACKUP_LIMITS}`;

type PartSpec = { kind: BackupAllPart['kind']; name: string };

export async function backupAll(input: BackupAllInput): Promise<BackupAllResult> {
  const params = parseWorkflowInput('backupAll', backupAllInputSchema, input);
  const progress = new Progress(
    'backup-all',
    undefined,
    `Backup of admin cluster ${params.adminCluster ?? "(the worker's only one)"} and its user clusters`,
    BACKUP_ALL_LIMITS,
  );
  let selection: Awaited<ReturnType<typeof quick.listUserClusters>>;
  try {
    progress.step('which user clusters: the worker resolves the names');
    selection = await quick.listUserClusters.executeWithOptions(
      { summary: 'list the user clusters' },
      [
        {
          adminCluster: params.adminCluster,
          repository: params.repository,
          userClusterNames: params.userClusterNames,
        },
      ],
    );
  } catch (error) {
    progress.finish('failed', `backupAll refused: ${describeError(error)}`);
    throw error;
  }
  const { adminCluster, repository } = selection;
  progress.fact('admin cluster', adminCluster);
  progress.fact('repository', repository);
  progress.fact(
    'user clusters',
    `${selection.userClusterNames.join(', ') || 'none'} (${selection.from})`,
  );

  const parts: PartSpec[] = [
    { kind: 'admin', name: adminCluster },
    ...selection.userClusterNames.map((name) => ({ kind: 'user-cluster' as const, name })),
  ];
  const label = (p: PartSpec) => (p.kind === 'admin' ? `admin ${p.name}` : p.name);
  for (const p of parts) progress.part(label(p), 'waiting');
  // A scheduled run skips a cluster that another operation holds, as a scheduled backup does.
  const scheduled = workflowInfo().typedSearchAttributes.get(TemporalScheduledById) !== undefined;
  const onBusy = scheduled ? ('skip' as const) : ('fail' as const);
  const { workflowId } = workflowInfo();

  progress.step(`back up ${parts.length} parts, ${params.maxConcurrent} at a time`);
  const runPart = async (part: PartSpec): Promise<BackupAllPart> => {
    const childId = backupAllPartWorkflowId(workflowId, part);
    progress.part(label(part), `running (${childId})`);
    const common = { name: part.name, workflowId: childId };
    try {
      const options = {
        workflowId: childId,
        parentClosePolicy: ParentClosePolicy.TERMINATE,
      };
      const result =
        part.kind === 'admin'
          ? await executeChild(backupAdminCluster, {
              ...options,
              args: [{ adminCluster, repository, retention: params.retention, onBusy }],
              staticSummary: `Back up admin cluster ${adminCluster} (etcd and node PKI)`,
              staticDetails: ADMIN_BACKUP_USE,
            })
          : await executeChild(backupUserCluster, {
              ...options,
              args: [
                {
                  userClusterName: part.name,
                  adminCluster,
                  repository,
                  retention: params.retention,
                  onBusy,
                },
              ],
              staticSummary: `Back up etcd of user cluster ${part.name}`,
              staticDetails: BACKUP_LIMITS,
            });
      const done: BackupAllPart = {
        kind: part.kind,
        ...common,
        outcome: result.outcome,
        ...(result.backup ? { backupId: result.backup.id } : {}),
        warnings: result.warnings,
      };
      progress.part(
        label(part),
        result.backup ? `stored ${result.backup.id}` : `skipped: ${result.warnings.join('; ')}`,
      );
      return done;
    } catch (error) {
      if (isCancellation(error)) throw error;
      const root = rootFailure(error);
      progress.part(label(part), `failed: ${describeRoot(error)}`);
      return {
        kind: part.kind,
        ...common,
        outcome: 'failed',
        error: describeRoot(error),
        ...(root?.type ? { failureType: root.type } : {}),
        warnings: [],
      };
    }
  };

  const results = await inPool(parts, params.maxConcurrent, runPart);
  const failed = results.filter((r) => r.outcome === 'failed');
  const outcome =
    failed.length === 0 ? 'stored' : failed.length === results.length ? 'failed' : 'partly-failed';
  const names = failed.map((r) => (r.kind === 'admin' ? `admin:${r.name}` : r.name));
  progress.finish(
    outcome === 'stored' ? 'succeeded' : outcome,
    outcome === 'stored'
      ? `${results.length} parts backed up`
      : `${failed.length} of ${results.length} parts failed: ${names.join(', ')}`,
  );
  return {
    outcome,
    adminCluster,
    userClustersFrom: selection.from,
    parts: results,
    failed: names,
  };
}

/** Runs `work` on every item, at most `limit` at once, results in the items' order. */
async function inPool<T, R>(
  items: T[],
  limit: number,
  work: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return results;
}

/** The innermost ApplicationFailure of a child's failure (its type says what went wrong). */
function rootFailure(error: unknown): ApplicationFailure | undefined {
  let found: ApplicationFailure | undefined;
  let current: unknown = error;
  while (current instanceof Error) {
    if (current instanceof ApplicationFailure) found = current;
    current = (current as { cause?: unknown }).cause;
  }
  return found;
}

/** The root failure's message and type, else the error in one line. */
function describeRoot(error: unknown): string {
  const root = rootFailure(error);
  return root ? `${root.message}${root.type ? ` [${root.type}]` : ''}` : describeError(error);
}
