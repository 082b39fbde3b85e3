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

/** `name=Type` pairs, as `temporal server start-dev --search-attribute` takes them. */
export const SEARCH_ATTRIBUTES = [UserClusterName, EtcdOperation, EtcdOutcome].map(
  (key) => `${key.name}=Keyword`,
);

export type Operation = 'backup' | 'restore';
export type Outcome = 'running' | 'succeeded' | 'failed' | 'cancelled';
