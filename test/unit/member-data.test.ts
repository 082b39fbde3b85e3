/**
 * The member data replacement script (activities/etcd/member-data.ts, SPEC R4–R6, H5c–H5e) run for real on
 * the host: the exact argv the activity sends to the utility pod, spawned without a shell
 * against a temporary directory that plays the member's volume, with the real etcdctl 3.4
 * restore inside it. The old data is the data dir of a real etcd that held OLD_KEYS; the
 * new data is a real snapshot holding NEW_KEYS. Results are checked by starting etcd on
 * the data dir and reading the keys back, and by comparing the member directories with
 * what etcd left (old) and what `etcdctl snapshot restore` alone writes (new).
 *
 * The crash test puts a directory of wrapper scripts as the ONLY entry of PATH: every
 * external command the script runs is one of them (an unwrapped one would not be found),
 * and the wrapper numbered K SIGKILLs the script's shell before or after running the
 * real command.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmod,
  cp,
  mkdir,
  mkdtemp,
  open,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  truncate,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, test } from 'node:test';
import { promisify } from 'node:util';
import { z } from 'zod';
import {
  connectionFlags,
  endpointHealthCommand,
  snapshotRestoreCommand,
  withEnvArgv,
} from '../../activities/etcd/commands.js';
import {
  discardOldMemberDataArgv,
  type MemberDataPaths,
  memberDataPaths,
  parseReplaceState,
  RESTORE_INCOMPLETE_EXIT,
  replaceMemberDataArgv,
  UNEXPECTED_STATE_EXIT,
} from '../../activities/etcd/member-data.js';
import {
  type ClusterProfile,
  clusterProfileSchema,
  initialCluster,
  memberPodName,
  peerUrl,
} from '../../workflows/contract/index.js';
import {
  freePort,
  makeRealSnapshot,
  makeTlsFiles,
  type RealSnapshot,
  runEtcdctl,
  startEtcd,
  stopAllEtcd,
  type TlsFiles,
  waitUntil,
} from '../harness/etcd-tls.js';

const execFileAsync = promisify(execFile);

const OLD_KEYS: Record<string, string> = {
  '/registry/old/only': 'old-alpha',
  '/registry/shared/key': 'old-value',
};
const NEW_KEYS: Record<string, string> = {
  '/registry/new/only': 'new-alpha',
  '/registry/new/second': 'new-beta',
  '/registry/shared/key': 'new-value',
};
const TOKEN = 'restore-7f3a';
/** The external commands the script runs; each gets a wrapper (see `makeWrappers`). */
const WRAPPED = ['flock', 'rm', 'sync', 'env', 'etcdctl', 'mkdir', 'mv'] as const;

let tmp = '';
let tls: TlsFiles;
let profile: ClusterProfile;
let newSnapshot: RealSnapshot;
/** `member/` of a real etcd that held OLD_KEYS and was stopped: the data to replace. */
let oldTemplate = '';
/** The same, hard-linked, plus a file `OLD-DATA` the wrappers' trace recognizes it by. */
let taggedTemplate = '';
let OLD_TAGGED = '';
/** Fingerprints of the old member dir and of the one `etcdctl snapshot restore` alone writes. */
const OLD = { full: '', sampled: '' };
const NEW = { full: '', sampled: '' };
let wrapDir = '';
const children = new Set<ChildProcess>();

// ---------------------------------------------------------------------------------------
// Helpers

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/**
 * Sampled hashing reads the first 4 MiB of larger files: etcd's WAL segments are 64 MB,
 * preallocated, with the records at the start. `full` hashes every byte.
 */
type HashMode = 'full' | 'sampled';
const SAMPLE = 4 * 1024 * 1024;

