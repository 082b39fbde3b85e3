/**
 * Custom search attributes, so the Web UI and `temporal workflow list --query` can filter
 * by user cluster, operation and outcome. The dev server and any real namespace must have
 * them registered: `SEARCH_ATTRIBUTES` below is the list the test harness and docs use.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const UserClusterName = defineSearchAttributeKey(
  'UserClusterName',
  SearchAttributeType.KEYWORD,
);
export const EtcdOperation = defineSearchAttributeKey('EtcdOperation', SearchAttributeType.KEYWORD);
export const EtcdOutcome = defineSearchAttributeKey('EtcdOutcome', SearchAttributeType.KEYWORD);

/** Set by Temporal on the runs a Schedule starts: the schedule's id. */
export const TemporalScheduledById = defineSearchAttributeKey(
  'TemporalScheduledById',
  SearchAttributeType.KEYWORD,
);

/** `name=Type` pairs, as `temporal server start-dev --search-attribute` takes them. */
export const SEARCH_ATTRIBUTES = [UserClusterName, EtcdOperation, EtcdOutcome].map(
  (key) => `${key.name}=Keyword`,
);

export type Operation = 'backup' | 'restore' | 'admin-backup' | 'backup-all';
/**
 * `needs-operator`: a restore past its point of no return waits for a person (see its
 * current details); `handed-over`: a person finished it by hand; `skipped-busy`: a
 * scheduled backup found the cluster busy; `partly-failed`: a backupAll run some of whose
 * parts failed (its result lists them).
 */
export type Outcome =
  | 'running'
  | 'succeeded'
  | 'failed'
  | 'cancelled'
  | 'needs-operator'
  | 'handed-over'
  | 'skipped-busy'
  | 'partly-failed';
