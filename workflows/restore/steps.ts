/**
 * The steps of a restore, each a function named by its runbook step (SPEC.md R1–R9,
 * H1–H9), in the order the workflow calls them. Where the product does a step differently
 * from the runbook, or in another place, the step says so.
 *
 * Before the point of no return, every change is recorded in the Undo ledger before it is
 * made, with how to put it back. After it, every step runs under the Operator: it is
 * retried, repairs what it can, and waits for a person rather than fail.
 */
import { ActivityCancellationType, ApplicationFailure, workflowInfo } from '@temporalio/workflow';
import { long, persistent, quick, type RepositoryProxies, repositoryHost } from '../activities.js';
import {
  BUMP_REVISION_SINCE,
  type ClusterInventory,
  type ClusterRef,
  type CompactionProbe,
  chooseEtcdTools,
  dataClaimName,
  type EtcdTools,
  FailureType,
  importBackupId,
  memberPodName,
  memberProfile,
  type PdbManifest,
  type ReplicaCounts,
  type ResolvedTarget,
  type RestoreUserClusterParams,
  restoreSnapshotPathInPod,
  type SnapshotToRestore,
  UTILITY_POD_TOOLS,
  utilityPodName,
  type WorkloadTarget,
} from '../contract/index.js';
import type { Progress } from '../progress.js';
import type { RestorePlan } from './approval.js';
import {
  changesSince,
  checkCluster,
  checkProvenance,
  compactionProbeRevisions,
  memberNode,
  noBumpAdvice,
  originalReplicas,
  planRevision,
  type RestoredEtcd,
  type RevisionPlan,
  range,
  settleAll,
  stopIsPointOfNoReturn,
  type TargetEtcd,
  targetEtcd,
  verifyControlPlane,
} from './checks.js';
import type { Undo } from './undo.js';

const WAIT = 10 * 60_000;
/** How long kube-etcd must stay stopped, before the point of no return, untouched by anything else. */
const STAYS_STOPPED_MS = 5_000;

/**
 * Room a restore into scratch space needs on a member's volume, beside the old data: the
 * database (about the snapshot's size), the WAL segment etcd preallocates (64 MiB), and a
 * tenth more for the rest.
 */
export function spaceForRestore(snapshotBytes: number): number {
  return Math.ceil((snapshotBytes + 64 * 1024 * 1024) * 1.1);
}

/**
 * Before the point of no return a cancelled step is waited for until its activity has
 * stopped, so that putting things back never races it.
 */
const UNTIL_STOPPED = { cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED };

/** What every step of one restore shares. */
export interface RestoreContext {
  params: RestoreUserClusterParams;
  target: ResolvedTarget;
  progress: Progress;
  cluster: ClusterRef;
  /** Names this restore's scratch and aside directories on the members' volumes. */
  token: string;
  etcd: WorkloadTarget;
  apiserver: WorkloadTarget;
  maintenance: WorkloadTarget;
  /** What checkOriginH1 decided: the revision bump, what was checked and noted. */
  origin?: Origin;
  /** Per member, the etcd binaries of its utility pod and the bump its restore used (H5a, H5c). */
  prepared: Map<number, PreparedMember>;
  /** The repository's activities, on the host that keeps it (asked at the first use). */
  repository: () => Promise<RepositoryProxies>;
}

/** What a member's utility pod restores with (H5a decides, H5c and a repair after the PONR use it). */
export interface PreparedMember {
  tools: EtcdTools;
  bump?: number;
}

/** Where the snapshot came from and what the restore does about the revision (checkOriginH1). */
export interface Origin {
  revision: RevisionPlan;
  /** Checked: for the result's `verified`. */
  checked: string[];
  /** Not checked, or allowed: for the plan and the result's `notes`. */
  notes: string[];
}

export function restoreContext(
  params: RestoreUserClusterParams,
  target: ResolvedTarget,
  progress: Progress,
  token: string,
): RestoreContext {
  const cluster = { adminCluster: target.adminCluster, namespace: params.userClusterName };
  const workload = (kind: 'StatefulSet' | 'Deployment', name: string) => ({
    ...cluster,
    kind,
    name,
  });
  const { profile } = target;
  return {
    params,
    target,
    progress,
    cluster,
    token,
    etcd: workload('StatefulSet', profile.etcdStatefulSet),
    apiserver: workload('StatefulSet', profile.apiserverStatefulSet),
    maintenance: workload('Deployment', profile.maintenanceDeployment),
    prepared: new Map(),
    repository: repositoryHost(target.repository),
  };
}

