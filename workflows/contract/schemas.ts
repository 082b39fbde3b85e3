/**
 * Inputs and outputs of every workflow, as zod schemas: the single source of these types.
 * Workflows, the client and the worker all import this module, so a value is validated
 * the same way wherever it enters. It is bundled into workflow code: keep it pure.
 *
 * Field names follow the runbook's placeholders (SPEC.md): USER_CLUSTER_NAME becomes
 * `userClusterName`, GKE_ON_PREM_VERSION `gkeOnPremVersion`, and so on.
 */
import { z } from 'zod';
import { BACKUP_ID_PATTERN } from './names.js';

/** RFC 1123 label, as Kubernetes requires for namespace names: nothing a shell would parse. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** RFC 1123 subdomain, as Kubernetes requires for most object names. */
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export const dnsLabel = z
  .string()
  .max(63, 'must be at most 63 characters')
  .regex(
    DNS_LABEL,
    'must be a DNS label: lower-case letters, digits and "-", alphanumeric at both ends',
  );

export const dnsSubdomain = z
  .string()
  .max(253, 'must be at most 253 characters')
  .regex(DNS_SUBDOMAIN, 'must be a DNS subdomain: lower-case letters, digits, "-" and "."');

/** An absolute path on the worker's file system, without `..` segments or control characters. */
export const absolutePath = z
  .string()
  .startsWith('/', 'must be an absolute path')
  .refine((p) => !p.split('/').includes('..'), 'must not contain ".." segments')
  // biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
  .refine((p) => !/[\u0000-\u001f]/.test(p), 'must not contain control characters');

/** An absolute path inside a container (same rules; a separate name says where it is read). */
export const podPath = absolutePath;

/** A duration as Temporal takes it: `90s`, `30m`, `4h`, `2d`. */
export const duration = z
  .string()
  .regex(/^\d+(\.\d+)?(ms|s|m|h|d)$/, 'must be a duration such as 30m, 4h or 1d');

/** A container image tag, as the registry accepts it (e.g. `1.5.0-gke.0`). */
export const imageTag = z
  .string()
  .regex(
    /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/,
    'must be a container image tag such as 1.5.0-gke.0',
  );

/** A backup's id in the repository (see BACKUP_ID_PATTERN). */
export const backupIdSchema = z
  .string()
  .regex(
    BACKUP_ID_PATTERN,
    'must be a backup id: letters, digits, ".", "_", "-", alphanumeric first, at most 128',
  );

/** An etcd member number: the N of `kube-etcd-N`. */
export const memberNumber = z.number().int().min(0).max(2);

/** A URL template with `{member}` where the member number goes. */
const memberUrlTemplate = z
  .string()
  .regex(/^https:\/\/[^\s,=]+$/, 'must be an https URL without spaces, "," or "="')
  .refine((u) => u.includes('{member}'), 'must contain {member}');

/**
 * What differs between clusters that run the runbook: GKE on-prem's values (SPEC.md) are
 * the defaults; the simulated cluster supplies its own. Everything else is one code path.
 */
