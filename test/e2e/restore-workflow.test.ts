/**
 * restoreUserCluster end to end (Temporal dev server + simulated cluster with real etcd),
 * from the states the runbook describes: one member corrupt and crash-looping (R), two of
 * three members corrupt (H). The data in etcd afterwards is read back: the backup's keys
 * are there, keys written after the backup are not.
 *
 * The etcd release is ETCD_LINE's (test/harness/tools.ts). On 3.5 and 3.6 the restore
 * raises the revision (etcdutl --bump-revision --mark-compacted) and its verified lines say
 * so; on 3.4 it cannot, and its notes say what that means. A leg of a newer line runs the
 * three-member restore only.
 */
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { connectKube } from '../../activities/kube/client.js';
import { FileSystemBackupStore } from '../../activities/repository/fs-store.js';
import { EtcdOpsClient } from '../../client/client.js';
import type { RestoreUserClusterResult } from '../../workflows/contract/index.js';
import { snapshotFileIn, stored } from '../harness/backups.js';
import { readControlPlane } from '../harness/control-plane.js';
import {
  simWorkerConfig,
  startTemporalTestContext,
  type TemporalTestContext,
} from '../harness/temporal.js';
import { defaultLineOnly, etcdLineUnderTest } from '../harness/tools.js';
import { type SimCluster, startSimCluster } from '../sim/index.js';

const line = etcdLineUnderTest();

