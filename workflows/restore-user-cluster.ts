/**
 * SPEC.md R1–R9 (one member) and H1–H9 (three members): restore a user cluster's etcd
 * from a verified backup, and finish correctly whatever interrupts it.
 *
 * The runbook, as a workflow:
 *   checks       backup verified; H1 members and nodes, R1 Secret, PVCs, H4 image; nothing changed
 *   approval     optional: a person approves the plan (signal `approve` or update `approveRestore`)
 *   H2           save the PDB manifest (kept in this workflow's history), delete it
 *   H3           scale kube-apiserver and gke-master-etcd-maintenance to 0 (counts read first)
 *   stop etcd    scale kube-etcd to 0: see below
 *   H5a, H5b     per member, in parallel: utility pod on the member's node, snapshot copied in
 *                and checked there (sha256, etcdctl snapshot status)
 *   ── point of no return ──
 *   H5c–H5e      per member, in parallel: restore with the member's identity and swap the data
 *   H5g, R9      delete the utility pods
 *   H6, R7, R8   start the members again on the restored data; wait until etcd is healthy
 *   H7, H8       scale kube-apiserver and gke-master-etcd-maintenance back to their counts
 *   H9           re-create the PDB from the saved manifest
 *   verify       health, one cluster ID, the snapshot's keyspace on every member, replicas
 *                and PDB as before; only then the old data set aside is removed
 *
 * Stopping etcd: the runbook replaces data under members it expects to be crash-looping.
 * A member that is not (the healthy third of an HA cluster, or a crash-looping member
 * between two restarts) would have its data replaced under a running etcd. So every member
 * is stopped first by scaling StatefulSet kube-etcd to 0, and started again afterwards:
 * the runbook's `rollout restart` (H6) with no window in which etcd can touch the data.
 *
 * Until the point of no return, everything changed is put back if the restore fails or is
 * cancelled. After it, the restore cannot stop halfway: it ignores cancellation, retries
 * its steps until they succeed, and says so.
 *
 * Cancellation, precisely:
 *   - the cluster lock is not cancelled with the restore (see cluster-lock.ts);
 *   - steps before the point of no return wait for their activity to acknowledge the
 *     cancellation (WAIT_CANCELLATION_COMPLETED), and all members' preparations settle,
 *     before anything is put back: an undo never races a step still running in a worker;
 *   - a cancellation at the approval gate ends the restore CANCELLED with nothing to undo.
 *
 * DETERMINISM. Recorded histories of this workflow are replayed by test/replay.test.ts
 * (files in test/histories/, recorded by `RECORD_HISTORIES=1 node --import tsx --test
 * test/restore-control.test.ts`). Any change to this file that changes the commands it
 * issues (activities, their order or options, timers, child workflows, signals, search
 * attributes) must be guarded with `patched('<change-id>')` (and later
 * `deprecatePatch`), or restores running while the worker is upgraded fail with a
 * non-determinism error. Re-record the histories only for a change that cannot break
 * running workflows, and keep the old ones if running workflows may still have them.
 */
import {
  ActivityCancellationType,
  ApplicationFailure,
  CancellationScope,
  condition,
  defineQuery,
  defineSignal,
  defineUpdate,
  isCancellation,
  setHandler,
  uuid4,
} from '@temporalio/workflow';
import type { ClusterInventory } from '../activities/cluster-activities.js';
import { long, persistent, quick } from './activities.js';
import { acquireClusterLock } from './cluster-lock.js';
import { parseInput } from './input.js';
import { podJoin } from './naming.js';
import { describeError, Progress } from './progress.js';
import {
  memberProfile,
  type RestoreUserClusterInput,
  type RestoreUserClusterResult,
  restoreUserClusterInputSchema,
} from './schemas.js';
import type { Outcome } from './search-attributes.js';

/** The runbook's preconditions and limits of a restore, shown with every restore. */
export const RESTORE_LIMITS =
  'Diagnose and fix the cluster before restoring: restoring a broken cluster can recreate or worsen problems. ' +
  'A cluster cannot be restored after a failed upgrade, and a deleted cluster cannot be restored this way. ' +
  'Workloads scheduled after the backup are not restored.';

export interface Approval {
  approvedBy: string;
  comment?: string;
}

/** What the restore will change and destroy: shown at the approval gate. */
export interface RestorePlan {
  backupId: string;
  snapshotRevision: number;
  members: number;
  destroys: string[];
  changes: string[];
}

