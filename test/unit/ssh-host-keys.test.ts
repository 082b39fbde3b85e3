/**
 * Host-key checking (activities/ssh/host-keys.ts) against keys and known_hosts files made by
 * OpenSSH's own ssh-keygen: fingerprints as it prints them, plain, `[host]:port` and hashed
 * names, patterns and negation, @revoked, and the difference between unknown and changed.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { shellQuote } from '../../activities/ssh/client.js';
import {
  fingerprintOf,
  hostFieldMatches,
  keyTypeOf,
  knownKeyTypes,
  verifyHostKey,
} from '../../activities/ssh/host-keys.js';
import { makeKeyPair } from '../harness/sshd.js';

const dir = mkdtempSync(join(tmpdir(), 'host-keys-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const blobOf = (publicKey: string) => Buffer.from(publicKey.split(' ')[1] ?? '', 'base64');
const keys = async (name: string) => {
  const pair = await makeKeyPair(join(dir, name), name);
  return {
    ...pair,
    blob: blobOf(pair.publicKey),
    line: pair.publicKey.split(' ').slice(0, 2).join(' '),
  };
};
const knownHosts = (text: string) => ({ kind: 'known-hosts' as const, text });

test('fingerprints and key types are the ones ssh-keygen prints', async () => {
  const k = await keys('a');
  assert.equal(fingerprintOf(k.blob), k.fingerprint);
  assert.match(k.fingerprint, /^SHA256:[A-Za-z0-9+/]{43}$/);
  assert.equal(keyTypeOf(k.blob), 'ssh-ed25519');
});

test('known_hosts: the host on its port, plain or hashed by ssh-keygen -H; unknown, changed and revoked told apart', async () => {
  const node = await keys('node');
  const other = await keys('other');
  const plain = `# comment\n\n[10.0.0.1]:2222 ${node.line}\nnode.example,10.0.0.9 ${node.line}\n`;
  assert.deepEqual(verifyHostKey(knownHosts(plain), '10.0.0.1', 2222, node.blob), {
    trusted: true,
  });
  assert.deepEqual(verifyHostKey(knownHosts(plain), '10.0.0.9', 22, node.blob), { trusted: true });
  // The same address on another port is another host.
  assert.deepEqual(verifyHostKey(knownHosts(plain), '10.0.0.1', 22, node.blob), {
    trusted: false,
    reason: 'unknown',
  });
  assert.deepEqual(verifyHostKey(knownHosts(plain), '10.0.0.1', 2222, other.blob), {
    trusted: false,
    reason: 'changed',
  });
  const revoked = `${plain}@revoked * ${node.line}\n`;
  assert.deepEqual(verifyHostKey(knownHosts(revoked), '10.0.0.1', 2222, node.blob), {
    trusted: false,
    reason: 'revoked',
  });
  // A CA line trusts nothing by itself (certificates are not accepted).
  assert.deepEqual(
    verifyHostKey(knownHosts(`@cert-authority * ${node.line}\n`), '10.0.0.1', 22, node.blob),
    { trusted: false, reason: 'unknown' },
  );

  const file = join(dir, 'known_hosts');
  writeFileSync(file, plain);
  execFileSync('ssh-keygen', ['-H', '-f', file], { stdio: 'ignore' });
  const hashed = readFileSync(file, 'utf8');
  assert.ok(hashed.includes('|1|') && !hashed.includes('10.0.0.1'), 'ssh-keygen hashed the names');
  assert.deepEqual(verifyHostKey(knownHosts(hashed), '10.0.0.1', 2222, node.blob), {
    trusted: true,
  });
  assert.deepEqual(verifyHostKey(knownHosts(hashed), '10.0.0.2', 2222, node.blob), {
    trusted: false,
    reason: 'unknown',
  });
  assert.deepEqual(knownKeyTypes(knownHosts(hashed), '10.0.0.1', 2222), ['ssh-ed25519']);
});

test('patterns: * and ? match, ! excludes, case does not matter', () => {
  assert.equal(hostFieldMatches('*.example,!bad.example', 'Good.EXAMPLE'), true);
  assert.equal(hostFieldMatches('*.example,!bad.example', 'bad.example'), false);
  assert.equal(hostFieldMatches('10.0.0.?', '10.0.0.7'), true);
  assert.equal(hostFieldMatches('10.0.0.?', '10.0.0.17'), false);
  assert.equal(hostFieldMatches('[10.0.0.1]:2222', '[10.0.0.1]:2222'), true);
});

test('a pinned fingerprint trusts that key only', async () => {
  const node = await keys('pinned');
  const other = await keys('not-pinned');
  const trust = { kind: 'fingerprint' as const, fingerprint: node.fingerprint };
  assert.deepEqual(verifyHostKey(trust, 'h', 22, node.blob), { trusted: true });
  assert.deepEqual(verifyHostKey(trust, 'h', 22, other.blob), {
    trusted: false,
    reason: 'not-the-pinned-key',
  });
});

test('the remote command line quotes every word the shell would read', () => {
  assert.equal(
    shellQuote(['sudo', '-n', 'tar', '-C', '/etc/kubernetes', '-cf', '-', 'pki']),
    'sudo -n tar -C /etc/kubernetes -cf - pki',
  );
  assert.equal(
    shellQuote(['tar', '-C', "/a dir/it's; rm -rf /"]),
    `tar -C '/a dir/it'\\''s; rm -rf /'`,
  );
});
