/**
 * The README's demo command works: `npm run demo -- --exit` runs the whole runbook on the
 * simulated cluster (backup, two members corrupted, restore) and reads the data back.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

test('the demo backs up, breaks and restores a three-member cluster', () => {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const run = spawnSync(process.execPath, ['--import', 'tsx', 'test/demo.ts', '--exit'], {
    cwd: root,
    encoding: 'utf8',
    timeout: 15 * 60_000,
  });
  const output = `${run.stdout}\n${run.stderr}`;
  assert.equal(run.status, 0, output.slice(-4000));
  assert.match(output, /Web UI: http:\/\/127\.0\.0\.1:\d+/);
  assert.match(output, /verified: 3\/3 members healthy/);
  assert.match(output, /read back: 10\/10 backup keys; the later key is absent/);
  assert.match(output, /protocol violations recorded by the simulated cluster: 0/);
});
