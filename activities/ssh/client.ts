/**
 * A small wrapper over the `ssh2` client: connect to a server (through a jump host when one
 * is configured) with its host key checked, run one command and stream its stdout. What a
 * retry cannot fix fails with its own error class (a refused host key, a refused login);
 * anything else — a refused connection, a timeout, a connection cut mid-stream — is a
 * plain error, and the activity is retried.
 *
 * Messages name the server by its role; the host itself appears only where a person must
 * check it (a refused host key), so the configuration stays out of workflow history.
 */
import { readFile } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { Client, type ClientChannel, type ConnectConfig } from 'ssh2';
import type { SshServerConfig } from '../config/worker-config.js';
import {
  fingerprintOf,
  type HostIdentity,
  HostKeyRejectedError,
  type HostKeyTrust,
  keyTypeOf,
  knownKeyTypes,
  verifyHostKey,
} from './host-keys.js';

/** The server refused the worker's key for the configured user. */
export class SshAuthenticationError extends Error {
  override name = 'SshAuthenticationError';
}

/** A file the configuration names (private key, known_hosts) cannot be read or used. */
export class SshConfigurationError extends Error {
  override name = 'SshConfigurationError';
}

export interface ExecOutcome {
  /** Undefined when the command was killed by a signal or the channel closed without a status. */
  exitCode?: number;
  signal?: string;
  /** The last 16 KiB of stderr. */
  stderr: string;
}

export interface SshSession {
  /** Runs `command` (one shell word list, quoted with `shellQuote`), its stdout into `stdout`. */
  exec(command: string, stdout: Writable): Promise<ExecOutcome>;
  close(): void;
}

export interface SshConnectOptions {
  adminCluster: string;
  signal?: AbortSignal;
  /** Handshake and login must finish within this (default 20 s). */
  readyTimeoutMs?: number;
}

const STDERR_TAIL = 16 << 10;

/** POSIX shell single quotes: the command line SSH hands to the remote shell. */
export function shellQuote(argv: readonly string[]): string {
  return argv
    .map((a) => (/^[A-Za-z0-9_./=:-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`))
    .join(' ');
}

/** Reads a file the configuration names; its path goes to the worker's log, not into the error. */
async function readConfigured(path: string, what: string, adminCluster: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    console.error(
      `worker: cannot read the ${what} of admin cluster ${adminCluster} (${path}): ${String(error)}`,
    );
    throw new SshConfigurationError(
      `cannot read the ${what} the worker's configuration gives admin cluster ${adminCluster} (${(error as NodeJS.ErrnoException).code ?? 'error'}); the worker's log names the file`,
    );
  }
}

async function trustOf(server: SshServerConfig, adminCluster: string): Promise<HostKeyTrust> {
  if (server.hostKeyFingerprint)
    return { kind: 'fingerprint', fingerprint: server.hostKeyFingerprint };
  if (!server.knownHostsPath) throw new SshConfigurationError('no host key to check against');
  const text = await readConfigured(server.knownHostsPath, 'SSH known_hosts file', adminCluster);
  return { kind: 'known-hosts', text: text.toString('utf8') };
}

/** ssh2's names for the algorithms of a known_hosts key type. */
function hostKeyAlgorithms(keyTypes: string[]): string[] {
  return keyTypes.flatMap((t) =>
    t === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [t],
  );
}

/** Connects one client (over `sock` when given: the jump host's forwarded channel). */
async function connectOne(
  server: SshServerConfig,
  identity: HostIdentity,
  options: SshConnectOptions,
  sock?: ClientChannel,
): Promise<Client> {
  const [privateKey, trust] = await Promise.all([
    readConfigured(server.privateKeyPath, 'SSH private key', options.adminCluster),
    trustOf(server, options.adminCluster),
  ]);
  const client = new Client();
  let rejected: HostKeyRejectedError | undefined;
  const preferred = hostKeyAlgorithms(knownKeyTypes(trust, server.host, server.port));
  const config: ConnectConfig = {
    host: server.host,
    port: server.port,
    username: server.user,
    privateKey,
    readyTimeout: options.readyTimeoutMs ?? 20_000,
    // A connection that dies silently mid-copy is noticed in ~30 s, and the copy retried.
    keepaliveInterval: 10_000,
    keepaliveCountMax: 3,
    hostVerifier: (key: Buffer) => {
      const verdict = verifyHostKey(trust, server.host, server.port, key);
      if (!verdict.trusted)
        rejected = new HostKeyRejectedError(
          identity,
          verdict.reason,
          keyTypeOf(key),
          fingerprintOf(key),
        );
      return verdict.trusted;
    },
    ...(preferred.length > 0
      ? {
          algorithms: {
            serverHostKey: preferred as NonNullable<ConnectConfig['algorithms']>['serverHostKey'],
          },
        }
      : {}),
    ...(sock ? { sock } : {}),
  };
  const describe = `the ${identity.role} of admin cluster ${options.adminCluster}`;
  return new Promise<Client>((resolve, reject) => {
    const onAbort = () => {
      client.end();
      reject(new Error(`SSH to ${describe} cancelled`));
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    client.once('ready', () => {
      options.signal?.removeEventListener('abort', onAbort);
      resolve(client);
    });
    client.once('error', (error: Error & { level?: string; code?: string }) => {
      options.signal?.removeEventListener('abort', onAbort);
      client.end();
      if (rejected) reject(rejected);
      else if (error.level === 'client-authentication')
        reject(
          new SshAuthenticationError(
            `${describe} refused the login of the user and key the worker's configuration gives it (${error.message})`,
          ),
        );
      else {
        console.error(
          `worker: SSH to ${describe} (${server.host}:${server.port}) failed: ${error.message}`,
        );
        reject(
          new Error(
            `SSH to ${describe} failed: ${error.code ?? error.level ?? 'error'} (the worker's log has the details)`,
          ),
        );
      }
    });
    try {
      client.connect(config);
    } catch (error) {
      // ssh2 throws here for a private key it cannot parse (or that needs a passphrase).
      reject(
        new SshConfigurationError(
          `the SSH private key of admin cluster ${options.adminCluster} cannot be used: ${(error as Error).message}`,
        ),
      );
    }
  });
}

