/**
 * The worker process: `npm run worker`. Configuration comes from the environment
 * (see README); SIGINT/SIGTERM drain in-flight activities, then exit.
 */
import { NativeConnection } from '@temporalio/worker';
import { loadWorkerProcessConfig } from './config.js';
import { activityDeps, createWorker } from './create-worker.js';

async function main(): Promise<void> {
  const config = loadWorkerProcessConfig();
  const connection = await NativeConnection.connect(config.connection);
  try {
    const worker = await createWorker({
      connection,
      namespace: config.namespace,
      taskQueue: config.taskQueue,
      deps: activityDeps(config.targets),
    });
    console.log(
      `worker: polling task queue ${config.taskQueue} on ${config.connection.address ?? 'localhost:7233'} (namespace ${config.namespace}); ` +
        `admin clusters ${Object.keys(config.targets.adminClusters).join(', ')}; repositories ${Object.keys(config.targets.repositories).join(', ')}`,
    );
    await worker.run();
  } finally {
    await connection.close();
  }
}

main().catch((error: unknown) => {
  console.error(`worker: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