async function hashFile(path: string, size: number, mode: HashMode): Promise<string> {
  const hash = createHash('sha256');
  if (mode === 'full' || size <= SAMPLE) {
    hash.update(await readFile(path));
  } else {
    const handle = await open(path, 'r');
    try {
      const buffer = Buffer.alloc(SAMPLE);
      const { bytesRead } = await handle.read(buffer, 0, SAMPLE, 0);
      hash.update(buffer.subarray(0, bytesRead));
    } finally {
      await handle.close();
    }
  }
  return hash.digest('hex');
}

/**
 * A readable listing of a tree: one line per entry with type, relative path, and for
 * files size and sha256. `null` when the path does not exist.
 */
async function fingerprint(root: string, mode: HashMode = 'full'): Promise<string | null> {
  if (!(await exists(root))) return null;
  const lines: string[] = [];
  const walk = async (rel: string): Promise<void> => {
    const entries = await readdir(join(root, rel), { withFileTypes: true });
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const entry of entries) {
      const relPath = rel ? `${rel}/${entry.name}` : entry.name;
      const path = join(root, relPath);
      if (entry.isDirectory()) {
        lines.push(`d ${relPath}`);
        await walk(relPath);
      } else if (entry.isFile()) {
        const { size } = await stat(path);
        lines.push(`f ${relPath} ${size} ${await hashFile(path, size, mode)}`);
      } else if (entry.isSymbolicLink()) {
        lines.push(`l ${relPath} -> ${await readlink(path)}`);
      } else {
        lines.push(`? ${relPath}`);
      }
    }
  };
  await walk('');
  return lines.join('\n');
}

async function sortedEntries(dir: string): Promise<string[]> {
  return (await readdir(dir)).sort();
}

/** A fresh "volume" (the member's data dir), optionally holding the old data. */
async function makeVolume(
  name: string,
  old: 'copy' | 'hardlink' | 'none',
): Promise<MemberDataPaths> {
  const dataDir = join(tmp, name, 'data');
  await mkdir(dataDir, { recursive: true });
  const member = join(dataDir, 'member');
  // The script only renames and removes whole directories of the old data, so hard links
  // are a faithful copy there; a copy is needed where etcd is started on the old data.
  if (old === 'copy') await cp(oldTemplate, member, { recursive: true });
  if (old === 'hardlink') await execFileAsync('cp', ['-al', taggedTemplate, member]);
  return memberDataPaths(dataDir, TOKEN);
}

function restoreArgv(paths: MemberDataPaths, file = newSnapshot.path): string[] {
  return withEnvArgv(
    snapshotRestoreCommand(profile, { file, member: 0, members: 1, dataDir: paths.scratch }),
  );
}

