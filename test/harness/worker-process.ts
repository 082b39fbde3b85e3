/**
 * The worker as a separate OS process (`node --import tsx worker/main.ts`), configured
 * through its environment exactly as an operator runs it, so tests can SIGKILL it at any
 * instruction and start another one. Every process started here is killed when the test
 * process exits, even if a test forgot to.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { WorkerConfigInput } from '../../activities/config/worker-config.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const READY_TIMEOUT_MS = 120_000;

export interface WorkerProcessOptions {
  /** TEMPORAL_ADDRESS */
  address: string;
  /** TEMPORAL_NAMESPACE */
  namespace: string;
  /** TEMPORAL_TASK_QUEUE */
  taskQueue: string;
  /** The worker's configuration, written (as JSON, which is YAML) to `configFile`. */
  config: WorkerConfigInput;
  /** ETCD_HA_RESTORE_CONFIG */
  configFile: string;
  /** More environment variables (REPOSITORY_HOST_ID, TEMPORAL_TLS_*, WORKER_*). */
  env?: Record<string, string>;
}

export interface WorkerProcess {
  pid: number;
  /** The SDK's default worker identity (`<pid>@<hostname>`), as history events name it. */
  identity: string;
  /** Resolves once the worker said it polls; rejects if it exits first. */
  ready: Promise<void>;
  /** Whether the process has exited (by itself or killed). */
  exited(): boolean;
  /** Resolves when the process has exited. */
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** The last few kB of its stdout and stderr, for failure messages. */
  output(): string;
  /** Its whole stdout (the worker's JSON log lines), up to 4 MB. */
  stdout(): string;
  /** SIGTERM (a graceful shutdown), then wait until the process has exited. */
  terminate(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL, then wait until the process is gone. Idempotent. */
  kill(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Starts a worker process; `ready` resolves when it polls its task queue. */
export function startWorkerProcess(options: WorkerProcessOptions): WorkerProcess {
  writeFileSync(options.configFile, JSON.stringify(options.config, null, 2));
  const {
    ADMIN_CLUSTER_KUBECONFIG: _kubeconfig,
    BACKUP_DIR: _backupDir,
    IMPORT_INBOX: _inbox,
    ...inherited
  } = process.env;
  const child = spawn(process.execPath, ['--import', 'tsx', 'worker/main.ts'], {
    cwd: REPO_ROOT,
    env: {
      ...inherited,
      TEMPORAL_ADDRESS: options.address,
      TEMPORAL_NAMESPACE: options.namespace,
      TEMPORAL_TASK_QUEUE: options.taskQueue,
      ETCD_HA_RESTORE_CONFIG: options.configFile,
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error('the worker process could not be started');
  const pid = child.pid;
  running.add(child);
  let output = '';
  let stdout = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-8000);
  };
  child.stdout?.on('data', keep);
  child.stdout?.on('data', (chunk: Buffer) => {
    if (stdout.length < 4_000_000) stdout += chunk.toString();
  });
  child.stderr?.on('data', keep);
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    });
  });
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`worker ${pid} not polling after ${READY_TIMEOUT_MS} ms: ${output}`));
    }, READY_TIMEOUT_MS);
    const onData = (chunk: Buffer) => {
      if (chunk.toString().includes('worker: polling task queue')) {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    void exit.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`worker ${pid} exited (${code ?? signal}) before polling: ${output}`));
    });
  });
  // A worker killed before it was ready is not an unhandled rejection.
  ready.catch(() => undefined);
  const exited = () => child.exitCode !== null || child.signalCode !== null;
  return {
    pid,
    identity: `${pid}@${hostname()}`,
    ready,
    exited,
    exit,
    output: () => output,
    stdout: () => stdout,
    async terminate() {
      if (!exited()) child.kill('SIGTERM');
      return exit;
    },
    async kill() {
      if (!exited()) child.kill('SIGKILL');
      await exit;
    },
  };
}
