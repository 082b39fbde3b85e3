/**
 * PodDisruptionBudget `kube-apiserver-pdb` (H2, H9): saved as a clean manifest the
 * workflow keeps in its history, deleted — only the very object that was saved — and
 * re-created exactly as it was, owner references included.
 */
import type { V1PodDisruptionBudget } from '@kubernetes/client-node';
import type { PdbManifest, SavedPdb } from '../../workflows/contract/index.js';
import { canonicalJson } from '../json.js';
import {
  httpStatusOf,
  isAlreadyExists,
  isNotFound,
  type Kube,
  readOptional,
} from '../kube/client.js';

/** The present PDB differs from the saved one: a person must decide which is right. */
export class PdbConflictError extends Error {
  override name = 'PdbConflictError';
}

/** The PDB as a re-creatable manifest, or undefined if the cluster has none. */
export async function savePdb(
  kube: Kube,
  namespace: string,
  name: string,
): Promise<SavedPdb | undefined> {
  const pdb = await readOptional(() =>
    kube.policy.readNamespacedPodDisruptionBudget({ name, namespace }),
  );
  return pdb ? { manifest: sanitize(pdb, namespace, name), uid: pdb.metadata?.uid } : undefined;
}

/**
 * Deletes the PDB that was saved: with `uid`, a PDB that has since been replaced by another
 * (a controller re-created it) is not deleted, and the conflict is reported. Already gone
 * is success.
 */
export async function deletePdb(
  kube: Kube,
  namespace: string,
  name: string,
  uid?: string,
): Promise<'deleted' | 'absent'> {
  try {
    await kube.policy.deleteNamespacedPodDisruptionBudget({
      name,
      namespace,
      ...(uid ? { body: { preconditions: { uid } } } : {}),
    });
    return 'deleted';
  } catch (error) {
    if (isNotFound(error)) return 'absent';
    if (httpStatusOf(error) === 409) {
      throw new PdbConflictError(
        `PodDisruptionBudget ${namespace}/${name} is no longer the one saved (uid ${uid}): something re-created it; it was not deleted`,
      );
    }
    throw error;
  }
}

/** Creates the PDB from the saved manifest; one already there with the same spec is success. */
export async function recreatePdb(
  kube: Kube,
  manifest: PdbManifest,
): Promise<'created' | 'present'> {
  const { name, namespace } = manifest.metadata;
  try {
    await kube.policy.createNamespacedPodDisruptionBudget({
      namespace,
      body: manifest as V1PodDisruptionBudget,
    });
    return 'created';
  } catch (error) {
    if (!isAlreadyExists(error)) throw error;
  }
  const present = (await savePdb(kube, namespace, name))?.manifest;
  if (present && canonicalJson(present.spec) === canonicalJson(manifest.spec)) return 'present';
  throw new PdbConflictError(
    `PodDisruptionBudget ${namespace}/${name} exists with a different spec than the one saved before the restore ` +
      `(saved ${canonicalJson(manifest.spec)}, present ${canonicalJson(present?.spec ?? {})})`,
  );
}

function sanitize(pdb: V1PodDisruptionBudget, namespace: string, name: string): PdbManifest {
  // A plain JSON copy (client-node returns class instances with Dates), minus server fields.
  const plain = JSON.parse(JSON.stringify(pdb)) as {
    metadata?: Pick<PdbManifest['metadata'], 'labels' | 'annotations' | 'ownerReferences'>;
    spec?: Record<string, unknown>;
  };
  const metadata: PdbManifest['metadata'] = { name, namespace };
  if (plain.metadata?.labels) metadata.labels = plain.metadata.labels;
  if (plain.metadata?.annotations) metadata.annotations = plain.metadata.annotations;
  // The owner (e.g. the cluster's controller object) still exists: keep the link to it.
  if (plain.metadata?.ownerReferences) metadata.ownerReferences = plain.metadata.ownerReferences;
  return { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', metadata, spec: plain.spec ?? {} };
}
