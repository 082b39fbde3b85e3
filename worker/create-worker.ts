/** Builds the worker that runs every workflow and activity of this project. */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { workerTargets } from '../activities/config/targets.js';
import type { WorkerConfig } from '../activities/config/worker-config.js';
import { localEtcdctl } from '../activities/etcd/local-etcdctl.js';
import { type ActivityDeps, createActivities } from '../activities/index.js';
import { kubeClientsOf } from '../activities/kube/client.js';
import { fileSystemStores } from '../activities/repository/fs-store.js';

/** The workflow bundle's entry: the TypeScript source when run from it, else the build. */
export function workflowsPath(): string {
  const source = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));
  return existsSync(source)
    ? source
    : fileURLToPath(new URL('../workflows/index.js', import.meta.url));
}

/** The activities' dependencies, built once: what this worker may reach, and how. */
export function activityDeps(config: WorkerConfig): ActivityDeps {
  const targets = workerTargets(config);
  return {
    targets,
    kube: kubeClientsOf(targets),
    backups: fileSystemStores(targets),
    etcdctl: localEtcdctl(),
  };
}

export interface CreateWorkerOptions {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  deps: ActivityDeps;
  /** A prebuilt bundle (tests bundle once per process); bundled from source if absent. */
  workflowBundle?: WorkerOptions['workflowBundle'];
}

export function createWorker(options: CreateWorkerOptions): Promise<Worker> {
  const { connection, namespace, taskQueue, workflowBundle, deps } = options;
  return Worker.create({
    connection,
    namespace,
    taskQueue,
    activities: createActivities(deps),
    ...(workflowBundle ? { workflowBundle } : { workflowsPath: workflowsPath() }),
  });
}
