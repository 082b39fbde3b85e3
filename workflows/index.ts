/** Every workflow the worker registers; this file is the entry of the workflow bundle. */
export { backupAdminCluster } from './backup/backup-admin-cluster.js';
export { backupAll } from './backup/backup-all.js';
export { backupUserCluster } from './backup/backup-user-cluster.js';
export { clusterLock } from './cluster-lock.js';
export { restoreUserCluster } from './restore/workflow.js';
