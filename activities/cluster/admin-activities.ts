/**
 * Activities on the admin cluster itself (SPEC A2, A3) and on the set of its user clusters
 * (the runbook's automatic backup script, A): names resolved on the worker, the admin etcd
 * pod found, the user clusters chosen.
 */
import { VersionApi } from '@kubernetes/client-node';
import type {
  AdminEtcdProfile,
  AdminEtcdSource,
  AdminTarget,
  UserClusterSelection,
} from '../../workflows/contract/index.js';
import type { WorkerTargets } from '../config/targets.js';
import type { KubeClients } from '../kube/client.js';
import { ClusterStateError } from './pods.js';

export function createAdminClusterActivities(deps: { kube: KubeClients; targets: WorkerTargets }) {
  return {
    /**
     * The admin cluster and repository an admin backup names, resolved: its kubeconfig loads,
     * the worker's configuration says how to reach its node (an ssh section), and where its
     * etcd is. How the node is reached stays on the worker.
     */
    async resolveAdminTarget(input: {
      adminCluster?: string;
      repository?: string;
    }): Promise<AdminTarget> {
      const admin = deps.targets.adminCluster(input.adminCluster);
      const repository = deps.targets.repository(input.repository).name;
      deps.kube.forCluster({ adminCluster: admin.name });
      const ssh = admin.ssh();
      return {
        adminCluster: admin.name,
        repository,
        etcd: admin.adminEtcd,
        pki: { directory: ssh.pkiDir, viaJumpHost: ssh.jumpHost !== undefined },
      };
    },

    /**
     * A3 preflight: the admin cluster's etcd pod (`component=etcd,tier=control-plane` in
     * kube-system), Running and Ready — the first by name when there are several (an HA admin
     * control plane) — and the version facts a restore by the vendor's procedure needs.
     */
    async findAdminEtcdSource(input: {
      adminCluster: string;
      etcd: AdminEtcdProfile;
    }): Promise<AdminEtcdSource> {
      const kube = deps.kube.forCluster(input);
      const { namespace, podLabelSelector, container } = input.etcd;
      const pods = await kube.core.listNamespacedPod({
        namespace,
        labelSelector: podLabelSelector,
      });
      const describe = pods.items
        .map((p) => `${p.metadata?.name} (${p.status?.phase ?? 'unknown'})`)
        .join(', ');
      const ready = pods.items
        .filter(
          (p) =>
            p.status?.phase === 'Running' &&
            p.status.containerStatuses?.some((c) => c.name === container && c.ready),
        )
        .sort((a, b) => (a.metadata?.name ?? '').localeCompare(b.metadata?.name ?? ''));
      const pod = ready[0];
      if (!pod?.metadata?.name) {
        throw new ClusterStateError(
          pods.items.length === 0
            ? `no pod in ${namespace} of admin cluster ${input.adminCluster} has the labels ${podLabelSelector}`
            : `no etcd pod of admin cluster ${input.adminCluster} is running and ready: ${describe}`,
        );
      }
      const version = await kube.config
        .makeApiClient(VersionApi)
        .getCode()
        .then((v) => v.gitVersion)
        .catch(() => undefined);
      const image = pod.spec?.containers.find((c) => c.name === container)?.image;
      return {
        pod: pod.metadata.name,
        container,
        ...(pod.spec?.nodeName ? { nodeName: pod.spec.nodeName } : {}),
        ...(image ? { image } : {}),
        ...(version ? { kubernetesVersion: version } : {}),
      };
    },

    /**
     * Which user clusters a backupAll run covers: those named, or the worker's
     * `userClusters` (a list, or the namespaces its label selector matches), or else every
     * namespace that holds the profile's etcd StatefulSet (kube-etcd). A name given that is
     * not a user cluster is not refused here: its own backup fails, naming why.
     */
    async listUserClusters(input: {
      adminCluster?: string;
      repository?: string;
      userClusterNames?: string[];
    }): Promise<UserClusterSelection> {
      const admin = deps.targets.adminCluster(input.adminCluster);
      const repository = deps.targets.repository(input.repository).name;
      const kube = deps.kube.forCluster({ adminCluster: admin.name });
      const chosen = (userClusterNames: string[], from: string): UserClusterSelection => ({
        adminCluster: admin.name,
        repository,
        userClusterNames: [...userClusterNames].sort(),
        from,
      });
      if (input.userClusterNames) return chosen(input.userClusterNames, 'named in the input');
      const rule = admin.config.userClusters;
      if (rule && 'namespaces' in rule)
        return chosen(rule.namespaces, "the worker's configuration (userClusters.namespaces)");
      if (rule && 'labelSelector' in rule) {
        const list = await kube.core.listNamespace({ labelSelector: rule.labelSelector });
        return chosen(
          list.items.map((n) => n.metadata?.name ?? '').filter((n) => n !== ''),
          `the namespaces labelled ${rule.labelSelector} (the worker's configuration)`,
        );
      }
      const name = admin.profile.etcdStatefulSet;
      const sets = await kube.apps.listStatefulSetForAllNamespaces({
        fieldSelector: `metadata.name=${name}`,
      });
      const namespaces = [
        ...new Set(sets.items.map((s) => s.metadata?.namespace ?? '').filter((n) => n !== '')),
      ];
      return chosen(namespaces, `the namespaces holding a StatefulSet ${name}`);
    },
  };
}
