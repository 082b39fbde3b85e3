/**
 * `etcdctl` command lines (SPEC.md B2, H5c and the health checks the runbook leaves to
 * the operator) built from a cluster profile, and parsers for their `-w json` output.
 *
 * Builders are pure and return an argv array (no shell): the pod-exec and local-exec
 * activities run them as they are. Parsers validate with zod and fail with a message
 * that names the command and the field that was wrong.
 */
import { posix } from 'node:path';
import { z } from 'zod';
import {
  type ClusterProfile,
  defaultRestoreDataDir,
  describeIssues,
  type EndpointHashKv,
  type EndpointHealth,
  ETCDCTL_ONLY,
  type EtcdConnection,
  type EtcdTools,
  initialCluster,
  memberPodName,
  peerUrl,
  podPath,
  type SnapshotStatus,
} from '../../workflows/contract/index.js';

export { ETCDCTL_ONLY, type EtcdTools };

/** The binary of the offline snapshot commands. */
function offline(tools: EtcdTools): string {
  return tools.etcdutl ?? tools.etcdctl;
}

/** A path argument must be absolute: that also keeps it from being read as a flag. */
function checkedPath(what: string, value: string): string {
  const parsed = podPath.safeParse(value);
  if (!parsed.success) {
    throw new Error(`etcdctl ${what}: ${JSON.stringify(value)} ${describeIssues(parsed.error)}`);
  }
  return parsed.data;
}

/** `--endpoints` and the TLS flags of B2, which every online command needs. */
export function connectionFlags(profile: EtcdConnection): string[] {
  const cert = (file: string) => posix.join(profile.certificatesDir, file);
  return [
    `--endpoints=${profile.etcdEndpoint}`,
    `--cacert=${cert(profile.caFile)}`,
    `--cert=${cert(profile.certFile)}`,
    `--key=${cert(profile.keyFile)}`,
  ];
}

/**
 * B2: `etcdctl <connection flags> snapshot save <file>`, bounded: an endpoint that cannot
 * be reached fails after the dial timeout, and a save that stalls after `timeoutSeconds`
 * (etcdctl puts no deadline on `snapshot save` unless --command-timeout is given).
 */
export function snapshotSaveCommand(
  profile: EtcdConnection,
  file: string,
  tools: EtcdTools = ETCDCTL_ONLY,
  timeoutSeconds = 1800,
): string[] {
  return [
    tools.etcdctl,
    ...connectionFlags(profile),
    '--dial-timeout=10s',
    `--command-timeout=${timeoutSeconds}s`,
    'snapshot',
    'save',
    checkedPath('snapshot save', file),
  ];
}

/** `etcdctl|etcdutl snapshot status <file> -w json`: offline, reads the file only. */
export function snapshotStatusCommand(file: string, tools: EtcdTools = ETCDCTL_ONLY): string[] {
  return [offline(tools), 'snapshot', 'status', checkedPath('snapshot status', file), '-w', 'json'];
}

export interface SnapshotRestoreOptions {
  /** The snapshot file to restore. */
  file: string;
  /** N of the member this restore is for. */
  member: number;
  /** Size of the restored cluster: 1 (SPEC R) or 3 (SPEC H). */
  members: number;
  /** Target directory; must not exist yet (etcdctl refuses). Default `<workDir>/<name>.etcd`. */
  dataDir?: string;
  /**
   * etcdutl 3.5.10+ only: raise the restored revision by this much and mark it compacted,
   * so that clients' resourceVersions from before the restore are refused, not trusted.
   */
  bumpRevision?: number;
}

/**
 * H5c: `etcdctl snapshot restore <file>` with the member's identity.
 *
 * The one-member case (R4) is given the same identity flags with a one-member initial
 * cluster rather than the runbook's bare restore: a bare restore names the member
 * `default` and advertises `http://localhost:2380`, which the kube-etcd-0 pod's own flags
 * do not match. Restore is offline, so the B2 TLS flags the runbook repeats here are
 * ignored by etcdctl and are left out. The snapshot hash is checked (no --skip-hash-check):
 * files from `snapshot save` carry one.
 */
