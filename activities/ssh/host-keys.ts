/**
 * Is the host key an SSH server presents the one the worker's configuration trusts? Either
 * an OpenSSH known_hosts file (plain, hashed `|1|salt|hash` and `[host]:port` names,
 * patterns with `*`, `?` and `!`, `@revoked`) or one pinned `SHA256:` fingerprint. Keys are
 * compared as raw blobs; anything not trusted is refused — the runbook's script turned
 * host-key checking off, which lets anyone on the path collect the cluster's keys.
 */
import { createHash, createHmac } from 'node:crypto';

/** Who a host is in messages: the node or its jump host, of which admin cluster. */
export interface HostIdentity {
  role: 'admin control-plane node' | 'jump host';
  adminCluster: string;
  host: string;
  port: number;
}

export type HostKeyTrust =
  | { kind: 'known-hosts'; text: string }
  | { kind: 'fingerprint'; fingerprint: string };

export type HostKeyVerdict =
  | { trusted: true }
  | { trusted: false; reason: 'unknown' | 'changed' | 'revoked' | 'not-the-pinned-key' };

/** The host key was not the trusted one: never retried; the message says what to check. */
export class HostKeyRejectedError extends Error {
  override name = 'HostKeyRejectedError';
  constructor(
    readonly identity: HostIdentity,
    readonly reason: Exclude<HostKeyVerdict, { trusted: true }>['reason'],
    readonly keyType: string,
    readonly fingerprint: string,
  ) {
    const { role, adminCluster, host, port } = identity;
    const why = {
      unknown: "it is not in the known_hosts file of the worker's configuration",
      changed:
        'it differs from the key known_hosts lists for this host (the host was re-installed, or someone is in the middle)',
      revoked: 'known_hosts marks it @revoked',
      'not-the-pinned-key': "it is not the hostKeyFingerprint of the worker's configuration",
    }[reason];
    super(
      `SSH host key of the ${role} ${host}:${port} of admin cluster ${adminCluster} refused: ${why}; ` +
        `it presented ${keyType} ${fingerprint}. Nothing was copied. If that key is right (check it on the host: ` +
        'ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub), put it in known_hosts or pin its fingerprint.',
    );
  }
}

/** `SHA256:<unpadded base64>`, as `ssh-keygen -lf` prints it. */
export function fingerprintOf(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

/** The key type the blob names first (`ssh-ed25519`, `ssh-rsa`, `ecdsa-sha2-nistp256`...). */
export function keyTypeOf(keyBlob: Buffer): string {
  if (keyBlob.length < 4) return 'unknown';
  const length = keyBlob.readUInt32BE(0);
  if (length > 64 || keyBlob.length < 4 + length) return 'unknown';
  return keyBlob.subarray(4, 4 + length).toString('latin1');
}

interface KnownHostLine {
  marker?: 'revoked' | 'cert-authority';
  patterns: string;
  keyType: string;
  key: Buffer;
}

/** The lines of a known_hosts text that name a key (comments, blanks and junk are skipped). */
export function parseKnownHosts(text: string): KnownHostLine[] {
  const lines: KnownHostLine[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    let marker: KnownHostLine['marker'];
    if (fields[0]?.startsWith('@')) {
      const m = fields.shift();
      if (m === '@revoked') marker = 'revoked';
      else if (m === '@cert-authority') marker = 'cert-authority';
      else continue;
    }
    const [patterns, keyType, base64] = fields;
    if (!patterns || !keyType || !base64 || !/^[A-Za-z0-9+/]+=*$/.test(base64)) continue;
    lines.push({
      ...(marker ? { marker } : {}),
      patterns,
      keyType,
      key: Buffer.from(base64, 'base64'),
    });
  }
  return lines;
}

/** How known_hosts names a host: `host` on port 22, `[host]:port` elsewhere. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function globMatches(pattern: string, name: string): boolean {
  const regex = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${regex}$`, 'i').test(name);
}

/** Whether a known_hosts host field (patterns, or one hashed name) names `name`. */
export function hostFieldMatches(field: string, name: string): boolean {
  if (field.startsWith('|1|')) {
    const [, , salt, hash] = field.split('|');
    if (!salt || !hash) return false;
    const digest = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64');
    return digest === hash;
  }
  let matched = false;
  for (const pattern of field.split(',')) {
    if (pattern.startsWith('!')) {
      if (globMatches(pattern.slice(1), name)) return false;
    } else if (globMatches(pattern, name)) matched = true;
  }
  return matched;
}

/** The key types known_hosts lists for the host (to prefer them in the key exchange). */
export function knownKeyTypes(trust: HostKeyTrust, host: string, port: number): string[] {
  if (trust.kind !== 'known-hosts') return [];
  const name = knownHostsName(host, port);
  return [
    ...new Set(
      parseKnownHosts(trust.text)
        .filter((l) => l.marker === undefined && hostFieldMatches(l.patterns, name))
        .map((l) => l.keyType),
    ),
  ];
}

/** Whether `keyBlob`, presented by `host:port`, is trusted. */
export function verifyHostKey(
  trust: HostKeyTrust,
  host: string,
  port: number,
  keyBlob: Buffer,
): HostKeyVerdict {
  if (trust.kind === 'fingerprint') {
    return fingerprintOf(keyBlob) === trust.fingerprint
      ? { trusted: true }
      : { trusted: false, reason: 'not-the-pinned-key' };
  }
  const name = knownHostsName(host, port);
  const matching = parseKnownHosts(trust.text).filter((l) => hostFieldMatches(l.patterns, name));
  if (matching.some((l) => l.marker === 'revoked' && l.key.equals(keyBlob))) {
    return { trusted: false, reason: 'revoked' };
  }
  // Certificates are not accepted: a CA line trusts nothing here by itself.
  const plain = matching.filter((l) => l.marker === undefined);
  if (plain.some((l) => l.key.equals(keyBlob))) return { trusted: true };
  return { trusted: false, reason: plain.length > 0 ? 'changed' : 'unknown' };
}
