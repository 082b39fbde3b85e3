/**
 * Replacing one etcd member's data with a restored snapshot (SPEC R4–R6, H5c–H5f), split
 * at the point of no return so that everything that can fail for a lasting reason (a full
 * volume, a snapshot etcd refuses) fails before it:
 *
 *   restore (before)  `snapshot restore` with the member's identity into a directory of its
 *                     own attempt on the member's volume, `<dataDir>/.restore-<token>.<nonce>`,
 *                     checked, marked complete and renamed to `<dataDir>/.restore-<token>`.
 *                     The live `member/` is not touched, so it can run while etcd still
 *                     runs; concurrent attempts (a retry while an abandoned exec still runs)
 *                     never share a directory, and only a complete one is renamed into place.
 *   swap (after)      the old `member/` renamed aside to `<dataDir>/.old-<token>/member`, the
 *                     restored one into place, then the marker `<dataDir>/.restored-<token>`.
 *                     Two renames on one file system: a crash at any instruction leaves the
 *                     old data (in place or aside) and the complete new data, never a mix,
 *                     never nothing; the next run does only what is missing.
 *   discard           after the restored cluster is verified: the old data set aside, and the
 *                     leftovers of abandoned restores (other tokens), are removed. The marker
 *                     stays: a late or repeated swap can never replace the data twice.
 *
 * The member's etcd must not run during the swap: the workflow stops every member first.
 * Swap and discard take a lock directory (`mkdir` is atomic; a lock older than
 * LOCK_STALE_S seconds was left by a process that died and is broken), so two runs for the
 * same member take turns. Tools used, all in BusyBox: sh, mkdir, mv (no -T: targets never
 * exist), rm, cat, date, sync (with file arguments: only what changed is flushed).
 */

/** Exit codes of the scripts. */
export const MemberDataExit = {
  /** The volume is not as any run of ours left it (both old and new data in place...). */
  UnexpectedState: 4,
  /** The restore wrote no database: etcd refused the snapshot. */
  RestoreIncomplete: 3,
  /** The swap found no complete restored data: restore again first (a lost or wiped volume). */
  ScratchMissing: 5,
  /** Another run held the lock for longer than we wait. */
  LockBusy: 6,
} as const;

/** A lock older than this was left by a process that died: a swap takes well under a second. */
export const LOCK_STALE_S = 300;

/** The paths one replacement uses on the member's volume. */
export function memberDataPaths(dataDir: string, token: string) {
  checkWord('restore token', token);
  return {
    dataDir,
    scratch: `${dataDir}/.restore-${token}`,
    oldAside: `${dataDir}/.old-${token}`,
    marker: `${dataDir}/.restored-${token}`,
    lock: `${dataDir}/.replace-${token}.lock`,
  };
}
export type MemberDataPaths = ReturnType<typeof memberDataPaths>;

/** Where one restore attempt writes before it is renamed to `paths.scratch`. */
export function attemptDir(paths: MemberDataPaths, nonce: string): string {
  checkWord('attempt nonce', nonce);
  return `${paths.scratch}.${nonce}`;
}

/** fsync of each file and directory of a restored data dir (not a global sync of the node). */
const FSYNC_TREE = `fsync_tree() {
  for f in "$1"/member/snap/* "$1"/member/wal/* "$1"/member/snap "$1"/member/wal "$1"/member "$1"; do
    if [ -e "$f" ]; then sync "$f"; fi
  done
}`;

const LOCK = `lock() {
  n=0
  while ! mkdir "$L" 2>/dev/null; do
    s=$(cat "$L/stamp" 2>/dev/null || true)
    if [ -z "$s" ]; then
      # Its holder writes the stamp right after mkdir: none after a pause means it died there.
      sleep 2
      s=$(cat "$L/stamp" 2>/dev/null || true)
      [ -n "$s" ] || s=0
    fi
    if [ $(( $(date +%s) - s )) -gt "$STALE" ]; then rm -rf "$L"; continue; fi
    n=$((n + 1))
    if [ "$n" -gt 600 ]; then echo "lock $L is held by another run" >&2; exit ${MemberDataExit.LockBusy}; fi
    sleep 1
  done
  date +%s > "$L/stamp"
  trap 'rm -rf "$L"' EXIT
}`;

/**
 * Positional parameters: data dir, scratch, marker, attempt dir, then the restore argv
 * writing into the attempt dir. Prints `state=restored|already-restored|already-replaced`.
 */
const RESTORE_SCRIPT = `set -eu
D=$1 R=$2 M=$3 T=$4
shift 4
${FSYNC_TREE}
if [ -e "$M" ]; then echo state=already-replaced; exit 0; fi
if [ -e "$R/.complete" ]; then echo state=already-restored; exit 0; fi
rm -rf "$T"
"$@"
if [ ! -s "$T/member/snap/db" ]; then rm -rf "$T"; echo "restore wrote no $T/member/snap/db" >&2; exit ${MemberDataExit.RestoreIncomplete}; fi
fsync_tree "$T"
: > "$T/.complete"
sync "$T/.complete" "$T"
if [ -e "$R/.complete" ]; then rm -rf "$T"; echo state=already-restored; exit 0; fi
# Only a complete attempt is ever renamed to $R, so one without .complete is foreign.
if [ -e "$R" ] && [ ! -e "$R/.complete" ]; then rm -rf "$R"; fi
mv "$T" "$R"
# Another attempt renamed its own in between: mv then moved this one inside it.
if [ -e "$R/\${T##*/}" ]; then rm -rf "$R/\${T##*/}"; echo state=already-restored; exit 0; fi
sync "$D"
echo state=restored
`;