export const approveSignal = defineSignal<[Approval]>('approve');
export const approveUpdate = defineUpdate<string, [Approval]>('approveRestore');
export const planQuery = defineQuery<RestorePlan | undefined>('plan');

/** Not the state the runbook expects; nothing was changed. */
const ClusterState = 'ClusterState';

const MINUTE = 60_000;

/**
 * Before the point of no return a cancelled step is waited for until its activity has
 * stopped, so that putting things back never races it.
 */
const UNTIL_STOPPED = { cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED };

/** An approval must say who approves. */
function checkApproval(a: unknown): string | undefined {
  if (typeof a !== 'object' || a === null) return 'the approval must be {"approvedBy": "..."}';
  const { approvedBy, comment } = a as { approvedBy?: unknown; comment?: unknown };
  if (typeof approvedBy !== 'string' || approvedBy.trim() === '')
    return 'approvedBy must name who approves';
  if (comment !== undefined && typeof comment !== 'string') return 'comment must be a string';
  return undefined;
}

export async function restoreUserCluster(
  input: RestoreUserClusterInput,
): Promise<RestoreUserClusterResult> {
  const params = parseInput('restoreUserCluster', restoreUserClusterInputSchema, input);
  const { userClusterName, profile } = params;
  const progress = new Progress(
    'restore',
    userClusterName,
    `Restore of user cluster ${userClusterName}`,
    RESTORE_LIMITS,
  );
  const cluster = { adminKubeconfig: params.adminKubeconfig, namespace: userClusterName };
  const repository = { backupDir: params.backupDir, userClusterName };
  /** Names this restore's scratch and aside directories on the members' volumes. */
  const token = uuid4().replace(/-/g, '').slice(0, 12);
  const workload = (kind: 'StatefulSet' | 'Deployment', name: string) => ({
    ...cluster,
    kind,
    name,
  });
  const etcd = workload('StatefulSet', profile.etcdStatefulSet);
  const apiserver = workload('StatefulSet', profile.apiserverStatefulSet);
  const maintenance = workload('Deployment', profile.maintenanceDeployment);

  let plan: RestorePlan | undefined;
  let approval: Approval | undefined;
  let outcomeShown = false;
  const finish = (outcome: Outcome, line: string) => {
    outcomeShown = true;
    progress.finish(outcome, line);
  };
  setHandler(planQuery, () => plan);
  setHandler(approveSignal, (a) => {
    // An approval counts only once the plan it approves could be seen.
    const problem = plan
      ? checkApproval(a)
      : 'the restore is not at its approval gate yet; send it again there';
    if (problem) progress.note(`approval signal ignored: ${problem}`);
    else approval ??= a;
  });
  setHandler(
    approveUpdate,
    (a: Approval) => {
      approval ??= a;
      return `approved by ${approval.approvedBy}`;
    },
    {
      validator: (a: Approval) => {
        if (!params.requireApproval) throw new Error('this restore does not wait for approval');
        const problem = checkApproval(a);
        if (problem) throw new Error(problem);
        if (!plan)
          throw new Error('the restore is not at its approval gate yet; try again in a moment');
      },
    },
  );

  progress.step('lock: one backup or restore of this cluster at a time');
  const release = await acquireClusterLock(userClusterName, 'restore');
  try {
    // ── Checks: nothing is changed until they all pass ──
    progress.step('verify the backup: sha256 against its manifest, etcdctl snapshot status');
    const snapshot = await quick.resolveSnapshotToRestore.executeWithOptions(
      { summary: 'verify the backup' },
      [{ ...repository, backup: params.backup, importId: `import-${token}` }],
    );
    const { record } = snapshot;
    progress.fact(
      'backup',
      `${snapshot.backupId}: revision ${record.revision}, ${record.sizeBytes} bytes, taken ${record.createdAt}`,
    );

    progress.step('H1 R1 H4: members and their nodes, etcd Secret, PVCs, replica counts');
    const inventory = await quick.inspectUserCluster.executeWithOptions(
      { summary: 'H1 list etcd members, nodes, Secret, PVCs' },
      [{ ...cluster, profile }],
    );
    const members = checkCluster(inventory, params.members, profile.dataClaimPrefix);
    // checkCluster made sure every member has a pod on a node.
    const nodeOf = (n: number) => inventory.members.find((m) => m.member === n)?.nodeName as string;
    for (const m of inventory.members) {
      progress.member(
        m.member,
        `on ${m.nodeName}: ${m.waitingReason ?? m.phase ?? '?'}${m.ready ? ', ready' : ''}`,
      );
    }
    progress.fact('etcd image (H4)', inventory.members[0]?.image ?? 'unknown');
    progress.fact(
      'replicas before',
      `${profile.etcdStatefulSet} ${inventory.etcdReplicas}, ${profile.apiserverStatefulSet} ${inventory.apiserverReplicas}, ${profile.maintenanceDeployment} ${inventory.maintenanceReplicas}`,
    );
    plan = {
      backupId: snapshot.backupId,
      snapshotRevision: record.revision,
      members,
      destroys: range(members).map(
        (n) =>
          `etcd data of member ${n} (PVC ${profile.dataClaimPrefix}-${n}), replaced by revision ${record.revision}`,
      ),
      changes: [
        `PodDisruptionBudget ${profile.apiserverPdb}: deleted, then re-created`,
        `${profile.apiserverStatefulSet} ${inventory.apiserverReplicas} → 0 → ${inventory.apiserverReplicas}`,
        `${profile.maintenanceDeployment} ${inventory.maintenanceReplicas} → 0 → ${inventory.maintenanceReplicas}`,
        `${profile.etcdStatefulSet} ${inventory.etcdReplicas} → 0 → ${inventory.etcdReplicas}`,
      ],
    };

    // ── Reversible changes: each one registers how to put it back ──
    const undo: Array<{ what: string; run: () => Promise<unknown> }> = [];
    try {
      if (params.requireApproval) {
        progress.step(
          `waiting for approval: signal "approve" or update "approveRestore" with {"approvedBy": "..."}. ` +
            `Will destroy: ${plan.destroys.join('; ')}`,
        );
        await condition(() => approval !== undefined);
        progress.note(
          `approved by ${approval?.approvedBy}${approval?.comment ? `: ${approval.comment}` : ''}`,
        );
      }

      progress.step(`H2 save PodDisruptionBudget ${profile.apiserverPdb}, then delete it`);
      const pdb = await quick.savePdb.executeWithOptions(
        { summary: `H2 save PDB ${profile.apiserverPdb}`, ...UNTIL_STOPPED },
        [{ ...cluster, name: profile.apiserverPdb }],
      );
      if (pdb) {
        undo.push({
          what: 'H9 re-create the PDB',
          run: () =>
            quick.recreatePdb.executeWithOptions({ summary: 'H9 re-create the PDB' }, [
              { ...cluster, manifest: pdb },
            ]),
        });
        await quick.deletePdb.executeWithOptions(
          { summary: `H2 delete PDB ${profile.apiserverPdb}`, ...UNTIL_STOPPED },
          [{ ...cluster, name: profile.apiserverPdb }],
        );
      } else {
        progress.note(`no PodDisruptionBudget ${profile.apiserverPdb}: nothing to save`);
      }

      progress.step(
        `H3 scale ${profile.apiserverStatefulSet} and ${profile.maintenanceDeployment} to 0`,
      );
      for (const [target, replicas] of [
        [apiserver, inventory.apiserverReplicas],
        [maintenance, inventory.maintenanceReplicas],
      ] as const) {
        undo.push({
          what: `scale ${target.name} back`,
          run: () =>
            long.scaleTo.executeWithOptions({ summary: `undo: scale ${target.name} back` }, [
              { ...target, replicas, timeoutMs: 10 * MINUTE },
            ]),
        });
        await long.scaleTo.executeWithOptions(
          { summary: `H3 scale ${target.name} to 0`, ...UNTIL_STOPPED },
          [{ ...target, replicas: 0, timeoutMs: 10 * MINUTE }],
        );
      }

      progress.step(`stop every etcd member: scale ${profile.etcdStatefulSet} to 0`);
      undo.push({
        what: `scale ${etcd.name} back`,
        run: () =>
          long.scaleTo.executeWithOptions({ summary: `undo: scale ${etcd.name} back` }, [
            { ...etcd, replicas: inventory.etcdReplicas, timeoutMs: 10 * MINUTE },
          ]),
      });
      await long.scaleTo.executeWithOptions(
        { summary: `stop etcd: scale ${etcd.name} to 0`, ...UNTIL_STOPPED },
        [{ ...etcd, replicas: 0, timeoutMs: 10 * MINUTE }],
      );

      progress.step('H5a H5b prepare each member: utility pod, snapshot copied in and checked');
      // Every member's preparation settles before the first failure is acted on.
      await settleAll(
        range(members).map(async (n) => {
          const pod = `${profile.utilityPodPrefix}-${n}`;
          undo.push({
            what: `delete ${pod}`,
            run: () =>
              long.deletePod.executeWithOptions({ summary: `undo: delete ${pod}` }, [
                { ...cluster, name: pod, timeoutMs: 10 * MINUTE },
              ]),
          });
          progress.member(n, `H5a utility pod ${pod} on ${nodeOf(n)}`);
          await long.ensureUtilityPod.executeWithOptions(
            { summary: `H5a utility pod ${pod}`, ...UNTIL_STOPPED },
            [
              {
                ...cluster,
                member: n,
                nodeName: nodeOf(n),
                gkeOnPremVersion: params.gkeOnPremVersion,
                secretName: inventory.secretName,
                profile,
                timeoutMs: 10 * MINUTE,
              },
            ],
          );
          const target = {
            ...cluster,
            pod,
            container: profile.utilityContainer,
            path: snapshotPathIn(profile.workDir),
          };
          progress.member(n, `H5b copying the snapshot into ${pod}`);
          await long.copySnapshotIntoPod.executeWithOptions(
            { summary: `H5b copy snapshot into ${pod}`, ...UNTIL_STOPPED },
            [{ localPath: snapshot.localPath, destination: target }],
          );
          await quick.checkSnapshotInPod.executeWithOptions(
            { summary: `check the snapshot in ${pod}`, ...UNTIL_STOPPED },
            [
              {
                ...target,
                expected: {
                  sha256: record.sha256,
                  etcdHash: record.etcdHash,
                  revision: record.revision,
                },
              },
            ],
          );
          progress.member(n, 'prepared: snapshot in place and verified');
        }),
      );
    } catch (error) {
      const cancelled = isCancellation(error);
      progress.step(
        `${cancelled ? 'cancelled' : 'failed'} before the point of no return: putting everything back`,
      );
      // Every undo step is tried, even after one fails: leave as little changed as possible.
      const notUndone: string[] = [];
      await CancellationScope.nonCancellable(async () => {
        for (const step of undo.reverse()) {
          progress.note(`undo: ${step.what}`);
          await step.run().catch((undoError: unknown) => {
            notUndone.push(`${step.what} (${describeError(undoError)})`);
          });
        }
      });
      if (notUndone.length > 0) {
        finish('failed', `failed, and could not put back: ${notUndone.join('; ')}`);
        throw ApplicationFailure.nonRetryable(
          `restore ${cancelled ? 'cancelled' : `failed (${describeError(error)})`} before the point of no return, ` +
            `and these changes could not be put back; a person must: ${notUndone.join('; ')}`,
          'UndoFailed',
        );
      }
      finish(
        cancelled ? 'cancelled' : 'failed',
        `${cancelled ? 'cancelled' : 'failed'}; the cluster is as it was`,
      );
      throw error;
    }

    // ── Point of no return: from here the restore finishes whatever happens ──
    const root = CancellationScope.current();
    const result = await CancellationScope.nonCancellable(async () => {
      progress.step(
        'point of no return — H5c H5d H5e: restore each member with its identity and swap its data',
      );
      await Promise.all(
        range(members).map(async (n) => {
          const pod = `${profile.utilityPodPrefix}-${n}`;
          progress.member(n, 'H5c–H5e replacing data');
          const state = await persistent.replaceMemberData.executeWithOptions(
            { summary: `H5c-H5e restore member ${n} and swap its data` },
            [
              {
                ...cluster,
                pod,
                container: profile.utilityContainer,
                profile,
                member: n,
                members,
                snapshotPath: snapshotPathIn(profile.workDir),
                token,
                dropOldData: params.deleteOldDataImmediately,
              },
            ],
          );
          progress.member(n, `data ${state}`);
          await persistent.deletePod.executeWithOptions({ summary: `H5g delete ${pod}` }, [
            { ...cluster, name: pod, timeoutMs: 10 * MINUTE },
          ]);
          progress.member(n, 'data replaced; utility pod deleted');
        }),
      );

      progress.step(
        `H6 start the members on the restored data: scale ${etcd.name} to ${inventory.etcdReplicas}`,
      );
      await persistent.scaleTo.executeWithOptions(
        { summary: `H6 start etcd: scale ${etcd.name} back` },
        [{ ...etcd, replicas: inventory.etcdReplicas, timeoutMs: 10 * MINUTE }],
      );
      const firstMember = {
        ...cluster,
        pod: `${profile.etcdStatefulSet}-0`,
        container: profile.etcdContainer,
        profile: memberProfile(profile, 0),
      };
      progress.step('R8: wait until every member is healthy');
      const health = await persistent.waitEtcdHealthy.executeWithOptions(
        { summary: 'R8 wait for healthy etcd' },
        [{ ...firstMember, members, timeoutMs: 10 * MINUTE }],
      );
      const keyspace = await persistent.readKeyspaceAt.executeWithOptions(
        { summary: `keyspace of every member at revision ${record.revision}` },
        [{ ...firstMember, revision: record.revision, cluster: true }],
      );

      progress.step(`H7 H8 scale ${apiserver.name} and ${maintenance.name} back`);
      await persistent.scaleTo.executeWithOptions({ summary: `H7 scale ${apiserver.name} back` }, [
        { ...apiserver, replicas: inventory.apiserverReplicas, timeoutMs: 10 * MINUTE },
      ]);
      await persistent.scaleTo.executeWithOptions(
        { summary: `H8 scale ${maintenance.name} back` },
        [{ ...maintenance, replicas: inventory.maintenanceReplicas, timeoutMs: 10 * MINUTE }],
      );
      const pdb = undo.find((u) => u.what === 'H9 re-create the PDB');
      if (pdb) {
        progress.step(`H9 re-create PodDisruptionBudget ${profile.apiserverPdb}`);
        await pdb.run();
      }

      progress.step(
        'verify: health, one cluster, the snapshot on every member, replicas and PDB as before',
      );
      const after = await quick.inspectUserCluster.executeWithOptions(
        { summary: 'read back replicas and PDB' },
        [{ ...cluster, profile }],
      );
      const verified = verifyRestore({
        members,
        record,
        health,
        keyspace,
        before: inventory,
        after,
        pdbSaved: pdb !== undefined,
      });

      if (!params.deleteOldDataImmediately) {
        progress.step('verified: remove the old data set aside on each member');
        await Promise.all(
          range(members).map((n) =>
            persistent.discardOldMemberData.executeWithOptions(
              { summary: `remove old data of member ${n}` },
              [
                {
                  ...cluster,
                  pod: `${profile.etcdStatefulSet}-${n}`,
                  container: profile.etcdContainer,
                  profile,
                  token,
                },
              ],
            ),
          ),
        );
      }
      return verified;
    });

    const notes: string[] = [];
    if (root.consideredCancelled) {
      notes.push(
        'cancellation was requested after the point of no return: a restore cannot stop halfway, so it was finished',
      );
    }
    for (const line of [...result, ...notes]) progress.note(line);
    finish('succeeded', `restored from ${snapshot.backupId} and verified`);
    return {
      userClusterName,
      backupId: snapshot.backupId,
      members: range(members),
      verified: [...result, ...notes],
    };
  } catch (error) {
    // The Web UI must not list a restore that ended as running.
    if (!outcomeShown) {
      finish(
        isCancellation(error) ? 'cancelled' : 'failed',
        `not restored: ${describeError(error)}`,
      );
    }
    throw error;
  } finally {
    await CancellationScope.nonCancellable(release);
  }
}

