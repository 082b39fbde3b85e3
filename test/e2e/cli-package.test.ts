/**
 * The CLI installs as a package: `npm pack` (which builds dist/ first, prepack), then
 * `npm install <tarball>` in a scratch directory, from npm's local cache where it can
 * (--prefer-offline: the package's dependencies were cached by `npm ci`; npm may still ask
 * the registry for their metadata). The installed `etcd-ha-restore` is built JavaScript —
 * the scratch directory has no tsx, no TypeScript — and `npx etcd-ha-restore --help` works,
 * as does input validation (exit 2 before anything connects).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'cli-package-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

function run(
  file: string,
  args: string[],
  cwd: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      file,
      args,
      {
        cwd,
        timeout: 5 * 60_000,
        maxBuffer: 16 * 1024 * 1024,
        env: { ...process.env, CI: 'true' },
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

test('npm pack, npm install the tarball, npx etcd-ha-restore --help', {
  timeout: 10 * 60_000,
}, async () => {
  const t0 = Date.now();
  const packed = await run('npm', ['pack', '--json', '--pack-destination', scratch], root);
  assert.equal(packed.code, 0, packed.stderr);
  const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as Array<{
    filename: string;
    files: Array<{ path: string }>;
  }>;
  assert.ok(info);
  const files = info.files.map((f) => f.path);
  assert.ok(files.includes('dist/client/bin.js'), 'the built CLI is in the package');
  assert.ok(
    !files.some((f) => f.startsWith('test/') || (f.endsWith('.ts') && !f.endsWith('.d.ts'))),
  );

  const app = join(scratch, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'scratch', private: true }));
  const installed = await run(
    'npm',
    ['install', '--prefer-offline', '--no-audit', '--no-fund', join(scratch, info.filename)],
    app,
  );
  assert.equal(installed.code, 0, installed.stderr);
  assert.ok(!existsSync(join(app, 'node_modules', 'tsx')), 'no tsx at run time');

  const help = await run('npx', ['--offline', 'etcd-ha-restore', '--help'], app);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^Usage: etcd-ha-restore \[options\] \[command\]/m);
  for (const command of ['backup', 'restore', 'watch', 'schedule', 'backups'])
    assert.match(help.stdout, new RegExp(`^  ${command}\\b`, 'm'));
  const bad = await run(
    'npx',
    ['--offline', 'etcd-ha-restore', 'backup', 'start', '--cluster', 'Not_A_Name'],
    app,
  );
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /userClusterName/);
  console.log(
    `cli package: packed, installed and ran in ${Math.round((Date.now() - t0) / 1000)} s`,
  );
});
