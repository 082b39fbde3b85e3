/**
 * The steps of a restore, one function per runbook step (SPEC.md R1–R9, H1–H9), in the
 * order the workflow calls them. Where the product does a step differently from the
 * runbook, the step says so.
 */
import { ActivityCancellationType } from '@temporalio/workflow';
import { long, persistent, quick } from '../activities.js';
import {
  type ClusterInventory,
  type ClusterRef,
  dataClaimName,
  type EtcdHealthReport,
  importBackupId,
  type KeyspaceAt,
  memberPodName,
  memberProfile,
  type PdbManifest,
  type RestoreUserClusterParams,
  restoreSnapshotPathInPod,
  type SnapshotToRestore,
  utilityPodName,
  type WorkloadTarget,
} from '../contract/index.js';
import type { Progress } from '../progress.js';
import type { RestorePlan } from './approval.js';
import { checkCluster, range } from './checks.js';
import type { Undo } from './undo.js';

const MINUTE = 60_000;
const WAIT = 10 * MINUTE;

/**
 * Before the point of no return a cancelled step is waited for until its activity has
 * stopped, so that putting things back never races it.
 */
const UNTIL_STOPPED = { cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED };

/** What every step of one restore shares. */
export interface RestoreContext {
  params: RestoreUserClusterParams;
  progress: Progress;
  cluster: ClusterRef;
  /** Names this restore's scratch and aside directories on the members' volumes. */
  token: string;
  etcd: WorkloadTarget;
  apiserver: WorkloadTarget;
  maintenance: WorkloadTarget;
}

export function restoreContext(
  params: RestoreUserClusterParams,
  progress: Progress,
  token: string,
): RestoreContext {
  const cluster = { adminKubeconfig: params.adminKubeconfig, namespace: params.userClusterName };
  const workload = (kind: 'StatefulSet' | 'Deployment', name: string) => ({
    ...cluster,
    kind,
    name,
  });
  const { profile } = params;
  return {
    params,
    progress,
    cluster,
    token,
    etcd: workload('StatefulSet', profile.etcdStatefulSet),
    apiserver: workload('StatefulSet', profile.apiserverStatefulSet),
    maintenance: workload('Deployment', profile.maintenanceDeployment),
  };
}

/** Before anything: the backup verified (sha256 against its manifest, snapshot status). */
export async function verifyBackup(ctx: RestoreContext): Promise<SnapshotToRestore> {
  ctx.progress.step('verify the backup: sha256 against its manifest, etcdctl snapshot status');
  const snapshot = await quick.resolveSnapshotToRestore.executeWithOptions(
    { summary: 'verify the backup' },
    [
      {
        backupDir: ctx.params.backupDir,
        userClusterName: ctx.params.userClusterName,
        backup: ctx.params.backup,
        importId: importBackupId(ctx.token),
      },
    ],
  );
  const { record } = snapshot;
  ctx.progress.fact(
    'backup',
    `${snapshot.backupId}: revision ${record.revision}, ${record.sizeBytes} bytes, taken ${record.createdAt}`,
  );
  return snapshot;
}

/** The cluster as inspection found it, and the members to restore. */
export interface Inspection {
  inventory: ClusterInventory;
  members: number;
  /** The node of member N (H1); checkCluster made sure every member has one. */
  nodeOf(member: number): string;
}

/** H1, R1, H4: members and their nodes, the etcd Secret, PVCs, image, replica counts. */
export async function inspectClusterH1(ctx: RestoreContext): Promise<Inspection> {
  const { profile } = ctx.params;
  ctx.progress.step('H1 R1 H4: members and their nodes, etcd Secret, PVCs, replica counts');
  const inventory = await quick.inspectUserCluster.executeWithOptions(
    { summary: 'H1 list etcd members, nodes, Secret, PVCs' },
    [{ ...ctx.cluster, profile }],
  );
  const members = checkCluster(inventory, ctx.params.members, profile);
  const nodeOf = (n: number) => inventory.members.find((m) => m.member === n)?.nodeName as string;
  for (const m of inventory.members) {
    ctx.progress.member(
      m.member,
      `on ${m.nodeName}: ${m.waitingReason ?? m.phase ?? '?'}${m.ready ? ', ready' : ''}`,
    );
  }
  ctx.progress.fact('etcd image (H4)', inventory.members[0]?.image ?? 'unknown');
  ctx.progress.fact(
    'replicas before',
    `${profile.etcdStatefulSet} ${inventory.etcdReplicas}, ${profile.apiserverStatefulSet} ${inventory.apiserverReplicas}, ${profile.maintenanceDeployment} ${inventory.maintenanceReplicas}`,
  );
  return { inventory, members, nodeOf };
}

