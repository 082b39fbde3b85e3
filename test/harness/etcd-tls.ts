/**
 * Real etcd 3.4 with TLS on loopback, for tests: a throwaway CA and member certificate made
 * with the openssl CLI, etcd processes that are always killed, and an etcdctl runner that
 * spawns an `EtcdctlCommand` argv directly (no shell).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import {
  connectionFlags,
  endpointHealthCommand,
  parseSnapshotStatus,
  snapshotSaveCommand,
  snapshotStatusCommand,
} from '../../activities/etcd/commands.js';
import {
  clusterProfileSchema,
  initialCluster,
  memberPodName,
  peerUrl,
  type SnapshotStatus,
} from '../../workflows/contract/index.js';
import { freePort } from '../harness/ports.js';

export { freePort };

const execFileAsync = promisify(execFile);

export interface TlsFiles {
  dir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
}

/**
 * A P-256 CA and one certificate for servers, peers and clients alike (serverAuth and
 * clientAuth), valid for the given loopback IPs and `localhost`.
 */
export async function makeTlsFiles(dir: string, ips: string[]): Promise<TlsFiles> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => execFileAsync('openssl', args);
  await openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', file('ca.key'));
  await openssl(
    'req',
    '-x509',
    '-new',
    '-key',
    file('ca.key'),
    '-subj',
    '/CN=etcd-test-ca',
    '-days',
    '2',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
    '-out',
    file('ca.crt'),
  );
  await openssl('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', file('member.key'));
  await openssl(
    'req',
    '-new',
    '-key',
    file('member.key'),
    '-subj',
    '/CN=etcd-test-member',
    '-out',
    file('member.csr'),
  );
  const san = [...ips.map((ip) => `IP:${ip}`), 'DNS:localhost'].join(',');
  await writeFile(
    file('member.ext'),
    [
      `subjectAltName=${san}`,
      'extendedKeyUsage=serverAuth,clientAuth',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'basicConstraints=CA:FALSE',
      '',
    ].join('\n'),
  );
  await openssl(
    'x509',
    '-req',
    '-in',
    file('member.csr'),
    '-CA',
    file('ca.crt'),
    '-CAkey',
    file('ca.key'),
    '-set_serial',
    '1',
    '-days',
    '2',
    '-extfile',
    file('member.ext'),
    '-out',
    file('member.crt'),
  );
  return { dir, caFile: 'ca.crt', certFile: 'member.crt', keyFile: 'member.key' };
}

/** Runs an etcdctl command line as given, with only PATH in its environment. */
export async function runEtcdctl(argv: string[]): Promise<{ stdout: string; stderr: string }> {
  const [file, ...args] = argv;
  if (!file) throw new Error('empty argv');
  return execFileAsync(file, args, {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    maxBuffer: 16 * 1024 * 1024,
  });
}

export interface EtcdMemberOptions {
  name: string;
  dataDir: string;
  clientUrl: string;
  peerUrl: string;
  /** Only read by etcd when the data dir is new. */
  initialCluster: string;
  initialClusterToken?: string;
  tls: TlsFiles;
  /** The etcd binary (another release's); `etcd` in PATH (Debian's 3.4) if absent. */
  binary?: string;
}

export interface RunningEtcd {
  clientUrl: string;
  log: () => string;
  /** True once the process has ended (a port taken, bad flags, bad data dir). */
  exited: () => boolean;
  stop: () => Promise<void>;
}

/** Every etcd started here, so `stopAllEtcd` can end them even when a test failed midway. */
const started = new Set<RunningEtcd>();

