/**
 * Which backups a retention policy keeps (a pure rule, tested on dates alone), and pruning
 * a store by it.
 *
 * "The last N days/weeks" counts days (UTC) and ISO weeks that *have* backups, newest
 * first, as restic's --keep-daily/--keep-weekly do: the result depends only on the backups,
 * not on today's date, so pruning is repeatable and a pause in backups never empties the
 * repository.
 */
import { type RetentionPolicy, retentionPolicySchema } from '../../workflows/contract/index.js';
import type { BackupStore } from './store.js';

export interface DatedBackup {
  id: string;
  createdAt: string;
}

/** Newest first: by creation time, then by id (ids start with their time). */
export function newestFirst<T extends DatedBackup>(backups: readonly T[]): T[] {
  return [...backups].sort(
    (a, b) =>
      Date.parse(b.createdAt) - Date.parse(a.createdAt) || (b.id < a.id ? -1 : b.id > a.id ? 1 : 0),
  );
}

function utcDay(createdAt: string): string {
  return new Date(createdAt).toISOString().slice(0, 10);
}

/** ISO 8601 week, e.g. `2026-W53`: weeks start on Monday, week 1 holds the year's first Thursday. */
export function isoWeek(createdAt: string): string {
  const date = new Date(createdAt);
  const day = Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate());
  const mondayBased = (date.getUTCDay() + 6) % 7;
  const thursday = new Date(day + (3 - mondayBased) * 86_400_000);
  const year = thursday.getUTCFullYear();
  const ordinal = (thursday.getTime() - Date.UTC(year, 0, 1)) / 86_400_000;
  const week = Math.floor(ordinal / 7) + 1;
  return `${year}-W${String(week).padStart(2, '0')}`;
}

/** Ids to keep: newest `keepLast`, plus the newest of each of the last `keepDaily` days and `keepWeekly` weeks. */
export function backupsToKeep(
  backups: readonly DatedBackup[],
  policy: RetentionPolicy,
): Set<string> {
  const sorted = newestFirst(backups);
  const keep = new Set(sorted.slice(0, Math.max(1, policy.keepLast)).map((b) => b.id));
  const keepNewestPerPeriod = (periodOf: (createdAt: string) => string, periods: number) => {
    const seen = new Set<string>();
    for (const backup of sorted) {
      const period = periodOf(backup.createdAt);
      if (seen.has(period)) continue;
      if (seen.size >= periods) break;
      seen.add(period);
      keep.add(backup.id);
    }
  };
  keepNewestPerPeriod(utcDay, policy.keepDaily);
  keepNewestPerPeriod(isoWeek, policy.keepWeekly);
  return keep;
}

/** Deletes from `store` what the policy does not keep (never the newest); returns their ids. */
export async function pruneBackups(
  store: BackupStore,
  userClusterName: string,
  policy: RetentionPolicy,
): Promise<string[]> {
  const backups = (await store.list(userClusterName)).filter((b) => b.origin === 'taken');
  const keep = backupsToKeep(backups, retentionPolicySchema.parse(policy));
  const deleted: string[] = [];
  for (const record of backups) {
    if (keep.has(record.id)) continue;
    await store.delete({ userClusterName, backupId: record.id });
    deleted.push(record.id);
  }
  return deleted;
}