export const clusterProfileSchema = z.strictObject({
  /**
   * etcd client endpoint as seen from inside member N's etcd or utility pod (B2). May
   * contain `{member}` where the members' pods share one network (the simulated cluster).
   */
  etcdEndpoint: z
    .string()
    .regex(/^https:\/\/[^\s,]+$/, 'must be an https URL')
    .default('https://127.0.0.1:2379'),
  /**
   * Client URL of member N as another pod in the namespace reaches it (a backup taken from a
   * utility pod, when the etcd image has no shell): the members' headless Service names, as
   * the peer URLs use them; the member's server certificate must carry that name.
   */
  memberClientUrlTemplate: memberUrlTemplate.default('https://kube-etcd-{member}.kube-etcd:2379'),
  /** Peer URL of member N (H5c); `{member}` is replaced by N. */
  peerUrlTemplate: memberUrlTemplate.default('https://kube-etcd-{member}.kube-etcd:2380'),
  initialClusterToken: z
    .string()
    .regex(/^[A-Za-z0-9._-]+$/)
    .default('etcd-cluster-1'),
  /** Where the etcd Secret is mounted in etcd and utility pods. */
  certificatesDir: podPath.default('/etcd.local.config/certificates'),
  caFile: z
    .string()
    .regex(/^[A-Za-z0-9._-]+$/)
    .default('etcdCA.crt'),
  certFile: z
    .string()
    .regex(/^[A-Za-z0-9._-]+$/)
    .default('etcd.crt'),
  keyFile: z
    .string()
    .regex(/^[A-Za-z0-9._-]+$/)
    .default('etcd.key'),
  /** etcd's data directory inside the pods (the PVC's mount path). */
  dataDir: podPath.default('/var/lib/etcd'),
  /** Directory the runbook works in inside the pods (`/`). */
  workDir: podPath.default('/'),
  etcdStatefulSet: dnsSubdomain.default('kube-etcd'),
  etcdContainer: dnsLabel.default('kube-etcd'),
  etcdSecretPrefix: dnsSubdomain.default('kube-etcd-certs'),
  /** PVC of member N is `<prefix>-N`. */
  dataClaimPrefix: dnsSubdomain.default('data-kube-etcd'),
  apiserverStatefulSet: dnsSubdomain.default('kube-apiserver'),
  maintenanceDeployment: dnsSubdomain.default('gke-master-etcd-maintenance'),
  apiserverPdb: dnsSubdomain.default('kube-apiserver-pdb'),
  /** Utility pod N is `<prefix>-N` (R2, H5a). */
  utilityPodPrefix: dnsSubdomain.default('etcd-utility'),
  utilityContainer: dnsLabel.default('etcd-utility'),
  /** Image repository of the utility pod; the tag is the cluster's GKE on-prem version. */
  utilityImageRepository: z
    .string()
    .regex(/^[a-z0-9]+([._/:-][a-z0-9]+)*$/, 'must be an image repository')
    .default('gcr.io/gke-on-prem-release/etcd-util'),
  /** Label that the utility pod's nodeSelector uses to pin it to the user cluster. */
  clusterNameLabel: z.string().default('kubernetes.googleapis.com/cluster-name'),
});
export type ClusterProfile = z.infer<typeof clusterProfileSchema>;

/** The profile's fields that a worker's configuration may override (GKE's values otherwise). */
export const clusterProfileOverridesSchema = clusterProfileSchema.partial();
export type ClusterProfileOverrides = z.input<typeof clusterProfileOverridesSchema>;

/**
 * Only the fields given, without defaults (zod's partial() still fills them in): a patch
 * over another profile, as a user cluster's overrides are over its admin cluster's.
 */
export const clusterProfilePatchSchema = z.strictObject(
  Object.fromEntries(
    Object.entries(clusterProfileSchema.shape).map(([field, schema]) => [
      field,
      schema.removeDefault().optional(),
    ]),
  ),
) as unknown as z.ZodType<Partial<ClusterProfile>, ClusterProfileOverrides>;

/**
 * Fields every operation on a user cluster shares. Names only: which kubeconfig, which
 * directory, which images and endpoints — the worker's configuration says, by these names.
 */
const userClusterTarget = {
  /** USER_CLUSTER_NAME: the user cluster, and its namespace in the admin cluster. */
  userClusterName: dnsLabel,
  /** The admin cluster, as the worker's configuration names it; its only one if absent. */
  adminCluster: dnsLabel.optional(),
  /** The backup repository (B4), as the worker's configuration names it; its only one if absent. */
  repository: dnsLabel.optional(),
};

/** A file name (no directory): a snapshot the operator put in the worker's import inbox. */
export const inboxFileName = z
  .string()
  .max(255)
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]*$/,
    "must be a file name in the worker's import inbox: letters, digits, '.', '_', '-'",
  );

export const retentionPolicySchema = z.object({
  /** Keep the newest N backups of the cluster. */
  keepLast: z.number().int().min(1).default(7),
  /** Also keep the newest backup of each of the last N days. */
  keepDaily: z.number().int().min(0).default(0),
  /** Also keep the newest backup of each of the last N weeks. */
  keepWeekly: z.number().int().min(0).default(0),
});
export type RetentionPolicy = z.infer<typeof retentionPolicySchema>;

/**
 * What a backup does when another backup or restore holds the cluster's lock: `fail`
 * (ClusterBusy) or `skip` (outcome `skipped-busy`). Absent: skip when a Schedule started
 * the run (a restore in progress is not a failed backup), fail otherwise.
 */
