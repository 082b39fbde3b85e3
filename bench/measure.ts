/**
 * Runs a command under GNU time (`/usr/bin/time`), so that every contender (our copy
 * process, kubectl) is measured the same way: wall time, peak RSS, user+system CPU.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Measured {
  wallSeconds: number;
  peakRssMiB: number;
  cpuSeconds: number;
  stdout: string;
}

export interface MeasureOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** A file fed to stdin. */
  stdinFile?: string;
  /** A file stdout goes to (else it is captured). */
  stdoutFile?: string;
}

const TIME = '/usr/bin/time';
let reports = 0;

export async function measureCommand(
  argv: readonly string[],
  options: MeasureOptions = {},
): Promise<Measured> {
  // Unique per call: several commands may be measured at once (a restore's floor).
  reports += 1;
  const report = join(tmpdir(), `bench-time-${process.pid}-${reports}.txt`);
  const stdin = options.stdinFile ? openSync(options.stdinFile, 'r') : 'ignore';
  const stdout = options.stdoutFile ? openSync(options.stdoutFile, 'w') : 'pipe';
  try {
    const child = spawn(TIME, ['-f', '%e %M %U %S', '-o', report, ...argv], {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: [stdin, stdout, 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      err = (err + chunk.toString()).slice(-2000);
    });
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    if (code !== 0) throw new Error(`${argv.slice(0, 3).join(' ')} exited ${code}: ${err}`);
    const [wall, rssKiB, user, system] = readFileSync(report, 'utf8').trim().split(/\s+/).slice(-4);
    return {
      wallSeconds: Number(wall),
      peakRssMiB: Number(rssKiB) / 1024,
      cpuSeconds: Number(user) + Number(system),
      stdout: out,
    };
  } finally {
    if (typeof stdin === 'number') closeSync(stdin);
    if (typeof stdout === 'number') closeSync(stdout);
    rmSync(report, { force: true });
  }
}
