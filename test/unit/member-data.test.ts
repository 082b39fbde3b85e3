/**
 * The member data scripts (activities/etcd/member-data.ts, SPEC R4–R6, H5c–H5f) run for
 * real on the host: the exact argv the activities send to the utility pod, spawned without
 * a shell against a temporary directory that plays the member's volume, with the real
 * etcdctl 3.4 restore inside it. The old data is the data dir of a real etcd that held
 * OLD_KEYS; the new data is a real snapshot holding NEW_KEYS. Results are checked by
 * starting etcd on the data dir and reading the keys back, and by comparing the member
 * directories with what etcd left (old) and what `etcdctl snapshot restore` alone writes.
 *
 * The crash test puts a directory of wrapper scripts as the ONLY entry of PATH: every
 * external command the scripts run is one of them (an unwrapped one would not be found),
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
} from '../../activities/etcd/commands.js';
import {
  attemptDir,
  discardOldMemberDataArgv,
  MemberDataExit,
  type MemberDataPaths,
  memberDataPaths,
  parseRemoved,
  parseState,
  restoreIntoScratchArgv,
  swapMemberDataArgv,
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
/** The external commands the scripts run; each gets a wrapper (see `makeWrappers`). */
const WRAPPED = ['rm', 'sync', 'etcdctl', 'mkdir', 'mv', 'cat', 'date', 'sleep'] as const;

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
  // The scripts only rename and remove whole directories of the old data, so hard links
  // are a faithful copy there; a copy is needed where etcd is started on the old data.
  if (old === 'copy') await cp(oldTemplate, member, { recursive: true });
  if (old === 'hardlink') await execFileAsync('cp', ['-al', taggedTemplate, member]);
  return memberDataPaths(dataDir, TOKEN);
}

