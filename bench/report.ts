/** The benchmark's figures as Markdown: sections of tables, the machine, RESULTS.md. */
import { execFileSync } from 'node:child_process';
import { cpus, loadavg, totalmem } from 'node:os';

export interface Section {
  title: string;
  header: string[];
  rows: string[][];
  /** What the figures mean. */
  notes: string[];
  /** Issue 14's targets these figures decide. */
  targets?: Target[];
}

export interface Target {
  target: string;
  measured: string;
  met: boolean;
}

export function renderTargets(targets: readonly Target[]): string {
  return [
    '## Targets',
    '',
    markdownTable(
      ['target', 'measured', 'met'],
      targets.map((t) => [t.target, t.measured, t.met ? 'yes' : '**no**']),
    ),
  ].join('\n');
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export const fixed = (value: number, digits = 2) => value.toFixed(digits);

export function markdownTable(header: readonly string[], rows: readonly string[][]): string {
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

export function renderSection(section: Section): string {
  return [
    `## ${section.title}`,
    '',
    markdownTable(section.header, section.rows),
    '',
    ...section.notes.map((note) => `- ${note}`),
  ].join('\n');
}

/** CPU, cores, memory, Node, kubectl, the load when the run started. */
export function describeMachine(kubectl: string): string[] {
  const cpu = cpus();
  const version = (argv: string[]) => {
    try {
      return (
        execFileSync(argv[0] as string, argv.slice(1), { timeout: 10_000 })
          .toString()
          .trim()
          .split('\n')[0] ?? 'unknown'
      );
    } catch {
      return 'unknown';
    }
  };
  return [
    `CPU: ${cpu[0]?.model ?? 'unknown'}, ${cpu.length} cores (shared with other sessions' work: figures are noisy; compare rows of one run, not runs)`,
    `memory: ${Math.round(totalmem() / 1024 ** 3)} GiB; load average at start: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
    `Node ${process.version}; kubectl ${kubectlVersion(kubectl)}; etcd ${version(['/usr/bin/etcd', '--version']).replace('etcd Version: ', '')}`,
    `kernel: ${version(['uname', '-sr'])}`,
  ];
}

function kubectlVersion(kubectl: string): string {
  try {
    const text = execFileSync(kubectl, ['version', '--client'], { timeout: 10_000 }).toString();
    return /Client Version: (\S+)/.exec(text)?.[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}
