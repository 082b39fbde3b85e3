/**
 * A real OpenSSH server (Debian's openssh-server) for the admin-PKI tests (SPEC A2):
 * `sshd -D` on a loopback port of its own, with a host key made for it, a config file of
 * its own and nothing of the machine's sshd. It logs in one dedicated user,
 * `etcd-ha-restore-test`, by key only; that user may run, through `sudo -n`, exactly
 * `tar -C <parent> -cf - <dir>` and nothing else — the least privilege an operator would
 * give the backup's user on a real node, and what makes the test prove that the backup
 * reads a tree only root may read without changing a mode on it.
 *
 * The user and its sudoers drop-in are made by `ensureTestUser` and removed by
 * `removeTestUser` (also at the start of the next run, if a test died). The tests run as
 * root (sshd must, to switch users). A test file that may run beside another one on the same
 * machine passes a user of its own (`user`), so that neither removes the other's user or
 * replaces its sudo rule.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './ports.js';
import { readTools } from './tools.js';

const execFileAsync = promisify(execFile);

export const TEST_USER = 'etcd-ha-restore-test';
const sudoersOf = (user: string) => `/etc/sudoers.d/${user}`;

async function run(file: string, args: string[]): Promise<string> {
  const { stdout } = await execFileAsync(file, args, {
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' },
  });
  return stdout;
}

/** A key pair made with ssh-keygen: the private key file, the public key line, its fingerprint. */
export interface KeyPair {
  privateKeyPath: string;
  publicKey: string;
  fingerprint: string;
}

export async function makeKeyPair(path: string, comment: string): Promise<KeyPair> {
  await rm(path, { force: true });
  await rm(`${path}.pub`, { force: true });
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', path]);
  const publicKey = (await readFile(`${path}.pub`, 'utf8')).trim();
  const fingerprint =
    (await run('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${path}.pub`])).split(' ')[1] ?? '';
  return { privateKeyPath: path, publicKey, fingerprint };
}

/**
 * The dedicated test user (no password, no home, login by key only) and its sudoers
 * drop-in: `sudo -n tar -C <parent> -cf - <dir>` for each directory given, nothing else.
 */
export async function ensureTestUser(tarDirectories: string[], user = TEST_USER): Promise<void> {
  const exists = await run('getent', ['passwd', user]).then(
    () => true,
    () => false,
  );
  if (!exists) {
    await run('useradd', [
      '--system',
      '--no-create-home',
      '--home-dir',
      '/nonexistent',
      '--shell',
      '/bin/sh',
      user,
    ]);
  }
  // '*': no password, but not locked ('!'), which sshd without PAM would refuse.
  await run('usermod', ['-p', '*', user]);
  const tar = (await run('sh', ['-c', 'command -v tar'])).trim();
  const rules = tarDirectories.map((dir) => {
    const parent = dir.replace(/\/[^/]+$/, '');
    const base = dir.slice(parent.length + 1);
    return `${user} ALL=(root) NOPASSWD: ${tar} -C ${parent} -cf - ${base}`;
  });
  const file = `${sudoersOf(user)}.tmp`;
  await writeFile(file, `${rules.join('\n')}\n`, { mode: 0o440 });
  await run('visudo', ['-c', '-q', '-f', file]);
  await run('mv', [file, sudoersOf(user)]);
}

export async function removeTestUser(user = TEST_USER): Promise<void> {
  await rm(sudoersOf(user), { force: true });
  await run('userdel', [user]).catch(() => undefined);
}

export interface Sshd {
  host: string;
  port: number;
  /** The server's host key: `[127.0.0.1]:port ssh-ed25519 ...` for a known_hosts file. */
  knownHostsLine: string;
  hostKeyFingerprint: string;
  /** sshd's log (stderr), for failure messages. */
  log(): string;
  stop(): Promise<void>;
}

export interface SshdOptions {
  /** Public keys allowed to log in as `user`. */
  authorizedKeys: string[];
  /** The one user it lets in (ensureTestUser's); TEST_USER by default. */
  user?: string;
  /** A jump host forwards TCP; a node does not. */
  allowTcpForwarding: boolean;
}

export async function startSshd(options: SshdOptions): Promise<Sshd> {
  const sshd = readTools().sshd;
  if (!sshd) throw new Error("no sshd in .tools.json: run 'npm run provision'");
  // Its own directory, traversable: sshd reads authorized_keys as the user logging in.
  const dir = await mkdtemp(join(tmpdir(), 'sshd-'));
  await chmod(dir, 0o755);
  // Privilege separation directory that Debian's sshd insists on.
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  const hostKey = await makeKeyPair(join(dir, 'host_ed25519'), 'test-host-key');
  const authorized = join(dir, 'authorized_keys');
  await writeFile(authorized, `${options.authorizedKeys.join('\n')}\n`, { mode: 0o644 });
  const port = await freePort();
  const config = join(dir, 'sshd_config');
  await writeFile(
    config,
    [
      `Port ${port}`,
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey.privateKeyPath}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${authorized}`,
      // authorized_keys lives under /tmp (world-writable), which StrictModes would refuse.
      'StrictModes no',
      'PubkeyAuthentication yes',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'UsePAM no',
      'PermitRootLogin no',
      `AllowUsers ${options.user ?? TEST_USER}`,
      `AllowTcpForwarding ${options.allowTcpForwarding ? 'yes' : 'no'}`,
      'X11Forwarding no',
      'PrintMotd no',
      'LogLevel VERBOSE',
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn(sshd, ['-D', '-e', '-f', config], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-16_000);
  });
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // Listening once it says so (LogLevel VERBOSE prints "Server listening on").
  const deadline = Date.now() + 20_000;
  while (!log.includes('Server listening')) {
    if (child.exitCode !== null) throw new Error(`sshd exited at start: ${log}`);
    if (Date.now() > deadline) throw new Error(`sshd not listening after 20 s: ${log}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const [type, key] = hostKey.publicKey.split(' ');
  return {
    host: '127.0.0.1',
    port,
    knownHostsLine: `[127.0.0.1]:${port} ${type} ${key}`,
    hostKeyFingerprint: hostKey.fingerprint,
    log: () => log,
    async stop() {
      process.removeListener('exit', killOnExit);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}
