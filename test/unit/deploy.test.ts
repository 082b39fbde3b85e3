/**
 * deploy/ without a cluster: every field of every object is one the Kubernetes API knows
 * (client-node's generated v1 models, which carry the OpenAPI field names and types, as
 * `kubectl apply --validate=strict` would refuse an unknown one); the worker's pod meets the
 * "restricted" Pod Security level its namespace enforces; every Kubernetes API call in
 * activities/ is granted by deploy/rbac.yaml, in the namespace it is sent to (a user
 * cluster's, or the admin etcd's kube-system), also on paths the e2e runs do not take
 * (test/e2e/rbac.test.ts checks the other direction with real traffic); the names the rules
 * are limited to are exactly the GKE on-prem names of members 0-2.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import * as k8s from '@kubernetes/client-node';
import { parse as parseYaml } from 'yaml';
import { parseWorkerConfig, type WorkerConfig } from '../../activities/config/worker-config.js';
import { workerEnvSchema } from '../../worker/config.js';
import { FORCE_AFTER_GRACE_MS } from '../../worker/create-worker.js';
import {
  adminEtcdProfileSchema,
  clusterProfileSchema,
  memberPodName,
  RESTORE_RECORD_CONFIGMAP,
  utilityPodName,
} from '../../workflows/contract/index.js';
import { type Manifest, Rbac, readDeployManifests, resourceNames } from '../harness/rbac.js';

const manifests = readDeployManifests();
const serviceAccount = manifests.find((m) => m.kind === 'ServiceAccount') as Manifest;
const rbac = new Rbac(manifests, {
  namespace: serviceAccount.metadata.namespace ?? '',
  name: serviceAccount.metadata.name,
});
const deployed = parseWorkerConfig(
  parseYaml(
    ((manifests.find((m) => m.kind === 'ConfigMap') as Manifest).data as Record<string, string>)[
      'worker.yaml'
    ] ?? '',
  ),
  'deploy/configmap.yaml',
);
const userCluster = Object.values(deployed.adminClusters).flatMap((a) =>
  a.userClusters && 'namespaces' in a.userClusters ? a.userClusters.namespaces : [],
)[0];
/** Where the admin cluster's own etcd pod is (SPEC A3): kube-system unless configured. */
const adminEtcdNamespace = adminEtcdProfileSchema.parse(
  Object.values(deployed.adminClusters)[0]?.adminEtcd ?? {},
).namespace;

interface AttributeType {
  baseName: string;
  type: string;
}
type Model = { getAttributeTypeMap(): AttributeType[] };
const models = k8s as unknown as Record<string, Model | undefined>;

/** Fields of `value` that the API's model `type` does not have, or of the wrong type. */
function unknownFields(value: unknown, type: string, path: string): string[] {
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    if (!Array.isArray(value)) return [`${path}: not a list`];
    return value.flatMap((v, i) => unknownFields(v, array[1] ?? '', `${path}[${i}]`));
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    if (typeof value !== 'object' || value === null || Array.isArray(value))
      return [`${path}: not a map`];
    return Object.entries(value).flatMap(([k, v]) =>
      unknownFields(v, map[1] ?? '', `${path}.${k}`),
    );
  }
  if (['string', 'number', 'boolean', 'Date'].includes(type)) {
    const ok = type === 'Date' ? typeof value === 'string' : typeof value === type;
    return ok ? [] : [`${path}: a ${typeof value}, not a ${type}`];
  }
  if (type === 'IntOrString') return [];
  if (type === 'any' || type === 'object') return [];
  const model = models[type];
  if (!model) return [`${path}: no model ${type}`];
  if (typeof value !== 'object' || value === null) return [`${path}: not an object (${type})`];
  const fields = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  return Object.entries(value).flatMap(([k, v]) => {
    const fieldType = fields.get(k);
    return fieldType === undefined
      ? [`${path}.${k}: unknown field of ${type}`]
      : unknownFields(v, fieldType, `${path}.${k}`);
  });
}

