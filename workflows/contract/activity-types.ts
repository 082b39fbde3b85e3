/**
 * The values that cross the activity boundary: what workflows pass to activities and get
 * back. They travel through workflow history as JSON, so they are plain data — and never
 * a path on the worker, key material or a kubeconfig's contents.
 */
import type {
  AdminBackupEntry,
  AdminBackupRecord,
  AdminEtcdProfile,
  BackupRecord,
  ClusterProfile,
} from './schemas.js';

/** Which admin cluster (a name in the worker's configuration), and which user cluster namespace in it. */
export interface ClusterRef {
  adminCluster: string;
  namespace: string;
}

export interface PodRef extends ClusterRef {
  pod: string;
  container: string;
}

export interface PodFileRef extends PodRef {
  /** Absolute path inside the container. */
  path: string;
}

export type WorkloadKind = 'StatefulSet' | 'Deployment';

export interface WorkloadTarget extends ClusterRef {
  kind: WorkloadKind;
  name: string;
}

/** Which backup repository: a name in the worker's configuration. */
export interface RepositoryRef {
  repository: string;
}

/**
 * What a workflow's names resolve to on the worker: the admin cluster and repository it
 * will use (defaults filled in), and the cluster profile the worker's configuration gives
 * that admin cluster. Checked: the admin cluster's kubeconfig loads, the user cluster is
 * one of its user clusters.
 */
export interface ResolvedTarget {
  adminCluster: string;
  repository: string;
  profile: ClusterProfile;
}

/** The host that keeps a repository, and the task queue of its activities there. */
export interface RepositoryHost {
  host: string;
  taskQueue: string;
}

/** One backup in a repository. */
export interface BackupRef extends RepositoryRef {
  userClusterName: string;
  backupId: string;
}

/** An etcd member's pod as H1 and H4 see it. */
export interface MemberPod {
  name: string;
  member: number;
  nodeName?: string;
  image?: string;
  phase?: string;
  ready: boolean;
  restartCount: number;
  /** e.g. CrashLoopBackOff */
  waitingReason?: string;
  uid?: string;
}

/** What inspection learns of a user cluster (H1, H4, R1) before anything changes. */
export interface ClusterInventory {
  members: MemberPod[];
  secretName: string;
  /** PVC name per member, as found. */
  dataClaims: string[];
  nodes: string[];
  etcdReplicas: number;
  apiserverReplicas: number;
  maintenanceReplicas: number;
  /** Pods Ready at inspection: all an undo may wait for (corrupt members never were). */
  ready: ReplicaCounts;
  pdbPresent: boolean;
  etcdStatefulSet: EtcdStatefulSetShape;
  /** The user cluster's namespace uid: which cluster this is (a backup's provenance says the same). */
  namespaceUid: string;
  /** The record an earlier restore left on the cluster, if it did not finish. */
  previousRestore?: RestoreRecord;
}

/** Where a backup's snapshot is taken from (B1). */
export interface SnapshotSource {
  member: number;
  pod: string;
  nodeName?: string;
  secretName: string;
  /** Why this member, for the operator. */
  reason: string;
  /** The user cluster's namespace uid (the backup's provenance). */
  namespaceUid: string;
  /**
   * The tag gke-master-etcd-maintenance runs of the utility image: the utility pod's tag
   * when the backup is taken from one and the input names none.
   */
  utilityImageTag?: string;
}

/** PodDisruptionBudget as a manifest that can be created again: no server-owned fields (H2). */
export interface PdbManifest {
  apiVersion: 'policy/v1';
  kind: 'PodDisruptionBudget';
  metadata: {
    name: string;
    namespace: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: Array<{
      apiVersion: string;
      kind: string;
      name: string;
      uid: string;
      controller?: boolean;
      blockOwnerDeletion?: boolean;
    }>;
  };
  spec: Record<string, unknown>;
}

/** The PDB as H2 saved it: the manifest, and the uid of the object deleted. */
export interface SavedPdb {
  manifest: PdbManifest;
  uid?: string;
}

/** Replica counts of the workloads a restore scales. */
export interface ReplicaCounts {
  etcd: number;
  apiserver: number;
  maintenance: number;
}

/**
 * What a restore records on the cluster itself (a ConfigMap in the user cluster's
 * namespace) before it changes anything, so a restore started after an abandoned one reads
 * the true originals, not the zeros it left.
 */
export interface RestoreRecord {
  /** The restore that wrote it. */
  workflowId: string;
  startedAt: string;
  replicas: ReplicaCounts;
  /** The PDB deleted in H2, if there was one. */
  pdb?: PdbManifest;
  /** Member N's node ("0" → node): once kube-etcd is stopped, no pod says where it ran. */
  memberNodes: Record<string, string>;
}

/** How kube-etcd's pods are started, as far as a restore's H6 depends on it. */
export interface EtcdStatefulSetShape {
  /** Kubernetes' default is OrderedReady: one pod at a time, each Ready before the next. */
  podManagementPolicy: 'OrderedReady' | 'Parallel';
  /**
   * Whether a restored member passes kube-etcd's readiness probe before its cluster has a
   * quorum: `none` (no probe), `alone` (a TCP port, `/health?serializable=true` or `/livez`
   * on etcd's HTTP endpoints), or `quorum` — any probe that goes through etcd's client API,
   * serializable reads included: a member started without a quorum serves no client
   * until its cluster has a leader (measured on etcd 3.4 and 3.6).
   */
  readiness: 'none' | 'alone' | 'quorum';
  /** The probe, described for people. */
  readinessProbe?: string;
}

