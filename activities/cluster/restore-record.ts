/**
 * The record a restore keeps on the cluster itself, as a ConfigMap in the user cluster's
 * namespace (RESTORE_RECORD_CONFIGMAP): the replica counts and the PDB it is about to
 * change, written before it changes them and removed once everything is back. A restore
 * that was abandoned half-way leaves it behind, so the next one reads the true originals
 * instead of the zeros, and says so. The first record wins: it is never overwritten.
 */
import { z } from 'zod';
import {
  parseOrFail,
  RESTORE_RECORD_CONFIGMAP,
  type RestoreRecord,
} from '../../workflows/contract/index.js';
import { isAlreadyExists, isNotFound, type Kube, readOptional } from '../kube/client.js';
import { ClusterStateError } from './pods.js';

const KEY = 'restore.json';

const count = z.number().int().min(0);
const recordSchema = z.object({
  workflowId: z.string().min(1),
  startedAt: z.string().min(1),
  replicas: z.object({ etcd: count, apiserver: count, maintenance: count }),
  pdb: z
    .object({
      apiVersion: z.literal('policy/v1'),
      kind: z.literal('PodDisruptionBudget'),
      metadata: z.looseObject({ name: z.string(), namespace: z.string() }),
      spec: z.record(z.string(), z.unknown()),
    })
    .optional(),
  memberNodes: z.record(z.string().regex(/^\d$/), z.string().min(1)),
});

export async function readRestoreRecord(
  kube: Kube,
  namespace: string,
): Promise<RestoreRecord | undefined> {
  const cm = await readOptional(() =>
    kube.core.readNamespacedConfigMap({ name: RESTORE_RECORD_CONFIGMAP, namespace }),
  );
  if (!cm) return undefined;
  const fail = (issues: string) =>
    new ClusterStateError(
      `ConfigMap ${namespace}/${RESTORE_RECORD_CONFIGMAP} (left by an earlier restore) is unreadable: ${issues}; ` +
        'check the replica counts and the PDB by hand, then delete it',
    );
  let json: unknown;
  try {
    json = JSON.parse(cm.data?.[KEY] ?? '');
  } catch {
    throw fail(`${KEY} is not JSON`);
  }
  return parseOrFail(recordSchema, json, fail) as RestoreRecord;
}

/** Writes the record unless one is there already; returns the one that is there now. */
export async function writeRestoreRecord(
  kube: Kube,
  namespace: string,
  record: RestoreRecord,
): Promise<RestoreRecord> {
  try {
    await kube.core.createNamespacedConfigMap({
      namespace,
      body: {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: {
          name: RESTORE_RECORD_CONFIGMAP,
          namespace,
          labels: { 'app.kubernetes.io/managed-by': 'etcd-ha-restore' },
        },
        data: { [KEY]: JSON.stringify(record, null, 2) },
      },
    });
    return record;
  } catch (error) {
    if (!isAlreadyExists(error)) throw error;
  }
  return (await readRestoreRecord(kube, namespace)) ?? record;
}

/** Removes the record; gone already is success. */
export async function deleteRestoreRecord(kube: Kube, namespace: string): Promise<void> {
  try {
    await kube.core.deleteNamespacedConfigMap({ name: RESTORE_RECORD_CONFIGMAP, namespace });
  } catch (error) {
    if (!isNotFound(error)) throw error;
  }
}