/** Opens a session to `node`, through `jump` when given; both host keys are checked. */
export async function openSsh(
  node: SshServerConfig,
  jump: SshServerConfig | undefined,
  options: SshConnectOptions,
): Promise<SshSession> {
  const identity = (role: HostIdentity['role'], s: SshServerConfig): HostIdentity => ({
    role,
    adminCluster: options.adminCluster,
    host: s.host,
    port: s.port,
  });
  let jumpClient: Client | undefined;
  let sock: ClientChannel | undefined;
  if (jump) {
    jumpClient = await connectOne(jump, identity('jump host', jump), options);
    const via = jumpClient;
    try {
      sock = await new Promise<ClientChannel>((resolve, reject) => {
        via.forwardOut('127.0.0.1', 0, node.host, node.port, (error, channel) => {
          if (error)
            reject(
              new Error(
                `the jump host of admin cluster ${options.adminCluster} could not reach the node: ${error.message}`,
              ),
            );
          else resolve(channel);
        });
      });
    } catch (error) {
      via.end();
      throw error;
    }
  }
  let client: Client;
  try {
    client = await connectOne(node, identity('admin control-plane node', node), options, sock);
  } catch (error) {
    jumpClient?.end();
    throw error;
  }
  const close = () => {
    client.end();
    jumpClient?.end();
  };
  return {
    close,
    exec(command, stdout) {
      return new Promise<ExecOutcome>((resolve, reject) => {
        client.exec(command, (error, channel) => {
          if (error) {
            reject(new Error(`ssh exec failed: ${error.message}`));
            return;
          }
          let stderr = '';
          let exit: { exitCode?: number; signal?: string } | undefined;
          channel.stderr.on('data', (chunk: Buffer) => {
            stderr = (stderr + chunk.toString('utf8')).slice(-STDERR_TAIL);
          });
          channel.on('exit', (code: number | null, signal?: string) => {
            exit =
              code === null || code === undefined
                ? { ...(signal ? { signal } : {}) }
                : { exitCode: code };
          });
          const onAbort = () => channel.close();
          options.signal?.addEventListener('abort', onAbort, { once: true });
          channel.pipe(stdout);
          // The channel closes after exit-status (or without one, when the connection died);
          // stderr's last bytes may be emitted after that.
          const closed = new Promise<void>((r) => channel.once('close', () => r()));
          const stderrDone = finished(channel.stderr).catch(() => undefined);
          const clientClosed = new Promise<void>((r) => client.once('close', () => r()));
          void Promise.race([Promise.all([closed, stderrDone]), clientClosed]).then(() => {
            options.signal?.removeEventListener('abort', onAbort);
            // A channel that died without EOF does not end the pipe: the reader must see the end.
            if (!stdout.writableEnded) stdout.end();
            resolve({ ...(exit ?? {}), stderr });
          });
        });
      });
    },
  };
}