/** Which admin cluster and repository, and their profile: the worker resolves the names. */
export async function resolveNames(
  params: RestoreUserClusterParams,
  progress: Progress,
): Promise<ResolvedTarget> {
  progress.step('which admin cluster and repository: the worker resolves the names');
  const target = await quick.resolveTarget.executeWithOptions({ summary: 'resolve the names' }, [
    {
      adminCluster: params.adminCluster,
      repository: params.repository,
      userClusterName: params.userClusterName,
    },
  ]);
  progress.fact('admin cluster', target.adminCluster);
  progress.fact('repository', target.repository);
  return target;
}

/**
 * Before anything: the backup verified (sha256 against its manifest, snapshot status); a
 * snapshot from the import inbox is imported first, and recorded as a change so that an
 * import this restore does not use is removed again.
 */
export async function checkBackup(ctx: RestoreContext, undo: Undo): Promise<SnapshotToRestore> {
  const { params } = ctx;
  ctx.progress.step('check the backup: sha256 against its manifest, etcdctl snapshot status');
  const importId = importBackupId(ctx.token);
  const backupRef = {
    repository: ctx.target.repository,
    userClusterName: params.userClusterName,
  };
  if (params.backup.importFile !== undefined) {
    undo.register('import', `snapshot imported as backup ${importId}`, async () =>
      (await ctx.repository()).quick.deleteImportedBackup({ ...backupRef, backupId: importId }),
    );
  }
  const repo = await ctx.repository();
  if (repo.host) ctx.progress.fact('repository host', repo.host);
  const snapshot = await repo.long.resolveSnapshotToRestore.executeWithOptions(
    { summary: 'check the backup', ...UNTIL_STOPPED },
    [{ ...backupRef, backup: params.backup, importId }],
  );
  const { record } = snapshot;
  ctx.progress.fact(
    'backup',
    `${snapshot.backupId}: revision ${record.revision}, ${record.sizeBytes} bytes, taken ${record.createdAt}`,
  );
  return snapshot;
}

/** The cluster as inspection found it, what to put back, and the members to restore. */
export interface Inspection {
  inventory: ClusterInventory;
  members: number;
  /** The counts H7, H8 and the undo put back: read now, or recorded by an abandoned restore. */
  originals: ReplicaCounts;
  /** The node of member N (H1); checkCluster made sure every member has one. */
  nodeOf(member: number): string;
  /** The etcd the cluster runs (a member's own word, or the image tag's). */
  etcd: TargetEtcd;
}

/**
 * H1, R1, H4: members and their nodes, the etcd Secret, PVCs, image, replica counts, how
 * kube-etcd starts its pods; checked before anything is changed (checks.checkCluster).
 */
export async function inspectClusterH1(ctx: RestoreContext): Promise<Inspection> {
  const { profile } = ctx.target;
  ctx.progress.step('H1 R1 H4: members and their nodes, etcd Secret, PVCs, replica counts');
  const inventory = await quick.inspectUserCluster.executeWithOptions(
    { summary: 'H1 list etcd members, nodes, Secret, PVCs' },
    [{ ...ctx.cluster, profile }],
  );
  const members = checkCluster(inventory, ctx.params.members, profile);
  const nodeOf = (n: number) => memberNode(inventory, n) as string;
  for (const m of inventory.members) {
    ctx.progress.member(
      m.name,
      `on ${m.nodeName}: ${m.waitingReason ?? m.phase ?? '?'}${m.ready ? ', ready' : ''}`,
    );
  }
  const originals = originalReplicas(inventory);
  ctx.progress.fact('etcd image (H4)', inventory.members[0]?.image ?? 'unknown');
  const answering = await quick.findAnsweringMember.executeWithOptions(
    { summary: 'H4 which etcd the cluster runs: endpoint status of a member that answers' },
    [{ ...ctx.cluster, profile, members: inventory.members }],
  );
  const etcd = targetEtcd(inventory, answering);
  ctx.progress.fact('etcd version', `${etcd.version ?? 'unknown'}: ${etcd.from}`);
  ctx.progress.fact(
    'replicas to put back',
    `${profile.etcdStatefulSet} ${originals.etcd}, ${profile.apiserverStatefulSet} ${originals.apiserver}, ${profile.maintenanceDeployment} ${originals.maintenance}`,
  );
  const previous = inventory.previousRestore;
  if (previous) {
    ctx.progress.note(
      `an earlier restore (${previous.workflowId}, ${previous.startedAt}) did not finish: the replica counts and PDB it recorded are put back, not today's`,
    );
  }
  return { inventory, members, originals, nodeOf, etcd };
}

