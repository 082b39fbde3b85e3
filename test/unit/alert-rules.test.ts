/**
 * docs/prometheus-alerts.yaml is a rule file Prometheus can load (groups of named rules with
 * an expression), and every project metric it names is one the worker exports.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parse } from 'yaml';
import { METRICS } from '../../workflows/contract/index.js';

interface Rule {
  alert?: string;
  expr?: unknown;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

test('the example alert rules name the metrics the worker exports', () => {
  const text = readFileSync(new URL('../../docs/prometheus-alerts.yaml', import.meta.url), 'utf8');
  const file = parse(text) as { groups: Array<{ name: string; rules: Rule[] }> };
  const rules = file.groups.flatMap((g) => g.rules);
  assert.deepEqual(
    rules.map((r) => r.alert),
    [
      'EtcdBackupTooOld',
      'EtcdAdminBackupTooOld',
      'EtcdBackupFailing',
      'EtcdRestoreNeedsOperator',
      'EtcdHaRestoreWorkerDown',
    ],
  );
  // Counters are exported with a _total suffix (countersTotalSuffix), histograms with _bucket etc.
  const exported = new Set(Object.values(METRICS).flatMap((m) => [m, `${m}_total`, `${m}_count`]));
  for (const rule of rules) {
    assert.equal(typeof rule.expr, 'string', `${rule.alert}: expr`);
    assert.ok(rule.annotations?.summary, `${rule.alert}: summary`);
    for (const name of (rule.expr as string).match(/etcd_ha_restore_[a-z_]+/g) ?? [])
      assert.ok(exported.has(name), `${rule.alert}: ${name} is not a metric the worker exports`);
  }
  assert.match(text, /etcd_ha_restore_restores_waiting_for_operator/);
});