/** Starts one etcd member with TLS on client and peer ports (client certs required). */
export function startEtcd(options: EtcdMemberOptions): RunningEtcd {
  const tls = (name: string) => join(options.tls.dir, name);
  const child: ChildProcess = spawn(
    options.binary ?? 'etcd',
    [
      `--name=${options.name}`,
      `--data-dir=${options.dataDir}`,
      `--listen-client-urls=${options.clientUrl}`,
      `--advertise-client-urls=${options.clientUrl}`,
      `--listen-peer-urls=${options.peerUrl}`,
      `--initial-advertise-peer-urls=${options.peerUrl}`,
      `--initial-cluster=${options.initialCluster}`,
      `--initial-cluster-token=${options.initialClusterToken ?? 'etcd-test'}`,
      `--cert-file=${tls(options.tls.certFile)}`,
      `--key-file=${tls(options.tls.keyFile)}`,
      `--trusted-ca-file=${tls(options.tls.caFile)}`,
      '--client-cert-auth',
      `--peer-cert-file=${tls(options.tls.certFile)}`,
      `--peer-key-file=${tls(options.tls.keyFile)}`,
      `--peer-trusted-ca-file=${tls(options.tls.caFile)}`,
      '--peer-client-cert-auth',
      '--logger=zap',
      '--log-outputs=stderr',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } },
  );
  let output = '';
  const append = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20000);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const running: RunningEtcd = {
    clientUrl: options.clientUrl,
    log: () => output,
    exited: () => child.exitCode !== null || child.signalCode !== null,
    stop: async () => {
      started.delete(running);
      if (running.exited()) return;
      child.kill('SIGTERM');
      const stopped = await Promise.race([exited.then(() => true), sleep(5000, false)]);
      if (!stopped) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
  started.add(running);
  return running;
}

export async function stopAllEtcd(): Promise<void> {
  await Promise.all([...started].map((etcd) => etcd.stop()));
}

/**
 * Waits until `check` succeeds (etcd answering), up to a generous deadline for loaded
 * machines, giving up at once if one of `members` has exited; the error carries their logs.
 */
export async function waitUntil(
  what: string,
  check: () => Promise<unknown>,
  members: RunningEtcd[] = [],
  deadlineMs = 60000,
): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  const logs = () => members.map((m) => m.log()).join('\n');
  let lastError: unknown = 'timed out';
  while (Date.now() < deadline && !members.some((m) => m.exited())) {
    try {
      await check();
      return;
    } catch (error) {
      lastError = error;
      await sleep(200);
    }
  }
  throw new Error(`${what} did not happen: ${String(lastError)}\n${logs().slice(-3000)}`);
}

export interface RealSnapshot {
  path: string;
  status: SnapshotStatus;
  keys: Record<string, string>;
}

/**
 * A snapshot made by a real etcd through the B2 builder: starts a one-member etcd with
 * TLS in `dir`, puts `keys`, saves `<dir>/snapshot.db`, stops etcd.
 */
export async function makeRealSnapshot(
  dir: string,
  keys: Record<string, string> = { '/registry/test/a': 'alpha', '/registry/test/b': 'beta' },
): Promise<RealSnapshot> {
  const tls = await makeTlsFiles(dir, ['127.0.0.1']);
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const profile = clusterProfileSchema.parse({
    etcdEndpoint: `https://127.0.0.1:${clientPort}`,
    peerUrlTemplate: `https://127.0.{member}.1:${peerPort}`,
    certificatesDir: tls.dir,
    caFile: tls.caFile,
    certFile: tls.certFile,
    keyFile: tls.keyFile,
  });
  const etcd = startEtcd({
    name: memberPodName(profile, 0),
    dataDir: join(dir, 'source.etcd'),
    clientUrl: profile.etcdEndpoint,
    peerUrl: peerUrl(profile, 0),
    initialCluster: initialCluster(profile, 1),
    tls,
  });
  try {
    await waitUntil('etcd to answer', () => runEtcdctl(endpointHealthCommand(profile)), [etcd]);
    for (const [key, value] of Object.entries(keys)) {
      await runEtcdctl(['etcdctl', ...connectionFlags(profile), 'put', key, value]);
    }
    const path = join(dir, 'snapshot.db');
    await runEtcdctl(snapshotSaveCommand(profile, path));
    const status = parseSnapshotStatus((await runEtcdctl(snapshotStatusCommand(path))).stdout);
    return { path, status, keys };
  } finally {
    await etcd.stop();
  }
}
