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
import { open, stat } from 'node:fs/promises';
import { type Readable, Transform, type TransformCallback, type Writable } from 'node:stream';
import { finished, pipeline } from 'node:stream/promises';
import type { KubeConfig } from '@kubernetes/client-node';
import type { CopyResult } from '../../workflows/contract/index.js';
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
 * Where a copy out of a pod goes, resumably: what an earlier attempt already received, and
 * a stream to continue from there. The backup store's staging area is one; a plain file
 * (`fileDestination`) is another.
 */
export interface CopyDestination {
  /** Bytes already received by an earlier attempt. */
  size(): Promise<number>;
  /** Those bytes, so the hash computed on the way covers the whole file. */
  readExisting(): Promise<Readable>;
  /**
   * A stream that writes from `offset` (≤ size) on, dropping anything after it; it finishes
   * only once the bytes are durable, so awaiting the copy means the data is on disk.
   */
  writeFrom(offset: number): Promise<Writable>;
}

/** What a copy into a pod sends: its size and sha256 known in advance, readable from any offset. */
export interface CopySource {
  /** For messages. */
  name: string;
  sizeBytes: number;
  sha256: string;
  read(offset: number): Promise<Readable>;
}

/**
 * Copies `source` out of the pod into `destination`. A retry continues from the bytes the
 * destination already has; bytes beyond the source's size mean a different file and are
 * dropped. On success the whole file's sha256 equals the pod's and it is durable; giving it
 * its final name is the caller's (the backup store's commit).
 */
export async function copyFromPod(
  kubeConfig: KubeConfig,
  source: PodFile,
  destination: CopyDestination,
  options: CopyOptions = {},
): Promise<CopyResult> {
  const remote = await statPodFile(kubeConfig, source, options.signal);
  if (!remote) throw new Error(`${source.namespace}/${source.pod}:${source.path} does not exist`);
  let have = await destination.size();
  if (have > remote.sizeBytes) have = 0;
  // The hash of what we already have, so the one computed on the way covers every byte.
  const hash = createHash('sha256');
  if (have > 0) {
    let hashed = 0;
    for await (const chunk of await destination.readExisting()) {
      const bytes = (chunk as Buffer).subarray(0, have - hashed);
      hash.update(bytes);
      hashed += bytes.length;
      if (hashed >= have) break;
    }
  }
  const sink = await destination.writeFrom(have);
  const counted = progressCounter(have, remote.sizeBytes, options.onProgress, hash);
  const written = pipeline(counted, sink);
  // Whatever happens to the exec, the bytes received are made durable for the next attempt.
  let failure: unknown;
  await execInPodChecked(kubeConfig, {
    ...target(source),
    argv: ['tail', '-c', `+${have + 1}`, source.path],
    stdout: counted,
    signal: options.signal,
  }).catch((error: unknown) => {
    failure = error;
  });
  counted.end();
  await written.catch((error: unknown) => {
    failure ??= error;
  });
  if (failure) throw failure;

  const sha256 = hash.digest('hex');
  const size = await destination.size();
  if (sha256 !== remote.sha256 || size !== remote.sizeBytes) {
    const emptied = await destination.writeFrom(0);
    emptied.end();
    await finished(emptied);
    throw new CopyVerificationError(
      `copy of ${source.pod}:${source.path} does not match the source (got ${size} bytes, sha256 ${sha256}; ` +
        `expected ${remote.sizeBytes} bytes, sha256 ${remote.sha256}); the partial copy was discarded`,
    );
  }
  return { sizeBytes: size, sha256, resumedFromBytes: have };
}

/**
 * Copies `source` into the pod at `destination.path`. The bytes land in `<path>.part` in
 * the pod; a retry continues from its size. The pod's sha256 of the whole file must equal
 * the source's before it is fsynced and renamed into place. If the destination already
 * holds the same bytes, nothing is sent.
 */
export async function copyToPod(
  kubeConfig: KubeConfig,
  source: CopySource,
  destination: PodFile,
  options: CopyOptions = {},
): Promise<CopyResult> {
  const local = { sizeBytes: source.sizeBytes, sha256: source.sha256 };
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
    const reading = pipeline(await source.read(have), counter);
    reading.catch(() => undefined); // a read error ends stdin early: the exec reports it
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
      `copy of ${source.name} into ${destination.pod}:${destination.path} does not match (pod has ${arrived?.sizeBytes ?? 0} bytes, ` +
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

/** Passes bytes through, reporting progress and, if given, hashing them. */
function progressCounter(
  startBytes: number,
  totalBytes: number,
  onProgress: CopyOptions['onProgress'],
  hash?: Hash,
): Transform {
  const report = progressReporter(startBytes, totalBytes, onProgress);
  return new Transform({
    highWaterMark: 1 << 20,
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      hash?.update(chunk);
      report(chunk.length);
      callback(null, chunk);
    },
  });
}

/** A plain file on this machine as a copy's destination (tests, benchmarks). */
export function fileDestination(path: string): CopyDestination {
  return {
    size: async () => (await localSize(path)) ?? 0,
    readExisting: async () => createReadStream(path),
    async writeFrom(offset) {
      const handle = await open(path, (await localSize(path)) === undefined ? 'w' : 'r+', 0o600);
      try {
        await handle.truncate(offset);
      } catch (error) {
        await handle.close();
        throw error;
      }
      return handle.createWriteStream({ start: offset, flush: true });
    },
  };
}

/** A plain file on this machine as a copy's source (tests, benchmarks): hashed once here. */
export async function fileSource(path: string): Promise<CopySource> {
  const sizeBytes = await localSize(path);
  if (sizeBytes === undefined) throw new Error(`${path} does not exist`);
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return {
    name: path,
    sizeBytes,
    sha256: hash.digest('hex'),
    read: async (offset) => createReadStream(path, { start: offset }),
  };
}

async function localSize(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}