const scratch = mkdtempSync(join(tmpdir(), 'restore-workflow-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

for (const members of [1, 3] as const) {
  describe(
    `restore of a ${members}-member user cluster on etcd ${line}`,
    members === 1 ? defaultLineOnly() : {},
    () => {
      const ns = `restore-${members}`;
      let sim: SimCluster;
      let ctx: TemporalTestContext;
      let client: EtcdOpsClient;
      before(async () => {
        sim = await startSimCluster({ members, userClusterName: ns, adminEtcd: false, etcd: line });
        ctx = await startTemporalTestContext(`restore-${members}`, {
          config: simWorkerConfig(sim, join(scratch, `backups-${members}`), {
            importInbox: join(scratch, `inbox-${members}`),
          }),
        });
        client = new EtcdOpsClient(ctx.env.client, ctx.taskQueue);
      });
      after(async () => {
        await ctx?.teardown();
        await sim?.stop();
      });

      test('corrupt members are restored from the backup and the cluster verified', async () => {
        for (let i = 0; i < 20; i++) await sim.putKey(`/test/before/${i}`, `value-${i}`);
        const backup = stored(await (await client.startBackup({ userClusterName: ns })).result());
        await sim.putKey('/test/after-backup', 'must not survive the restore');
        // Clients see revisions past the snapshot's: the bump must cover them.
        for (let i = 0; i < 5; i++) await sim.putKey('/test/after-backup', `still not ${i}`);
        const replicasBefore = await readControlPlane(sim, ns);

        const corrupt = members === 1 ? [0] : [0, 2];
        for (const n of corrupt) await sim.corruptMember(n);
        await sim.waitFor(
          'the corrupt members to crash-loop',
          () =>
            corrupt.every((n) =>
              sim
                .pod(ns, `kube-etcd-${n}`)
                ?.status?.containerStatuses?.some((c) => (c.restartCount ?? 0) > 0),
            ),
          60_000,
        );
        assert.equal(
          await sim.hasQuorum(),
          false,
          'with the data corrupt the cluster has no quorum',
        );

        const handle = await client.startRestore({
          userClusterName: ns,
          gkeOnPremVersion: '1.5.0-gke.0',
          backup: { backupId: backup.id },
        });
        const result: RestoreUserClusterResult = await handle.result();
        assert.deepEqual(result.members, members === 1 ? [0] : [0, 1, 2]);
        assert.ok(
          result.verified.some((line) => /members healthy/.test(line)),
          result.verified.join('\n'),
        );
        assert.equal(result.outcome, 'restored');
        const verified = result.verified.join('\n');
        console.log(
          `restore of ${members} members on etcd ${sim.etcd.version}, verified:\n  ${result.verified.join('\n  ')}\nnotes:\n  ${result.notes.join('\n  ')}`,
        );
        const notes = result.notes.join('\n');
        assert.match(
          verified,
          /backup \S+ was taken from this cluster \(admin cluster \S+, namespace uid /,
        );
        assert.match(
          verified,
          new RegExp(
            `the snapshot is from etcd ${sim.etcd.version}, not newer than the cluster's etcd ${sim.etcd.version}`,
          ),
        );
        // Which etcd runs: a member that still answers says so (H1); with none, the image tag.
        assert.match(
          verified,
          members === 3
            ? /\(kube-etcd-1 reports it \(endpoint status\)\)/
            : /\(the image tag of kube-etcd-0 \(\S+\) says so; no member answered endpoint status\)/,
        );
        if (line === '3.4') {
          assert.match(
            verified,
            /every member has hashkv \d+ at revision \d+, as recorded at backup/,
          );
          assert.match(verified, /revision \d+ ≥ the snapshot's \d+$/m);
          assert.match(
            notes,
            /the revision is not raised \(the cluster's etcd is older than 3\.5\.10/,
          );
          assert.match(notes, /restart everything else that watches the user cluster: .*kubelet/);
        } else {
          const bumped =
            /revision (\d+) ≥ the snapshot's (\d+) \+ (\d+) \(raised by etcdutl --bump-revision\)/.exec(
              verified,
            );
          assert.ok(bumped, verified);
          const [, now, snapshotRevision, bump] = bumped.map(Number) as [
            number,
            number,
            number,
            number,
          ];
          assert.ok(bump >= 1_000_000_000 && now >= snapshotRevision + bump);
          assert.match(
            verified,
            /\d+ keys at the current revision \d+ \(kube-apiserver and maintenance at 0: nothing writes\), as recorded at backup/,
          );
          assert.match(
            verified,
            /every member has hashkv \d+ at the current revision \d+, compacted at \d+ \(--mark-compacted\)/,
          );
          assert.match(
            verified,
            new RegExp(
              `a read and a watch at revision ${snapshotRevision + 1}, between the snapshot's ${snapshotRevision} and the bumped ${snapshotRevision + bump}, are refused as compacted \\(watch canceled: required revision has been compacted\\)`,
            ),
          );
          assert.equal(
            (verified.match(/a read and a watch at revision/g) ?? []).length,
            2,
            "right after the snapshot's revision, and at the pre-restore one (kube-etcd-1's, or below the bump)",
          );
          assert.doesNotMatch(notes, /not raised/);
          // What a client holding a resourceVersion from before the restore now gets.
          const old = await sim.etcdctl(['get', '/test/before/0', `--rev=${snapshotRevision + 1}`]);
          assert.match(old.stderr, /required revision has been compacted/);
        }
        assert.ok(
          result.verified.some((line) => new RegExp(`^${members} distinct member IDs$`).test(line)),
          result.verified.join('\n'),
        );

        // What etcd holds now, read back through every member.
        assert.equal(await sim.hasQuorum(), true);
        for (let m = 0; m < members; m++) {
          assert.equal(await sim.memberHealthy(m), true, `member ${m} healthy`);
          for (let i = 0; i < 20; i++)
            assert.equal(await sim.getKey(`/test/before/${i}`, { member: m }), `value-${i}`);
          assert.equal(await sim.getKey('/test/after-backup', { member: m }), undefined);
        }
        assert.deepEqual(
          await readControlPlane(sim, ns),
          replicasBefore,
          'replicas and PDB as before',
        );
        assert.deepEqual(sim.violations, [], 'no protocol violation');
        assert.deepEqual(sim.loopErrors, []);

        const description = await handle.describe();
        assert.deepEqual(description.searchAttributes.EtcdOutcome, ['succeeded']);
        assert.deepEqual(description.searchAttributes.EtcdOperation, ['restore']);
        assert.deepEqual(description.searchAttributes.UserClusterName, [ns]);
      });

      if (members === 1) {
        test('a snapshot file put in the import inbox is imported (0600, marked), verified and restored', async () => {
          const backup = stored(await (await client.startBackup({ userClusterName: ns })).result());
          await sim.putKey('/test/after-file-backup', 'must not survive');
          const inbox = join(scratch, `inbox-${members}`);
          mkdirSync(inbox, { recursive: true });
          copyFileSync(
            snapshotFileIn(join(scratch, `backups-${members}`), backup),
            join(inbox, 'from-elsewhere.db'),
          );
          chmodSync(join(inbox, 'from-elsewhere.db'), 0o644);
          const result = await (
            await client.startRestore({
              userClusterName: ns,
              gkeOnPremVersion: '1.5.0-gke.0',
              backup: { importFile: 'from-elsewhere.db' },
            })
          ).result();
          assert.match(result.backupId, /^import-/, 'restored from the imported copy');
          const imported = await new FileSystemBackupStore(join(scratch, `backups-${members}`)).get(
            {
              userClusterName: ns,
              backupId: result.backupId,
            },
          );
          assert.equal(imported.origin, 'imported');
          assert.equal(imported.sourcePod, 'import:from-elsewhere.db');
          assert.equal(
            statSync(snapshotFileIn(join(scratch, `backups-${members}`), imported)).mode & 0o777,
            0o600,
          );
          assert.ok(
            result.verified.some((l) =>
              /not compared with the backup: it recorded no hash/.test(l),
            ),
            'an import does not claim a hash match',
          );
          assert.equal(await sim.getKey('/test/after-file-backup'), undefined);
          assert.equal(await sim.getKey('/test/before/0'), 'value-0');
          assert.deepEqual(sim.violations, []);
        });

        test('a corrupt backup is refused before any change', async () => {
          const backup = stored(await (await client.startBackup({ userClusterName: ns })).result());
          // Flip one byte in the middle of the stored snapshot.
          const { openSync, readSync, writeSync, closeSync } = await import('node:fs');
          const path = snapshotFileIn(join(scratch, `backups-${members}`), backup);
          const fd = openSync(path, 'r+');
          const middle = Math.floor(statSync(path).size / 2);
          const byte = Buffer.alloc(1);
          readSync(fd, byte, 0, 1, middle);
          byte[0] = (byte[0] ?? 0) ^ 0xff;
          writeSync(fd, byte, 0, 1, middle);
          closeSync(fd);
          const before = await readControlPlane(sim, ns);
          const uids = (
            await connectKube(sim.kubeconfigPath).core.listNamespacedPod({ namespace: ns })
          ).items
            .map((p) => p.metadata?.uid)
            .sort();

          const handle = await client.startRestore({
            userClusterName: ns,
            gkeOnPremVersion: '1.5.0-gke.0',
            backup: { backupId: backup.id },
          });
          const error = await handle.result().then(
            () => assert.fail('the restore of a corrupt backup must fail'),
            (e: unknown) => e,
          );
          assert.ok(error instanceof WorkflowFailedError);
          const cause = error.cause?.cause ?? error.cause;
          assert.ok(cause instanceof ApplicationFailure, String(cause));
          assert.match(cause.message, /sha256/);
          assert.deepEqual(await readControlPlane(sim, ns), before, 'nothing was changed');
          const uidsAfter = (
            await connectKube(sim.kubeconfigPath).core.listNamespacedPod({ namespace: ns })
          ).items
            .map((p) => p.metadata?.uid)
            .sort();
          assert.deepEqual(uidsAfter, uids, 'no pod was created, deleted or restarted');
        });
      }
    },
  );
}
