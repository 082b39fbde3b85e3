/**
 * The HTTPS Kubernetes API: discovery, CRUD + patch + watch for the resources in
 * store.ts, `scale` / `status` / `log` / `exec` subresources, server-side Table output for
 * kubectl, `Status` errors, bearer-token authentication and fault injection.
 */
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocketServer } from 'ws';
import { deletePod } from './controllers.js';
import { EXEC_PROTOCOLS, failExec, runExec } from './exec.js';
import type { Faults, RequestInfo } from './faults.js';
import type { Kubelet } from './kubelet.js';
import { spawnSandboxed } from './sandbox.js';
import {
  ApiError,
  apiVersionOf,
  type ChangeType,
  jsonPatch,
  matchesSelector,
  mergePatch,
  parseLabelSelector,
  RESOURCES,
  type ResourceDef,
  resourceByPlural,
  type Store,
  selectorString,
  strategicMergePatch,
} from './store.js';
import { clone, isRecord, type KObject, type Pod, type Secret } from './types.js';

export interface ApiServerOptions {
  cert: string;
  key: string;
  token: string;
  /** Called when an exec session starts; the returned function is called when it ends. */
  onExec?: (pod: Pod, container: string, command: string[]) => () => void;
}

interface Route {
  def: ResourceDef;
  namespace?: string;
  name?: string;
  subresource?: string;
  watch: boolean;
}

const NAMESPACES = RESOURCES.find((r) => r.plural === 'namespaces') as ResourceDef;
const PODS = RESOURCES.find((r) => r.plural === 'pods') as ResourceDef;

