/**
 * The values that cross the activity boundary: what workflows pass to activities and get
 * back. They travel through workflow history as JSON, so they are plain data — and never
 * a path on the worker, key material or a kubeconfig's contents.
 */
import type { BackupRecord } from './schemas.js';

/** Which admin cluster, and which user cluster namespace in it. */
export interface ClusterRef {
  /** Kubeconfig path on the worker; the worker's default if absent. */
  adminKubeconfig?: string;
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

/** Which backup repository: the worker's default if `backupDir` is absent. */
export interface RepositoryRef {
  backupDir?: string;
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
  pdbPresent: boolean;
}

/** Where a backup's snapshot is taken from (B1). */
export interface SnapshotSource {
  member: number;
  pod: string;
  nodeName?: string;
  secretName: string;
  /** Why this member, for the operator. */
  reason: string;
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
  };
  spec: Record<string, unknown>;
}

/** `etcdctl snapshot status -w json`. */
export interface SnapshotStatus {
  hash: number;
  revision: number;
  totalKey: number;
  totalSize: number;
}

/** A snapshot file in a pod, described as the backup manifest needs it. */
export interface SnapshotInPod {
  path: string;
  sizeBytes: number;
  sha256: string;
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
}

/** Fingerprint of the keyspace at one revision. */
export interface KeyspaceAt {
  revision: number;
  keyCount: number;
  hashes: EndpointHashKv[];
}

/** What the members say of themselves: health, cluster IDs and revisions. */
export interface EtcdHealthReport {
  health: EndpointHealth[];
  clusterIds: string[];
  revisions: number[];
}

export interface CopyResult {
  sizeBytes: number;
  sha256: string;
  /** Bytes already in place from an earlier attempt, not sent again. */
  resumedFromBytes: number;
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