export const onBusySchema = z.enum(['fail', 'skip']);
export type OnBusy = z.infer<typeof onBusySchema>;

export const backupUserClusterInputSchema = z.strictObject({
  ...userClusterTarget,
  /** Member to snapshot; if absent, kube-etcd-0 as the runbook does, or the first ready member. */
  sourceMember: memberNumber.optional(),
  /**
   * GKE_ON_PREM_VERSION: tag of the utility image, used only where the etcd image cannot
   * take the snapshot itself (no shell: distroless). Absent: the tag the cluster's
   * gke-master-etcd-maintenance Deployment runs of the same image.
   */
  gkeOnPremVersion: imageTag.optional(),
  /** Applied after the backup is stored; absent = keep everything. */
  retention: retentionPolicySchema.optional(),
  onBusy: onBusySchema.optional(),
});
export type BackupUserClusterInput = z.input<typeof backupUserClusterInputSchema>;
export type BackupUserClusterParams = z.output<typeof backupUserClusterInputSchema>;

/** An etcd id (cluster, member) in decimal, as etcd's JSON prints it. */
const etcdId = z.string().regex(/^\d+$/, 'must be a decimal etcd id');

/**
 * Where a snapshot was taken: the admin cluster (as the worker's configuration names it),
 * the user cluster's namespace by uid (a namespace deleted and made again is another
 * cluster), and what its etcd said of itself (`endpoint status`, `member list`).
 */
export const snapshotProvenanceSchema = z.object({
  adminCluster: dnsLabel,
  namespaceUid: z.string().min(1),
  /** The server version the source member reported, e.g. 3.6.16. */
  etcdVersion: z.string().min(1),
  clusterId: etcdId,
  /** The member the snapshot was saved from. */
  memberId: etcdId,
  /** Every member of the cluster then. */
  memberIds: z.array(etcdId),
});
export type SnapshotProvenance = z.infer<typeof snapshotProvenanceSchema>;