export function snapshotRestoreCommand(
  profile: ClusterProfile,
  options: SnapshotRestoreOptions,
  tools: EtcdTools = ETCDCTL_ONLY,
): string[] {
  const { member, members, bumpRevision } = options;
  if (!Number.isInteger(members) || members < 1) {
    throw new Error(`etcdctl snapshot restore: members must be a positive integer, got ${members}`);
  }
  if (!Number.isInteger(member) || member < 0 || member >= members) {
    throw new Error(
      `etcdctl snapshot restore: member must be an integer from 0 to ${members - 1}, got ${member}`,
    );
  }
  if (
    bumpRevision !== undefined &&
    (!tools.etcdutl || !Number.isSafeInteger(bumpRevision) || bumpRevision < 1)
  ) {
    throw new Error('snapshot restore: --bump-revision needs etcdutl and a positive integer');
  }
  const dataDir = options.dataDir ?? defaultRestoreDataDir(profile, member);
  return [
    offline(tools),
    'snapshot',
    'restore',
    checkedPath('snapshot restore', options.file),
    `--name=${memberPodName(profile, member)}`,
    `--initial-cluster=${initialCluster(profile, members)}`,
    `--initial-cluster-token=${profile.initialClusterToken}`,
    `--initial-advertise-peer-urls=${peerUrl(profile, member)}`,
    `--data-dir=${checkedPath('snapshot restore --data-dir', dataDir)}`,
    ...(bumpRevision !== undefined ? [`--bump-revision=${bumpRevision}`, '--mark-compacted'] : []),
  ];
}

/** `etcdctl version` / `etcdutl version`: the tool's own version (no server is asked). */
export function versionCommand(binary: 'etcdctl' | 'etcdutl'): string[] {
  return [binary, 'version'];
}

/** `etcdctl version: 3.6.16\nAPI version: 3.6` → `3.6.16`. */
export function parseToolVersion(binary: 'etcdctl' | 'etcdutl', stdout: string): string {
  const version = new RegExp(`^${binary} version: (\\S+)`, 'm').exec(stdout)?.[1];
  if (!version)
    throw new EtcdctlOutputError(
      `${binary} version printed no version: ${JSON.stringify(stdout.slice(0, 200))}`,
    );
  return version;
}

/**
 * Whether a command printed a command's help instead of its result: etcdctl 3.6 answers
 * `snapshot status` with the `snapshot` help and exit code 0 (measured).
 */
export function isCommandHelp(stdout: string): boolean {
  return /^USAGE:/m.test(stdout) && /^COMMANDS:/m.test(stdout);
}

/** `etcdctl <connection flags> member list -w json`: every member, also those that are down. */
export function memberListCommand(
  profile: EtcdConnection,
  tools: EtcdTools = ETCDCTL_ONLY,
): string[] {
  return [tools.etcdctl, ...connectionFlags(profile), 'member', 'list', '-w', 'json'];
}

export interface EndpointQueryOptions {
  /** Ask every member in the member list, not only the profile's endpoint. */
  cluster?: boolean;
}

/** `etcdctl <connection flags> endpoint health -w json [--cluster]`. Exits 1 if any is unhealthy. */
export function endpointHealthCommand(
  profile: EtcdConnection,
  options: EndpointQueryOptions = {},
  tools: EtcdTools = ETCDCTL_ONLY,
): string[] {
  return endpointCommand(profile, 'health', [], options, tools);
}

/**
 * `etcdctl <connection flags> endpoint status -w json [--cluster]`. An endpoint that does
 * not answer is left out of the JSON (reported on stderr) and the exit code is 1.
 */
export function endpointStatusCommand(
  profile: EtcdConnection,
  options: EndpointQueryOptions = {},
  tools: EtcdTools = ETCDCTL_ONLY,
): string[] {
  return endpointCommand(profile, 'status', [], options, tools);
}

/** How long etcdctl may take for a command that reads the whole keyspace (a count, a hash). */
export const SCAN_TIMEOUT_S = 600;

/**
 * How many keys existed at `revision`: `get "" --prefix --keys-only --limit=1 --rev=R`.
 * The response's `count` is the whole range's size even with a limit (etcdctl 3.4 has no
 * --count-only). With `revision` 0, the current revision.
 */
export function keyCountCommand(
  profile: EtcdConnection,
  revision: number,
  tools: EtcdTools = ETCDCTL_ONLY,
): string[] {
  return [
    tools.etcdctl,
    ...connectionFlags(profile),
    'get',
    '',
    '--prefix',
    '--keys-only',
    '--limit=1',
    `--rev=${checkedRevision(revision)}`,
    // A count walks the whole keyspace: etcdctl's default 5 s does not last on a big one.
    `--command-timeout=${SCAN_TIMEOUT_S}s`,
    '-w',
    'json',
  ];
}

/**
 * `etcdctl watch "" --prefix --rev=R`: a watch of the whole keyspace from revision R, as an
 * informer resumes one from its resourceVersion. On a revision etcd has compacted the
 * server cancels it at once: etcdctl prints `watch was canceled (etcdserver: mvcc: required
 * revision has been compacted)` and exits 5 (measured with 3.4.23, 3.5.35 and 3.6.16). On
 * one it has not, the watch stays open: the caller bounds it.
 */