export class ApiServer {
  /** Every request served, in order: what tests check (RBAC, metadata-only lists). */
  readonly requests: RequestInfo[] = [];
  private server?: Server;
  private readonly wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    handleProtocols: (offered) => {
      for (const p of offered) if (EXEC_PROTOCOLS.includes(p)) return p;
      return false;
    },
  });
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(
    private readonly store: Store,
    private readonly kubelet: Kubelet,
    private readonly faults: Faults,
    private readonly options: ApiServerOptions,
  ) {}

  async listen(): Promise<number> {
    const server = createServer({ cert: this.options.cert, key: this.options.key }, (req, res) => {
      this.handle(req, res).catch((e: unknown) => {
        const err =
          e instanceof ApiError
            ? e
            : new ApiError(500, 'InternalError', e instanceof Error ? e.message : String(e));
        if (!res.headersSent) this.sendStatus(res, err);
        else res.destroy();
      });
    });
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    server.on('secureConnection', (s) => {
      s.on('error', () => {});
    });
    server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      this.handleUpgrade(req, socket, head).catch((e: unknown) => {
        const err =
          e instanceof ApiError
            ? e
            : new ApiError(500, 'InternalError', e instanceof Error ? e.message : String(e));
        rawStatus(socket, err);
      });
    });
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    return this.port;
  }

  async close(): Promise<void> {
    for (const c of this.wss.clients) c.terminate();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) =>
      this.server ? this.server.close(() => resolve()) : resolve(),
    );
  }

  private authorized(req: IncomingMessage): boolean {
    return req.headers.authorization === `Bearer ${this.options.token}`;
  }

  private sendJson(
    res: ServerResponse,
    code: number,
    body: unknown,
    headers: Record<string, string> = {},
  ): void {
    const text = JSON.stringify(body);
    res.writeHead(code, {
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(text),
      ...headers,
    });
    res.end(text);
  }

  private sendStatus(
    res: ServerResponse,
    err: ApiError,
    headers: Record<string, string> = {},
  ): void {
    this.sendJson(res, err.code, err.toStatus(), headers);
  }

  private async injected(info: RequestInfo): Promise<ApiError | undefined> {
    this.requests.push(info);
    const delay = this.faults.latencyFor(info);
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    const code = this.faults.takeFailure(info);
    if (code === undefined) return undefined;
    if (code === 429)
      return new ApiError(
        429,
        'TooManyRequests',
        'sim: injected fault: too many requests, please try again later',
        { retryAfterSeconds: 1 },
      );
    if (code === 503)
      return new ApiError(503, 'ServiceUnavailable', 'sim: injected fault: service unavailable');
    if (code === 504) return new ApiError(504, 'Timeout', 'sim: injected fault: timeout');
    if (code === 401) return new ApiError(401, 'Unauthorized', 'Unauthorized');
    if (code === 403) {
      // The real API server's wording: who, which verb, which resource, where.
      const what = info.subresource ? `${info.resource}/${info.subresource}` : info.resource;
      return new ApiError(
        403,
        'Forbidden',
        `${info.resource}${info.name ? ` "${info.name}"` : ''} is forbidden: User "sim-admin" cannot ${info.verb} resource "${what}"` +
          `${info.namespace ? ` in the namespace "${info.namespace}"` : ''} (sim: injected fault)`,
      );
    }
    return new ApiError(500, 'InternalError', 'sim: injected fault: internal error');
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'https://localhost');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    if (['/healthz', '/readyz', '/livez'].includes(path)) {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end('ok');
      return;
    }
    if (!this.authorized(req)) {
      this.sendStatus(res, new ApiError(401, 'Unauthorized', 'Unauthorized'));
      return;
    }
    const discovery = this.discovery(path);
    if (discovery) {
      this.sendJson(res, 200, discovery);
      return;
    }
    const route = parseRoute(path);
    if (!route) {
      this.sendStatus(
        res,
        new ApiError(404, 'NotFound', 'the server could not find the requested resource'),
      );
      return;
    }
    const method = req.method ?? 'GET';
    const watch =
      route.watch ||
      url.searchParams.get('watch') === 'true' ||
      url.searchParams.get('watch') === '1';
    const verb = verbOf(method, route, watch);
    const as = /;as=([A-Za-z]+)/.exec(req.headers.accept ?? '')?.[1];
    const info: RequestInfo = {
      verb,
      resource: route.def.plural,
      ...(route.subresource ? { subresource: route.subresource } : {}),
      ...(route.namespace ? { namespace: route.namespace } : {}),
      ...(route.name ? { name: route.name } : {}),
      ...(as ? { as } : {}),
    };
    const fault = await this.injected(info);
    if (fault) {
      this.sendStatus(res, fault, fault.code === 429 ? { 'Retry-After': '1' } : {});
      return;
    }
    const body = ['POST', 'PUT', 'PATCH', 'DELETE'].includes(method)
      ? await readBody(req)
      : undefined;
    const { def } = route;
    const ns = route.namespace;
    if (route.subresource === 'exec') {
      throw ApiError.badRequest(
        'exec needs a WebSocket upgrade (v5.channel.k8s.io or v4.channel.k8s.io)',
      );
    }
    if (route.subresource === 'log') {
      await this.log(res, route, url);
      return;
    }
    if (
      def.namespaced &&
      ns &&
      def !== NAMESPACES &&
      method === 'POST' &&
      !this.store.get(NAMESPACES, undefined, ns)
    ) {
      throw new ApiError(404, 'NotFound', `namespaces "${ns}" not found`, {
        name: ns,
        kind: 'namespaces',
      });
    }
    const table = (req.headers.accept ?? '').includes('as=Table');
    switch (verb) {
      case 'list': {
        const items = this.filtered(route, url);
        if (table) {
          this.sendJson(res, 200, toTable(def, items, this.store.currentResourceVersion()));
          return;
        }
        if (as === 'PartialObjectMetadataList') {
          // Names and metadata only, as the real API server answers: no data, no spec.
          this.sendJson(res, 200, {
            kind: 'PartialObjectMetadataList',
            apiVersion: 'meta.k8s.io/v1',
            metadata: { resourceVersion: this.store.currentResourceVersion() },
            items: items.map((o) => ({
              kind: 'PartialObjectMetadata',
              apiVersion: 'meta.k8s.io/v1',
              metadata: o.metadata,
            })),
          });
          return;
        }
        this.sendJson(res, 200, {
          kind: `${def.kind}List`,
          apiVersion: apiVersionOf(def),
          metadata: { resourceVersion: this.store.currentResourceVersion() },
          items,
        });
        return;
      }
      case 'watch':
        this.watch(req, res, route, url);
        return;
      case 'get': {
        const obj = this.store.mustGet(def, ns, route.name ?? '');
        if (route.subresource === 'scale') {
          this.sendJson(res, 200, toScale(obj));
          return;
        }
        if (table) {
          this.sendJson(res, 200, toTable(def, [obj], this.store.currentResourceVersion()));
          return;
        }
        this.sendJson(res, 200, obj);
        return;
      }
      case 'create': {
        const created = this.create(
          route,
          parseJson(body),
          url.searchParams.get('dryRun') === 'All',
        );
        this.sendJson(res, 201, created);
        return;
      }
      case 'update': {
        const updated = this.replace(route, parseJson(body));
        this.sendJson(res, 200, updated);
        return;
      }
      case 'patch': {
        const patched = this.patch(route, req.headers['content-type'] ?? '', parseJson(body));
        this.sendJson(res, 200, patched);
        return;
      }
      case 'delete': {
        const options = body && body.length > 0 ? parseJson(body) : {};
        const graceParam = url.searchParams.get('gracePeriodSeconds');
        const grace =
          graceParam !== null
            ? Number(graceParam)
            : isRecord(options) && typeof options.gracePeriodSeconds === 'number'
              ? options.gracePeriodSeconds
              : undefined;
        const precondition =
          isRecord(options) && isRecord(options.preconditions) ? options.preconditions : undefined;
        this.sendJson(res, 200, this.delete(route, grace, precondition));
        return;
      }
      default:
        throw new ApiError(
          405,
          'MethodNotAllowed',
          `the server does not allow this method on the requested resource`,
        );
    }
  }

  // ---------------------------------------------------------------- discovery

  private discovery(path: string): unknown {
    if (path === '/version') {
      return {
        major: '1',
        minor: '31',
        gitVersion: 'v1.31.0-sim',
        gitCommit: '0000000000000000000000000000000000000000',
        gitTreeState: 'clean',
        buildDate: '2024-08-13T00:00:00Z',
        goVersion: 'go1.22.5',
        compiler: 'gc',
        platform: 'linux/amd64',
      };
    }
    if (path === '/api') {
      return {
        kind: 'APIVersions',
        versions: ['v1'],
        serverAddressByClientCIDRs: [
          { clientCIDR: '0.0.0.0/0', serverAddress: `127.0.0.1:${this.port}` },
        ],
      };
    }
    const group = (name: string) => ({
      name,
      versions: [{ groupVersion: `${name}/v1`, version: 'v1' }],
      preferredVersion: { groupVersion: `${name}/v1`, version: 'v1' },
    });
    if (path === '/apis')
      return { kind: 'APIGroupList', apiVersion: 'v1', groups: [group('apps'), group('policy')] };
    if (path === '/apis/apps' || path === '/apis/policy') {
      return { kind: 'APIGroup', apiVersion: 'v1', ...group(path.slice(6)) };
    }
    const m = path.match(/^\/(?:api\/v1|apis\/(apps|policy)\/v1)$/);
    if (m) {
      const g = m[1] ?? '';
      const resources: Record<string, unknown>[] = [];
      for (const r of RESOURCES.filter((x) => x.group === g)) {
        resources.push({
          name: r.plural,
          singularName: r.singular,
          namespaced: r.namespaced,
          kind: r.kind,
          verbs:
            r.plural === 'pods' || r.plural === 'secrets'
              ? [...r.verbs, 'deletecollection', 'watch']
              : [...r.verbs, 'watch'],
          ...(r.shortNames ? { shortNames: r.shortNames } : {}),
          ...(r.group === 'apps'
            ? { categories: ['all'] }
            : r.plural === 'pods'
              ? { categories: ['all'] }
              : {}),
        });
        for (const sub of r.subresources) {
          if (sub === 'scale') {
            resources.push({
              name: `${r.plural}/scale`,
              singularName: '',
              namespaced: true,
              group: 'autoscaling',
              version: 'v1',
              kind: 'Scale',
              verbs: ['get', 'patch', 'update'],
            });
          } else if (sub === 'status') {
            resources.push({
              name: `${r.plural}/status`,
              singularName: '',
              namespaced: r.namespaced,
              kind: r.kind,
              verbs: ['get', 'patch', 'update'],
            });
          } else if (sub === 'exec') {
            resources.push({
              name: 'pods/exec',
              singularName: '',
              namespaced: true,
              kind: 'PodExecOptions',
              verbs: ['create', 'get'],
            });
          } else if (sub === 'log') {
            resources.push({
              name: 'pods/log',
              singularName: '',
              namespaced: true,
              kind: 'Pod',
              verbs: ['get'],
            });
          }
        }
      }
      return {
        kind: 'APIResourceList',
        apiVersion: 'v1',
        groupVersion: g ? `${g}/v1` : 'v1',
        resources,
      };
    }
    return undefined;
  }

  // ---------------------------------------------------------------- reads

  private filtered(route: Route, url: URL): KObject[] {
    const ls = url.searchParams.get('labelSelector');
    const fs = url.searchParams.get('fieldSelector');
    const labelTest = ls ? parseLabelSelector(ls) : () => true;
    const fieldTests = (fs ?? '')
      .split(',')
      .filter(Boolean)
      .map((t) => {
        const m = t.match(/^([^!=]+)(==|=|!=)(.*)$/);
        if (!m) throw ApiError.badRequest(`invalid field selector ${t}`);
        const [, field = '', op, value = ''] = m;
        return (o: KObject) => {
          const actual = String(fieldValue(o, field) ?? '');
          return op === '!=' ? actual !== value : actual === value;
        };
      });
    return this.store
      .list(route.def, route.namespace)
      .filter((o) => labelTest(o.metadata.labels ?? {}) && fieldTests.every((t) => t(o)));
  }

  private watch(req: IncomingMessage, res: ServerResponse, route: Route, url: URL): void {
    const ls = url.searchParams.get('labelSelector');
    const labelTest = ls ? parseLabelSelector(ls) : () => true;
    const fromRv = url.searchParams.get('resourceVersion');
    const fieldName =
      url.searchParams.get('fieldSelector')?.match(/^metadata\.name=(.+)$/)?.[1] ?? route.name;
    const wanted = (o: KObject) =>
      (!route.namespace || o.metadata.namespace === route.namespace) &&
      (!fieldName || o.metadata.name === fieldName) &&
      labelTest(o.metadata.labels ?? {});
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    const write = (type: ChangeType, o: KObject) =>
      res.write(`${JSON.stringify({ type, object: o })}\n`);
    if (!fromRv || fromRv === '0') {
      for (const o of this.store.list(route.def, route.namespace)) if (wanted(o)) write('ADDED', o);
    }
    const listener = (type: ChangeType, def: ResourceDef, o: KObject) => {
      if (def === route.def && wanted(o)) write(type, o);
    };
    this.store.on('change', listener);
    const timeout = Number(url.searchParams.get('timeoutSeconds') ?? '1800');
    const timer = setTimeout(() => res.end(), timeout * 1000);
    timer.unref();
    const stop = () => {
      clearTimeout(timer);
      this.store.off('change', listener);
    };
    req.once('close', stop);
    res.once('close', stop);
  }

  private async log(res: ServerResponse, route: Route, url: URL): Promise<void> {
    const pod = this.store.mustGet<Pod>(PODS, route.namespace, route.name ?? '');
    const container = url.searchParams.get('container') ?? pod.spec.containers[0]?.name ?? '';
    if (!pod.spec.containers.some((c) => c.name === container)) {
      throw ApiError.badRequest(`container ${container} is not valid for pod ${route.name}`);
    }
    const file = this.kubelet.logPath(
      route.namespace ?? '',
      route.name ?? '',
      container,
      url.searchParams.get('previous') === 'true',
    );
    if (!file)
      throw ApiError.badRequest(
        `container "${container}" in pod "${route.name}" is waiting to start`,
      );
    let text = await readFile(file, 'utf8').catch(() => '');
    const tail = url.searchParams.get('tailLines');
    if (tail)
      text = text
        .split('\n')
        .slice(-Number(tail) - 1)
        .join('\n');
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end(text);
  }

  // ---------------------------------------------------------------- writes

  private create(route: Route, body: unknown, dryRun: boolean): KObject {
    const { def } = route;
    if (route.subresource)
      throw new ApiError(405, 'MethodNotAllowed', 'cannot create a subresource here');
    if (!isRecord(body) || !isRecord(body.metadata)) {
      throw ApiError.badRequest(
        `Object 'metadata' is missing in '${JSON.stringify(body).slice(0, 200)}'`,
      );
    }
    const obj = clone(body) as unknown as KObject;
    if (obj.kind !== undefined && obj.kind !== def.kind) {
      throw ApiError.badRequest(
        `the API version in the data (${String(obj.apiVersion)}) or kind (${obj.kind}) does not match the expected ${def.kind}`,
      );
    }
    if (obj.metadata.resourceVersion) {
      throw ApiError.badRequest('resourceVersion should not be set on objects to be created');
    }
    if (def.namespaced) {
      if (obj.metadata.namespace && route.namespace && obj.metadata.namespace !== route.namespace) {
        throw ApiError.badRequest(
          'the namespace of the provided object does not match the namespace sent on the request',
        );
      }
      obj.metadata.namespace = route.namespace ?? obj.metadata.namespace ?? 'default';
    }
    if (!obj.metadata.name && obj.metadata.generateName) {
      obj.metadata.name = `${obj.metadata.generateName}${Math.random().toString(36).slice(2, 7)}`;
    }
    delete obj.metadata.uid;
    delete obj.metadata.deletionTimestamp;
    delete obj.metadata.creationTimestamp;
    delete obj.status;
    validate(def, obj);
    if (def.plural === 'pods') {
      const pod = obj as Pod;
      pod.spec.restartPolicy ??= 'Always';
      pod.spec.terminationGracePeriodSeconds ??= 30;
      pod.spec.dnsPolicy ??= 'ClusterFirst';
      pod.spec.schedulerName ??= 'default-scheduler';
      pod.status = { phase: 'Pending', qosClass: 'BestEffort' };
    }
    if (def.plural === 'secrets') normalizeSecret(obj as Secret);
    if (def.plural === 'namespaces') obj.status = { phase: 'Active' };
    if (def.plural === 'statefulsets' || def.plural === 'deployments') {
      const spec = obj.spec as Record<string, unknown>;
      spec.replicas ??= 1;
      if (def.plural === 'statefulsets') {
        spec.podManagementPolicy ??= 'OrderedReady';
        spec.updateStrategy ??= { type: 'RollingUpdate', rollingUpdate: { partition: 0 } };
      }
    }
    if (dryRun) return obj;
    return this.store.create(def, obj);
  }

  private replace(route: Route, body: unknown): object {
    const { def } = route;
    const current = this.store.mustGet(def, route.namespace, route.name ?? '');
    if (!isRecord(body) || !isRecord(body.metadata))
      throw ApiError.badRequest('body must be an object with metadata');
    if (route.subresource === 'scale') {
      const spec = isRecord(body.spec) ? body.spec : {};
      const rv = body.metadata.resourceVersion;
      if (typeof rv === 'string' && rv && rv !== current.metadata.resourceVersion) {
        throw ApiError.conflict(def, route.name ?? '');
      }
      return toScale(this.setReplicas(def, current, spec.replicas));
    }
    const obj = clone(body) as unknown as KObject;
    if (obj.metadata.name !== route.name)
      throw ApiError.badRequest('the name of the object does not match the name on the URL');
    if (def.namespaced) obj.metadata.namespace = route.namespace;
    if (route.subresource === 'status') {
      const next = clone(current);
      next.status = obj.status;
      next.metadata.resourceVersion =
        obj.metadata.resourceVersion ?? current.metadata.resourceVersion;
      return this.store.update(def, next);
    }
    obj.status = current.status;
    validate(def, obj);
    if (def.plural === 'secrets') normalizeSecret(obj as Secret);
    if (def.plural === 'pods') checkPodUpdate(current as Pod, obj as Pod);
    if (def.plural === 'statefulsets') checkStatefulSetUpdate(def, current, obj);
    return this.store.update(def, obj);
  }

  private setReplicas(def: ResourceDef, current: KObject, replicas: unknown): KObject {
    if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0) {
      throw ApiError.invalid(def, current.metadata.name ?? '', [
        {
          field: 'spec.replicas',
          message: `Invalid value: ${JSON.stringify(replicas)}: must be greater than or equal to 0`,
        },
      ]);
    }
    const next = clone(current);
    (next.spec as Record<string, unknown>).replicas = replicas;
    return this.store.update(def, next);
  }

  private patch(route: Route, contentType: string, patch: unknown): object {
    const { def } = route;
    const current = this.store.mustGet(def, route.namespace, route.name ?? '');
    const type = contentType.split(';')[0]?.trim() ?? '';
    const apply = (target: unknown): unknown => {
      switch (type) {
        case 'application/merge-patch+json':
          return mergePatch(target, patch);
        case 'application/strategic-merge-patch+json':
          return strategicMergePatch(target, patch);
        case 'application/json-patch+json':
          return jsonPatch(target, patch);
        default:
          throw new ApiError(
            415,
            'UnsupportedMediaType',
            `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json`,
          );
      }
    };
    if (route.subresource === 'scale') {
      const scale = apply(toScale(current));
      const spec = isRecord(scale) && isRecord(scale.spec) ? scale.spec : {};
      return toScale(this.setReplicas(def, current, spec.replicas));
    }
    const next = apply(current);
    if (!isRecord(next) || !isRecord(next.metadata))
      throw ApiError.badRequest('patch removed metadata');
    const obj = next as unknown as KObject;
    if (obj.metadata.name !== current.metadata.name)
      throw ApiError.badRequest('a patch cannot change the name');
    if (route.subresource === 'status') {
      const withStatus = clone(current);
      withStatus.status = obj.status;
      return this.store.update(def, withStatus);
    }
    obj.status = current.status;
    if (obj.metadata.resourceVersion === current.metadata.resourceVersion)
      delete obj.metadata.resourceVersion;
    validate(def, obj);
    if (def.plural === 'secrets') normalizeSecret(obj as Secret);
    if (def.plural === 'pods') checkPodUpdate(current as Pod, obj as Pod);
    if (def.plural === 'statefulsets') checkStatefulSetUpdate(def, current, obj);
    return this.store.update(def, obj);
  }

  private delete(
    route: Route,
    grace: number | undefined,
    precondition: Record<string, unknown> | undefined,
  ): KObject {
    const { def } = route;
    if (route.subresource)
      throw new ApiError(405, 'MethodNotAllowed', 'cannot delete a subresource');
    const current = this.store.mustGet(def, route.namespace, route.name ?? '');
    if (precondition?.uid && precondition.uid !== current.metadata.uid) {
      throw new ApiError(
        409,
        'Conflict',
        `Precondition failed: UID in precondition: ${String(precondition.uid)}, UID in object meta: ${current.metadata.uid}`,
      );
    }
    if (
      precondition?.resourceVersion &&
      precondition.resourceVersion !== current.metadata.resourceVersion
    ) {
      throw ApiError.conflict(def, route.name ?? '');
    }
    if (def.plural === 'pods') {
      return deletePod(this.store, current as Pod, grace) ?? current;
    }
    if (def.plural === 'namespaces') {
      const next = clone(current);
      next.metadata.deletionTimestamp = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
      next.metadata.deletionGracePeriodSeconds = 0;
      this.store.markDeleted(def, next);
      const marked = this.store.mustGet(def, undefined, route.name ?? '');
      marked.status = { phase: 'Terminating' };
      delete marked.metadata.resourceVersion;
      return this.store.update(def, marked);
    }
    if (def.plural === 'persistentvolumeclaims') {
      const inUse = this.store
        .list<Pod>(PODS, route.namespace)
        .some((p) =>
          (p.spec.volumes ?? []).some((v) => v.persistentVolumeClaim?.claimName === route.name),
        );
      if (inUse) {
        const next = clone(current);
        next.metadata.deletionTimestamp = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
        next.metadata.deletionGracePeriodSeconds = 0;
        return this.store.markDeleted(def, next);
      }
    }
    const removed = this.store.remove(def, route.namespace, route.name ?? '');
    if (def.plural === 'statefulsets' || def.plural === 'deployments') {
      for (const p of this.store.list<Pod>(PODS, route.namespace)) {
        if ((p.metadata.ownerReferences ?? []).some((r) => r.uid === removed.metadata.uid))
          deletePod(this.store, p);
      }
    }
    return removed;
  }

  // ---------------------------------------------------------------- exec

  private async handleUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): Promise<void> {
    socket.on('error', () => {});
    if (!this.authorized(req)) throw new ApiError(401, 'Unauthorized', 'Unauthorized');
    const url = new URL(req.url ?? '/', 'https://localhost');
    const route = parseRoute(url.pathname);
    if (route?.def.plural !== 'pods' || route.subresource !== 'exec' || !route.name) {
      throw new ApiError(404, 'NotFound', 'the server could not find the requested resource');
    }
    if ((req.headers.upgrade ?? '').toLowerCase() !== 'websocket') {
      throw ApiError.badRequest(
        'sim: only WebSocket exec is supported (v5.channel.k8s.io, v4.channel.k8s.io), not SPDY',
      );
    }
    const info: RequestInfo = {
      verb: 'exec',
      resource: 'pods',
      subresource: 'exec',
      namespace: route.namespace,
      name: route.name,
    };
    const fault = await this.injected(info);
    if (fault) throw fault;
    const pod = this.store.mustGet<Pod>(PODS, route.namespace, route.name);
    const command = url.searchParams.getAll('command');
    if (command.length === 0) throw ApiError.badRequest('you must specify at least 1 command');
    const containerName = url.searchParams.get('container') ?? pod.spec.containers[0]?.name ?? '';
    const container = pod.spec.containers.find((c) => c.name === containerName);
    if (!container)
      throw ApiError.badRequest(`container ${containerName} is not valid for pod ${route.name}`);
    if (url.searchParams.get('tty') === 'true')
      throw ApiError.badRequest('sim: tty is not supported');
    if (!this.kubelet.isRunning(route.namespace ?? '', route.name, containerName)) {
      throw ApiError.badRequest(
        `unable to upgrade connection: container not found ("${containerName}")`,
      );
    }
    const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((s) => s.trim());
    if (!offered.some((p) => EXEC_PROTOCOLS.includes(p))) {
      throw ApiError.badRequest(
        `sim: no supported stream protocol offered (want one of ${EXEC_PROTOCOLS.join(', ')})`,
      );
    }
    const wantStdin =
      url.searchParams.get('stdin') === 'true' || url.searchParams.get('stdin') === '1';
    const sandbox = this.kubelet.sandboxFor(pod, containerName, command);
    const problem = this.kubelet.execProblem(pod, containerName, command[0] ?? '');
    const drop = problem
      ? undefined
      : this.faults.takeExecDrop(route.namespace ?? '', route.name, wantStdin);
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      if (problem) {
        // containerd starts the exec after the stream is up; runc's failure comes back as
        // the kubelet's InternalError status on the error channel (no exit code).
        failExec(ws, problem);
        return;
      }
      const child = spawnSandboxed(sandbox, [wantStdin ? 'pipe' : 'ignore', 'pipe', 'pipe']);
      this.kubelet.attachExec(pod, containerName, child);
      const end = this.options.onExec?.(pod, containerName, command);
      runExec({
        ws,
        child,
        command,
        ...(drop?.direction === 'out' ? { dropAfterBytes: drop.afterBytes } : {}),
        ...(drop?.direction === 'in' ? { dropAfterInputBytes: drop.afterBytes } : {}),
        link: this.faults.execLink,
        onDone: () => end?.(),
      });
    });
  }
}

