/**
 * The worker process: `npm run worker`. Configuration comes from the environment (see
 * README). It polls the main task queue and its host's repository queue, logs JSON lines on
 * stdout, serves Prometheus metrics when WORKER_METRICS_ADDRESS is set, and on SIGTERM or
 * SIGINT stops polling and gives running activities WORKER_SHUTDOWN_GRACE to finish.
 */
import { Client } from '@temporalio/client';
import { NativeConnection, Runtime } from '@temporalio/worker';
import { createActivities } from '../activities/index.js';
import { loadWorkerProcessConfig, type WorkerProcessConfig } from './config.js';
import { activityDeps, createWorkers, repositoryHostOf } from './create-worker.js';
import { seedBackupMetrics, watchWaitingRestores, workflowMetricTags } from './metrics.js';
import { installTelemetry } from './telemetry.js';

/** How often the gauge of restores waiting for an operator is read from Temporal. */
const WAITING_RESTORES_INTERVAL_MS = 30_000;

async function main(config: WorkerProcessConfig): Promise<void> {
  const logger = installTelemetry({
    logLevel: config.logLevel,
    ...(config.metricsAddress ? { metricsAddress: config.metricsAddress } : {}),
  });
  const connection = await NativeConnection.connect(config.connection);
  const { namespace, taskQueue } = config;
  try {
    const repositoryHost = repositoryHostOf(taskQueue, config.repositoryHostId);
    const workers = await createWorkers({
      connection,
      namespace,
      taskQueue,
      repositoryHost,
      activities: createActivities(activityDeps(config.targets, repositoryHost)),
      shutdownGraceMs: config.shutdownGraceMs,
    });
    const meter = Runtime.instance().metricMeter;
    await seedBackupMetrics(
      (workflowType) => meter.withTags(workflowMetricTags(namespace, taskQueue, workflowType)),
      config.targets,
    ).catch((error: unknown) => logger.warn('cannot read the repositories for metrics', { error }));
    const waiting = watchWaitingRestores(
      new Client({ connection, namespace }),
      meter.withTags({ namespace }),
      {
        intervalMs: WAITING_RESTORES_INTERVAL_MS,
        onError: (error) =>
          logger.warn('cannot list the restores waiting for an operator', { error }),
      },
    );
    logger.info(`worker: polling task queue ${taskQueue} and ${repositoryHost.taskQueue}`, {
      address: config.connection.address ?? 'localhost:7233',
      namespace,
      taskQueue,
      repositoryHost: repositoryHost.host,
      hostTaskQueue: repositoryHost.taskQueue,
      adminClusters: Object.keys(config.targets.adminClusters),
      repositories: Object.keys(config.targets.repositories),
      shutdownGraceMs: config.shutdownGraceMs,
      ...(config.metricsAddress ? { metrics: `http://${config.metricsAddress}/metrics` } : {}),
    });
    try {
      await workers.run();
    } finally {
      waiting.stop();
    }
    logger.info('worker: stopped');
  } finally {
    await connection.close();
  }
}

let config: WorkerProcessConfig;
try {
  config = loadWorkerProcessConfig();
} catch (error) {
  console.error(`worker: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
}
main(config).catch((error: unknown) => {
  Runtime.instance().logger.error(
    `worker: ${error instanceof Error ? error.message : String(error)}`,
    { error },
  );
  process.exitCode = 1;
  // An activity that ignored its cancellation must not keep the process alive.
  setTimeout(() => process.exit(), 1000).unref();
});
