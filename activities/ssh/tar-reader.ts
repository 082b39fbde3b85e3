/**
 * Reads a tar stream (`tar -cf -`: GNU, ustar and pax headers) entry by entry, in constant
 * memory, handing each regular file's bytes to a sink with backpressure. It extracts
 * nothing by itself: the caller decides where each entry goes, and entries whose names
 * leave the expected directory never reach it (see `checkedEntryPath`).
 */
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';

const BLOCK = 512;

export type TarEntryType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'other';

export interface TarEntry {
  path: string;
  type: TarEntryType;
  /** Permission bits (with setuid, setgid, sticky). */
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  size: number;
  linkTarget: string;
  /** The type flag as tar wrote it (for messages about `other`). */
  typeflag: string;
}

export interface TarHandler {
  /** Called for each entry; for a file, return where its bytes go (the stream is ended after them). */
  entry(entry: TarEntry): Promise<Writable | undefined>;
}

export interface TarReadResult {
  /** Bytes of the tar stream read. */
  bytes: number;
  /** The end-of-archive block was seen: the stream is complete. */
  complete: boolean;
}

/** The stream is not a tar archive, or a header is damaged. */
export class TarFormatError extends Error {
  override name = 'TarFormatError';
}

function cstring(block: Buffer, offset: number, length: number): string {
  const field = block.subarray(offset, offset + length);
  const end = field.indexOf(0);
  return field.subarray(0, end === -1 ? field.length : end).toString('utf8');
}

function octal(block: Buffer, offset: number, length: number, what: string): number {
  const field = block.subarray(offset, offset + length);
  if (((field[0] ?? 0) & 0x80) !== 0) {
    // GNU base-256: a big-endian number after the marker byte.
    let value = 0;
    for (let i = 1; i < field.length; i++) value = value * 256 + (field[i] ?? 0);
    if (!Number.isSafeInteger(value)) throw new TarFormatError(`tar header: ${what} too large`);
    return value;
  }
  const text = field.toString('latin1').replace(/\0.*$/s, '').trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarFormatError(`tar header: ${what} is not octal`);
  return Number.parseInt(text, 8);
}

function checksumOk(block: Buffer): boolean {
  const recorded = octal(block, 148, 8, 'checksum');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : (block[i] ?? 0);
  return sum === recorded;
}

/** `key=value` records of a pax extended header ("<length> key=value\n" each). */
function paxRecords(data: Buffer): Map<string, string> {
  const records = new Map<string, string>();
  let at = 0;
  while (at < data.length) {
    const space = data.indexOf(0x20, at);
    if (space === -1) break;
    const length = Number(data.subarray(at, space).toString('latin1'));
    if (!Number.isSafeInteger(length) || length <= 0) throw new TarFormatError('bad pax record');
    const record = data.subarray(space + 1, at + length - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq > 0) records.set(record.slice(0, eq), record.slice(eq + 1));
    at += length;
  }
  return records;
}

const TYPES: Record<string, TarEntryType> = {
  '0': 'file',
  '\0': 'file',
  '7': 'file',
  '5': 'directory',
  '2': 'symlink',
  '1': 'hardlink',
};

/** Resolves when the sink wants more, rejects if it fails first. */
function drained(sink: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (error?: Error) => {
      sink.off('drain', done);
      sink.off('error', done);
      if (error) reject(error);
      else resolve();
    };
    sink.once('drain', done);
    sink.once('error', done);
  });
}

/** Pulls exact byte counts out of a chunked stream. */
class ByteQueue {
  private chunks: Buffer[] = [];
  private length = 0;
  total = 0;
  constructor(private readonly source: AsyncIterator<Buffer>) {}

  /** Up to `max` bytes (at least one), or undefined at the end of the stream. */
  async some(max: number): Promise<Buffer | undefined> {
    if (this.length === 0) {
      const next = await this.source.next();
      if (next.done) return undefined;
      const chunk = Buffer.isBuffer(next.value) ? next.value : Buffer.from(next.value);
      this.total += chunk.length;
      this.chunks.push(chunk);
      this.length += chunk.length;
    }
    const first = this.chunks[0] as Buffer;
    const take = first.subarray(0, Math.min(max, first.length));
    if (take.length === first.length) this.chunks.shift();
    else this.chunks[0] = first.subarray(take.length);
    this.length -= take.length;
    return take;
  }