function replaceArgv(paths: MemberDataPaths, dropOldData: boolean, file?: string): string[] {
  return replaceMemberDataArgv({ paths, dropOldData, restoreArgv: restoreArgv(paths, file) });
}

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Spawns the argv as the pod exec would (no shell around it); never rejects on failure. */
function run(argv: string[], env?: Record<string, string>): Promise<RunResult> {
  const [file, ...args] = argv;
  if (!file) throw new Error('empty argv');
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: env ?? { PATH: process.env.PATH ?? '/usr/bin:/bin' },
    });
    children.add(child);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.once('error', (error) => {
      children.delete(child);
      reject(error);
    });
    child.once('close', (code, signal) => {
      children.delete(child);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function describe(result: RunResult): string {
  return `code=${result.code} signal=${result.signal}\nstdout: ${result.stdout}\nstderr: ${result.stderr.slice(-3000)}`;
}

/** Runs to completion and returns the state the script printed. */
async function replaceOk(argv: string[], env?: Record<string, string>) {
  const result = await run(argv, env);
  assert.equal(result.code, 0, describe(result));
  return parseReplaceState(result.stdout);
}

const getOutputSchema = z.object({
  kvs: z.array(z.object({ key: z.string(), value: z.string().optional() })).optional(),
});

/** Starts etcd as the existing member on `dataDir` and returns every key it serves. */
async function keysServedBy(dataDir: string): Promise<Record<string, string>> {
  const endpoint = `https://127.0.0.1:${await freePort()}`;
  const at: ClusterProfile = { ...profile, etcdEndpoint: endpoint };
  const etcd = startEtcd({
    name: memberPodName(profile, 0),
    dataDir,
    clientUrl: endpoint,
    peerUrl: peerUrl(profile, 0),
    initialCluster: initialCluster(profile, 1),
    initialClusterToken: profile.initialClusterToken,
    tls,
  });
  try {
    await waitUntil(`etcd on ${dataDir} to answer`, () => runEtcdctl(endpointHealthCommand(at)), [
      etcd,
    ]);
    const { stdout } = await runEtcdctl({
      argv: ['etcdctl', ...connectionFlags(at), 'get', '', '--prefix', '-w', 'json'],
      env: { ETCDCTL_API: '3' },
    });
    const decode = (b64: string) => Buffer.from(b64, 'base64').toString('utf8');
    const parsed = getOutputSchema.parse(JSON.parse(stdout));
    return Object.fromEntries(
      (parsed.kvs ?? []).map((kv) => [decode(kv.key), decode(kv.value ?? '')]),
    );
  } finally {
    await etcd.stop();
  }
}

/**
 * One wrapper per external command, in a directory that is the whole PATH of the script.
 * Each increments $CRASH_COUNTER and logs "<n> <name>"; the one whose number is $CRASH_AT
 * SIGKILLs its parent (the script's shell: `env` execs etcdctl, so the etcdctl wrapper's
 * parent is the shell too) before or after ($CRASH_WHEN) running the real command; `torn`
 * runs it, then removes $CRASH_TEAR (what a kill in the middle of etcdctl leaves: a db
 * without its WAL) before the kill. Only shell builtins are used, so the wrappers need
 * no PATH (`rm` for `torn` is called by its full path and not counted).
 */
async function makeWrappers(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  const which = async (name: string) =>
    (await execFileAsync('sh', ['-c', 'command -v "$1"', 'which', name])).stdout.trim();
  await symlink(await which('sh'), join(dir, 'sh'));
  const realRm = await which('rm');
  for (const name of WRAPPED) {
    const real = await which(name);
    assert.ok(real.startsWith('/'), `${name} must be an executable on PATH, got ${real}`);
    const script = [
      '#!/bin/sh',
      'st=',
      'for p in "$TRACE_D" "$TRACE_O" "$TRACE_R"; do',
      '  if [ ! -e "$p/member" ]; then st="$st-"',
      '  elif [ -e "$p/member/OLD-DATA" ]; then st="$st"o',
      '  elif [ -e "$p/member/snap/db" ]; then st="$st"n',
      '  else st="$st?"; fi',
      'done',
      'if [ -e "$TRACE_R/.complete" ]; then st="$st"c; else st="$st"_; fi',
      'if [ -e "$TRACE_M" ]; then st="$st"m; else st="$st"_; fi',
      `echo "$st ${name}" >> "$TRACE"`,
      'read n < "$CRASH_COUNTER"',
      'n=$((n + 1))',
      'echo "$n" > "$CRASH_COUNTER"',
      `echo "$n ${name}" >> "$CRASH_LOG"`,
      'if [ "$n" = "$CRASH_AT" ]; then',
      `  if [ "$CRASH_WHEN" = after ]; then '${real}' "$@"; fi`,
      `  if [ "$CRASH_WHEN" = torn ]; then '${real}' "$@"; '${realRm}' -rf "$CRASH_TEAR"; fi`,
      '  kill -9 "$PPID"',
      '  exit 137',
      'fi',
      `exec '${real}' "$@"`,
      '',
    ].join('\n');
    const path = join(dir, name);
    await writeFile(path, script);
    await chmod(path, 0o755);
  }
}

type CrashWhen = 'before' | 'after' | 'torn';

interface CrashRun {
  result: RunResult;
  /** Commands run, in order ("flock", "rm", ...). */
  log: string[];
  /** The volume as each command found it (see `checkTrace`). */
  trace: string[];
}

/**
 * The invariant at every command boundary a run went through (where a crash could leave
 * it). Each trace line is `DORcm <command>`: for member/ in place (D), aside (O) and in the
 * scratch (R), `-` absent, `o` the old data, `n` a member with a db that is not the old
 * one, `?` anything else; then `c` if the scratch is marked complete, `m` if the marker
 * exists (`_` if not).
 */
function checkTrace(trace: string[], dropOldData: boolean): void {
  for (const line of trace) {
    const [d, o, r, c, m] = line;
    const where = `volume before \`${line.slice(6)}\`: ${line.slice(0, 5)}`;
    assert.ok(d === 'o' || d === 'n' || d === '-', `member/ is old, new or absent (${where})`);
    if (m === 'm') assert.equal(d, 'n', `marker only with the new data in place (${where})`);
    if (d === 'o') assert.equal(o, '-', `nothing aside while the old data is in place (${where})`);
    if (d === '-') {
      assert.equal(o, 'o', `old data aside while member/ is missing (${where})`);
      assert.ok(r === 'n' && c === 'c', `complete new data ready (${where})`);
    }
    if (d === 'n' && !(dropOldData && m === 'm')) {
      assert.equal(o, 'o', `old data aside until the marker (${where})`);
    }
  }
}

/** Runs with the wrappers; crashAt 0 never crashes (a counting run). */
async function runWrapped(
  argv: string[],
  caseDir: string,
  paths: MemberDataPaths,
  crashAt: number,
  when: CrashWhen,
  tear = '',
): Promise<CrashRun> {
  const counter = join(caseDir, `counter-${crashAt}-${when}`);
  const log = join(caseDir, `log-${crashAt}-${when}`);
  const trace = join(caseDir, `trace-${crashAt}-${when}`);
  await writeFile(counter, '0\n');
  await writeFile(log, '');
  await writeFile(trace, '');
  const result = await run(argv, {
    PATH: wrapDir,
    CRASH_COUNTER: counter,
    CRASH_LOG: log,
    CRASH_AT: String(crashAt),
    CRASH_WHEN: when,
    CRASH_TEAR: tear,
    TRACE: trace,
    TRACE_D: paths.dataDir,
    TRACE_O: paths.oldAside,
    TRACE_R: paths.scratch,
    TRACE_M: paths.marker,
  });
  const lines = async (file: string) => (await readFile(file, 'utf8')).split('\n').filter(Boolean);
  return {
    result,
    log: (await lines(log)).map((line) => line.replace(/^\d+ /, '')),
    trace: await lines(trace),
  };
}

/** Where the old and new data are after a run: fingerprints of the member dirs. */
async function volumeState(paths: MemberDataPaths, mode: HashMode) {
  return {
    inPlace: await fingerprint(join(paths.dataDir, 'member'), mode),
    aside: await fingerprint(join(paths.oldAside, 'member'), mode),
    scratch: await fingerprint(join(paths.scratch, 'member'), mode),
    scratchComplete: await exists(join(paths.scratch, '.complete')),
    scratchExists: await exists(paths.scratch),
    asideExists: await exists(paths.oldAside),
    marker: await exists(paths.marker),
  };
}

/** The end state of a successful replacement (structure only; etcd is started elsewhere). */
async function assertReplaced(
  paths: MemberDataPaths,
  dropOldData: boolean,
  mode: HashMode,
  old = mode === 'full' ? OLD.full : OLD.sampled,
) {
  const state = await volumeState(paths, mode);
  const ref = mode === 'full' ? NEW.full : NEW.sampled;
  assert.equal(state.inPlace, ref, 'member/ must be exactly what etcdctl restore writes');
  assert.equal(state.marker, true, 'marker written');
  assert.equal(state.scratchExists, false, 'scratch removed');
  if (dropOldData) assert.equal(state.asideExists, false, 'old data dropped');
  else assert.equal(state.aside, old, 'old data kept aside, unchanged');
  const name = (p: string) => p.slice(paths.dataDir.length + 1);
  const expected = [name(paths.lock), name(paths.marker), 'member'];
  if (!dropOldData) expected.push(name(paths.oldAside));
  assert.deepEqual(await sortedEntries(paths.dataDir), expected.sort());
}

// ---------------------------------------------------------------------------------------

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'member-data-'));
  const [tlsFiles, oldSnapshot, snapshot, peerPort, clientPort] = await Promise.all([
    makeTlsFiles(join(tmp, 'tls'), ['127.0.0.1']),
    makeRealSnapshot(join(tmp, 'old-source'), OLD_KEYS),
    makeRealSnapshot(join(tmp, 'new-source'), NEW_KEYS),
    freePort(),
    freePort(),
  ]);
  tls = tlsFiles;
  newSnapshot = snapshot;
  assert.ok(oldSnapshot.status.totalKey >= Object.keys(OLD_KEYS).length);
  profile = clusterProfileSchema.parse({
    etcdEndpoint: `https://127.0.0.1:${clientPort}`,
    peerUrlTemplate: `https://127.0.{member}.1:${peerPort}`,
    certificatesDir: tls.dir,
    caFile: tls.caFile,
    certFile: tls.certFile,
    keyFile: tls.keyFile,
    workDir: tmp,
  });
  // makeRealSnapshot ran etcd on <dir>/source.etcd: that is a real member's old data.
  oldTemplate = join(tmp, 'old-source', 'source.etcd', 'member');
  const reference = join(tmp, 'reference.etcd');
  await runEtcdctl(
    snapshotRestoreCommand(profile, {
      file: newSnapshot.path,
      member: 0,
      members: 1,
      dataDir: reference,
    }),
  );
  OLD.full = (await fingerprint(oldTemplate, 'full')) ?? '';
  OLD.sampled = (await fingerprint(oldTemplate, 'sampled')) ?? '';
  NEW.full = (await fingerprint(join(reference, 'member'), 'full')) ?? '';
  NEW.sampled = (await fingerprint(join(reference, 'member'), 'sampled')) ?? '';
  assert.match(OLD.full, /f snap\/db /);
  assert.match(NEW.full, /f snap\/db /);
  assert.notEqual(OLD.sampled, NEW.sampled);
  taggedTemplate = join(tmp, 'old-tagged');
  await execFileAsync('cp', ['-al', oldTemplate, taggedTemplate]);
  await writeFile(join(taggedTemplate, 'OLD-DATA'), '');
  OLD_TAGGED = (await fingerprint(taggedTemplate, 'sampled')) ?? '';
  wrapDir = join(tmp, 'wrappers');
  await makeWrappers(wrapDir);
});

