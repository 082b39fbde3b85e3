/**
 * The simulated admin cluster's Kubernetes API, through @kubernetes/client-node: discovery,
 * every resource and verb the activities use, Status errors, the kubelet (sandbox, phases,
 * crash loop, scheduling) and the controllers. No etcd here (see etcd.test.ts).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { apiError, type Clients, clientsFor, eventually, execIn, patchAs } from './client.js';
import { type SimAdminCluster, startSimAdminCluster } from './index.js';

const NS = 'api-test';
const LOOP = ['/bin/sh', '-c', 'while :; do sleep 1; done'];

let sim: SimAdminCluster;
let c: Clients;

before(async () => {
  sim = await startSimAdminCluster({
    backoffInitialMs: 300,
    backoffMaxMs: 2000,
    readyAfterMs: 200,
  });
  c = clientsFor(sim.kubeconfigPath);
  await c.core.createNamespace({ body: { metadata: { name: NS } } });
});

after(async () => {
  await sim?.stop();
});

function pod(
  name: string,
  extra: Partial<k8s.V1PodSpec> = {},
  labels: Record<string, string> = {},
): k8s.V1Pod {
  return {
    metadata: { name, namespace: NS, labels },
    spec: {
      containers: [{ name: 'main', image: 'busybox', command: LOOP }],
      terminationGracePeriodSeconds: 5,
      ...extra,
    },
  };
}

async function running(name: string): Promise<k8s.V1Pod> {
  return eventually(`pod ${name} ready`, async () => {
    const p = await c.core.readNamespacedPod({ name, namespace: NS });
    return p.status?.phase === 'Running' && p.status.containerStatuses?.every((s) => s.ready)
      ? p
      : undefined;
  });
}

async function gone(name: string): Promise<void> {
  await eventually(`pod ${name} gone`, async () => {
    const e = await apiError(c.core.readNamespacedPod({ name, namespace: NS })).catch(
      () => undefined,
    );
    return e?.code === 404;
  });
}

describe('discovery', () => {
  test('/version reports Kubernetes >= 1.30', async () => {
    const v = await c.kc.makeApiClient(k8s.VersionApi).getCode();
    assert.equal(v.major, '1');
    assert.ok(Number(v.minor) >= 30, `minor ${v.minor}`);
  });

  test('/api, /apis and the resource lists of core/v1, apps/v1, policy/v1', async () => {
    const api = await c.kc.makeApiClient(k8s.CoreApi).getAPIVersions();
    assert.deepEqual(api.versions, ['v1']);
    const groups = await c.kc.makeApiClient(k8s.ApisApi).getAPIVersions();
    assert.deepEqual(
      groups.groups.map((g) => g.preferredVersion?.groupVersion),
      ['apps/v1', 'policy/v1'],
    );
    const core = await c.core.getAPIResources();
    const names = core.resources.map((r) => r.name);
    for (const r of [
      'namespaces',
      'nodes',
      'pods',
      'pods/exec',
      'pods/log',
      'secrets',
      'persistentvolumeclaims',
    ]) {
      assert.ok(names.includes(r), r);
    }
    const apps = await c.apps.getAPIResources();
    assert.equal(apps.groupVersion, 'apps/v1');
    for (const r of ['statefulsets', 'statefulsets/scale', 'deployments', 'deployments/scale']) {
      assert.ok(
        apps.resources.some((x) => x.name === r),
        r,
      );
    }
    const policy = await c.policy.getAPIResources();
    assert.ok(policy.resources.some((x) => x.name === 'poddisruptionbudgets' && x.namespaced));
  });

  test('a wrong token gets 401', async () => {
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(sim.kubeconfigPath);
    const user = kc.getCurrentUser();
    assert.ok(user);
    const bad = new k8s.KubeConfig();
    bad.loadFromOptions({
      clusters: kc.clusters,
      users: [{ name: user.name, token: 'wrong' }],
      contexts: kc.contexts,
      currentContext: kc.currentContext,
    });
    const e = await apiError(bad.makeApiClient(k8s.CoreV1Api).listNode());
    assert.equal(e.code, 401);
  });
});

describe('core resources', () => {
  test('namespaces and nodes', async () => {
    const ns = await c.core.readNamespace({ name: NS });
    assert.equal(ns.status?.phase, 'Active');
    const all = await c.core.listNamespace();
    assert.ok(all.items.some((n) => n.metadata?.name === 'kube-system'));
    const nodes = await c.core.listNode();
    assert.deepEqual(
      nodes.items.map((n) => n.metadata?.name),
      ['node-0', 'node-1', 'node-2'],
    );
    const n0 = await c.core.readNode({ name: 'node-0' });
    assert.equal(n0.metadata?.labels?.['kubernetes.io/hostname'], 'node-0');
    assert.equal(n0.status?.conditions?.[0]?.type, 'Ready');
    const e = await apiError(c.core.readNode({ name: 'nope' }));
    assert.equal(e.code, 404);
    await c.core.createNamespace({ body: { metadata: { name: 'doomed' } } });
    await c.core.deleteNamespace({ name: 'doomed' });
    await eventually(
      'namespace gone',
      async () => (await apiError(c.core.readNamespace({ name: 'doomed' }))).code === 404,
    );
  });

  test('Status errors: 404 NotFound, 409 AlreadyExists, 422 Invalid, 400 resourceVersion on create', async () => {
    let e = await apiError(c.core.readNamespacedPod({ name: 'missing', namespace: NS }));
    assert.equal(e.code, 404);
    assert.equal(e.status.kind, 'Status');
    assert.equal(e.status.reason, 'NotFound');
    assert.equal(e.status.message, 'pods "missing" not found');

    await c.core.createNamespacedSecret({
      namespace: NS,
      body: { metadata: { name: 'dup' }, stringData: { a: 'b' } },
    });
    e = await apiError(
      c.core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'dup' } } }),
    );
    assert.equal(e.code, 409);
    assert.equal(e.status.reason, 'AlreadyExists');

    e = await apiError(
      c.core.createNamespacedPod({
        namespace: NS,
        body: { metadata: { name: 'bad' }, spec: { containers: [] } },
      }),
    );
    assert.equal(e.code, 422);
    assert.equal(e.status.reason, 'Invalid');

    e = await apiError(c.core.createNamespacedPod({ namespace: NS, body: pod('Bad_Name') }));
    assert.equal(e.code, 422);

    e = await apiError(
      c.core.createNamespacedSecret({
        namespace: NS,
        body: { metadata: { name: 'withrv', resourceVersion: '12' } },
      }),
    );
    assert.equal(e.code, 400);
    assert.equal(e.status.reason, 'BadRequest');

    e = await apiError(
      c.core.createNamespacedSecret({ namespace: 'no-such-ns', body: { metadata: { name: 'x' } } }),
    );
    assert.equal(e.code, 404);
  });

  test('secrets: create (data and stringData), get, list, replace, delete', async () => {
    const created = await c.core.createNamespacedSecret({
      namespace: NS,
      body: {
        metadata: { name: 'kube-etcd-certs-abcde', labels: { app: 'x' } },
        data: { 'ca.crt': Buffer.from('CA').toString('base64') },
        stringData: { token: 's3cret' },
      },
    });
    assert.equal(created.type, 'Opaque');
    assert.equal(Buffer.from(created.data?.token ?? '', 'base64').toString(), 's3cret');
    const got = await c.core.readNamespacedSecret({ name: 'kube-etcd-certs-abcde', namespace: NS });
    assert.equal(Buffer.from(got.data?.['ca.crt'] ?? '', 'base64').toString(), 'CA');
    const list = await c.core.listNamespacedSecret({ namespace: NS, labelSelector: 'app=x' });
    assert.deepEqual(
      list.items.map((s) => s.metadata?.name),
      ['kube-etcd-certs-abcde'],
    );
    got.data = { ...got.data, extra: Buffer.from('1').toString('base64') };
    const replaced = await c.core.replaceNamespacedSecret({
      name: 'kube-etcd-certs-abcde',
      namespace: NS,
      body: got,
    });
    assert.notEqual(replaced.metadata?.resourceVersion, got.metadata?.resourceVersion);
    const stale = await apiError(
      c.core.replaceNamespacedSecret({ name: 'kube-etcd-certs-abcde', namespace: NS, body: got }),
    );
    assert.equal(stale.code, 409);
    await c.core.deleteNamespacedSecret({ name: 'kube-etcd-certs-abcde', namespace: NS });
    assert.equal(
      (
        await apiError(
          c.core.readNamespacedSecret({ name: 'kube-etcd-certs-abcde', namespace: NS }),
        )
      ).code,
      404,
    );
  });

  test('persistentvolumeclaims: create binds, get, list, delete removes the directory', async () => {
    await c.core.createNamespacedPersistentVolumeClaim({
      namespace: NS,
      body: {
        metadata: { name: 'claim-a' },
        spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
      },
    });
    const bound = await eventually('pvc bound', async () => {
      const p = await c.core.readNamespacedPersistentVolumeClaim({
        name: 'claim-a',
        namespace: NS,
      });
      return p.status?.phase === 'Bound' ? p : undefined;
    });
    assert.equal(bound.status?.capacity?.storage, '1Gi');
    const list = await c.core.listNamespacedPersistentVolumeClaim({ namespace: NS });
    assert.ok(list.items.some((p) => p.metadata?.name === 'claim-a'));
    await c.core.deleteNamespacedPersistentVolumeClaim({ name: 'claim-a', namespace: NS });
    await eventually(
      'pvc gone',
      async () =>
        (
          await apiError(
            c.core.readNamespacedPersistentVolumeClaim({ name: 'claim-a', namespace: NS }),
          )
        ).code === 404,
    );
  });
});

describe('pods and the kubelet', () => {
  test('create, get, list by label selector, phases and conditions, graceful delete', async () => {
    await c.core.createNamespacedPod({
      namespace: NS,
      body: pod('p1', {}, { app: 'one', tier: 'a' }),
    });
    await c.core.createNamespacedPod({
      namespace: NS,
      body: pod('p2', {}, { app: 'two', tier: 'a' }),
    });
    const p1 = await running('p1');
    assert.ok(p1.spec?.nodeName?.startsWith('node-'));
    assert.equal(p1.status?.podIP, '127.0.0.1');
    const ready = p1.status?.conditions?.find((x) => x.type === 'Ready');
    assert.equal(ready?.status, 'True');
    assert.equal(p1.status?.containerStatuses?.[0]?.restartCount, 0);
    assert.ok(p1.status?.containerStatuses?.[0]?.state?.running?.startedAt);
    const byLabel = await c.core.listNamespacedPod({ namespace: NS, labelSelector: 'app=one' });
    assert.deepEqual(
      byLabel.items.map((p) => p.metadata?.name),
      ['p1'],
    );
    const bySet = await c.core.listNamespacedPod({
      namespace: NS,
      labelSelector: 'tier=a,app in (one,two)',
    });
    assert.equal(bySet.items.length, 2);
    const none = await c.core.listNamespacedPod({
      namespace: NS,
      labelSelector: 'app!=one,app!=two,tier',
    });
    assert.equal(none.items.length, 0);
    const allNs = await c.core.listPodForAllNamespaces({
      fieldSelector: `metadata.namespace=${NS}`,
    });
    assert.ok(allNs.items.length >= 2);

    const deleted = await c.core.deleteNamespacedPod({ name: 'p1', namespace: NS });
    assert.ok(
      deleted.metadata?.deletionTimestamp,
      'graceful delete returns the pod with deletionTimestamp',
    );
    await gone('p1');
    await c.core.deleteNamespacedPod({ name: 'p2', namespace: NS, gracePeriodSeconds: 0 });
    await gone('p2');
  });

  test('a container that keeps exiting goes into CrashLoopBackOff with restarts', async () => {
    await c.core.createNamespacedPod({
      namespace: NS,
      body: pod('crasher', {
        containers: [
          { name: 'main', image: 'busybox', command: ['/bin/sh', '-c', 'echo boom; exit 3'] },
        ],
      }),
    });
    const p = await eventually('crash loop', async () => {
      const x = await c.core.readNamespacedPod({ name: 'crasher', namespace: NS });
      const s = x.status?.containerStatuses?.[0];
      return s && s.restartCount >= 2 && s.state?.waiting?.reason === 'CrashLoopBackOff'
        ? x
        : undefined;
    });
    const s = p.status?.containerStatuses?.[0];
    assert.equal(s?.lastState?.terminated?.exitCode, 3);
    assert.equal(s?.ready, false);
    assert.equal(p.status?.phase, 'Running');
    const log = await c.core.readNamespacedPodLog({
      name: 'crasher',
      namespace: NS,
      container: 'main',
      previous: true,
    });
    assert.match(log, /boom/);
    await c.core.deleteNamespacedPod({ name: 'crasher', namespace: NS, gracePeriodSeconds: 0 });
  });

  test('restartPolicy Never: Succeeded / Failed', async () => {
    await c.core.createNamespacedPod({
      namespace: NS,
      body: pod('once-ok', {
        restartPolicy: 'Never',
        containers: [{ name: 'main', image: 'x', command: ['/bin/true'] }],
      }),
    });
    await c.core.createNamespacedPod({
      namespace: NS,
      body: pod('once-bad', {
        restartPolicy: 'Never',
        containers: [{ name: 'main', image: 'x', command: ['/bin/false'] }],
      }),
    });
    await eventually(
      'succeeded',
      async () =>
        (await c.core.readNamespacedPod({ name: 'once-ok', namespace: NS })).status?.phase ===
        'Succeeded',
    );
    const bad = await eventually('failed', async () => {
      const p = await c.core.readNamespacedPod({ name: 'once-bad', namespace: NS });
      return p.status?.phase === 'Failed' ? p : undefined;
    });
    assert.equal(bad.status?.containerStatuses?.[0]?.state?.terminated?.exitCode, 1);
    await c.core.deleteNamespacedPod({ name: 'once-ok', namespace: NS });
    await c.core.deleteNamespacedPod({ name: 'once-bad', namespace: NS });
  });

  test('nodeSelector: no match stays Pending, a pinned pod lands on its node', async () => {
    await c.core.createNamespacedPod({
      namespace: NS,
      body: pod('nowhere', { nodeSelector: { 'kubernetes.io/hostname': 'no-such-node' } }),
    });
    await c.core.createNamespacedPod({
      namespace: NS,
      body: pod('pinned', { nodeSelector: { 'kubernetes.io/hostname': 'node-2' } }),
    });
    const pinned = await running('pinned');
    assert.equal(pinned.spec?.nodeName, 'node-2');
    const pending = await eventually('unschedulable', async () => {
      const p = await c.core.readNamespacedPod({ name: 'nowhere', namespace: NS });
      return p.status?.conditions?.some(
        (x) => x.type === 'PodScheduled' && x.reason === 'Unschedulable',
      )
        ? p
        : undefined;
    });
    assert.equal(pending.status?.phase, 'Pending');
    assert.equal(pending.spec?.nodeName, undefined);
    // A node that matches appears: the pod is scheduled there.
    sim.addNode('late-node', { disk: 'ssd' });
    await c.core.deleteNamespacedPod({ name: 'nowhere', namespace: NS });
    await c.core.createNamespacedPod({
      namespace: NS,
      body: pod('ssd', { nodeSelector: { disk: 'ssd' } }),
    });
    assert.equal((await running('ssd')).spec?.nodeName, 'late-node');
    await c.core.deleteNamespacedPod({ name: 'pinned', namespace: NS, gracePeriodSeconds: 0 });
    await c.core.deleteNamespacedPod({ name: 'ssd', namespace: NS, gracePeriodSeconds: 0 });
  });

  test('sandbox: volumes at their mountPaths, secret modes, nothing outside the pod is touched', async () => {
    await c.core.createNamespacedPersistentVolumeClaim({
      namespace: NS,
      body: {
        metadata: { name: 'data-box' },
        spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
      },
    });
    await c.core.createNamespacedSecret({
      namespace: NS,
      body: { metadata: { name: 'box-secret' }, stringData: { 'etcd.key': 'KEY' } },
    });
    await c.core.createNamespacedPod({
      namespace: NS,
      body: pod('box', {
        containers: [
          {
            name: 'main',
            image: 'gcr.io/gke-on-prem-release/etcd-util:1.5.0-gke.0',
            command: ['/bin/sh'],
            args: ['-ec', "while :; do echo '.'; sleep 5 ; done"],
            volumeMounts: [
              { name: 'data', mountPath: '/var/lib/etcd' },
              { name: 'certs', mountPath: '/etcd.local.config/certificates' },
            ],
          },
        ],
        volumes: [
          { name: 'data', persistentVolumeClaim: { claimName: 'data-box' } },
          { name: 'certs', secret: { secretName: 'box-secret', defaultMode: 420 } },
        ],
      }),
    });
    await running('box');
    const host = sim.pvcHostDir(NS, 'data-box');
    assert.ok(host);
    const sh = (script: string) => execIn(c.kc, NS, 'box', 'main', ['/bin/sh', '-c', script]);
    let r = await sh(
      'mkdir -p /var/lib/etcd/member && echo hi > /var/lib/etcd/member/f && echo root > /rootfile',
    );
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(readFileSync(join(host, 'member/f'), 'utf8'), 'hi\n');
    const root = sim.podRootDir(NS, 'box');
    assert.ok(root && existsSync(join(root, 'rootfile')), 'writes to / land in the pod root');
    r = await sh(
      'stat -c %a /etcd.local.config/certificates/etcd.key; cat /etcd.local.config/certificates/etcd.key',
    );
    assert.equal(r.stdout.toString(), '644\nKEY');
    r = await sh('grep CapEff /proc/self/status');
    assert.match(r.stdout.toString(), /CapEff:\s+0+\n/, 'no capabilities (no mknod, no mount)');
    r = await sh('mknod /tmp/disk b 8 0');
    assert.notEqual(r.exitCode, 0, 'cannot create device nodes');
    r = await sh('touch /usr/bin/evil');
    assert.notEqual(r.exitCode, 0, 'host /usr is read-only');
    r = await sh('echo x > /etcd.local.config/certificates/etcd.key');
    assert.notEqual(r.exitCode, 0, 'secret volume is read-only');
    r = await sh('rm -rf /var/lib/etcd/* && ls -A /var/lib/etcd | wc -l && ls / | tr "\\n" " "');
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stdout.toString(), /^0\n/);
    assert.ok(
      existsSync(host) && !existsSync(join(host, 'member')),
      'only the PVC directory was emptied',
    );
    assert.ok(existsSync('/usr/bin/etcd'), 'host untouched');
    assert.equal(statSync(host).isDirectory(), true);
    r = await sh('ls /work /home /root 2>&1; cat /proc/1/cmdline | tr "\\0" " "');
    assert.doesNotMatch(r.stdout.toString(), /main|shared/, 'host directories are not visible');
    // The PVC outlives the pod.
    await sh('echo keep > /var/lib/etcd/keep');
    await c.core.deleteNamespacedPod({ name: 'box', namespace: NS });
    await gone('box');
    assert.equal(readFileSync(join(host, 'keep'), 'utf8'), 'keep\n');
    assert.equal(existsSync(root), false, 'the pod root is removed with the pod');
  });
  test('sandbox: a subPath through a symlink planted by a pod is refused', async () => {
    const mk = (name: string, command: string[], subPath?: string): k8s.V1Pod =>
      pod(name, {
        containers: [
          {
            name: 'main',
            image: 'x',
            command,
            volumeMounts: [{ name: 'data', mountPath: '/data', ...(subPath ? { subPath } : {}) }],
          },
        ],
        volumes: [{ name: 'data', persistentVolumeClaim: { claimName: 'data-box' } }],
      });
    await c.core.createNamespacedPod({ namespace: NS, body: mk('planter', LOOP) });
    await running('planter');
    const r = await execIn(c.kc, NS, 'planter', 'main', ['ln', '-s', '/', '/data/escape']);
    assert.equal(r.exitCode, 0, r.stderr);
    await c.core.createNamespacedPod({ namespace: NS, body: mk('escaper', LOOP, 'escape/etc') });
    const stuck = await eventually('refused', async () => {
      const p = await c.core.readNamespacedPod({ name: 'escaper', namespace: NS });
      const w = p.status?.containerStatuses?.[0]?.state?.waiting;
      return w?.message?.includes('symlink') ? w : undefined;
    });
    assert.equal(stuck.reason, 'ContainerCreating');
    await c.core.deleteNamespacedPod({ name: 'escaper', namespace: NS, gracePeriodSeconds: 0 });
    await c.core.deleteNamespacedPod({ name: 'planter', namespace: NS, gracePeriodSeconds: 0 });
  });
});

describe('controllers', () => {
  const sts = (name: string, replicas: number): k8s.V1StatefulSet => ({
    metadata: { name, namespace: NS },
    spec: {
      replicas,
      serviceName: name,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          containers: [
            {
              name: 'main',
              image: 'x',
              command: LOOP,
              volumeMounts: [{ name: 'data', mountPath: '/data' }],
            },
          ],
          terminationGracePeriodSeconds: 2,
        },
      },
      volumeClaimTemplates: [
        {
          metadata: { name: 'data' },
          spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } },
        },
      ],
    },
  });

  async function stsReady(name: string, replicas: number): Promise<k8s.V1StatefulSet> {
    return eventually(`statefulset ${name} at ${replicas}`, async () => {
      const s = await c.apps.readNamespacedStatefulSet({ name, namespace: NS });
      const pods = await c.core.listNamespacedPod({ namespace: NS, labelSelector: `app=${name}` });
      return s.status?.readyReplicas === replicas &&
        s.status.replicas === replicas &&
        s.status.observedGeneration === s.metadata?.generation &&
        pods.items.length === replicas
        ? s
        : undefined;
    });
  }

  test('StatefulSet: ordinal pods, PVCs from templates, scale subresource, merge and strategic patches', async () => {
    await c.apps.createNamespacedStatefulSet({ namespace: NS, body: sts('web', 2) });
    await stsReady('web', 2);
    const pods = await c.core.listNamespacedPod({ namespace: NS, labelSelector: 'app=web' });
    assert.deepEqual(
      pods.items.map((p) => p.metadata?.name),
      ['web-0', 'web-1'],
    );
    const pvcs = await c.core.listNamespacedPersistentVolumeClaim({ namespace: NS });
    assert.ok(
      ['data-web-0', 'data-web-1'].every((n) => pvcs.items.some((p) => p.metadata?.name === n)),
    );

    const scale = await c.apps.readNamespacedStatefulSetScale({ name: 'web', namespace: NS });
    assert.equal(scale.spec?.replicas, 2);
    assert.equal(scale.status?.selector, 'app=web');
    await c.apps.patchNamespacedStatefulSetScale(
      { name: 'web', namespace: NS, body: { spec: { replicas: 3 } } },
      patchAs('merge'),
    );
    await stsReady('web', 3);
    await c.apps.replaceNamespacedStatefulSetScale({
      name: 'web',
      namespace: NS,
      body: { metadata: { name: 'web', namespace: NS }, spec: { replicas: 1 } },
    });
    await stsReady('web', 1);
    const left = await c.core.listNamespacedPod({ namespace: NS, labelSelector: 'app=web' });
    assert.deepEqual(
      left.items.map((p) => p.metadata?.name),
      ['web-0'],
    );
    assert.ok(
      (await c.core.listNamespacedPersistentVolumeClaim({ namespace: NS })).items.some(
        (p) => p.metadata?.name === 'data-web-2',
      ),
      'claims are kept on scale-down',
    );
    // Merge patch on the object, strategic merge patch on the template.
    const before = await c.apps.readNamespacedStatefulSet({ name: 'web', namespace: NS });
    await c.apps.patchNamespacedStatefulSet(
      { name: 'web', namespace: NS, body: { spec: { replicas: 0 } } },
      patchAs('merge'),
    );
    await stsReady('web', 0);
    const patched = await c.apps.patchNamespacedStatefulSet(
      {
        name: 'web',
        namespace: NS,
        body: {
          spec: {
            template: {
              spec: { containers: [{ name: 'main', env: [{ name: 'A', value: '1' }] }] },
            },
          },
        },
      },
      patchAs('strategic'),
    );
    const container = patched.spec?.template.spec?.containers[0];
    assert.equal(container?.image, 'x', 'strategic merge keeps the other container fields');
    assert.deepEqual(
      container?.env?.map((e) => ({ name: e.name, value: e.value })),
      [{ name: 'A', value: '1' }],
    );
    assert.ok((patched.metadata?.generation ?? 0) > (before.metadata?.generation ?? 0));
    const jp = await c.apps.patchNamespacedStatefulSet({
      name: 'web',
      namespace: NS,
      body: [{ op: 'replace', path: '/spec/replicas', value: 1 }],
    });
    assert.equal(jp.spec?.replicas, 1);
    await stsReady('web', 1);
  });

  test('StatefulSet: rollout restart (template annotation) recreates every pod, highest ordinal first', async () => {
    await c.apps.patchNamespacedStatefulSetScale(
      { name: 'web', namespace: NS, body: { spec: { replicas: 3 } } },
      patchAs('merge'),
    );
    await stsReady('web', 3);
    const uids = new Map(
      (await c.core.listNamespacedPod({ namespace: NS, labelSelector: 'app=web' })).items.map(
        (p) => [p.metadata?.name, p.metadata?.uid],
      ),
    );
    await c.apps.patchNamespacedStatefulSet(
      {
        name: 'web',
        namespace: NS,
        body: {
          spec: {
            template: {
              metadata: {
                annotations: { 'kubectl.kubernetes.io/restartedAt': new Date().toISOString() },
              },
            },
          },
        },
      },
      patchAs('strategic'),
    );
    const done = await eventually('rollout done', async () => {
      const s = await c.apps.readNamespacedStatefulSet({ name: 'web', namespace: NS });
      const pods = (await c.core.listNamespacedPod({ namespace: NS, labelSelector: 'app=web' }))
        .items;
      const allNew =
        pods.length === 3 && pods.every((p) => p.metadata?.uid !== uids.get(p.metadata?.name));
      return allNew &&
        s.status?.updatedReplicas === 3 &&
        s.status.readyReplicas === 3 &&
        s.status.currentRevision === s.status.updateRevision
        ? s
        : undefined;
    });
    assert.equal(done.status?.observedGeneration, done.metadata?.generation);
    await c.apps.deleteNamespacedStatefulSet({ name: 'web', namespace: NS });
    await eventually(
      'sts pods gone',
      async () =>
        (await c.core.listNamespacedPod({ namespace: NS, labelSelector: 'app=web' })).items
          .length === 0,
    );
  });

  test('Deployment: scale subresource, status kept true', async () => {
    await c.apps.createNamespacedDeployment({
      namespace: NS,
      body: {
        metadata: { name: 'maint', namespace: NS },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'maint' } },
          template: {
            metadata: { labels: { app: 'maint' } },
            spec: {
              containers: [{ name: 'main', image: 'x', command: LOOP }],
              terminationGracePeriodSeconds: 1,
            },
          },
        },
      },
    });
    const at = (n: number) =>
      eventually(`deployment at ${n}`, async () => {
        const d = await c.apps.readNamespacedDeployment({ name: 'maint', namespace: NS });
        const pods = (
          await c.core.listNamespacedPod({ namespace: NS, labelSelector: 'app=maint' })
        ).items.filter((p) => !p.metadata?.deletionTimestamp);
        return (d.status?.readyReplicas ?? 0) === n &&
          (d.status?.replicas ?? 0) === n &&
          pods.length === n
          ? d
          : undefined;
      });
    await at(1);
    await c.apps.patchNamespacedDeploymentScale(
      { name: 'maint', namespace: NS, body: { spec: { replicas: 0 } } },
      patchAs('merge'),
    );
    await at(0);
    const s = await c.apps.readNamespacedDeploymentScale({ name: 'maint', namespace: NS });
    assert.equal(s.spec?.replicas, 0);
    await c.apps.replaceNamespacedDeploymentScale({
      name: 'maint',
      namespace: NS,
      body: { metadata: { name: 'maint' }, spec: { replicas: 2 } },
    });
    const d = await at(2);
    assert.equal(d.status?.observedGeneration, d.metadata?.generation);
    const bad = await apiError(
      c.apps.patchNamespacedDeploymentScale(
        { name: 'maint', namespace: NS, body: { spec: { replicas: -1 } } },
        patchAs('merge'),
      ),
    );
    assert.equal(bad.code, 422);
    await c.apps.deleteNamespacedDeployment({ name: 'maint', namespace: NS });
  });

  test('PodDisruptionBudget: create, get, list, status, delete, re-create from a saved manifest', async () => {
    const created = await c.policy.createNamespacedPodDisruptionBudget({
      namespace: NS,
      body: {
        metadata: { name: 'kube-apiserver-pdb', namespace: NS },
        spec: { minAvailable: 2, selector: { matchLabels: { app: 'api' } } },
      },
    });
    assert.equal(created.metadata?.generation, 1);
    const got = await eventually('pdb status', async () => {
      const p = await c.policy.readNamespacedPodDisruptionBudget({
        name: 'kube-apiserver-pdb',
        namespace: NS,
      });
      return p.status?.observedGeneration === 1 ? p : undefined;
    });
    assert.equal(got.status?.desiredHealthy, 2);
    const list = await c.policy.listNamespacedPodDisruptionBudget({ namespace: NS });
    assert.equal(list.items.length, 1);
    assert.equal(
      (await apiError(c.policy.createNamespacedPodDisruptionBudget({ namespace: NS, body: got })))
        .code,
      400,
    );
    await c.policy.deleteNamespacedPodDisruptionBudget({
      name: 'kube-apiserver-pdb',
      namespace: NS,
    });
    assert.equal(
      (
        await apiError(
          c.policy.readNamespacedPodDisruptionBudget({ name: 'kube-apiserver-pdb', namespace: NS }),
        )
      ).code,
      404,
    );
    const saved = {
      metadata: { name: got.metadata?.name, namespace: NS, labels: got.metadata?.labels },
      spec: got.spec,
    };
    await c.policy.createNamespacedPodDisruptionBudget({ namespace: NS, body: saved });
    await c.policy.deleteNamespacedPodDisruptionBudget({
      name: 'kube-apiserver-pdb',
      namespace: NS,
    });
  });
});

describe('fault injection', () => {
  test('the next N requests of a kind fail with 429 / 500, then requests succeed', async () => {
    sim.faults.failNext(2, 429, { verb: 'get', resource: 'nodes' });
    const e1 = await apiError(c.core.readNode({ name: 'node-0' }));
    assert.equal(e1.code, 429);
    assert.equal(e1.status.reason, 'TooManyRequests');
    assert.equal((await apiError(c.core.readNode({ name: 'node-0' }))).code, 429);
    assert.equal((await c.core.readNode({ name: 'node-0' })).metadata?.name, 'node-0');
    sim.faults.failNext(1, 500, { verb: 'list', resource: 'pods' });
    await c.core.readNode({ name: 'node-1' });
    const e2 = await apiError(c.core.listNamespacedPod({ namespace: NS }));
    assert.equal(e2.code, 500);
    await c.core.listNamespacedPod({ namespace: NS });
  });

  test('latency is added to matching requests', async () => {
    sim.faults.addLatency(300, { resource: 'nodes' });
    const t0 = Date.now();
    await c.core.listNode();
    const slow = Date.now() - t0;
    sim.faults.clear();
    assert.ok(slow >= 290, `took ${slow} ms`);
  });

  test('watch streams pod events', async () => {
    const events: string[] = [];
    const watch = new k8s.Watch(c.kc);
    const req = await watch.watch(
      `/api/v1/namespaces/${NS}/pods`,
      { labelSelector: 'app=watched' },
      (type: string, obj: k8s.V1Pod) => events.push(`${type} ${obj.metadata?.name}`),
      () => {},
    );
    await c.core.createNamespacedPod({
      namespace: NS,
      body: pod('watched', {}, { app: 'watched' }),
    });
    await c.core.createNamespacedPod({ namespace: NS, body: pod('unwatched') });
    await eventually(
      'events',
      async () => events.includes('ADDED watched') && events.includes('MODIFIED watched'),
    );
    await c.core.deleteNamespacedPod({ name: 'watched', namespace: NS, gracePeriodSeconds: 0 });
    await eventually('deleted event', async () => events.includes('DELETED watched'));
    req.abort();
    assert.ok(!events.some((e) => e.endsWith(' unwatched')));
    await c.core.deleteNamespacedPod({ name: 'unwatched', namespace: NS, gracePeriodSeconds: 0 });
  });

  test('evictPod deletes a pod gracefully', async () => {
    await c.core.createNamespacedPod({ namespace: NS, body: pod('victim') });
    await running('victim');
    sim.evictPod(NS, 'victim');
    await gone('victim');
  });

  test('no control-loop errors and no violations', () => {
    assert.deepEqual(sim.loopErrors, []);
    assert.deepEqual(sim.violations, []);
  });
});