// ---------------------------------------------------------------- helpers

function parseRoute(path: string): Route | undefined {
  const parts = path.split('/').filter(Boolean);
  let group = '';
  let rest: string[];
  if (parts[0] === 'api' && parts[1] === 'v1') rest = parts.slice(2);
  else if (
    parts[0] === 'apis' &&
    (parts[1] === 'apps' || parts[1] === 'policy') &&
    parts[2] === 'v1'
  ) {
    group = parts[1];
    rest = parts.slice(3);
  } else return undefined;
  let watch = false;
  if (rest[0] === 'watch') {
    watch = true;
    rest = rest.slice(1);
  }
  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  const def = resourceByPlural(group, rest[0] ?? '');
  if (!def) return undefined;
  if (namespace !== undefined && !def.namespaced) return undefined;
  const name = rest[1];
  const subresource = rest[2];
  if (rest.length > 3) return undefined;
  if (subresource && !def.subresources.includes(subresource)) return undefined;
  // /api/v1/namespaces/{name}: the namespace object itself
  return {
    def,
    ...(namespace !== undefined ? { namespace } : {}),
    ...(name ? { name } : {}),
    ...(subresource ? { subresource } : {}),
    watch,
  };
}

function verbOf(method: string, route: Route, watch: boolean): string {
  if (route.subresource === 'exec') return 'exec';
  if (route.subresource === 'log') return 'log';
  switch (method) {
    case 'GET':
      if (watch) return 'watch';
      return route.name ? 'get' : 'list';
    case 'POST':
      return route.name && !route.subresource ? 'invalid' : 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return 'delete';
    default:
      return 'invalid';
  }
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    const b = c as Buffer;
    size += b.length;
    if (size > 8 * 1024 * 1024)
      throw new ApiError(413, 'RequestEntityTooLarge', 'request body too large');
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

function parseJson(body: Buffer | undefined): unknown {
  try {
    return JSON.parse((body ?? Buffer.alloc(0)).toString('utf8') || 'null');
  } catch (e) {
    throw ApiError.badRequest(
      `sim accepts only JSON bodies: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
}

function fieldValue(o: KObject, field: string): unknown {
  let cur: unknown = o;
  for (const p of field.split('.')) cur = isRecord(cur) ? cur[p] : undefined;
  return cur;
}

function rawStatus(socket: Socket, err: ApiError): void {
  const text = JSON.stringify(err.toStatus());
  const reason =
    {
      400: 'Bad Request',
      401: 'Unauthorized',
      404: 'Not Found',
      429: 'Too Many Requests',
      500: 'Internal Server Error',
    }[err.code] ?? 'Error';
  socket.end(
    `HTTP/1.1 ${err.code} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n${err.code === 429 ? 'Retry-After: 1\r\n' : ''}\r\n${text}`,
  );
}

function normalizeSecret(s: Secret): void {
  s.type ??= 'Opaque';
  if (s.stringData) {
    s.data = { ...(s.data ?? {}) };
    for (const [k, v] of Object.entries(s.stringData))
      s.data[k] = Buffer.from(v, 'utf8').toString('base64');
    delete s.stringData;
  }
}

function checkPodUpdate(current: Pod, next: Pod): void {
  if (
    JSON.stringify(current.spec.containers) !== JSON.stringify(next.spec.containers) ||
    current.spec.nodeName !== next.spec.nodeName
  ) {
    throw ApiError.invalid(PODS, current.metadata.name ?? '', [
      {
        field: 'spec',
        message:
          'Forbidden: pod updates may not change fields other than `spec.containers[*].image`, `spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing tolerations)',
      },
    ]);
  }
}