/**
 * Before anything changes: the backup is from this cluster and from an etcd no newer than
 * the one it runs (checks.checkProvenance: refused otherwise, unless allowed), and how far
 * the restore raises the revision (checks.planRevision). Kept in the context.
 */
export function checkOriginH1(
  ctx: RestoreContext,
  snapshot: SnapshotToRestore,
  inspection: Inspection,
): Origin {
  const { checked, notes } = checkProvenance(
    snapshot.record,
    {
      adminCluster: ctx.target.adminCluster,
      namespaceUid: inspection.inventory.namespaceUid,
      userClusterName: ctx.params.userClusterName,
    },
    inspection.etcd,
    ctx.params,
  );
  const revision = planRevision(snapshot.record, inspection.etcd, Date.now());
  for (const line of [...checked, ...notes]) ctx.progress.note(line);
  ctx.progress.fact('revision', revision.line);
  ctx.origin = { revision, checked, notes };
  return ctx.origin;
}

/**
 * H1 again, after a wait (the approval gate, a long preparation): the cluster read anew
 * must match the plan, and what comes next is decided on what is true now — whether a
 * member became not Ready matters to how kube-etcd can be stopped and started again.
 */
export async function inspectAgainH1(
  ctx: RestoreContext,
  planned: Inspection,
  after: string,
): Promise<Inspection> {
  const now = await inspectClusterH1(ctx);
  const changed = changesSince(planned.inventory, now.inventory, planned.members);
  if (changed.length > 0) {
    throw ApplicationFailure.nonRetryable(
      `the cluster changed ${after}: ${changed.join('; ')}. Start a new restore to see a new plan`,
      FailureType.ClusterState,
    );
  }
  return now;
}

/** What will be destroyed and changed: shown at the approval gate. */
export function planRestore(
  ctx: RestoreContext,
  snapshot: SnapshotToRestore,
  { inventory, members, originals, etcd }: Inspection,
  origin: Origin,
): RestorePlan {
  const { profile } = ctx.target;
  const { revision } = snapshot.record;
  const previous = inventory.previousRestore;
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
      `${profile.apiserverStatefulSet} ${inventory.apiserverReplicas} → 0 → ${originals.apiserver}`,
      `${profile.maintenanceDeployment} ${inventory.maintenanceReplicas} → 0 → ${originals.maintenance}`,
      `${profile.etcdStatefulSet} ${inventory.etcdReplicas} → 0 → ${originals.etcd}`,
    ],
    etcd: [
      `the cluster runs etcd ${etcd.version ?? '(version unknown)'}: ${etcd.from}`,
      ...origin.checked,
      ...origin.notes,
      origin.revision.line,
    ],
    notes: [
      ...(previous
        ? [
            `the counts put back are those the unfinished restore ${previous.workflowId} recorded on the cluster`,
          ]
        : []),
      ...(stopIsPointOfNoReturn(inventory, members)
        ? [
            `${profile.etcdStatefulSet} is OrderedReady and a member below a healthy one is not Ready: once stopped, ` +
              'it cannot be started as it was, so stopping etcd is the point of no return',
          ]
        : []),
    ],
  };
}

/**
 * H5a, H5b, H5c (R2, R3, R4) — done before the point of no return, while the control
 * plane still runs, since none of it touches the data etcd uses: the utility pod on member
 * N's node (its image's tools checked), room for the restored data checked on the
 * member's volume, the snapshot copied in and checked there, then restored with the
 * member's identity into scratch space beside the live data. A full volume, a missing tool
 * or a snapshot etcd refuses fails here, where everything is put back.
 */
