/** Starts bench/sim-process.ts as a child process and waits until its clusters are Ready. */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { EtcdTls } from '../test/sim/index.js';
import type { ClusterProfile } from '../workflows/contract/index.js';

export interface SimRequest {
  clusters: { name: string; members: 1 | 3 }[];
  kubeconfigPath?: string;
}

export interface SimClusterInfo {
  name: string;
  members: 1 | 3;
  profile: ClusterProfile;
  etcdClientUrls: string[];
  etcdTls: EtcdTls;
}

export interface SimInfo {
  kubeconfigPath: string;
  clusters: SimClusterInfo[];
}

export interface SimProcess extends SimInfo {
  pid: number;
  /** Paces every exec stream to `bytesPerSecond` (a slow link); undefined lifts the limit. */
  limitExecBandwidth(bytesPerSecond: number | undefined): Promise<void>;
  stop(): Promise<void>;
}

const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));
const READY_TIMEOUT_MS = 20 * 60_000;

export async function startSimProcess(request: SimRequest): Promise<SimProcess> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'bench/sim-process.ts', JSON.stringify(request)],
    { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] },
  );
  // SIGTERM, not SIGKILL: the simulator then removes its processes and files by itself.
  const killOnExit = () => child.kill('SIGTERM');
  process.once('exit', killOnExit);
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const lines = createInterface({ input: child.stdout });
  const info = await new Promise<SimInfo>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error('the simulator is not ready')),
      READY_TIMEOUT_MS,
    );
    lines.on('line', (line) => {
      if (!line.startsWith('{')) return;
      clearTimeout(timer);
      resolve(JSON.parse(line) as SimInfo);
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`the simulator exited before it was ready: ${stderr}`));
    });
  });
  return {
    ...info,
    pid: child.pid ?? 0,
    async limitExecBandwidth(bytesPerSecond) {
      const done = new Promise<void>((resolve) => {
        const onLine = (line: string) => {
          if (line !== 'limited') return;
          lines.off('line', onLine);
          resolve();
        };
        lines.on('line', onLine);
      });
      child.stdin?.write(
        `${JSON.stringify({ execBandwidthBytesPerSecond: bytesPerSecond ?? 0 })}\n`,
      );
      await Promise.race([
        done,
        exited.then(() => {
          throw new Error(`the simulator exited: ${stderr}`);
        }),
      ]);
    },
    async stop() {
      process.removeListener('exit', killOnExit);
      child.kill('SIGTERM');
      await exited;
    },
  };
}
