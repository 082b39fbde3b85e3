/**
 * What differs between etcd 3.4, 3.5 and 3.6 for the runbook's commands, decided from the
 * versions found where the commands run, and how far a restore raises the revision. Pure
 * (bundled into workflow code): activities report versions, workflows decide with these.
 *
 *   etcd 3.4  etcdctl does everything: snapshot save, status, restore.
 *   etcd 3.5  etcdutl does the offline commands (snapshot status, restore); etcdctl's are
 *             deprecated but still work. etcdutl 3.5.10 added `snapshot restore
 *             --bump-revision N --mark-compacted` (etcd PR #16029, #16165).
 *   etcd 3.6  etcdctl has no `snapshot status` / `snapshot restore` any more: it prints the
 *             `snapshot` help and exits 0 (measured), so exit codes prove nothing; etcdutl
 *             is required. Its `snapshot status` counts totalKey as live user keys (etcd
 *             PR #19344), where 3.4 and 3.5 count every entry of every bbolt bucket.
 */
import { ApplicationFailure } from '@temporalio/common';
import { FailureType } from './failures.js';

export interface EtcdVersion {
  major: number;
  minor: number;
  patch: number;
}

/** `3.5.35`, `v3.6.16`, `v3.6.16-0-gke.0`, `3.6.0` → the version; anything else undefined. */
export function parseEtcdVersion(text: string | undefined): EtcdVersion | undefined {
  const m = /(?:^|[^\d.])v?(\d+)\.(\d+)\.(\d+)(?![\d.])/.exec(` ${text ?? ''}`);
  return m ? { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]) } : undefined;
}

/** Negative, zero or positive as `a` is older than, the same as or newer than `b`. */
export function compareEtcdVersions(a: EtcdVersion, b: EtcdVersion): number {
  return a.major - b.major || a.minor - b.minor || a.patch - b.patch;
}

/** `3.5` of 3.5.35. */
export function etcdMinor(v: EtcdVersion): string {
  return `${v.major}.${v.minor}`;
}

const atLeast = (v: EtcdVersion | undefined, major: number, minor: number, patch = 0) =>
  v !== undefined && compareEtcdVersions(v, { major, minor, patch }) >= 0;

/** etcdutl from this version on restores with `--bump-revision N --mark-compacted`. */
export const BUMP_REVISION_SINCE = '3.5.10';

/** Whether a release has etcdutl's `--bump-revision --mark-compacted` (3.5.10 and later). */
export function hasBumpRevision(v: EtcdVersion | undefined): boolean {
  return atLeast(v, 3, 5, 10);
}

/** The versions `etcdctl version` and `etcdutl version` print in one pod; absent: not there. */
export interface EtcdToolVersions {
  etcdctl?: string;
  etcdutl?: string;
}

/**
 * The binaries a pod's etcd commands run with, names looked up in the pod's PATH. The
 * runbook's `ETCDCTL_API=3` is not set: etcdctl 3.4 and later default to the v3 API,
 * etcdctl 3.6 warns about the variable, and a distroless image has no `env` to set it.
 */
export interface EtcdTools {
  etcdctl: string;
  /** Runs `snapshot status` and `snapshot restore`; etcdctl does when absent (etcd 3.4). */
  etcdutl?: string;
}

/** etcdctl and no etcdutl, from PATH: etcd 3.4, as the runbook has it. */
export const ETCDCTL_ONLY: EtcdTools = { etcdctl: 'etcdctl' };

/** Which binaries a pod's commands use, and what they can do. */
export interface EtcdToolChoice {
  tools: EtcdTools;
  /** The offline commands' binary and version, e.g. `etcdutl 3.6.16`. */
  offline: string;
  /** `snapshot restore --bump-revision --mark-compacted` is available (etcdutl ≥ 3.5.10). */
  canBumpRevision: boolean;
  /** For people: which binary runs what. */
  description: string;
}

/**
 * The binaries for the commands of one pod, from the versions found in it: etcdctl for
 * the online commands (save, endpoint, get); etcdutl for the offline ones where the image
 * has it (3.5: preferred, etcdctl's are deprecated; 3.6: required), else etcdctl (3.4).
 * Fails MissingTools (non-retryable, before anything is changed) naming what is missing.
 */
