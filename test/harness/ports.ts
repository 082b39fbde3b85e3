/** Free loopback ports for servers the tests start (free when asked; a race stays possible). */
import { createServer } from 'node:net';

/** A port that is free on every given host right now (the OS picks it on the first). */
export async function freePort(hosts: string[] = ['127.0.0.1']): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const [first, ...rest] = hosts;
    const port = await listenAndClose(first ?? '127.0.0.1', 0);
    if (port === undefined) continue;
    const others = await Promise.all(rest.map((host) => listenAndClose(host, port)));
    if (others.every((p) => p === port)) return port;
  }
  throw new Error(`no port free on all of ${hosts.join(', ')}`);
}

function listenAndClose(host: string, port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(undefined));
    server.listen(port, host, () => {
      const address = server.address();
      const bound = typeof address === 'object' && address ? address.port : undefined;
      server.close(() => resolve(bound));
    });
  });
}
