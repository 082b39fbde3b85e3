/**
 * Run an argv in a pod's container over the Kubernetes exec WebSocket (v5/v4 channel
 * protocols). TLS and credentials come from client-node's KubeConfig; the stream handling
 * is ours, because client-node's Exec ignores backpressure both ways (a multi-GiB copy
 * would sit in memory) and its close handling can end process.stdout. Here stdout pauses
 * the socket while the sink is full, stdin waits while the socket's buffer is full, and a
 * socket that closes without a status is an error, never a success.
 *
 * Whatever the machine does, the call settles and the process lives: every stream has an
 * error listener, no event handler throws (a malformed status frame, a sink that fails
 * with ENOSPC, a reset socket, a stdin that fails with EIO all end the call with an
 * ExecStreamError), the handshake has a timeout, the whole call can be bounded
 * (`timeoutMs`), and an aborted signal rejects with the signal's reason (for an activity,
 * Temporal's CancelledFailure, so the activity ends cancelled, not failed).
 *
 * Messages stay small: a command is named by `name` or its first word, never by its whole
 * argv (a shell script can be kilobytes, and Temporal refuses large failures).
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
export const EXEC_PROTOCOLS: readonly string[] = ['v5.channel.k8s.io', 'v4.channel.k8s.io'];
/** Stop feeding stdin while this much is queued in the socket. */
const STDIN_HIGH_WATER = 1 << 20;
const DEFAULT_CAPTURE_LIMIT = 4 << 20;
/** stderr kept in ExecResult and CommandFailedError. */
const STDERR_TAIL = 4 << 10;
/** stderr quoted in an error message. */
const MESSAGE_STDERR_TAIL = 400;
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 30_000;
/** After the socket is terminated, how long to wait for its 'close' before giving up on it. */
const CLOSE_GRACE_MS = 5_000;

export interface ExecRequest {
  namespace: string;
  pod: string;
  container: string;
  argv: readonly string[];
  /** A short name for messages (`etcdctl snapshot save`); default: the command's first word. */
  name?: string;
  /** Fed to the command's stdin with backpressure. With the v4 protocol stdin cannot be
   * half-closed: give commands that stop by themselves (e.g. `head -c N`). */
  stdin?: Readable;
  /**
   * Where stdout goes; if absent, stdout is captured up to `captureLimitBytes`. It is ended
   * (and awaited) when the command's stream ends normally, and destroyed when the call is
   * aborted or times out; what it received is always a prefix of the command's output.
   */
  stdout?: Writable;
  captureLimitBytes?: number;
  /** Aborting terminates the WebSocket; the call rejects with `signal.reason`. */
  signal?: AbortSignal;
  /** Bound on the whole call, connection included: then the stream is terminated and the
   * call rejects with an ExecTimeoutError (retryable). Default: unbounded. */
  timeoutMs?: number;
  /** Bound on the WebSocket opening handshake (default 30 s). */
  handshakeTimeoutMs?: number;
  /** Subprotocols to offer, preferred first (default v5, then v4). */
  protocols?: readonly string[];
}