export function chooseEtcdTools(found: EtcdToolVersions, where: string): EtcdToolChoice {
  const missing = (what: string) =>
    ApplicationFailure.nonRetryable(
      `${where} lacks ${what}. Nothing was changed by this check.`,
      FailureType.MissingTools,
    );
  if (found.etcdctl === undefined) throw missing('etcdctl (snapshot save, endpoint status)');
  const etcdctl = parseEtcdVersion(found.etcdctl);
  const etcdutl = found.etcdutl !== undefined ? parseEtcdVersion(found.etcdutl) : undefined;
  if (found.etcdutl !== undefined) {
    return {
      tools: { etcdctl: 'etcdctl', etcdutl: 'etcdutl' },
      offline: `etcdutl ${found.etcdutl}`,
      canBumpRevision: hasBumpRevision(etcdutl),
      description: `etcdctl ${found.etcdctl} (online commands), etcdutl ${found.etcdutl} (snapshot status and restore)`,
    };
  }
  // Unparseable counts as new: a missing snapshot status is then reported, not met later.
  if (etcdctl === undefined || atLeast(etcdctl, 3, 6)) {
    throw missing(
      `etcdutl: etcdctl ${found.etcdctl} has no snapshot status or restore (etcd moved them to etcdutl in 3.5 ` +
        'and removed them from etcdctl in 3.6)',
    );
  }
  return {
    tools: ETCDCTL_ONLY,
    offline: `etcdctl ${found.etcdctl}`,
    canBumpRevision: false,
    description: `etcdctl ${found.etcdctl} (every command; no etcdutl in the image)`,
  };
}

/**
 * Whether `snapshot status` by this tool (`etcdutl 3.6.16`, `etcdctl 3.4.23`) counts
 * totalKey as live user keys (etcdutl 3.6 and later) rather than every bbolt entry.
 */
export function countsLiveKeys(tool: string): boolean {
  return /^etcdutl\b/.test(tool) && atLeast(parseEtcdVersion(tool), 3, 6);
}

// ---------------------------------------------------------------------------------------
// The revision bump

/**
 * OpenShift's cluster-etcd-operator restores with `--bump-revision 1000000000` (a fixed
 * billion): our floor. Revisions are int64 in etcd and uint64 resourceVersions in
 * Kubernetes, so a large bump costs nothing; this project reads revisions as JS numbers,
 * so the bumped revision is kept below 2^53 (9e15: nine million such restores).
 */
export const MIN_REVISION_BUMP = 1_000_000_000;
const MAX_REVISION = Number.MAX_SAFE_INTEGER;
/** The observed figures are doubled: a rate read over a backup's minutes is not a promise. */
const SAFETY = 2;

export interface RevisionBumpInputs {
  /** The snapshot's revision R. */
  snapshotRevision: number;
  /** When the backup was taken (ISO time), and the revisions per second it observed then. */
  takenAt?: string;
  revisionsPerSecond?: number;
  /** The newest revision a member of the broken cluster still reports, if one answered. */
  liveRevision?: number;
  /** Now, in ms (workflow time). */
  now: number;
}

export interface RevisionBump {
  amount: number;
  /** How it was sized, for the plan and the result. */
  reasons: string[];
}

/**
 * How far a restore raises the revision: past every revision a client of the broken
 * cluster can have seen, so that their resourceVersions are all below the restored
 * revision and refused as compacted (clients relist) instead of silently trusted. Those
 * revisions are at most the live cluster's last revision: the live member's revision when
 * one still answers, else R plus the backup's revision rate times the time since the
 * backup. The bump is the largest of OpenShift's billion and twice each observed figure.
 */
export function revisionBump(i: RevisionBumpInputs): RevisionBump {
  const reasons = [`at least ${MIN_REVISION_BUMP} (the default of OpenShift's etcd restore)`];
  let amount = MIN_REVISION_BUMP;
  if (i.liveRevision !== undefined && i.liveRevision > i.snapshotRevision) {
    const seen = i.liveRevision - i.snapshotRevision;
    amount = Math.max(amount, SAFETY * seen);
    reasons.push(`${SAFETY} × the ${seen} revisions a live member made after the snapshot`);
  }
  const taken = i.takenAt !== undefined ? Date.parse(i.takenAt) : Number.NaN;
  if (i.revisionsPerSecond !== undefined && Number.isFinite(taken)) {
    const seconds = Math.max(0, (i.now - taken) / 1000);
    const expected = Math.ceil(i.revisionsPerSecond * seconds);
    amount = Math.max(amount, SAFETY * expected);
    reasons.push(
      `${SAFETY} × ${i.revisionsPerSecond.toFixed(2)} revisions/s observed at backup × ${Math.round(seconds)} s since`,
    );
  }
  const room = MAX_REVISION - i.snapshotRevision;
  if (amount > room) {
    amount = room;
    reasons.push(`capped so the revision stays below 2^53 (${MAX_REVISION})`);
  }
  return { amount: Math.ceil(amount), reasons };
}
