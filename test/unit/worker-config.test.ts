/**
 * The worker's configuration (activities/config/): what it may touch, by name, read from a
 * YAML file or the environment, every bad field named; and the names resolved.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { workerTargets } from '../../activities/config/targets.js';
import { loadWorkerConfig } from '../../activities/config/worker-config.js';
import { inClusterKubeConfig } from '../../activities/kube/client.js';
import { loadWorkerProcessConfig } from '../../worker/config.js';

const dir = mkdtempSync(join(tmpdir(), 'worker-config-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe('from the environment alone: one admin cluster, one repository, both "default"', () => {
  test('defaults', () => {
    const config = loadWorkerConfig({ HOME: '/home/sre', ADMIN_CLUSTER_KUBECONFIG: '/k/admin' });
    assert.deepEqual(config.adminClusters, {
      default: { kubeconfig: '/k/admin', copyCompression: 'none' },
    });
    assert.deepEqual(config.repositories, {
      default: { path: '/home/sre/.local/share/etcd-ha-restore/backups' },
    });
    assert.equal(config.importInbox, undefined);
  });

  test('a relative BACKUP_DIR is refused, naming the variable', () => {
    assert.throws(
      () => loadWorkerConfig({ BACKUP_DIR: 'backups' }),
      /BACKUP_DIR: must be an absolute path/,
    );
  });

  test('a worker with no admin cluster does not start; the CLI may still list backups', () => {
    assert.throws(() => loadWorkerProcessConfig({ HOME: '/h' }), /serves no admin cluster/);
    assert.equal(Object.keys(loadWorkerConfig({ HOME: '/h' }).adminClusters).length, 0);
  });

  test('the Temporal connection is read as the Temporal CLI reads it', () => {
    const config = loadWorkerProcessConfig({
      HOME: '/home/sre',
      ADMIN_CLUSTER_KUBECONFIG: '/k/admin',
      TEMPORAL_ADDRESS: 'temporal.example:7233',
      TEMPORAL_NAMESPACE: 'ops',
      TEMPORAL_API_KEY: 'secret-key',
    });
    assert.equal(config.connection.address, 'temporal.example:7233');
    assert.equal(config.connection.apiKey, 'secret-key');
    assert.ok(config.connection.tls, 'an API key implies TLS');
    assert.equal(config.namespace, 'ops');
    assert.equal(config.taskQueue, 'etcd-ha-restore');
  });
});

describe('from a YAML file', () => {
  const yaml = `
adminClusters:
  admin-1:
    kubeconfig: /etc/etcd-ha-restore/admin-1.kubeconfig
    profile:
      utilityImageRepository: registry.local/etcd-util
    userClusters:
      namespaces: [user-a, user-b]
  admin-2:
    kubeconfig: /etc/etcd-ha-restore/admin-2.kubeconfig
repositories:
  local:
    path: /srv/etcd-backups
importInbox: /srv/etcd-import
`;

  test('admin clusters, repositories and the inbox by name; profiles with GKE defaults', () => {
    const config = loadWorkerConfig({ ETCD_HA_RESTORE_CONFIG: file('ok.yaml', yaml) });
    const targets = workerTargets(config);
    const admin = targets.adminCluster('admin-1');
    assert.equal(admin.config.kubeconfig, '/etc/etcd-ha-restore/admin-1.kubeconfig');
    assert.equal(admin.profile.utilityImageRepository, 'registry.local/etcd-util');
    assert.equal(admin.profile.etcdStatefulSet, 'kube-etcd');
    assert.equal(targets.repository().path, '/srv/etcd-backups', 'the only one is the default');
    assert.equal(targets.importFile('snap.db'), '/srv/etcd-import/snap.db');
  });

  test('an unknown name, or no name where there are several, is refused naming the choices', () => {
    const targets = workerTargets(
      loadWorkerConfig({ ETCD_HA_RESTORE_CONFIG: file('ok2.yaml', yaml) }),
    );
    const refused = (run: () => unknown, message: RegExp) =>
      assert.throws(run, (e: unknown) => {
        assert.ok(e instanceof ApplicationFailure && e.nonRetryable && e.type === 'InvalidInput');
        assert.match(e.message, message);
        return true;
      });
    refused(() => targets.adminCluster(), /serves admin clusters admin-1, admin-2: name one/);
    refused(
      () => targets.adminCluster('prod'),
      /no admin cluster named "prod" \(it serves: admin-1, admin-2\)/,
    );
    refused(() => targets.repository('nfs'), /no repository named "nfs"/);
    refused(() => targets.importFile('../etc/shadow'), /importFile/);
  });

  test('every bad field is named; the file is never quoted', () => {
    const bad = file(
      'bad.yaml',
      `adminClusters:
  Admin_1:
    kubeconfig: relative/path
    profile: { peerUrlTemplat: x }
repositories: {}
surprise: true
`,
    );
    assert.throws(
      () => loadWorkerConfig({ ETCD_HA_RESTORE_CONFIG: bad }),
      (e: unknown) => {
        const m = (e as Error).message;
        assert.match(m, new RegExp(`invalid worker configuration in ${bad}`));
        assert.match(m, /adminClusters/);
        assert.match(m, /repositories: name at least one repository/);
        assert.match(m, /surprise/);
        return true;
      },
    );
    assert.throws(
      () =>
        loadWorkerConfig({
          ETCD_HA_RESTORE_CONFIG: file(
            'zstd.yaml',
            'adminClusters: { a: { kubeconfig: /k, copyCompression: zstd } }\nrepositories: { r: { path: /r } }\n',
          ),
        }),
      /adminClusters\.a\.copyCompression/,
    );
    assert.throws(
      () => loadWorkerConfig({ ETCD_HA_RESTORE_CONFIG: file('notyaml.yaml', 'a: [') }),
      /is not YAML/,
    );
    assert.throws(
      () => loadWorkerConfig({ ETCD_HA_RESTORE_CONFIG: join(dir, 'missing.yaml') }),
      /cannot read the worker configuration/,
    );
  });

  test('a file and the single-cluster variables together are refused: one source of truth', () => {
    assert.throws(
      () =>
        loadWorkerConfig({ ETCD_HA_RESTORE_CONFIG: file('ok3.yaml', yaml), BACKUP_DIR: '/tmp/x' }),
      /BACKUP_DIR and ETCD_HA_RESTORE_CONFIG are both set/,
    );
  });

  test('the example in docs/ is a valid configuration, as the README shows it', () => {
    const example = new URL('../../docs/worker-config.example.yaml', import.meta.url).pathname;
    const targets = workerTargets(loadWorkerConfig({ ETCD_HA_RESTORE_CONFIG: example }));
    assert.equal(targets.adminCluster('admin-west').profile.etcdStatefulSet, 'kube-etcd');
    assert.equal(targets.repository().path, '/srv/etcd-backups');
    const east = targets.adminCluster('admin-east').ssh();
    assert.deepEqual(
      [east.port, east.user, east.pkiDir, east.sudo],
      [22, 'ubuntu', '/etc/kubernetes/pki', true],
    );
    assert.equal(east.jumpHost?.port, 22);
    assert.equal(
      targets.adminCluster('admin-west').ssh().user,
      'ubuntu',
      "the runbook's user by default",
    );
  });
});

describe('the admin cluster: its etcd (A3), SSH to its node (A2), user clusters of their own layout', () => {
  const ssh = (extra: string) => `
adminClusters:
  admin:
    kubeconfig: /k
    ssh:
      host: 10.0.0.1
      privateKeyPath: /keys/id
${extra}
repositories: { local: { path: /b } }
`;

  test("kubeadm's admin etcd paths by default; an ssh section is required only when used", () => {
    const targets = workerTargets(
      loadWorkerConfig({
        ETCD_HA_RESTORE_CONFIG: file('admin-ok.yaml', ssh('      knownHostsPath: /k/known_hosts')),
      }),
    );
    const admin = targets.adminCluster();
    assert.deepEqual(admin.adminEtcd, {
      namespace: 'kube-system',
      podLabelSelector: 'component=etcd,tier=control-plane',
      container: 'etcd',
      etcdEndpoint: 'https://127.0.0.1:2379',
      certificatesDir: '/etc/kubernetes/pki/etcd',
      caFile: 'ca.crt',
      certFile: 'healthcheck-client.crt',
      keyFile: 'healthcheck-client.key',
      workDir: '/',
    });
    const none = workerTargets(loadWorkerConfig({ ADMIN_CLUSTER_KUBECONFIG: '/k', HOME: '/h' }));
    assert.throws(
      () => none.adminCluster().ssh(),
      (e: unknown) =>
        e instanceof ApplicationFailure &&
        e.type === 'NotConfigured' &&
        /no ssh section/.test(e.message),
    );
  });

  test('the host key is always checked: exactly one of knownHostsPath or hostKeyFingerprint', () => {
    for (const [name, extra] of [
      ['neither', ''],
      [
        'both',
        '      knownHostsPath: /k/kh\n      hostKeyFingerprint: SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU',
      ],
    ] as const) {
      assert.throws(
        () =>
          loadWorkerConfig({
            ETCD_HA_RESTORE_CONFIG: file(`admin-${name}.yaml`, ssh(extra.replace('\\n', '\n'))),
          }),
        /exactly one of knownHostsPath or hostKeyFingerprint/,
        name,
      );
    }
    assert.throws(
      () =>
        loadWorkerConfig({
          ETCD_HA_RESTORE_CONFIG: file(
            'admin-md5.yaml',
            ssh('      hostKeyFingerprint: MD5:aa:bb'),
          ),
        }),
      /hostKeyFingerprint: must be a SHA256 fingerprint/,
    );
    assert.throws(
      () =>
        loadWorkerConfig({
          ETCD_HA_RESTORE_CONFIG: file(
            'admin-jump.yaml',
            ssh(
              '      knownHostsPath: /k/kh\n      jumpHost: { host: 10.0.0.2, privateKeyPath: /keys/id }',
            ),
          ),
        }),
      /jumpHost: give exactly one of knownHostsPath or hostKeyFingerprint/,
    );
  });

  test("a user cluster's own profile overrides the admin cluster's, field by field", () => {
    const config = loadWorkerConfig({
      ETCD_HA_RESTORE_CONFIG: file(
        'admin-profiles.yaml',
        `adminClusters:
  admin:
    kubeconfig: /k
    profile: { utilityImageRepository: registry.local/etcd-util }
    userClusterProfiles:
      old-one: { etcdContainer: etcd }
repositories: { local: { path: /b } }
`,
      ),
    });
    const admin = workerTargets(config).adminCluster();
    assert.equal(admin.userClusterProfile('old-one').etcdContainer, 'etcd');
    assert.equal(
      admin.userClusterProfile('old-one').utilityImageRepository,
      'registry.local/etcd-util',
    );
    assert.equal(admin.userClusterProfile('other').etcdContainer, 'kube-etcd');
  });
});

describe('inCluster: the worker in a pod of the admin cluster uses its service account', () => {
  const parse = (admin: object) =>
    loadWorkerConfig({
      ETCD_HA_RESTORE_CONFIG: file(
        `in-cluster-${Math.random()}.json`,
        JSON.stringify({ adminClusters: { admin: admin }, repositories: { r: { path: '/r' } } }),
      ),
    });

  test('inCluster: true instead of a kubeconfig; both, or neither, are refused', () => {
    assert.deepEqual(parse({ inCluster: true }).adminClusters.admin, {
      inCluster: true,
      copyCompression: 'none',
    });
    const oneOf = /adminClusters\.admin: give exactly one of kubeconfig .* and inCluster: true/;
    assert.throws(() => parse({ inCluster: true, kubeconfig: '/k' }), oneOf);
    assert.throws(() => parse({}), oneOf);
    assert.throws(() => parse({ inCluster: false }), /inCluster/);
  });

  test('reads the API server from the environment and the mounted token and CA', () => {
    const saved = { ...process.env };
    const prefix = join(dir, 'pod');
    const saDir = join(prefix, 'var/run/secrets/kubernetes.io/serviceaccount');
    try {
      delete process.env.KUBERNETES_SERVICE_HOST;
      delete process.env.KUBERNETES_SERVICE_PORT;
      assert.throws(
        () => inClusterKubeConfig(prefix),
        /KUBERNETES_SERVICE_HOST .* not running in a pod/,
      );
      process.env.KUBERNETES_SERVICE_HOST = '10.96.0.1';
      process.env.KUBERNETES_SERVICE_PORT = '443';
      assert.throws(
        () => inClusterKubeConfig(prefix),
        new RegExp(`no service account token at ${saDir}/token`),
      );
      mkdirSync(saDir, { recursive: true });
      writeFileSync(join(saDir, 'token'), 'token');
      const config = inClusterKubeConfig(prefix);
      assert.equal(config.getCurrentCluster()?.server, 'https://10.96.0.1:443');
      assert.equal(config.getCurrentCluster()?.caFile, join(saDir, 'ca.crt'));
      assert.equal(config.getCurrentUser()?.authProvider?.config?.tokenFile, join(saDir, 'token'));
    } finally {
      process.env = saved;
    }
  });
});