describe('deploy/ manifests', () => {
  test('every file the kustomization lists parses, and every field is known to the API', () => {
    const kinds = manifests.map((m) => m.kind).sort();
    assert.deepEqual(kinds, [
      'ClusterRole',
      'ClusterRole',
      'ClusterRoleBinding',
      'ConfigMap',
      'Deployment',
      'Namespace',
      'PersistentVolumeClaim',
      'Role',
      'RoleBinding',
      'RoleBinding',
      'ServiceAccount',
    ]);
    for (const { file, ...object } of manifests) {
      assert.deepEqual(unknownFields(object, `V1${object.kind}`, `${file} ${object.kind}`), []);
    }
    // The check itself finds a misspelt field, deep down.
    const typo = {
      spec: { template: { spec: { containers: [{ name: 'w', securityContex: {} }] } } },
    };
    assert.deepEqual(unknownFields(typo, 'V1Deployment', 'x'), [
      'x.spec.template.spec.containers[0].securityContex: unknown field of V1Container',
    ]);
  });

  test('the worker pod: restricted Pod Security, non-root, read-only root, resources, a pinned image', () => {
    const deployment = manifests.find((m) => m.kind === 'Deployment') as Manifest;
    const pod = (deployment.spec as { template: { spec: k8s.V1PodSpec } }).template.spec;
    const namespace = manifests.find((m) => m.kind === 'Namespace') as Manifest;
    assert.equal(deployment.metadata.namespace, namespace.metadata.name);
    assert.equal(
      (namespace.metadata.labels as Record<string, string>)['pod-security.kubernetes.io/enforce'],
      'restricted',
    );
    assert.equal(pod.securityContext?.runAsNonRoot, true);
    assert.ok((pod.securityContext?.runAsUser ?? 0) > 0, 'a non-zero UID');
    assert.equal(pod.securityContext?.seccompProfile?.type, 'RuntimeDefault');
    assert.equal(pod.hostNetwork ?? false, false);
    const allowedVolumes = [
      'configMap',
      'emptyDir',
      'persistentVolumeClaim',
      'projected',
      'secret',
    ];
    for (const volume of pod.volumes ?? []) {
      const kinds = Object.keys(volume).filter((k) => k !== 'name');
      assert.ok(
        kinds.every((k) => allowedVolumes.includes(k)),
        `volume ${volume.name}: ${kinds} allowed under "restricted"`,
      );
    }
    assert.equal(pod.containers.length, 1);
    for (const c of pod.containers) {
      const sc = c.securityContext;
      assert.equal(sc?.allowPrivilegeEscalation, false);
      assert.equal(sc?.readOnlyRootFilesystem, true);
      assert.deepEqual(sc?.capabilities?.drop, ['ALL']);
      assert.equal(sc?.capabilities?.add, undefined);
      assert.equal(sc?.privileged ?? false, false);
      assert.ok(c.resources?.requests?.cpu && c.resources.requests.memory, 'requests');
      assert.ok(c.resources?.limits?.memory, 'a memory limit');
      assert.match(
        c.image ?? '',
        /:[0-9][\w.-]*$|@sha256:[0-9a-f]{64}$/,
        'a version tag or digest',
      );
      assert.doesNotMatch(c.image ?? '', /:latest$/);
    }
    assert.equal((deployment.spec as k8s.V1DeploymentSpec).replicas, 1);
    assert.equal((deployment.spec as k8s.V1DeploymentSpec).strategy?.type, 'Recreate');
  });

  test("the worker's settings: valid, a fixed repository host, a shutdown within the pod's grace period, the metrics port declared", () => {
    const deployment = manifests.find((m) => m.kind === 'Deployment') as Manifest;
    const pod = (deployment.spec as { template: { spec: k8s.V1PodSpec } }).template.spec;
    const [container] = pod.containers;
    const env = Object.fromEntries((container?.env ?? []).map((e) => [e.name, e.value ?? '']));
    const settings = workerEnvSchema.parse(env);
    // A pod's host name changes with every new pod: the default id would move the host queue.
    assert.ok(settings.REPOSITORY_HOST_ID, 'REPOSITORY_HOST_ID is set');
    assert.ok(
      settings.WORKER_SHUTDOWN_GRACE + FORCE_AFTER_GRACE_MS <
        (pod.terminationGracePeriodSeconds ?? 30) * 1000,
      'the worker has stopped before the kubelet kills it',
    );
    const port = Number(settings.WORKER_METRICS_ADDRESS?.split(':').at(-1));
    assert.deepEqual(
      container?.ports?.map((p) => [p.name, p.containerPort]),
      [['metrics', port]],
    );
  });
});

