/**
 * Full volumes: data PVCs with a size (`pvcSizeBytes`) fail writes with ENOSPC when full —
 * a restore's scratch copy on the data volume does not fit next to etcd's own data — and
 * still outlive pods; `sizeLimitedDir` makes such a directory on the host (a worker's
 * backup directory). Mounts go with stop() / release().
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { clientsFor, eventually, execIn } from './client.js';
import { sizeLimitedDir, startSimCluster } from './index.js';
import { simMounts } from './mounts.js';

const MiB = 1024 * 1024;
const work = mkdtempSync(join(tmpdir(), 'sim-volumes-test-'));
after(() => rmSync(work, { recursive: true, force: true }));

const mountedUnder = (dir: string) =>
  simMounts().filter((m) => m.dir === dir || m.dir.startsWith(`${dir}/`));

test('pvcSizeBytes: the data volume is full at its size (ENOSPC), and it outlives the pod', async () => {
  const sim = await startSimCluster({
    members: 1,
    userClusterName: 'full',
    adminEtcd: false,
    pvcSizeBytes: 160 * MiB,
  });
  try {
    const c = clientsFor(sim.kubeconfigPath);
    const ns = 'full';
    const pvc = await c.core.readNamespacedPersistentVolumeClaim({
      name: 'data-kube-etcd-0',
      namespace: ns,
    });
    assert.equal(pvc.status?.capacity?.storage, '160Mi');
    assert.equal(pvc.spec?.resources?.requests?.storage, '160Mi');
    assert.equal(mountedUnder(sim.dir).length, 1, 'one tmpfs, for the one data PVC');
    const p = sim.profile;
    const sh = (script: string) =>
      execIn(c.kc, ns, 'kube-etcd-0', p.etcdContainer, ['/bin/sh', '-c', script]);
    const df = await sh('df -k /var/lib/etcd | tail -n 1');
    assert.match(df.stdout.toString(), /\s163840\s/, 'df shows the size');
    // etcd keeps two 64 MB WAL segment files (the current one and a preallocated spare):
    // a restore next to them (another WAL) runs out of space.
    const snap = await sh(
      `etcdctl --endpoints=${sim.etcdClientUrl(0)} --cacert=${p.certificatesDir}/${p.caFile} --cert=${p.certificatesDir}/${p.certFile} --key=${p.certificatesDir}/${p.keyFile} snapshot save /snapshot.db`,
    );
    assert.equal(snap.exitCode, 0, snap.stderr);
    const restore = await sh(
      'etcdctl snapshot restore /snapshot.db --data-dir /var/lib/etcd/scratch',
    );
    assert.notEqual(restore.exitCode, 0);
    assert.match(restore.stderr, /no space left on device/i);
    const fill = await sh('dd if=/dev/zero of=/var/lib/etcd/fill bs=1M count=300');
    assert.notEqual(fill.exitCode, 0);
    assert.match(fill.stderr, /No space left on device/);
    assert.equal((await sh('rm -rf /var/lib/etcd/fill /var/lib/etcd/scratch')).exitCode, 0);
    await eventually('etcd healthy after the disk was full', () => sim.memberHealthy(0), 60_000);

    // The volume outlives the pod (the StatefulSet recreates it on the same claim).
    assert.equal((await sh('echo keep > /var/lib/etcd/keep')).exitCode, 0);
    const uid = sim.pod(ns, 'kube-etcd-0')?.metadata.uid;
    await c.core.deleteNamespacedPod({ name: 'kube-etcd-0', namespace: ns });
    await eventually('a new kube-etcd-0', async () => {
      const x = sim.pod(ns, 'kube-etcd-0');
      return x?.metadata.uid !== uid && x?.status?.containerStatuses?.[0]?.ready === true;
    });
    assert.equal((await sh('cat /var/lib/etcd/keep')).stdout.toString(), 'keep\n');
    assert.equal(await sim.hasQuorum(), true);
    assert.deepEqual(sim.loopErrors, []);
  } finally {
    await sim.stop();
  }
  assert.deepEqual(mountedUnder(sim.dir), [], 'stop() unmounts');
  assert.equal(existsSync(sim.dir), false);
});

test('sizeLimitedDir: a host directory that hits ENOSPC when full; release() removes it', async () => {
  const dir = join(work, 'backups');
  const d = await sizeLimitedDir(dir, 1 * MiB);
  assert.equal(d.path, dir);
  assert.equal(mountedUnder(dir).length, 1);
  await writeFile(join(dir, 'small'), Buffer.alloc(512 * 1024));
  await assert.rejects(writeFile(join(dir, 'big'), Buffer.alloc(1 * MiB)), { code: 'ENOSPC' });
  await d.release();
  await d.release();
  assert.deepEqual(mountedUnder(dir), []);
  assert.equal(existsSync(dir), false);
  await writeFile(join(work, 'other'), 'x');
  await assert.rejects(sizeLimitedDir(work, 1 * MiB), /not empty/);
});
