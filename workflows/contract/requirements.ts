/**
 * What the product needs in the images it runs commands in, stated once, checked before
 * anything is changed (and listed in the README). The etcd binaries are checked with their
 * versions (`chooseEtcdTools` in etcd-versions.ts): etcdctl always, and etcdutl where
 * etcdctl lacks the offline commands (etcd 3.6), or for a restore that bumps the revision.
 */

/**
 * The utility pod's image (R2, H5a): etcdctl, and the BusyBox-level tools the copy into
 * the pod and the member data scripts use — no flock, no GNU `mv -T`, no `stat`.
 */
export const UTILITY_POD_TOOLS: readonly string[] = [
  'sh',
  'etcdctl',
  'head',
  'tee',
  'wc',
  'cat',
  'sha256sum',
  'mv',
  'rm',
  'mkdir',
  'date',
  'sleep',
  'sync',
  'df',
];

/**
 * The kube-etcd image, for a backup taken in it (B2, B3): the runbook's `kubectl exec …
 * etcdctl snapshot save` and its `kubectl cp` need a shell there; the copy out reads with
 * `cat` (with `tail` when it resumes), sizes with `wc`, and the clean-up removes with `rm`.
 * A distroless etcd image has none of them: the backup is then taken from a utility pod
 * (UTILITY_POD_BACKUP_TOOLS).
 */
export const ETCD_POD_BACKUP_TOOLS: readonly string[] = [
  'sh',
  'etcdctl',
  'wc',
  'cat',
  'tail',
  'rm',
];

/**
 * The utility image, for a backup taken from a utility pod over the member's client URL
 * (an etcd image without a shell): the same as in the etcd pod.
 */
export const UTILITY_POD_BACKUP_TOOLS: readonly string[] = ETCD_POD_BACKUP_TOOLS;