let attempts = 0;
/** The restore-into-scratch argv for one attempt (each attempt has its own directory). */
function restoreArgv(paths: MemberDataPaths, file = newSnapshot.path, nonce?: string): string[] {
  const attempt = attemptDir(paths, nonce ?? `attempt${++attempts}`);
  return restoreIntoScratchArgv({
    paths,
    attempt,
    restoreArgv: snapshotRestoreCommand(profile, { file, member: 0, members: 1, dataDir: attempt }),
  });
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

const RESTORE_STATES = ['restored', 'already-restored', 'already-replaced'] as const;
const SWAP_STATES = ['replaced', 'already-replaced'] as const;

/** Runs to completion and returns the state the script printed. */
async function runOk<S extends string>(
  argv: string[],
  states: readonly S[],
  env?: Record<string, string>,
): Promise<S> {
  const result = await run(argv, env);
  assert.equal(result.code, 0, describe(result));
  return parseState(result.stdout, states);
}

/** Restores into scratch, then swaps: the whole replacement, as the workflow runs it. */
async function replace(paths: MemberDataPaths, dropOldData: boolean): Promise<string> {
  await runOk(restoreArgv(paths), RESTORE_STATES);
  return runOk(swapMemberDataArgv(paths, dropOldData), SWAP_STATES);
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
    const { stdout } = await runEtcdctl([
      'etcdctl',
      ...connectionFlags(at),
      'get',
      '',
      '--prefix',
      '-w',
      'json',
    ]);
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
 * SIGKILLs its parent (the script's shell) before or after ($CRASH_WHEN) running the real
 * command; `torn`
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
 * exists (`_` if not). The restore into scratch never touches D or O.
 */
function checkTrace(trace: string[], dropOldData: boolean): void {
  for (const line of trace) {
    const [d, o, r, c, m] = line;
    const where = `volume before \`${line.slice(6)}\`: ${line.slice(0, 5)}`;
    assert.ok(d === 'o' || d === 'n' || d === '-', `member/ is old, new or absent (${where})`);
    if (c === 'c' && r !== '-')
      assert.equal(r, 'n', `a complete scratch holds new data (${where})`);
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
  const expected = [name(paths.marker), 'member'];
  if (!dropOldData) expected.push(name(paths.oldAside));
  assert.deepEqual(await sortedEntries(paths.dataDir), expected.sort());
}

/** The state after a restore into scratch: the live data untouched, the scratch complete. */
async function assertRestoredIntoScratch(paths: MemberDataPaths, mode: HashMode, old: string) {
  const state = await volumeState(paths, mode);
  assert.equal(state.inPlace, old, 'the live data is not touched');
  assert.equal(state.asideExists, false, 'nothing aside');
  assert.equal(state.marker, false, 'no marker');
  assert.equal(
    state.scratch,
    mode === 'full' ? NEW.full : NEW.sampled,
    'scratch holds the restore',
  );
  assert.equal(state.scratchComplete, true, 'scratch marked complete');
  const name = (p: string) => p.slice(paths.dataDir.length + 1);
  // Attempts a crash cut short may be left (a retry cannot know they are dead): the swap removes them.
  const entries = (await sortedEntries(paths.dataDir)).filter(
    (e) => !e.startsWith(`${name(paths.scratch)}.`),
  );
  assert.deepEqual(entries, ['member', name(paths.scratch)].sort());
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

test('restores into scratch beside the live data, swaps it in, each idempotent; old data aside until discarded', async () => {
  const paths = await makeVolume('happy', 'copy');
  assert.equal(await runOk(restoreArgv(paths), RESTORE_STATES), 'restored');
  await assertRestoredIntoScratch(paths, 'full', OLD.full);
  // etcd could still be running on member/: the restore did not touch it.
  assert.equal(await runOk(restoreArgv(paths), RESTORE_STATES), 'already-restored');
  await assertRestoredIntoScratch(paths, 'full', OLD.full);

  assert.equal(await runOk(swapMemberDataArgv(paths, false), SWAP_STATES), 'replaced');
  await assertReplaced(paths, false, 'full');
  // A second swap, or a late restore, finds the marker and changes nothing.
  const before = await fingerprint(paths.dataDir, 'full');
  assert.equal(await runOk(swapMemberDataArgv(paths, false), SWAP_STATES), 'already-replaced');
  assert.equal(await runOk(restoreArgv(paths), RESTORE_STATES), 'already-replaced');
  assert.equal(await fingerprint(paths.dataDir, 'full'), before);

  // etcd on the data dir is the restored member: exactly the new keys.
  assert.deepEqual(await keysServedBy(paths.dataDir), NEW_KEYS);
  // The data set aside is the old member, still usable as it was.
  assert.deepEqual(await keysServedBy(paths.oldAside), OLD_KEYS);

  const member = await fingerprint(join(paths.dataDir, 'member'), 'full');
  const discard = await run(discardOldMemberDataArgv(paths, false));
  assert.equal(discard.code, 0, describe(discard));
  assert.deepEqual(parseRemoved(discard.stdout), [basename(paths.oldAside)]);
  // The marker stays, so a late swap run changes nothing after the discard.
  assert.deepEqual(await sortedEntries(paths.dataDir), ['member', basename(paths.marker)].sort());
  assert.equal(await fingerprint(join(paths.dataDir, 'member'), 'full'), member);
  assert.equal(await runOk(swapMemberDataArgv(paths, false), SWAP_STATES), 'already-replaced');
  assert.equal(await fingerprint(join(paths.dataDir, 'member'), 'full'), member);

  // dropOldData: nothing aside right after the swap.
  const dropped = await makeVolume('happy-drop', 'copy');
  assert.equal(await replace(dropped, true), 'replaced');
  await assertReplaced(dropped, true, 'full');
  assert.equal(await runOk(swapMemberDataArgv(dropped, true), SWAP_STATES), 'already-replaced');
  await assertReplaced(dropped, true, 'full');
});

test('a crash before or after any external command of the restore or the swap is completed by the next run', async (t) => {
  let crashPoints = 0;
  let etcdChecks = 0;
  // A stale lock (the crashed shell held it) is broken at once here, not after 5 minutes.
  const swapArgv = (paths: MemberDataPaths, drop: boolean) => swapMemberDataArgv(paths, drop, 0);
  for (const dropOldData of [false, true]) {
    // Counting runs: which commands a full restore and a full swap execute, all wrapped.
    const refDir = join(tmp, `crash-ref-${dropOldData}`);
    const refPaths = await makeVolume(`crash-ref-${dropOldData}`, 'hardlink');
    const restoreRef = await runWrapped(
      restoreArgv(refPaths, undefined, 'ref'),
      refDir,
      refPaths,
      0,
      'before',
    );
    assert.equal(restoreRef.result.code, 0, describe(restoreRef.result));
    await assertRestoredIntoScratch(refPaths, 'sampled', OLD_TAGGED);
    checkTrace(restoreRef.trace, dropOldData);
    const swapRef = await runWrapped(swapArgv(refPaths, dropOldData), refDir, refPaths, 0, 'after');
    assert.equal(swapRef.result.code, 0, describe(swapRef.result));
    assert.equal(parseState(swapRef.result.stdout, SWAP_STATES), 'replaced');
    await assertReplaced(refPaths, dropOldData, 'sampled', OLD_TAGGED);
    checkTrace(swapRef.trace, dropOldData);
    assert.equal(swapRef.log.filter((c) => c === 'mv').length, 2, 'two renames');
    assert.ok(
      swapRef.trace.some((line) => line.startsWith('-onc_ ')),
      'between the renames',
    );
    await rm(refDir, { recursive: true, force: true });

    for (const [script, reference] of [
      ['restore', restoreRef],
      ['swap', swapRef],
    ] as const) {
      for (const when of ['before', 'after', 'torn'] as const) {
        for (let k = 1; k <= reference.log.length; k++) {
          const command = reference.log[k - 1] ?? '?';
          if (when === 'torn' && command !== 'etcdctl') continue;
          // etcd is started at the crashes on the two renames of the swap.
          const startEtcdToo =
            script === 'swap' &&
            command === 'mv' &&
            (dropOldData ? when === 'before' : when === 'after');
          const label = `drop=${dropOldData} ${script}: crash ${when} #${k}/${reference.log.length} (${command})`;
          await t.test(label, async () => {
            const name = `crash-${dropOldData}-${script}-${when}-${k}`;
            const caseDir = join(tmp, name);
            const paths = await makeVolume(name, 'hardlink');
            try {
              if (script === 'swap') await runOk(restoreArgv(paths), RESTORE_STATES);
              const nonce = `crash${k}${when}`;
              const argv =
                script === 'restore'
                  ? restoreArgv(paths, undefined, nonce)
                  : swapArgv(paths, dropOldData);
              const tear = join(attemptDir(paths, nonce), 'member', 'wal');
              const crashed = await runWrapped(argv, caseDir, paths, k, when, tear);
              checkTrace(crashed.trace, dropOldData);
              assert.equal(crashed.result.signal, 'SIGKILL', describe(crashed.result));
              assert.deepEqual(
                crashed.log,
                reference.log.slice(0, k),
                'same commands up to the crash',
              );

              // Invariant: old data in place or aside (then with a complete new one ready),
              // unless the new data is complete in place. Never a mix, never nothing.
              const s = await volumeState(paths, 'sampled');
              if (script === 'restore') {
                assert.equal(s.inPlace, OLD_TAGGED, 'the restore never touches the live data');
                assert.equal(s.asideExists, false);
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
                if (dropOldData && s.marker) assert.ok(s.aside === null || s.aside === OLD_TAGGED);
                else assert.equal(s.aside, OLD_TAGGED, 'old data kept aside until the marker');
              }

              // The next run (a new attempt, as the activity's retry would be) completes it.
              if (script === 'restore') {
                const resumed = await runWrapped(restoreArgv(paths), caseDir, paths, 0, 'before');
                assert.equal(resumed.result.code, 0, describe(resumed.result));
                await assertRestoredIntoScratch(paths, 'sampled', OLD_TAGGED);
                assert.equal(await runOk(swapArgv(paths, dropOldData), SWAP_STATES), 'replaced');
              } else {
                const resumed = await runWrapped(
                  swapArgv(paths, dropOldData),
                  caseDir,
                  paths,
                  0,
                  'before',
                );
                checkTrace(resumed.trace, dropOldData);
                assert.equal(resumed.result.code, 0, describe(resumed.result));
                assert.equal(
                  parseState(resumed.result.stdout, SWAP_STATES),
                  s.marker ? 'already-replaced' : 'replaced',
                );
              }
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
  }
  t.diagnostic(`crash points exercised: ${crashPoints}, etcd started on ${etcdChecks} of them`);
  assert.ok(etcdChecks >= 4);
  // The hard-linked old data shared by every case was never written to.
  assert.equal(await fingerprint(oldTemplate, 'full'), OLD.full);
});

test('a corrupt snapshot fails the restore into scratch and leaves the volume as it was', async () => {
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
    const before = await fingerprint(paths.dataDir, 'full');

    const result = await run(restoreArgv(paths, file));
    assert.equal(result.signal, null, describe(result));
    assert.notEqual(result.code, 0, `${what}: ${describe(result)}`);
    // Nothing left but what an attempt may leave behind: the live data, unchanged.
    assert.equal(await fingerprint(join(paths.dataDir, 'member'), 'full'), OLD.full, what);
    const s = await volumeState(paths, 'full');
    assert.equal(s.scratchExists, false, what);
    assert.equal(s.marker, false, what);
    assert.ok(before);

    // Once a good snapshot is there, the next attempt succeeds.
    assert.equal(await replace(paths, false), 'replaced');
    await assertReplaced(paths, false, 'full');
  }

  // A restore command that succeeds without writing a member: refused, nothing kept.
  const paths = await makeVolume('restore-wrote-nothing', 'copy');
  const nothing = await run(
    restoreIntoScratchArgv({ paths, attempt: attemptDir(paths, 'nothing'), restoreArgv: ['true'] }),
  );
  assert.equal(nothing.code, MemberDataExit.RestoreIncomplete, describe(nothing));
  assert.equal(await fingerprint(join(paths.dataDir, 'member'), 'full'), OLD.full);
  assert.equal(await exists(paths.scratch), false);
  assert.deepEqual(await sortedEntries(paths.dataDir), ['member']);
});

test('concurrent restores into scratch never share a directory; concurrent swaps take turns', async () => {
  const paths = await makeVolume('concurrent', 'copy');
  // Two attempts at once (a retry while an abandoned exec still runs): one scratch results.
  const restores = await Promise.all([run(restoreArgv(paths)), run(restoreArgv(paths))]);
  for (const result of restores) assert.equal(result.code, 0, describe(result));
  assert.deepEqual(restores.map((r) => parseState(r.stdout, RESTORE_STATES)).sort(), [
    'already-restored',
    'restored',
  ]);
  await assertRestoredIntoScratch(paths, 'full', OLD.full);

  // Hold the swap's lock so both swaps are started before either may go on, then release.
  await mkdir(paths.lock);
  await writeFile(join(paths.lock, 'stamp'), String(Math.floor(Date.now() / 1000)));
  const swaps = [run(swapMemberDataArgv(paths, false)), run(swapMemberDataArgv(paths, false))];
  await new Promise((resolve) => setTimeout(resolve, 1500));
  assert.equal(await exists(paths.marker), false, 'both wait for the lock');
  await rm(paths.lock, { recursive: true });
  const results = await Promise.all(swaps);
  for (const result of results) assert.equal(result.code, 0, describe(result));
  assert.deepEqual(results.map((r) => parseState(r.stdout, SWAP_STATES)).sort(), [
    'already-replaced',
    'replaced',
  ]);
  await assertReplaced(paths, false, 'full');
  assert.deepEqual(await keysServedBy(paths.dataDir), NEW_KEYS);

  // A lock left by a run that died (its stamp old) is broken, not waited on for ever.
  const stale = await makeVolume('stale-lock', 'copy');
  await runOk(restoreArgv(stale), RESTORE_STATES);
  await mkdir(stale.lock);
  await writeFile(join(stale.lock, 'stamp'), String(Math.floor(Date.now() / 1000) - 3600));
  assert.equal(await runOk(swapMemberDataArgv(stale, false), SWAP_STATES), 'replaced');
});

test('a swap without complete restored data asks for the restore again, and changes nothing', async () => {
  const paths = await makeVolume('scratch-missing', 'copy');
  const before = await fingerprint(paths.dataDir, 'full');
  const result = await run(swapMemberDataArgv(paths, false));
  assert.equal(result.code, MemberDataExit.ScratchMissing, describe(result));
  assert.equal(await fingerprint(paths.dataDir, 'full'), before);
  // Restored again, it swaps.
  assert.equal(await replace(paths, false), 'replaced');
  await assertReplaced(paths, false, 'full');
});

test('discard after verification also removes what abandoned restores left; its undo form only its own', async () => {
  const paths = await makeVolume('discard', 'copy');
  await replace(paths, false);
  // An abandoned restore of another token left its old data and a scratch attempt.
  const other = memberDataPaths(paths.dataDir, 'abandoned-1');
  await cp(oldTemplate, join(other.oldAside, 'member'), { recursive: true });
  await mkdir(join(`${other.scratch}.x`, 'member'), { recursive: true });
  await writeFile(other.marker, '');

  const own = await run(discardOldMemberDataArgv(paths, false));
  assert.equal(own.code, 0, describe(own));
  assert.deepEqual(parseRemoved(own.stdout), [basename(paths.oldAside)]);
  assert.equal(await exists(other.oldAside), true, 'the undo form leaves other restores alone');

  const all = await run(discardOldMemberDataArgv(paths, true));
  assert.equal(all.code, 0, describe(all));
  assert.deepEqual(
    parseRemoved(all.stdout).sort(),
    [basename(other.oldAside), basename(`${other.scratch}.x`)].sort(),
  );
  assert.deepEqual(
    await sortedEntries(paths.dataDir),
    [basename(other.marker), basename(paths.marker), 'member'].sort(),
    'markers stay: they say a replacement is done',
  );
  assert.deepEqual(await keysServedBy(paths.dataDir), NEW_KEYS);
});

/*
 * Only the combination no run of ours leaves is refused: the old data aside AND something
 * in member/ while the restored member is still in the scratch. (With the scratch complete
 * and its member/ gone, the volume is exactly what a crash right after the second `mv`
 * leaves, so the swap finishes it: the crash test checks that it does.)
 */
test('foreign state: member/ and the aside member/ both present with the restore not moved → refused', async () => {
  const paths = await makeVolume('foreign', 'copy');
  await runOk(restoreArgv(paths), RESTORE_STATES);
  await cp(oldTemplate, join(paths.oldAside, 'member'), { recursive: true });
  const before = await fingerprint(paths.dataDir, 'full');
  const result = await run(swapMemberDataArgv(paths, true));
  assert.equal(result.code, MemberDataExit.UnexpectedState, describe(result));
  assert.match(result.stderr, /something else wrote the data directory/);
  assert.equal(await fingerprint(paths.dataDir, 'full'), before);
});
