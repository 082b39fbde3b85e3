/**
 * The simulated API server's object store: resource definitions (what discovery reports),
 * objects keyed by resource/namespace/name, resourceVersions, `Status` errors, label
 * selectors and the three patch formats.
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { clone, isRecord, type KObject, type LabelSelector, now } from './types.js';

export interface ResourceDef {
  group: '' | 'apps' | 'policy';
  version: 'v1';
  plural: string;
  singular: string;
  kind: string;
  namespaced: boolean;
  shortNames?: string[];
  verbs: string[];
  /** Subresources served, e.g. `scale`, `status`, `exec`, `log`. */
  subresources: string[];
  /** Whether spec changes bump metadata.generation. */
  generation: boolean;
}

const RW = ['create', 'delete', 'get', 'list', 'patch', 'update'];

export const RESOURCES: ResourceDef[] = [
  {
    group: '',
    version: 'v1',
    plural: 'namespaces',
    singular: 'namespace',
    kind: 'Namespace',
    namespaced: false,
    shortNames: ['ns'],
    verbs: RW,
    subresources: ['status'],
    generation: false,
  },
  {
    group: '',
    version: 'v1',
    plural: 'nodes',
    singular: 'node',
    kind: 'Node',
    namespaced: false,
    shortNames: ['no'],
    verbs: RW,
    subresources: ['status'],
    generation: false,
  },
  {
    group: '',
    version: 'v1',
    plural: 'pods',
    singular: 'pod',
    kind: 'Pod',
    namespaced: true,
    shortNames: ['po'],
    verbs: RW,
    subresources: ['exec', 'log', 'status'],
    generation: false,
  },
  {
    group: '',
    version: 'v1',
    plural: 'secrets',
    singular: 'secret',
    kind: 'Secret',
    namespaced: true,
    verbs: RW,
    subresources: [],
    generation: false,
  },
  {
    group: '',
    version: 'v1',
    plural: 'configmaps',
    singular: 'configmap',
    kind: 'ConfigMap',
    namespaced: true,
    shortNames: ['cm'],
    verbs: RW,
    subresources: [],
    generation: false,
  },
  {
    group: '',
    version: 'v1',
    plural: 'persistentvolumeclaims',
    singular: 'persistentvolumeclaim',
    kind: 'PersistentVolumeClaim',
    namespaced: true,
    shortNames: ['pvc'],
    verbs: RW,
    subresources: ['status'],
    generation: false,
  },
  {
    group: 'apps',
    version: 'v1',
    plural: 'statefulsets',
    singular: 'statefulset',
    kind: 'StatefulSet',
    namespaced: true,
    shortNames: ['sts'],
    verbs: RW,
    subresources: ['scale', 'status'],
    generation: true,
  },
  {
    group: 'apps',
    version: 'v1',
    plural: 'deployments',
    singular: 'deployment',
    kind: 'Deployment',
    namespaced: true,
    shortNames: ['deploy'],
    verbs: RW,
    subresources: ['scale', 'status'],
    generation: true,
  },
  {
    group: 'policy',
    version: 'v1',
    plural: 'poddisruptionbudgets',
    singular: 'poddisruptionbudget',
    kind: 'PodDisruptionBudget',
    namespaced: true,
    shortNames: ['pdb'],
    verbs: RW,
    subresources: ['status'],
    generation: true,
  },
];

export function resourceByPlural(group: string, plural: string): ResourceDef | undefined {
  return RESOURCES.find((r) => r.group === group && r.plural === plural);
}

export function apiVersionOf(def: ResourceDef): string {
  return def.group ? `${def.group}/${def.version}` : def.version;
}

/** `pods` or `statefulsets.apps`, as Kubernetes names a resource in messages. */
export function qualifiedName(def: ResourceDef): string {
  return def.group ? `${def.plural}.${def.group}` : def.plural;
}