export async function prepareMemberH5abc(
  ctx: RestoreContext,
  n: number,
  inspection: Inspection,
  snapshot: SnapshotToRestore,
  undo: Undo,
): Promise<void> {
  const { profile } = ctx.target;
  const pod = utilityPodName(profile, n);
  const name = memberPodName(profile, n);
  undo.register(
    `H5a-member-${n}`,
    `utility pod ${pod} exists: kubectl -n ${ctx.cluster.namespace} delete pod ${pod}`,
    () => deleteUtilityPod(ctx, n, long),
  );
  ctx.progress.member(name, `H5a utility pod ${pod} on ${inspection.nodeOf(n)}`);
  await ensureUtilityPod(ctx, n, inspection, long);
  const inPod = { ...ctx.cluster, pod, container: profile.utilityContainer };
  const versions = await quick.checkPodTools.executeWithOptions(
    { summary: `tools of the utility image in ${pod}`, ...UNTIL_STOPPED },
    [{ ...inPod, tools: UTILITY_POD_TOOLS }],
  );
  const choice = chooseEtcdTools(versions, `the utility image of ${pod}`);
  const revision = ctx.origin?.revision;
  if (revision?.required && !choice.canBumpRevision) {
    throw ApplicationFailure.nonRetryable(
      `the utility image of ${pod} lacks an etcdutl that can raise the revision (${choice.description}): ` +
        `the cluster runs etcd ${inspection.etcd.version}, whose restore needs etcdutl 3.5.10 or later for --bump-revision. Nothing was changed by this check`,
      FailureType.MissingTools,
    );
  }
  const bump = choice.canBumpRevision ? revision?.bump?.amount : undefined;
  ctx.prepared.set(n, { tools: choice.tools, ...(bump !== undefined ? { bump } : {}) });
  ctx.progress.member(name, `H5a ${pod}: ${choice.description}`);
  const need = spaceForRestore(snapshot.record.sizeBytes);
  const { availableBytes } = await quick.measureFreeSpace.executeWithOptions(
    { summary: `free space on ${dataClaimName(profile, n)}`, ...UNTIL_STOPPED },
    [{ ...inPod, path: profile.dataDir }],
  );
  if (availableBytes < need) {
    throw ApplicationFailure.nonRetryable(
      `PVC ${dataClaimName(profile, n)} of member ${n} has ${availableBytes} bytes free; restoring beside the old data needs ${need}`,
      FailureType.NoSpace,
    );
  }
  await copySnapshotH5b(ctx, n, snapshot, long);
  undo.register(
    `H5c-member-${n}`,
    `restored data in scratch space on ${dataClaimName(profile, n)}`,
    // The discard runs in the utility pod: one evicted since is made again first.
    async () => {
      await ensureUtilityPod(ctx, n, inspection, long);
      await discardMemberData(ctx, n, long, false);
    },
  );
  ctx.progress.member(name, 'H5c restoring the snapshot into scratch space');
  await restoreIntoScratchH5c(ctx, n, inspection, long);
  ctx.progress.member(name, 'prepared: snapshot checked, restored into scratch space');
}

/** H5b (R3): the snapshot copied into the utility pod, and checked there (sha256, status). */
async function copySnapshotH5b(
  ctx: RestoreContext,
  n: number,
  snapshot: SnapshotToRestore,
  activities: typeof long,
): Promise<void> {
  const { profile } = ctx.target;
  const pod = utilityPodName(profile, n);
  const target = {
    ...ctx.cluster,
    pod,
    container: profile.utilityContainer,
    path: restoreSnapshotPathInPod(profile),
  };
  const { record } = snapshot;
  ctx.progress.member(memberPodName(profile, n), `H5b copying the snapshot into ${pod}`);
  const repo = (await ctx.repository()).like(activities);
  await repo.copySnapshotIntoPod.executeWithOptions(
    { summary: `H5b copy snapshot into ${pod}`, ...UNTIL_STOPPED },
    [
      {
        backup: {
          repository: ctx.target.repository,
          userClusterName: record.userClusterName,
          backupId: snapshot.backupId,
        },
        destination: target,
      },
    ],
  );
  await activities.checkSnapshotInPod.executeWithOptions(
    { summary: `check the snapshot in ${pod}`, ...UNTIL_STOPPED },
    [
      {
        ...target,
        expected: { sha256: record.sha256, etcdHash: record.etcdHash, revision: record.revision },
        tools: preparedMember(ctx, n).tools,
      },
    ],
  );
}

/** H5c (R4): `snapshot restore` with member N's identity, into scratch space on its volume. */
async function restoreIntoScratchH5c(
  ctx: RestoreContext,
  n: number,
  { members }: Inspection,
  activities: typeof long,
): Promise<void> {
  const { profile } = ctx.target;
  const { tools, bump } = preparedMember(ctx, n);
  await activities.restoreIntoScratch.executeWithOptions(
    {
      summary: `H5c restore the snapshot for member ${n} into scratch space${bump ? `, revision raised by ${bump}` : ''}`,
      ...UNTIL_STOPPED,
    },
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
        tools,
        ...(bump !== undefined ? { bumpRevision: bump } : {}),
      },
    ],
  );
}

function preparedMember(ctx: RestoreContext, n: number): PreparedMember {
  const prepared = ctx.prepared.get(n);
  if (!prepared) throw new Error(`member ${n}: its utility pod's tools were never checked (H5a)`);
  return prepared;
}