/** What will be destroyed and changed: shown at the approval gate. */
export function planRestore(
  ctx: RestoreContext,
  snapshot: SnapshotToRestore,
  { inventory, members }: Inspection,
): RestorePlan {
  const { profile } = ctx.params;
  const { revision } = snapshot.record;
  return {
    backupId: snapshot.backupId,
    snapshotRevision: revision,
    members,
    destroys: range(members).map(
      (n) =>
        `etcd data of member ${n} (PVC ${dataClaimName(profile, n)}), replaced by revision ${revision}`,
    ),
    changes: [
      `PodDisruptionBudget ${profile.apiserverPdb}: deleted, then re-created`,
      `${profile.apiserverStatefulSet} ${inventory.apiserverReplicas} → 0 → ${inventory.apiserverReplicas}`,
      `${profile.maintenanceDeployment} ${inventory.maintenanceReplicas} → 0 → ${inventory.maintenanceReplicas}`,
      `${profile.etcdStatefulSet} ${inventory.etcdReplicas} → 0 → ${inventory.etcdReplicas}`,
    ],
  };
}

/** H2: save the PDB manifest (kept in this workflow's history), then delete the PDB. */
export async function savePdbH2(ctx: RestoreContext, undo: Undo): Promise<PdbManifest | undefined> {
  const name = ctx.params.profile.apiserverPdb;
  ctx.progress.step(`H2 save PodDisruptionBudget ${name}, then delete it`);
  const pdb = await quick.savePdb.executeWithOptions(
    { summary: `H2 save PDB ${name}`, ...UNTIL_STOPPED },
    [{ ...ctx.cluster, name }],
  );
  if (!pdb) {
    ctx.progress.note(`no PodDisruptionBudget ${name}: nothing to save`);
    return undefined;
  }
  undo.register('H2', 'H9 re-create the PDB', () => recreatePdbH9(ctx, pdb));
  await quick.deletePdb.executeWithOptions({ summary: `H2 delete PDB ${name}`, ...UNTIL_STOPPED }, [
    { ...ctx.cluster, name },
  ]);
  return pdb;
}

/**
 * H3: scale kube-apiserver and gke-master-etcd-maintenance to 0, so nothing uses etcd.
 * The counts put back (H7, H8) are those read at inspection, not the runbook's 3 and 1.
 */
export async function scaleDownH3(ctx: RestoreContext, { inventory }: Inspection, undo: Undo) {
  const { apiserver, maintenance } = ctx;
  ctx.progress.step(`H3 scale ${apiserver.name} and ${maintenance.name} to 0`);
  for (const [id, target, replicas] of [
    ['H3-apiserver', apiserver, inventory.apiserverReplicas],
    ['H3-maintenance', maintenance, inventory.maintenanceReplicas],
  ] as const) {
    undo.register(id, `scale ${target.name} back`, () =>
      long.scaleTo.executeWithOptions({ summary: `undo: scale ${target.name} back` }, [
        { ...target, replicas, timeoutMs: WAIT },
      ]),
    );
    await long.scaleTo.executeWithOptions(
      { summary: `H3 scale ${target.name} to 0`, ...UNTIL_STOPPED },
      [{ ...target, replicas: 0, timeoutMs: WAIT }],
    );
  }
}

/**
 * Not a runbook step: stop every etcd member by scaling StatefulSet kube-etcd to 0. The
 * runbook replaces data under members it expects to be crash-looping (R7 then deletes the
 * pod, H6 restarts the rollout); a member that is not — the healthy third of an HA cluster,
 * or a crash-looping member between two restarts — would have its data replaced under a
 * running etcd. Started again in H6.
 */
export async function stopEtcdMembers(ctx: RestoreContext, { inventory }: Inspection, undo: Undo) {
  const { etcd } = ctx;
  ctx.progress.step(`stop every etcd member: scale ${etcd.name} to 0`);
  undo.register('stop-etcd', `scale ${etcd.name} back`, () =>
    long.scaleTo.executeWithOptions({ summary: `undo: scale ${etcd.name} back` }, [
      { ...etcd, replicas: inventory.etcdReplicas, timeoutMs: WAIT },
    ]),
  );
  await long.scaleTo.executeWithOptions(
    { summary: `stop etcd: scale ${etcd.name} to 0`, ...UNTIL_STOPPED },
    [{ ...etcd, replicas: 0, timeoutMs: WAIT }],
  );
}