/**
 * client-node method name → the request it sends, as RBAC sees it. `namespaced`: sent to one
 * namespace (a RoleBinding there can grant it); `…ForAllNamespaces` and cluster-scoped kinds
 * are not (only a ClusterRoleBinding can).
 */
function requestOfMethod(method: string): { verb: string; resource: string; namespaced: boolean } {
  const match =
    /^(read|list|create|delete|patch|replace)(Namespaced)?(Pod|Secret|ConfigMap|PersistentVolumeClaim|StatefulSet|Deployment|PodDisruptionBudget|Namespace|Node)(Scale|Status|Log)?(ForAllNamespaces)?$/.exec(
      method,
    );
  if (!match) throw new Error(`${method}: unknown client-node method: add it to this table`);
  const [, verb = '', namespaced, kind = '', sub, allNamespaces] = match;
  if (namespaced && allNamespaces) throw new Error(`${method}: not a client-node method`);
  const plural = kind === 'PodDisruptionBudget' ? 'poddisruptionbudgets' : `${kind.toLowerCase()}s`;
  return {
    verb: { read: 'get', replace: 'update' }[verb] ?? verb,
    resource: sub ? `${plural}/${sub.toLowerCase()}` : plural,
    namespaced: namespaced !== undefined,
  };
}

const ACTIVITIES = fileURLToPath(new URL('../../activities/', import.meta.url));
function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? sourceFiles(join(dir, e.name))
      : e.name.endsWith('.ts')
        ? [join(dir, e.name)]
        : [],
  );
}

/**
 * Which namespaces a file's namespaced calls go to. The admin activities look up the admin
 * etcd pod (SPEC A3) in its namespace; exec serves both the user clusters' pods and the admin
 * etcd pod (snapshot, status, keyspace, copy out, clean-up); everything else works in a user
 * cluster's namespace.
 */
function namespacesOf(file: string, method: string): string[] {
  if (method === 'exec') return [userCluster ?? '', adminEtcdNamespace];
  if (file === join('cluster', 'admin-activities.ts')) return [adminEtcdNamespace];
  return [userCluster ?? ''];
}

/**
 * Calls that only some worker configurations make, and whether `config` is one: user clusters
 * picked by label list namespaces; with no `userClusters` at all, backupAll finds them as the
 * namespaces that hold a StatefulSet kube-etcd, across all namespaces (listUserClusters).
 */
const onlyWhen: Record<string, (config: WorkerConfig) => boolean> = {
  listNamespace: (config) =>
    Object.values(config.adminClusters).some(
      (a) => a.userClusters !== undefined && 'labelSelector' in a.userClusters,
    ),
  listStatefulSetForAllNamespaces: (config) =>
    Object.values(config.adminClusters).some((a) => a.userClusters === undefined),
};