export interface ExecResult {
  exitCode: number;
  /** Captured stdout (empty when a sink was given). */
  stdout: string;
  /** The last 4 KiB of stderr. */
  stderr: string;
  /** Bytes of stdout received. */
  stdoutBytes: number;
  /** The subprotocol the server chose. */
  protocol: string;
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

/** The exec did not finish within its `timeoutMs`; the stream was terminated. Retryable. */
export class ExecTimeoutError extends ExecStreamError {
  override name = 'ExecTimeoutError';
}

/** The command ran and exited non-zero. */
export class CommandFailedError extends Error {
  override name = 'CommandFailedError';
  /** The command's short name (never its whole argv). */
  readonly command: string;
  /** The last 4 KiB of its stderr. */
  readonly stderr: string;
  constructor(
    /** A short name, or an argv (then named by `commandName`). */
    command: string | readonly string[],
    readonly exitCode: number,
    stderr: string,
  ) {
    const name = typeof command === 'string' ? command : commandName(command);
    super(`'${name}' exited with code ${exitCode}: ${stderrForMessage(stderr)}`);
    this.command = name;
    this.stderr = stderr.slice(-STDERR_TAIL);
  }
}

/**
 * A command's name for messages, at most 60 characters: `env` and its assignments skipped,
 * the program's base name and up to two subcommand words (`etcdctl snapshot save`), flags
 * and paths left out; for `sh -c SCRIPT NAME`, the script's `$0` when it is a word
 * (`sh -c discard-old-member-data`), never the script.
 */
export function commandName(argv: readonly string[]): string {
  let i = 0;
  if (argv[0] === 'env') {
    i = 1;
    while (i < argv.length && /^[A-Za-z_][A-Za-z0-9_]*=/.test(argv[i] as string)) i++;
  }
  const program = (argv[i] ?? '?').split('/').pop() || '?';
  const word = /^[a-z][a-z0-9-]{0,30}$/;
  if ((program === 'sh' || program === 'bash') && argv[i + 1] === '-c') {
    const zero = argv[i + 3];
    return zero !== undefined && word.test(zero) && zero !== program
      ? `${program} -c ${zero}`.slice(0, 60)
      : `${program} -c`;
  }
  const words = [program];
  for (const arg of argv.slice(i + 1)) {
    if (words.length === 3) break;
    if (arg.startsWith('-')) continue;
    if (!word.test(arg)) break;
    words.push(arg);
  }
  return words.join(' ').slice(0, 60);
}

/** The end of stderr for a message: one line-ish, a few hundred bytes at most. */
export function stderrForMessage(stderr: string): string {
  const trimmed = stderr.trim();
  if (trimmed === '') return '(no stderr)';
  const tail = trimmed.slice(-MESSAGE_STDERR_TAIL);
  return tail.length < trimmed.length ? `…${tail}` : tail;
}

/** Runs the command; resolves with its exit code whatever it is. */
export async function execInPod(kubeConfig: KubeConfig, request: ExecRequest): Promise<ExecResult> {
  const { namespace, pod, container, argv } = request;
  const what = `'${request.name ?? commandName(argv)}' in ${namespace}/${pod}`;
  if (request.signal?.aborted) {
    releaseStreams(request);
    throw request.signal.reason;
  }

  // One signal for everything that ends the call early: the caller's abort, the timeout.
  const local = new AbortController();
  const onCallerAbort = () => local.abort(request.signal?.reason);
  request.signal?.addEventListener('abort', onCallerAbort, { once: true });
  const timer =
    request.timeoutMs === undefined
      ? undefined
      : setTimeout(
          () =>
            local.abort(
              new ExecTimeoutError(
                `${what} timed out after ${request.timeoutMs} ms (its stream was closed; the command itself may still run in the container)`,
              ),
            ),
          request.timeoutMs,
        );
  try {
    return await runExec(kubeConfig, request, what, local.signal, (error) => {
      if (local.signal.aborted) return local.signal.reason;
      return connectError(error, namespace, pod, container);
    });
  } finally {
    if (timer) clearTimeout(timer);
    request.signal?.removeEventListener('abort', onCallerAbort);
    releaseStreams(request);
  }
}

/**
 * Whatever happened, nothing is left reading our stdin, and a sink not ended by the end of
 * the stream (connect failed, aborted) is destroyed: its owner sees it close.
 */
function releaseStreams(request: ExecRequest): void {
  if (request.stdin && !request.stdin.readableEnded) request.stdin.destroy();
  if (request.stdout && !request.stdout.writableEnded) request.stdout.destroy();
}

/** Runs the command and throws CommandFailedError unless it exits 0. */
export async function execInPodChecked(
  kubeConfig: KubeConfig,
  request: ExecRequest,
): Promise<ExecResult> {
  const result = await execInPod(kubeConfig, request);
  if (result.exitCode !== 0)
    throw new CommandFailedError(request.name ?? request.argv, result.exitCode, result.stderr);
  return result;
}

/**
 * The exec: connect, then frames in, stdin out, until the socket closes. The handlers are
 * on the socket from its creation: a fast command's frames can arrive in the same read as
 * the upgrade, before an `await` after 'open' would return.
 */
async function runExec(
  kubeConfig: KubeConfig,
  request: ExecRequest,
  what: string,
  signal: AbortSignal,
  connectFailure: (error: unknown) => unknown,
): Promise<ExecResult> {
  const limit = request.captureLimitBytes ?? DEFAULT_CAPTURE_LIMIT;
  const sink = request.stdout;
  const captured: Buffer[] = [];
  let capturedBytes = 0;
  let stdoutBytes = 0;
  let stderrTail = '';
  let status: V1Status | undefined;
  let failure: unknown;
  let sinkFailed = false;
  let closed = false;
  let endingSink = false;
  let awaitingDrain = false;
  let socket: WebSocket | undefined;

  let markClosed!: (close: { code: number; reason: string }) => void;
  const closing = new Promise<{ code: number; reason: string }>((resolve) => {
    markClosed = resolve;
  });

  /** Records the first failure and ends the stream; never throws. */
  const fail = (error: unknown) => {
    failure ??= error;
    if (closed || !socket) return;
    // A socket paused for backpressure still delivers its close once terminated; the
    // timer is a backstop so a broken socket cannot hold the call forever.
    socket.resume();
    socket.terminate();
    setTimeout(() => markClosed({ code: 1006, reason: 'terminated' }), CLOSE_GRACE_MS).unref();
  };
  const failSink = (message: string) => {
    sinkFailed = true;
    fail(new ExecStreamError(message));
  };

  if (sink) {
    sink.on('error', (error) =>
      failSink(`writing the output of ${what} failed: ${errorMessage(error)}`),
    );
    sink.on('close', () => {
      if (!endingSink) failSink(`the output of ${what} was closed before the command ended`);
    });
  }

  const onFrame = (ws: WebSocket, channel: number, data: Buffer) => {
    switch (channel) {
      case STDOUT:
        stdoutBytes += data.length;
        if (sink) {
          if (sink.destroyed) {
            failSink(`the output of ${what} was closed before the command ended`);
          } else if (!sink.write(data) && !awaitingDrain) {
            // Frames already read still arrive while paused; one 'drain' listener is enough.
            awaitingDrain = true;
            ws.pause();
            sink.once('drain', () => {
              awaitingDrain = false;
              ws.resume();
            });
          }
        } else {
          capturedBytes += data.length;
          if (capturedBytes > limit) {
            fail(new ExecStreamError(`${what} printed more than ${limit} bytes`));
            return;
          }
          captured.push(data);
        }
        return;
      case STDERR:
        stderrTail = (stderrTail + data.toString('utf8')).slice(-STDERR_TAIL);
        return;
      case STATUS:
        status = parseStatus(data, what);
        ws.close(1000);
        return;
      case CLOSE:
        return;
      default:
        fail(new ExecStreamError(`exec stream of ${what} sent data on unknown channel ${channel}`));
    }
  };
  const attach = (ws: WebSocket) => {
    ws.on('close', (code, reason) => {
      closed = true;
      markClosed({ code, reason: reason.toString().slice(0, 200) });
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (failure !== undefined || !isBinary || data.length === 0) return;
      try {
        onFrame(ws, data[0] as number, data.subarray(1));
      } catch (error) {
        fail(error instanceof ExecStreamError ? error : new ExecStreamError(errorMessage(error)));
      }
    });
  };

  let ws: WebSocket;
  try {
    ws = await connect(kubeConfig, request, signal, attach);
  } catch (error) {
    throw connectFailure(error);
  }
  socket = ws;
  if (failure !== undefined) fail(failure);
  ws.on('error', (error) => fail(new ExecStreamError(`exec stream of ${what}: ${error.message}`)));
  const onAbort = () => fail(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  if (signal.aborted) onAbort();

  if (request.stdin) {
    const stdin = request.stdin;
    stdin.on('error', () => {
      // reported by the feeding loop below (or irrelevant once the socket closed)
    });
    feedStdin(ws, stdin, closing).catch((error: unknown) => {
      // Once the command's status has come, a send it no longer reads is no failure: the
      // status (a disk full mid-upload, say) is what the caller must see.
      if (!closed && status === undefined)
        fail(new ExecStreamError(`feeding the stdin of ${what} failed: ${errorMessage(error)}`));
    });
  }

  const { code, reason } = await closing;
  signal.removeEventListener('abort', onAbort);
  if (sink && !sinkFailed && !signal.aborted && !sink.destroyed) {
    // The stream ended, normally or broken: end the sink and wait until it has taken every
    // byte received (for a file: written and, with `flush`, durable: a retry resumes after
    // them), unless the call is aborted first. An aborted call destroys the sink instead.
    endingSink = true;
    sink.end();
    await settled(sink, signal).catch((error: unknown) => {
      fail(
        signal.aborted
          ? signal.reason
          : new ExecStreamError(`writing the output of ${what} failed: ${errorMessage(error)}`),
      );
    });
  }
  if (failure !== undefined) throw failure;
  if (!status) {
    throw new ExecStreamError(
      `exec stream of ${what} closed without a status (code ${code}${reason ? `: ${reason}` : ''})`,
    );
  }
  return {
    exitCode: exitCodeOf(status, what),
    stdout: sink ? '' : Buffer.concat(captured).toString('utf8'),
    stderr: stderrTail,
    stdoutBytes,
    protocol: ws.protocol,
  };
}

/** The status frame, or an ExecStreamError saying it is not one. */
function parseStatus(data: Buffer, what: string): V1Status {
  const text = data.toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new ExecStreamError(
      `exec stream of ${what} sent a malformed status: ${JSON.stringify(text.slice(0, 100))}`,
    );
  }
  return parsed as V1Status;
}

function exitCodeOf(status: V1Status, what: string): number {
  if (status.status === 'Success') return 0;
  if (status.reason === 'NonZeroExitCode') {
    const cause = status.details?.causes?.find((c) => c.reason === 'ExitCode');
    const code = Number(cause?.message);
    if (Number.isInteger(code)) return code;
  }
  const detail = String(status.message ?? JSON.stringify(status)).slice(0, 300);
  throw new ExecStreamError(`exec of ${what} failed: ${detail}`);
}

/**
 * Resolves once the stream has finished (a stream that emits 'close', a file, only once
 * closed: with `flush`, after the fsync); rejects on its error, or with the signal's
 * reason if aborted first (then the stream is destroyed: a hung disk does not hold us).
 */
async function settled(stream: Writable, signal: AbortSignal): Promise<void> {
  const onAbort = () => stream.destroy();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    await finished(stream);
  } catch (error) {
    if (signal.aborted) throw signal.reason;
    throw error;
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
  if (signal.aborted) throw signal.reason;
}

/** Opens the exec WebSocket with the kubeconfig's server, TLS and credentials. */
async function connect(
  kubeConfig: KubeConfig,
  request: ExecRequest,
  signal: AbortSignal,
  attach: (ws: WebSocket) => void,
): Promise<WebSocket> {
  const server = kubeConfig.getCurrentCluster()?.server;
  if (!server) throw new Error('the kubeconfig names no current cluster');
  const handshakeTimeout = request.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS;
  const options: WebSocket.ClientOptions = { handshakeTimeout, perMessageDeflate: false };
  await kubeConfig.applyToHTTPSOptions(options);
  signal.throwIfAborted();
  const path = `/api/v1/namespaces/${encodeURIComponent(request.namespace)}/pods/${encodeURIComponent(request.pod)}/exec?${querystring.stringify(
    {
      stdout: true,
      stderr: true,
      stdin: request.stdin !== undefined,
      tty: false,
      command: [...request.argv],
      container: request.container,
    },
  )}`;
  const ws = new WebSocket(
    `${server.replace(/^http/, 'ws')}${path}`,
    [...(request.protocols ?? EXEC_PROTOCOLS)],
    options,
  );
  attach(ws);
  return new Promise<WebSocket>((resolve, reject) => {
    let settledAlready = false;
    const settle = (error: unknown) => {
      if (settledAlready) return;
      settledAlready = true;
      clearTimeout(backstop);
      signal.removeEventListener('abort', onAbort);
      ws.off('open', onOpen);
      if (error === undefined) return resolve(ws);
      ws.terminate();
      reject(error);
    };
    const onOpen = () => settle(undefined);
    const onAbort = () => settle(signal.reason);
    // Always listened to: an 'error' without a listener would kill the process.
    ws.on('error', (error) => settle(error));
    ws.once('open', onOpen);
    // A refused upgrade: keep the API server's reason (a Status message), bounded.
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => {
        if (body.length < 4096) body += chunk.toString('utf8');
      });
      const refuse = () => {
        req.destroy();
        settle(new RefusedUpgrade(res.statusCode ?? 0, statusMessage(body)));
      };
      res.on('end', refuse);
      res.on('error', refuse);
      res.on('close', refuse);
    });
    // ws bounds the handshake; this also bounds reading a refusal's body.
    const backstop = setTimeout(
      () => settle(new Error(`opening handshake has timed out after ${handshakeTimeout} ms`)),
      handshakeTimeout + 1000,
    );
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

class RefusedUpgrade extends Error {
  constructor(
    readonly httpStatus: number,
    detail: string,
  ) {
    super(`Unexpected server response: ${httpStatus}${detail ? ` (${detail})` : ''}`);
  }
}

/** The `message` of a Status body, else the body's start. */
function statusMessage(body: string): string {
  try {
    const parsed = JSON.parse(body) as { message?: unknown };
    if (typeof parsed.message === 'string') return parsed.message.slice(0, 300);
  } catch {
    // not JSON
  }
  return body.trim().slice(0, 200);
}

async function feedStdin(ws: WebSocket, stdin: Readable, closing: Promise<unknown>): Promise<void> {
  let isClosed = false;
  const closed = closing.then(() => {
    isClosed = true;
  });
  for await (const chunk of stdin) {
    // Closing (the status came) or closed: nothing more is read on the other side.
    if (isClosed || ws.readyState !== WebSocket.OPEN) return;
    const data = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    const frame = Buffer.allocUnsafe(data.length + 1);
    frame[0] = STDIN;
    data.copy(frame, 1);
    const sent = new Promise<void>((resolve, reject) => {
      // Resolve at once unless the socket is backed up; then wait until this frame is out.
      let waited = false;
      ws.send(frame, (error) => {
        if (error) reject(error);
        else if (waited) resolve();
      });
      if (ws.bufferedAmount > STDIN_HIGH_WATER) waited = true;
      else resolve();
    });
    sent.catch(() => undefined);
    await Promise.race([sent, closed]);
    if (isClosed) return;
  }
  // v5 can close stdin alone; v4 cannot, and the command must end by itself.
  if (ws.protocol === 'v5.channel.k8s.io' && ws.readyState === WebSocket.OPEN)
    ws.send(Buffer.from([CLOSE, STDIN]));
}

function connectError(
  error: unknown,
  namespace: string,
  pod: string,
  container: string,
): ExecStreamError {
  const message = errorMessage(error);
  const httpStatus =
    error instanceof RefusedUpgrade
      ? error.httpStatus
      : Number(/Unexpected server response: (\d+)/.exec(message)?.[1]) || undefined;
  return new ExecStreamError(
    `exec into ${namespace}/${pod} (container ${container}) failed: ${message}`,
    httpStatus,
  );
}

export function errorMessage(error: unknown): string {
  const message =
    error instanceof Error
      ? error.message
      : String((error as { message?: unknown })?.message ?? error);
  return message.slice(0, 500);
}