/** `etcdctl snapshot status -w json`. */
export interface SnapshotStatus {
  hash: number;
  revision: number;
  totalKey: number;
  totalSize: number;
}

/** A snapshot file in a pod, described as the backup manifest needs it. */
/** A snapshot saved in a pod (B2): where, its size, etcd's reading of it. Hashed only on its way out. */
export interface SnapshotInPod {
  path: string;
  sizeBytes: number;
  status: SnapshotStatus;
}

export interface EndpointHealth {
  endpoint: string;
  health: boolean;
  error?: string;
}

export interface EndpointHashKv {
  endpoint: string;
  /** Decimal, as etcd's JSON prints it. */
  memberId: string;
  hash: number;
  /** The member's compact revision the hash was computed at (-1: never compacted). */
  compactRevision: number;
}

/** Fingerprint of the keyspace at one revision. */
export interface KeyspaceAt {
  revision: number;
  keyCount: number;
  hashes: EndpointHashKv[];
}

/** What the members say of themselves: health, cluster IDs, member IDs and revisions. */
export interface EtcdHealthReport {
  health: EndpointHealth[];
  clusterIds: string[];
  /** One per member that answered `endpoint status`, decimal. */
  memberIds: string[];
  revisions: number[];
  /** The server version each member reports. */
  versions: string[];
}

export interface CopyResult {
  sizeBytes: number;
  sha256: string;
  /** Bytes already in place from an earlier attempt, not sent again. */
  resumedFromBytes: number;
  /** Bytes that crossed the exec stream in this attempt (compressed, if `compression`). */
  wireBytes?: number;
  /** Set when the bytes crossed the wire gzipped (the files at both ends are not). */
  compression?: 'gzip';
}

/** The backup a restore will use, verified; where its bytes are is the worker's business. */
export interface SnapshotToRestore {
  backupId: string;
  record: BackupRecord;
  checks: string[];
}

export interface VerifiedBackup {
  record: BackupRecord;
  /** What was checked, one line each, for the operator. */
  checks: string[];
}

/**
 * What the caller knows about a snapshot when sealing it. The store fills in id and
 * cluster, and computes sha256 and size; when the caller gives them (measured at the
 * source), they must match or the commit fails as corrupt.
 */
export type CommitRequest = Omit<
  BackupRecord,
  'id' | 'userClusterName' | 'sha256' | 'sizeBytes'
> & {
  sha256?: string;
  sizeBytes?: number;
};

/** What one member's data replacement found and did (R4–R6, H5c–H5e). */
export type ReplaceState = 'replaced' | 'already-replaced';

/** What etcdctl needs to reach a member from inside its pod: endpoint and TLS files (B2, A3). */
export type EtcdConnection = Pick<
  ClusterProfile,
  'etcdEndpoint' | 'certificatesDir' | 'caFile' | 'certFile' | 'keyFile'
>;

/**
 * An admin cluster's names resolved on the worker: the admin cluster and repository, where
 * its etcd is, and which PKI directory is copied. How the node is reached over SSH (host,
 * user, key, jump host) stays on the worker: only whether a jump host is used is said.
 */
export interface AdminTarget {
  adminCluster: string;
  repository: string;
  etcd: AdminEtcdProfile;
  pki: { directory: string; viaJumpHost: boolean };
}

/** One admin backup in a repository. */
export interface AdminBackupRef extends RepositoryRef {
  adminCluster: string;
  backupId: string;
}

/** The admin etcd pod a backup snapshots (A3), and the version facts read with it. */
export interface AdminEtcdSource {
  pod: string;
  container: string;
  nodeName?: string;
  image?: string;
  /** The admin cluster's Kubernetes version (`/version` gitVersion). */
  kubernetesVersion?: string;
}

/** `etcdctl endpoint status` of one member: its version and identity. */
export interface EtcdMemberStatus {
  version: string;
  /** Decimal, as etcd's JSON prints them. */
  clusterId: string;
  memberId: string;
  revision: number;
  dbSize: number;
  /** Every member of its cluster (`member list`), when asked for. */
  memberIds?: string[];
}

/** A member of a cluster to restore that still answered `endpoint status` (H1): what it runs. */
export interface AnsweringMember extends EtcdMemberStatus {
  pod: string;
}

/** What etcd answered a request at a revision: refused as compacted, or not (and what it said). */
export interface RevisionAnswer {
  refused: boolean;
  detail: string;
}

/** A read and a watch at one revision, after a restore that marked it compacted. */
export interface CompactionProbe {
  revision: number;
  read: RevisionAnswer;
  watch: RevisionAnswer;
}

/** The PKI tree copied over SSH (A2): every entry as on the node; contents stay in the repository. */
export interface PkiCopyResult {
  directory: string;
  viaJumpHost: boolean;
  entries: AdminBackupEntry[];
  fileCount: number;
  totalBytes: number;
}

/** What the workflow knows of an admin backup when sealing it; the store checks every file. */
export type AdminCommitRequest = Omit<AdminBackupRecord, 'kind' | 'id' | 'adminCluster'>;

/** Which user clusters a backupAll run covers, and how they were chosen. */
export interface UserClusterSelection {
  adminCluster: string;
  repository: string;
  userClusterNames: string[];
  from: string;
}
