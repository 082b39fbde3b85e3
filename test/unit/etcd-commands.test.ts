/**
 * etcdctl argv builders and output parsers, checked against the runbook's text and then
 * run against a real etcd 3.4 with TLS on loopback: save, status, a three-member restore
 * with identity that starts as a cluster, and the one-member restore.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  connectionFlags,
  endpointHealthCommand,
  endpointStatusCommand,
  hashKvCommand,
  keyCountCommand,
  memberIdToHex,
  parseEndpointHealth,
  parseEndpointStatus,
  parseHashKv,
  parseKeyCount,
  parseSnapshotStatus,
  quoteJsonIntegers,
  snapshotRestoreCommand,
  snapshotSaveCommand,
  snapshotStatusCommand,
} from '../../activities/etcd/commands.js';
import {
  type ClusterProfile,
  clusterProfileSchema,
  initialCluster,
  memberPodName,
  peerUrl,
} from '../../workflows/contract/index.js';
import {
  freePort,
  makeTlsFiles,
  type RunningEtcd,
  runEtcdctl,
  startEtcd,
  stopAllEtcd,
  type TlsFiles,
  waitUntil,
} from '../harness/etcd-tls.js';

const gke = clusterProfileSchema.parse({});
const MEMBER_IPS = ['127.0.0.1', '127.0.1.1', '127.0.2.1'];
const KEYS: Record<string, string> = {
  '/registry/namespaces/default': 'default namespace',
  '/registry/pods/kube-system/etcd': '{"kind":"Pod"}',
  '/a': '1',
};

let tmp = '';
let tls: TlsFiles;
let source: ClusterProfile;
let sourceEtcd: RunningEtcd;
let snapshotFile = '';

/** A profile for loopback members: member N on 127.0.N.1, same ports for all. */
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

function clientUrlOf(profile: ClusterProfile, member: number): string {
  return profile.etcdEndpoint.replace('127.0.0.1', MEMBER_IPS[member] ?? '');
}

function atEndpoint(profile: ClusterProfile, endpoint: string): ClusterProfile {
  return { ...profile, etcdEndpoint: endpoint };
}

async function etcdctlOnline(profile: ClusterProfile, ...args: string[]): Promise<string> {
  const { stdout } = await runEtcdctl(['etcdctl', ...connectionFlags(profile), ...args]);
  return stdout;
}

async function readKey(profile: ClusterProfile, key: string): Promise<string> {
  const out = await etcdctlOnline(profile, 'get', key, '--print-value-only');
  return out.replace(/\n$/, '');
}

async function waitHealthy(profile: ClusterProfile, members: RunningEtcd[], count: number) {
  await waitUntil(
    `${count} healthy members at ${profile.etcdEndpoint}`,
    async () => {
      const { stdout } = await runEtcdctl(endpointHealthCommand(profile, { cluster: count > 1 }));
      const health = parseEndpointHealth(stdout);
      assert.equal(health.filter((h) => h.health).length, count);
    },
    members,
  );
}

/** Starts each restored member on its data dir, with the identity flags of the pod. */
function startRestored(profile: ClusterProfile, members: number, dirs: string[]): RunningEtcd[] {
  return dirs.map((dataDir, n) =>
    startEtcd({
      name: memberPodName(profile, n),
      dataDir,
      clientUrl: clientUrlOf(profile, n),
      peerUrl: peerUrl(profile, n),
      initialCluster: initialCluster(profile, members),
      initialClusterToken: profile.initialClusterToken,
      tls,
    }),
  );
}

interface MemberListEntry {
  ID: string;
  name: string;
  peerURLs: string[];
}

async function memberList(profile: ClusterProfile): Promise<MemberListEntry[]> {
  const out = await etcdctlOnline(profile, 'member', 'list', '-w', 'json');
  const parsed = JSON.parse(quoteJsonIntegers(out)) as { members: MemberListEntry[] };
  return [...parsed.members].sort((a, b) => a.name.localeCompare(b.name));
}

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'etcd-commands-'));
  tls = await makeTlsFiles(tmp, MEMBER_IPS);
  source = await loopbackProfile();
  sourceEtcd = startEtcd({
    name: memberPodName(source, 0),
    dataDir: join(tmp, 'source.etcd'),
    clientUrl: source.etcdEndpoint,
    peerUrl: peerUrl(source, 0),
    initialCluster: initialCluster(source, 1),
    tls,
  });
  await waitHealthy(source, [sourceEtcd], 1);
  for (const [key, value] of Object.entries(KEYS)) await etcdctlOnline(source, 'put', key, value);
  // Saved here, through the B2 builder, so every test below can use it on its own.
  snapshotFile = join(tmp, 'snapshot.db');
  await runEtcdctl(snapshotSaveCommand(source, snapshotFile));
});

