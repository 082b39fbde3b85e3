/**
 * The README's demo command works: `npm run demo` runs the whole runbook on the simulated
 * cluster (backup, two members corrupted, restore) and reads the data back; then, while it
 * keeps running, the Temporal CLI commands it printed are pasted into a shell as printed —
 * list, describe, show, another backup started with its --input and its result — and
 * Ctrl-C (SIGINT) stops it.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

test('the demo backs up, breaks and restores a three-member cluster; its Temporal CLI commands work', {
  timeout: 15 * 60_000,
}, async () => {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const demo = spawn(process.execPath, ['--import', 'tsx', 'test/demo.ts'], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<number | null>((resolve) =>
    demo.once('exit', (code) => resolve(code)),
  );
  const done = new Promise<void>((resolve, reject) => {
    demo.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (/^demo: done\./m.test(output)) resolve();
    });
    demo.stderr.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    void exited.then((code) =>
      reject(new Error(`the demo exited (${code}): ${output.slice(-4000)}`)),
    );
  });
  try {
    await done;
    assert.match(output, /Web UI: http:\/\/127\.0\.0\.1:\d+/);
    assert.match(output, /Temporal: 127\.0\.0\.1:\d+ \(namespace default\)/);
    assert.match(output, /verified: 3\/3 members healthy/);
    assert.match(output, /read back: 10\/10 backup keys; the later key is absent/);
    assert.match(output, /protocol violations recorded by the simulated cluster: 0/);

    const commands = output
      .split('\n')
      .filter((line) => / workflow (list|describe|show|start|result) /.test(line))
      .map((line) => line.trim());
    assert.equal(commands.length, 5, output);
    const results: string[] = [];
    for (const command of commands) {
      const { stdout } = await execFileAsync('bash', ['-c', command], { timeout: 120_000 });
      results.push(stdout);
    }
    assert.match(results[0] ?? '', /restoreUserCluster/);
    assert.match(results[1] ?? '', /Completed|COMPLETED/);
    assert.match(results[4] ?? '', /stored/, 'the backup started with the Temporal CLI was stored');
  } finally {
    demo.kill('SIGINT');
  }
  assert.equal(await exited, 130, output.slice(-2000));
});