/**
 * After every member is prepared, before anything is changed: they were all restored the
 * same way. Members restored with different bumps would hold different revisions.
 */
export function restoredBump(ctx: RestoreContext, members: number): number | undefined {
  const bumps = new Set(range(members).map((n) => preparedMember(ctx, n).bump));
  if (bumps.size !== 1)
    throw ApplicationFailure.nonRetryable(
      `the utility pods restored with different revision bumps (${[...bumps].join(', ')}): their images differ. Nothing was changed`,
      FailureType.ClusterState,
    );
  return [...bumps][0];
}

/**
 * For the result's notes: what the origin check could not check or allowed, and, when the
 * revision was not raised, what that means and what the operator must restart.
 */
export function originNotes(
  ctx: RestoreContext,
  snapshot: SnapshotToRestore,
  bump: number | undefined,
): string[] {
  const notes = [...(ctx.origin?.notes ?? [])];
  if (bump === undefined)
    notes.push(
      noBumpAdvice(
        snapshot.record.revision,
        ctx.origin?.revision.bump
          ? `the utility image's etcdutl cannot (${BUMP_REVISION_SINCE} or later is needed)`
          : `the cluster's etcd is older than ${BUMP_REVISION_SINCE}, whose etcdutl added --bump-revision`,
      ),
    );
  return notes;
}

/**
 * Before H2: the originals (replica counts, and the PDB about to be deleted) recorded on
 * the cluster itself, so a restore started after this one is abandoned puts back the
 * truth, not the zeros. Removed once everything is back. An earlier restore's record is
 * kept as it is, also by an undo: it still says what the cluster had before either.
 */
export async function recordOriginals(
  ctx: RestoreContext,
  { inventory, originals, members, nodeOf }: Inspection,
  pdb: PdbManifest | undefined,
  undo: Undo,
): Promise<void> {
  if (!inventory.previousRestore) {
    undo.register(
      'record',
      `ConfigMap ${ctx.cluster.namespace}/etcd-ha-restore-record with the originals`,
      () => quick.clearRestoreRecord(ctx.cluster),
      // Registered before every cluster change, so undone after them: the next restore
      // needs the original counts and nodes to put back what this undo could not.
      'it holds the originals of what is not put back; delete it once they are',
    );
  }
  await quick.recordRestore.executeWithOptions(
    { summary: 'record the originals on the cluster', ...UNTIL_STOPPED },
    [
      {
        ...ctx.cluster,
        record: inventory.previousRestore ?? {
          workflowId: workflowInfo().workflowId,
          startedAt: new Date().toISOString(),
          replicas: originals,
          ...(pdb ? { pdb } : {}),
          memberNodes: Object.fromEntries(range(members).map((n) => [String(n), nodeOf(n)])),
        },
      },
    ],
  );
}

/**
 * H2: save the PDB manifest (kept in this workflow's history and on the cluster), then
 * delete it — only the object saved, by its uid. A PDB an abandoned restore already
 * deleted comes from the record it left.
 */
export async function savePdbH2(
  ctx: RestoreContext,
  inspection: Inspection,
  undo: Undo,
): Promise<PdbManifest | undefined> {
  const name = ctx.target.profile.apiserverPdb;
  ctx.progress.step(`H2 save PodDisruptionBudget ${name}, then delete it`);
  const saved = await quick.savePdb.executeWithOptions(
    { summary: `H2 save PDB ${name}`, ...UNTIL_STOPPED },
    [{ ...ctx.cluster, name }],
  );
  const manifest = saved?.manifest ?? inspection.inventory.previousRestore?.pdb;
  await recordOriginals(ctx, inspection, manifest, undo);
  if (!manifest) {
    ctx.progress.note(`no PodDisruptionBudget ${name}: nothing to save`);
    return undefined;
  }
  // An undo puts back what was there at inspection: a PDB an abandoned restore had already
  // deleted stays deleted (H9 re-creates it when this restore finishes).
  if (!saved) return manifest;
  undo.register(
    'H2',
    `PodDisruptionBudget ${name} deleted: it is re-created from the saved manifest (H9)`,
    () => recreatePdbH9(ctx, manifest),
  );
  if (saved) {
    await quick.deletePdb.executeWithOptions(
      { summary: `H2 delete PDB ${name}`, ...UNTIL_STOPPED },
      [{ ...ctx.cluster, name, uid: saved.uid }],
    );
  }
  return manifest;
}

