/**
 * The transport under the activities: exec over the Kubernetes WebSocket and the copies
 * built on it, against the simulated admin cluster (v5 and v4), a lean BusyBox pod, and a
 * small server that misbehaves on purpose. What it shows: the worker process survives
 * whatever the streams do (malformed frames, reset sockets, ENOSPC on its disk, stdin and
 * stdout errors) and the call fails with a clear message; nothing hangs (handshake
 * timeout, exec timeout, stall detection); nothing leaks (file descriptors counted);
 * cancellation is cancellation; an etcd snapshot is copied and verified without hashing
 * in the pod; messages stay small.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createNetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { type WebSocket, WebSocketServer } from 'ws';
import { parseWorkerConfig } from '../../activities/config/worker-config.js';
import { type Activities, createActivities } from '../../activities/index.js';
import { connectKube } from '../../activities/kube/client.js';
import {
  type CopyDestination,
  CopyIOError,
  CopyStalledError,
  CopyVerificationError,
  copyFromPod,
  copyToPod,
  fileDestination,
  fileSource,
  hasSnapshotTrailerSize,
  podFileSize,
  SnapshotHasher,
  statPodFile,
} from '../../activities/kube/copy.js';
import {
  CommandFailedError,
  ExecStreamError,
  ExecTimeoutError,
  execInPod,
  execInPodChecked,
} from '../../activities/kube/exec.js';
import { activityDeps, repositoryHostOf } from '../../worker/create-worker.js';
import { ETCDCTL_ONLY, memberProfile } from '../../workflows/contract/index.js';
import { makeRealSnapshot } from '../harness/etcd-tls.js';
import { simWorkerConfig } from '../harness/temporal.js';
import { type SimCluster, startSimCluster } from '../sim/index.js';

const V4 = ['v4.channel.k8s.io'] as const;
const MiB = 1024 * 1024;

let sim: SimCluster;
let real: Activities;
let scratch: string;
const ns = 'transport';
const uncaught: unknown[] = [];
const onUncaught = (error: unknown) => uncaught.push(error);

before(async () => {
  process.on('uncaughtException', onUncaught);
  sim = await startSimCluster({ members: 3, userClusterName: ns, adminEtcd: false });
  scratch = mkdtempSync(join(tmpdir(), 'transport-'));
  real = createActivities(
    activityDeps(
      parseWorkerConfig(
        simWorkerConfig(sim, join(scratch, 'backups'), {
          // A second repository on a disk the ENOSPC tests fill up (mounted there).
          repositories: {
            local: { path: join(scratch, 'backups') },
            tiny: { path: join(scratch, 'tiny') },
          },
        }),
        'the test',
      ),
      repositoryHostOf(ns, 'test-host'),
    ),
  );
});
after(async () => {
  process.off('uncaughtException', onUncaught);
  await sim?.stop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

const kube = () => connectKube(sim.kubeconfigPath);
const etcdPod = (n: number) => ({
  adminCluster: 'sim',
  namespace: ns,
  pod: `kube-etcd-${n}`,
  container: 'kube-etcd',
});
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const elapsed = (started: number) => Date.now() - started;

/** Runs an activity in the SDK's mock activity context; `env` to cancel or watch heartbeats. */
function runActivity<K extends keyof Activities>(
  name: K,
  input: Parameters<Activities[K]>[0],
  env = new MockActivityEnvironment(),
  from: Activities = real,
): Promise<Awaited<ReturnType<Activities[K]>>> {
  return env.run(from[name] as (i: unknown) => Promise<Awaited<ReturnType<Activities[K]>>>, input);
}

/** An etcd-snapshot-shaped file: `bodyBytes` (a multiple of 512) then the body's sha256. */
function snapshotShaped(bodyBytes: number): Buffer {
  const body = randomBytes(bodyBytes);
  return Buffer.concat([body, createHash('sha256').update(body).digest()]);
}

/** Puts `data` at `path` in the pod (through stdin; v5 closes it). */
async function putInPod(pod: ReturnType<typeof etcdPod>, path: string, data: Buffer) {
  await execInPodChecked(kube().config, {
    ...pod,
    argv: ['sh', '-c', 'cat > "$1"', 'sh', path],
    stdin: Readable.from([data]),
  });
}

async function podSha256(pod: ReturnType<typeof etcdPod>, path: string): Promise<string> {
  const { stdout } = await execInPodChecked(kube().config, { ...pod, argv: ['sha256sum', path] });
  return stdout.split(' ')[0] ?? '';
}

/** Open file descriptors of this process, with what they point at. */
function openFds(): Map<string, string> {
  const fds = new Map<string, string>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      fds.set(fd, readlinkSync(`/proc/self/fd/${fd}`));
    } catch {
      // closed between readdir and readlink (the readdir's own fd)
    }
  }
  return fds;
}

