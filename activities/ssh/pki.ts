/**
 * SPEC A2, done without the runbook script's holes: the PKI directory of the admin
 * control-plane node is read by `sudo -n tar -C <parent> -cf - <dir>` over SSH (host key
 * checked) and streamed, entry by entry, into the backup's staging area. Nothing on the
 * node is changed — no `chmod -R +rw`, no copy left in a home directory — and each entry's
 * mode and owner on the node is recorded, not applied: in the repository every file is 0600.
 *
 * An attempt starts from an empty staging tree (the PKI is small), so a copy cut anywhere
 * is simply retried; tar's end-of-archive block and exit status 0 say it is complete.
 */
import { createHash } from 'node:crypto';
import { posix } from 'node:path';
import { PassThrough, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ADMIN_PKI_DIR, type AdminBackupEntry } from '../../workflows/contract/index.js';
import { ClusterStateError } from '../cluster/pods.js';
import type { AdminSshConfig } from '../config/worker-config.js';
import { openSsh, shellQuote } from './client.js';
import { checkedEntryPath, readTar, type TarEntry } from './tar-reader.js';

/** The command on the node exited non-zero for a reason a retry will not change. */
export class RemoteCommandError extends Error {
  override name = 'RemoteCommandError';
}

/** Where the entries go: the backup's staging area. */
export interface PkiSink {
  /** Drops what an earlier attempt staged. */
  reset(): Promise<void>;
  directory(path: string): Promise<void>;
  /** A new, empty file (private), written by the stream returned. */
  file(path: string): Promise<Writable>;
}

export interface PkiCopy {
  entries: AdminBackupEntry[];
  fileCount: number;
  totalBytes: number;
  /** Bytes of the tar stream. */
  streamedBytes: number;
}

/** The argv run on the node. */
export function pkiTarArgv(ssh: Pick<AdminSshConfig, 'pkiDir' | 'sudo'>): string[] {
  return [
    ...(ssh.sudo ? ['sudo', '-n'] : []),
    'tar',
    '-C',
    posix.dirname(ssh.pkiDir),
    '-cf',
    '-',
    posix.basename(ssh.pkiDir),
  ];
}

/** stderr's lines joined: one line for a failure message. */
function oneLine(text: string): string {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .join('; ');
}

function octalMode(mode: number): string {
  return `0${mode.toString(8).padStart(3, '0')}`;
}

export async function copyPkiTree(
  ssh: AdminSshConfig,
  sink: PkiSink,
  options: {
    adminCluster: string;
    signal?: AbortSignal;
    onProgress?: (bytes: number) => void;
  },
): Promise<PkiCopy> {
  const top = posix.basename(ssh.pkiDir);
  // `<top>/a/b` on the node is `pki/a/b` in the backup, whatever the directory is called there.
  const stored = (path: string) => `${ADMIN_PKI_DIR}${path.slice(top.length)}`;
  const refuse = (entry: TarEntry, why: string) =>
    new ClusterStateError(
      `the PKI directory of admin cluster ${options.adminCluster}'s node holds ${JSON.stringify(entry.path)}, ${why}; nothing was stored`,
    );

  const session = await openSsh(ssh, ssh.jumpHost, options);
  try {
    await sink.reset();
    const entries: AdminBackupEntry[] = [];
    const writes: Promise<void>[] = [];
    let totalBytes = 0;
    let streamed = 0;
    const counted = new PassThrough({ highWaterMark: 1 << 20 });
    counted.on('data', (chunk: Buffer) => {
      streamed += chunk.length;
      options.onProgress?.(streamed);
    });
    const tarStream = new PassThrough({ highWaterMark: 1 << 20 });
    counted.pipe(tarStream);

    const reading = readTar(tarStream, {
      async entry(entry) {
        const path = checkedEntryPath(entry.path, top);
        if (!path) throw refuse(entry, `a name outside ${top}/`);
        const base = {
          path: stored(path),
          mode: octalMode(entry.mode),
          owner: `${entry.uname || entry.uid}:${entry.gname || entry.gid}`,
        };
        if (entry.type === 'directory') {
          await sink.directory(base.path);
          entries.push({ ...base, type: 'directory' });
          return undefined;
        }
        if (entry.type === 'symlink') {
          entries.push({ ...base, type: 'symlink', linkTarget: entry.linkTarget });
          return undefined;
        }
        if (entry.type === 'hardlink') {
          const target = checkedEntryPath(entry.linkTarget, top);
          if (!target) throw refuse(entry, `a hard link to ${JSON.stringify(entry.linkTarget)}`);
          entries.push({ ...base, type: 'hardlink', linkTarget: stored(target) });
          return undefined;
        }
        if (entry.type !== 'file')
          throw refuse(
            entry,
            `of tar type ${JSON.stringify(entry.typeflag)} (not a file, directory or link)`,
          );
        const hash = createHash('sha256');
        let size = 0;
        const hashing = new Transform({
          transform(chunk: Buffer, _encoding, callback) {
            hash.update(chunk);
            size += chunk.length;
            callback(null, chunk);
          },
        });
        const file = await sink.file(base.path);
        writes.push(
          pipeline(hashing, file).then(() => {
            totalBytes += size;
            entries.push({ ...base, type: 'file', sizeBytes: size, sha256: hash.digest('hex') });
          }),
        );
        return hashing;
      },
    });
    reading.catch(() => undefined); // awaited below; a refusal also closes the session
    const execution = session.exec(shellQuote(pkiTarArgv(ssh)), counted);
    let read: Awaited<typeof reading>;
    try {
      read = await reading;
    } catch (error) {
      session.close();
      counted.destroy();
      throw error;
    }
    const outcome = await execution;
    await Promise.all(writes);
    const where = `the node of admin cluster ${options.adminCluster}`;
    // GNU tar exits 1 when a file changed while it was read: worth another try; 2 is fatal.
    if (outcome.exitCode === 1) {
      throw new Error(
        `tar on ${where} reports a file changed while it was read: ${oneLine(outcome.stderr).slice(-300)}`,
      );
    }
    if (outcome.exitCode !== undefined && outcome.exitCode !== 0) {
      throw new RemoteCommandError(
        `${shellQuote(pkiTarArgv(ssh).slice(0, ssh.sudo ? 3 : 1))} ... on ${where} exited ${outcome.exitCode}: ` +
          `${oneLine(outcome.stderr).slice(-500) || '(no message)'}`,
      );
    }
    if (outcome.exitCode === undefined || !read.complete) {
      throw new Error(
        `the copy of the PKI from ${where} was cut after ${read.bytes} bytes` +
          `${outcome.signal ? ` (tar got ${outcome.signal})` : ''}; it is retried from the start`,
      );
    }
    entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    return {
      entries,
      fileCount: entries.filter((e) => e.type === 'file').length,
      totalBytes,
      streamedBytes: read.bytes,
    };
  } finally {
    session.close();
  }
}
