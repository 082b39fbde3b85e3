/**
 * A TLS front for the Temporal dev server, which serves only plain gRPC
 * (`temporal server start-dev` of CLI 1.5.1 has no TLS flags): Node's `tls` terminates TLS
 * (with ALPN h2, as gRPC clients require), optionally requires a client certificate signed
 * by `ca` (mTLS), and pipes the bytes to the dev server's plain port.
 */
import { connect, type Socket } from 'node:net';
import { createServer, type TLSSocket } from 'node:tls';

export interface TlsProxy {
  /** host:port to connect to with TLS. */
  address: string;
  /** Connections that completed the TLS handshake (with a trusted client certificate under mTLS). */
  accepted(): number;
  /** Handshakes refused (no client certificate or an untrusted one, under mTLS). */
  refused(): number;
  stop(): Promise<void>;
}

export async function startTlsProxy(options: {
  /** The dev server's plain host:port. */
  target: string;
  cert: Buffer;
  key: Buffer;
  /** With `ca`, clients must present a certificate it signed. */
  ca?: Buffer;
}): Promise<TlsProxy> {
  const [host, port] = options.target.split(':');
  const sockets = new Set<Socket>();
  let accepted = 0;
  let refused = 0;
  const server = createServer(
    {
      cert: options.cert,
      key: options.key,
      ALPNProtocols: ['h2'],
      ...(options.ca ? { ca: options.ca, requestCert: true, rejectUnauthorized: true } : {}),
    },
    (socket: TLSSocket) => {
      accepted += 1;
      const upstream = connect(Number(port), host);
      for (const s of [socket, upstream]) {
        sockets.add(s);
        s.once('close', () => sockets.delete(s));
      }
      socket.on('error', () => upstream.destroy());
      upstream.on('error', () => socket.destroy());
      socket.pipe(upstream).pipe(socket);
    },
  );
  server.on('tlsClientError', () => {
    refused += 1;
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('proxy: no address');
  return {
    address: `127.0.0.1:${address.port}`,
    accepted: () => accepted,
    refused: () => refused,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
