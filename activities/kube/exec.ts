/**
 * Run an argv in a pod's container over the Kubernetes exec WebSocket (v5/v4 channel
 * protocols). TLS and credentials come from client-node's KubeConfig; the stream handling
 * is ours, because client-node's Exec ignores backpressure both ways (a multi-GiB copy
 * would sit in memory) and its close handling can end process.stdout. Here stdout pauses
 * the socket while the sink is full, stdin waits while the socket's buffer is full, and a
 * socket that closes without a status is an error, never a success.
 */
import querystring from 'node:querystring';
import type { Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { KubeConfig, V1Status } from '@kubernetes/client-node';
import WebSocket from 'ws';

const STDIN = 0;
const STDOUT = 1;
const STDERR = 2;
const STATUS = 3;
const CLOSE = 255;
const PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io'];
/** Stop feeding stdin while this much is queued in the socket. */
const STDIN_HIGH_WATER = 1 << 20;
const DEFAULT_CAPTURE_LIMIT = 4 << 20;
const STDERR_TAIL = 16 << 10;

export interface ExecRequest {
  namespace: string;
  pod: string;
  container: string;
  argv: readonly string[];
  /** Fed to the command's stdin with backpressure. With the v4 protocol stdin cannot be
   * half-closed: give commands that stop by themselves (e.g. `head -c N`). */
  stdin?: Readable;
  /** Where stdout goes; if absent, stdout is captured up to `captureLimitBytes`. */
  stdout?: Writable;
  captureLimitBytes?: number;
  /** Aborting terminates the WebSocket (activity cancellation, timeouts). */
  signal?: AbortSignal;
}

export interface ExecResult {
  exitCode: number;
  /** Captured stdout (empty when a sink was given). */
  stdout: string;
  /** The last 16 KiB of stderr. */
  stderr: string;
  /** Bytes of stdout received. */
  stdoutBytes: number;
}

/** The exec could not run or its stream broke: nothing is known of the command's outcome. */
export class ExecStreamError extends Error {
  override name = 'ExecStreamError';
  constructor(
    message: string,
    /** HTTP status of a refused upgrade (404: no such pod/container), if any. */
    readonly httpStatus?: number,
  ) {
    super(message);
  }
}

/** The command ran and exited non-zero. */
export class CommandFailedError extends Error {
  override name = 'CommandFailedError';
  constructor(
    readonly argv: readonly string[],
    readonly exitCode: number,
    readonly stderr: string,
  ) {
    super(
      `'${argv.join(' ')}' exited with code ${exitCode}: ${stderr.trim().slice(-2000) || '(no stderr)'}`,
    );
  }
}

/** Runs the command; resolves with its exit code whatever it is. */
export async function execInPod(kubeConfig: KubeConfig, request: ExecRequest): Promise<ExecResult> {
  const { namespace, pod, container, argv } = request;
  const limit = request.captureLimitBytes ?? DEFAULT_CAPTURE_LIMIT;
  const captured: Buffer[] = [];
  let capturedBytes = 0;
  let stdoutBytes = 0;
  let stderrTail = '';
  let status: V1Status | undefined;
  let failure: Error | undefined;

  const path = `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}/exec?${querystring.stringify(
    {
      stdout: true,
      stderr: true,
      stdin: request.stdin !== undefined,
      tty: false,
      command: [...argv],
      container,
    },
  )}`;

  const onBinary = (stream: number, data: Buffer): boolean => {
    switch (stream) {
      case STDOUT:
        stdoutBytes += data.length;
        if (request.stdout) {
          if (!request.stdout.write(data)) {
            ws.pause();
            request.stdout.once('drain', () => ws.resume());
          }
        } else {
          capturedBytes += data.length;
          if (capturedBytes > limit) {
            failure = new ExecStreamError(`'${argv.join(' ')}' printed more than ${limit} bytes`);
            return false;
          }
          captured.push(data);
        }
        return true;
      case STDERR:
        stderrTail = (stderrTail + data.toString('utf8')).slice(-STDERR_TAIL);
        return true;
      case STATUS:
        status = JSON.parse(data.toString('utf8')) as V1Status;
        return false;
      case CLOSE:
        return true;
      default:
        failure = new ExecStreamError(`exec stream sent data on unknown channel ${stream}`);
        return false;
    }
  };

  const ws = await connect(kubeConfig, path).catch((error: unknown) => {
    throw connectError(error, namespace, pod, container);
  });
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    if (!isBinary || data.length === 0) return;
    if (!onBinary(data[0] as number, data.subarray(1))) ws.close(1000);
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  ws.on('error', (error) => {
    failure ??= new ExecStreamError(`exec stream error: ${error.message}`);
  });
  const abort = () => {
    failure ??= new ExecStreamError(`exec of '${argv.join(' ')}' aborted`);
    ws.terminate();
  };
  request.signal?.addEventListener('abort', abort, { once: true });
  if (request.signal?.aborted) abort();
  const feeding = request.stdin ? feedStdin(ws, request.stdin) : Promise.resolve();
  feeding.catch((error: unknown) => {
    failure ??= new ExecStreamError(`feeding stdin failed: ${String(error)}`);
    ws.terminate();
  });

  const { code, reason } = await closed;
  request.signal?.removeEventListener('abort', abort);
  request.stdin?.destroy();
  if (request.stdout) {
    request.stdout.end();
    await finished(request.stdout).catch((error: unknown) => {
      failure ??= new ExecStreamError(`writing stdout failed: ${String(error)}`);
    });
  }
  if (failure) throw failure;
  if (!status) {
    throw new ExecStreamError(
      `exec stream of '${argv.join(' ')}' in ${namespace}/${pod} closed without a status (code ${code}${reason ? `: ${reason}` : ''})`,
    );
  }
  return {
    exitCode: exitCodeOf(status, argv),
    stdout: request.stdout ? '' : Buffer.concat(captured).toString('utf8'),
    stderr: stderrTail,
    stdoutBytes,
  };
}

/** Runs the command and throws CommandFailedError unless it exits 0. */
export async function execInPodChecked(
  kubeConfig: KubeConfig,
  request: ExecRequest,
): Promise<ExecResult> {
  const result = await execInPod(kubeConfig, request);
  if (result.exitCode !== 0)
    throw new CommandFailedError(request.argv, result.exitCode, result.stderr);
  return result;
}

function exitCodeOf(status: V1Status, argv: readonly string[]): number {
  if (status.status === 'Success') return 0;
  if (status.reason === 'NonZeroExitCode') {
    const cause = status.details?.causes?.find((c) => c.reason === 'ExitCode');
    const code = Number(cause?.message);
    if (Number.isInteger(code)) return code;
  }
  throw new ExecStreamError(
    `exec of '${argv.join(' ')}' failed: ${status.message ?? JSON.stringify(status)}`,
  );
}

/** Opens the exec WebSocket with the kubeconfig's server, TLS and credentials. */
async function connect(kubeConfig: KubeConfig, path: string): Promise<WebSocket> {
  const server = kubeConfig.getCurrentCluster()?.server;
  if (!server) throw new Error('the kubeconfig names no current cluster');
  const options: WebSocket.ClientOptions = {};
  await kubeConfig.applyToHTTPSOptions(options);
  const ws = new WebSocket(`${server.replace(/^http/, 'ws')}${path}`, PROTOCOLS, options);
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

async function feedStdin(ws: WebSocket, stdin: Readable): Promise<void> {
  for await (const chunk of stdin) {
    const data = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    const frame = Buffer.allocUnsafe(data.length + 1);
    frame[0] = STDIN;
    data.copy(frame, 1);
    await new Promise<void>((resolve, reject) => {
      // Resolve at once unless the socket is backed up; then wait until this frame is out.
      let waited = false;
      ws.send(frame, (error) => {
        if (error) reject(error);
        else if (waited) resolve();
      });
      if (ws.bufferedAmount > STDIN_HIGH_WATER) waited = true;
      else resolve();
    });
  }
  // v5 can close stdin alone; v4 cannot, and the command must end by itself.
  if (ws.protocol === 'v5.channel.k8s.io') ws.send(Buffer.from([CLOSE, STDIN]));
}

function connectError(
  error: unknown,
  namespace: string,
  pod: string,
  container: string,
): ExecStreamError {
  const message =
    error instanceof Error
      ? error.message
      : String((error as { message?: unknown })?.message ?? error);
  const httpStatus = Number(/Unexpected server response: (\d+)/.exec(message)?.[1]) || undefined;
  return new ExecStreamError(
    `exec into ${namespace}/${pod} (container ${container}) failed: ${message}`,
    httpStatus,
  );
}