export function watchFromRevisionCommand(
  profile: EtcdConnection,
  revision: number,
  tools: EtcdTools = ETCDCTL_ONLY,
): string[] {
  return [
    tools.etcdctl,
    ...connectionFlags(profile),
    'watch',
    '',
    '--prefix',
    `--rev=${checkedRevision(revision)}`,
  ];
}

/** What etcd says of a read or watch at a revision it has compacted. */
export const COMPACTED = /required revision has been compacted/;

/**
 * `endpoint hashkv --rev=R -w json [--cluster]`: a hash of the key-value store up to
 * revision R. Members restored from one snapshot agree on it, and agree with the member
 * the snapshot was taken from.
 */
export function hashKvCommand(
  profile: EtcdConnection,
  revision: number,
  options: EndpointQueryOptions = {},
  tools: EtcdTools = ETCDCTL_ONLY,
): string[] {
  return endpointCommand(
    profile,
    'hashkv',
    // Hashing reads the whole keyspace: etcdctl's default 5 s does not last on a big one.
    [`--rev=${checkedRevision(revision)}`, `--command-timeout=${SCAN_TIMEOUT_S}s`],
    options,
    tools,
  );
}

/** `etcdctl <connection flags> endpoint <subcommand> <args> -w json [--cluster]`. */
function endpointCommand(
  profile: EtcdConnection,
  subcommand: 'health' | 'status' | 'hashkv',
  args: string[],
  options: EndpointQueryOptions,
  tools: EtcdTools,
): string[] {
  return [
    tools.etcdctl,
    ...connectionFlags(profile),
    'endpoint',
    subcommand,
    ...args,
    '-w',
    'json',
    ...(options.cluster ? ['--cluster'] : []),
  ];
}

function checkedRevision(revision: number): number {
  if (!Number.isSafeInteger(revision) || revision < 0) {
    throw new Error(`etcdctl: revision must be a non-negative integer, got ${revision}`);
  }
  return revision;
}

// ---------------------------------------------------------------------------------------
// Output parsers

/** A JSON number literal, matched where the scan stands (sticky). */
const JSON_NUMBER = /-?\d+(\.\d+)?([eE][+-]?\d+)?/y;

/**
 * Rewrites every integer literal of a JSON text as a string literal, so `JSON.parse` keeps
 * uint64 values (etcd member and cluster ids) exactly instead of rounding them to doubles.
 * Strings are copied untouched; numbers with a fraction or exponent are left as numbers.
 */
export function quoteJsonIntegers(json: string): string {
  let out = '';
  let i = 0;
  while (i < json.length) {
    const ch = json[i];
    if (ch === '"') {
      const start = i;
      i++;
      while (i < json.length && json[i] !== '"') i += json[i] === '\\' ? 2 : 1;
      i++;
      out += json.slice(start, i);
    } else if (ch === '-' || (ch !== undefined && ch >= '0' && ch <= '9')) {
      JSON_NUMBER.lastIndex = i;
      const match = JSON_NUMBER.exec(json);
      const token = match?.[0] ?? ch;
      out += match && match[1] === undefined && match[2] === undefined ? `"${token}"` : token;
      i += token.length;
    } else {
      out += ch;
      i++;
    }
  }
  return out;
}

/** A uint64 as a decimal string, exactly as etcd printed it. */
const uint64 = z
  .string({ error: 'must be an unsigned integer' })
  .regex(/^\d+$/, 'must be an unsigned integer');
/** An integer that fits a JS number exactly (zod's int() rejects unsafe integers). */
const safeCount = uint64
  .transform(Number)
  .pipe(z.number().int('must be at most Number.MAX_SAFE_INTEGER').nonnegative());

export class EtcdctlOutputError extends Error {
  override name = 'EtcdctlOutputError';
}

function parseJsonOutput<T>(what: string, stdout: string, schema: z.ZodType<T>): T {
  let raw: unknown;
  try {
    raw = JSON.parse(quoteJsonIntegers(stdout));
  } catch {
    const excerpt = stdout.trim().slice(0, 200);
    throw new EtcdctlOutputError(`etcdctl ${what}: output is not JSON: ${JSON.stringify(excerpt)}`);
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    throw new EtcdctlOutputError(
      `etcdctl ${what}: unexpected output: ${describeIssues(parsed.error)}`,
    );
  }
  return parsed.data;
}

const snapshotStatusSchema: z.ZodType<SnapshotStatus, unknown> = z.object({
  hash: safeCount,
  revision: safeCount,
  totalKey: safeCount,
  totalSize: safeCount,
});

/** `snapshot status -w json` → `{ hash, revision, totalKey, totalSize }`. */
export function parseSnapshotStatus(stdout: string): SnapshotStatus {
  return parseJsonOutput('snapshot status -w json', stdout, snapshotStatusSchema);
}