/** Every Kubernetes API call in activities/, and those `rbac` does not grant for `config`. */
function callsNotGranted(config: WorkerConfig): { calls: string[]; forbidden: string[] } {
  const groupOf: Record<string, string> = { core: '', apps: 'apps', policy: 'policy' };
  const calls: string[] = [];
  const forbidden: string[] = [];
  for (const file of sourceFiles(ACTIVITIES)) {
    const source = readFileSync(file, 'utf8');
    const where = relative(ACTIVITIES, file);
    const found = [...source.matchAll(/\bkube\.(core|apps|policy)\.(\w+)\(/g)].map((m) => ({
      group: groupOf[m[1] ?? ''] ?? '?',
      ...requestOfMethod(m[2] ?? ''),
      method: m[2] ?? '',
    }));
    // Exec is a WebSocket GET: `get`, and from Kubernetes 1.35 also `create`, on pods/exec.
    if (/\bnew WebSocket\(/.test(source) || /\bexecInPod\(/.test(source))
      for (const verb of ['get', 'create'])
        found.push({ group: '', verb, resource: 'pods/exec', namespaced: true, method: 'exec' });
    for (const call of found) {
      const needed = onlyWhen[call.method];
      if (needed && !needed(config)) continue;
      // Names are not known statically: a grant of the verb and resource, to any name.
      const grantedIn = (namespace: string | undefined) =>
        rbac.grants.some(
          (g) =>
            g.verb === call.verb &&
            g.apiGroup === call.group &&
            g.resource === call.resource &&
            (g.namespace === undefined || g.namespace === namespace),
        );
      const targets = call.namespaced ? namespacesOf(where, call.method) : [undefined];
      for (const namespace of targets) {
        const key = `${call.method} (${call.verb} ${call.resource}${namespace ? ` in ${namespace}` : ''}) in ${where}`;
        calls.push(key);
        if (!grantedIn(namespace)) forbidden.push(key);
      }
    }
  }
  return { calls, forbidden };
}

describe('deploy/rbac.yaml and the code', () => {
  test('every Kubernetes API call in activities/ is granted, in the namespace it goes to', () => {
    const { calls, forbidden } = callsNotGranted(deployed);
    assert.ok(calls.length > 20, `found the API calls (${calls.length})`);
    assert.deepEqual(forbidden, [], 'calls deploy/rbac.yaml does not grant');
    // The admin etcd's calls are checked in kube-system, not where the user clusters' are.
    for (const expected of [
      `listNamespacedPod (list pods in ${adminEtcdNamespace}) in ${join('cluster', 'admin-activities.ts')}`,
      `exec (create pods/exec in ${adminEtcdNamespace}) in ${join('kube', 'exec.ts')}`,
    ])
      assert.ok(calls.includes(expected), expected);
    // A configuration without a list of user clusters makes backupAll list StatefulSets in
    // all namespaces, which deploy/ does not grant; one that picks them by label lists
    // namespaces. The check sees both.
    const { adminClusters } = deployed;
    const withUserClusters = (
      userClusters: WorkerConfig['adminClusters'][string]['userClusters'],
    ) =>
      ({
        ...deployed,
        adminClusters: Object.fromEntries(
          Object.entries(adminClusters).map(([name, a]) => {
            const { userClusters: _u, ...rest } = a;
            return [name, userClusters ? { ...rest, userClusters } : rest];
          }),
        ),
      }) as WorkerConfig;
    assert.deepEqual(callsNotGranted(withUserClusters(undefined)).forbidden, [
      `listStatefulSetForAllNamespaces (list statefulsets) in ${join('cluster', 'admin-activities.ts')}`,
    ]);
    assert.deepEqual(
      callsNotGranted(withUserClusters({ labelSelector: 'etcd-ha-restore/user-cluster=true' }))
        .forbidden.map((k) => k.split(' ')[0])
        .sort(),
      ['listNamespace', 'listNamespace'],
    );
    // The method table refuses what it does not know, rather than guessing.
    assert.throws(() => requestOfMethod('connectGetNamespacedPodAttach'), /add it to this table/);
    assert.deepEqual(requestOfMethod('listStatefulSetForAllNamespaces'), {
      verb: 'list',
      resource: 'statefulsets',
      namespaced: false,
    });
  });

  test('the names the rules are limited to are the GKE on-prem names of members 0-2', () => {
    const gke = clusterProfileSchema.parse({});
    const members = [0, 1, 2];
    assert.deepEqual(
      resourceNames(rbac),
      [
        ...members.map((n) => memberPodName(gke, n)),
        ...members.map((n) => utilityPodName(gke, n)),
        gke.etcdStatefulSet,
        gke.apiserverStatefulSet,
        gke.maintenanceDeployment,
        gke.apiserverPdb,
        RESTORE_RECORD_CONFIGMAP,
      ].sort(),
    );
  });
});