/**
 * Positional parameters: the five paths of `memberDataPaths`, "1" to drop the old data at
 * once, and the age in seconds after which a lock is stale.
 */
const SWAP_SCRIPT = `set -eu
D=$1 R=$2 O=$3 M=$4 L=$5 DROP_OLD=$6 STALE=$7
${FSYNC_TREE}
${LOCK}
lock
finish() {
  rm -rf "$R" "$R".*
  if [ "$DROP_OLD" = 1 ]; then rm -rf "$O"; fi
  sync "$D"
  echo "state=$1"
}
if [ -e "$M" ]; then finish already-replaced; exit 0; fi
if [ ! -e "$R/.complete" ]; then
  echo "no complete restored data in $R: restore it again" >&2; exit ${MemberDataExit.ScratchMissing}
fi
if [ -e "$R/member" ]; then
  if [ -e "$D/member" ]; then
    if [ -e "$O/member" ]; then
      echo "both $D/member and $O/member exist: something else wrote the data directory" >&2
      exit ${MemberDataExit.UnexpectedState}
    fi
    mkdir -p "$O"
    mv "$D/member" "$O/member"
    sync "$O" "$D"
  fi
  mv "$R/member" "$D/member"
  fsync_tree "$D"
elif [ ! -e "$D/member" ]; then
  echo "neither $R/member nor $D/member exists" >&2; exit ${MemberDataExit.UnexpectedState}
fi
: > "$M"
sync "$M" "$D"
finish replaced
`;

/**
 * Positional parameters: data dir, lock, "1" to include what other (abandoned) restores
 * left, this replacement's aside and scratch directories, the lock's stale age. Removes them (and the
 * scratch's attempt directories), and with "1" every `.old-*` and `.restore-*` of other
 * restores; prints each directory removed as `removed=<name>`.
 */
const DISCARD_SCRIPT = `set -eu
D=$1 L=$2 ABANDONED=$3 O=$4 R=$5 STALE=$6
${LOCK}
lock
set -- "$O" "$R" "$R".*
if [ "$ABANDONED" = 1 ]; then set -- "$@" "$D"/.old-* "$D"/.restore-*; fi
for p; do
  [ -e "$p" ] || continue
  rm -rf "$p"
  echo "removed=\${p##*/}"
done
sync "$D"
`;

/** argv (for exec, no interpolation) that restores into scratch space, idempotently. */
export function restoreIntoScratchArgv(options: {
  paths: MemberDataPaths;
  attempt: string;
  /** The restore command with its data dir = `attempt`. */
  restoreArgv: readonly string[];
}): string[] {
  const { dataDir, scratch, marker } = options.paths;
  return [
    'sh',
    '-c',
    RESTORE_SCRIPT,
    'restore-into-scratch',
    dataDir,
    scratch,
    marker,
    options.attempt,
    ...options.restoreArgv,
  ];
}

/** argv that swaps the restored data in, idempotently. */
export function swapMemberDataArgv(
  paths: MemberDataPaths,
  dropOldData: boolean,
  lockStaleSeconds = LOCK_STALE_S,
): string[] {
  const { dataDir, scratch, oldAside, marker, lock } = paths;
  return [
    'sh',
    '-c',
    SWAP_SCRIPT,
    'swap-member-data',
    dataDir,
    scratch,
    oldAside,
    marker,
    lock,
    dropOldData ? '1' : '0',
    String(lockStaleSeconds),
  ];
}

/**
 * argv that removes the old data set aside by one replacement and any scratch left (the
 * undo of a restore into scratch, or the clean-up after verification) and, with
 * `abandoned`, what other restores left, under the same lock. The marker stays.
 */
export function discardOldMemberDataArgv(
  paths: MemberDataPaths,
  abandoned: boolean,
  lockStaleSeconds = LOCK_STALE_S,
): string[] {
  return [
    'sh',
    '-c',
    DISCARD_SCRIPT,
    'discard-old-member-data',
    paths.dataDir,
    paths.lock,
    abandoned ? '1' : '0',
    paths.oldAside,
    paths.scratch,
    String(lockStaleSeconds),
  ];
}

/** The state line a script printed. */
export function parseState<S extends string>(stdout: string, states: readonly S[]): S {
  const state = /state=([a-z-]+)/.exec(stdout)?.[1];
  if (!states.includes(state as S)) {
    throw new Error(`member data script printed no state: ${stdout.slice(-300)}`);
  }
  return state as S;
}

/** The directories a discard removed. */
export function parseRemoved(stdout: string): string[] {
  return [...stdout.matchAll(/^removed=(.+)$/gm)].map((m) => m[1] as string);
}

function checkWord(what: string, value: string): void {
  if (!/^[A-Za-z0-9-]{1,64}$/.test(value))
    throw new Error(`invalid ${what} ${JSON.stringify(value)}`);
}