/** JSON with object keys sorted, for semantic comparison. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    isRecord(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => a.localeCompare(b))) : x,
  );
}

/**
 * ValidateStatefulSetUpdate (pkg/apis/apps/validation): only replicas, ordinals, template,
 * updateStrategy, revisionHistoryLimit, persistentVolumeClaimRetentionPolicy and
 * minReadySeconds may change; the new object is defaulted first (podManagementPolicy
 * OrderedReady), so a PUT that leaves it out of a Parallel set is refused too. Compared
 * here: podManagementPolicy, serviceName, selector, and the claim templates' names, access
 * modes, storage class and requested size.
 */
function checkStatefulSetUpdate(def: ResourceDef, current: KObject, next: KObject): void {
  const spec = (o: KObject) => (isRecord(o.spec) ? o.spec : {});
  const a = spec(current);
  const b = spec(next);
  b.podManagementPolicy ??= 'OrderedReady';
  const claims = (s: Record<string, unknown>) =>
    (Array.isArray(s.volumeClaimTemplates) ? s.volumeClaimTemplates : []).map((t) => {
      const vct = isRecord(t) ? t : {};
      const meta = isRecord(vct.metadata) ? vct.metadata : {};
      const vs = isRecord(vct.spec) ? vct.spec : {};
      const resources = isRecord(vs.resources) ? vs.resources : {};
      const requests = isRecord(resources.requests) ? resources.requests : {};
      return [meta.name, vs.accessModes, vs.storageClassName, requests.storage];
    });
  const same = (x: unknown, y: unknown) => canonical(x) === canonical(y);
  if (
    (a.podManagementPolicy ?? 'OrderedReady') !== b.podManagementPolicy ||
    (a.serviceName ?? '') !== (b.serviceName ?? '') ||
    !same(a.selector, b.selector) ||
    !same(claims(a), claims(b))
  ) {
    throw ApiError.invalid(def, current.metadata.name ?? '', [
      {
        field: 'spec',
        reason: 'FieldValueForbidden',
        message:
          "Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
      },
    ]);
  }
}

