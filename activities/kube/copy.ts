/**
 * Copy a file out of a pod (SPEC B3) or into one (R3, H5b) over exec, in constant memory,
 * resumable and verified. Resuming works as `kubectl cp --retries` does: the side that
 * receives keeps what it already has under a temporary name, and only the missing tail is
 * sent (`tail -c +N` out of the pod, `head -c N >>` into it). A sha256 computed on the way
 * is compared with `sha256sum` on the other side before the file takes its final name.
 *
 * Commands used in the pod: sh, stat, tail, head, sha256sum, sync, mv, rm (coreutils).
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { type FileHandle, open, stat, truncate } from 'node:fs/promises';
import { Transform, type TransformCallback, Writable } from 'node:stream';
import type { KubeConfig } from '@kubernetes/client-node';
import { execInPodChecked } from './exec.js';

export interface PodFile {
  namespace: string;
  pod: string;
  container: string;
  /** Absolute path inside the container. */
  path: string;
}

export interface CopyProgress {
  bytesDone: number;
  totalBytes: number;
}

export interface CopyResult {
  sizeBytes: number;
  sha256: string;
  /** Bytes already in place from an earlier attempt, not sent again. */
  resumedFromBytes: number;
}

export interface CopyOptions {
  onProgress?: (progress: CopyProgress) => void;
  signal?: AbortSignal;
}

/** The copy arrived but is not the file that was sent: the partial copy was discarded. */
export class CopyVerificationError extends Error {
  override name = 'CopyVerificationError';
}

/** Size and sha256 of a file in a pod, or undefined when it does not exist. */
export async function statPodFile(
  kubeConfig: KubeConfig,
  file: PodFile,
  signal?: AbortSignal,
): Promise<{ sizeBytes: number; sha256: string } | undefined> {
  // One exec: print the size and the hash, or nothing when the file is missing.
  const script = '[ -f "$1" ] || exit 0; stat -c %s "$1" && sha256sum "$1"';
  const { stdout } = await execInPodChecked(kubeConfig, {
    ...target(file),
    argv: ['sh', '-c', script, 'sh', file.path],
    signal,
  });
  if (stdout.trim() === '') return undefined;
  const [sizeLine, hashLine] = stdout.trim().split('\n');
  const sizeBytes = Number(sizeLine);
  const sha256 = hashLine?.split(/\s+/)[0] ?? '';
  if (!Number.isSafeInteger(sizeBytes) || !/^[0-9a-f]{64}$/.test(sha256)) {
    throw new Error(
      `unexpected output from stat/sha256sum of ${file.path}: ${stdout.slice(0, 200)}`,
    );
  }
  return { sizeBytes, sha256 };
}

/**
 * Copies `source` out of the pod into `destination` on this machine. A retry continues
 * from the size `destination` already has; bytes beyond the source's size mean a different
 * file and are dropped. On success the whole file's sha256 equals the pod's and it is
 * fsynced; giving it its final name is the caller's (the backup repository's commit).
 */
export async function copyFromPod(
  kubeConfig: KubeConfig,
  source: PodFile,
  destination: string,
  options: CopyOptions = {},
): Promise<CopyResult> {
  const remote = await statPodFile(kubeConfig, source, options.signal);
  if (!remote) throw new Error(`${source.namespace}/${source.pod}:${source.path} does not exist`);
  let have = (await localSize(destination)) ?? 0;
  if (have > remote.sizeBytes) {
    await truncate(destination, 0);
    have = 0;
  }
  // The hash of what we already have, so the one computed on the way covers every byte.
  const hash = createHash('sha256');
  if (have > 0) await hashFile(destination, hash, have);
  const file = await open(destination, have > 0 ? 'r+' : 'w', 0o600);
  try {
    await execInPodChecked(kubeConfig, {
      ...target(source),
      argv: ['tail', '-c', `+${have + 1}`, source.path],
      stdout: new HashingFileSink(file, have, hash, remote.sizeBytes, options.onProgress),
      signal: options.signal,
    });
  } finally {
    await file.close();
  }

  const sha256 = hash.digest('hex');
  const size = (await localSize(destination)) ?? 0;
  if (sha256 !== remote.sha256 || size !== remote.sizeBytes) {
    await truncate(destination, 0);
    throw new CopyVerificationError(
      `copy of ${source.pod}:${source.path} does not match the source (got ${size} bytes, sha256 ${sha256}; ` +
        `expected ${remote.sizeBytes} bytes, sha256 ${remote.sha256}); the partial copy was discarded`,
    );
  }
  return { sizeBytes: size, sha256, resumedFromBytes: have };
}

/**
 * Copies `source` on this machine into the pod at `destination.path`. The bytes land in
 * `<path>.part` in the pod; a retry continues from its size. The pod's sha256 of the whole
 * file must equal ours before it is fsynced and renamed into place. If the destination
 * already holds the same bytes, nothing is sent.
 */