/**
 * H5a, H5b (R2, R3): the utility pod on member N's node, mounting its PVC and the etcd
 * Secret; the snapshot copied into it and checked there (sha256, etcdctl snapshot status).
 */
export async function prepareMemberH5ab(
  ctx: RestoreContext,
  n: number,
  { inventory, nodeOf }: Inspection,
  snapshot: SnapshotToRestore,
  undo: Undo,
): Promise<void> {
  const { profile } = ctx.params;
  const pod = utilityPodName(profile, n);
  undo.register(`H5a-member-${n}`, `delete ${pod}`, () => deleteUtilityPod(ctx, pod, long));
  ctx.progress.member(n, `H5a utility pod ${pod} on ${nodeOf(n)}`);
  await long.ensureUtilityPod.executeWithOptions(
    { summary: `H5a utility pod ${pod}`, ...UNTIL_STOPPED },
    [
      {
        ...ctx.cluster,
        member: n,
        nodeName: nodeOf(n),
        gkeOnPremVersion: ctx.params.gkeOnPremVersion,
        secretName: inventory.secretName,
        profile,
        timeoutMs: WAIT,
      },
    ],
  );
  const target = {
    ...ctx.cluster,
    pod,
    container: profile.utilityContainer,
    path: restoreSnapshotPathInPod(profile),
  };
  const { record } = snapshot;
  ctx.progress.member(n, `H5b copying the snapshot into ${pod}`);
  await long.copySnapshotIntoPod.executeWithOptions(
    { summary: `H5b copy snapshot into ${pod}`, ...UNTIL_STOPPED },
    [
      {
        backup: {
          backupDir: ctx.params.backupDir,
          userClusterName: record.userClusterName,
          backupId: snapshot.backupId,
        },
        destination: target,
      },
    ],
  );
  await quick.checkSnapshotInPod.executeWithOptions(
    { summary: `check the snapshot in ${pod}`, ...UNTIL_STOPPED },
    [
      {
        ...target,
        expected: { sha256: record.sha256, etcdHash: record.etcdHash, revision: record.revision },
      },
    ],
  );
  ctx.progress.member(n, 'prepared: snapshot in place and verified');
}

/**
 * H5c H5d H5e H5f (R4 R5 R6) as one restartable step, in member N's utility pod:
 *   H5c/R4 restore the snapshot with the member's identity — into a scratch directory on
 *          its volume, not the pod's root, so no copy is needed;
 *   H5d/R5 `rm -r var/lib/etcd/*` — instead the old data is moved aside (a rename), and
 *          removed only once the restored cluster is verified (discardOldData);
 *   H5e/R6 `cp -r` the restored data in — a rename on the same volume instead;
 *   H5f    `rm -R kube-etcd-N.etcd` — the scratch directory is gone with the rename.
 * A crash at any instruction leaves the old data or the new, never a mix (see
 * activities/etcd/member-data.ts).
 */
export async function replaceDataH5cf(ctx: RestoreContext, n: number, members: number) {
  const { profile } = ctx.params;
  ctx.progress.member(n, 'H5c–H5e replacing data');
  const state = await persistent.replaceMemberData.executeWithOptions(
    { summary: `H5c-H5e restore member ${n} and swap its data` },
    [
      {
        ...ctx.cluster,
        pod: utilityPodName(profile, n),
        container: profile.utilityContainer,
        profile,
        member: n,
        members,
        snapshotPath: restoreSnapshotPathInPod(profile),
        token: ctx.token,
        dropOldData: ctx.params.deleteOldDataImmediately,
      },
    ],
  );
  ctx.progress.member(n, `data ${state}`);
}

/**
 * H5g, R9: delete utility pod N. Its root file system — the snapshot copied in (H5f
 * `rm snapshot.db`) — goes with it; the runbook's local manifest file never existed.
 */
export async function deleteUtilityPodH5g(ctx: RestoreContext, n: number) {
  const pod = utilityPodName(ctx.params.profile, n);
  await deleteUtilityPod(ctx, pod, persistent, `H5g delete ${pod}`);
  ctx.progress.member(n, 'data replaced; utility pod deleted');
}