/** An error the API answers with a `Status` object. */
export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }

  toStatus(): Record<string, unknown> {
    return {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: this.message,
      reason: this.reason,
      ...(this.details ? { details: this.details } : {}),
      code: this.code,
    };
  }

  static notFound(def: ResourceDef, name: string): ApiError {
    return new ApiError(404, 'NotFound', `${qualifiedName(def)} "${name}" not found`, {
      name,
      ...(def.group ? { group: def.group } : {}),
      kind: def.plural,
    });
  }

  static alreadyExists(def: ResourceDef, name: string): ApiError {
    return new ApiError(409, 'AlreadyExists', `${qualifiedName(def)} "${name}" already exists`, {
      name,
      ...(def.group ? { group: def.group } : {}),
      kind: def.plural,
    });
  }

  static conflict(def: ResourceDef, name: string): ApiError {
    return new ApiError(
      409,
      'Conflict',
      `Operation cannot be fulfilled on ${qualifiedName(def)} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
      { name, ...(def.group ? { group: def.group } : {}), kind: def.plural },
    );
  }

  /** 422 as the API server words it: `StatefulSet.apps "x" is invalid: spec: Forbidden: ...`. */
  static invalid(
    def: ResourceDef,
    name: string,
    causes: { field: string; message: string; reason?: string }[],
  ): ApiError {
    const text = causes.map((c) => `${c.field}: ${c.message}`).join(', ');
    const kind = def.group ? `${def.kind}.${def.group}` : def.kind;
    return new ApiError(422, 'Invalid', `${kind} "${name}" is invalid: ${text}`, {
      name,
      ...(def.group ? { group: def.group } : {}),
      kind: def.kind,
      causes: causes.map((c) => ({
        reason: c.reason ?? 'FieldValueInvalid',
        message: c.message,
        field: c.field,
      })),
    });
  }

  static badRequest(message: string): ApiError {
    return new ApiError(400, 'BadRequest', message);
  }
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function checkName(def: ResourceDef, name: string | undefined): string {
  if (!name) {
    throw ApiError.invalid(def, '', [
      { field: 'metadata.name', message: 'Required value: name or generateName is required' },
    ]);
  }
  if (name.length > 253 || !DNS_SUBDOMAIN.test(name)) {
    throw ApiError.invalid(def, name, [
      {
        field: 'metadata.name',
        message: `Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`,
      },
    ]);
  }
  return name;
}

export type ChangeType = 'ADDED' | 'MODIFIED' | 'DELETED';

/** In-memory object store. Emits `change` (type, def, object) after every write. */
export class Store extends EventEmitter {
  private readonly objects = new Map<string, KObject>();
  private rv = 1000;

  private key(def: ResourceDef, namespace: string | undefined, name: string): string {
    return `${def.group}/${def.plural}/${def.namespaced ? (namespace ?? '') : ''}/${name}`;
  }

  nextResourceVersion(): string {
    this.rv += 1;
    return String(this.rv);
  }

  currentResourceVersion(): string {
    return String(this.rv);
  }

  /** A copy of the object, or undefined. */
  get<T extends KObject = KObject>(
    def: ResourceDef,
    namespace: string | undefined,
    name: string,
  ): T | undefined {
    const o = this.objects.get(this.key(def, namespace, name));
    return o ? (clone(o) as T) : undefined;
  }

  mustGet<T extends KObject = KObject>(
    def: ResourceDef,
    namespace: string | undefined,
    name: string,
  ): T {
    const o = this.get<T>(def, namespace, name);
    if (!o) throw ApiError.notFound(def, name);
    return o;
  }

  /** Copies of all objects of a resource, optionally in one namespace, sorted by name. */
  list<T extends KObject = KObject>(def: ResourceDef, namespace?: string): T[] {
    const prefix = `${def.group}/${def.plural}/${def.namespaced && namespace !== undefined ? `${namespace}/` : ''}`;
    const out: T[] = [];
    for (const [k, v] of this.objects) {
      if (k.startsWith(prefix)) out.push(clone(v) as T);
    }
    out.sort((a, b) =>
      `${a.metadata.namespace ?? ''}/${a.metadata.name ?? ''}`.localeCompare(
        `${b.metadata.namespace ?? ''}/${b.metadata.name ?? ''}`,
      ),
    );
    return out;
  }

  /** Stores a new object, filling uid, resourceVersion, creationTimestamp, generation. */
  create<T extends KObject>(def: ResourceDef, obj: T): T {
    const o = clone(obj);
    const name = checkName(def, o.metadata.name);
    const k = this.key(def, o.metadata.namespace, name);
    if (this.objects.has(k)) throw ApiError.alreadyExists(def, name);
    o.apiVersion = apiVersionOf(def);
    o.kind = def.kind;
    if (!def.namespaced) delete o.metadata.namespace;
    o.metadata.uid = randomUUID();
    o.metadata.creationTimestamp = now();
    o.metadata.resourceVersion = this.nextResourceVersion();
    if (def.generation) o.metadata.generation = 1;
    this.objects.set(k, o);
    this.emit('change', 'ADDED', def, clone(o));
    return clone(o);
  }

  /**
   * Replaces an object. If `obj.metadata.resourceVersion` is set it must match (optimistic
   * concurrency). Bumps generation when `spec` changed. Returns the stored copy; writes that
   * change nothing keep the resourceVersion.
   */
  update<T extends KObject>(def: ResourceDef, obj: T): T {
    const name = obj.metadata.name ?? '';
    const k = this.key(def, obj.metadata.namespace, name);
    const old = this.objects.get(k);
    if (!old) throw ApiError.notFound(def, name);
    if (
      obj.metadata.resourceVersion &&
      obj.metadata.resourceVersion !== old.metadata.resourceVersion
    ) {
      throw ApiError.conflict(def, name);
    }
    const o = clone(obj);
    o.apiVersion = apiVersionOf(def);
    o.kind = def.kind;
    o.metadata.uid = old.metadata.uid;
    o.metadata.creationTimestamp = old.metadata.creationTimestamp;
    if (!def.namespaced) delete o.metadata.namespace;
    if (old.metadata.deletionTimestamp) {
      o.metadata.deletionTimestamp = old.metadata.deletionTimestamp;
      o.metadata.deletionGracePeriodSeconds = old.metadata.deletionGracePeriodSeconds;
    }
    if (def.generation) {
      const gen = old.metadata.generation ?? 1;
      o.metadata.generation = JSON.stringify(o.spec) !== JSON.stringify(old.spec) ? gen + 1 : gen;
    }
    o.metadata.resourceVersion = old.metadata.resourceVersion;
    if (JSON.stringify(o) === JSON.stringify(old)) return clone(old) as T;
    o.metadata.resourceVersion = this.nextResourceVersion();
    this.objects.set(k, o);
    this.emit('change', 'MODIFIED', def, clone(o));
    return clone(o);
  }

  /** Sets deletionTimestamp / deletionGracePeriodSeconds (graceful deletion). */
  markDeleted<T extends KObject>(def: ResourceDef, obj: T): T {
    const name = obj.metadata.name ?? '';
    const k = this.key(def, obj.metadata.namespace, name);
    const old = this.objects.get(k);
    if (!old) throw ApiError.notFound(def, name);
    old.metadata.deletionTimestamp = obj.metadata.deletionTimestamp;
    old.metadata.deletionGracePeriodSeconds = obj.metadata.deletionGracePeriodSeconds;
    old.metadata.resourceVersion = this.nextResourceVersion();
    this.emit('change', 'MODIFIED', def, clone(old));
    return clone(old) as T;
  }

  /** Removes an object outright; returns it. */
  remove<T extends KObject = KObject>(
    def: ResourceDef,
    namespace: string | undefined,
    name: string,
  ): T {
    const k = this.key(def, namespace, name);
    const old = this.objects.get(k);
    if (!old) throw ApiError.notFound(def, name);
    this.objects.delete(k);
    old.metadata.resourceVersion = this.nextResourceVersion();
    this.emit('change', 'DELETED', def, clone(old));
    return clone(old) as T;
  }
}

/** Parses a label selector string (`a=b,c!=d,e in (f,g),!h,i`). */
export function parseLabelSelector(s: string): (labels: Record<string, string>) => boolean {
  const tests: ((l: Record<string, string>) => boolean)[] = [];
  const parts = s.match(/([^,(]+(\([^)]*\))?)/g) ?? [];
  for (const raw of parts) {
    const p = raw.trim();
    if (!p) continue;
    let m = p.match(/^([^\s!=]+)\s*(==|=|!=)\s*(.*)$/);
    if (m) {
      const [, key = '', op, value = ''] = m;
      tests.push(op === '!=' ? (l) => l[key] !== value.trim() : (l) => l[key] === value.trim());
      continue;
    }
    m = p.match(/^(\S+)\s+(in|notin)\s*\(([^)]*)\)$/);
    if (m) {
      const [, key = '', op, list = ''] = m;
      const values = list.split(',').map((v) => v.trim());
      tests.push(
        op === 'in'
          ? (l) => l[key] !== undefined && values.includes(l[key] ?? '')
          : (l) => l[key] === undefined || !values.includes(l[key] ?? ''),
      );
      continue;
    }
    if (p.startsWith('!')) {
      const key = p.slice(1).trim();
      tests.push((l) => l[key] === undefined);
      continue;
    }
    if (/^[^\s!=(),]+$/.test(p)) {
      tests.push((l) => l[p] !== undefined);
      continue;
    }
    throw ApiError.badRequest(`unable to parse requirement: found '${p}'`);
  }
  return (labels) => tests.every((t) => t(labels));
}

/** Whether `labels` match a LabelSelector object. An empty selector matches everything. */
export function matchesSelector(
  selector: LabelSelector | undefined,
  labels: Record<string, string> = {},
): boolean {
  if (!selector) return true;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[k] !== v) return false;
  }
  for (const e of selector.matchExpressions ?? []) {
    const has = labels[e.key] !== undefined;
    const value = labels[e.key] ?? '';
    const values = e.values ?? [];
    if (e.operator === 'In' && !(has && values.includes(value))) return false;
    if (e.operator === 'NotIn' && has && values.includes(value)) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

/** A LabelSelector as the string form (`a=b,c=d`) used in Scale.status.selector. */
export function selectorString(selector: LabelSelector | undefined): string {
  return Object.entries(selector?.matchLabels ?? {})
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isRecord(patch)) return clone(patch);
  const out: Record<string, unknown> = isRecord(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

/** Lists whose elements strategic merge patch merges by a key (the rest are replaced). */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  env: 'name',
  ports: 'containerPort',
  imagePullSecrets: 'name',
  conditions: 'type',
  volumeClaimTemplates: 'metadata.name',
  ownerReferences: 'uid',
};

function keyOf(item: unknown, keyPath: string): unknown {
  let cur: unknown = item;
  for (const part of keyPath.split('.')) cur = isRecord(cur) ? cur[part] : undefined;
  return cur;
}

/** Strategic merge patch, for the list merge keys above; directives `$patch: delete|replace` honoured. */
export function strategicMergePatch(target: unknown, patch: unknown, field = ''): unknown {
  if (Array.isArray(patch)) {
    const mk = MERGE_KEYS[field];
    if (!mk || !Array.isArray(target)) return clone(patch);
    const out = [...target];
    for (const item of patch) {
      const key = keyOf(item, mk);
      const idx = out.findIndex((t) => key !== undefined && keyOf(t, mk) === key);
      if (isRecord(item) && item.$patch === 'delete') {
        if (idx >= 0) out.splice(idx, 1);
      } else if (idx >= 0) {
        out[idx] = strategicMergePatch(out[idx], item);
      } else {
        out.push(strategicMergePatch(undefined, item));
      }
    }
    return out;
  }
  if (!isRecord(patch)) return clone(patch);
  if (patch.$patch === 'replace') {
    const { $patch: _, ...rest } = patch;
    return clone(rest);
  }
  const out: Record<string, unknown> = isRecord(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (k.startsWith('$setElementOrder/') || k === '$retainKeys' || k === '$patch') continue;
    if (k.startsWith('$deleteFromPrimitiveList/')) continue;
    if (v === null) delete out[k];
    else out[k] = strategicMergePatch(out[k], v, k);
  }
  return out;
}

function pointer(path: string): string[] {
  if (path === '') return [];
  if (!path.startsWith('/')) throw ApiError.badRequest(`invalid JSON pointer "${path}"`);
  return path
    .slice(1)
    .split('/')
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** RFC 6902 JSON patch (add, remove, replace, test, copy, move). */
export function jsonPatch(target: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw ApiError.badRequest('json patch must be an array of operations');
  let doc = clone(target);
  const resolve = (parts: string[]): { parent: unknown; last: string } => {
    let cur: unknown = doc;
    for (const p of parts.slice(0, -1)) {
      if (Array.isArray(cur)) cur = cur[Number(p)];
      else if (isRecord(cur)) cur = cur[p];
      else cur = undefined;
      if (cur === undefined)
        throw new ApiError(422, 'Invalid', `jsonpatch: path not found: /${parts.join('/')}`);
    }
    return { parent: cur, last: parts[parts.length - 1] ?? '' };
  };
  const getAt = (path: string): unknown => {
    const parts = pointer(path);
    if (parts.length === 0) return doc;
    const { parent, last } = resolve(parts);
    if (Array.isArray(parent)) return parent[Number(last)];
    return isRecord(parent) ? parent[last] : undefined;
  };
  const removeAt = (path: string): void => {
    const { parent, last } = resolve(pointer(path));
    if (Array.isArray(parent)) parent.splice(Number(last), 1);
    else if (isRecord(parent) && last in parent) delete parent[last];
    else throw new ApiError(422, 'Invalid', `jsonpatch remove: path not found: ${path}`);
  };
  const addAt = (path: string, value: unknown, replace: boolean): void => {
    const parts = pointer(path);
    if (parts.length === 0) {
      doc = clone(value);
      return;
    }
    const { parent, last } = resolve(parts);
    if (Array.isArray(parent)) {
      const i = last === '-' ? parent.length : Number(last);
      if (replace) parent[i] = clone(value);
      else parent.splice(i, 0, clone(value));
    } else if (isRecord(parent)) {
      if (replace && !(last in parent))
        throw new ApiError(422, 'Invalid', `jsonpatch replace: path not found: ${path}`);
      parent[last] = clone(value);
    } else throw new ApiError(422, 'Invalid', `jsonpatch: path not found: ${path}`);
  };
  for (const op of ops) {
    if (!isRecord(op) || typeof op.path !== 'string')
      throw ApiError.badRequest('invalid json patch operation');
    switch (op.op) {
      case 'add':
        addAt(op.path, op.value, false);
        break;
      case 'replace':
        addAt(op.path, op.value, true);
        break;
      case 'remove':
        removeAt(op.path);
        break;
      case 'test':
        if (JSON.stringify(getAt(op.path)) !== JSON.stringify(op.value)) {
          throw new ApiError(422, 'Invalid', `jsonpatch test operation failed at ${op.path}`);
        }
        break;
      case 'copy':
        addAt(op.path, getAt(String(op.from)), false);
        break;
      case 'move': {
        const v = getAt(String(op.from));
        removeAt(String(op.from));
        addAt(op.path, v, false);
        break;
      }
      default:
        throw ApiError.badRequest(`unknown json patch op ${String(op.op)}`);
    }
  }
  return doc;
}
