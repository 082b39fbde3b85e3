/**
 * Pod exec over WebSocket, channel protocols `v5.channel.k8s.io` and `v4.channel.k8s.io`:
 * every binary message starts with a channel byte (0 stdin, 1 stdout, 2 stderr, 3 status,
 * 4 resize); in v5 the message `[255, 0]` closes stdin. The status (a `Status` object) is
 * sent on channel 3 once the process has exited and its output has been sent, then the
 * socket closes with 1000.
 *
 * Flow control: process output is paused while more than HIGH_WATER bytes are queued on the
 * socket, so a multi-GiB stream runs in constant memory at the speed of the reader; the
 * socket is paused while the process does not take its stdin. Either is also paused while
 * a limited link (ExecLink) says the stream is ahead of its pace.
 */
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { WebSocket } from 'ws';
import type { ExecLink } from './faults.js';
import { kill } from './sandbox.js';

export const EXEC_PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io'];

const HIGH_WATER = 4 * 1024 * 1024;
const LOW_WATER = 1024 * 1024;

export interface ExecSession {
  ws: WebSocket;
  child: ChildProcess;
  command: string[];
  /** Abort the connection (no close frame) once this many output bytes were sent. */
  dropAfterBytes?: number;
  /** Abort the connection once this many stdin bytes were received. */
  dropAfterInputBytes?: number;
  /** Counts the stream's bytes and paces them when the link is limited. */
  link?: ExecLink;
  onDone: (result: { exitCode: number | null; dropped: boolean }) => void;
}

export function statusFor(exitCode: number, command: string[]): Record<string, unknown> {
  if (exitCode === 0) return { metadata: {}, status: 'Success' };
  return {
    metadata: {},
    status: 'Failure',
    message: `command terminated with non-zero exit code: error executing command [${command.join(' ')}], exit code ${exitCode}`,
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(exitCode) }] },
  };
}

/**
 * The status of an exec whose command the runtime cannot start (containerd + runc; the
 * message `kubectl exec` prints after "error: "). `problem` is runc's reason, e.g.
 * `exec: "sh": executable file not found in $PATH`.
 */
export function execStartFailureStatus(problem: string): Record<string, unknown> {
  const cause = `error executing command in container: failed to exec in container: failed to start exec "${randomBytes(32).toString('hex')}": OCI runtime exec failed: exec failed: unable to start container process: ${problem}: unknown`;
  return {
    metadata: {},
    status: 'Failure',
    message: `Internal error occurred: ${cause}`,
    reason: 'InternalError',
    details: { causes: [{ message: cause }] },
    code: 500,
  };
}

/** Answers an exec whose command cannot start: the status on channel 3, then close 1000. */
export function failExec(ws: WebSocket, problem: string): void {
  const body = Buffer.from(JSON.stringify(execStartFailureStatus(problem)));
  const frame = Buffer.concat([Buffer.from([3]), body]);
  ws.on('message', () => {});
  ws.send(frame, { binary: true }, () => ws.close(1000));
}

