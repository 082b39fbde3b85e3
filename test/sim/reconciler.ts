/**
 * A reconciling controller like GKE on-prem's user-cluster controller in the admin cluster:
 * it owns the user cluster's control plane objects and puts kube-etcd's `spec.replicas`
 * back to the count the cluster was created with, `delayMs` after the count last changed
 * to something else (a controller's resync, not an instant reaction). Off unless enabled.
 */
import { R, type SimCore } from './core.js';
import type { KObject, StatefulSet } from './types.js';

export interface ReconcilerControl {
  /** Turns it on (optionally with a new delay). */
  enable(delayMs?: number): void;
  /** Turns it off; a pending reset is dropped. */
  disable(): void;
  readonly enabled: boolean;
  readonly delayMs: number;
  /** How many times it has put replicas back. */
  readonly resets: number;
}

export const DEFAULT_RECONCILE_DELAY_MS = 2000;

export class Reconciler implements ReconcilerControl {
  enabled = false;
  delayMs = DEFAULT_RECONCILE_DELAY_MS;
  resets = 0;
  private timer?: NodeJS.Timeout;
  private lastSeen?: number;

  constructor(
    private readonly core: SimCore,
    private readonly namespace: string,
    private readonly name: string,
    private readonly desired: number,
  ) {
    core.store.on('change', (_type: string, def: unknown, o: KObject) => {
      if (def === R.statefulsets && o.metadata.namespace === namespace && o.metadata.name === name)
        this.observe();
    });
  }

  enable(delayMs?: number): void {
    if (delayMs !== undefined) this.delayMs = delayMs;
    this.enabled = true;
    this.lastSeen = undefined;
    this.observe();
  }

  disable(): void {
    this.enabled = false;
    this.clear();
  }

  stop(): void {
    this.disable();
  }

  private current(): StatefulSet | undefined {
    return this.core.store.get<StatefulSet>(R.statefulsets, this.namespace, this.name);
  }

  private clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** A change of the set: (re)start the delay when the count changed away from desired. */
  private observe(): void {
    const replicas = this.current()?.spec.replicas;
    if (replicas === this.lastSeen) return;
    this.lastSeen = replicas;
    this.clear();
    if (!this.enabled || replicas === undefined || replicas === this.desired) return;
    this.timer = setTimeout(() => this.reset(), this.delayMs);
    this.timer.unref();
  }

  private reset(): void {
    this.timer = undefined;
    const sts = this.current();
    if (!this.enabled || !sts || sts.spec.replicas === this.desired) return;
    sts.spec.replicas = this.desired;
    delete sts.metadata.resourceVersion;
    this.core.store.update(R.statefulsets, sts);
    this.resets += 1;
  }
}
