/**
 * The worker process's own settings (worker/config.ts), its JSON log lines, its gauge of
 * restores waiting for an operator, and the Temporal connection options of worker and
 * client: API key and TLS from the environment or a Temporal CLI profile.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { Client } from '@temporalio/client';
import { ApplicationFailure, type MetricMeter, type MetricTags } from '@temporalio/common';
import { loadClientConfig } from '../../client/config.js';
import { hostId, loadWorkerProcessConfig } from '../../worker/config.js';
import { repositoryHostOf } from '../../worker/create-worker.js';
import { WAITING_RESTORES_QUERY, watchWaitingRestores } from '../../worker/metrics.js';
import { jsonLogLine } from '../../worker/telemetry.js';
import { METRICS, UserClusterName } from '../../workflows/contract/index.js';

const dir = mkdtempSync(join(tmpdir(), 'worker-process-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const base = { HOME: dir, ADMIN_CLUSTER_KUBECONFIG: '/k/admin' };

describe('worker settings from the environment', () => {
  test('defaults: host name as repository host, 30 s grace, INFO, no metrics endpoint', () => {
    const config = loadWorkerProcessConfig(base);
    assert.equal(config.repositoryHostId, hostId(hostname()));
    assert.equal(config.shutdownGraceMs, 30_000);
    assert.equal(config.logLevel, 'INFO');
    assert.equal(config.metricsAddress, undefined);
  });

  test('set: host id, grace, level, metrics address', () => {
    const config = loadWorkerProcessConfig({
      ...base,
      REPOSITORY_HOST_ID: 'backup-host-1',
      WORKER_SHUTDOWN_GRACE: '2m',
      WORKER_LOG_LEVEL: 'DEBUG',
      WORKER_METRICS_ADDRESS: '0.0.0.0:9464',
    });
    assert.equal(config.repositoryHostId, 'backup-host-1');
    assert.equal(config.shutdownGraceMs, 120_000);
    assert.equal(config.logLevel, 'DEBUG');
    assert.equal(config.metricsAddress, '0.0.0.0:9464');
    assert.deepEqual(repositoryHostOf(config.taskQueue, config.repositoryHostId), {
      host: 'backup-host-1',
      taskQueue: 'etcd-ha-restore-host-backup-host-1',
    });
  });

  test('bad values are refused, naming the variable', () => {
    for (const [name, value] of [
      ['REPOSITORY_HOST_ID', 'host/one'],
      ['WORKER_SHUTDOWN_GRACE', 'soon'],
      ['WORKER_LOG_LEVEL', 'LOUD'],
      ['WORKER_METRICS_ADDRESS', '9464'],
    ] as const) {
      assert.throws(() => loadWorkerProcessConfig({ ...base, [name]: value }), new RegExp(name));
    }
  });

  test('a host name becomes a host id that fits a task queue name', () => {
    assert.equal(hostId('node-1.example.com'), 'node-1.example.com');
    assert.equal(hostId('my host (2)'), 'my-host--2-');
    assert.equal(hostId('x'.repeat(80)).length, 63);
    assert.equal(hostId('---'), 'host');
  });
});

describe('JSON log lines', () => {
  test('one object: time, level, message, the ids; errors readable; no task token', () => {
    const line = jsonLogLine({
      level: 'WARN',
      message: 'Activity failed',
      timestampNanos: 1_796_000_000_123_000_000n,
      meta: {
        workflowId: 'w-1',
        activityId: '7',
        taskToken: 'c2VjcmV0',
        attempt: 2,
        error: ApplicationFailure.nonRetryable('no such backup', 'BackupNotFound'),
        big: 10n,
      },
    });
    assert.ok(!line.includes('\n'));
    const parsed = JSON.parse(line) as Record<string, unknown>;
    assert.equal(parsed.time, new Date(1_796_000_000_123).toISOString());
    assert.equal(parsed.level, 'WARN');
    assert.equal(parsed.message, 'Activity failed');
    assert.equal(parsed.workflowId, 'w-1');
    assert.equal(parsed.activityId, '7');
    assert.equal(parsed.attempt, 2);
    assert.equal(parsed.big, '10');
    assert.equal(parsed.taskToken, undefined);
    const error = parsed.error as Record<string, unknown>;
    assert.equal(error.message, 'no such backup');
    assert.equal(error.type, 'BackupNotFound');
  });
});

describe('restores waiting for an operator, read from Temporal', () => {
  test('a gauge per cluster, back to 0 when none waits', async () => {
    const pages: string[][] = [['c1', 'c1', 'c2'], []];
    const queries: string[] = [];
    const client = {
      workflow: {
        list({ query }: { query: string }) {
          queries.push(query);
          const clusters = pages.shift() ?? [];
          return (async function* () {
            for (const c of clusters)
              yield {
                typedSearchAttributes: {
                  get: (key: unknown) => (key === UserClusterName ? c : undefined),
                },
              };
          })();
        },
      },
    } as unknown as Client;
    const sets: Array<{ name: string; value: number; tags: MetricTags | undefined }> = [];
    const meter = {
      createGauge: (name: string) => ({
        set: (value: number, tags?: MetricTags) => sets.push({ name, value, tags }),
      }),
    } as unknown as MetricMeter;
    const errors: unknown[] = [];
    const watch = watchWaitingRestores(client, meter, {
      intervalMs: 1,
      onError: (e) => errors.push(e),
    });
    // A third poll has started: the second has set its gauges.
    while (queries.length < 3) await new Promise((r) => setTimeout(r, 5));
    watch.stop();
    assert.deepEqual(errors, []);
    assert.equal(queries[0], WAITING_RESTORES_QUERY);
    const values = sets.map((s) => [s.tags?.user_cluster, s.value]);
    assert.deepEqual(values.slice(0, 4), [
      ['c1', 2],
      ['c2', 1],
      ['c1', 0],
      ['c2', 0],
    ]);
    assert.ok(sets.every((s) => s.name === METRICS.restoresWaiting));
  });
});

describe('the Temporal connection, as every Temporal tool reads it', () => {
  test('an API key reaches the connection options of worker and client, with TLS', () => {
    const env = {
      ...base,
      TEMPORAL_ADDRESS: 'ns.a1b2c.tmprl.cloud:7233',
      TEMPORAL_API_KEY: 'k-123',
    };
    const worker = loadWorkerProcessConfig(env);
    const client = loadClientConfig(env);
    for (const connection of [worker.connection, client.connection]) {
      assert.equal(connection.apiKey, 'k-123');
      assert.equal(connection.address, 'ns.a1b2c.tmprl.cloud:7233');
      assert.ok(connection.tls);
    }
  });

  test('a Temporal CLI profile (TOML) gives address, namespace, API key; mTLS files', () => {
    writeFileSync(join(dir, 'ca.pem'), 'CA');
    writeFileSync(join(dir, 'client.pem'), 'CERT');
    writeFileSync(join(dir, 'client.key'), 'KEY');
    const toml = join(dir, 'temporal.toml');
    writeFileSync(
      toml,
      [
        '[profile.prod]',
        'address = "temporal.internal:7233"',
        'namespace = "etcd-ops"',
        'api_key = "from-profile"',
        '[profile.prod.tls]',
        `server_ca_cert_path = "${join(dir, 'ca.pem')}"`,
        `client_cert_path = "${join(dir, 'client.pem')}"`,
        `client_key_path = "${join(dir, 'client.key')}"`,
        'server_name = "temporal.internal"',
        '',
      ].join('\n'),
    );
    const env = { ...base, TEMPORAL_CONFIG_FILE: toml, TEMPORAL_PROFILE: 'prod' };
    const client = loadClientConfig(env);
    const worker = loadWorkerProcessConfig(env);
    assert.equal(client.namespace, 'etcd-ops');
    assert.equal(worker.namespace, 'etcd-ops');
    for (const connection of [worker.connection, client.connection]) {
      assert.equal(connection.address, 'temporal.internal:7233');
      assert.equal(connection.apiKey, 'from-profile');
      const tls = connection.tls as {
        serverNameOverride?: string;
        serverRootCACertificate?: Uint8Array;
        clientCertPair?: { crt: Uint8Array; key: Uint8Array };
      };
      assert.equal(tls.serverNameOverride, 'temporal.internal');
      const text = (bytes: Uint8Array | undefined) => Buffer.from(bytes ?? []).toString();
      assert.equal(text(tls.serverRootCACertificate), 'CA');
      assert.equal(text(tls.clientCertPair?.crt), 'CERT');
      assert.equal(text(tls.clientCertPair?.key), 'KEY');
    }
    // The environment overrides the profile, as with the Temporal CLI.
    assert.equal(
      loadClientConfig({ ...env, TEMPORAL_API_KEY: 'from-env' }).connection.apiKey,
      'from-env',
    );
  });
});
