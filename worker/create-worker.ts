/**
 * Builds the workers of one process: one on the main task queue (every workflow and every
 * activity) and one on this host's own queue (the activities that touch its repositories),
 * as the Temporal sample `worker-specific-task-queues` does. Both share one connection.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { workerTargets } from '../activities/config/targets.js';
import type { WorkerConfig } from '../activities/config/worker-config.js';
import { localEtcdctl } from '../activities/etcd/local-etcdctl.js';
import { type Activities, type ActivityDeps, REPOSITORY_ACTIVITIES } from '../activities/index.js';
import { kubeClientsOf } from '../activities/kube/client.js';
import { fileSystemStores } from '../activities/repository/fs-store.js';
import { type RepositoryHost, repositoryHostTaskQueue } from '../workflows/contract/index.js';

/** The workflow bundle's entry: the TypeScript source when run from it, else the build. */
export function workflowsPath(): string {
  const source = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));
  return existsSync(source)
    ? source
    : fileURLToPath(new URL('../workflows/index.js', import.meta.url));
}

/** This host's repository queue, derived from the main queue and the host's id. */
export function repositoryHostOf(taskQueue: string, hostId: string): RepositoryHost {
  return { host: hostId, taskQueue: repositoryHostTaskQueue(taskQueue, hostId) };
}

/** The activities' dependencies, built once: what this worker may reach, and how. */
export function activityDeps(config: WorkerConfig, repositoryHost: RepositoryHost): ActivityDeps {
  const targets = workerTargets(config);
  return {
    targets,
    kube: kubeClientsOf(targets),
    backups: fileSystemStores(targets),
    etcdctl: localEtcdctl(),
    repositoryHost,
  };
}

/** After the grace time, how long cancelled activities get to stop before the worker gives up on them. */
export const FORCE_AFTER_GRACE_MS = 10_000;

export interface CreateWorkersOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  repositoryHost: RepositoryHost;
  /**
   * Every activity, all served on the main queue too (so a run recorded before host queues
   * still finds its repository activities there); the repository's also on the host queue.
   */
  activities: Activities;
  /**
   * How long running activities get to finish after a shutdown starts (SIGTERM), in ms;
   * then they are cancelled (their attempts fail and are retried elsewhere), and 10 s
   * later the worker stops waiting for any that ignore it.
   */
  shutdownGraceMs?: number;
  /** A prebuilt bundle (tests bundle once per process); bundled from source if absent. */
  workflowBundle?: WorkerOptions['workflowBundle'];
}

export interface EtcdWorkers {
  /** Runs both until both have shut down; if one fails, the other is shut down too. */
  run(): Promise<void>;
  /** Starts a graceful shutdown of both (what SIGTERM does). */
  shutdown(): void;
}

export async function createWorkers(options: CreateWorkersOptions): Promise<EtcdWorkers> {
  const { connection, namespace, taskQueue, activities, repositoryHost, workflowBundle } = options;
  const common = {
    connection,
    namespace,
    ...(options.shutdownGraceMs !== undefined
      ? {
          shutdownGraceTime: options.shutdownGraceMs,
          shutdownForceTime: options.shutdownGraceMs + FORCE_AFTER_GRACE_MS,
        }
      : {}),
  };
  const main = await Worker.create({
    ...common,
    taskQueue,
    activities,
    ...(workflowBundle ? { workflowBundle } : { workflowsPath: workflowsPath() }),
  });
  const hostActivities = Object.fromEntries(
    REPOSITORY_ACTIVITIES.filter((name) => name in activities).map((name) => [
      name,
      activities[name],
    ]),
  );
  // Only tests' mocks lack every repository activity; a worker must have something to run.
  const host =
    Object.keys(hostActivities).length > 0
      ? await Worker.create({
          ...common,
          taskQueue: repositoryHost.taskQueue,
          activities: hostActivities,
        })
      : undefined;
  const workers = host ? [main, host] : [main];
  const shutdown = () => {
    for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
  };
  return {
    shutdown,
    async run() {
      const runs = workers.map((w) => w.run());
      try {
        await Promise.all(runs);
      } catch (error) {
        shutdown();
        await Promise.allSettled(runs);
        throw error;
      }
    },
  };
}