after(async () => {
  await stopAllEtcd();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

test('B2: snapshot save is the runbook command for the GKE on-prem profile', () => {
  // No ETCDCTL_API=3 and no `env`: 3.4+ default to v3, 3.6 warns, distroless has no env.
  const cmd = snapshotSaveCommand(gke, '/snapshot.db');
  assert.equal(
    cmd.join(' '),
    'etcdctl --endpoints=https://127.0.0.1:2379 --cacert=/etcd.local.config/certificates/etcdCA.crt --cert=/etcd.local.config/certificates/etcd.crt --key=/etcd.local.config/certificates/etcd.key --dial-timeout=10s --command-timeout=1800s snapshot save /snapshot.db',
  );
  assert.equal(
    snapshotSaveCommand(gke, '/s.db', { etcdctl: '/usr/local/bin/etcdctl' })[0],
    '/usr/local/bin/etcdctl',
  );
});

test('H5c: restore of member 1 carries the runbook identity flags and a data dir', () => {
  const cmd = snapshotRestoreCommand(gke, { file: '/snapshot.db', member: 1, members: 3 });
  assert.deepEqual(cmd, [
    'etcdctl',
    'snapshot',
    'restore',
    '/snapshot.db',
    '--name=kube-etcd-1',
    '--initial-cluster=kube-etcd-0=https://kube-etcd-0.kube-etcd:2380,kube-etcd-1=https://kube-etcd-1.kube-etcd:2380,kube-etcd-2=https://kube-etcd-2.kube-etcd:2380',
    '--initial-cluster-token=etcd-cluster-1',
    '--initial-advertise-peer-urls=https://kube-etcd-1.kube-etcd:2380',
    '--data-dir=/kube-etcd-1.etcd',
  ]);
  const one = snapshotRestoreCommand(gke, {
    file: '/snapshot.db',
    member: 0,
    members: 1,
    dataDir: '/var/lib/etcd-restore',
  });
  assert.ok(one.includes('--initial-cluster=kube-etcd-0=https://kube-etcd-0.kube-etcd:2380'));
  assert.ok(one.includes('--data-dir=/var/lib/etcd-restore'));
  // etcd 3.5+: etcdutl restores, and can bump the revision; etcdctl 3.4 cannot.
  const bumped = snapshotRestoreCommand(
    gke,
    { file: '/s.db', member: 0, members: 1, bumpRevision: 1_000_000_000 },
    { etcdctl: 'etcdctl', etcdutl: 'etcdutl' },
  );
  assert.deepEqual(bumped.slice(0, 3), ['etcdutl', 'snapshot', 'restore']);
  assert.deepEqual(bumped.slice(-2), ['--bump-revision=1000000000', '--mark-compacted']);
  assert.throws(
    () => snapshotRestoreCommand(gke, { file: '/s.db', member: 0, members: 1, bumpRevision: 5 }),
    /needs etcdutl/,
  );
});

test('builders refuse bad members and relative or flag-like paths', () => {
  const restore = (member: number, members: number, file = '/s.db') =>
    snapshotRestoreCommand(gke, { file, member, members });
  assert.throws(() => restore(3, 3), /member must be an integer from 0 to 2/);
  assert.throws(() => restore(0, 0), /members must be a positive integer/);
  assert.throws(() => restore(0, 1, 'snapshot.db'), /snapshot restore: "snapshot.db"/);
  assert.throws(() => snapshotSaveCommand(gke, '--help'), /must be an absolute path/);
  assert.throws(() => snapshotStatusCommand('/a/../b'), /must not contain ".." segments/);
});

test('JSON parsers keep uint64 ids exact and name what is wrong', () => {
  // Recorded from etcdctl 3.4.23: ids beyond Number.MAX_SAFE_INTEGER.
  const status = parseEndpointStatus(
    '[{"Endpoint":"https://127.0.0.1:23790","Status":{"header":{"cluster_id":18356651462332683079,"member_id":15605283837629904139,"revision":3,"raft_term":2},"version":"3.4.23","dbSize":20480,"leader":15605283837629904139,"raftIndex":6,"raftTerm":2,"raftAppliedIndex":6,"dbSizeInUse":16384}}]\n',
  );
  assert.deepEqual(status, [
    {
      endpoint: 'https://127.0.0.1:23790',
      memberId: '15605283837629904139',
      clusterId: '18356651462332683079',
      revision: 3,
      leader: '15605283837629904139',
      isLeader: true,
      raftTerm: 2,
      dbSize: 20480,
      version: '3.4.23',
      errors: [],
    },
  ]);
  // Recorded from etcd 3.5.35, the last member of three running: no leader, so no `leader`.
  const [alone] = parseEndpointStatus(
    '[{"Endpoint":"http://127.0.0.1:24701","Status":{"header":{"cluster_id":13805680747766176984,"member_id":17628310501313495538,"revision":2,"raft_term":3},"version":"3.5.35","dbSize":20480,"raftIndex":10,"raftTerm":3,"raftAppliedIndex":10,"errors":["etcdserver: no leader"],"dbSizeInUse":16384}}]',
  );
  assert.equal(alone?.leader, '0');
  assert.equal(alone?.isLeader, false);
  assert.equal(alone?.revision, 2);
  assert.deepEqual(alone?.errors, ['etcdserver: no leader']);
  assert.equal(memberIdToHex('15605283837629904139'), 'd8911af85113350b');
  assert.deepEqual(
    parseEndpointHealth(
      '[{"endpoint":"https://127.0.0.1:1","health":false,"took":"5.000794441s","error":"context deadline exceeded"}]',
    ),
    [{ endpoint: 'https://127.0.0.1:1', health: false, error: 'context deadline exceeded' }],
  );
  assert.equal(
    quoteJsonIntegers('{"a":"x\\"1","b":-12,"c":1.5e3,"d":[0,true]}'),
    '{"a":"x\\"1","b":"-12","c":1.5e3,"d":["0",true]}',
  );
  assert.throws(
    () => parseSnapshotStatus('{"hash":1,"revision":2,"totalKey":3}'),
    /snapshot status -w json: unexpected output: totalSize/,
  );
  assert.throws(
    () =>
      parseSnapshotStatus('{"hash":1,"revision":99999999999999999999,"totalKey":3,"totalSize":4}'),
    /revision/,
  );
  assert.throws(() => parseEndpointHealth('Error: unhealthy cluster'), /output is not JSON/);
});

test('snapshot save and snapshot status against a real etcd with client TLS', async () => {
  assert.ok((await stat(snapshotFile)).size > 0);

  const [endpoint] = parseEndpointStatus((await runEtcdctl(endpointStatusCommand(source))).stdout);
  assert.ok(endpoint);
  assert.equal(endpoint.endpoint, source.etcdEndpoint);
  assert.equal(endpoint.isLeader, true);
  assert.equal(endpoint.revision, 1 + Object.keys(KEYS).length);
  assert.match(endpoint.version, /^3\.4\./);

  const status = parseSnapshotStatus(
    (await runEtcdctl(snapshotStatusCommand(snapshotFile))).stdout,
  );
  assert.equal(status.revision, endpoint.revision);
  assert.ok(status.totalKey >= Object.keys(KEYS).length);
  // `snapshot save` appends the sha256 of the bolt file, which restore checks.
  assert.equal((await stat(snapshotFile)).size, status.totalSize + 32);
  assert.ok(Number.isInteger(status.hash));

  // The member id etcd prints in hex (member list simple) is the JSON's id, losslessly.
  const simple = await etcdctlOnline(source, 'member', 'list');
  assert.equal(simple.split(',')[0], memberIdToHex(endpoint.memberId));
});

test('H5c: three members restored with identity form a cluster that has the keys', async () => {
  const target = await loopbackProfile();
  const dirs = [0, 1, 2].map((n) => join(tmp, 'restore-3', `${memberPodName(target, n)}.etcd`));
  for (const [n, dataDir] of dirs.entries()) {
    await runEtcdctl(
      snapshotRestoreCommand(target, { file: snapshotFile, member: n, members: 3, dataDir }),
    );
  }
  const members = startRestored(target, 3, dirs);
  try {
    await waitHealthy(target, members, 3);
    const list = await memberList(target);
    assert.deepEqual(
      list.map((m) => [m.name, m.peerURLs]),
      [0, 1, 2].map((n) => [
        `kube-etcd-${n}`,
        [`https://${MEMBER_IPS[n]}:${new URL(peerUrl(target, 0)).port}`],
      ]),
    );

    // etcd derives a restored member's id from its peer URL and the cluster token
    // (sha1, first 8 bytes): this checks --initial-cluster-token reached etcd.
    for (const m of list) {
      const digest = createHash('sha1').update(
        `${m.peerURLs.join('')}${target.initialClusterToken}`,
      );
      assert.equal(BigInt(m.ID), BigInt(`0x${digest.digest('hex').slice(0, 16)}`), m.name);
    }

    const statuses = parseEndpointStatus(
      (await runEtcdctl(endpointStatusCommand(target, { cluster: true }))).stdout,
    );
    assert.equal(statuses.length, 3);
    assert.equal(new Set(statuses.map((s) => s.clusterId)).size, 1);
    assert.equal(statuses.filter((s) => s.isLeader).length, 1);
    assert.deepEqual(
      statuses.map((s) => memberIdToHex(s.memberId)).sort(),
      list.map((m) => BigInt(m.ID).toString(16)).sort(),
    );

    const member2 = atEndpoint(target, clientUrlOf(target, 2));
    for (const [key, value] of Object.entries(KEYS)) {
      assert.equal(await readKey(member2, key), value);
    }
  } finally {
    await Promise.all(members.map((m) => m.stop()));
  }
});

test('R4: one member restored with a one-member identity starts and has the keys', async () => {
  const target = await loopbackProfile();
  const dataDir = join(tmp, 'restore-1', 'kube-etcd-0.etcd');
  await runEtcdctl(
    snapshotRestoreCommand(target, { file: snapshotFile, member: 0, members: 1, dataDir }),
  );
  const members = startRestored(target, 1, [dataDir]);
  try {
    await waitHealthy(target, members, 1);
    const list = await memberList(target);
    assert.deepEqual(
      list.map((m) => [m.name, m.peerURLs]),
      [['kube-etcd-0', [peerUrl(target, 0)]]],
    );
    for (const [key, value] of Object.entries(KEYS)) {
      assert.equal(await readKey(target, key), value);
    }
  } finally {
    await Promise.all(members.map((m) => m.stop()));
  }
});

test('key count and hashkv at a revision read the keyspace as it was then', async () => {
  const { revision } = parseSnapshotStatus(
    (await runEtcdctl(snapshotStatusCommand(snapshotFile))).stdout,
  );
  const countAt = async (rev: number) =>
    parseKeyCount((await runEtcdctl(keyCountCommand(source, rev))).stdout);
  const hashAt = async (rev: number) => {
    const hashes = parseHashKv((await runEtcdctl(hashKvCommand(source, rev))).stdout);
    assert.equal(hashes.length, 1);
    return hashes[0]?.hash;
  };
  assert.equal(
    await countAt(revision),
    Object.keys(KEYS).length,
    'the keys of the snapshot, at its revision',
  );
  const hashAtSnapshot = await hashAt(revision);
  const countNow = await countAt(0);

  await etcdctlOnline(source, 'put', '/written/after/the/snapshot', 'x');
  assert.equal(await countAt(0), countNow + 1, 'a new key counts now');
  assert.equal(
    await countAt(revision),
    Object.keys(KEYS).length,
    'but not at the snapshot revision',
  );
  assert.equal(
    await hashAt(revision),
    hashAtSnapshot,
    'the keyspace at a past revision does not change',
  );
  assert.notEqual(await hashAt(0), hashAtSnapshot, 'the current keyspace does');
  assert.equal(parseKeyCount('{"header":{"revision":1}}'), 0, 'etcd leaves out a zero count');
});

test('a compaction changes hashkv at a revision it does not reach; the compact revision says so', async () => {
  // Why a backup records hashkv with its compact revision: hashkv at R covers the
  // revisions after the compact revision, so compacting at C ≤ R (as kube-apiserver does
  // every few minutes) changes the hash at R while the keys at R stay the same.
  await etcdctlOnline(source, 'put', '/compaction/key', 'v1');
  await etcdctlOnline(source, 'put', '/compaction/key', 'v2');
  const status = parseEndpointStatus((await runEtcdctl(endpointStatusCommand(source))).stdout);
  const at = status[0]?.revision ?? 0;
  await etcdctlOnline(source, 'put', '/compaction/key', 'v3');
  const before = parseHashKv((await runEtcdctl(hashKvCommand(source, at))).stdout)[0];
  const countBefore = parseKeyCount((await runEtcdctl(keyCountCommand(source, at))).stdout);
  await etcdctlOnline(source, 'compaction', String(at - 1));
  const after = parseHashKv((await runEtcdctl(hashKvCommand(source, at))).stdout)[0];
  assert.ok(before && after);
  assert.equal(after.compactRevision, at - 1, 'hashkv reports the compact revision');
  assert.ok(after.compactRevision > before.compactRevision);
  assert.notEqual(after.hash, before.hash, 'the hash at the same revision changed');
  assert.equal(
    parseKeyCount((await runEtcdctl(keyCountCommand(source, at))).stdout),
    countBefore,
    'the key count at that revision did not',
  );
});