export async function copyToPod(
  kubeConfig: KubeConfig,
  source: string,
  destination: PodFile,
  options: CopyOptions = {},
): Promise<CopyResult> {
  const local = await localSha256(source);
  if (!local) throw new Error(`${source} does not exist`);
  const existing = await statPodFile(kubeConfig, destination, options.signal);
  if (existing?.sha256 === local.sha256) return { ...local, resumedFromBytes: local.sizeBytes };

  const partial: PodFile = { ...destination, path: `${destination.path}.part` };
  let have = (await statPodFile(kubeConfig, partial, options.signal))?.sizeBytes ?? 0;
  if (have > local.sizeBytes) {
    await execInPodChecked(kubeConfig, { ...target(partial), argv: ['rm', '-f', partial.path] });
    have = 0;
  }
  const remaining = local.sizeBytes - have;
  if (remaining > 0) {
    const counter = progressCounter(have, local.sizeBytes, options.onProgress);
    createReadStream(source, { start: have }).pipe(counter);
    // `head -c N` ends by itself after N bytes, so this works on v4 (no stdin close) too.
    await execInPodChecked(kubeConfig, {
      ...target(partial),
      argv: ['sh', '-c', 'head -c "$1" >> "$2"', 'sh', String(remaining), partial.path],
      stdin: counter,
      signal: options.signal,
    });
  }
  const arrived = await statPodFile(kubeConfig, partial, options.signal);
  if (arrived?.sha256 !== local.sha256) {
    await execInPodChecked(kubeConfig, { ...target(partial), argv: ['rm', '-f', partial.path] });
    throw new CopyVerificationError(
      `copy of ${source} into ${destination.pod}:${destination.path} does not match (pod has ${arrived?.sizeBytes ?? 0} bytes, ` +
        `sha256 ${arrived?.sha256 ?? 'none'}; expected ${local.sizeBytes}, ${local.sha256}); the partial copy was discarded`,
    );
  }
  await execInPodChecked(kubeConfig, {
    ...target(partial),
    argv: ['sh', '-c', 'sync "$1" && mv -f "$1" "$2"', 'sh', partial.path, destination.path],
  });
  return { ...local, resumedFromBytes: have };
}

function target(file: PodFile) {
  return { namespace: file.namespace, pod: file.pod, container: file.container };
}

/** Calls `onProgress` about once a second, and once at the end. */
function progressReporter(
  startBytes: number,
  totalBytes: number,
  onProgress: CopyOptions['onProgress'],
) {
  let bytesDone = startBytes;
  let lastReport = 0;
  return (chunkBytes: number) => {
    bytesDone += chunkBytes;
    const now = Date.now();
    if (onProgress && (now - lastReport > 1000 || bytesDone === totalBytes)) {
      lastReport = now;
      onProgress({ bytesDone, totalBytes });
    }
  };
}

/** Passes bytes through, reporting progress. */
function progressCounter(
  startBytes: number,
  totalBytes: number,
  onProgress: CopyOptions['onProgress'],
): Transform {
  const report = progressReporter(startBytes, totalBytes, onProgress);
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      report(chunk.length);
      callback(null, chunk);
    },
  });
}

/**
 * Writes stdout into an open file at a position, hashing on the way; it finishes only
 * once the bytes are fsynced, so awaiting the exec means the data is on disk.
 */
class HashingFileSink extends Writable {
  private readonly report: (chunkBytes: number) => void;
  constructor(
    private readonly file: FileHandle,
    private position: number,
    private readonly hash: Hash,
    totalBytes: number,
    onProgress: CopyOptions['onProgress'],
  ) {
    super({ highWaterMark: 1 << 20 });
    this.report = progressReporter(position, totalBytes, onProgress);
  }

  override _write(
    chunk: Buffer,
    _encoding: BufferEncoding,
    callback: (error?: Error | null) => void,
  ): void {
    this.hash.update(chunk);
    this.file.write(chunk, 0, chunk.length, this.position).then(() => {
      this.position += chunk.length;
      this.report(chunk.length);
      callback();
    }, callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.file.sync().then(() => callback(), callback);
  }
}

async function localSize(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

async function localSha256(
  path: string,
): Promise<{ sizeBytes: number; sha256: string } | undefined> {
  const sizeBytes = await localSize(path);
  if (sizeBytes === undefined) return undefined;
  const hash = createHash('sha256');
  await hashFile(path, hash, sizeBytes);
  return { sizeBytes, sha256: hash.digest('hex') };
}

async function hashFile(path: string, hash: Hash, bytes: number): Promise<void> {
  if (bytes === 0) return;
  for await (const chunk of createReadStream(path, { start: 0, end: bytes - 1 }))
    hash.update(chunk as Buffer);
}
