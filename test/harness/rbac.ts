/**
 * The manifests of deploy/ as the API server would take them, and Kubernetes RBAC evaluated
 * over them (pkg/registry/rbac/validation: a request is allowed when some rule of a role bound
 * to the subject matches its verb, API group, resource[/subresource] and, if the rule names
 * any, the object's name; a RoleBinding grants only in its own namespace and never
 * cluster-scoped objects). Used to compare what the activities really send with what the
 * Role grants, both ways.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import type { RequestInfo } from '../sim/index.js';
import { RESOURCES } from '../sim/store.js';

export const DEPLOY_DIR = fileURLToPath(new URL('../../deploy/', import.meta.url));

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [key: string]: unknown };
  [key: string]: unknown;
}

/** Every object of the files deploy/kustomization.yaml lists, with the file it came from. */
export function readDeployManifests(dir = DEPLOY_DIR): (Manifest & { file: string })[] {
  const kustomization = parseSingle(join(dir, 'kustomization.yaml')) as { resources?: string[] };
  const objects: (Manifest & { file: string })[] = [];
  for (const file of kustomization.resources ?? []) {
    for (const doc of parseAllDocuments(readFileSync(join(dir, file), 'utf8'))) {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors.map(String).join('; ')}`);
      const object = doc.toJS() as Manifest | null;
      if (object) objects.push({ ...object, file });
    }
  }
  return objects;
}

function parseSingle(path: string): unknown {
  const docs = parseAllDocuments(readFileSync(path, 'utf8'));
  if (docs.length !== 1 || docs[0]?.errors.length)
    throw new Error(`${path}: not one YAML document`);
  return docs[0]?.toJS();
}

interface PolicyRule {
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  verbs: string[];
}

interface Subject {
  kind: string;
  name: string;
  namespace?: string;
}

/** A request as RBAC sees it. */
export interface RbacRequest {
  verb: string;
  apiGroup: string;
  resource: string;
  subresource?: string;
  /** Absent for cluster-scoped objects. */
  namespace?: string;
  name?: string;
}

/** One grant: a verb on a resource (and name) of one rule, through one binding. */
export interface Grant {
  binding: string;
  /** The binding's namespace for a RoleBinding; undefined: cluster-wide. */
  namespace?: string;
  verb: string;
  apiGroup: string;
  resource: string;
  resourceName?: string;
}

export const grantKey = (g: Grant) =>
  `${g.verb} ${g.apiGroup || 'core'}/${g.resource}${g.resourceName ? ` ${g.resourceName}` : ''} via ${g.binding}${g.namespace ? ` in ${g.namespace}` : ''}`;

export const requestKey = (r: RbacRequest) =>
  `${r.verb} ${r.apiGroup || 'core'}/${r.resource}${r.subresource ? `/${r.subresource}` : ''}${r.namespace ? ` in ${r.namespace}` : ''}${r.name ? ` ${r.name}` : ''}`;

/** What a service account is granted by the RBAC objects among `manifests`. */
export class Rbac {
  readonly grants: Grant[] = [];

  constructor(manifests: Manifest[], serviceAccount: { namespace: string; name: string }) {
    const roles = new Map<string, PolicyRule[]>();
    for (const m of manifests) {
      if (m.kind === 'ClusterRole' || m.kind === 'Role') {
        const key = `${m.kind}/${m.metadata.namespace ?? ''}/${m.metadata.name}`;
        roles.set(key, (m.rules as PolicyRule[] | undefined) ?? []);
      }
    }
    for (const m of manifests) {
      if (m.kind !== 'RoleBinding' && m.kind !== 'ClusterRoleBinding') continue;
      const subjects = (m.subjects as Subject[] | undefined) ?? [];
      const bound = subjects.some(
        (s) =>
          s.kind === 'ServiceAccount' &&
          s.name === serviceAccount.name &&
          s.namespace === serviceAccount.namespace,
      );
      if (!bound) continue;
      const ref = m.roleRef as { kind: string; name: string };
      const namespace = m.kind === 'RoleBinding' ? m.metadata.namespace : undefined;
      if (m.kind === 'RoleBinding' && !namespace)
        throw new Error(`RoleBinding ${m.metadata.name} has no namespace`);
      const roleKey =
        ref.kind === 'ClusterRole' ? `ClusterRole//${ref.name}` : `Role/${namespace}/${ref.name}`;
      const rules = roles.get(roleKey);
      if (!rules) throw new Error(`${m.kind} ${m.metadata.name} refers to a missing ${roleKey}`);
      const binding = `${m.kind}/${m.metadata.name}`;
      for (const rule of rules) {
        for (const verb of rule.verbs)
          for (const apiGroup of rule.apiGroups ?? [])
            for (const resource of rule.resources ?? [])
              for (const resourceName of rule.resourceNames?.length
                ? rule.resourceNames
                : [undefined])
                this.grants.push({
                  binding,
                  ...(namespace ? { namespace } : {}),
                  verb,
                  apiGroup,
                  resource,
                  ...(resourceName ? { resourceName } : {}),
                });
      }
    }
  }

  /** The grants that allow `request` (empty: forbidden). */
  allowing(request: RbacRequest): Grant[] {
    const resource = request.subresource
      ? `${request.resource}/${request.subresource}`
      : request.resource;
    return this.grants.filter((g) => {
      // A RoleBinding grants namespaced objects in its namespace only.
      if (g.namespace !== undefined && g.namespace !== request.namespace) return false;
      if (g.verb !== '*' && g.verb !== request.verb) return false;
      if (g.apiGroup !== '*' && g.apiGroup !== request.apiGroup) return false;
      if (g.resource !== '*' && g.resource !== resource) return false;
      return g.resourceName === undefined || g.resourceName === request.name;
    });
  }
}

