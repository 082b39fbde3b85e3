/**
 * Small helpers for tests that talk to the simulator with `@kubernetes/client-node`.
 */
import { Readable, Writable } from 'node:stream';
import * as k8s from '@kubernetes/client-node';
import WebSocket from 'ws';

export interface Clients {
  kc: k8s.KubeConfig;
  core: k8s.CoreV1Api;
  apps: k8s.AppsV1Api;
  policy: k8s.PolicyV1Api;
}

export function clientsFor(kubeconfigPath: string): Clients {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  return {
    kc,
    core: kc.makeApiClient(k8s.CoreV1Api),
    apps: kc.makeApiClient(k8s.AppsV1Api),
    policy: kc.makeApiClient(k8s.PolicyV1Api),
  };
}

export interface ExecResult {
  stdout: Buffer;
  stderr: string;
  status: k8s.V1Status | undefined;
  /** Exit code from the status (0 on Success). */
  exitCode: number | undefined;
  /** WebSocket close code. */
  closeCode: number;
  protocol: string;
}

export interface ExecOptions {
  stdin?: Buffer | string | Readable;
  /** Offer only this protocol (default: client-node's list, v5 first). */
  protocol?: 'v5.channel.k8s.io' | 'v4.channel.k8s.io';
  /** Receive stdout here instead of collecting it. */
  stdout?: Writable;
}

export function exitCodeOf(status: k8s.V1Status | undefined): number | undefined {
  if (!status) return undefined;
  if (status.status === 'Success') return 0;
  const cause = status.details?.causes?.find((c) => c.reason === 'ExitCode');
  return cause?.message !== undefined ? Number(cause.message) : undefined;
}

/** Runs a command in a pod with client-node's Exec and collects what it says. */
export async function execIn(
  kc: k8s.KubeConfig,
  namespace: string,
  pod: string,
  container: string,
  command: string[],
  options: ExecOptions = {},
): Promise<ExecResult> {
  const chunks: Buffer[] = [];
  const stdout =
    options.stdout ??
    new Writable({
      write(chunk: Buffer, _enc, cb) {
        chunks.push(chunk);
        cb();
      },
    });
  let stderr = '';
  const stderrStream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      stderr += chunk.toString('utf8');
      cb();
    },
  });
  const handler = options.protocol ? singleProtocolHandler(kc, options.protocol) : undefined;
  const exec = new k8s.Exec(kc, handler);
  let status: k8s.V1Status | undefined;
  const stdin =
    options.stdin === undefined
      ? null
      : options.stdin instanceof Readable
        ? options.stdin
        : Readable.from([Buffer.from(options.stdin)]);
  const ws = await exec.exec(
    namespace,
    pod,
    container,
    command,
    stdout,
    stderrStream,
    stdin,
    false,
    (s) => {
      status = s;
    },
  );
  const closeCode = await new Promise<number>((resolve) => {
    ws.addEventListener('close', (e) => resolve(e.code));
  });
  return {
    stdout: Buffer.concat(chunks),
    stderr,
    status,
    exitCode: exitCodeOf(status),
    closeCode,
    protocol: ws.protocol,
  };
}

/** The HTTP code and parsed `Status` of a failed client-node call. */
export async function apiError(
  p: Promise<unknown>,
): Promise<{ code: number; status: Record<string, unknown> }> {
  try {
    await p;
  } catch (e) {
    if (e instanceof k8s.ApiException) {
      const body: unknown = typeof e.body === 'string' ? JSON.parse(e.body) : e.body;
      return { code: e.code, status: (body ?? {}) as Record<string, unknown> };
    }
    throw e;
  }
  throw new Error('expected the call to fail');
}

/** Options that make client-node send a merge patch or strategic merge patch. */
export function patchAs(strategy: 'merge' | 'strategic' | 'json'): k8s.ConfigurationOptions {
  return k8s.setHeaderOptions(
    'Content-Type',
    strategy === 'merge'
      ? k8s.PatchStrategy.MergePatch
      : strategy === 'strategic'
        ? k8s.PatchStrategy.StrategicMergePatch
        : k8s.PatchStrategy.JsonPatch,
  );
}

export async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/** Polls `check` until it returns something truthy. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(200);
  }
}

type WebSocketInterface = NonNullable<ConstructorParameters<typeof k8s.Exec>[1]>;

/** A client-node WebSocket handler that offers exactly one subprotocol (to test v4). */
function singleProtocolHandler(kc: k8s.KubeConfig, protocol: string): WebSocketInterface {
  return {
    async connect(path, _textHandler, binaryHandler) {
      const server = kc.getCurrentCluster()?.server ?? '';
      const opts: Record<string, unknown> = {};
      await kc.applyToHTTPSOptions(opts);
      const ws = new WebSocket(`${server.replace(/^http/, 'ws')}${path}`, [protocol], opts);
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      ws.on('message', (data: Buffer) => {
        if (binaryHandler && !binaryHandler(data.readUint8(0), data.subarray(1))) ws.close();
      });
      return ws as unknown as Awaited<ReturnType<WebSocketInterface['connect']>>;
    },
  };
}
