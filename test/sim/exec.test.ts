/**
 * Pod exec over WebSocket (v5.channel.k8s.io and v4.channel.k8s.io) through
 * @kubernetes/client-node's Exec: stdin, stdout, stderr, exit codes, a 1 GiB stream in
 * constant memory, and a stream cut by fault injection.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { apiError, type Clients, clientsFor, eventually, execIn } from './client.js';
import { type SimAdminCluster, startSimAdminCluster } from './index.js';

const NS = 'default';
let sim: SimAdminCluster;
let c: Clients;

before(async () => {
  sim = await startSimAdminCluster({ readyAfterMs: 100 });
  c = clientsFor(sim.kubeconfigPath);
  await c.core.createNamespacedPod({
    namespace: NS,
    body: {
      metadata: { name: 'shell' },
      spec: {
        containers: [
          { name: 'sh', image: 'debian', command: ['/bin/sh', '-c', 'while :; do sleep 1; done'] },
        ],
        terminationGracePeriodSeconds: 1,
      },
    },
  });
  await eventually('pod running', async () => {
    const p = await c.core.readNamespacedPod({ name: 'shell', namespace: NS });
    return p.status?.containerStatuses?.[0]?.ready === true;
  });
});

after(async () => {
  await sim?.stop();
});

const sh = (script: string, options: Parameters<typeof execIn>[5] = {}) =>
  execIn(c.kc, NS, 'shell', 'sh', ['/bin/sh', '-c', script], options);

test('v5: stdin reaches the process, closing stdin ([255,0]) ends it, Success, close 1000', async () => {
  const r = await execIn(c.kc, NS, 'shell', 'sh', ['/bin/sh', '-c', 'tr a-z A-Z; echo done >&2'], {
    stdin: 'hello exec\n',
  });
  assert.equal(r.protocol, 'v5.channel.k8s.io');
  assert.equal(r.stdout.toString(), 'HELLO EXEC\n');
  assert.equal(r.stderr, 'done\n');
  assert.equal(r.status?.status, 'Success');
  assert.equal(r.exitCode, 0);
  assert.equal(r.closeCode, 1000);
});

test('v5: a non-zero exit is a Failure with reason NonZeroExitCode and the ExitCode cause', async () => {
  const r = await sh('echo out; echo err >&2; exit 3');
  assert.equal(r.stdout.toString(), 'out\n');
  assert.equal(r.stderr, 'err\n');
  assert.equal(r.status?.status, 'Failure');
  assert.equal(r.status?.reason, 'NonZeroExitCode');
  assert.deepEqual(
    r.status?.details?.causes?.map((x) => ({ reason: x.reason, message: x.message })),
    [{ reason: 'ExitCode', message: '3' }],
  );
  assert.equal(r.exitCode, 3);
});

test('v4: stdout, stdin and exit codes', async () => {
  const ok = await sh('echo v4', { protocol: 'v4.channel.k8s.io' });
  assert.equal(ok.protocol, 'v4.channel.k8s.io');
  assert.equal(ok.stdout.toString(), 'v4\n');
  assert.equal(ok.exitCode, 0);
  const bad = await sh('exit 7', { protocol: 'v4.channel.k8s.io' });
  assert.equal(bad.status?.reason, 'NonZeroExitCode');
  assert.equal(bad.exitCode, 7);
  // v4 has no way to close stdin: the command reads a known length.
  const input = new Readable({ read() {} });
  input.push('12345');
  const withStdin = await sh('head -c 5 | rev; echo', {
    protocol: 'v4.channel.k8s.io',
    stdin: input,
  });
  assert.equal(withStdin.stdout.toString(), '54321\n');
  assert.equal(withStdin.exitCode, 0);
});

test('stdin of 64 MiB arrives intact', async () => {
  const size = 64 * 1024 * 1024;
  const chunk = Buffer.alloc(1024 * 1024, 'x');
  const expected = createHash('sha256');
  for (let i = 0; i < size / chunk.length; i++) expected.update(chunk);
  let sent = 0;
  const input = new Readable({
    read() {
      if (sent >= size) {
        this.push(null);
        return;
      }
      sent += chunk.length;
      this.push(chunk);
    },
  });
  const r = await sh('sha256sum | cut -d" " -f1', { stdin: input });
  assert.equal(r.exitCode, 0, r.stderr);
  assert.equal(r.stdout.toString().trim(), expected.digest('hex'));
});

test('1 GiB of stdout streams through in constant memory', async () => {
  const size = 1024 * 1024 * 1024;
  const expected = createHash('sha256');
  const mib = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < size / mib.length; i++) expected.update(mib);
  const hash = createHash('sha256');
  let received = 0;
  let peak = 0;
  const baseline = process.memoryUsage().rss;
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      received += chunk.length;
      if ((received & 0xfffffff) < chunk.length) peak = Math.max(peak, process.memoryUsage().rss);
      cb();
    },
  });
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().rss);
  }, 50);
  try {
    const r = await sh(`head -c ${size} /dev/zero`, { stdout: sink });
    assert.equal(r.exitCode, 0, r.stderr);
  } finally {
    clearInterval(timer);
  }
  assert.equal(received, size);
  assert.equal(hash.digest('hex'), expected.digest('hex'));
  const growth = peak - baseline;
  if (process.env.SIM_DEBUG) console.error(`RSS growth ${Math.round(growth / 1048576)} MiB`);
  assert.ok(
    growth < 300 * 1024 * 1024,
    `RSS grew by ${Math.round(growth / 1048576)} MiB while streaming 1 GiB`,
  );
});

test('fault: an exec stream dropped after N bytes ends without a status', async () => {
  sim.faults.dropExecAfterBytes(100_000, { pod: 'shell' });
  const r = await sh('head -c 10000000 /dev/zero');
  assert.ok(r.stdout.length <= 100_000, `got ${r.stdout.length} bytes`);
  assert.equal(r.status, undefined);
  assert.notEqual(r.closeCode, 1000);
  // The next exec is unaffected.
  const ok = await sh('head -c 1000000 /dev/zero | wc -c');
  assert.equal(ok.stdout.toString().trim(), '1000000');
});

test('fault: a limited link paces exec output and stdin, and counts their bytes', async () => {
  const mib = 1024 * 1024;
  sim.faults.limitExecBandwidth(8 * mib);
  try {
    // 4 MiB each way at 8 MiB/s cannot take less than about half a second (a 50 ms burst
    // passes at once); a lower bound only, so a loaded machine cannot fail it.
    const before = sim.faults.execLink.bytes;
    const started = performance.now();
    const out = await sh(`head -c ${4 * mib} /dev/zero`);
    assert.equal(out.stdout.length, 4 * mib);
    assert.ok(performance.now() - started >= 400, `4 MiB out in ${performance.now() - started} ms`);
    // Afresh (no debt from the output above), in 64 KiB messages: the process itself says
    // when it had all of stdin, so output pacing cannot make this pass.
    sim.faults.limitExecBandwidth(8 * mib);
    const chunks = Array.from({ length: 64 }, () => Buffer.alloc(64 * 1024));
    const sentAt = Date.now();
    const into = await sh('wc -c; date +%s%3N', { stdin: Readable.from(chunks) });
    const [count, doneAt] = into.stdout.toString().trim().split('\n');
    assert.equal(count, String(4 * mib));
    assert.ok(Number(doneAt) - sentAt >= 400, `4 MiB in in ${Number(doneAt) - sentAt} ms`);
    assert.ok(sim.faults.execLink.bytes - before >= 8 * mib);
  } finally {
    sim.faults.clear();
  }
});

test('fault: exec requests can fail with 500', async () => {
  sim.faults.failNext(1, 500, { verb: 'exec' });
  await assert.rejects(sh('true'));
  assert.equal((await sh('true')).exitCode, 0);
});

test('exec into a missing pod or container is refused', async () => {
  await assert.rejects(execIn(c.kc, NS, 'nope', 'sh', ['true']));
  await assert.rejects(execIn(c.kc, NS, 'shell', 'nope', ['true']));
  const e = await apiError(c.core.readNamespacedPod({ name: 'nope', namespace: NS }));
  assert.equal(e.code, 404);
});

test('exec runs in the pod sandbox: same root as the container, pod hostname', async () => {
  const r = await sh('echo shared > /tmp/marker; hostname; cat /etc/hostname');
  assert.equal(r.stdout.toString(), 'shell\nshell\n');
  const again = await sh('cat /tmp/marker');
  assert.equal(again.stdout.toString(), 'shared\n');
  assert.deepEqual(sim.loopErrors, []);
  assert.ok(k8s.Exec);
});
