/** The shared schemas: GKE on-prem defaults as SPEC.md states them, and what they refuse. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { loadWorkerConfig } from '../../worker/config.js';
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
    const input = backupUserClusterInputSchema.parse({
      userClusterName: 'c1',
      profile: { etcdEndpoint: 'https://127.0.0.1:32379' },
    });
    assert.equal(input.profile.etcdEndpoint, 'https://127.0.0.1:32379');
    assert.equal(input.profile.etcdStatefulSet, 'kube-etcd');
    assert.equal(input.sourceMember, undefined);
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
      backup: { path: 'rel' },
    });
    assert.equal(result.success, false);
    const message = describeIssues(result.error);
    assert.match(message, /userClusterName: /);
    assert.match(message, /gkeOnPremVersion: /);
    assert.match(message, /backup\.path: must be an absolute path/);
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
  });
});

describe('worker configuration', () => {
  test('defaults', () => {
    const config = loadWorkerConfig({ HOME: '/home/sre' });
    assert.equal(config.connection.address, undefined, "the SDK's default, localhost:7233");
    assert.equal(config.namespace, 'default');
    assert.equal(config.taskQueue, 'etcd-ha-restore');
    assert.equal(config.backupDir, '/home/sre/.local/share/etcd-ha-restore/backups');
  });

  test('the Temporal connection is read as the Temporal CLI reads it', () => {
    const config = loadWorkerConfig({
      HOME: '/home/sre',
      TEMPORAL_ADDRESS: 'temporal.example:7233',
      TEMPORAL_NAMESPACE: 'ops',
      TEMPORAL_API_KEY: 'secret-key',
    });
    assert.equal(config.connection.address, 'temporal.example:7233');
    assert.equal(config.connection.apiKey, 'secret-key');
    assert.ok(config.connection.tls, 'an API key implies TLS');
    assert.equal(config.namespace, 'ops');
  });

  test('a relative BACKUP_DIR is refused, naming the variable', () => {
    assert.throws(
      () => loadWorkerConfig({ BACKUP_DIR: 'backups' }),
      /BACKUP_DIR: must be an absolute path/,
    );
  });
});