export function runExec(session: ExecSession): void {
  const { ws, child, command } = session;
  const v5 = ws.protocol === 'v5.channel.k8s.io';
  let inflight = 0;
  let sent = 0;
  let received = 0;
  let finished = false;
  let dropped = false;
  const outputs: Readable[] = [];
  if (child.stdout) outputs.push(child.stdout);
  if (child.stderr) outputs.push(child.stderr);

  const finish = (exitCode: number | null) => {
    if (finished) return;
    finished = true;
    session.onDone({ exitCode, dropped });
  };

  const drop = () => {
    dropped = true;
    ws.terminate();
    kill(child);
  };

  // Output resumes when the socket has drained and the link's pace allows.
  let outputPaced = 0;
  const resumeOutput = () => {
    if (inflight < LOW_WATER && outputPaced === 0) for (const o of outputs) o.resume();
  };
  /** Pauses a direction for as long as the link says; `resume` once the wait is over. */
  const pace = (bytes: number, pause: () => void, resume: () => void): boolean => {
    const wait = session.link?.take(bytes) ?? 0;
    if (wait <= 0) return false;
    pause();
    setTimeout(resume, wait);
    return true;
  };

  const send = (channel: number, data: Buffer) => {
    if (ws.readyState !== ws.OPEN) return;
    const frame = Buffer.allocUnsafe(data.length + 1);
    frame[0] = channel;
    data.copy(frame, 1);
    inflight += frame.length;
    if (inflight > HIGH_WATER) for (const o of outputs) o.pause();
    if (channel === 1 || channel === 2) {
      pace(
        data.length,
        () => {
          outputPaced += 1;
          for (const o of outputs) o.pause();
        },
        () => {
          outputPaced -= 1;
          resumeOutput();
        },
      );
    }
    ws.send(frame, { binary: true }, () => {
      inflight -= frame.length;
      resumeOutput();
    });
  };

  const forward = (channel: number) => (chunk: Buffer) => {
    if (dropped) return;
    if (session.dropAfterBytes !== undefined && sent + chunk.length > session.dropAfterBytes) {
      const part = session.dropAfterBytes - sent;
      if (part > 0) send(channel, chunk.subarray(0, part));
      sent += Math.max(part, 0);
      // Let the partial chunk reach the socket, then cut the connection.
      setImmediate(drop);
      for (const o of outputs) o.pause();
      return;
    }
    sent += chunk.length;
    send(channel, chunk);
  };
  child.stdout?.on('data', forward(1));
  child.stderr?.on('data', forward(2));

  // How many reasons (stdin full, the link's pace) hold the socket; it reads again at none.
  let inputHeld = 0;
  const releaseInput = () => {
    inputHeld -= 1;
    if (inputHeld === 0 && !finished) ws.resume();
  };
  if (child.stdin) {
    const stdin = child.stdin;
    stdin.on('error', () => {
      // the process closed its stdin; further input is discarded
    });
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      const buf = isBinary ? data : Buffer.from(data);
      if (buf.length === 0) return;
      const channel = buf[0];
      if (channel === 0) {
        if (finished || dropped || stdin.writableEnded || stdin.destroyed) return;
        let data = buf.subarray(1);
        if (
          session.dropAfterInputBytes !== undefined &&
          received + data.length > session.dropAfterInputBytes
        ) {
          data = data.subarray(0, Math.max(session.dropAfterInputBytes - received, 0));
          received += data.length;
          // The command gets what arrived before the cut, as it would from a real broken stream.
          stdin.write(data, () => drop());
          return;
        }
        received += data.length;
        if (!stdin.write(data)) {
          inputHeld += 1;
          ws.pause();
          stdin.once('drain', releaseInput);
        }
        pace(
          data.length,
          () => {
            inputHeld += 1;
            ws.pause();
          },
          releaseInput,
        );
      } else if (channel === 255 && v5 && buf[1] === 0) {
        stdin.end();
        // Paused for stdin's sake only: nothing more will be written to it.
        if (ws.isPaused && inputHeld === 0) ws.resume();
      }
    });
  }

  ws.on('close', () => {
    if (!finished) kill(child);
  });
  ws.on('error', () => {
    kill(child);
  });

  child.on('error', (err) => {
    send(2, Buffer.from(`${err.message}\n`));
    send(
      3,
      Buffer.from(
        JSON.stringify({
          metadata: {},
          status: 'Failure',
          message: err.message,
          reason: 'InternalError',
        }),
      ),
    );
    ws.close(1000);
    finish(null);
  });

  // 'close' fires after the process exited and its stdout/stderr ended.
  child.on('close', (code, signal) => {
    if (dropped) {
      finish(code);
      return;
    }
    const exitCode = code ?? (signal === 'SIGKILL' ? 137 : 143);
    // Bookkeeping first, so that whoever reads the status sees its effects.
    finish(exitCode);
    // A socket paused for stdin back-pressure would never read the client's close frame.
    if (ws.isPaused) ws.resume();
    send(3, Buffer.from(JSON.stringify(statusFor(exitCode, command))));
    ws.close(1000);
  });
}
