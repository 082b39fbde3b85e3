/**
 * Fault injection (what the API answers, how exec streams end) and the record of protocol
 * violations that tests assert empty.
 */

/** What a request is, as fault rules match it. */
export interface RequestInfo {
  /** get, list, watch, create, update, patch, delete, exec, log. */
  verb: string;
  resource?: string;
  subresource?: string;
  namespace?: string;
  name?: string;
  /** The shape the client asked for with `Accept: ...;as=<shape>` (Table, PartialObjectMetadataList). */
  as?: string;
}

/** Fields left out match anything. `verb` may list several verbs. */
export interface RequestMatch {
  verb?: string | string[];
  resource?: string;
  subresource?: string;
  namespace?: string;
  name?: string;
}

function matches(m: RequestMatch | undefined, r: RequestInfo): boolean {
  if (!m) return true;
  if (m.verb !== undefined && !(Array.isArray(m.verb) ? m.verb : [m.verb]).includes(r.verb))
    return false;
  if (m.resource !== undefined && m.resource !== r.resource) return false;
  if (m.subresource !== undefined && m.subresource !== r.subresource) return false;
  if (m.namespace !== undefined && m.namespace !== r.namespace) return false;
  if (m.name !== undefined && m.name !== r.name) return false;
  return true;
}

interface FailRule {
  remaining: number;
  code: number;
  match?: RequestMatch;
}

/** Which bytes a stream cut counts: what the pod sends back, or what it is sent (stdin). */
export type ExecDirection = 'out' | 'in';

export interface ExecDrop {
  afterBytes: number;
  direction: ExecDirection;
}

interface DropRule {
  remaining: number;
  afterBytes: number;
  direction: ExecDirection;
  namespace?: string;
  pod?: string;
}

interface LatencyRule {
  ms: number;
  match?: RequestMatch;
}

/**
 * The link between the API server's clients and it, as exec streams see it: every byte of
 * every stream (stdin in, output out) counted, and, when limited, paced to `bytesPerSecond`
 * across all streams together, as one slow link would (a burst of 50 ms passes at once).
 */
export class ExecLink {
  /** Bytes carried by exec streams, both directions, since the simulator started. */
  bytes = 0;
  private bytesPerSecond?: number;
  private nextFree = 0;

  /** A new rate (undefined: none), starting afresh: no debt of an earlier pace carries over. */
  pace(bytesPerSecond: number | undefined): void {
    this.bytesPerSecond = bytesPerSecond;
    this.nextFree = 0;
  }

  /** @internal Counts `n` bytes; how long (ms) the stream must wait before it sends more. */
  take(n: number): number {
    this.bytes += n;
    if (!this.bytesPerSecond) return 0;
    const now = performance.now();
    this.nextFree = Math.max(this.nextFree, now) + (n / this.bytesPerSecond) * 1000;
    return Math.max(0, this.nextFree - now - 50);
  }
}

export class Faults {
  private fails: FailRule[] = [];
  private drops: DropRule[] = [];
  private latencies: LatencyRule[] = [];
  /** How many requests were failed on purpose so far. */
  injected = 0;
  /** What exec streams carry, and how fast they may (`limitExecBandwidth`). */
  readonly execLink = new ExecLink();

  /** Pace all exec streams together to `bytesPerSecond` (a slow link) until `clear()`; undefined lifts it. */
  limitExecBandwidth(bytesPerSecond: number | undefined): void {
    this.execLink.pace(bytesPerSecond);
  }

  /**
   * Answer the next `count` matching requests with `code` (429 carries `Retry-After: 1`;
   * 401 and 403 are what a rotated credential or a narrowed Role give).
   */
  failNext(count: number, code: 401 | 403 | 429 | 500 | 503 | 504, match?: RequestMatch): void {
    this.fails.push({ remaining: count, code, ...(match ? { match } : {}) });
  }

  /**
   * Cut the next `count` (default 1) exec streams of the pod after `afterBytes` bytes of
   * output (default), or of stdin with `direction: 'in'` (a copy into a pod).
   */
  dropExecAfterBytes(
    afterBytes: number,
    options: { namespace?: string; pod?: string; count?: number; direction?: ExecDirection } = {},
  ): void {
    this.drops.push({
      remaining: options.count ?? 1,
      afterBytes,
      direction: options.direction ?? 'out',
      namespace: options.namespace,
      pod: options.pod,
    });
  }

  /** Delay every matching request by `ms` until `clear()`. */
  addLatency(ms: number, match?: RequestMatch): void {
    this.latencies.push({ ms, ...(match ? { match } : {}) });
  }

  clear(): void {
    this.fails = [];
    this.drops = [];
    this.latencies = [];
    this.execLink.pace(undefined);
  }

  /** @internal The status code to fail this request with, if a rule says so. */
  takeFailure(r: RequestInfo): number | undefined {
    const rule = this.fails.find((f) => f.remaining > 0 && matches(f.match, r));
    if (!rule) return undefined;
    rule.remaining -= 1;
    this.injected += 1;
    this.fails = this.fails.filter((f) => f.remaining > 0);
    return rule.code;
  }

  /** @internal */
  latencyFor(r: RequestInfo): number {
    return this.latencies.filter((l) => matches(l.match, r)).reduce((a, l) => a + l.ms, 0);
  }

  /** @internal */
  takeExecDrop(namespace: string, pod: string, hasStdin: boolean): ExecDrop | undefined {
    const rule = this.drops.find(
      (d) =>
        d.remaining > 0 &&
        (d.namespace === undefined || d.namespace === namespace) &&
        (d.pod === undefined || d.pod === pod) &&
        (d.direction === 'out' || hasStdin),
    );
    if (!rule) return undefined;
    rule.remaining -= 1;
    this.injected += 1;
    this.drops = this.drops.filter((d) => d.remaining > 0);
    return { afterBytes: rule.afterBytes, direction: rule.direction };
  }
}

export interface Violation {
  /** `data-changed-while-apiserver-up` | `data-changed-while-etcd-running` */
  kind: string;
  message: string;
  at: string;
}

export class Violations {
  readonly list: Violation[] = [];

  record(kind: string, message: string): void {
    this.list.push({ kind, message, at: new Date().toISOString() });
  }

  clear(): void {
    this.list.length = 0;
  }
}