/**
 * H3: scale kube-apiserver and gke-master-etcd-maintenance to 0, so nothing uses etcd.
 * The counts put back (H7, H8) are the originals, not the runbook's 3 and 1. An undo puts
 * back what it found at inspection — the same, unless an abandoned restore left zeros,
 * which are then left: starting anything on its half-replaced data would be worse — and
 * waits only for as many pods ready as were ready then.
 */
export async function scaleDownH3(ctx: RestoreContext, inspection: Inspection, undo: Undo) {
  const { apiserver, maintenance, cluster } = ctx;
  const { inventory } = inspection;
  ctx.progress.step(`H3 scale ${apiserver.name} and ${maintenance.name} to 0`);
  for (const [id, target, replicas, minReady, kind] of [
    [
      'H3-apiserver',
      apiserver,
      inventory.apiserverReplicas,
      inventory.ready.apiserver,
      'statefulset',
    ],
    [
      'H3-maintenance',
      maintenance,
      inventory.maintenanceReplicas,
      inventory.ready.maintenance,
      'deployment',
    ],
  ] as const) {
    if (replicas === 0) continue;
    undo.register(
      id,
      `${target.name} at 0 replicas (was ${replicas}): kubectl -n ${cluster.namespace} scale ${kind} ${target.name} --replicas=${replicas}`,
      () =>
        long.scaleTo.executeWithOptions({ summary: `undo: scale ${target.name} back` }, [
          { ...target, replicas, minReady, timeoutMs: WAIT },
        ]),
    );
    await long.scaleTo.executeWithOptions(
      { summary: `H3 scale ${target.name} to 0`, ...UNTIL_STOPPED },
      [{ ...target, replicas: 0, timeoutMs: WAIT }],
    );
  }
}

/**
 * Not a runbook step: stop every etcd member — kube-etcd to 0 and each member pod deleted,
 * also where OrderedReady would not scale down past a crash-looping member. The runbook
 * replaces data under members it expects to be crash-looping (R7 then deletes the pod, H6
 * restarts the rollout); a member that is not — the healthy third of an HA cluster, or a
 * crash-looping member between two restarts — would have its data replaced under a
 * running etcd. Started again in H6.
 */
export async function stopEtcdMembers(
  ctx: RestoreContext,
  inspection: Inspection,
  undo: Undo,
  reversible: boolean,
) {
  const { etcd, cluster } = ctx;
  const replicas = inspection.inventory.etcdReplicas;
  ctx.progress.step(`stop every etcd member: scale ${etcd.name} to 0`);
  const what = `${etcd.name} at 0 replicas (was ${replicas}): kubectl -n ${cluster.namespace} scale statefulset ${etcd.name} --replicas=${replicas}`;
  // Where it cannot be put back (stopIsPointOfNoReturn), it is only listed as changed.
  if (!reversible) undo.register('stop-etcd', what);
  else if (replicas > 0)
    undo.register('stop-etcd', what, () =>
      long.scaleTo.executeWithOptions({ summary: `undo: scale ${etcd.name} back` }, [
        { ...etcd, replicas, minReady: inspection.inventory.ready.etcd, timeoutMs: WAIT },
      ]),
    );
  // Watched a while stopped: a controller that starts it again is found now, while all is
  // put back, not at the first swap.
  await (reversible ? long : persistent).stopEtcdMembers.executeWithOptions(
    { summary: `stop etcd: ${etcd.name} to 0, every member pod gone`, ...UNTIL_STOPPED },
    [{ ...etcd, timeoutMs: WAIT, staysStoppedMs: STAYS_STOPPED_MS }],
  );
}

/**
 * After the point of no return — H5d H5e H5f (R5, R6) for member N, as one restartable
 * step: the utility pod ensured (re-created if it was evicted), every etcd member checked
 * stopped right before (stopped again if a controller brought one back), then the old
 * data renamed aside and the restored data into place:
 *   H5d/R5 `rm -r var/lib/etcd/*` — instead the old data is moved aside, and removed only
 *          once the restored cluster is verified (discardOldData);
 *   H5e/R6 `cp -r` the restored data in — a rename on the same volume instead;
 *   H5f    `rm -R kube-etcd-N.etcd` — the scratch directory is gone with the rename, and
 *          the snapshot with the utility pod (H5g).
 * If the restored data is gone (a wiped volume), it is copied and restored again first.
 */
