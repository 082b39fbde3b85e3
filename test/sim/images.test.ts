/**
 * Lean images and etcd releases: a distroless kube-etcd has no shell (exec fails as with
 * containerd: InternalError, "executable file not found in $PATH"; a container whose command
 * is missing fails with StartError 128), the BusyBox utility image lacks flock, GNU mv -T and
 * stat, and the pods run the etcd release asked for (3.5, 3.6), with tags that say so.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type * as k8s from '@kubernetes/client-node';
import { etcdRelease } from '../harness/tools.js';
import { type Clients, clientsFor, eventually, execIn } from './client.js';
import { type SimCluster, startSimCluster } from './index.js';

const work = mkdtempSync(join(tmpdir(), 'sim-images-test-'));
after(() => rmSync(work, { recursive: true, force: true }));

function tls(sim: SimCluster): string[] {
  const p = sim.profile;
  return [
    `--cacert=${p.certificatesDir}/${p.caFile}`,
    `--cert=${p.certificatesDir}/${p.certFile}`,
    `--key=${p.certificatesDir}/${p.keyFile}`,
  ];
}

/** The SPEC's utility pod (R2) with a given image. */
function utilityPod(sim: SimCluster, name: string, image: string): k8s.V1Pod {
  const p = sim.profile;
  return {
    metadata: { name, namespace: sim.userClusterName },
    spec: {
      containers: [
        {
          command: ['/bin/sh'],
          args: ['-ec', "while :; do echo '.'; sleep 5 ; done"],
          image,
          name: p.utilityContainer,
          volumeMounts: [{ mountPath: p.certificatesDir, name: 'etcd-certs' }],
        },
      ],
      nodeSelector: { [p.clusterNameLabel]: sim.userClusterName },
      volumes: [
        { name: 'etcd-certs', secret: { defaultMode: 420, secretName: sim.etcdSecretName } },
      ],
    },
  };
}

async function ready(c: Clients, ns: string, name: string): Promise<void> {
  await eventually(`${name} ready`, async () => {
    const p = await c.core.readNamespacedPod({ name, namespace: ns });
    return p.status?.containerStatuses?.[0]?.ready === true;
  });
}