/** The number of members to restore, after checking the cluster is as the runbook expects. */
function checkCluster(
  inventory: ClusterInventory,
  asked: 1 | 3 | undefined,
  claimPrefix: string,
): number {
  const members = asked ?? inventory.etcdReplicas;
  const problems: string[] = [];
  if (members !== 1 && members !== 3)
    problems.push(`kube-etcd has ${members} replicas; only 1 or 3 can be restored`);
  if (asked !== undefined && asked !== inventory.etcdReplicas) {
    problems.push(
      `members: the input says ${asked}, the kube-etcd StatefulSet has ${inventory.etcdReplicas}`,
    );
  }
  for (const n of range(members)) {
    const pod = inventory.members.find((m) => m.member === n);
    if (!pod?.nodeName)
      problems.push(`kube-etcd-${n} has no pod on a node: its node cannot be known`);
    else if (!inventory.nodes.includes(pod.nodeName))
      problems.push(`node ${pod.nodeName} of kube-etcd-${n} does not exist`);
    if (!inventory.dataClaims.includes(`${claimPrefix}-${n}`))
      problems.push(`PVC ${claimPrefix}-${n} does not exist`);
  }
  const nodes = range(members).map((n) => inventory.members.find((m) => m.member === n)?.nodeName);
  if (new Set(nodes).size !== nodes.length) problems.push('two members run on the same node');
  if (problems.length > 0) {
    throw ApplicationFailure.nonRetryable(
      `the cluster is not as the runbook expects; nothing was changed: ${problems.join('; ')}`,
      ClusterState,
    );
  }
  return members;
}