export async function swapDataH5def(
  ctx: RestoreContext,
  n: number,
  inspection: Inspection,
  snapshot: SnapshotToRestore,
  undo: Undo,
): Promise<void> {
  const { profile } = ctx.target;
  const name = memberPodName(profile, n);
  ctx.progress.member(name, 'H5d–H5f swapping in the restored data');
  await ensureUtilityPod(ctx, n, inspection, persistent);
  const swap = async () => {
    const stopped = await persistent.stopEtcdMembers.executeWithOptions(
      { summary: `etcd still stopped before member ${n}'s swap` },
      [{ ...ctx.etcd, timeoutMs: WAIT }],
    );
    if (stopped.length > 0) {
      ctx.progress.note(
        `before member ${n}'s swap: ${stopped.join(', ')} had been started again by someone; stopped`,
      );
    }
    return persistent.swapMemberData.executeWithOptions(
      { summary: `H5d-H5f swap in the restored data of member ${n}` },
      [
        {
          ...ctx.cluster,
          pod: utilityPodName(profile, n),
          container: profile.utilityContainer,
          profile,
          member: n,
          token: ctx.token,
          dropOldData: ctx.params.deleteOldDataImmediately,
        },
      ],
    );
  };
  let state = await swap();
  if (state === 'scratch-missing') {
    ctx.progress.note(
      `member ${n}: the restored data is gone from its volume; copying the snapshot in and restoring it again`,
    );
    ctx.progress.member(name, 'the restored data is gone from the volume: restoring it again');
    await copySnapshotH5b(ctx, n, snapshot, persistent);
    await restoreIntoScratchH5c(ctx, n, inspection, persistent);
    state = await swap();
  }
  if (state === 'scratch-missing') {
    throw ApplicationFailure.nonRetryable(
      `member ${n}: the data restored into scratch space vanished again before the swap`,
      FailureType.ClusterState,
    );
  }
  undo.settle(`H5c-member-${n}`);
  if (!ctx.params.deleteOldDataImmediately) {
    undo.register(
      `H5e-member-${n}`,
      `member ${n}'s old data is kept on PVC ${dataClaimName(profile, n)} in ${profile.dataDir}/.old-${ctx.token} until the restore is verified`,
    );
  }
  ctx.progress.member(name, `data ${state}`);
}

/** H5g (R9): delete utility pod N, and with it the snapshot copied in (H5f `rm snapshot.db`). */
export async function deleteUtilityPodH5g(ctx: RestoreContext, n: number, undo: Undo) {
  await deleteUtilityPod(ctx, n, persistent);
  undo.settle(`H5a-member-${n}`);
  ctx.progress.member(memberPodName(ctx.target.profile, n), 'data replaced; utility pod deleted');
}