describe('exec against the simulated cluster', () => {
  for (const protocols of [undefined, V4]) {
    const label = protocols ? 'v4' : 'v5';
    test(`${label}: stdin in, stdout out, exit code kept`, async () => {
      const result = await execInPod(kube().config, {
        ...etcdPod(0),
        argv: ['sh', '-c', 'head -c 11; echo oops >&2; exit 3'],
        stdin: Readable.from([Buffer.from('hello '), Buffer.from('world')]),
        protocols,
      });
      assert.equal(result.protocol, protocols ? V4[0] : 'v5.channel.k8s.io');
      assert.equal(result.exitCode, 3);
      assert.equal(result.stdout, 'hello world');
      assert.match(result.stderr, /oops/);
    });
  }

  for (const protocols of [undefined, V4]) {
    const label = protocols ? 'v4' : 'v5';
    test(`${label}: a command that fails while its stdin is still being sent keeps its exit code and stderr`, async () => {
      // The pod's disk filling up mid-upload: the command stops reading and exits while the
      // worker still has megabytes to send. The link is paced so that the send is always
      // backed up when the status arrives (on a fast machine it sometimes was, and the exec
      // failed with "WebSocket is not open" instead of the command's own failure).
      sim.faults.limitExecBandwidth(2 * MiB);
      try {
        const stdin = Readable.from(Array.from({ length: 16 }, () => Buffer.alloc(MiB)));
        await assert.rejects(
          execInPodChecked(kube().config, {
            ...etcdPod(0),
            argv: [
              'sh',
              '-c',
              'head -c 65536 > /dev/null; echo "No space left on device" >&2; exit 1',
            ],
            stdin,
            protocols,
          }),
          (e: unknown) =>
            e instanceof CommandFailedError && e.exitCode === 1 && /No space left/.test(e.stderr),
        );
      } finally {
        sim.faults.clear();
      }
    });
  }

  test('values reach the command as arguments, never through a shell', async () => {
    const hostile = '$(touch /pwned); `id`';
    const result = await execInPod(kube().config, { ...etcdPod(0), argv: ['echo', hostile] });
    assert.equal(result.stdout, `${hostile}\n`);
    const probe = await execInPod(kube().config, { ...etcdPod(0), argv: ['test', '-e', '/pwned'] });
    assert.equal(probe.exitCode, 1);
  });

  test("a missing pod is an ExecStreamError with the HTTP status and the API server's reason", async () => {
    await assert.rejects(
      execInPod(kube().config, { ...etcdPod(0), pod: 'no-such-pod', argv: ['true'] }),
      (e: unknown) =>
        e instanceof ExecStreamError && e.httpStatus === 404 && /no-such-pod/.test(e.message),
    );
  });

  test('a stream cut before the status is an error, never a success', async () => {
    sim.faults.dropExecAfterBytes(1000, { namespace: ns, pod: 'kube-etcd-1' });
    await assert.rejects(
      execInPod(kube().config, { ...etcdPod(1), argv: ['head', '-c', '100000', '/dev/zero'] }),
      (e: unknown) => e instanceof ExecStreamError && /closed without a status/.test(e.message),
    );
  });

  test('timeoutMs bounds a command that hangs: retryable ExecTimeoutError, the command is stopped', async () => {
    const started = Date.now();
    await assert.rejects(
      execInPod(kube().config, {
        ...etcdPod(0),
        argv: ['sh', '-c', 'sleep 60'],
        name: 'a sleeper',
        timeoutMs: 500,
      }),
      (e: unknown) =>
        e instanceof ExecTimeoutError &&
        /'a sleeper' in transport\/kube-etcd-0 timed out after 500 ms/.test(e.message),
    );
    assert.ok(elapsed(started) < 5000, `rejected after ${elapsed(started)} ms`);
    // The simulated kubelet kills the command when its stream goes away.
    await sim.waitFor(
      'the sleeper to be gone',
      async () => {
        const ps = execFileSync('ps', ['-eo', 'args']).toString();
        return !ps.split('\n').some((l) => l.trim() === 'sleep 60');
      },
      10_000,
    );
  });

  test('the WebSocket handshake has a timeout', async () => {
    sim.faults.addLatency(10_000, { verb: 'exec' });
    try {
      const started = Date.now();
      await assert.rejects(
        execInPod(kube().config, { ...etcdPod(0), argv: ['true'], handshakeTimeoutMs: 300 }),
        (e: unknown) => e instanceof ExecStreamError && /handshake has timed out/.test(e.message),
      );
      assert.ok(elapsed(started) < 3000, `rejected after ${elapsed(started)} ms`);
    } finally {
      sim.faults.clear();
    }
  });

  test('an abort while connecting rejects at once with the signal reason', async () => {
    sim.faults.addLatency(10_000, { verb: 'exec' });
    try {
      const controller = new AbortController();
      const reason = new Error('stop now');
      setTimeout(() => controller.abort(reason), 200);
      const started = Date.now();
      await assert.rejects(
        execInPod(kube().config, { ...etcdPod(0), argv: ['true'], signal: controller.signal }),
        (e: unknown) => e === reason,
      );
      assert.ok(elapsed(started) < 2000, `rejected after ${elapsed(started)} ms`);
    } finally {
      sim.faults.clear();
    }
  });

  test('an abort mid-command rejects with the signal reason; an aborted signal never connects', async () => {
    const controller = new AbortController();
    const reason = new Error('cancelled by the test');
    setTimeout(() => controller.abort(reason), 300);
    await assert.rejects(
      execInPod(kube().config, {
        ...etcdPod(0),
        argv: ['sleep', '60'],
        signal: controller.signal,
      }),
      (e: unknown) => e === reason,
    );
    await assert.rejects(
      execInPod(kube().config, { ...etcdPod(0), argv: ['true'], signal: controller.signal }),
      (e: unknown) => e === reason,
    );
  });

  test('a failed command is named briefly, with a bounded stderr tail, never its whole argv', async () => {
    const script = `${': a long script line\n'.repeat(200)}head -c 100000 /dev/zero | tr '\\0' x >&2; echo LAST-WORDS >&2; exit 7`;
    const check = (e: unknown, name: string) => {
      assert.ok(e instanceof CommandFailedError);
      assert.equal(e.exitCode, 7);
      assert.ok(e.message.length < 600, `message of ${e.message.length} chars`);
      assert.ok(!e.message.includes('a long script line'), 'the script is not in the message');
      assert.match(e.message, new RegExp(`^'${name}' exited with code 7: …x+\\s*LAST-WORDS$`));
      assert.ok(e.stderr.length <= 4096);
      assert.ok((e.stack ?? '').length < 2000);
      return true;
    };
    await assert.rejects(
      execInPodChecked(kube().config, {
        ...etcdPod(0),
        argv: ['sh', '-c', script, 'member-data-script'],
      }),
      (e) => check(e, 'sh -c member-data-script'),
    );
    await assert.rejects(
      execInPodChecked(kube().config, {
        ...etcdPod(0),
        argv: ['sh', '-c', script],
        name: 'replace member data',
      }),
      (e) => check(e, 'replace member data'),
    );
  });

  test('a sink that fails (EIO) fails the exec, not the process', async () => {
    const sink = new Writable({
      write(_chunk, _encoding, callback) {
        callback(Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' }));
      },
    });
    await assert.rejects(
      execInPod(kube().config, {
        ...etcdPod(0),
        argv: ['head', '-c', String(8 * MiB), '/dev/zero'],
        stdout: sink,
      }),
      (e: unknown) => e instanceof ExecStreamError && /writing the output of .*EIO/.test(e.message),
    );
  });

  test('a stdin that fails (EIO) fails the exec, not the process', async () => {
    let sent = false;
    const stdin = new Readable({
      read() {
        if (!sent) {
          sent = true;
          this.push(Buffer.alloc(64 * 1024));
        } else {
          this.destroy(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' }));
        }
      },
    });
    await assert.rejects(
      execInPod(kube().config, { ...etcdPod(0), argv: ['sh', '-c', 'cat > /dev/null'], stdin }),
      (e: unknown) => e instanceof ExecStreamError && /feeding the stdin of .*EIO/.test(e.message),
    );
  });
});

/** An exec endpoint that misbehaves: what it does is chosen by the command's first word. */
async function misbehavingServer(): Promise<{ kubeConfig: KubeConfig; close(): Promise<void> }> {
  const server: Server = createHttpServer((_req, res) => {
    res.writeHead(404).end();
  });
  const wss = new WebSocketServer({
    noServer: true,
    handleProtocols: (offered) => (offered.has('v5.channel.k8s.io') ? 'v5.channel.k8s.io' : false),
  });
  const frame = (channel: number, text: string) =>
    Buffer.concat([Buffer.from([channel]), Buffer.from(text)]);
  const behave = (ws: WebSocket, command: string) => {
    ws.on('error', () => {});
    switch (command) {
      case 'malformed-status':
        ws.send(frame(1, 'some output'));
        ws.send(frame(3, '{"status": "Succ'));
        break;
      case 'array-status':
        ws.send(frame(3, '[1, 2]'));
        break;
      case 'unknown-channel':
        ws.send(frame(9, 'what is this'));
        break;
      case 'reset':
        ws.send(frame(1, 'partial output'), () =>
          (ws as unknown as { _socket: Socket })._socket.destroy(),
        );
        break;
      case 'strange-failure':
        ws.send(frame(3, JSON.stringify({ status: 'Failure', message: 'x'.repeat(100_000) })));
        ws.close(1000);
        break;
      default:
        ws.close(1000);
    }
  };
  server.on('upgrade', (req, socket, head) => {
    const command = new URL(req.url ?? '/', 'http://x').searchParams.getAll('command')[0] ?? '';
    wss.handleUpgrade(req, socket, head, (ws) => behave(ws, command));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    kubeConfig: kubeConfigFor(`http://127.0.0.1:${port}`),
    close: async () => {
      for (const ws of wss.clients) ws.terminate();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

function kubeConfigFor(server: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'fake', server, skipTLSVerify: true }],
    users: [{ name: 'fake' }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'fake' }],
    currentContext: 'fake',
  });
  return kc;
}

describe('exec against a server that misbehaves', () => {
  const call = (kubeConfig: KubeConfig, command: string, extra: object = {}) =>
    execInPod(kubeConfig, {
      namespace: 'ns',
      pod: 'p',
      container: 'c',
      argv: [command],
      ...extra,
    });

  test('malformed, wrong-shaped and unknown frames, resets and huge failures: clear errors, the process lives', async () => {
    const server = await misbehavingServer();
    try {
      await assert.rejects(call(server.kubeConfig, 'malformed-status'), (e: unknown) => {
        assert.ok(e instanceof ExecStreamError);
        assert.match(e.message, /'malformed-status' in ns\/p sent a malformed status: "\{/);
        return true;
      });
      await assert.rejects(
        call(server.kubeConfig, 'array-status'),
        /sent a malformed status: "\[1, 2\]"/,
      );
      await assert.rejects(call(server.kubeConfig, 'unknown-channel'), /unknown channel 9/);
      await assert.rejects(call(server.kubeConfig, 'reset'), /closed without a status/);
      await assert.rejects(call(server.kubeConfig, 'no-status'), /closed without a status/);
      await assert.rejects(call(server.kubeConfig, 'strange-failure'), (e: unknown) => {
        assert.ok(e instanceof ExecStreamError);
        assert.ok(e.message.length < 500, `message of ${e.message.length} chars`);
        return true;
      });
      // A sink given: it is released (destroyed), not left open, when the stream breaks.
      const sink = new Writable({ write: (_c, _e, cb) => cb() });
      await assert.rejects(call(server.kubeConfig, 'malformed-status', { stdout: sink }));
      assert.ok(sink.destroyed || sink.writableFinished);
    } finally {
      await server.close();
    }
    assert.deepEqual(uncaught, []);
  });

  test('a server that never answers the handshake: handshake timeout, and an abort is prompt', async () => {
    const sockets = new Set<Socket>();
    const silent = createNetServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const kc = kubeConfigFor(`http://127.0.0.1:${(silent.address() as { port: number }).port}`);
    try {
      let started = Date.now();
      await assert.rejects(
        call(kc, 'true', { handshakeTimeoutMs: 300 }),
        /exec into ns\/p \(container c\) failed: .*handshake has timed out/,
      );
      assert.ok(elapsed(started) < 3000);
      const controller = new AbortController();
      setTimeout(() => controller.abort(new Error('cancelled')), 100);
      started = Date.now();
      await assert.rejects(call(kc, 'true', { signal: controller.signal }), /^Error: cancelled$/);
      assert.ok(elapsed(started) < 2000);
      started = Date.now();
      await assert.rejects(call(kc, 'true', { timeoutMs: 200 }), ExecTimeoutError);
      assert.ok(elapsed(started) < 2000);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});

describe('etcd snapshot trailer', () => {
  test('a real snapshot ends in the sha256 of the rest, its size ≡ 32 mod 512; the hasher sees both in one pass', async () => {
    const dir = join(scratch, 'real-snapshot');
    mkdirSync(dir);
    const keys: Record<string, string> = {};
    for (let i = 0; i < 500; i++) keys[`/registry/k${i}`] = 'v'.repeat(i % 200);
    const { path } = await makeRealSnapshot(dir, keys);
    const data = readFileSync(path);
    assert.equal(data.length % 512, 32);
    assert.ok(hasSnapshotTrailerSize(data.length));
    assert.equal(
      sha256(data.subarray(0, -32)),
      data.subarray(-32).toString('hex'),
      'trailer = sha256(rest)',
    );
    // Any chunking, chunks shorter than the trailer included.
    for (const sizes of [[data.length], [1, 31, 32, 33, 4096], [7], [100_000, 3]]) {
      const hasher = new SnapshotHasher();
      let at = 0;
      for (let i = 0; at < data.length; i++) {
        const n = sizes[i % sizes.length] as number;
        hasher.update(data.subarray(at, at + n));
        at += n;
      }
      assert.deepEqual(hasher.digest(), { sha256: sha256(data), trailerValid: true });
    }
    const flipped = Buffer.from(data);
    flipped[1000] = (flipped[1000] as number) ^ 1;
    const hasher = new SnapshotHasher();
    hasher.update(flipped);
    assert.equal(hasher.digest().trailerValid, false);
  });
});

describe('copy', () => {
  const size = 8 * MiB + 17;

  test('out of a pod: cut mid-stream, resumed, byte-identical', async () => {
    await execInPod(kube().config, {
      ...etcdPod(0),
      argv: ['sh', '-c', 'head -c "$1" /dev/urandom > /copy-out.bin', 'sh', String(size)],
    });
    const destination = join(scratch, 'copy-out.bin');
    // The copy's first exec (wc and sha256sum) prints little; its second (tail) is cut.
    sim.faults.dropExecAfterBytes(3 * MiB, { namespace: ns, pod: 'kube-etcd-0', count: 2 });
    const source = { ...etcdPod(0), path: '/copy-out.bin' };
    await assert.rejects(copyFromPod(kube().config, source, fileDestination(destination)));
    const partial = readFileSync(destination).length;
    assert.ok(
      partial > 0 && partial < size,
      `a partial copy stays for the resume (${partial} bytes)`,
    );

    const result = await copyFromPod(kube().config, source, fileDestination(destination));
    assert.equal(result.resumedFromBytes, partial);
    assert.equal(result.sizeBytes, size);
    const local = readFileSync(destination);
    assert.equal(local.length, size);
    assert.equal(sha256(local), await podSha256(etcdPod(0), '/copy-out.bin'));
    assert.equal(result.sha256, sha256(local));

    const again = await copyFromPod(kube().config, source, fileDestination(destination));
    assert.equal(again.resumedFromBytes, size, 'a second copy sends nothing');
    assert.equal(sha256(readFileSync(destination)), result.sha256);
  });

  test('into a pod: a stream cut mid-way is resumed, byte-identical', async () => {
    const data = randomBytes(size);
    const source = join(scratch, 'copy-in-cut.bin');
    writeFileSync(source, data);
    const destination = { ...etcdPod(1), path: '/copy-in-cut.bin' };
    // Only the upload sends stdin; the copy's other execs are not cut.
    sim.faults.dropExecAfterBytes(3 * MiB, { namespace: ns, pod: 'kube-etcd-1', direction: 'in' });
    await assert.rejects(copyToPod(kube().config, await fileSource(source), destination));
    const have = await podFileSize(kube().config, {
      ...destination,
      path: '/copy-in-cut.bin.part',
    });
    assert.ok(
      have && have > 0 && have < size,
      `a partial upload stays for the resume (${have} bytes)`,
    );

    const result = await copyToPod(
      kube().config,
      await fileSource(source, sha256(data)),
      destination,
    );
    assert.equal(result.resumedFromBytes, have);
    assert.equal(await podSha256(etcdPod(1), '/copy-in-cut.bin'), sha256(data));
  });

  test('into a pod: a partial upload is resumed, then renamed into place', async () => {
    const data = randomBytes(size);
    const source = join(scratch, 'copy-in.bin');
    writeFileSync(source, data);
    // A previous attempt left the first 3 MiB under the temporary name.
    await putInPod(etcdPod(2), '/copy-in.bin.part', data.subarray(0, 3 * MiB));
    const destination = { ...etcdPod(2), path: '/copy-in.bin' };
    const result = await copyToPod(kube().config, await fileSource(source), destination);
    assert.equal(result.resumedFromBytes, 3 * MiB);
    const remote = await execInPod(kube().config, {
      ...etcdPod(2),
      argv: ['sh', '-c', 'sha256sum /copy-in.bin; test ! -e /copy-in.bin.part'],
    });
    assert.equal(remote.exitCode, 0, 'the temporary file is gone');
    assert.equal(remote.stdout.split(' ')[0], sha256(data));
    const again = await copyToPod(kube().config, await fileSource(source), destination);
    assert.equal(again.resumedFromBytes, size, 'a second copy sends nothing');
  });

  test('v4 (no stdin half-close): out of and into a pod', async () => {
    const data = snapshotShaped(4 * MiB);
    await putInPod(etcdPod(0), '/v4.db', data);
    const local = join(scratch, 'v4.db');
    const out = await copyFromPod(
      kube().config,
      { ...etcdPod(0), path: '/v4.db' },
      fileDestination(local),
      { protocols: V4, verify: 'snapshot-trailer' },
    );
    assert.equal(out.sha256, sha256(data));
    const into = await copyToPod(
      kube().config,
      await fileSource(local),
      { ...etcdPod(1), path: '/v4-in.db' },
      { protocols: V4 },
    );
    assert.equal(into.resumedFromBytes, 0);
    assert.equal(await podSha256(etcdPod(1), '/v4-in.db'), sha256(data));
  });
});

/** Snapshot-shaped and compressible as etcd's Kubernetes objects are (JSON, repeated keys). */
function compressibleSnapshot(bodyBytes: number): Buffer {
  const lines: string[] = [];
  let length = 0;
  for (let i = 0; length < bodyBytes; i++) {
    const line = `{"kind":"ConfigMap","metadata":{"name":"cm-${i}","uid":"${randomBytes(16).toString('hex')}","resourceVersion":"${i * 7}"},"data":{"k":"${randomBytes(24).toString('base64')}"}}\n`;
    lines.push(line);
    length += line.length;
  }
  const body = Buffer.from(lines.join('')).subarray(0, bodyBytes);
  return Buffer.concat([body, createHash('sha256').update(body).digest()]);
}

describe('copy gzipped on the wire', () => {
  const data = compressibleSnapshot(6 * MiB);

  test('out of a pod: fewer bytes cross, cut mid-stream, resumed, byte-identical and verified', async () => {
    await putInPod(etcdPod(0), '/gz-out.db', data);
    const destination = join(scratch, 'gz-out.db');
    const source = { ...etcdPod(0), path: '/gz-out.db' };
    const options = { verify: 'snapshot-trailer', compression: 'gzip' } as const;
    // The probe prints a few bytes; the gzip stream is cut after 256 KiB of it.
    sim.faults.dropExecAfterBytes(256 * 1024, { namespace: ns, pod: 'kube-etcd-0', count: 2 });
    await assert.rejects(copyFromPod(kube().config, source, fileDestination(destination), options));
    const partial = readFileSync(destination);
    assert.ok(
      partial.length > 256 * 1024 && partial.length < data.length,
      `${partial.length} bytes`,
    );
    assert.ok(
      partial.equals(data.subarray(0, partial.length)),
      'what arrived is a prefix of the file',
    );

    const wireBefore = sim.faults.execLink.bytes;
    const result = await copyFromPod(kube().config, source, fileDestination(destination), options);
    const wire = sim.faults.execLink.bytes - wireBefore;
    assert.equal(result.compression, 'gzip');
    assert.equal(result.resumedFromBytes, partial.length);
    assert.equal(result.sha256, sha256(data));
    assert.ok(readFileSync(destination).equals(data));
    const rest = data.length - partial.length;
    assert.ok(wire < rest / 2, `${wire} bytes crossed the wire for the last ${rest}`);
    assert.ok(result.wireBytes !== undefined && result.wireBytes < rest / 2);
  });

  test('into a pod: fewer bytes cross, a cut stream fails, a partial upload is resumed, verified in the pod', async () => {
    const local = join(scratch, 'gz-in.db');
    writeFileSync(local, data);
    const destination = { ...etcdPod(1), path: '/gz-in.db' };
    const part = { ...destination, path: '/gz-in.db.part' };
    sim.faults.dropExecAfterBytes(256 * 1024, {
      namespace: ns,
      pod: 'kube-etcd-1',
      direction: 'in',
    });
    await assert.rejects(
      copyToPod(kube().config, await fileSource(local), destination, { compression: 'gzip' }),
    );
    // Whatever the pod's gzip -dc had written when the stream was cut is a prefix.
    const cut = await podFileSize(kube().config, part);
    if (cut !== undefined && cut > 0) {
      const { stdout } = await execInPodChecked(kube().config, {
        ...etcdPod(1),
        argv: ['sha256sum', part.path],
      });
      assert.equal(stdout.split(' ')[0], sha256(data.subarray(0, cut)), `the ${cut} bytes kept`);
    }
    // How much that is, is a race; a partial upload of a known size is set up instead, and
    // must be what the pod then has.
    await putInPod(etcdPod(1), part.path, data.subarray(0, MiB));
    const wireBefore = sim.faults.execLink.bytes;
    const result = await copyToPod(kube().config, await fileSource(local), destination, {
      compression: 'gzip',
    });
    const wire = sim.faults.execLink.bytes - wireBefore;
    assert.equal(result.compression, 'gzip');
    assert.equal(result.resumedFromBytes, MiB);
    assert.equal(await podSha256(etcdPod(1), '/gz-in.db'), sha256(data));
    assert.equal(await podFileSize(kube().config, part), undefined, 'the partial file is gone');
    assert.ok(wire < (data.length - MiB) / 2, `${wire} bytes crossed the wire`);
  });

  test("the worker's copyCompression: gzip reaches the copy activities; the default copies plain", async () => {
    const gz = createActivities(
      activityDeps(
        parseWorkerConfig(
          simWorkerConfig(sim, join(scratch, 'backups'), {
            adminClusters: {
              sim: {
                kubeconfig: sim.kubeconfigPath,
                profile: sim.profile,
                copyCompression: 'gzip',
              },
            },
          }),
          'the test',
        ),
        repositoryHostOf(ns, 'test-host'),
      ),
    );
    const env = new MockActivityEnvironment();
    await putInPod(etcdPod(0), '/gz-activity.db', data);
    const backup = { repository: 'local', userClusterName: ns, backupId: 'gz-1' };
    const copy = await runActivity(
      'copySnapshotToRepository',
      { ...backup, source: { ...etcdPod(0), path: '/gz-activity.db' } },
      env,
      gz,
    );
    assert.equal(copy.compression, 'gzip');
    assert.equal(copy.sha256, sha256(data));
    await runActivity(
      'commitBackup',
      {
        ...backup,
        record: {
          member: 0,
          sourcePod: 'kube-etcd-0',
          createdAt: new Date().toISOString(),
          revision: 1,
          totalKeys: 1,
          etcdHash: 1,
          origin: 'taken',
          toolVersions: {},
          sha256: copy.sha256,
          sizeBytes: copy.sizeBytes,
        },
      },
      env,
      gz,
    );
    const into = await runActivity(
      'copySnapshotIntoPod',
      { backup, destination: { ...etcdPod(2), path: '/gz-activity-in.db' } },
      env,
      gz,
    );
    assert.equal(into.compression, 'gzip');
    assert.equal(await podSha256(etcdPod(2), '/gz-activity-in.db'), sha256(data));
    const plain = await runActivity('copySnapshotIntoPod', {
      backup,
      destination: { ...etcdPod(1), path: '/gz-activity-plain.db' },
    });
    assert.equal(plain.compression, undefined);
    assert.equal(plain.wireBytes, data.length);
  });

  test('into a pod over v4 it is not compressed (gzip -dc needs stdin to close); out of one it is', async () => {
    const local = join(scratch, 'gz-v4.db');
    writeFileSync(local, data);
    const into = await copyToPod(
      kube().config,
      await fileSource(local),
      { ...etcdPod(2), path: '/gz-v4.db' },
      { protocols: V4, compression: 'gzip' },
    );
    assert.equal(into.compression, undefined);
    assert.equal(into.wireBytes, data.length);
    assert.equal(await podSha256(etcdPod(2), '/gz-v4.db'), sha256(data));
    const out = await copyFromPod(
      kube().config,
      { ...etcdPod(2), path: '/gz-v4.db' },
      fileDestination(join(scratch, 'gz-v4-out.db')),
      { protocols: V4, verify: 'snapshot-trailer', compression: 'gzip' },
    );
    assert.equal(out.compression, 'gzip');
    assert.equal(out.sha256, sha256(data));
  });
});

describe('copy of an etcd snapshot out of the etcd pod (B2, B3)', () => {
  test("a real snapshot, saved by etcdctl in the pod, is copied without hashing in the pod; the sha256 is the pod's", async () => {
    const saved = await runActivity('saveSnapshotInPod', {
      ...etcdPod(0),
      profile: memberProfile(sim.profile, 0),
      backupId: 'real-1',
      tools: ETCDCTL_ONLY,
    });
    assert.equal(saved.path, '/snapshot-real-1.1.db', "the first attempt's own file");
    assert.ok(hasSnapshotTrailerSize(saved.sizeBytes));
    const pod = { ...etcdPod(0), path: saved.path };
    const backup = { repository: 'local', userClusterName: ns, backupId: 'real-1' };
    // Cut the stream once: the resume recomputes the hash of what was staged.
    sim.faults.dropExecAfterBytes(Math.floor(saved.sizeBytes / 3), {
      namespace: ns,
      pod: 'kube-etcd-0',
    });
    // The first exec of the copy is `wc -c` (a few bytes): it is cut only if over the limit.
    await runActivity('copySnapshotToRepository', { ...backup, source: pod }).catch(() => {});
    const copy = await runActivity('copySnapshotToRepository', { ...backup, source: pod });
    assert.equal(
      copy.sha256,
      await podSha256(etcdPod(0), saved.path),
      "the copy's sha256 is the file's",
    );
    assert.equal(copy.sizeBytes, saved.sizeBytes);
  });

  test("a retried save writes its own file and removes what earlier attempts left (an abandoned etcdctl's .part)", async () => {
    await putInPod(etcdPod(0), '/snapshot-race-1.1.db.part', Buffer.from('half a snapshot'));
    const saved = await runActivity(
      'saveSnapshotInPod',
      {
        ...etcdPod(0),
        profile: memberProfile(sim.profile, 0),
        backupId: 'race-1',
        tools: ETCDCTL_ONLY,
      },
      new MockActivityEnvironment({ attempt: 2 }),
    );
    assert.equal(saved.path, '/snapshot-race-1.2.db');
    assert.ok(hasSnapshotTrailerSize(saved.sizeBytes));
    const left = execInPodChecked(kube().config, {
      ...etcdPod(0),
      argv: ['sh', '-c', 'ls / | grep snapshot-race-1 || true'],
    });
    assert.equal((await left).stdout.trim(), 'snapshot-race-1.2.db');
  });

  test('a corrupted or truncated snapshot never verifies, and the partial copy is discarded', async () => {
    const data = snapshotShaped(2 * MiB);
    const local = join(scratch, 'corrupt.db');
    const copy = (path: string) =>
      copyFromPod(kube().config, { ...etcdPod(2), path }, fileDestination(local), {
        verify: 'snapshot-trailer',
      });

    const flipped = Buffer.from(data);
    flipped[MiB] = (flipped[MiB] as number) ^ 0x40;
    await putInPod(etcdPod(2), '/flipped.db', flipped);
    await assert.rejects(copy('/flipped.db'), (e: unknown) => {
      assert.ok(e instanceof CopyVerificationError);
      assert.match(e.message, /sha256 trailer does not match its content.*discarded/);
      return true;
    });
    assert.equal(statSync(local).size, 0, 'discarded');

    // Cut by a number of bytes that keeps the size ≡ 32 mod 512: the trailer check catches it.
    await putInPod(etcdPod(2), '/short512.db', data.subarray(512));
    await assert.rejects(copy('/short512.db'), CopyVerificationError);

    // Any other truncation is refused from its size alone, before a byte is sent.
    await putInPod(etcdPod(2), '/short.db', data.subarray(0, data.length - 100));
    await assert.rejects(copy('/short.db'), /not a complete etcd snapshot: .*size mod 512 is 444/);

    // The intact file copies, and matches.
    await putInPod(etcdPod(2), '/intact.db', data);
    assert.equal((await copy('/intact.db')).sha256, sha256(data));
  });
});

describe('liveness: stalls, progress', () => {
  test('out of a pod: a destination that stops taking bytes is a stall at byte N of M', async () => {
    await execInPodChecked(kube().config, {
      ...etcdPod(2),
      argv: ['sh', '-c', 'head -c 8388608 /dev/urandom > /stall.bin'],
    });
    let taken = 0;
    const stuck: CopyDestination = {
      name: 'a stuck disk',
      size: async () => 0,
      readExisting: async () => Readable.from([]),
      writeFrom: async () =>
        new Writable({
          write(chunk: Buffer, _encoding, callback) {
            if (taken === 0) {
              taken += chunk.length;
              callback();
            } // then never again
          },
        }),
    };
    const started = Date.now();
    await assert.rejects(
      copyFromPod(kube().config, { ...etcdPod(2), path: '/stall.bin' }, stuck, {
        stallTimeoutMs: 1500,
      }),
      (e: unknown) => {
        assert.ok(e instanceof CopyStalledError, String(e));
        assert.match(
          e.message,
          /copy of kube-etcd-2:\/stall.bin into a stuck disk stalled at byte \d+ of 8388608: no data moved for \d+ s/,
        );
        return true;
      },
    );
    assert.ok(elapsed(started) < 10_000, `stall detected after ${elapsed(started)} ms`);
  });

  test('into a pod: a source that stops giving bytes is a stall at byte N of M', async () => {
    let sent = false;
    const source = {
      name: 'a hung disk',
      sizeBytes: 4 * MiB,
      sha256: '0'.repeat(64),
      read: async () =>
        new Readable({
          read() {
            if (!sent) {
              sent = true;
              this.push(Buffer.alloc(MiB));
            }
          },
        }),
    };
    await assert.rejects(
      copyToPod(
        kube().config,
        source,
        { ...etcdPod(2), path: '/stall-in.bin' },
        {
          stallTimeoutMs: 1500,
        },
      ),
      (e: unknown) =>
        e instanceof CopyStalledError &&
        /copy of a hung disk into kube-etcd-2:\/stall-in.bin stalled at byte 1048576 of 4194304/.test(
          e.message,
        ),
    );
  });

  test('progress reports real bytes: the first at once, then about once a second, then the end', async () => {
    const total = 6 * MiB;
    const chunk = 256 * 1024;
    const source = {
      name: 'a slow source',
      sizeBytes: total,
      sha256: sha256(Buffer.alloc(total)),
      // 256 KiB every 100 ms: 2.4 s.
      read: async () =>
        Readable.from(
          (async function* () {
            for (let at = 0; at < total; at += chunk) {
              await new Promise((resolve) => setTimeout(resolve, 100));
              yield Buffer.alloc(chunk);
            }
          })(),
        ),
    };
    const reports: { at: number; bytesDone: number; totalBytes: number }[] = [];
    await copyToPod(
      kube().config,
      source,
      { ...etcdPod(1), path: '/slow.bin' },
      {
        onProgress: (p) => reports.push({ at: Date.now(), ...p }),
      },
    );
    assert.equal(reports[0]?.bytesDone, chunk, 'the first bytes are reported at once');
    assert.equal(reports.at(-1)?.bytesDone, total);
    assert.ok(reports.every((r) => r.totalBytes === total));
    for (let i = 1; i < reports.length; i++)
      assert.ok(
        (reports[i] as { bytesDone: number }).bytesDone >=
          (reports[i - 1] as { bytesDone: number }).bytesDone,
      );
    const middle = reports.slice(1, -1);
    assert.ok(middle.length >= 1 && middle.length <= 4, `${middle.length} reports in between`);
    assert.ok(
      middle.some((r) => r.bytesDone > 0 && r.bytesDone < total),
      'real progress',
    );
    for (let i = 1; i < middle.length; i++) {
      const gap = (middle[i] as { at: number }).at - (middle[i - 1] as { at: number }).at;
      assert.ok(gap > 600 && gap < 1600, `${gap} ms between reports`);
    }
  });
});

describe('cancellation', () => {
  test('an aborted copy out of or into a pod rejects with the signal reason; the partial stays', async () => {
    const data = snapshotShaped(16 * MiB);
    await putInPod(etcdPod(1), '/cancel.db', data);
    const local = join(scratch, 'cancel.db');
    const controller = new AbortController();
    const reason = new Error('cancelled by the test');
    const plain = fileDestination(local);
    const aborting: CopyDestination = {
      ...plain,
      async writeFrom(offset) {
        const sink = await plain.writeFrom(offset);
        let seen = 0;
        const write = sink.write.bind(sink);
        sink.write = ((chunk: Buffer, ...rest: never[]) => {
          seen += chunk.length;
          if (seen > 2 * MiB) controller.abort(reason);
          return write(chunk, ...rest);
        }) as typeof sink.write;
        return sink;
      },
    };
    await assert.rejects(
      copyFromPod(kube().config, { ...etcdPod(1), path: '/cancel.db' }, aborting, {
        signal: controller.signal,
        verify: 'snapshot-trailer',
      }),
      (e: unknown) => e === reason,
    );
    const partial = statSync(local).size;
    assert.ok(partial < data.length, `${partial} bytes stay`);

    const upload = new AbortController();
    const source = await fileSource(join(scratch, 'copy-in.bin'));
    const read = source.read;
    source.read = async (offset) => {
      const stream = await read(offset);
      stream.once('data', () => setTimeout(() => upload.abort(reason), 5));
      return stream;
    };
    await assert.rejects(
      copyToPod(
        kube().config,
        source,
        { ...etcdPod(1), path: '/cancel-in.bin' },
        {
          signal: upload.signal,
        },
      ),
      (e: unknown) => e === reason,
    );
  });

  test('a cancelled copy activity ends with a CancelledFailure (CANCELLED, not FAILED)', async () => {
    const data = snapshotShaped(32 * MiB);
    await putInPod(etcdPod(1), '/cancel-activity.db', data);
    const env = new MockActivityEnvironment();
    env.once('heartbeat', () => setTimeout(() => env.cancel(), 20));
    // Paced, the copy is still running 20 ms in on any machine (32 MiB takes 4 s).
    sim.faults.limitExecBandwidth(8 * MiB);
    try {
      await assert.rejects(
        runActivity(
          'copySnapshotToRepository',
          {
            repository: 'local',
            userClusterName: ns,
            backupId: 'cancelled-1',
            source: { ...etcdPod(1), path: '/cancel-activity.db' },
          },
          env,
        ),
        (e: unknown) => e instanceof CancelledFailure,
      );
    } finally {
      sim.faults.clear();
    }
  });
});

describe('the worker disk fills up (ENOSPC)', () => {
  let tiny: string;
  before(() => {
    if (process.getuid?.() !== 0) {
      throw new Error(
        'this test mounts a size-limited tmpfs (mount -t tmpfs -o size=8m) and must run as root',
      );
    }
    tiny = join(scratch, 'tiny');
    mkdirSync(tiny);
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=8m,mode=0700', 'tmpfs', tiny]);
  });
  after(() => {
    if (tiny) execFileSync('umount', ['-l', tiny]);
  });

  const filler = () => join(tiny, 'filler');
  const fill = (bytes: number) => writeFileSync(filler(), Buffer.alloc(bytes));

  test('a copy into the backup store on a full disk fails naming the file (NoSpace); freed, a new attempt resumes byte-identical', async () => {
    const data = snapshotShaped(6 * MiB);
    await putInPod(etcdPod(0), '/enospc.db', data);
    fill(5 * MiB);
    const input = {
      repository: 'tiny',
      userClusterName: ns,
      backupId: 'enospc-1',
      source: { ...etcdPod(0), path: '/enospc.db' },
    };
    await assert.rejects(runActivity('copySnapshotToRepository', input), (e: unknown) => {
      assert.ok(e instanceof Error);
      // A full repository stays full until someone makes room: said at once, not retried.
      assert.ok(
        e instanceof ApplicationFailure && e.nonRetryable && e.type === 'NoSpace',
        String(e),
      );
      assert.match(e.message, /no space left on device \(ENOSPC\)/);
      assert.ok(e.message.includes(`the staged snapshot of backup enospc-1 in ${tiny}`), e.message);
      assert.match(e.message, /at byte \d+ of 6291488/);
      return true;
    });
    const staged = join(tiny, ns, '.staging', 'enospc-1', 'snapshot.db');
    const partial = statSync(staged).size;
    assert.ok(partial > 0 && partial < data.length, `${partial} bytes staged`);

    // The same through a plain file: a CopyIOError that carries the errno.
    const plain = join(tiny, 'plain.db');
    await assert.rejects(
      copyFromPod(kube().config, input.source, fileDestination(plain), {
        verify: 'snapshot-trailer',
      }),
      (e: unknown) =>
        e instanceof CopyIOError && e.code === 'ENOSPC' && e.message.includes(`writing ${plain}`),
    );
    rmSync(plain);

    rmSync(filler());
    const copy = await runActivity('copySnapshotToRepository', input);
    assert.equal(copy.resumedFromBytes, partial);
    assert.equal(copy.sha256, sha256(data));
    assert.ok(readFileSync(staged).equals(data), 'byte-identical');
    assert.deepEqual(uncaught, []);
  });

  test('no file descriptor leaks across a series of failing copies', async () => {
    const data = snapshotShaped(6 * MiB);
    await putInPod(etcdPod(2), '/leak.db', data);
    const source = { ...etcdPod(2), path: '/leak.db' };
    const local = join(scratch, 'leak.db');
    const upload = join(scratch, 'leak-up.db');
    writeFileSync(upload, data);
    const store = { repository: 'tiny', userClusterName: ns };
    rmSync(join(tiny, ns), { recursive: true, force: true });
    // Warm up: everything a copy opens once (TLS, the staging directories).
    await copyFromPod(kube().config, source, fileDestination(local), {
      verify: 'snapshot-trailer',
    });
    const before = openFds();

    const failures: string[] = [];
    const expectFailure = async (what: string, run: () => Promise<unknown>) => {
      await run().then(
        () => assert.fail(`${what} should have failed`),
        (e: unknown) => failures.push(`${what}: ${(e as Error).message.slice(0, 80)}`),
      );
    };
    for (let round = 0; round < 3; round++) {
      fill(5 * MiB);
      await expectFailure('ENOSPC', () =>
        runActivity('copySnapshotToRepository', {
          ...store,
          backupId: `leak-${round}`,
          source,
        }),
      );
      rmSync(filler());
      rmSync(join(tiny, ns, '.staging'), { recursive: true, force: true });
      rmSync(local, { force: true });
      sim.faults.dropExecAfterBytes(MiB, { namespace: ns, pod: 'kube-etcd-2', count: 2 });
      await expectFailure('cut out', () =>
        copyFromPod(kube().config, source, fileDestination(local)),
      );
      sim.faults.dropExecAfterBytes(MiB, { namespace: ns, pod: 'kube-etcd-2', direction: 'in' });
      await expectFailure('cut in', async () =>
        copyToPod(kube().config, await fileSource(upload), { ...etcdPod(2), path: `/up-${round}` }),
      );
      sim.faults.failNext(1, 500, { verb: 'exec' });
      await expectFailure('refused exec in', async () =>
        copyToPod(kube().config, await fileSource(upload), { ...etcdPod(2), path: '/up-x' }),
      );
      const controller = new AbortController();
      const aborting = fileDestination(local);
      const write = aborting.writeFrom;
      aborting.writeFrom = async (offset) => {
        const sink = await write(offset);
        sink.once('pipe', () => controller.abort(new Error('aborted')));
        setTimeout(() => controller.abort(new Error('aborted')), 20);
        return sink;
      };
      await expectFailure('aborted out', () =>
        copyFromPod(kube().config, source, aborting, { signal: controller.signal }),
      );
      await putInPod(
        etcdPod(2),
        '/leak-bad.db',
        Buffer.concat([data.subarray(0, -1), Buffer.from([0])]),
      );
      await expectFailure('verification', () =>
        copyFromPod(kube().config, { ...source, path: '/leak-bad.db' }, fileDestination(local), {
          verify: 'snapshot-trailer',
        }),
      );
      let stalled = false;
      await expectFailure('stalled in', () =>
        copyToPod(
          kube().config,
          {
            name: 'stalling',
            sizeBytes: data.length,
            sha256: sha256(data),
            read: async () =>
              new Readable({
                read() {
                  if (!stalled) {
                    stalled = true;
                    this.push(data.subarray(0, MiB));
                  }
                },
              }),
          },
          { ...etcdPod(2), path: '/stall-leak' },
          { stallTimeoutMs: 500 },
        ),
      );
    }
    assert.equal(failures.length, 21, failures.join('\n'));
    // Sockets and pipes of the simulated cluster's own sessions close asynchronously.
    let after = openFds();
    for (let i = 0; i < 50 && after.size > before.size; i++) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      after = openFds();
    }
    const extra = [...after].filter(([fd, target]) => before.get(fd) !== target);
    assert.ok(
      after.size <= before.size,
      `${after.size - before.size} more fds: ${extra.map(([fd, t]) => `${fd} → ${t}`).join(', ')}`,
    );
    assert.equal(
      extra.filter(([, target]) => target.startsWith(scratch)).length,
      0,
      'no file of the test stays open',
    );
    assert.deepEqual(uncaught, []);
  });
});

describe('a lean (BusyBox) utility image', () => {
  const lean = { namespace: ns, pod: 'lean-0', container: 'lean' };
  const applets = [
    'sh',
    'head',
    'tail',
    'tee',
    'wc',
    'cat',
    'sha256sum',
    'mv',
    'rm',
    'mkdir',
    'sync',
    'df',
  ];
  const busybox = '/usr/bin/busybox';
  let available = false;

  before(async () => {
    try {
      statSync(busybox);
      available = true;
    } catch {
      return;
    }
    // Only the commands the module header lists are on PATH: no stat, no flock, no GNU mv.
    const setup = [
      `${busybox} mkdir -p /bb`,
      `for a in ${applets.join(' ')} sleep; do ${busybox} ln -sf ${busybox} /bb/$a; done`,
      `exec ${busybox} sleep 1000000`,
    ].join('; ');
    await kube().core.createNamespacedPod({
      namespace: ns,
      body: {
        metadata: { name: lean.pod, namespace: ns },
        spec: {
          containers: [
            {
              name: lean.container,
              image: 'busybox:1.35',
              command: [busybox, 'sh', '-c', setup],
              env: [{ name: 'PATH', value: '/bb' }],
            },
          ],
        },
      },
    });
    await sim.waitFor(
      'the lean pod',
      async () =>
        (
          await execInPod(kube().config, { ...lean, argv: ['sh', '-c', '[ -e /bb/df ]'] }).catch(
            () => undefined,
          )
        )?.exitCode === 0,
      60_000,
    );
  });

  test('copies out of and into it, resumed, verified, with only sh, head, tail, tee, wc, cat, sha256sum, mv, rm, mkdir, sync, df', async (t) => {
    if (!available) {
      t.skip(`${busybox} is not installed (apt-get install busybox)`);
      return;
    }
    const missing = await execInPod(kube().config, { ...lean, argv: ['stat', '/'] }).catch(
      (e: unknown) => e,
    );
    assert.ok(
      missing instanceof Error || (missing as { exitCode: number }).exitCode !== 0,
      'stat is not there',
    );
    const data = snapshotShaped(3 * MiB);
    const local = join(scratch, 'lean.db');
    writeFileSync(local, data);
    const into = { ...lean, path: '/lean.db' };

    // Into: cut, resumed, verified by BusyBox's sha256sum, renamed by BusyBox's mv.
    sim.faults.dropExecAfterBytes(MiB, { namespace: ns, pod: lean.pod, direction: 'in' });
    await assert.rejects(copyToPod(kube().config, await fileSource(local), into));
    const first = await copyToPod(kube().config, await fileSource(local), into);
    assert.ok(first.resumedFromBytes > 0);
    assert.equal((await statPodFile(kube().config, into))?.sha256, sha256(data));
    assert.equal(await podFileSize(kube().config, into), data.length);
    assert.equal(
      (await copyToPod(kube().config, await fileSource(local), into)).resumedFromBytes,
      data.length,
      'already there',
    );

    // Out: generic (one sha256sum) and snapshot (no hashing), each cut and resumed.
    for (const verify of ['sha256sum', 'snapshot-trailer'] as const) {
      const out = join(scratch, `lean-out-${verify}.db`);
      sim.faults.dropExecAfterBytes(MiB, { namespace: ns, pod: lean.pod, count: 2 });
      await assert.rejects(copyFromPod(kube().config, into, fileDestination(out), { verify }));
      const copy = await copyFromPod(kube().config, into, fileDestination(out), { verify });
      assert.ok(copy.resumedFromBytes > 0, `${verify}: resumed`);
      assert.equal(copy.sha256, sha256(data));
    }

    // Asked to gzip, an image without gzip copies uncompressed, verified all the same.
    const plain = await copyToPod(
      kube().config,
      await fileSource(local),
      { ...lean, path: '/lean-gz.db' },
      { compression: 'gzip' },
    );
    assert.equal(plain.compression, undefined);
    assert.equal(
      (await statPodFile(kube().config, { ...lean, path: '/lean-gz.db' }))?.sha256,
      sha256(data),
    );
    const plainOut = await copyFromPod(
      kube().config,
      into,
      fileDestination(join(scratch, 'lean-gz-out.db')),
      {
        verify: 'snapshot-trailer',
        compression: 'gzip',
      },
    );
    assert.equal(plainOut.compression, undefined);
    assert.equal(plainOut.sha256, sha256(data));
    // With BusyBox's gzip linked in, both directions compress with it.
    await execInPodChecked(kube().config, {
      ...lean,
      argv: [busybox, 'ln', '-sf', busybox, '/bb/gzip'],
    });
    try {
      const gzIn = await copyToPod(
        kube().config,
        await fileSource(local),
        { ...lean, path: '/lean-gz2.db' },
        { compression: 'gzip' },
      );
      assert.equal(gzIn.compression, 'gzip');
      assert.equal(
        (await statPodFile(kube().config, { ...lean, path: '/lean-gz2.db' }))?.sha256,
        sha256(data),
      );
      const gzOut = await copyFromPod(
        kube().config,
        into,
        fileDestination(join(scratch, 'lean-gz2-out.db')),
        {
          verify: 'snapshot-trailer',
          compression: 'gzip',
        },
      );
      assert.equal(gzOut.compression, 'gzip');
      assert.equal(gzOut.sha256, sha256(data));

      // A gzip that fails half-way (64 KiB out, then exit 1), each way: the copy fails
      // saying so, what was kept is a prefix of the file, and a retry with a sound gzip
      // resumes from it and verifies.
      const fakeGzip = (script: string) =>
        execInPodChecked(kube().config, {
          ...lean,
          argv: ['sh', '-c', `rm -f /bb/gzip; cat > /bb/gzip; ${busybox} chmod +x /bb/gzip`],
          stdin: Readable.from([Buffer.from(`#!/bb/sh\n${script}\n`)]),
        });
      const cutOut = join(scratch, 'lean-gz-fail-out.db');
      const gzOptions = { verify: 'snapshot-trailer', compression: 'gzip' } as const;
      // A "gzip" whose output is not gzip (it exits 0): a stream that does not decode is a
      // retryable copy failure saying so, never the worker's disk failing (CopyIOError).
      await fakeGzip(`${busybox} cat`);
      await assert.rejects(
        copyFromPod(kube().config, into, fileDestination(cutOut), gzOptions),
        (e: unknown) =>
          !(e instanceof CopyIOError) && /does not decode at byte \d+/.test(String(e)),
      );
      rmSync(cutOut, { force: true });
      await fakeGzip(`${busybox} gzip "$@" | ${busybox} head -c 65536\nexit 1`);
      await assert.rejects(
        copyFromPod(kube().config, into, fileDestination(cutOut), gzOptions),
        /failed: gzip/,
      );
      const keptOut = readFileSync(cutOut);
      assert.ok(keptOut.length > 0 && keptOut.equals(data.subarray(0, keptOut.length)));
      const cutIn = { ...lean, path: '/lean-gz-fail.db' };
      await assert.rejects(
        copyToPod(kube().config, await fileSource(local), cutIn, { compression: 'gzip' }),
        CommandFailedError,
      );
      const keptIn = await podFileSize(kube().config, { ...cutIn, path: `${cutIn.path}.part` });
      assert.ok(keptIn !== undefined && keptIn > 0 && keptIn < data.length, `${keptIn} kept`);
      assert.equal(
        (await statPodFile(kube().config, { ...cutIn, path: `${cutIn.path}.part` }))?.sha256,
        sha256(data.subarray(0, keptIn)),
        'what the pod kept is a prefix of the file',
      );
      await execInPodChecked(kube().config, {
        ...lean,
        argv: [busybox, 'ln', '-sf', busybox, '/bb/gzip'],
      });
      const resumedOut = await copyFromPod(kube().config, into, fileDestination(cutOut), gzOptions);
      assert.equal(resumedOut.resumedFromBytes, keptOut.length);
      assert.equal(resumedOut.sha256, sha256(data));
      const resumedIn = await copyToPod(kube().config, await fileSource(local), cutIn, {
        compression: 'gzip',
      });
      assert.equal(resumedIn.resumedFromBytes, keptIn);
      assert.equal((await statPodFile(kube().config, cutIn))?.sha256, sha256(data));
    } finally {
      await execInPodChecked(kube().config, { ...lean, argv: ['rm', '-f', '/bb/gzip'] });
    }

    // Without sha256sum in the image, a snapshot still copies out: nothing hashes in the pod.
    await execInPodChecked(kube().config, { ...lean, argv: ['rm', '/bb/sha256sum'] });
    try {
      const out = join(scratch, 'lean-nohash.db');
      const copy = await copyFromPod(kube().config, into, fileDestination(out), {
        verify: 'snapshot-trailer',
      });
      assert.equal(copy.sha256, sha256(data));
      await assert.rejects(
        copyFromPod(kube().config, into, fileDestination(out)),
        /'sha256sum' exited with code 127/,
      );
    } finally {
      await execInPodChecked(kube().config, {
        ...lean,
        argv: [busybox, 'ln', '-sf', busybox, '/bb/sha256sum'],
      });
    }
  });
});

describe('the simulated cluster', () => {
  test('no protocol violation, no loop error, no uncaught exception', () => {
    assert.deepEqual(sim.violations, []);
    assert.deepEqual(sim.loopErrors, []);
    assert.deepEqual(uncaught, []);
  });
});