interface VerifyInput {
  members: number;
  record: { revision: number; keyCount?: number; kvHash?: number };
  health: {
    health: Array<{ endpoint: string; health: boolean }>;
    clusterIds: string[];
    revisions: number[];
  };
  keyspace: { keyCount: number; hashes: Array<{ endpoint: string; hash: number }> };
  before: ClusterInventory;
  after: ClusterInventory;
  pdbSaved: boolean;
}

/** The end-of-restore checks; each passed check is one line of the result. */
function verifyRestore(v: VerifyInput): string[] {
  const lines: string[] = [];
  const fail = (message: string): never => {
    throw ApplicationFailure.nonRetryable(
      `restore verification failed: ${message}`,
      'VerificationFailed',
    );
  };
  const healthy = v.health.health.filter((h) => h.health).length;
  if (healthy !== v.members) fail(`${healthy} of ${v.members} members healthy`);
  lines.push(`${healthy}/${v.members} members healthy`);
  if (new Set(v.health.clusterIds).size !== 1)
    fail(`members report cluster IDs ${v.health.clusterIds.join(', ')}`);
  lines.push(`one cluster ID (${v.health.clusterIds[0]})`);
  const lowest = Math.min(...v.health.revisions);
  if (lowest < v.record.revision)
    fail(`revision ${lowest} is below the snapshot's ${v.record.revision}`);
  lines.push(`revision ${lowest} ≥ the snapshot's ${v.record.revision}`);
  const hashes = new Set(v.keyspace.hashes.map((h) => h.hash));
  if (v.keyspace.hashes.length !== v.members || hashes.size !== 1) {
    fail(
      `members disagree on the keyspace at revision ${v.record.revision}: ${JSON.stringify(v.keyspace.hashes)}`,
    );
  }
  if (v.record.kvHash !== undefined && !hashes.has(v.record.kvHash)) {
    fail(
      `keyspace hash ${[...hashes][0]} at revision ${v.record.revision} differs from the backup's ${v.record.kvHash}`,
    );
  }
  lines.push(
    `every member holds the snapshot's keyspace at revision ${v.record.revision} (hashkv ${[...hashes][0]}${v.record.kvHash !== undefined ? ', as recorded at backup' : ''})`,
  );
  if (v.record.keyCount !== undefined && v.keyspace.keyCount !== v.record.keyCount) {
    fail(
      `${v.keyspace.keyCount} keys at revision ${v.record.revision}, the backup recorded ${v.record.keyCount}`,
    );
  }
  lines.push(`${v.keyspace.keyCount} keys at revision ${v.record.revision}`);
  for (const [what, before, after] of [
    ['kube-etcd', v.before.etcdReplicas, v.after.etcdReplicas],
    ['kube-apiserver', v.before.apiserverReplicas, v.after.apiserverReplicas],
    ['gke-master-etcd-maintenance', v.before.maintenanceReplicas, v.after.maintenanceReplicas],
  ] as const) {
    if (before !== after) fail(`${what} has ${after} replicas, had ${before}`);
    lines.push(`${what} back to ${after} replicas`);
  }
  if (v.pdbSaved && !v.after.pdbPresent) fail('the PodDisruptionBudget is missing');
  if (v.pdbSaved) lines.push('PodDisruptionBudget re-created with its saved spec');
  return lines;
}

/** Like Promise.all, but rejects (with the first failure) only once every promise settled. */
async function settleAll<T>(promises: Array<Promise<T>>): Promise<T[]> {
  const settled = await Promise.allSettled(promises);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
}

function snapshotPathIn(workDir: string): string {
  return podJoin(workDir, 'snapshot.db');
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}