describe('etcd 3.6, distroless kube-etcd, BusyBox utility image', () => {
  let sim: SimCluster;
  let c: Clients;
  const ns = 'lean';
  const version = etcdRelease('3.6').version;

  before(async () => {
    sim = await startSimCluster({
      members: 3,
      userClusterName: ns,
      etcd: '3.6',
      etcdImage: 'distroless',
      utilityImage: 'busybox',
    });
    c = clientsFor(sim.kubeconfigPath);
  });
  after(async () => {
    await sim?.stop();
  });

  test('endpoint status reports 3.6 on every member; the image tags say the version', async () => {
    const r = await sim.etcdctl(['endpoint', 'status', '-w', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const versions = (JSON.parse(r.stdout) as { Status: { version: string } }[]).map(
      (s) => s.Status.version,
    );
    assert.deepEqual(versions, [version, version, version]);
    assert.equal(sim.etcd.version, version);
    assert.equal(sim.etcdImage, `gcr.io/gke-on-prem-release/etcd:v${version}-0-gke.0-distroless`);
    const pod = await c.core.readNamespacedPod({ name: 'kube-etcd-0', namespace: ns });
    assert.equal(pod.spec?.containers[0]?.image, sim.etcdImage);
    assert.equal(pod.spec?.containers[0]?.command?.[0], '/usr/local/bin/etcd');
    assert.equal(
      pod.spec?.containers[0]?.env?.some((e) => e.name === 'ETCDCTL_API'),
      false,
      'no ETCDCTL_API=3 for etcdctl 3.6 (it warns about it)',
    );
    const admin = sim.adminEtcd;
    assert.ok(admin);
    const a = await c.core.readNamespacedPod({ name: admin.podName, namespace: 'kube-system' });
    assert.equal(a.spec?.containers[0]?.image, `registry.k8s.io/etcd:${version}-0-distroless`);
  });

  test('distroless kube-etcd: etcd and etcdctl only; exec of sh fails as containerd reports it', async () => {
    const exec = (argv: string[]) => execIn(c.kc, ns, 'kube-etcd-0', 'kube-etcd', argv);
    const v = await exec(['etcdctl', 'version']);
    assert.equal(v.exitCode, 0, v.stderr);
    assert.match(v.stdout.toString(), new RegExp(`etcdctl version: ${version}`));
    assert.equal(v.stderr, '', 'no ETCDCTL_API warning');
    const save = await exec([
      'etcdctl',
      `--endpoints=${sim.etcdClientUrl(0)}`,
      ...tls(sim),
      'snapshot',
      'save',
      '/snapshot.db',
    ]);
    assert.equal(save.exitCode, 0, save.stderr);
    assert.equal((await exec(['etcdutl', 'version'])).exitCode, 0);
    // etcdctl 3.6 has no `snapshot status` any more (it prints the help of `snapshot`, which
    // has only `save`, and exits 0: cobra); etcdutl has it.
    const gone = await exec(['etcdctl', 'snapshot', 'status', '/snapshot.db', '-w', 'json']);
    assert.match(gone.stdout.toString(), /COMMANDS:\n\s+save\s/);
    assert.doesNotMatch(gone.stdout.toString(), /"totalKey"/);
    const status = await exec(['etcdutl', 'snapshot', 'status', '/snapshot.db', '-w', 'json']);
    assert.equal(status.exitCode, 0, status.stderr);

    for (const [argv0, why] of [
      ['sh', 'exec: "sh": executable file not found in $PATH'],
      ['env', 'exec: "env": executable file not found in $PATH'],
      ['cat', 'exec: "cat": executable file not found in $PATH'],
      ['/bin/sh', 'exec: "/bin/sh": stat /bin/sh: no such file or directory'],
    ] as const) {
      const r = await exec([argv0, '-c', 'echo hi']);
      assert.equal(r.exitCode, undefined, 'no exit code: the process never started');
      assert.equal(r.status?.status, 'Failure');
      assert.equal(r.status?.reason, 'InternalError');
      assert.equal(r.status?.code, 500);
      assert.match(
        r.status?.message ?? '',
        /^Internal error occurred: error executing command in container: failed to exec in container: failed to start exec "[0-9a-f]{64}": OCI runtime exec failed: exec failed: unable to start container process: /,
      );
      assert.ok(r.status?.message?.endsWith(`${why}: unknown`), r.status?.message);
      assert.equal(r.stdout.length, 0);
      assert.equal(r.closeCode, 1000);
    }
  });

  test('a pod with /bin/sh as its command on the distroless image fails with StartError 128', async () => {
    await c.core.createNamespacedPod({
      namespace: ns,
      body: utilityPod(sim, 'from-etcd-image', sim.etcdImage),
    });
    const cs = await eventually('StartError', async () => {
      const p = await c.core.readNamespacedPod({ name: 'from-etcd-image', namespace: ns });
      const s = p.status?.containerStatuses?.[0];
      return s?.lastState?.terminated?.reason === 'StartError' && s.restartCount >= 1
        ? s
        : undefined;
    });
    assert.equal(cs.lastState?.terminated?.exitCode, 128);
    assert.match(
      cs.lastState?.terminated?.message ?? '',
      /OCI runtime create failed: .*exec: "\/bin\/sh": stat \/bin\/sh: no such file or directory: unknown$/,
    );
    assert.ok(['RunContainerError', 'CrashLoopBackOff'].includes(cs.state?.waiting?.reason ?? ''));
    assert.equal(cs.ready, false);
    await c.core.deleteNamespacedPod({
      name: 'from-etcd-image',
      namespace: ns,
      gracePeriodSeconds: 0,
    });
  });

  test('BusyBox utility pod: no flock, no mv -T, no stat; the everyday applets and etcdctl work', async () => {
    const image = `${sim.profile.utilityImageRepository}:1.31.0-gke.0`;
    await c.core.createNamespacedPod({ namespace: ns, body: utilityPod(sim, 'bb', image) });
    await ready(c, ns, 'bb');
    const sh = (script: string) =>
      execIn(c.kc, ns, 'bb', sim.profile.utilityContainer, ['sh', '-c', script]);
    for (const script of [
      'echo hello > /f && head -c 3 /f && tail -n 1 /f',
      'sha256sum /f && wc -c /f && df -k / && sync',
      'mkdir -p /d/e && mv /f /d/g && cat /d/g && rm -r /d',
    ]) {
      const r = await sh(script);
      assert.equal(r.exitCode, 0, `${script}: ${r.stderr}`);
    }
    const flock = await sh('flock /tmp/lock true');
    assert.equal(flock.exitCode, 127);
    assert.match(flock.stderr, /flock: not found/);
    const stat = await sh('stat -c %s /etc/passwd');
    assert.equal(stat.exitCode, 127);
    assert.match(stat.stderr, /stat: not found/);
    const mvT = await sh('mkdir /a /b && mv -T /a /b');
    assert.equal(mvT.exitCode, 1);
    assert.match(mvT.stderr, /mv: invalid option -- 'T'/);
    const flockExec = await execIn(c.kc, ns, 'bb', sim.profile.utilityContainer, ['flock']);
    assert.equal(flockExec.status?.reason, 'InternalError');
    assert.match(
      flockExec.status?.message ?? '',
      /exec: "flock": executable file not found in \$PATH/,
    );
    const v = await sh('etcdctl version && etcdutl version');
    assert.equal(v.exitCode, 0, v.stderr);
    assert.match(v.stdout.toString(), new RegExp(`etcdctl version: ${version}`));
    const health = await sh(
      `etcdctl --endpoints=${sim.etcdClientUrl(1)} ${tls(sim).join(' ')} endpoint health`,
    );
    assert.equal(health.exitCode, 0, health.stderr);
    await c.core.deleteNamespacedPod({ name: 'bb', namespace: ns, gracePeriodSeconds: 0 });
    assert.deepEqual(sim.loopErrors, []);
  });
});

describe('etcd 3.5 with the full images', () => {
  let sim: SimCluster;
  let c: Clients;
  const ns = 'v35';
  const version = etcdRelease('3.5').version;

  before(async () => {
    sim = await startSimCluster({ members: 3, userClusterName: ns, etcd: '3.5' });
    c = clientsFor(sim.kubeconfigPath);
  });
  after(async () => {
    await sim?.stop();
  });

  test('endpoint status reports 3.5 on every member; pods and host helpers use 3.5', async () => {
    const r = await sim.etcdctl(['endpoint', 'status', '-w', 'json']);
    assert.equal(r.code, 0, r.stderr);
    const versions = (JSON.parse(r.stdout) as { Status: { version: string } }[]).map(
      (s) => s.Status.version,
    );
    assert.deepEqual(versions, [version, version, version]);
    assert.equal(sim.etcdImage, `gcr.io/gke-on-prem-release/etcd:v${version}-0-gke.0`);
    // The full image has a shell; its etcd binaries are the release's, wherever one looks.
    const inPod = await execIn(c.kc, ns, 'kube-etcd-1', 'kube-etcd', [
      'sh',
      '-c',
      'etcdctl version; /usr/bin/etcdctl version; /usr/local/bin/etcd --version; command -v etcdutl',
    ]);
    assert.equal(inPod.exitCode, 0, inPod.stderr);
    const out = inPod.stdout.toString();
    assert.equal(out.match(new RegExp(`etcdctl version: ${version}`, 'g'))?.length, 2, out);
    assert.match(out, new RegExp(`etcd Version: ${version}`));
    assert.match(out, /\/usr\/local\/bin\/etcdutl/);
    await sim.putKey('/v35', 'yes', { member: 2 });
    assert.equal(await sim.getKey('/v35', { member: 0 }), 'yes');
    const snap = join(work, 'v35.db');
    assert.equal((await sim.etcdctl(['snapshot', 'save', snap], { member: 0 })).code, 0);
    const status = await sim.etcdutl(['snapshot', 'status', snap, '-w', 'json']);
    assert.equal(status.code, 0, status.stderr);
    assert.ok(statSync(snap).size > 0);
    assert.deepEqual(sim.loopErrors, []);
  });
});
