/**
 * What differs between etcd 3.4, 3.5 and 3.6 (workflows/contract/etcd-versions.ts), the
 * revision bump's sizing and plan, and the end-of-restore checks after a bump — first as
 * pure functions, then against real etcd 3.5 and 3.6 (provision.sh's builds) with TLS on
 * loopback: the tools' versions as the pods report them, etcdctl 3.6's `snapshot status`
 * that prints help and exits 0, and a three-member restore through the H5c builder with
 * --bump-revision --mark-compacted whose started cluster passes verifyRestoredEtcd — the
 * revision raised, the keys all there at the current revision, a read and a watch between
 * the snapshot's revision and the pre-restore one refused as compacted — where the same
 * restore without the bump answers that read.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import { ApplicationFailure } from '@temporalio/common';
import {
  COMPACTED,
  connectionFlags,
  endpointHealthCommand,
  endpointStatusCommand,
  hashKvCommand,
  isCommandHelp,
  keyCountCommand,
  parseEndpointHealth,
  parseEndpointStatus,
  parseHashKv,
  parseKeyCount,
  parseSnapshotStatus,
  parseToolVersion,
  snapshotRestoreCommand,
  snapshotSaveCommand,
  snapshotStatusCommand,
  watchFromRevisionCommand,
} from '../../activities/etcd/commands.js';
import {
  type BackupRecord,
  backupRecordSchema,
  type ClusterProfile,
  type CompactionProbe,
  chooseEtcdTools,
  clusterProfileSchema,
  type EtcdTools,
  FailureType,
  hasBumpRevision,
  initialCluster,
  MIN_REVISION_BUMP,
  memberPodName,
  parseEtcdVersion,
  peerUrl,
  type RevisionAnswer,
  revisionBump,
} from '../../workflows/contract/index.js';
import {
  checkProvenance,
  compactionProbeRevisions,
  planRevision,
  type RestoredEtcd,
  verifyRestoredEtcd,
} from '../../workflows/restore/checks.js';
import {
  freePort,
  makeTlsFiles,
  type RunningEtcd,
  startEtcd,
  stopAllEtcd,
  type TlsFiles,
  waitUntil,
} from '../harness/etcd-tls.js';
import { etcdRelease } from '../harness/tools.js';

const execFileAsync = promisify(execFile);

describe('versions and tools', () => {
  test('versions are read from tags and tool output, and compared', () => {
    assert.deepEqual(parseEtcdVersion('3.5.35'), { major: 3, minor: 5, patch: 35 });
    assert.deepEqual(parseEtcdVersion('v3.6.16-0-gke.0'), { major: 3, minor: 6, patch: 16 });
    assert.equal(parseEtcdVersion('latest'), undefined);
    assert.equal(parseEtcdVersion(undefined), undefined);
    assert.equal(hasBumpRevision(parseEtcdVersion('3.5.9')), false);
    assert.equal(hasBumpRevision(parseEtcdVersion('3.5.10')), true);
    assert.equal(hasBumpRevision(parseEtcdVersion('3.4.23')), false);
    assert.equal(hasBumpRevision(undefined), false);
  });

  test('the tools follow the versions: etcdctl on 3.4, etcdutl where the image has it, none lacking', () => {
    const on34 = chooseEtcdTools({ etcdctl: '3.4.23' }, 'pod x');
    assert.deepEqual(on34.tools, { etcdctl: 'etcdctl' });
    assert.equal(on34.canBumpRevision, false);
    const on35 = chooseEtcdTools({ etcdctl: '3.5.35', etcdutl: '3.5.35' }, 'pod x');
    assert.deepEqual(on35.tools, { etcdctl: 'etcdctl', etcdutl: 'etcdutl' });
    assert.equal(on35.canBumpRevision, true);
    assert.equal(
      chooseEtcdTools({ etcdctl: '3.5.9', etcdutl: '3.5.9' }, 'x').canBumpRevision,
      false,
    );
    // etcdctl 3.5 without etcdutl still has the (deprecated) offline commands, and no bump.
    assert.equal(chooseEtcdTools({ etcdctl: '3.5.35' }, 'x').offline, 'etcdctl 3.5.35');
    for (const found of [{ etcdctl: '3.6.16' }, { etcdutl: '3.6.16' }]) {
      assert.throws(
        () => chooseEtcdTools(found, 'the image of kube-etcd-0'),
        (e: unknown) =>
          e instanceof ApplicationFailure &&
          e.type === FailureType.MissingTools &&
          e.nonRetryable &&
          /the image of kube-etcd-0 lacks etcd(ctl|utl)/.test(e.message),
      );
    }
  });
});

describe('the revision bump', () => {
  const now = Date.parse('2026-12-01T12:00:00Z');
  const record = (over: Partial<BackupRecord> = {}): BackupRecord =>
    backupRecordSchema.parse({
      id: '20261201T110000Z-0123abcd',
      userClusterName: 'user-cluster-1',
      member: 0,
      sourcePod: 'kube-etcd-0',
      createdAt: '2026-12-01T11:00:00Z',
      sha256: 'a'.repeat(64),
      sizeBytes: 1,
      revision: 5000,
      totalKeys: 10,
      etcdHash: 1,
      toolVersions: {},
      ...over,
    });

  test("it is at least OpenShift's billion, and twice what was observed when that is more", () => {
    assert.equal(revisionBump({ snapshotRevision: 5000, now }).amount, MIN_REVISION_BUMP);
    const live = revisionBump({ snapshotRevision: 5000, liveRevision: 800_005_000, now });
    assert.equal(live.amount, 1_600_000_000);
    assert.match(live.reasons.join('; '), /2 × the 800000000 revisions a live member made/);
    // 1e6 revisions/s for an hour: 3.6e9 expected, 7.2e9 bumped.
    const rate = revisionBump({
      snapshotRevision: 5000,
      takenAt: '2026-12-01T11:00:00Z',
      revisionsPerSecond: 1_000_000,
      now,
    });
    assert.equal(rate.amount, 7_200_000_000);
    const capped = revisionBump({ snapshotRevision: Number.MAX_SAFE_INTEGER - 10, now });
    assert.equal(capped.amount, 10);
    assert.match(capped.reasons.join('; '), /below 2\^53/);
  });

  test('the plan: a bump required on 3.5.10+, none on 3.4 with what to restart, conditional when unknown', () => {
    const on36 = planRevision(record(), { version: '3.6.16', from: 'kube-etcd-1' }, now);
    assert.equal(on36.required, true);
    assert.equal(on36.bump?.amount, MIN_REVISION_BUMP);
    assert.match(on36.line, /raised from 5000 by 1000000000 .* marked compacted/);
    const on34 = planRevision(record(), { version: '3.4.23', from: 'kube-etcd-1' }, now);
    assert.equal(on34.bump, undefined);
    assert.equal(on34.required, false);
    assert.match(on34.line, /not raised .* etcd is back at revision 5000/);
    assert.match(
      on34.line,
      /kubelet on every node .* kube-controller-manager|kube-controller-manager.*kubelet/,
    );
    const unknown = planRevision(record(), { from: 'nobody answered' }, now);
    assert.equal(unknown.required, false);
    assert.ok(unknown.bump);
    assert.match(unknown.line, /if the utility image's etcdutl is 3\.5\.10 or later/);
  });

  test('provenance: another cluster or a newer etcd minor is refused naming the difference, unless allowed', () => {
    const provenance = {
      adminCluster: 'admin-east',
      namespaceUid: 'uid-1',
      etcdVersion: '3.6.16',
      clusterId: '111',
      memberId: '1',
      memberIds: ['1', '2', '3'],
    };
    const here = {
      adminCluster: 'admin-east',
      namespaceUid: 'uid-1',
      userClusterName: 'user-cluster-1',
    };
    const on36 = { version: '3.6.2', from: 'kube-etcd-1 reports it (endpoint status)' };
    const none = { allowForeignSnapshot: false, allowNewerEtcd: false };
    const same = checkProvenance(record({ provenance }), here, on36, none);
    assert.match(
      same.checked.join('\n'),
      /taken from this cluster .*not newer than the cluster's etcd 3\.6\.2/s,
    );
    const refused = (type: string, pattern: RegExp) => (e: unknown) =>
      e instanceof ApplicationFailure &&
      e.type === type &&
      e.nonRetryable &&
      pattern.test(e.message);
    assert.throws(
      () => checkProvenance(record({ provenance }), { ...here, namespaceUid: 'uid-2' }, on36, none),
      refused(
        FailureType.ForeignSnapshot,
        /namespace uid uid-1, namespace user-cluster-1 now has uid uid-2/,
      ),
    );
    assert.throws(
      () => checkProvenance(record({ provenance }), here, { version: '3.5.35', from: 'x' }, none),
      refused(FailureType.NewerEtcd, /etcd 3\.6\.16, a newer minor than .*3\.5\.35/),
    );
    const allowed = checkProvenance(
      record({ provenance }),
      { ...here, adminCluster: 'admin-west' },
      { version: '3.5.35', from: 'x' },
      { allowForeignSnapshot: true, allowNewerEtcd: true },
    );
    assert.match(
      allowed.notes.join('\n'),
      /allowed by allowForeignSnapshot: .*admin-east, this is admin-west/,
    );
    assert.match(allowed.notes.join('\n'), /allowed by allowNewerEtcd/);
    const imported = checkProvenance(record({ origin: 'imported' }), here, on36, none);
    assert.match(imported.notes.join('\n'), /an imported snapshot has no provenance/);
  });

  test('probes: right after the snapshot, and the newest revision the broken cluster reached', () => {
    assert.deepEqual(compactionProbeRevisions(100, 1000, 150), [101, 150]);
    // Unknown, or outside the range: the last revision below the bumped one.
    assert.deepEqual(compactionProbeRevisions(100, 1000, undefined), [101, 1099]);
    assert.deepEqual(compactionProbeRevisions(100, 1000, 5000), [101, 1099]);
    assert.deepEqual(compactionProbeRevisions(100, 2, undefined), [101]);
  });
});

// ---------------------------------------------------------------------------------------
// Real etcd 3.5 and 3.6

const MEMBER_IPS = ['127.0.0.1', '127.0.1.1', '127.0.2.1'];
const KEYS = Array.from({ length: 12 }, (_, i) => [`/registry/things/${i}`, `value-${i}`]);

async function run(argv: string[], timeoutMs = 60_000) {
  const [file, ...args] = argv;
  if (!file) throw new Error('empty argv');
  return execFileAsync(file, args, {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    maxBuffer: 16 * 1024 * 1024,
    timeout: timeoutMs,
  });
}

/** Like the activity probeCompactedRevision, with local processes: refused as compacted, or not. */
async function answerAt(argv: string[], timeoutMs: number): Promise<RevisionAnswer> {
  try {
    const { stdout } = await run(argv, timeoutMs);
    return { refused: false, detail: `answered: ${stdout.slice(0, 80)}` };
  } catch (error) {
    const e = error as { stdout?: string; stderr?: string; killed?: boolean };
    const m = COMPACTED.exec(`${e.stdout ?? ''}\n${e.stderr ?? ''}`);
    if (m) return { refused: true, detail: m[0] };
    if (e.killed) return { refused: false, detail: `still open after ${timeoutMs} ms` };
    throw error;
  }
}