const groupOf = new Map(RESOURCES.map((r) => [r.plural, r.group]));

/**
 * A request the simulated API server logged, as the authorizer of a real one sees it. Exec is
 * a WebSocket GET: `get` on pods/exec, and from Kubernetes 1.35 also `create`
 * (AuthorizePodWebsocketUpgradeCreatePermission), so it counts as both.
 */
export function rbacRequestsOf(info: RequestInfo): RbacRequest[] {
  const resource = info.resource ?? '';
  const apiGroup = groupOf.get(resource);
  if (apiGroup === undefined) throw new Error(`unknown resource in the request log: ${resource}`);
  const base = {
    apiGroup,
    resource,
    ...(info.subresource ? { subresource: info.subresource } : {}),
    ...(info.namespace ? { namespace: info.namespace } : {}),
    ...(info.name ? { name: info.name } : {}),
  };
  if (info.verb === 'exec')
    return [
      { ...base, verb: 'get' },
      { ...base, verb: 'create' },
    ];
  if (info.verb === 'log') return [{ ...base, verb: 'get' }];
  return [{ ...base, verb: info.verb }];
}

/**
 * Requests compared with grants: the requests no grant allows (names included), and the grants
 * no request used — counted per verb and resource[/subresource] of each binding, not per name:
 * which member's pod a step touches can depend on timing (the StatefulSet controller may
 * delete a pod before the worker does), so the names of a rule are checked against the profile
 * instead (`resourceNames`). Both lists are sorted, readable keys.
 */
export function compareWithGrants(
  rbac: Rbac,
  requests: RbacRequest[],
): { missing: string[]; unused: string[] } {
  const used = new Set<string>();
  const missing = new Set<string>();
  for (const request of requests) {
    const allowing = rbac.allowing(request);
    if (allowing.length === 0) missing.add(requestKey(request));
    for (const g of allowing) used.add(grantKey({ ...g, resourceName: undefined }));
  }
  const granted = new Set(rbac.grants.map((g) => grantKey({ ...g, resourceName: undefined })));
  return {
    missing: [...missing].sort(),
    unused: [...granted].filter((k) => !used.has(k)).sort(),
  };
}

/** Every name the rules limit themselves to (resourceNames), sorted. */
export function resourceNames(rbac: Rbac): string[] {
  return [...new Set(rbac.grants.flatMap((g) => (g.resourceName ? [g.resourceName] : [])))].sort();
}