const endpointStatusSchema = z
  .array(
    z.object({
      Endpoint: z.string().min(1),
      Status: z.object({
        header: z.object({ cluster_id: uint64, member_id: uint64, revision: safeCount }),
        version: z.string(),
        dbSize: safeCount,
        // Absent when the member knows no leader (no quorum: errors says `no leader`), as
        // in a cluster to restore whose other members are broken (measured: 3.5.35).
        leader: uint64.default('0'),
        raftTerm: safeCount,
        errors: z.array(z.string()).optional(),
      }),
    }),
  )
  .transform((entries) =>
    entries.map(({ Endpoint, Status }) => ({
      endpoint: Endpoint,
      /** Decimal, as etcd's JSON prints it; `etcdctl member list` prints it in hex. */
      memberId: Status.header.member_id,
      clusterId: Status.header.cluster_id,
      revision: Status.header.revision,
      leader: Status.leader,
      isLeader: Status.leader === Status.header.member_id,
      raftTerm: Status.raftTerm,
      dbSize: Status.dbSize,
      version: Status.version,
      /** Alarms such as NOSPACE; etcd omits the field when there are none. */
      errors: Status.errors ?? [],
    })),
  );
export type EndpointStatus = z.infer<typeof endpointStatusSchema>[number];

/** `endpoint status -w json` → one entry per endpoint that answered. Ids are decimal strings. */
export function parseEndpointStatus(stdout: string): EndpointStatus[] {
  return parseJsonOutput('endpoint status -w json', stdout, endpointStatusSchema);
}

const endpointHealthSchema = z
  .array(
    z.object({
      endpoint: z.string().min(1),
      health: z.boolean(),
      error: z.string().optional(),
    }),
  )
  .transform((entries) =>
    entries.map(({ endpoint, health, error }) =>
      error ? { endpoint, health, error } : { endpoint, health },
    ),
  );

/** `endpoint health -w json` → `{ endpoint, health, error? }[]` (also printed when it exits 1). */
export function parseEndpointHealth(stdout: string): EndpointHealth[] {
  return parseJsonOutput('endpoint health -w json', stdout, endpointHealthSchema);
}

const keyCountSchema = z
  .object({ count: safeCount.optional() })
  .transform(({ count }) => count ?? 0);

/** `get ... --limit=1 -w json` → the number of keys in the range (etcd omits a zero count). */
export function parseKeyCount(stdout: string): number {
  return parseJsonOutput('get --keys-only --limit=1 -w json', stdout, keyCountSchema);
}

/** A signed int64 that fits a JS number (etcd prints -1 for "never compacted"). */
const safeSigned = z
  .string({ error: 'must be an integer' })
  .regex(/^-?\d+$/, 'must be an integer')
  .transform(Number)
  .pipe(z.number().int('must fit Number.MAX_SAFE_INTEGER'));

const hashKvSchema = z
  .array(
    z.object({
      Endpoint: z.string().min(1),
      HashKV: z.object({
        header: z.object({ member_id: uint64, revision: safeCount }),
        hash: safeCount.optional(),
        compact_revision: safeSigned.optional(),
      }),
    }),
  )
  .transform((entries) =>
    entries.map(({ Endpoint, HashKV }) => ({
      endpoint: Endpoint,
      memberId: HashKV.header.member_id,
      hash: HashKV.hash ?? 0,
      compactRevision: HashKV.compact_revision ?? 0,
    })),
  );

/**
 * `endpoint hashkv -w json` → `{ endpoint, memberId, hash, compactRevision }[]`. The hash
 * covers the revisions after `compactRevision` (and the newest of each key before it), so
 * two hashes are comparable only at the same compact revision.
 */
export function parseHashKv(stdout: string): EndpointHashKv[] {
  return parseJsonOutput('endpoint hashkv -w json', stdout, hashKvSchema);
}

const memberListSchema = z
  .object({
    header: z.object({ cluster_id: uint64, member_id: uint64 }),
    members: z.array(z.object({ ID: uint64, name: z.string().optional() })),
  })
  .transform(({ header, members }) => ({
    clusterId: header.cluster_id,
    /** The member that answered. */
    memberId: header.member_id,
    memberIds: members.map((m) => m.ID),
  }));

/** `member list -w json` → cluster id, the answering member's id, every member's id (decimal). */
export function parseMemberList(stdout: string): z.infer<typeof memberListSchema> {
  return parseJsonOutput('member list -w json', stdout, memberListSchema);
}

/** etcd prints member ids in decimal in JSON and in hex elsewhere (member list, logs). */
export function memberIdToHex(decimalId: string): string {
  return BigInt(uint64.parse(decimalId)).toString(16);
}
