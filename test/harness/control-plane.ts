/** What a restore must leave as it found it, read back from the simulated cluster's API. */
import { connectKube, readOptional } from '../../activities/kube/client.js';
import type { SimCluster } from '../sim/index.js';

export interface ControlPlaneState {
  etcd: number | undefined;
  apiserver: number | undefined;
  maintenance: number | undefined;
  pdbSpec: string;
}

/** Replica counts of kube-etcd, kube-apiserver, gke-master-etcd-maintenance, and the PDB's spec. */
export async function readControlPlane(
  sim: SimCluster,
  namespace: string,
): Promise<ControlPlaneState> {
  const kube = connectKube(sim.kubeconfigPath);
  const sts = async (name: string) =>
    (await kube.apps.readNamespacedStatefulSet({ name, namespace })).spec?.replicas;
  const deploy = await kube.apps.readNamespacedDeployment({
    name: 'gke-master-etcd-maintenance',
    namespace,
  });
  // A PDB a restore left deleted reads as "absent", so it can be compared like the rest.
  const pdb = await readOptional(() =>
    kube.policy.readNamespacedPodDisruptionBudget({ name: 'kube-apiserver-pdb', namespace }),
  );
  return {
    etcd: await sts('kube-etcd'),
    apiserver: await sts('kube-apiserver'),
    maintenance: deploy.spec?.replicas,
    pdbSpec: pdb ? JSON.stringify(pdb.spec) : 'absent',
  };
}
