/**
 * Certificates for the simulated cluster, made with the `openssl` CLI (ECDSA P-256: fast,
 * and accepted by etcd 3.4 and by Node's TLS stack).
 */
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface KeyPair {
  /** PEM certificate. */
  cert: string;
  /** PEM private key (PKCS#8). */
  key: string;
  certPath: string;
  keyPath: string;
}

/** Creates a self-signed CA in `dir` as `<name>.crt` / `<name>.key`. */
export async function createCa(dir: string, name: string, commonName: string): Promise<KeyPair> {
  await mkdir(dir, { recursive: true });
  const certPath = join(dir, `${name}.crt`);
  const keyPath = join(dir, `${name}.key`);
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    keyPath,
    '-out',
    certPath,
    '-days',
    '3650',
    '-subj',
    `/CN=${commonName}`,
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
  ]);
  return {
    cert: await readFile(certPath, 'utf8'),
    key: await readFile(keyPath, 'utf8'),
    certPath,
    keyPath,
  };
}

export interface LeafOptions {
  commonName: string;
  /** Subject alternative names, e.g. `IP:127.0.0.1`, `DNS:localhost`. */
  san: string[];
  /** Extended key usages; both by default (etcd uses one certificate for server, peer and client). */
  usages?: ('serverAuth' | 'clientAuth')[];
}

/** Creates a certificate signed by `ca` in `dir` as `<name>.crt` / `<name>.key`. */
export async function createLeaf(
  ca: KeyPair,
  dir: string,
  name: string,
  options: LeafOptions,
): Promise<KeyPair> {
  await mkdir(dir, { recursive: true });
  const certPath = join(dir, `${name}.crt`);
  const keyPath = join(dir, `${name}.key`);
  const usages = options.usages ?? ['serverAuth', 'clientAuth'];
  const args = [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    keyPath,
    '-out',
    certPath,
    '-days',
    '3650',
    '-subj',
    `/CN=${options.commonName}`,
    '-CA',
    ca.certPath,
    '-CAkey',
    ca.keyPath,
    '-addext',
    'basicConstraints=critical,CA:FALSE',
    '-addext',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    '-addext',
    `extendedKeyUsage=${usages.join(',')}`,
  ];
  if (options.san.length > 0) args.push('-addext', `subjectAltName=${options.san.join(',')}`);
  await run('openssl', args);
  return {
    cert: await readFile(certPath, 'utf8'),
    key: await readFile(keyPath, 'utf8'),
    certPath,
    keyPath,
  };
}

/** Writes a PEM file with mode 0600. */
export async function writeSecretFile(path: string, content: string): Promise<void> {
  await writeFile(path, content, { mode: 0o600 });
}
