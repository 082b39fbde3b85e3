/**
 * A real Temporal dev server for tests, started from the Temporal CLI binary that
 * scripts/provision.sh found or built. We start it ourselves and wait as long as a loaded
 * 2-core machine needs (the SDK's createLocal allows only 5 s), then attach the SDK's
 * test environment to it with createFromExistingServer.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Connection } from '@temporalio/client';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, Runtime } from '@temporalio/worker';
import {
  parseWorkerConfig,
  type WorkerConfigInput,
} from '../../activities/config/worker-config.js';
import { type Activities, createActivities } from '../../activities/index.js';
import {
  activityDeps,
  createWorkers,
  type EtcdWorkers,
  repositoryHostOf,
  workflowsPath,
} from '../../worker/create-worker.js';
import { type ClusterProfile, SEARCH_ATTRIBUTES } from '../../workflows/contract/index.js';
import { freePort } from './ports.js';
import { readTools } from './tools.js';

const execFileAsync = promisify(execFile);

// Test output shows warnings and errors of the SDK, not its state changes.
Runtime.install({ logger: new DefaultLogger('WARN') });
const READY_TIMEOUT_MS = 90_000;

export interface DevServer {
  /** host:port of the gRPC frontend. */
  address: string;
  /** Web UI base URL, when started with the UI. */
  uiUrl?: string;
  namespace: string;
  /** Stops the server (its whole process group) and removes its temporary files. */
  stop(): Promise<void>;
}

export interface DevServerOptions {
  /** SQLite file to persist state across restarts; in memory if absent. */
  dbFile?: string;
  /** Serve the Web UI too. */
  ui?: boolean;
  /** Reuse a port (to restart a server in place). */
  port?: number;
}

/** Starts `temporal server start-dev` with this project's search attributes registered. */
export async function startDevServer(options: DevServerOptions = {}): Promise<DevServer> {
  const port = options.port ?? (await freePort());
  const uiPort = options.ui ? await freePort() : undefined;
  const args = [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(port),
    '--log-level',
    'error',
  ];
  args.push(...(uiPort ? ['--ui-port', String(uiPort)] : ['--headless']));
  if (options.dbFile) args.push('--db-filename', options.dbFile);
  for (const attribute of SEARCH_ATTRIBUTES) args.push('--search-attribute', attribute);

  const child = spawn(readTools().temporal, args, {
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const killOnExit = () => killGroup(child, 'SIGKILL');
  process.once('exit', killOnExit);

  const address = `127.0.0.1:${port}`;
  try {
    await waitUntilServing(address, child, () => stderr);
  } catch (error) {
    killGroup(child, 'SIGKILL');
    throw error;
  }
  return {
    address,
    uiUrl: uiPort ? `http://127.0.0.1:${uiPort}` : undefined,
    namespace: 'default',
    async stop() {
      process.removeListener('exit', killOnExit);
      await stopGroup(child);
    },
  };
}

async function waitUntilServing(
  address: string,
  child: ChildProcess,
  stderr: () => string,
): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `temporal dev server exited (${child.exitCode ?? child.signalCode}): ${stderr()}`,
      );
    }
    try {
      const connection = await Connection.connect({ address, connectTimeout: 2_000 });
      try {
        await connection.workflowService.describeNamespace({ namespace: 'default' });
        return;
      } finally {
        await connection.close();
      }
    } catch (error) {
      if (Date.now() > deadline) {
        throw new Error(
          `temporal dev server on ${address} not ready after ${READY_TIMEOUT_MS} ms: ${String(error)}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

/** SIGTERM, then SIGKILL if the group has not exited within 10 s. */
export async function stopGroup(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  killGroup(child, 'SIGTERM');
  const timer = setTimeout(() => killGroup(child, 'SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** Runs the Temporal CLI against `server`; resolves with stdout, rejects with stderr. */
export async function temporalCli(server: DevServer, args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(
    readTools().temporal,
    [...args, '--address', server.address, '--namespace', server.namespace],
    { timeout: 60_000 },
  );
  return stdout;
}

let bundle: Promise<Awaited<ReturnType<typeof bundleWorkflowCode>>> | undefined;
/** The workflow bundle, built once per test process (bundling takes seconds). */
export function workflowBundle() {
  bundle ??= bundleWorkflowCode({ workflowsPath: workflowsPath(), logger: quietLogger });
  return bundle;
}

const quietLogger = {
  log() {},
  trace() {},
  debug() {},
  info() {},
  warn(message: string) {
    console.warn(message);
  },
  error(message: string) {
    console.error(message);
  },
};

export interface TemporalTestContext {
  server: DevServer;
  env: TestWorkflowEnvironment;
  /** Unique per test file, so files never steal each other's tasks. */
  taskQueue: string;
  /** The main queue's worker and the repository host's. */
  workers: EtcdWorkers;
  /** Stops the worker, the environment and the server; safe to call twice. */
  teardown(): Promise<void>;
}

/**
 * A worker configuration serving one simulated admin cluster (named `sim`, with the
 * simulator's profile) and one repository (named `local`): workflow inputs then need no
 * names at all, as with a real worker that serves one of each.
 */
export function simWorkerConfig(
  sim: { kubeconfigPath: string; profile: ClusterProfile },
  backupDir: string,
  extra: Partial<WorkerConfigInput> = {},
): WorkerConfigInput {
  return {
    adminClusters: { sim: { kubeconfig: sim.kubeconfigPath, profile: sim.profile } },
    repositories: { local: { path: backupDir } },
    ...extra,
  };
}

/**
 * A dev server (with its Web UI if `ui`), a client and a running worker on a fresh task queue. The worker's
 * activities are the real ones, built from the worker configuration `config` (see
 * `simWorkerConfig`), or `activities` when given (mocks, for workflow-logic tests).
 * Call `teardown` from an `after` hook so it runs even when a test fails.
 */
export async function startTemporalTestContext(
  name: string,
  options: { config?: WorkerConfigInput; activities?: object; ui?: boolean } = {},
): Promise<TemporalTestContext> {
  const server = await startDevServer({ ui: options.ui ?? false });
  const scratch = mkdtempSync(join(tmpdir(), 'etcd-ha-restore-test-'));
  const env = await TestWorkflowEnvironment.createFromExistingServer({
    address: server.address,
    namespace: server.namespace,
  });
  const taskQueue = `${name}-${randomUUID().slice(0, 8)}`;
  const repositoryHost = repositoryHostOf(taskQueue, 'test-host');
  const activities = options.activities
    ? ({
        repositoryHostQueue: async () => repositoryHost,
        ...options.activities,
      } as unknown as Activities)
    : createActivities(
        activityDeps(
          parseWorkerConfig(
            options.config ?? {
              adminClusters: {},
              repositories: { local: { path: join(scratch, 'backups') } },
            },
            'the test',
          ),
          repositoryHost,
        ),
      );
  const workers = await createWorkers({
    connection: env.nativeConnection,
    namespace: server.namespace,
    taskQueue,
    repositoryHost,
    activities,
    workflowBundle: await workflowBundle(),
  });
  const running = workers.run();
  let stopped: Promise<void> | undefined;
  return {
    server,
    env,
    taskQueue,
    workers,
    teardown() {
      stopped ??= (async () => {
        workers.shutdown();
        await running.catch(() => undefined);
        await env.teardown();
        await server.stop();
        rmSync(scratch, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}
