/**
 * What a person watching the Web UI sees: the workflow's current details (markdown, kept
 * up to date at each step), the `progress` query, and the search attributes that let the
 * workflow list be filtered by user cluster, operation and outcome.
 */
import {
  defineQuery,
  log,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import {
  EtcdOperation,
  EtcdOutcome,
  type Operation,
  type Outcome,
  UserClusterName,
} from './contract/index.js';
import { recordEnd } from './metrics.js';

export interface ProgressView {
  operation: Operation;
  /** The user cluster; absent for an admin backup or a backupAll run. */
  userClusterName?: string;
  /** Runbook step id and what it does, e.g. "H3 scale kube-apiserver to 0". */
  step: string;
  outcome: Outcome;
  /** Per-member state, for restores. */
  members: Record<string, string>;
  /** Per-part state, for a backupAll run (the admin backup, each user cluster's). */
  parts?: Record<string, string>;
  /** Facts worth keeping in view: bytes copied, snapshot revision, what was saved. */
  facts: Record<string, string>;
  /** Steps done, oldest first, with workflow time. */
  log: string[];
  /** Problems waiting for an operator, while there are any. */
  problems: ProblemView[];
}

/** What an operator must know to decide: what failed, what is still changed, what to do. */
export interface ProblemView {
  step: string;
  error: string;
  since: string;
  stillChanged: string[];
  whatToDo: string[];
}

export const progressQuery = defineQuery<ProgressView>('progress');

export class Progress {
  private readonly view: ProgressView;
  /** The admin cluster an admin backup works on, once resolved: the label of its metrics. */
  private metricSubject: { adminCluster?: string } = {};

  constructor(
    operation: Operation,
    userClusterName: string | undefined,
    private readonly title: string,
    private readonly limits: string,
  ) {
    this.view = {
      operation,
      ...(userClusterName !== undefined ? { userClusterName } : {}),
      step: 'starting',
      outcome: 'running',
      members: {},
      facts: {},
      log: [],
      problems: [],
    };
    setHandler(progressQuery, () => this.view);
    upsertSearchAttributes([
      ...(userClusterName !== undefined ? [{ key: UserClusterName, value: userClusterName }] : []),
      { key: EtcdOperation, value: operation },
      { key: EtcdOutcome, value: 'running' },
    ]);
    this.render();
  }

  /** Enters a runbook step: shown at once, and logged. */
  step(step: string): void {
    this.view.step = step;
    this.view.log.push(`${clock()} ${step}`);
    // The worker's log (JSON lines with the workflow's ids); never written on replay.
    log.info(step, { userClusterName: this.view.userClusterName });
    this.render();
  }

  fact(name: string, value: string | number): void {
    this.view.facts[name] = String(value);
    this.render();
  }

  /** Per-member state; `name` is the member's pod (kube-etcd-N). */
  member(name: string, state: string): void {
    this.view.members[name] = state;
    this.render();
  }

  /** Per-part state of a backupAll run; `name` is `admin <name>` or the user cluster. */
  part(name: string, state: string): void {
    this.view.parts = { ...this.view.parts, [name]: state };
    this.render();
  }

  /** An admin backup's admin cluster, resolved by the worker: shown, and its metrics' label. */
  adminCluster(name: string): void {
    this.metricSubject = { adminCluster: name };
    this.fact('admin cluster', name);
  }

  /** Shows the problems waiting for an operator (outcome needs-operator while there are any). */
  problems(problems: ProblemView[]): void {
    if (problems.length > 0)
      log.warn('waiting for an operator', {
        userClusterName: this.view.userClusterName,
        problems: problems.map((p) => `${p.step}: ${p.error}`),
      });
    this.view.problems = problems;
    this.outcome(problems.length > 0 ? 'needs-operator' : 'running');
  }

  private outcome(outcome: Outcome): void {
    if (this.view.outcome !== outcome) {
      this.view.outcome = outcome;
      upsertSearchAttributes([{ key: EtcdOutcome, value: outcome }]);
    }
    this.render();
  }

  note(line: string): void {
    this.view.log.push(`${clock()} ${line}`);
    this.render();
  }

  /** The run ends: shown, logged, and counted in the worker's metrics. */
  finish(outcome: Outcome, line: string): void {
    const { operation, userClusterName } = this.view;
    log.info(line, { userClusterName, outcome });
    recordEnd(
      operation,
      { ...(userClusterName !== undefined ? { userClusterName } : {}), ...this.metricSubject },
      outcome,
    );
    this.view.step = line;
    this.view.log.push(`${clock()} ${line}`);
    this.view.problems = [];
    this.outcome(outcome);
  }

  private render(): void {
    const v = this.view;
    const lines = [`**${this.title}** — ${v.outcome}`, '', `**Now:** ${v.step}`];
    for (const p of v.problems) {
      lines.push(
        '',
        `**Waiting for an operator since ${p.since}** — ${p.step} failed: ${p.error}`,
        '',
        '**Still changed:**',
        '',
        ...(p.stillChanged.length > 0 ? p.stillChanged.map((c) => `- ${c}`) : ['- nothing']),
        '',
        '**What to do:**',
        '',
        ...p.whatToDo.map((w) => `- ${w}`),
      );
    }
    const members = Object.entries(v.members);
    if (members.length > 0) {
      lines.push(
        '',
        '| member | state |',
        '| --- | --- |',
        ...members.map(([m, s]) => `| ${m} | ${s} |`),
      );
    }
    const parts = Object.entries(v.parts ?? {});
    if (parts.length > 0) {
      lines.push(
        '',
        '| part | state |',
        '| --- | --- |',
        ...parts.map(([p, s]) => `| ${p} | ${s} |`),
      );
    }
    const facts = Object.entries(v.facts);
    if (facts.length > 0) lines.push('', ...facts.map(([k, value]) => `- ${k}: ${value}`));
    // Blank lines around the list: the Web UI's markdown needs them to render a list.
    lines.push(
      '',
      '**Steps**',
      '',
      ...v.log.slice(-30).map((l) => `- ${l}`),
      '',
      `_${this.limits}_`,
    );
    setCurrentDetails(lines.join('\n'));
  }
}

/** Workflow time (deterministic), HH:MM:SS UTC. */
function clock(): string {
  return new Date().toISOString().slice(11, 19);
}

/** An error and its cause in one line, for details and failure messages. */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const cause = (error as { cause?: unknown }).cause;
    return cause instanceof Error ? `${error.message}: ${cause.message}` : error.message;
  }
  return String(error);
}