for (const line of ['3.5', '3.6'] as const) {
  describe(`etcd ${line}`, () => {
    const release = etcdRelease(line);
    const tools: EtcdTools = { etcdctl: release.etcdctl, etcdutl: release.etcdutl };
    let tmp = '';
    let tls: TlsFiles;
    let snapshotFile = '';
    let snapshotRevision = 0;
    let keyCountAtSnapshot = 0;
    let liveRevision = 0;

    async function loopbackProfile(): Promise<ClusterProfile> {
      const peerPort = await freePort(MEMBER_IPS);
      const clientPort = await freePort(MEMBER_IPS);
      return clusterProfileSchema.parse({
        etcdEndpoint: `https://127.0.0.1:${clientPort}`,
        peerUrlTemplate: `https://127.0.{member}.1:${peerPort}`,
        certificatesDir: tls.dir,
        caFile: tls.caFile,
        certFile: tls.certFile,
        keyFile: tls.keyFile,
        workDir: tmp,
      });
    }

    function startMembers(profile: ClusterProfile, dirs: string[]): RunningEtcd[] {
      return dirs.map((dataDir, n) =>
        startEtcd({
          binary: release.etcd,
          name: memberPodName(profile, n),
          dataDir,
          clientUrl: profile.etcdEndpoint.replace('127.0.0.1', MEMBER_IPS[n] ?? ''),
          peerUrl: peerUrl(profile, n),
          initialCluster: initialCluster(profile, dirs.length),
          initialClusterToken: profile.initialClusterToken,
          tls,
        }),
      );
    }

    async function waitHealthy(profile: ClusterProfile, members: RunningEtcd[]) {
      await waitUntil(
        `${members.length} healthy etcd ${line} members`,
        async () => {
          const { stdout } = await run(
            endpointHealthCommand(profile, { cluster: members.length > 1 }, tools),
          );
          assert.equal(parseEndpointHealth(stdout).filter((h) => h.health).length, members.length);
        },
        members,
      );
    }

    before(async () => {
      tmp = await mkdtemp(join(tmpdir(), `etcd-${line}-`));
      tls = await makeTlsFiles(tmp, MEMBER_IPS);
      const source = await loopbackProfile();
      const [etcd] = startMembers(source, [join(tmp, 'source.etcd')]);
      assert.ok(etcd);
      try {
        await waitHealthy(source, [etcd]);
        const put = (k: string, v: string) =>
          run([tools.etcdctl, ...connectionFlags(source), 'put', k, v]);
        for (const [k, v] of KEYS) await put(k ?? '', v ?? '');
        snapshotFile = join(tmp, 'snapshot.db');
        await run(snapshotSaveCommand(source, snapshotFile, tools));
        snapshotRevision = parseSnapshotStatus(
          (await run(snapshotStatusCommand(snapshotFile, tools))).stdout,
        ).revision;
        keyCountAtSnapshot = parseKeyCount(
          (await run(keyCountCommand(source, snapshotRevision, tools))).stdout,
        );
        // The cluster goes on after the backup: what its clients saw is newer than the snapshot.
        for (let i = 0; i < 30; i++) await put('/registry/after-backup', String(i));
        const [status] = parseEndpointStatus(
          (await run(endpointStatusCommand(source, {}, tools))).stdout,
        );
        liveRevision = status?.revision ?? 0;
        assert.ok(liveRevision >= snapshotRevision + 30);
      } finally {
        await etcd.stop();
      }
    });

    after(async () => {
      await stopAllEtcd();
      if (tmp) await rm(tmp, { recursive: true, force: true });
    });

    test('the tools report their versions as the pods check them, and are chosen by them', async () => {
      const etcdctl = parseToolVersion('etcdctl', (await run([tools.etcdctl, 'version'])).stdout);
      const etcdutl = parseToolVersion('etcdutl', (await run([release.etcdutl, 'version'])).stdout);
      assert.equal(etcdctl, release.version);
      assert.equal(etcdutl, release.version);
      const choice = chooseEtcdTools({ etcdctl, etcdutl }, `etcd ${line}`);
      assert.equal(choice.offline, `etcdutl ${release.version}`);
      assert.equal(choice.canBumpRevision, true);
    });

    test(
      line === '3.6'
        ? 'etcdctl 3.6 has no snapshot status: it prints the help and exits 0, which is recognised'
        : 'etcdctl 3.5 still reads a snapshot (deprecated), as etcdutl does',
      async () => {
        const byEtcdctl = await run(
          snapshotStatusCommand(snapshotFile, { etcdctl: tools.etcdctl }),
        );
        assert.equal(isCommandHelp(byEtcdctl.stdout), line === '3.6');
        const byEtcdutl = parseSnapshotStatus(
          (await run(snapshotStatusCommand(snapshotFile, tools))).stdout,
        );
        assert.equal(byEtcdutl.revision, snapshotRevision);
        if (line === '3.5') assert.deepEqual(parseSnapshotStatus(byEtcdctl.stdout), byEtcdutl);
      },
    );

    /** H5c for three members, bumped or not; starts them; returns what verifyRestoredEtcd reads. */
    async function restoreAndRead(
      bump: number | undefined,
    ): Promise<Omit<RestoredEtcd, 'record' | 'members'>> {
      const target = await loopbackProfile();
      const dirs = [0, 1, 2].map((n) =>
        join(tmp, `restore-${bump ?? 'plain'}`, `kube-etcd-${n}.etcd`),
      );
      for (const [n, dataDir] of dirs.entries()) {
        await run(
          snapshotRestoreCommand(
            target,
            {
              file: snapshotFile,
              member: n,
              members: 3,
              dataDir,
              ...(bump ? { bumpRevision: bump } : {}),
            },
            tools,
          ),
        );
      }
      const members = startMembers(target, dirs);
      try {
        await waitHealthy(target, members);
        const health = parseEndpointHealth(
          (await run(endpointHealthCommand(target, { cluster: true }, tools))).stdout,
        );
        const status = parseEndpointStatus(
          (await run(endpointStatusCommand(target, { cluster: true }, tools))).stdout,
        );
        const at = bump === undefined ? snapshotRevision : 0;
        const keyCount = parseKeyCount((await run(keyCountCommand(target, at, tools))).stdout);
        const hashes = parseHashKv(
          (await run(hashKvCommand(target, at, { cluster: true }, tools))).stdout,
        );
        const probes: CompactionProbe[] = [];
        // A plain restore is back at the snapshot's revision: newer ones are "future".
        const probeAt =
          bump === undefined
            ? [snapshotRevision]
            : compactionProbeRevisions(snapshotRevision, bump, liveRevision);
        for (const revision of probeAt) {
          probes.push({
            revision,
            read: await answerAt(keyCountCommand(target, revision, tools), 30_000),
            watch: await answerAt(watchFromRevisionCommand(target, revision, tools), 3_000),
          });
        }
        return {
          health: {
            health,
            clusterIds: status.map((s) => s.clusterId),
            memberIds: status.map((s) => s.memberId),
            revisions: status.map((s) => s.revision),
            versions: status.map((s) => s.version),
          },
          keyspace: {
            keyCount,
            hashes,
          },
          ...(bump !== undefined ? { bump } : {}),
          probes,
        };
      } finally {
        await Promise.all(members.map((m) => m.stop()));
      }
    }

    test('H5c with --bump-revision --mark-compacted: the started cluster passes the checks, and they say what they checked', async () => {
      const bump = revisionBump({ snapshotRevision, liveRevision, now: Date.now() }).amount;
      assert.equal(bump, MIN_REVISION_BUMP);
      const read = await restoreAndRead(bump);
      assert.deepEqual(read.health.versions, [release.version, release.version, release.version]);
      const lines = verifyRestoredEtcd({
        members: 3,
        record: { revision: snapshotRevision, keyCount: keyCountAtSnapshot },
        ...read,
      });
      const text = lines.join('\n');
      assert.match(
        text,
        new RegExp(
          `revision ${snapshotRevision + bump} ≥ the snapshot's ${snapshotRevision} \\+ ${bump}`,
        ),
      );
      assert.match(
        text,
        new RegExp(
          `${KEYS.length} keys at the current revision .* as recorded at backup at revision ${snapshotRevision}`,
        ),
      );
      assert.match(
        text,
        new RegExp(`compacted at ${snapshotRevision + bump} \\(--mark-compacted\\)`),
      );
      for (const r of [snapshotRevision + 1, liveRevision])
        assert.match(
          text,
          new RegExp(`a read and a watch at revision ${r}, between .* are refused as compacted`),
        );
    });

    test('without the bump the old revisions are readable again, and the checks of a bump fail: they are not vacuous', async () => {
      const read = await restoreAndRead(undefined);
      const [probe] = read.probes ?? [];
      assert.equal(
        probe?.read.refused,
        false,
        'the snapshot revision of a plain restore is readable',
      );
      assert.match(probe?.read.detail ?? '', /answered/);
      // Claiming a bump it did not make fails the check.
      assert.throws(
        () =>
          verifyRestoredEtcd({
            members: 3,
            record: { revision: snapshotRevision, keyCount: keyCountAtSnapshot },
            ...read,
            bump: MIN_REVISION_BUMP,
          }),
        (e: unknown) =>
          e instanceof ApplicationFailure && e.type === FailureType.VerificationFailed,
      );
    });
  });
}
