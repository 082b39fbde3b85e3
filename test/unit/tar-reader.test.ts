/**
 * The tar reader (activities/ssh/tar-reader.ts) on streams GNU tar writes: every entry with
 * its type, mode and bytes, long names, links; a cut stream is incomplete, never complete;
 * names that leave the directory asked for are refused.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { linkSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, test } from 'node:test';
import { checkedEntryPath, readTar, type TarEntry } from '../../activities/ssh/tar-reader.js';

const dir = mkdtempSync(join(tmpdir(), 'tar-reader-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const longName = `${'d'.repeat(60)}/${'f'.repeat(80)}.crt`;
const big = Buffer.alloc(300_000, 7);
mkdirSync(join(dir, 'pki', 'etcd'), { recursive: true });
mkdirSync(join(dir, 'pki', longName.split('/')[0] ?? ''), { recursive: true });
writeFileSync(join(dir, 'pki', 'ca.key'), 'key', { mode: 0o600 });
writeFileSync(join(dir, 'pki', 'etcd', 'big.bin'), big, { mode: 0o644 });
writeFileSync(join(dir, 'pki', longName), 'long');
symlinkSync('ca.key', join(dir, 'pki', 'link.key'));
linkSync(join(dir, 'pki', 'ca.key'), join(dir, 'pki', 'hard.key'));

function tarOf(format: string): Buffer {
  return execFileSync('tar', [`--format=${format}`, '-C', dir, '-cf', '-', 'pki'], {
    maxBuffer: 1 << 24,
  });
}

/** Feeds `bytes` in chunks of `size`, as a network stream would. */
async function* chunks(bytes: Buffer, size: number) {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

async function readAll(bytes: Buffer, chunkSize: number) {
  const entries: TarEntry[] = [];
  const contents = new Map<string, Buffer>();
  const result = await readTar(chunks(bytes, chunkSize), {
    async entry(entry) {
      entries.push(entry);
      if (entry.type !== 'file') return undefined;
      const parts: Buffer[] = [];
      return new Writable({
        write(chunk: Buffer, _e, done) {
          parts.push(chunk);
          done();
        },
        final(done) {
          contents.set(entry.path, Buffer.concat(parts));
          done();
        },
      });
    },
  });
  return { result, entries, contents };
}

for (const format of ['gnu', 'ustar', 'pax']) {
  test(`a ${format} stream: every entry, its mode and its bytes, in any chunking`, async () => {
    const bytes = tarOf(format);
    for (const size of [1, 511, 512, 4096, 1 << 20]) {
      if (format !== 'gnu' && size === 1) continue; // one byte at a time once is enough
      const { result, entries, contents } = await readAll(bytes, size);
      assert.equal(result.complete, true);
      assert.equal(result.bytes, bytes.length);
      const byPath = new Map(entries.map((e) => [e.path.replace(/\/$/, ''), e]));
      assert.equal(byPath.get('pki')?.type, 'directory');
      assert.equal(byPath.get('pki/ca.key')?.mode, 0o600);
      assert.equal(byPath.get('pki/etcd/big.bin')?.mode, 0o644);
      assert.deepEqual(contents.get('pki/etcd/big.bin'), big);
      assert.equal(
        contents.get(`pki/${longName}`)?.toString(),
        'long',
        'a name over 100 characters',
      );
      assert.deepEqual(
        [byPath.get('pki/link.key')?.type, byPath.get('pki/link.key')?.linkTarget],
        ['symlink', 'ca.key'],
      );
      const hard = [byPath.get('pki/hard.key'), byPath.get('pki/ca.key')].find(
        (e) => e?.type === 'hardlink',
      );
      assert.ok(hard, 'one of the two names is a hard link to the other');
      assert.equal(byPath.get('pki/ca.key')?.uname, 'root');
    }
  });
}

test('a stream cut anywhere is incomplete, never complete', async () => {
  const bytes = tarOf('gnu');
  for (const cut of [0, 100, 512, 1024, 5000, bytes.length - 10240]) {
    const { result } = await readAll(bytes.subarray(0, cut), 4096);
    assert.equal(result.complete, false, `cut at ${cut}`);
  }
});

test('a stream that is not tar is refused', async () => {
  await assert.rejects(readAll(Buffer.alloc(2048, 65), 512), /checksum/);
  const damaged = Buffer.from(tarOf('gnu'));
  damaged[3] = (damaged[3] ?? 0) ^ 0xff;
  await assert.rejects(readAll(damaged, 512), /checksum mismatch/);
});

test('entry names outside the directory asked for are refused', () => {
  assert.equal(checkedEntryPath('pki/', 'pki'), 'pki');
  assert.equal(checkedEntryPath('pki/etcd/ca.key', 'pki'), 'pki/etcd/ca.key');
  for (const bad of [
    '../pki/x',
    '/etc/shadow',
    'pki/../x',
    'pki/./x',
    'pki//x',
    'other/x',
    'pkix/y',
    'pki/a\nb',
    '',
  ])
    assert.equal(checkedEntryPath(bad, 'pki'), undefined, JSON.stringify(bad));
});
