/**
 * kube-apiserver compacts etcd (`compactEveryMs`), as the real one does every 5 minutes:
 * through the compare-and-swap on `compact_rev_key`, to the revision of one interval ago,
 * and only while kube-apiserver pods run.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { clientsFor, eventually, patchAs, sleep } from './client.js';
import { type SimCluster, startSimCluster } from './index.js';

async function compactRevision(sim: SimCluster): Promise<number> {
  const r = await sim.etcdctl(['endpoint', 'hashkv', '-w', 'json']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { HashKV: { compact_revision: number } }[])[0]?.HashKV
    .compact_revision as number;
}

async function revision(sim: SimCluster): Promise<number> {
  const r = await sim.etcdctl(['endpoint', 'status', '-w', 'json']);
  assert.equal(r.code, 0, r.stderr);
  return (JSON.parse(r.stdout) as { Status: { header: { revision: number } } }[])[0]?.Status.header
    .revision as number;
}

test('compactEveryMs: the compact revision rises while kube-apiserver runs, stops when it is scaled to 0', async () => {
  const sim = await startSimCluster({
    members: 1,
    userClusterName: 'compact',
    adminEtcd: false,
    compactEveryMs: 1000,
  });
  try {
    const c = clientsFor(sim.kubeconfigPath);
    const early = await revision(sim);
    // The first compaction comes two intervals after an apiserver starts (none on bootstrap).
    const first = await eventually('a compaction', async () => {
      const x = await compactRevision(sim);
      return x > 0 ? x : undefined;
    });
    const second = await eventually(
      'a later compaction',
      async () => {
        const x = await compactRevision(sim);
        return x > first ? x : undefined;
      },
      10_000,
    );
    assert.ok(second > first);
    // compact_rev_key holds the revision last compacted to; its version counts compactions.
    const key = await sim.etcdctl(['get', 'compact_rev_key', '-w', 'json']);
    const kv = (JSON.parse(key.stdout) as { kvs: { value: string; version: number }[] }).kvs[0];
    assert.ok(kv);
    assert.ok(Number(Buffer.from(kv.value, 'base64').toString()) >= second);
    // Old revisions are gone, as an informer resuming a watch would find out.
    const old = await sim.etcdctl([
      'get',
      '/registry/sim-apiserver/kube-apiserver-0',
      `--rev=${early}`,
    ]);
    assert.notEqual(old.code, 0);
    assert.match(old.stderr, /required revision has been compacted/);
    // Three apiservers, one compaction per interval between them (the CAS on the key).
    const v0 = kv.version;
    const t0 = Date.now();
    await sleep(4000);
    const later = await sim.etcdctl(['get', 'compact_rev_key', '-w', 'json']);
    const v1 = (JSON.parse(later.stdout) as { kvs: { version: number }[] }).kvs[0]?.version ?? 0;
    const intervals = (Date.now() - t0) / 1000;
    assert.ok(v1 - v0 >= 2 && v1 - v0 <= intervals + 2, `${v1 - v0} CAS wins in ${intervals} s`);

    await c.apps.patchNamespacedStatefulSetScale(
      { name: 'kube-apiserver', namespace: 'compact', body: { spec: { replicas: 0 } } },
      patchAs('merge'),
    );
    await eventually('apiservers gone', async () => {
      const pods = await c.core.listNamespacedPod({
        namespace: 'compact',
        labelSelector: 'component=kube-apiserver',
      });
      return pods.items.length === 0;
    });
    const stopped = await compactRevision(sim);
    await sleep(3500);
    assert.equal(await compactRevision(sim), stopped, 'no compaction without kube-apiserver');
    assert.deepEqual(sim.loopErrors, []);
  } finally {
    await sim.stop();
  }
});

test('default: nothing compacts', async () => {
  const sim = await startSimCluster({ members: 1, userClusterName: 'nocompact', adminEtcd: false });
  try {
    await sleep(2500);
    assert.equal(await compactRevision(sim), -1);
  } finally {
    await sim.stop();
  }
});