function deleteUtilityPod(
  ctx: RestoreContext,
  pod: string,
  activities: typeof long,
  summary = `undo: delete ${pod}`,
) {
  return activities.deletePod.executeWithOptions({ summary }, [
    { ...ctx.cluster, name: pod, timeoutMs: WAIT },
  ]);
}

/** After the members' data is restored: what they report. */
export interface RestoredMembers {
  health: EtcdHealthReport;
  keyspace: KeyspaceAt;
}

/**
 * H6 (R7, R8): start the members on the restored data by scaling kube-etcd back to its
 * count — the runbook's `rollout restart` (H6) and pod deletion (R7), with no window in
 * which an old etcd can touch the data — then wait until every member is healthy (R8) and
 * read the keyspace every member holds at the snapshot's revision.
 */
export async function startMembersH6(
  ctx: RestoreContext,
  { inventory, members }: Inspection,
  snapshot: SnapshotToRestore,
): Promise<RestoredMembers> {
  const { etcd } = ctx;
  const { profile } = ctx.params;
  ctx.progress.step(
    `H6 start the members on the restored data: scale ${etcd.name} to ${inventory.etcdReplicas}`,
  );
  await persistent.scaleTo.executeWithOptions(
    { summary: `H6 start etcd: scale ${etcd.name} back` },
    [{ ...etcd, replicas: inventory.etcdReplicas, timeoutMs: WAIT }],
  );
  const firstMember = {
    ...ctx.cluster,
    pod: memberPodName(profile, 0),
    container: profile.etcdContainer,
    profile: memberProfile(profile, 0),
  };
  ctx.progress.step('R8: wait until every member is healthy');
  const health = await persistent.waitEtcdHealthy.executeWithOptions(
    { summary: 'R8 wait for healthy etcd' },
    [{ ...firstMember, members, timeoutMs: WAIT }],
  );
  const { revision } = snapshot.record;
  const keyspace = await persistent.readKeyspaceAt.executeWithOptions(
    { summary: `keyspace of every member at revision ${revision}` },
    [{ ...firstMember, revision, cluster: true }],
  );
  return { health, keyspace };
}

/** H7, H8: scale kube-apiserver and gke-master-etcd-maintenance back to their counts. */
export async function scaleUpH7H8(ctx: RestoreContext, { inventory }: Inspection) {
  const { apiserver, maintenance } = ctx;
  ctx.progress.step(`H7 H8 scale ${apiserver.name} and ${maintenance.name} back`);
  await persistent.scaleTo.executeWithOptions({ summary: `H7 scale ${apiserver.name} back` }, [
    { ...apiserver, replicas: inventory.apiserverReplicas, timeoutMs: WAIT },
  ]);
  await persistent.scaleTo.executeWithOptions({ summary: `H8 scale ${maintenance.name} back` }, [
    { ...maintenance, replicas: inventory.maintenanceReplicas, timeoutMs: WAIT },
  ]);
}

/** H9: re-create the PDB from the manifest saved in H2 (also H2's undo). */
export async function recreatePdbH9(ctx: RestoreContext, pdb: PdbManifest) {
  await quick.recreatePdb.executeWithOptions({ summary: 'H9 re-create the PDB' }, [
    { ...ctx.cluster, manifest: pdb },
  ]);
}

/** The replicas and PDB as they are after H9, for verification. */
export async function readBackControlPlane(ctx: RestoreContext): Promise<ClusterInventory> {
  ctx.progress.step(
    'verify: health, one cluster, the snapshot on every member, replicas and PDB as before',
  );
  return quick.inspectUserCluster.executeWithOptions({ summary: 'read back replicas and PDB' }, [
    { ...ctx.cluster, profile: ctx.params.profile },
  ]);
}

/** Verified: remove the old data each member's replacement set aside. */
export async function discardOldData(ctx: RestoreContext, members: number) {
  const { profile } = ctx.params;
  ctx.progress.step('verified: remove the old data set aside on each member');
  await Promise.all(
    range(members).map((n) =>
      persistent.discardOldMemberData.executeWithOptions(
        { summary: `remove old data of member ${n}` },
        [
          {
            ...ctx.cluster,
            pod: memberPodName(profile, n),
            container: profile.etcdContainer,
            profile,
            token: ctx.token,
          },
        ],
      ),
    ),
  );
}
