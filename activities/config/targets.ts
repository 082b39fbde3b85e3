/**
 * Names → what they stand for on this worker: the one place a workflow's `adminCluster`,
 * `repository` or `importFile` becomes a kubeconfig, a directory or a file. An unknown name
 * fails at once, non-retryably, naming what this worker does serve.
 */
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import {
  type AdminEtcdProfile,
  adminEtcdProfileSchema,
  type ClusterProfile,
  clusterProfileSchema,
  FailureType,
  inboxFileName,
  parseOrFail,
} from '../../workflows/contract/index.js';
import type { AdminClusterConfig, AdminSshConfig, WorkerConfig } from './worker-config.js';

export interface WorkerTargets {
  /** The admin cluster `name` names, or the worker's only one. */
  adminCluster(name?: string): {
    name: string;
    config: AdminClusterConfig;
    /** The profile of its user clusters. */
    profile: ClusterProfile;
    /** The profile of one user cluster: `profile` with that cluster's overrides. */
    userClusterProfile(userClusterName: string): ClusterProfile;
    /** Where its own etcd is (A3). */
    adminEtcd: AdminEtcdProfile;
    /** How its control-plane node is reached (A2); NotConfigured if the section is missing. */
    ssh(): AdminSshConfig;
  };
  /** The repository `name` names, or the worker's only one: its directory. */
  repository(name?: string): { name: string; path: string };
  /** A file in the import inbox, by its name there. */
  importFile(fileName: string): string;
}

export function workerTargets(config: WorkerConfig): WorkerTargets {
  const pick = <T>(what: string, field: string, all: Record<string, T>, name?: string) => {
    const names = Object.keys(all);
    const chosen = name ?? (names.length === 1 ? names[0] : undefined);
    const found = chosen === undefined ? undefined : all[chosen];
    if (chosen === undefined || found === undefined) {
      const served = names.length > 0 ? names.join(', ') : 'none';
      throw ApplicationFailure.nonRetryable(
        name === undefined
          ? `${field}: this worker serves ${what}s ${served}: name one`
          : `${field}: this worker has no ${what} named ${JSON.stringify(name)} (it serves: ${served})`,
        FailureType.InvalidInput,
      );
    }
    return { name: chosen, found };
  };
  const profiles = new Map<string, ClusterProfile>();
  return {
    adminCluster(name) {
      const { name: chosen, found } = pick(
        'admin cluster',
        'adminCluster',
        config.adminClusters,
        name,
      );
      let profile = profiles.get(chosen);
      if (!profile) {
        profile = clusterProfileSchema.parse(found.profile ?? {});
        profiles.set(chosen, profile);
      }
      const base = profile;
      return {
        name: chosen,
        config: found,
        profile,
        userClusterProfile: (userClusterName) => {
          const overrides = found.userClusterProfiles?.[userClusterName];
          return overrides ? clusterProfileSchema.parse({ ...base, ...overrides }) : base;
        },
        adminEtcd: adminEtcdProfileSchema.parse(found.adminEtcd ?? {}),
        ssh: () => {
          if (!found.ssh) {
            throw ApplicationFailure.nonRetryable(
              `the worker's configuration gives admin cluster ${chosen} no ssh section: ` +
                'the PKI of its control-plane node (SPEC A2) cannot be copied without it',
              FailureType.NotConfigured,
            );
          }
          return found.ssh;
        },
      };
    },
    repository(name) {
      const { name: chosen, found } = pick('repository', 'repository', config.repositories, name);
      return { name: chosen, path: found.path };
    },
    importFile(fileName) {
      if (!config.importInbox) {
        throw ApplicationFailure.nonRetryable(
          'backup.importFile: this worker has no import inbox configured (importInbox)',
          FailureType.InvalidInput,
        );
      }
      const name = parseOrFail(inboxFileName, fileName, (issues) =>
        ApplicationFailure.nonRetryable(`backup.importFile: ${issues}`, FailureType.InvalidInput),
      );
      return join(config.importInbox, name);
    },
  };
}