function validate(def: ResourceDef, obj: KObject): void {
  const name = obj.metadata.name ?? '';
  const causes: { field: string; message: string }[] = [];
  const spec = isRecord(obj.spec) ? obj.spec : undefined;
  if (def.plural === 'pods') {
    const containers = spec && Array.isArray(spec.containers) ? spec.containers : [];
    if (containers.length === 0)
      causes.push({ field: 'spec.containers', message: 'Required value' });
    containers.forEach((c, i) => {
      if (!isRecord(c) || typeof c.name !== 'string' || !c.name)
        causes.push({ field: `spec.containers[${i}].name`, message: 'Required value' });
      if (!isRecord(c) || typeof c.image !== 'string' || !c.image)
        causes.push({ field: `spec.containers[${i}].image`, message: 'Required value' });
    });
    const volumes = spec && Array.isArray(spec.volumes) ? spec.volumes : [];
    const volumeNames = new Set(volumes.map((v) => (isRecord(v) ? v.name : undefined)));
    containers.forEach((c, i) => {
      const mounts = isRecord(c) && Array.isArray(c.volumeMounts) ? c.volumeMounts : [];
      mounts.forEach((m, j) => {
        if (!isRecord(m) || !volumeNames.has(m.name as string)) {
          causes.push({
            field: `spec.containers[${i}].volumeMounts[${j}].name`,
            message: `Not found: "${isRecord(m) ? String(m.name) : ''}"`,
          });
        }
        if (!isRecord(m) || typeof m.mountPath !== 'string' || !m.mountPath.startsWith('/')) {
          causes.push({
            field: `spec.containers[${i}].volumeMounts[${j}].mountPath`,
            message: 'Invalid value: must be an absolute path',
          });
        }
      });
    });
  }
  if (def.plural === 'statefulsets' || def.plural === 'deployments') {
    const selector = spec && isRecord(spec.selector) ? spec.selector : undefined;
    const template = spec && isRecord(spec.template) ? spec.template : undefined;
    const labels =
      template && isRecord(template.metadata)
        ? (template.metadata.labels as Record<string, string>)
        : {};
    if (!selector) causes.push({ field: 'spec.selector', message: 'Required value' });
    else if (!matchesSelector(selector, labels ?? {})) {
      causes.push({
        field: 'spec.template.metadata.labels',
        message: `Invalid value: ${JSON.stringify(labels)}: \`selector\` does not match template \`labels\``,
      });
    }
    if (
      !template ||
      !isRecord(template.spec) ||
      !Array.isArray(template.spec.containers) ||
      template.spec.containers.length === 0
    ) {
      causes.push({ field: 'spec.template.spec.containers', message: 'Required value' });
    }
    if (
      spec &&
      spec.replicas !== undefined &&
      (typeof spec.replicas !== 'number' || spec.replicas < 0)
    ) {
      causes.push({
        field: 'spec.replicas',
        message: 'Invalid value: must be greater than or equal to 0',
      });
    }
  }
  if (def.plural === 'secrets') {
    const data = isRecord(obj.data) ? obj.data : {};
    for (const [k, v] of Object.entries(data)) {
      if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v))
        causes.push({ field: `data[${k}]`, message: 'Invalid value: must be base64' });
    }
  }
  if (
    def.plural === 'poddisruptionbudgets' &&
    spec &&
    spec.minAvailable !== undefined &&
    spec.maxUnavailable !== undefined
  ) {
    causes.push({
      field: 'spec',
      message: 'Invalid value: minAvailable and maxUnavailable cannot be both set',
    });
  }
  if (causes.length > 0) throw ApiError.invalid(def, name, causes);
}