async function ensureUtilityPod(
  ctx: RestoreContext,
  n: number,
  { inventory, nodeOf }: Inspection,
  activities: typeof long,
) {
  const { profile } = ctx.target;
  await activities.ensureUtilityPod.executeWithOptions(
    { summary: `H5a utility pod ${utilityPodName(profile, n)}`, ...UNTIL_STOPPED },
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
}

function deleteUtilityPod(ctx: RestoreContext, n: number, activities: typeof long) {
  const pod = utilityPodName(ctx.target.profile, n);
  return activities.deletePod.executeWithOptions({ summary: `H5g delete ${pod}` }, [
    { ...ctx.cluster, name: pod, timeoutMs: WAIT },
  ]);
}

function discardMemberData(
  ctx: RestoreContext,
  n: number,
  activities: typeof long,
  abandoned: boolean,
) {
  const { profile } = ctx.target;
  return activities.discardOldMemberData.executeWithOptions(
    { summary: `remove old and scratch data of member ${n}` },
    [
      {
        ...ctx.cluster,
        pod: utilityPodName(profile, n),
        container: profile.utilityContainer,
        profile,
        token: ctx.token,
        abandoned,
      },
    ],
  );
}

/**
 * H6 (R7, R8): start the members on the restored data by scaling kube-etcd back to its
 * count — the runbook's `rollout restart` (H6) and pod deletion (R7), with no window in
 * which an old etcd can touch the data; OrderedReady starts them one by one — then wait
 * until every member is healthy (R8) and read what they hold: everything verifyRestoredEtcd
 * checks before kube-apiserver comes back.
 */
export async function startMembersH6(
  ctx: RestoreContext,
  { originals, members, etcd: before }: Inspection,
  snapshot: SnapshotToRestore,
  undo: Undo,
  bump: number | undefined,
): Promise<Omit<RestoredEtcd, 'record' | 'members'>> {
  const { liveRevision } = before;
  const { etcd } = ctx;
  const { profile } = ctx.target;
  ctx.progress.step(
    `H6 start the members on the restored data: scale ${etcd.name} to ${originals.etcd}`,
  );
  await persistent.scaleTo.executeWithOptions(
    { summary: `H6 start etcd: scale ${etcd.name} back` },
    [{ ...etcd, replicas: originals.etcd, minReady: 0, timeoutMs: WAIT }],
  );
  undo.settle('stop-etcd');
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
  if (bump === undefined) {
    const keyspace = await persistent.readKeyspaceAt.executeWithOptions(
      { summary: `keyspace of every member at revision ${revision}` },
      [{ ...firstMember, revision, cluster: true }],
    );
    return { health, keyspace };
  }
  // --mark-compacted compacted everything below the bumped revision: the snapshot's
  // revision cannot be read any more. Read the current one (nothing writes now), and check
  // that a revision a client may hold is refused.
  const keyspace = await persistent.readKeyspaceAt.executeWithOptions(
    { summary: 'keyspace of every member at the current revision' },
    [{ ...firstMember, revision: 0, cluster: true }],
  );
  const probes: CompactionProbe[] = [];
  for (const at of compactionProbeRevisions(revision, bump, liveRevision)) {
    probes.push(
      await persistent.probeCompactedRevision.executeWithOptions(
        {
          summary: `a read and a watch at revision ${at}, below the bumped one, are refused as compacted`,
        },
        [{ ...firstMember, revision: at }],
      ),
    );
  }
  return { health, keyspace, bump, probes };
}

/** H7, H8: scale kube-apiserver and gke-master-etcd-maintenance back to their counts. */
export async function scaleUpH7H8(ctx: RestoreContext, { originals }: Inspection, undo: Undo) {
  const { apiserver, maintenance } = ctx;
  ctx.progress.step(`H7 H8 scale ${apiserver.name} and ${maintenance.name} back`);
  await persistent.scaleTo.executeWithOptions({ summary: `H7 scale ${apiserver.name} back` }, [
    { ...apiserver, replicas: originals.apiserver, timeoutMs: WAIT },
  ]);
  undo.settle('H3-apiserver');
  await persistent.scaleTo.executeWithOptions({ summary: `H8 scale ${maintenance.name} back` }, [
    { ...maintenance, replicas: originals.maintenance, timeoutMs: WAIT },
  ]);
  undo.settle('H3-maintenance');
}

/**
 * H9: re-create the PDB from the manifest saved in H2. Also H2's undo before the point of
 * no return; after it (given the ledger to settle), retried until it succeeds.
 */
export async function recreatePdbH9(ctx: RestoreContext, pdb: PdbManifest, undo?: Undo) {
  ctx.progress.step(`H9 re-create PodDisruptionBudget ${pdb.metadata.name}`);
  await (undo ? persistent : quick).recreatePdb.executeWithOptions(
    { summary: 'H9 re-create the PDB' },
    [{ ...ctx.cluster, manifest: pdb }],
  );
  undo?.settle('H2');
}

/** After H9: the replicas and PDB read back and checked against the originals. */
export async function verifyControlPlaneAfterH9(
  ctx: RestoreContext,
  { originals }: Inspection,
  pdbSaved: boolean,
): Promise<string[]> {
  ctx.progress.step('verify: replicas and PDB as before');
  const after = await persistent.inspectUserCluster.executeWithOptions(
    { summary: 'read back replicas and PDB' },
    [{ ...ctx.cluster, profile: ctx.target.profile }],
  );
  return verifyControlPlane({ originals, after, pdbSaved, profile: ctx.target.profile });
}

/**
 * Verified: on each member's volume, the old data this restore set aside and whatever
 * abandoned restores left (`.old-*`, `.restore-*`) are removed — from a utility pod,
 * since the etcd image may have no shell — then the record on the cluster goes.
 */
export async function cleanUpAfterVerification(
  ctx: RestoreContext,
  inspection: Inspection,
  undo: Undo,
): Promise<string[]> {
  ctx.progress.step('verified: remove the old data set aside on each member');
  const removed = await settleAll(
    range(inspection.members).map(async (n) => {
      await ensureUtilityPod(ctx, n, inspection, persistent);
      const gone = await discardMemberData(ctx, n, persistent, true);
      await deleteUtilityPod(ctx, n, persistent);
      undo.settle(`H5e-member-${n}`);
      return gone.map((dir) => `removed ${dir} from member ${n}'s volume`);
    }),
  );
  await persistent.clearRestoreRecord(ctx.cluster);
  undo.settle('record');
  return removed.flat();
}
