/**
 * The Temporal connection over TLS with client certificates (mTLS), configured as every
 * Temporal tool is configured. The Temporal CLI 1.5.1 dev server cannot serve TLS itself,
 * so a TLS-terminating proxy (test/harness/tls-proxy.ts) stands in front of it and refuses
 * clients without a certificate its CA signed. Through it:
 *   - the worker process, configured by TEMPORAL_TLS_* environment variables;
 *   - the project's CLI, configured by a Temporal CLI profile (TOML, TEMPORAL_CONFIG_FILE +
 *     TEMPORAL_PROFILE), runs a backup to the end;
 *   - the Temporal CLI, with the same profile, describes and lists it;
 *   - the typed client, with an API key besides the certificate (the dev server ignores it).
 * A client without a certificate is refused: the test would pass vacuously otherwise.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { EtcdOpsClient } from '../../client/client.js';
import { loadClientConfig } from '../../client/config.js';
import { makeTlsFiles } from '../harness/etcd-tls.js';
import { type DevServer, simWorkerConfig, startDevServer } from '../harness/temporal.js';
import { startTlsProxy, type TlsProxy } from '../harness/tls-proxy.js';
import { readTools } from '../harness/tools.js';
import { startWorkerProcess, type WorkerProcess } from '../harness/worker-process.js';
import { type SimCluster, startSimCluster } from '../sim/index.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const cluster = 'tls';
const scratch = mkdtempSync(join(tmpdir(), 'temporal-tls-'));
const taskQueue = `temporal-tls-${randomBytes(4).toString('hex')}`;
let server: DevServer;
let proxy: TlsProxy;
let sim: SimCluster;
let worker: WorkerProcess | undefined;
const tls = { ca: '', cert: '', key: '' };
const profileFile = join(scratch, 'temporal.toml');

before(async () => {
  server = await startDevServer();
  const files = await makeTlsFiles(join(scratch, 'pki'), ['127.0.0.1']);
  tls.ca = join(files.dir, files.caFile);
  tls.cert = join(files.dir, files.certFile);
  tls.key = join(files.dir, files.keyFile);
  proxy = await startTlsProxy({
    target: server.address,
    cert: readFileSync(tls.cert),
    key: readFileSync(tls.key),
    ca: readFileSync(tls.ca),
  });
  writeFileSync(
    profileFile,
    [
      '[profile.etcd-ops]',
      `address = "${proxy.address}"`,
      `namespace = "${server.namespace}"`,
      '[profile.etcd-ops.tls]',
      `server_ca_cert_path = "${tls.ca}"`,
      `client_cert_path = "${tls.cert}"`,
      `client_key_path = "${tls.key}"`,
      '',
    ].join('\n'),
  );
  sim = await startSimCluster({ members: 1, userClusterName: cluster, adminEtcd: false });
});

after(async () => {
  await worker?.kill();
  await proxy?.stop();
  await server?.stop();
  await sim?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      {
        cwd: root,
        timeout: 180_000,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: scratch, ...env },
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

const profile = { TEMPORAL_CONFIG_FILE: profileFile, TEMPORAL_PROFILE: 'etcd-ops' };

test('worker, CLI, Temporal CLI and client over mTLS; no certificate, no connection', {
  timeout: 5 * 60_000,
}, async () => {
  const t0 = Date.now();
  worker = startWorkerProcess({
    address: proxy.address,
    namespace: server.namespace,
    taskQueue,
    config: simWorkerConfig(sim, join(scratch, 'backups')),
    configFile: join(scratch, 'worker.yaml'),
    env: {
      TEMPORAL_TLS_SERVER_CA_CERT_PATH: tls.ca,
      TEMPORAL_TLS_CLIENT_CERT_PATH: tls.cert,
      TEMPORAL_TLS_CLIENT_KEY_PATH: tls.key,
    },
  });
  await worker.ready;

  // The project's CLI, from the profile alone: a backup to the end.
  const backup = await run(
    process.execPath,
    [
      '--import',
      'tsx',
      'client/cli.ts',
      'backup',
      'start',
      '--cluster',
      cluster,
      '--wait',
      '--json',
    ],
    { ...profile, TEMPORAL_TASK_QUEUE: taskQueue },
  );
  assert.equal(backup.code, 0, backup.stderr);
  const { workflowId, result } = JSON.parse(backup.stdout) as {
    workflowId: string;
    result: { outcome: string };
  };
  assert.equal(result.outcome, 'stored');

  // The Temporal CLI, with the same profile.
  const temporal = readTools().temporal;
  const described = await run(
    temporal,
    ['workflow', 'describe', '--workflow-id', workflowId, '--output', 'json'],
    profile,
  );
  assert.equal(described.code, 0, described.stderr);
  assert.match(described.stdout, /WORKFLOW_EXECUTION_STATUS_COMPLETED/);
  const listed = await run(
    temporal,
    ['workflow', 'list', '--query', `UserClusterName = "${cluster}"`, '--output', 'json'],
    profile,
  );
  assert.equal(listed.code, 0, listed.stderr);
  assert.ok(listed.stdout.includes(workflowId));

  // The typed client, with an API key on top of the client certificate.
  const ops = await EtcdOpsClient.connect(
    loadClientConfig({
      ...profile,
      HOME: scratch,
      TEMPORAL_API_KEY: 'an-api-key',
      TEMPORAL_TASK_QUEUE: taskQueue,
    }),
  );
  try {
    const d = await ops.client.workflow.getHandle(workflowId).describe();
    assert.equal(d.status.name, 'COMPLETED');
  } finally {
    await ops.close();
  }

  // Without a client certificate the proxy refuses the handshake.
  const refusedBefore = proxy.refused();
  const anonymous = await run(temporal, ['workflow', 'list', '--command-timeout', '15s'], {
    TEMPORAL_ADDRESS: proxy.address,
    TEMPORAL_NAMESPACE: server.namespace,
    TEMPORAL_TLS_SERVER_CA_CERT_PATH: tls.ca,
  });
  assert.notEqual(anonymous.code, 0, anonymous.stdout);
  assert.ok(proxy.refused() > refusedBefore, 'the proxy refused a client without a certificate');
  assert.ok(proxy.accepted() >= 4, `${proxy.accepted()} connections through TLS`);
  console.log(
    `temporal TLS: ${proxy.accepted()} mTLS connections, ${proxy.refused()} refused; ${Math.round((Date.now() - t0) / 1000)} s`,
  );
});