  /** Exactly `n` bytes, or undefined if the stream ends first. */
  async exactly(n: number): Promise<Buffer | undefined> {
    const parts: Buffer[] = [];
    let have = 0;
    while (have < n) {
      const part = await this.some(n - have);
      if (!part) return undefined;
      parts.push(part);
      have += part.length;
    }
    return Buffer.concat(parts, n);
  }
}

/** Reads `source` to its end; a stream that ends before the end-of-archive block is `complete: false`. */
export async function readTar(
  source: AsyncIterable<Buffer>,
  handler: TarHandler,
): Promise<TarReadResult> {
  const queue = new ByteQueue(source[Symbol.asyncIterator]());
  let longName: string | undefined;
  let longLink: string | undefined;
  let pax = new Map<string, string>();
  const padding = (size: number) => (BLOCK - (size % BLOCK)) % BLOCK;
  const skip = async (n: number) => {
    let left = n;
    while (left > 0) {
      const part = await queue.some(left);
      if (!part) return false;
      left -= part.length;
    }
    return true;
  };
  for (;;) {
    const block = await queue.exactly(BLOCK);
    if (!block) return { bytes: queue.total, complete: false };
    if (block.every((b) => b === 0)) {
      // End of archive: drain the rest (the second zero block and the record padding).
      while (await queue.some(1 << 16));
      return { bytes: queue.total, complete: true };
    }
    if (!checksumOk(block))
      throw new TarFormatError('tar header checksum mismatch: not a tar stream, or damaged');
    const typeflag = String.fromCharCode(block[156] ?? 0);
    const size = octal(block, 124, 12, 'size');
    if (typeflag === 'L' || typeflag === 'K' || typeflag === 'x' || typeflag === 'g') {
      if (size > 1 << 20) throw new TarFormatError('tar: extended header larger than 1 MiB');
      const data = await queue.exactly(size);
      if (!data || !(await skip(padding(size)))) return { bytes: queue.total, complete: false };
      if (typeflag === 'L') longName = cstring(data, 0, data.length);
      else if (typeflag === 'K') longLink = cstring(data, 0, data.length);
      else if (typeflag === 'x') pax = paxRecords(data);
      continue;
    }
    const magic = block.subarray(257, 263).toString('latin1');
    const prefix = magic === 'ustar\0' ? cstring(block, 345, 155) : '';
    const name = cstring(block, 0, 100);
    const entry: TarEntry = {
      path: pax.get('path') ?? longName ?? (prefix ? `${prefix}/${name}` : name),
      type: TYPES[typeflag] ?? 'other',
      mode: octal(block, 100, 8, 'mode') & 0o7777,
      uid: Number(pax.get('uid') ?? octal(block, 108, 8, 'uid')),
      gid: Number(pax.get('gid') ?? octal(block, 116, 8, 'gid')),
      uname: pax.get('uname') ?? cstring(block, 265, 32),
      gname: pax.get('gname') ?? cstring(block, 297, 32),
      size: Number(pax.get('size') ?? size),
      linkTarget: pax.get('linkpath') ?? longLink ?? cstring(block, 157, 100),
      typeflag,
    };
    longName = undefined;
    longLink = undefined;
    pax = new Map();
    const sink = await handler.entry(entry);
    // Only regular files carry data (a hard link's size is 0 in GNU tar).
    const dataBytes = entry.type === 'file' || entry.type === 'other' ? entry.size : 0;
    if (sink) {
      let left = dataBytes;
      while (left > 0) {
        const part = await queue.some(Math.min(left, 1 << 16));
        if (!part) {
          sink.destroy();
          return { bytes: queue.total, complete: false };
        }
        left -= part.length;
        if (!sink.write(part)) await drained(sink);
      }
      sink.end();
      await finished(sink);
    } else if (!(await skip(dataBytes))) return { bytes: queue.total, complete: false };
    if (!(await skip(padding(dataBytes)))) return { bytes: queue.total, complete: false };
  }
}

/**
 * An entry's path, checked: relative, inside `top` (the directory tar was asked for), no
 * `.`, `..` or empty segments, no control characters; a trailing `/` (directories) dropped.
 * Undefined when the entry must be refused: a node that sends such names is not trusted.
 */
export function checkedEntryPath(path: string, top: string): string | undefined {
  const trimmed = path.replace(/\/+$/, '');
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters is the point
  if (trimmed === '' || trimmed.startsWith('/') || /[\u0000-\u001f\u007f]/.test(trimmed))
    return undefined;
  const segments = trimmed.split('/');
  if (segments[0] !== top) return undefined;
  if (segments.some((s) => s === '' || s === '.' || s === '..')) return undefined;
  return trimmed;
}
