/**
 * The simulator leaves nothing behind: no etcd or sandbox process, no temporary directory
 * and no size-limited mount, after stop() and also when the process dies of an uncaught
 * error (a failing test), SIGTERM, or SIGKILL (then the next simulator collects it).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { clientsFor } from './client.js';
import { startSimAdminCluster, startSimCluster } from './index.js';
import { simMounts } from './mounts.js';

const indexUrl = new URL('./index.ts', import.meta.url).href;

/** PIDs whose command line mentions `needle`. */
function processesMentioning(needle: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      const state = readFileSync(`/proc/${entry}/stat`, 'utf8').split(') ')[1]?.[0];
      if (cmd.includes(needle) && state !== 'Z') out.push(Number(entry));
    } catch {
      // gone
    }
  }
  return out;
}

async function settle(check: () => boolean, ms = 10_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return check();
}

test('stop() kills every etcd and sandbox process and removes the directory', async () => {
  const sim = await startSimCluster({ members: 1, userClusterName: 'cleanup' });
  assert.ok(existsSync(sim.dir));
  assert.ok(processesMentioning(sim.dir).length >= 5, 'sandboxes run from the sim directory');
  await sim.stop();
  await sim.stop();
  assert.equal(existsSync(sim.dir), false);
  assert.ok(await settle(() => processesMentioning(sim.dir).length === 0), 'no process left');
});

for (const how of ['uncaught error', 'SIGTERM', 'SIGKILL'] as const) {
  test(`a process that dies (${how}) without stop() leaves nothing behind`, async () => {
    const script = `
      const { startSimCluster } = await import(${JSON.stringify(indexUrl)});
      const sim = await startSimCluster({ members: 1, userClusterName: 'crash' });
      console.log(sim.dir);
      ${how === 'uncaught error' ? "setTimeout(() => { throw new Error('test failed'); }, 200);" : 'setInterval(() => {}, 1000);'}
    `;
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      {
        cwd: fileURLToPath(new URL('../..', import.meta.url)),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const dir = await new Promise<string>((resolve, reject) => {
      const t = setInterval(() => {
        const line = stdout.split('\n').find((l) => l.startsWith('/'));
        if (line) {
          clearInterval(t);
          resolve(line.trim());
        }
      }, 50);
      child.once('exit', () => {
        clearInterval(t);
        const line = stdout.split('\n').find((l) => l.startsWith('/'));
        if (line) resolve(line.trim());
        else reject(new Error(`child exited early: ${stderr}`));
      });
    });
    assert.ok(processesMentioning(dir).length >= 5);
    if (how !== 'uncaught error') child.kill(how);
    const code = await new Promise<number | null>((resolve) => {
      if (child.exitCode !== null) resolve(child.exitCode);
      else child.once('exit', (c) => resolve(c));
    });
    assert.notEqual(code, 0);
    if (how === 'uncaught error') assert.match(stderr, /test failed/);
    assert.ok(
      await settle(() => processesMentioning(dir).length === 0),
      `processes left: ${processesMentioning(dir)}`,
    );
    if (how === 'SIGKILL') {
      // No handler can run: bwrap --die-with-parent took the sandboxes down; the directory
      // is collected by the next simulator that starts.
      assert.equal(existsSync(dir), true);
      const next = await startSimAdminCluster();
      await next.stop();
    }
    assert.equal(existsSync(dir), false, 'temporary directory removed');
  });
}

for (const how of ['uncaught error', 'SIGTERM', 'SIGKILL'] as const) {
  test(`size-limited PVCs and sizeLimitedDir are unmounted when the process dies (${how})`, async () => {
    const script = `
      const { join } = await import('node:path');
      const { startSimCluster, sizeLimitedDir } = await import(${JSON.stringify(indexUrl)});
      const sim = await startSimCluster({
        members: 1, userClusterName: 'crash-mounts', adminEtcd: false,
        pvcSizeBytes: { 0: 160 * 1024 * 1024 },
      });
      const backups = await sizeLimitedDir(join(sim.dir, '..', 'sim-backups-' + process.pid), 1 << 20);
      console.log(sim.dir);
      console.log(backups.path);
      ${how === 'uncaught error' ? "setTimeout(() => { throw new Error('test failed'); }, 200);" : 'setInterval(() => {}, 1000);'}
    `;
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      {
        cwd: fileURLToPath(new URL('../..', import.meta.url)),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const lines = () => stdout.split('\n').filter((l) => l.startsWith('/'));
    assert.ok(
      await settle(() => lines().length === 2 || child.exitCode !== null, 60_000),
      `child said: ${stdout} ${stderr}`,
    );
    const [dir = '', backups = ''] = lines();
    assert.ok(dir && backups, `child said: ${stdout} ${stderr}`);
    const mine = () => simMounts().filter((m) => m.pid === child.pid);
    assert.deepEqual(
      mine()
        .map((m) => m.dir)
        .sort(),
      [
        backups,
        ...simMounts()
          .filter((m) => m.pid === child.pid && m.dir.startsWith(dir))
          .map((m) => m.dir),
      ].sort(),
    );
    assert.equal(mine().length, 2, 'the data PVC and the backup directory');
    if (how !== 'uncaught error') child.kill(how);
    await new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
    if (how === 'SIGKILL') {
      assert.equal(mine().length, 2, 'no handler ran: the mounts are still there');
      const next = await startSimAdminCluster();
      await next.stop();
    }
    assert.deepEqual(mine(), [], 'no mount left');
    assert.equal(existsSync(dir), false, 'simulator directory removed');
    assert.equal(existsSync(backups), false, 'size-limited directory removed');
    assert.ok(await settle(() => processesMentioning(dir).length === 0), 'no process left');
  });
}

test('npm run sim: starts standalone, prints kubeconfig and profile, stops cleanly on SIGINT', async () => {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const kubeconfig = `${root}node_modules/.cache/sim-cli-test-${process.pid}.kubeconfig`;
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'test/sim/cli.ts', '--kubeconfig', kubeconfig, '--members', '1'],
    {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
  });
  child.stderr.on('data', () => {});
  assert.ok(await settle(() => stdout.includes('Ctrl-C to stop'), 60_000), stdout);
  assert.match(stdout, new RegExp(`kubeconfig: ${kubeconfig}`));
  const profileText = stdout.slice(
    stdout.indexOf('profile:') + 'profile:'.length,
    stdout.indexOf('\ntry:'),
  );
  const profile = JSON.parse(profileText) as { etcdEndpoint: string };
  assert.match(profile.etcdEndpoint, /\{member\}/);
  const c = clientsFor(kubeconfig);
  const pods = await c.core.listNamespacedPod({ namespace: 'user-cluster-1' });
  assert.ok(pods.items.some((p) => p.metadata?.name === 'kube-etcd-0'));
  child.kill('SIGINT');
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  assert.equal(code, 0);
  assert.equal(existsSync(kubeconfig), false, 'kubeconfig removed on stop');
});
