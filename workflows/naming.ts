/** Names the workflows derive deterministically (no I/O, no randomness of their own). */

/** `20261127T183000Z-1a2b3c4d`: UTC time first so ids sort by time, then a random suffix. */
export function formatBackupId(createdAt: Date, suffixHex: string): string {
  return `${compactTimestamp(createdAt)}-${suffixHex}`;
}

/** `20261127T183000Z`: UTC, to the second, usable in ids and file names. */
export function compactTimestamp(date: Date): string {
  return date
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

/** A path in a pod: `dir` and `name` joined with one slash (node's path module is not in the sandbox). */
export function podJoin(dir: string, name: string): string {
  return `${dir.replace(/\/+$/, '')}/${name}`;
}