function toScale(obj: KObject): Record<string, unknown> {
  const spec = (obj.spec ?? {}) as {
    replicas?: number;
    selector?: { matchLabels?: Record<string, string> };
  };
  const status = (obj.status ?? {}) as { replicas?: number };
  return {
    kind: 'Scale',
    apiVersion: 'autoscaling/v1',
    metadata: {
      name: obj.metadata.name,
      namespace: obj.metadata.namespace,
      uid: obj.metadata.uid,
      resourceVersion: obj.metadata.resourceVersion,
      creationTimestamp: obj.metadata.creationTimestamp,
    },
    spec: { replicas: spec.replicas ?? 1 },
    status: { replicas: status.replicas ?? 0, selector: selectorString(spec.selector) },
  };
}

function age(ts: string | undefined): string {
  if (!ts) return '<unknown>';
  const s = Math.max(0, Math.floor((Date.now() - Date.parse(ts)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  return `${Math.floor(s / 3600)}h`;
}

function toTable(def: ResourceDef, items: KObject[], rv: string): Record<string, unknown> {
  const col = (name: string, type: string, priority = 0, format = '') => ({
    name,
    type,
    format,
    description: name,
    priority,
  });
  let columns = [col('Name', 'string', 0, 'name'), col('Age', 'string')];
  let cells = (o: KObject): unknown[] => [o.metadata.name, age(o.metadata.creationTimestamp)];
  if (def.plural === 'pods') {
    columns = [
      col('Name', 'string', 0, 'name'),
      col('Ready', 'string'),
      col('Status', 'string'),
      col('Restarts', 'string'),
      col('Age', 'string'),
      col('IP', 'string', 1),
      col('Node', 'string', 1),
      col('Nominated Node', 'string', 1),
      col('Readiness Gates', 'string', 1),
    ];
    cells = (o) => {
      const p = o as Pod;
      const cs = p.status?.containerStatuses ?? [];
      const ready = cs.filter((c) => c.ready).length;
      const restarts = cs.reduce((a, c) => a + c.restartCount, 0);
      let status: string = p.status?.phase ?? 'Pending';
      for (const c of cs) {
        if (c.state.waiting && c.state.waiting.reason !== 'ContainerCreating')
          status = c.state.waiting.reason;
        else if (c.state.waiting && status === 'Pending') status = 'ContainerCreating';
        else if (c.state.terminated && status !== 'Running') status = c.state.terminated.reason;
      }
      if (p.metadata.deletionTimestamp) status = 'Terminating';
      return [
        p.metadata.name,
        `${ready}/${p.spec.containers.length}`,
        status,
        String(restarts),
        age(p.metadata.creationTimestamp),
        p.status?.podIP ?? '<none>',
        p.spec.nodeName ?? '<none>',
        '<none>',
        '<none>',
      ];
    };
  } else if (def.plural === 'statefulsets' || def.plural === 'deployments') {
    columns = [col('Name', 'string', 0, 'name'), col('Ready', 'string'), col('Age', 'string')];
    cells = (o) => {
      const st = (o.status ?? {}) as { readyReplicas?: number };
      const sp = (o.spec ?? {}) as { replicas?: number };
      return [
        o.metadata.name,
        `${st.readyReplicas ?? 0}/${sp.replicas ?? 0}`,
        age(o.metadata.creationTimestamp),
      ];
    };
  } else if (def.plural === 'nodes') {
    columns = [
      col('Name', 'string', 0, 'name'),
      col('Status', 'string'),
      col('Roles', 'string'),
      col('Age', 'string'),
      col('Version', 'string'),
    ];
    cells = (o) => [
      o.metadata.name,
      'Ready',
      '<none>',
      age(o.metadata.creationTimestamp),
      'v1.31.0-sim',
    ];
  }
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: { resourceVersion: rv },
    columnDefinitions: columns,
    rows: items.map((o) => ({
      cells: cells(o),
      object: { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata },
    })),
  };
}
