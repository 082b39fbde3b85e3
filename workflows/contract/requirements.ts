/**
 * What the product needs in the images it runs commands in, stated once, checked before
 * anything is changed (and listed in the README).
 */

/**
 * The utility pod's image (R2, H5a): etcdctl, and the BusyBox-level tools the copy into
 * the pod and the member data scripts use — no flock, no GNU `mv -T`, no `stat`.
 */
export const UTILITY_POD_TOOLS: readonly string[] = [
  'sh',
  'etcdctl',
  'head',
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
