/** The shared schemas: GKE on-prem defaults as SPEC.md states them, and what they refuse. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  backupUserClusterInputSchema,
  clusterProfileSchema,
  describeIssues,
  dnsLabel,
  restoreUserClusterInputSchema,
} from '../../workflows/contract/index.js';

describe('cluster profile', () => {
  test('defaults are the GKE on-prem values of SPEC.md', () => {
    const profile = clusterProfileSchema.parse({});
    assert.equal(profile.etcdEndpoint, 'https://127.0.0.1:2379');
    assert.equal(profile.peerUrlTemplate, 'https://kube-etcd-{member}.kube-etcd:2380');
    assert.equal(profile.initialClusterToken, 'etcd-cluster-1');
    assert.equal(
      `${profile.certificatesDir}/${profile.caFile}`,
      '/etcd.local.config/certificates/etcdCA.crt',
    );
    assert.equal(
      `${profile.certificatesDir}/${profile.certFile}`,
      '/etcd.local.config/certificates/etcd.crt',
    );
    assert.equal(
      `${profile.certificatesDir}/${profile.keyFile}`,
      '/etcd.local.config/certificates/etcd.key',
    );
    assert.equal(profile.dataDir, '/var/lib/etcd');
    assert.equal(profile.etcdStatefulSet, 'kube-etcd');
    assert.equal(profile.etcdSecretPrefix, 'kube-etcd-certs');
    assert.equal(profile.dataClaimPrefix, 'data-kube-etcd');
    assert.equal(profile.apiserverStatefulSet, 'kube-apiserver');
    assert.equal(profile.maintenanceDeployment, 'gke-master-etcd-maintenance');
    assert.equal(profile.apiserverPdb, 'kube-apiserver-pdb');
    assert.equal(profile.utilityImageRepository, 'gcr.io/gke-on-prem-release/etcd-util');
  });

  test('a partial profile keeps the defaults for the rest', () => {
    const profile = clusterProfileSchema.parse({ etcdEndpoint: 'https://127.0.0.1:32379' });
    assert.equal(profile.etcdEndpoint, 'https://127.0.0.1:32379');
    assert.equal(profile.etcdStatefulSet, 'kube-etcd');
  });

  test('a misspelt field is refused, not dropped for the default', () => {
    const result = clusterProfileSchema.safeParse({ peerUrlTemplat: 'https://x-{member}:2380' });
    assert.equal(result.success, false);
    assert.match(describeIssues(result.error), /peerUrlTemplat/);
  });
});

describe('the trust boundary: inputs carry names, never paths, images, endpoints', () => {
  const backup = { userClusterName: 'c1' };
  const restore = {
    userClusterName: 'c1',
    gkeOnPremVersion: '1.5.0-gke.0',
    backup: { backupId: 'b1' },
  };
  for (const [field, value] of [
    ['adminKubeconfig', '/root/.kube/config'],
    ['backupDir', '/'],
    ['profile', { utilityImageRepository: 'evil.example/etcd-util' }],
    ['kubeconfig', '/etc/passwd'],
  ] as const) {
    test(`${field} is refused in a backup's and a restore's input`, () => {
      for (const [schema, input] of [
        [backupUserClusterInputSchema, backup],
        [restoreUserClusterInputSchema, restore],
      ] as const) {
        const result = schema.safeParse({ ...input, [field]: value });
        assert.equal(result.success, false);
        assert.match(describeIssues(result.error), new RegExp(field));
      }
    });
  }

  test('a restore names a file of the import inbox, never a path', () => {
    for (const importFile of ['/etc/shadow', '../x.db', 'a/b.db', '.hidden', '']) {
      const result = restoreUserClusterInputSchema.safeParse({
        ...restore,
        backup: { importFile },
      });
      assert.equal(result.success, false, importFile);
    }
    const path = restoreUserClusterInputSchema.safeParse({ ...restore, backup: { path: '/x.db' } });
    assert.equal(path.success, false);
    assert.equal(
      restoreUserClusterInputSchema.safeParse({ ...restore, backup: { importFile: 'snap-1.db' } })
        .success,
      true,
    );
  });
});

describe('names reach no shell', () => {
  for (const bad of ['', 'A', 'a_b', '-a', 'a-', 'a b', 'a;b', '$(id)', 'a'.repeat(64), 'a.b']) {
    test(`refuses ${JSON.stringify(bad)} as a DNS label`, () => {
      assert.equal(dnsLabel.safeParse(bad).success, false);
    });
  }
  for (const good of ['a', 'user-cluster-1', '0abc', 'a'.repeat(63)]) {
    test(`accepts ${JSON.stringify(good)}`, () => {
      assert.equal(dnsLabel.safeParse(good).success, true);
    });
  }
});

describe('restore input', () => {
  test('names every bad field in one message', () => {
    const result = restoreUserClusterInputSchema.safeParse({
      userClusterName: 'Bad',
      gkeOnPremVersion: '',
      backup: { importFile: 'a/b' },
    });
    assert.equal(result.success, false);
    const message = describeIssues(result.error);
    assert.match(message, /userClusterName: /);
    assert.match(message, /gkeOnPremVersion: /);
    assert.match(message, /backup\.importFile: must be a file name/);
  });

  test('safe defaults: no approval gate, old data kept until verified', () => {
    const input = restoreUserClusterInputSchema.parse({
      userClusterName: 'c1',
      gkeOnPremVersion: '1.5.0-gke.0',
      backup: { backupId: 'b1' },
    });
    assert.equal(input.requireApproval, false);
    assert.equal(input.deleteOldDataImmediately, false);
    assert.equal(input.members, undefined);
    assert.equal(input.approvalTimeout, '4h');
  });
});