after(async () => {
  for (const child of children) child.kill('SIGKILL');
  await stopAllEtcd();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

test('replaces the member data, is idempotent, keeps the old data aside until discarded', async () => {
  const paths = await makeVolume('happy', 'copy');
  assert.equal(await replaceOk(replaceArgv(paths, false)), 'replaced');
  await assertReplaced(paths, false, 'full');

  // A second run finds the marker and changes nothing.
  const before = await fingerprint(paths.dataDir, 'full');
  assert.equal(await replaceOk(replaceArgv(paths, false)), 'already-replaced');
  assert.equal(await fingerprint(paths.dataDir, 'full'), before);

  // etcd on the data dir is the restored member: exactly the new keys.
  assert.deepEqual(await keysServedBy(paths.dataDir), NEW_KEYS);
  // The data set aside is the old member, still usable as it was.
  assert.deepEqual(await keysServedBy(paths.oldAside), OLD_KEYS);

  const member = await fingerprint(join(paths.dataDir, 'member'), 'full');
  const discard = await run(discardOldMemberDataArgv(paths));
  assert.equal(discard.code, 0, describe(discard));
  // The marker stays, so a late replace run changes nothing after the discard.
  assert.deepEqual(
    (await sortedEntries(paths.dataDir)).sort(),
    ['member', basename(paths.marker), basename(paths.lock)].sort(),
  );
  assert.equal(await fingerprint(join(paths.dataDir, 'member'), 'full'), member);
  assert.equal(await replaceOk(replaceArgv(paths, false)), 'already-replaced');
  assert.equal(await fingerprint(join(paths.dataDir, 'member'), 'full'), member);

  // dropOldData: nothing aside right after the replacement.
  const dropped = await makeVolume('happy-drop', 'copy');
  assert.equal(await replaceOk(replaceArgv(dropped, true)), 'replaced');
  await assertReplaced(dropped, true, 'full');
  assert.equal(await replaceOk(replaceArgv(dropped, true)), 'already-replaced');
  await assertReplaced(dropped, true, 'full');
});

test('a crash before or after any external command is completed by the next run', async (t) => {
  let crashPoints = 0;
  let etcdChecks = 0;
  for (const dropOldData of [false, true]) {
    // A counting run: which commands a full run executes, all through the wrappers.
    const refDir = join(tmp, `crash-ref-${dropOldData}`);
    const refPaths = await makeVolume(`crash-ref-${dropOldData}`, 'hardlink');
    const reference = await runWrapped(
      replaceArgv(refPaths, dropOldData),
      refDir,
      refPaths,
      0,
      'before',
    );
    assert.equal(reference.result.code, 0, describe(reference.result));
    assert.equal(parseReplaceState(reference.result.stdout), 'replaced');
    await assertReplaced(refPaths, dropOldData, 'sampled', OLD_TAGGED);
    checkTrace(reference.trace, dropOldData);
    assert.deepEqual([...new Set(reference.log)].sort(), [...WRAPPED].sort());
    assert.equal(reference.log.filter((c) => c === 'mv').length, 2);
    await rm(refDir, { recursive: true, force: true });
    const total = reference.log.length;
    // One traced state per command, from the old data in place through the moment between
    // the two renames to the new data in place.
    assert.equal(reference.trace.length, total);
    assert.match(reference.trace[0] ?? '', /^o--__ flock$/);
    assert.ok(reference.trace.some((line) => line.startsWith('-onc_ ')));

    for (const when of ['before', 'after', 'torn'] as const) {
      for (let k = 1; k <= total; k++) {
        const command = reference.log[k - 1] ?? '?';
        if (when === 'torn' && command !== 'etcdctl') continue;
        // etcd is started at the crashes on the two renames (after them without drop, before
        // them with drop); every case compares the member dirs with the reference restore.
        const startEtcdToo =
          command === 'mv' && (dropOldData ? when === 'before' : when === 'after');
        await t.test(`drop=${dropOldData} crash ${when} #${k}/${total} (${command})`, async () => {
          const name = `crash-${dropOldData}-${when}-${k}`;
          const caseDir = join(tmp, name);
          const paths = await makeVolume(name, 'hardlink');
          try {
            const tear = join(paths.scratch, 'member', 'wal');
            const argv = replaceArgv(paths, dropOldData);
            const crashed = await runWrapped(argv, caseDir, paths, k, when, tear);
            checkTrace(crashed.trace, dropOldData);
            assert.equal(crashed.result.signal, 'SIGKILL', describe(crashed.result));
            assert.deepEqual(
              crashed.log,
              // After `env` has run, so has the etcdctl it executes.
              reference.log.slice(0, when === 'after' && command === 'env' ? k + 1 : k),
              'same commands up to the crash',
            );

            // Invariant: old data in place or aside (then with a complete new one ready),
            // unless the new data is complete in place. Never a mix, never nothing.
            const s = await volumeState(paths, 'sampled');
            if (when === 'torn') {
              assert.equal(await exists(tear), false, 'torn: the WAL is gone');
              assert.ok(s.scratch?.includes('f snap/db '), 'torn: the db is there');
            }
            if (s.scratchComplete && s.scratch !== null) {
              assert.equal(
                s.scratch,
                NEW.sampled,
                'a scratch marked complete holds the whole restore',
              );
            }
            if (s.marker)
              assert.equal(s.inPlace, NEW.sampled, 'marker only once the new data is in place');
            if (s.inPlace === OLD_TAGGED) {
              assert.equal(s.asideExists && s.aside !== null, false, 'nothing aside yet');
            } else if (s.inPlace === null) {
              assert.equal(s.aside, OLD_TAGGED, 'old data aside while member/ is missing');
              assert.equal(s.scratchComplete, true, 'new data complete while member/ is missing');
              assert.equal(s.scratch, NEW.sampled);
            } else {
              assert.equal(s.inPlace, NEW.sampled, 'member/ is either the old or the new data');
              if (dropOldData && s.marker) {
                assert.ok(s.aside === null || s.aside === OLD_TAGGED);
              } else {
                assert.equal(s.aside, OLD_TAGGED, 'old data kept aside until the marker');
              }
            }

            const resumed = await runWrapped(argv, caseDir, paths, 0, 'before');
            checkTrace(resumed.trace, dropOldData);
            assert.equal(resumed.result.code, 0, describe(resumed.result));
            assert.equal(
              parseReplaceState(resumed.result.stdout),
              s.marker ? 'already-replaced' : 'replaced',
            );
            await assertReplaced(paths, dropOldData, 'sampled', OLD_TAGGED);
            if (startEtcdToo) {
              assert.deepEqual(await keysServedBy(paths.dataDir), NEW_KEYS);
              etcdChecks++;
            }
            crashPoints++;
          } finally {
            await rm(caseDir, { recursive: true, force: true });
          }
        });
      }
    }
  }
  t.diagnostic(`crash points exercised: ${crashPoints}, etcd started on ${etcdChecks} of them`);
  assert.ok(etcdChecks >= 4);
  // The hard-linked old data shared by every case was never written to.
  assert.equal(await fingerprint(oldTemplate, 'full'), OLD.full);
});

test('a corrupt snapshot fails the restore and leaves the old data untouched', async () => {
  const size = (await stat(newSnapshot.path)).size;
  const corruptions: Array<[string, (file: string) => Promise<void>]> = [
    ['truncated', (file) => truncate(file, Math.floor(size / 2))],
    [
      'one byte flipped',
      async (file) => {
        const bytes = await readFile(file);
        const middle = Math.floor(bytes.length / 2);
        bytes[middle] = (bytes[middle] ?? 0) ^ 0xff;
        await writeFile(file, bytes);
      },
    ],
  ];
  for (const [what, corrupt] of corruptions) {
    const name = `corrupt-${what.replaceAll(' ', '-')}`;
    const paths = await makeVolume(name, 'copy');
    const file = join(tmp, name, 'snapshot.db');
    await cp(newSnapshot.path, file);
    await corrupt(file);
    const before = await fingerprint(join(paths.dataDir, 'member'), 'full');
    assert.equal(before, OLD.full);

    const result = await run(replaceArgv(paths, true, file));
    assert.equal(result.signal, null, describe(result));
    assert.notEqual(result.code, 0, `${what}: ${describe(result)}`);
    assert.equal(await fingerprint(join(paths.dataDir, 'member'), 'full'), before, what);
    const s = await volumeState(paths, 'full');
    assert.equal(s.marker, false, what);
    assert.equal(s.asideExists, false, what);
    assert.equal(s.scratchComplete, false, what);

    // Once a good snapshot is there, the next run wipes the failed attempt and succeeds.
    assert.equal(await replaceOk(replaceArgv(paths, false)), 'replaced');
    await assertReplaced(paths, false, 'full');
  }

  // A restore command that succeeds without writing a member: refused, nothing moved.
  const paths = await makeVolume('restore-wrote-nothing', 'copy');
  const nothing = await run(
    replaceMemberDataArgv({ paths, dropOldData: true, restoreArgv: ['true'] }),
  );
  assert.equal(nothing.code, RESTORE_INCOMPLETE_EXIT, describe(nothing));
  assert.equal(await fingerprint(join(paths.dataDir, 'member'), 'full'), OLD.full);
  assert.equal(await exists(paths.marker), false);
  assert.equal(await exists(join(paths.scratch, '.complete')), false);
});

test('two concurrent runs take turns: one replaces, the other finds it done', async () => {
  const paths = await makeVolume('concurrent', 'copy');
  // Hold the lock so both runs are started before either may go on, then let them race.
  const blocker = spawn('flock', [paths.lock, 'sh', '-c', 'echo locked; read line'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  children.add(blocker);
  const blockerExited = new Promise<void>((resolve) => blocker.once('close', () => resolve()));
  await new Promise<void>((resolve, reject) => {
    blocker.stdout?.once('data', () => resolve());
    blocker.once('error', reject);
  });
  const runs = [run(replaceArgv(paths, false)), run(replaceArgv(paths, false))];
  blocker.stdin?.end();
  await blockerExited;
  children.delete(blocker);
  const results = await Promise.all(runs);
  for (const result of results) assert.equal(result.code, 0, describe(result));
  assert.deepEqual(results.map((r) => parseReplaceState(r.stdout)).sort(), [
    'already-replaced',
    'replaced',
  ]);
  await assertReplaced(paths, false, 'full');
  assert.deepEqual(await keysServedBy(paths.dataDir), NEW_KEYS);
});

/*
 * Only the combination no run of ours leaves is refused: the old data aside AND something
 * in member/ while the restored member is still in the scratch. (With the scratch complete
 * and its member/ gone, the volume is exactly what a crash right after the second `mv`
 * leaves, so the script finishes it: the crash test checks that it does.)
 */
test('foreign state: member/ and the aside member/ both present, restore not moved → refused', async () => {
  // Scratch complete, its member/ still there: refused before anything is touched.
  const paths = await makeVolume('foreign', 'copy');
  await cp(oldTemplate, join(paths.oldAside, 'member'), { recursive: true });
  await runEtcdctl(
    snapshotRestoreCommand(profile, {
      file: newSnapshot.path,
      member: 0,
      members: 1,
      dataDir: paths.scratch,
    }),
  );
  await writeFile(join(paths.scratch, '.complete'), '');
  await writeFile(paths.lock, '');
  const before = await fingerprint(paths.dataDir, 'full');
  const result = await run(replaceArgv(paths, true));
  assert.equal(result.code, UNEXPECTED_STATE_EXIT, describe(result));
  assert.match(result.stderr, /something else wrote the data directory/);
  assert.equal(await fingerprint(paths.dataDir, 'full'), before);

  // No scratch at all: also refused, and neither member/ is touched (the script restores
  // into the scratch first, so only the scratch may differ).
  const bare = await makeVolume('foreign-bare', 'copy');
  await cp(oldTemplate, join(bare.oldAside, 'member'), { recursive: true });
  const bareResult = await run(replaceArgv(bare, true));
  assert.equal(bareResult.code, UNEXPECTED_STATE_EXIT, describe(bareResult));
  const s = await volumeState(bare, 'full');
  assert.equal(s.inPlace, OLD.full);
  assert.equal(s.aside, OLD.full);
  assert.equal(s.marker, false);
});
