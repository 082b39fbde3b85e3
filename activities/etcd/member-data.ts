/**
 * Replacing one etcd member's data with a restored snapshot (SPEC R4–R6, H5c–H5e) as a
 * single restartable step, run in the utility pod that mounts the member's volume.
 *
 * The runbook restores into the pod's root (`/kube-etcd-N.etcd`), then `rm -r` the old
 * data and `cp -r` the new: a crash between those two leaves a member with no data, and
 * the only good copy is gone before the new one is known to be complete. Here:
 *   1. restore into a scratch directory on the same volume, `<dataDir>/.restore-<token>`,
 *      wiped first, and mark it complete only after etcdctl succeeded and it was synced;
 *   2. move the old `member/` aside to `<dataDir>/.old-<token>/` and the new one into
 *      place with two renames on one file system, then write the marker
 *      `<dataDir>/.restored-<token>`.
 * Each run looks at what is there and does only what is missing, so a crash at any
 * instruction leaves the old data (in place or aside) and, once step 1 is done, the
 * complete new data: never a mix, never nothing. The old data stays aside until the
 * workflow has verified the cluster and calls `discard`, unless the caller asks to drop
 * it right after the swap, as the runbook's `rm -r` does. (That frees the room sooner; the
 * restore itself still needs room for the old and the new data at once.) The marker
 * outlives `discard`, so a late or repeated run can never replace the data a second time.
 *
 * The member's etcd must not run meanwhile: the workflow stops every member (kube-etcd
 * scaled to 0) before any data is replaced. `flock` makes two runs for the same member
 * (a retry while an abandoned exec is still running) take turns.
 */

/** Exit codes of the script that mean "the volume is not as any run of ours left it". */
export const UNEXPECTED_STATE_EXIT = 4;
export const RESTORE_INCOMPLETE_EXIT = 3;

/** The paths one replacement uses on the member's volume. */
export function memberDataPaths(dataDir: string, token: string) {
  checkToken(token);
  return {
    dataDir,
    scratch: `${dataDir}/.restore-${token}`,
    oldAside: `${dataDir}/.old-${token}`,
    marker: `${dataDir}/.restored-${token}`,
    lock: `${dataDir}/.replace-${token}.lock`,
  };
}
export type MemberDataPaths = ReturnType<typeof memberDataPaths>;

/**
 * Positional parameters: the five paths of `memberDataPaths`, "1" to delete the old data
 * at once, then the etcdctl restore argv writing into the scratch path. Prints `state=...`.
 */
const REPLACE_SCRIPT = `set -eu
D=$1 R=$2 O=$3 M=$4 L=$5 DROP_OLD=$6
shift 6
exec 9>"$L"
flock 9
finish() {
  rm -rf "$R"
  if [ "$DROP_OLD" = 1 ]; then rm -rf "$O"; fi
  sync
  echo "state=$1"
}
if [ -e "$M" ]; then finish already-replaced; exit 0; fi
if [ -e "$R/.complete" ] && [ ! -e "$R/member" ] && [ -e "$D/member" ]; then
  sync; : > "$M"; sync; finish replaced; exit 0
fi
if [ -e "$D/member" ] && [ -e "$O/member" ]; then
  echo "both $D/member and $O/member exist: something else wrote the data directory" >&2
  exit ${UNEXPECTED_STATE_EXIT}
fi
if [ ! -e "$R/.complete" ] || [ ! -e "$R/member" ]; then
  rm -rf "$R"
  "$@"
  if [ ! -s "$R/member/snap/db" ]; then echo "restore wrote no $R/member/snap/db" >&2; exit ${RESTORE_INCOMPLETE_EXIT}; fi
  sync; : > "$R/.complete"; sync
fi
if [ -e "$D/member" ]; then
  mkdir -p "$O"
  mv -T "$D/member" "$O/member"
  sync
fi
mv -T "$R/member" "$D/member"
sync; : > "$M"; sync
finish replaced
`;

/** argv (for exec, no interpolation) that replaces the member's data idempotently. */
export function replaceMemberDataArgv(options: {
  paths: MemberDataPaths;
  dropOldData: boolean;
  /** etcdctl snapshot restore with `--data-dir` = `paths.scratch`. */
  restoreArgv: readonly string[];
}): string[] {
  const { dataDir, scratch, oldAside, marker, lock } = options.paths;
  const drop = options.dropOldData ? '1' : '0';
  return [
    'sh',
    '-c',
    REPLACE_SCRIPT,
    'replace-member-data',
    dataDir,
    scratch,
    oldAside,
    marker,
    lock,
    drop,
    ...options.restoreArgv,
  ];
}

/**
 * argv that removes the old data set aside (and any scratch left) by one replacement,
 * under the same lock. The marker stays: it is what says this replacement is done.
 */
export function discardOldMemberDataArgv(paths: MemberDataPaths): string[] {
  const script = 'exec 9>"$1"; flock 9; rm -rf "$2" "$3"; sync';
  return ['sh', '-c', script, 'discard-old-member-data', paths.lock, paths.oldAside, paths.scratch];
}

/** The state line the script printed. */
export function parseReplaceState(stdout: string): 'replaced' | 'already-replaced' {
  const state = /state=(replaced|already-replaced)/.exec(stdout)?.[1];
  if (state !== 'replaced' && state !== 'already-replaced') {
    throw new Error(`member data replacement printed no state: ${stdout.slice(-500)}`);
  }
  return state;
}

function checkToken(token: string): void {
  if (!/^[A-Za-z0-9-]{1,64}$/.test(token))
    throw new Error(`invalid restore token ${JSON.stringify(token)}`);
}