/** A stored backup, as its manifest describes it. */
export const backupRecordSchema = z.object({
  id: backupIdSchema,
  userClusterName: dnsLabel,
  member: memberNumber,
  sourcePod: z.string(),
  createdAt: z.iso.datetime(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  sizeBytes: z.number().int().nonnegative(),
  revision: z.number().int().nonnegative(),
  totalKeys: z.number().int().nonnegative(),
  etcdHash: z.number().int().nonnegative(),
  /** Keys in the keyspace at `revision`, read from the source member when the backup was taken. */
  keyCount: z.number().int().nonnegative().optional(),
  /**
   * `etcdctl endpoint hashkv --rev=<revision>` of the source member. The hash covers the
   * revisions after the member's compact revision, so it is only comparable with a hash
   * taken at the same compact revision: `kvHashCompactRevision`.
   */
  kvHash: z.number().int().nonnegative().optional(),
  /** The compact revision `kvHash` was computed at (hashkv's `compact_revision`; -1 = never compacted). */
  kvHashCompactRevision: z.number().int().min(-1).optional(),
  /** Taken by a backup of the cluster, or imported from a file by a restore. */
  origin: z.enum(['taken', 'imported']).default('taken'),
  /**
   * Where it was taken. Absent for an import (a file says nothing of its cluster) and for
   * backups taken before it was recorded.
   */
  provenance: snapshotProvenanceSchema.optional(),
  /**
   * Revisions per second the source member made while the backup ran (its revision read
   * before the save and after the copy): sizes a restore's revision bump.
   */
  revisionsPerSecond: z.number().nonnegative().optional(),
  /**
   * The tool whose `snapshot status` gave `totalKeys` (`etcdutl 3.6.16`): etcdutl 3.6
   * counts live keys, older tools every bbolt entry, so counts compare only between alike.
   */
  totalKeysCountedBy: z.string().optional(),
  toolVersions: z.record(z.string(), z.string()),
});
export type BackupRecord = z.infer<typeof backupRecordSchema>;

export const backupUserClusterResultSchema = z.object({
  /** `skipped-busy`: a scheduled run found another backup or restore of the cluster running. */
  outcome: z.enum(['stored', 'skipped-busy']),
  /** The backup stored; absent when skipped. */
  backup: backupRecordSchema.optional(),
  prunedBackupIds: z.array(z.string()),
  /** What went wrong without putting the backup in doubt (a leftover file in the pod...). */
  warnings: z.array(z.string()),
});
export type BackupUserClusterResult = z.infer<typeof backupUserClusterResultSchema>;

/**
 * Which backup to restore: one from the repository (`backupId`), or a snapshot file the
 * operator put in the worker's import inbox (`importFile`, a file name there).
 */
export const backupSourceSchema = z
  .strictObject({
    backupId: backupIdSchema.optional(),
    importFile: inboxFileName.optional(),
  })
  .refine((b) => (b.backupId === undefined) !== (b.importFile === undefined), {
    message: 'give exactly one of backupId or importFile',
  });
export type BackupSource = z.infer<typeof backupSourceSchema>;

export const restoreUserClusterInputSchema = z.strictObject({
  ...userClusterTarget,
  /** GKE_ON_PREM_VERSION: tag of the utility pod's image (R2, H5a). */
  gkeOnPremVersion: imageTag,
  backup: backupSourceSchema,
  /** 1 (non-HA, SPEC R) or 3 (HA, SPEC H); discovered from the cluster (H1) if absent. */
  members: z.union([z.literal(1), z.literal(3)]).optional(),
  /** Wait for a person's approval before the first destructive step. */
  requireApproval: z.boolean().default(false),
  /** How long the approval gate waits (e.g. `4h`, `30m`); after it the restore ends, nothing changed. */
  approvalTimeout: duration.default('4h'),
  /** Delete each member's old data right after it is replaced, as the runbook does; by default it is kept until the restored cluster is verified. */
  deleteOldDataImmediately: z.boolean().default(false),
  /**
   * Restore a backup taken from another cluster (another admin cluster, or a namespace of
   * the same name with another uid): refused unless this is true; the plan then says so.
   */
  allowForeignSnapshot: z.boolean().default(false),
  /**
   * Restore a snapshot taken from a newer etcd minor than the cluster runs (etcd does not
   * promise a newer release's data is readable by an older one): refused unless true.
   */
  allowNewerEtcd: z.boolean().default(false),
});
export type RestoreUserClusterInput = z.input<typeof restoreUserClusterInputSchema>;
export type RestoreUserClusterParams = z.output<typeof restoreUserClusterInputSchema>;

export const restoreUserClusterResultSchema = z.object({
  /**
   * `restored`: restored, verified, everything put back. `handed-over`: after the point of
   * no return a problem no retry could fix, and an operator chose to finish by hand:
   * `notPutBack` says what is still changed.
   */
  outcome: z.enum(['restored', 'handed-over']),
  userClusterName: dnsLabel,
  backupId: z.string(),
  members: z.array(memberNumber),
  /** What was checked, one line each, for the operator: only what was really checked. */
  verified: z.array(z.string()),
  /** For `handed-over`: what is still changed and what a person must do. */
  notPutBack: z.array(z.string()),
  /** Notes that do not put the restore in doubt (a cancellation refused, a lock lost after the point of no return...). */
  notes: z.array(z.string()),
});
export type RestoreUserClusterResult = z.infer<typeof restoreUserClusterResultSchema>;

/** Who someone is, as a signal or update says it: not empty. */
const personName = z.string().trim().min(1, 'must name who decides').max(200);

/** The payload of the signal `approve` and the update `approveRestore`. */
export const approvalSchema = z.strictObject({
  approvedBy: personName,
  comment: z.string().max(2000).optional(),
});
export type Approval = z.infer<typeof approvalSchema>;

/** The payload of the update (or signal) `resolveProblem`, for a restore waiting for an operator. */
export const operatorDecisionSchema = z.strictObject({
  /** `retry`: run the step again (its problem is fixed); `hand-over`: end the restore, finish by hand. */
  action: z.enum(['retry', 'hand-over']),
  by: personName,
  comment: z.string().max(2000).optional(),
});
export type OperatorDecision = z.infer<typeof operatorDecisionSchema>;

// ---------------------------------------------------------------------------------------
// The admin cluster (SPEC A2, A3) and the runbook's automatic backup script as one run (A)

/**
 * Where the admin cluster's own etcd is and how etcdctl reaches it from inside its pod
 * (SPEC A3): kubeadm's static pod and certificate paths are the defaults. A worker's
 * configuration may override them per admin cluster (the simulator's loopback port).
 */
export const adminEtcdProfileSchema = z.strictObject({
  namespace: dnsLabel.default('kube-system'),
  /** The runbook's `component=etcd,tier=control-plane`. */
  podLabelSelector: z
    .string()
    .regex(/^[A-Za-z0-9./_-]+=[A-Za-z0-9._-]+(,[A-Za-z0-9./_-]+=[A-Za-z0-9._-]+)*$/)
    .default('component=etcd,tier=control-plane'),
  container: dnsLabel.default('etcd'),
  etcdEndpoint: z
    .string()
    .regex(/^https:\/\/[^\s,]+$/, 'must be an https URL')
    .default('https://127.0.0.1:2379'),
  certificatesDir: podPath.default('/etc/kubernetes/pki/etcd'),
  caFile: z
    .string()
    .regex(/^[A-Za-z0-9._-]+$/)
    .default('ca.crt'),
  certFile: z
    .string()
    .regex(/^[A-Za-z0-9._-]+$/)
    .default('healthcheck-client.crt'),
  keyFile: z
    .string()
    .regex(/^[A-Za-z0-9._-]+$/)
    .default('healthcheck-client.key'),
  /** Where the snapshot is saved in the pod before it is copied out (the runbook works in `/`). */
  workDir: podPath.default('/'),
});
export type AdminEtcdProfile = z.infer<typeof adminEtcdProfileSchema>;
export const adminEtcdProfileOverridesSchema = adminEtcdProfileSchema.partial();

/** Names only, as for a user cluster: the worker's configuration says what they stand for. */
const adminClusterTarget = {
  /** The admin cluster, as the worker's configuration names it; its only one if absent. */
  adminCluster: dnsLabel.optional(),
  /** The backup repository (B4), as the worker's configuration names it; its only one if absent. */
  repository: dnsLabel.optional(),
};

export const backupAdminClusterInputSchema = z.strictObject({
  ...adminClusterTarget,
  /** Applied to the admin cluster's backups after this one is stored; absent = keep everything. */
  retention: retentionPolicySchema.optional(),
  onBusy: onBusySchema.optional(),
});
export type BackupAdminClusterInput = z.input<typeof backupAdminClusterInputSchema>;
export type BackupAdminClusterParams = z.output<typeof backupAdminClusterInputSchema>;

/** A mode as `ls -l` people read it, in octal: `0600`, `0755`. */
export const fileModeSchema = z
  .string()
  .regex(/^0[0-7]{3,4}$/, 'must be an octal mode such as 0600');

/**
 * One entry of an admin backup: the etcd snapshot, or an entry of the node's PKI tree as
 * tar listed it. `mode` and `owner` are the entry's on the node (what an operator puts
 * back); in the repository every file is 0600 and every directory 0700.
 */
export const adminBackupEntrySchema = z.object({
  /** Relative to the backup: `admin-cluster_snapshot.db`, `pki`, `pki/ca.key`, ... */
  path: z.string().min(1),
  type: z.enum(['file', 'directory', 'symlink', 'hardlink']),
  mode: fileModeSchema,
  /** `user:group` on the node (tar's names, or ids when it has none). */
  owner: z.string().optional(),
  /** Regular files: size and sha256 of the stored bytes. */
  sizeBytes: z.number().int().nonnegative().optional(),
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
  /** Symbolic and hard links: what they point to (links are recorded, not stored). */
  linkTarget: z.string().optional(),
});
export type AdminBackupEntry = z.infer<typeof adminBackupEntrySchema>;

/** The admin cluster's etcd snapshot (A3) as the manifest records it. */
export const adminEtcdSnapshotSchema = z.object({
  /** The file in the backup. */
  path: z.string(),
  sourcePod: z.string(),
  nodeName: z.string().optional(),
  /** The etcd container's image: its tag is the etcd release. */
  image: z.string().optional(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  sizeBytes: z.number().int().nonnegative(),
  revision: z.number().int().nonnegative(),
  totalKeys: z.number().int().nonnegative(),
  etcdHash: z.number().int().nonnegative(),
  keyCount: z.number().int().nonnegative().optional(),
  kvHash: z.number().int().nonnegative().optional(),
  kvHashCompactRevision: z.number().int().min(-1).optional(),
  /** The tool whose `snapshot status` gave `totalKeys` (see backupRecordSchema). */
  totalKeysCountedBy: z.string().optional(),
  /** What the member says of itself (`endpoint status`): server version and identity. */
  etcdVersion: z.string(),
  clusterId: z.string(),
  memberId: z.string(),
});

/** A stored admin-cluster backup (kind `admin`): the etcd snapshot and the node's PKI. */
export const adminBackupRecordSchema = z.object({
  kind: z.literal('admin'),
  id: backupIdSchema,
  adminCluster: dnsLabel,
  createdAt: z.iso.datetime(),
  /** The admin cluster's Kubernetes version (`/version`), for the vendor's restore procedure. */
  kubernetesVersion: z.string().optional(),
  etcd: adminEtcdSnapshotSchema,
  /** The PKI directory of the admin control-plane node (A2), as it was there. */
  pki: z.object({
    /** The directory on the node, e.g. /etc/kubernetes/pki. */
    directory: z.string(),
    /** Through a jump host (JUMP_IP). */
    viaJumpHost: z.boolean(),
    fileCount: z.number().int().nonnegative(),
    totalBytes: z.number().int().nonnegative(),
  }),
  /** Every entry of the backup: the snapshot and the PKI tree, with sizes, modes and sha256. */
  files: z.array(adminBackupEntrySchema),
  toolVersions: z.record(z.string(), z.string()),
});
export type AdminBackupRecord = z.infer<typeof adminBackupRecordSchema>;

export const backupAdminClusterResultSchema = z.object({
  outcome: z.enum(['stored', 'skipped-busy']),
  backup: adminBackupRecordSchema.optional(),
  prunedBackupIds: z.array(z.string()),
  warnings: z.array(z.string()),
});
export type BackupAdminClusterResult = z.infer<typeof backupAdminClusterResultSchema>;

export const backupAllInputSchema = z.strictObject({
  ...adminClusterTarget,
  /**
   * The user clusters to back up; absent: every user cluster of the admin cluster (the
   * worker's `userClusters`, or every namespace holding kube-etcd).
   */
  userClusterNames: z
    .array(dnsLabel)
    .min(1)
    .max(100)
    .refine((names) => new Set(names).size === names.length, 'must not name a cluster twice')
    .optional(),
  /** How many parts (the admin backup, each user cluster's) run at once. */
  maxConcurrent: z.number().int().min(1).max(10).default(2),
  /** Applied to each user cluster's backups, and to the admin cluster's. */
  retention: retentionPolicySchema.optional(),
});
export type BackupAllInput = z.input<typeof backupAllInputSchema>;
export type BackupAllParams = z.output<typeof backupAllInputSchema>;

/** One part of a backupAll run: the admin backup, or one user cluster's. */
export const backupAllPartSchema = z.object({
  kind: z.enum(['admin', 'user-cluster']),
  /** The admin cluster's name, or the user cluster's. */
  name: dnsLabel,
  outcome: z.enum(['stored', 'skipped-busy', 'failed']),
  /** The child workflow that did it. */
  workflowId: z.string(),
  backupId: z.string().optional(),
  /** For `failed`: what went wrong, and its failure type. */
  error: z.string().optional(),
  failureType: z.string().optional(),
  warnings: z.array(z.string()),
});
export type BackupAllPart = z.infer<typeof backupAllPartSchema>;

export const backupAllResultSchema = z.object({
  /** `stored`: every part stored (or skipped busy); `partly-failed` / `failed`: some / all failed. */
  outcome: z.enum(['stored', 'partly-failed', 'failed']),
  adminCluster: dnsLabel,
  /** How the user clusters were chosen. */
  userClustersFrom: z.string(),
  parts: z.array(backupAllPartSchema),
  /** The names of the parts that failed (`admin:<name>` for the admin backup). */
  failed: z.array(z.string()),
});
export type BackupAllResult = z.infer<typeof backupAllResultSchema>;
